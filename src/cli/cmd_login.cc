// `lazyroot login REGISTRY` / `lazyroot logout REGISTRY|--all`: credentials
// checked against the registry, then kept where podman and docker keep them
// (src/registry/credential_store.h), for pull to find. The password comes
// from stdin (--password-stdin) or a prompt with echo off, never from the
// command line, and is never printed.
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>

#include "index/ascii.h"
#include "src/cli/cli.h"
#include "src/image/reference.h"
#include "src/registry/credential_store.h"
#include "src/registry/registry_client.h"

namespace lazyroot::cli {
namespace {

constexpr size_t kMaxSecret = 8 << 10;

struct LoginArgs {
  std::string registry, username, authfile;
  bool password_stdin = false, insecure = false, tls_verify = true, all = false;
  std::vector<std::string> cert_dirs;
};

// What the user typed, made a login key: "https://index.docker.io/v1/" ->
// "docker.io", "HOST:5000" -> "host:5000", "quay.io/team" (a namespace, as
// podman allows) kept; plain_http for "http://".
struct LoginKey {
  std::string key, host;
  Reference ref;  // the registry to check against
};

Result<LoginKey> ParseLoginKey(std::string text, bool insecure) {
  bool plain = insecure, url = false;
  for (std::string_view scheme : {"https://", "http://"}) {
    if (text.starts_with(scheme)) {
      plain = plain || scheme == "http://";
      text.erase(0, scheme.size());
      url = true;
    }
  }
  // A URL's path is docker's ("/v1/", "/v2/"), not a namespace.
  if (url) text = text.substr(0, text.find('/'));
  while (!text.empty() && text.back() == '/') text.pop_back();
  size_t slash = text.find('/');
  std::string host = AsciiLower(text.substr(0, slash));
  std::string ns = slash == std::string::npos ? "" : text.substr(slash + 1);
  if (host == "index.docker.io" || host == "registry-1.docker.io") host = "docker.io";
  auto ref = ParseReference(host + "/" + (ns.empty() ? "lazyroot-login" : ns));
  if (!ref.ok() || ref->registry != host) {
    return Status::InvalidArgument("login: \"" + Displayable(text) +
                                   "\" is not a registry (want HOST[:PORT], e.g. docker.io, 127.0.0.1:5000, "
                                   "quay.io/namespace)");
  }
  ref->plain_http = plain;
  return LoginKey{ns.empty() ? host : host + "/" + ns, host, *ref};
}

// The terminal's settings while echo is off, for a signal that ends the
// prompt: a Ctrl-C must not leave the user's shell without echo.
struct termios saved_termios;
volatile sig_atomic_t echo_off = 0;

void RestoreEchoAndDie(int sig) {
  if (echo_off) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Reads one line from fd 0 (the password, without its line end), echo off
// when prompting on a terminal.
Result<std::string> ReadSecretLine(bool prompt) {
  struct termios& saved = saved_termios;
  bool restore = false;
  struct sigaction old_actions[3];
  const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
  if (prompt) {
    if (::tcgetattr(STDIN_FILENO, &saved) == 0) {
      struct sigaction sa {};
      sa.sa_handler = &RestoreEchoAndDie;
      sigemptyset(&sa.sa_mask);
      for (int i = 0; i < 3; ++i) ::sigaction(signals[i], &sa, &old_actions[i]);
      struct termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      quiet.c_lflag |= ECHONL;
      echo_off = 1;
      restore = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
      if (!restore) {
        echo_off = 0;
        for (int i = 0; i < 3; ++i) ::sigaction(signals[i], &old_actions[i], nullptr);
      }
    }
    // Only now: what is typed after the prompt shows up is neither echoed
    // nor thrown away by TCSAFLUSH.
    std::fputs("Password: ", stderr);
    std::fflush(stderr);
  }
  std::string line;
  char c;
  bool too_long = false;
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    if (line.size() >= kMaxSecret) {
      too_long = true;
      continue;  // read on to the line end so that nothing is left for the shell
    }
    line.push_back(c);
  }
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    echo_off = 0;
    for (int i = 0; i < 3; ++i) ::sigaction(signals[i], &old_actions[i], nullptr);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (too_long) return Status::InvalidArgument("password longer than " + std::to_string(kMaxSecret) + " bytes");
  return line;
}

Result<std::string> PromptLine(const char* what) {
  std::fprintf(stderr, "%s: ", what);
  std::fflush(stderr);
  std::string line;
  if (!std::getline(std::cin, line)) return Status::InvalidArgument(std::string("no ") + what + " given");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

RegistryOptions CheckOptions(const LoginArgs& a, const LoginKey& key) {
  RegistryOptions options;
  options.insecure = key.ref.plain_http;
  options.tls_verify = a.tls_verify;
  options.cert_dirs = a.cert_dirs;
  return options;
}

// podman's "Already logged in": without --username, credentials pull would
// use (any auth file, docker's config, a helper) are checked first. OK with
// a message when they work; an error when they do not and nothing can be
// asked for; nullopt to go on and ask.
std::optional<int> TryStoredLogin(const LoginArgs& a, const LoginKey& key, bool can_ask) {
  CredentialOptions creds;
  creds.authfile = a.authfile;
  if (key.key != key.host) creds.repository = key.key.substr(key.host.size() + 1);
  auto stored = LookupCredential(key.host, creds);
  if (!stored.ok()) return can_ask ? std::nullopt : std::optional<int>(Fail(stored.status()));
  if (!stored->has_value()) return std::nullopt;
  RegistryOptions options = CheckOptions(a, key);
  options.credentials.explicit_credential = **stored;
  auto client = RegistryClient::Connect(key.ref, options);
  Status st = client.ok() ? (*client)->CheckLogin() : client.status();
  if (st.ok()) {
    std::printf("Already logged in to %s\n", key.key.c_str());
    return kExitOk;
  }
  if (!can_ask) return Fail(st.WithContext("login to " + key.host + " with the stored credentials"));
  std::fprintf(stderr, "The stored credentials for %s do not work: enter a user name and password\n", key.host.c_str());
  return std::nullopt;
}

int RunLogin(const LoginArgs& a) {
  auto key = ParseLoginKey(a.registry, a.insecure);
  if (!key.ok()) return Fail(key.status());
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  std::string username = a.username;
  if (username.empty() && !a.password_stdin) {
    if (std::optional<int> done = TryStoredLogin(a, *key, tty)) return *done;
  }
  if (username.empty()) {
    if (a.password_stdin || !tty) {
      return Fail(Status::InvalidArgument(
          "login: no user name: pass --username (with --password-stdin when there is no terminal)"));
    }
    auto u = PromptLine("Username");
    if (!u.ok()) return Fail(u.status());
    username = *u;
  }
  if (username.empty() || username.find(':') != std::string::npos) {
    return Fail(Status::InvalidArgument("login: the user name must be non-empty and without ':'"));
  }
  if (!a.password_stdin && !tty) {
    return Fail(Status::InvalidArgument("login: no terminal to ask for the password: pass it with --password-stdin"));
  }
  auto secret = ReadSecretLine(!a.password_stdin);
  if (!secret.ok()) return Fail(secret.status());
  if (secret->empty()) return Fail(Status::InvalidArgument("login: empty password"));

  CredentialOptions creds;
  creds.authfile = a.authfile;
  // Where it will go is settled first: a malformed auth file or a missing
  // $XDG_RUNTIME_DIR fails before anything is sent.
  auto dest = LoginDestination(key->key, creds);
  if (!dest.ok()) return Fail(dest.status());

  RegistryOptions options = CheckOptions(a, *key);
  options.credentials.explicit_credential = Credential{username, *secret, false, ""};
  const std::string who = "login to " + key->host + " as " + Displayable(username);
  auto client = RegistryClient::Connect(key->ref, options);
  if (!client.ok()) return Fail(client.status().WithContext(who));
  if (Status st = (*client)->CheckLogin(); !st.ok()) return Fail(st.WithContext(who));
  if (Status st = StoreCredential(*dest, key->key, username, *secret, creds); !st.ok()) {
    return Fail(st.WithContext(who));
  }
  std::printf("Login Succeeded (%s in %s)\n", key->key.c_str(), dest->Describe().c_str());
  return kExitOk;
}

int RunLogout(const LoginArgs& a) {
  CredentialOptions creds;
  creds.authfile = a.authfile;
  if (a.all) {
    if (!a.registry.empty()) return Fail(Status::InvalidArgument("logout: give REGISTRY or --all, not both"));
    // The auth file login would write; helpers are left alone, as podman does.
    std::string file = a.authfile;
    if (file.empty()) {
      const char* f = std::getenv("REGISTRY_AUTH_FILE");
      file = f != nullptr && *f != '\0' ? f : PrimaryAuthFile();
    }
    auto n = EraseAllCredentials(file);
    if (!n.ok()) return Fail(n.status());
    std::printf("Removed %s from %s\n", Counted(*n, "login").c_str(), file.c_str());
    return kExitOk;
  }
  if (a.registry.empty()) return Fail(Status::InvalidArgument("logout: give REGISTRY or --all"));
  auto key = ParseLoginKey(a.registry, false);
  if (!key.ok()) return Fail(key.status());
  auto dest = LoginDestination(key->key, creds);
  if (!dest.ok()) return Fail(dest.status());
  auto removed = EraseCredential(*dest, key->key, creds);
  if (!removed.ok()) return Fail(removed.status().WithContext("logout from " + key->key));
  if (!*removed) {
    return Fail(
        Status::NotFound("logout: not logged in to " + key->key + " (nothing stored in " + dest->Describe() + ")"));
  }
  std::printf("Removed login credentials for %s from %s\n", key->key.c_str(), dest->Describe().c_str());
  return kExitOk;
}

constexpr const char* kWhere =
    "Stored in --authfile FILE, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json (without "
    "XDG_RUNTIME_DIR: /run/containers/UID/auth.json), as podman login stores them; a credHelpers entry for the "
    "registry in that file, or (when no file was named) docker's config.json credHelpers entry or credsStore, "
    "hands them to that docker-credential-NAME helper instead.";

}  // namespace

void AddLoginCommands(CLI::App& app, const GlobalOptions&, Runner* run) {
  auto args = std::make_shared<LoginArgs>();
  CLI::App* login = app.add_subcommand(
      "login", std::string("Check a user name and password against REGISTRY (GET /v2/, or its token service), then "
                           "keep them for pull. ") +
                   kWhere);
  login
      ->add_option("REGISTRY", args->registry,
                   "Registry host[:port] (docker.io, 127.0.0.1:5000), or host/namespace for an auth.json entry "
                   "that applies to that namespace only; http://HOST talks plain HTTP")
      ->required();
  login->add_option("-u,--username", args->username,
                    "User name. Without it the credentials pull would use are checked first (\"Already logged in\"); "
                    "then it is asked for on a terminal");
  login->add_flag("--password-stdin", args->password_stdin,
                  "Read the password from the first line of stdin (otherwise it is asked for on the terminal, "
                  "without echo; there is no flag that takes it on the command line)");
  login->add_option("--authfile", args->authfile, "The containers auth.json to write")->option_text("FILE");
  login->add_flag("--insecure", args->insecure, "Talk plain HTTP to the registry");
  login->add_flag("--tls-verify,!--no-tls-verify", args->tls_verify,
                  "Verify the registry's TLS certificate (--tls-verify=false to skip)");
  login->add_option("--cert-dir", args->cert_dirs, "Directory holding HOST[:PORT]/{*.crt,*.cert,*.key}, as for pull");
  login->callback([args, run] { *run = [args] { return RunLogin(*args); }; });

  auto out = std::make_shared<LoginArgs>();
  CLI::App* logout = app.add_subcommand(
      "logout",
      std::string(
          "Remove the credentials login stored for REGISTRY (that key, and for a host the URL forms docker writes, "
          "https://HOST/v1/; "
          "other entries and settings are kept). ") +
          kWhere);
  logout->add_option("REGISTRY", out->registry, "Registry host[:port] or host/namespace, as given to login");
  logout->add_option("--authfile", out->authfile, "The containers auth.json to edit")->option_text("FILE");
  logout->add_flag("-a,--all", out->all, "Remove every entry of the auth file (credential helpers are not asked)");
  logout->callback([out, run] { *run = [out] { return RunLogout(*out); }; });
}

}  // namespace lazyroot::cli
