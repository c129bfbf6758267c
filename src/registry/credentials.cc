#include "src/registry/credentials.h"

#include <fcntl.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "index/ascii.h"
#include "src/common/file_io.h"
#include "src/image/json_document.h"

extern char** environ;

namespace lazyroot {
namespace {

constexpr std::string_view kDockerHubAuthKey = "https://index.docker.io/v1/";
constexpr size_t kMaxHelperOutput = 1 << 20;
constexpr size_t kMaxConfigSize = 16 << 20;
// What goes into a helper's stdin pipe before it starts: it must fit the pipe buffer.
constexpr size_t kMaxHelperInput = 16 << 10;

bool IsDockerHub(std::string_view registry) {
  return registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io";
}

// The auths / credHelpers hosts that name this registry, best first.
std::vector<std::string> CandidateHosts(const std::string& registry) {
  if (IsDockerHub(registry)) return {"index.docker.io", "docker.io", "registry-1.docker.io"};
  return {AsciiLower(registry)};
}


Result<std::optional<std::string>> ReadSmallFile(const std::string& path) {
  auto data = ReadWholeFile(path, kMaxConfigSize, UnfitFileCodes{ErrorCode::kInvalidArgument, ErrorCode::kInvalidArgument});
  if (!data.ok() && data.status().code() == ErrorCode::kNotFound) return std::optional<std::string>();
  if (!data.ok()) return data.status();
  return std::optional<std::string>(std::move(*data));
}

// RAII for the descriptors of one helper run.
struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

// Runs `docker-credential-<helper> get` with the server URL on stdin.
// Errors never quote the helper's output: it may hold the secret.
Result<std::optional<Credential>> RunHelper(const std::string& helper, const std::string& registry, int timeout_ms) {
  const std::string context = "credential helper docker-credential-" + helper + " for registry " + registry;
  LAZYROOT_ASSIGN_OR_RETURN(CredentialHelperRun run,
                            RunCredentialHelper(helper, "get", CredentialHelperServerUrl(registry) + "\n", registry,
                                                timeout_ms));
  const std::string& output = run.output;
  if (run.exit_status != 0) {
    // docker-credential-helpers' ErrCredentialsNotFound, on stdout.
    if (output.find("credentials not found") != std::string::npos) return std::optional<Credential>();
    // CVE-2021-41092: a failing helper must not fall back to anything.
    return Status::Unauthorized(context + " failed (exit status " + std::to_string(run.exit_status) + ")");
  }

  LAZYROOT_ASSIGN_OR_RETURN(
      JsonDocument doc, ParseJsonDocument(output, context + ": output", kMaxHelperOutput, ErrorCode::kUnauthorized));
  auto get = [&](const char* key, std::string* out) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || it->value.IsNull()) return true;
    if (!it->value.IsString()) return false;
    out->assign(it->value.GetString(), it->value.GetStringLength());
    return true;
  };
  Credential c;
  if (!get("Username", &c.username) || !get("Secret", &c.secret)) {
    return Status::Unauthorized(context + ": Username and Secret must be strings");
  }
  if (c.username.empty() && c.secret.empty()) return std::optional<Credential>();
  if (c.username == "<token>") {
    c.username.clear();
    c.identity_token = true;
  }
  return std::optional<Credential>(std::move(c));
}

// Decodes one auths entry. An entry with nothing usable (docker writes "{}"
// next to a credsStore) is nullopt.
Result<std::optional<Credential>> FromAuthEntry(const JsonValue& entry, const std::string& where) {
  if (!entry.IsObject()) return Status::InvalidArgument(where + ": want an object");
  auto get = [&](const char* key, std::string* out) -> Status {
    auto it = entry.FindMember(key);
    if (it == entry.MemberEnd() || it->value.IsNull()) return Status::Ok();
    if (!it->value.IsString()) return Status::InvalidArgument(where + "." + key + ": want a string");
    out->assign(it->value.GetString(), it->value.GetStringLength());
    return Status::Ok();
  };
  std::string auth, identity_token;
  Credential c;
  LAZYROOT_RETURN_IF_ERROR(get("auth", &auth));
  LAZYROOT_RETURN_IF_ERROR(get("username", &c.username));
  LAZYROOT_RETURN_IF_ERROR(get("password", &c.secret));
  LAZYROOT_RETURN_IF_ERROR(get("identitytoken", &identity_token));
  LAZYROOT_RETURN_IF_ERROR(get("registrytoken", &c.registry_token));
  if (!auth.empty()) {
    std::optional<std::string> decoded_or = DecodeBase64(auth, Base64Padding::kRequired);
    if (!decoded_or) return Status::InvalidArgument(where + ".auth: not valid base64");
    const std::string& decoded = *decoded_or;
    size_t colon = decoded.find(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::InvalidArgument(where + ".auth: want base64 of \"user:password\"");
    }
    c.username = decoded.substr(0, colon);
    c.secret = decoded.substr(colon + 1);
    // docker/cli decodeAuth: the password is trimmed of NULs.
    while (!c.secret.empty() && c.secret.back() == '\0') c.secret.pop_back();
    while (!c.secret.empty() && c.secret.front() == '\0') c.secret.erase(0, 1);
  }
  if (!identity_token.empty()) {
    c.secret = std::move(identity_token);
    c.identity_token = true;
  }
  if (c.secret.empty() && c.registry_token.empty()) return std::optional<Credential>();
  return std::optional<Credential>(std::move(c));
}

// Finds the member of obj whose key, normalised, names one of hosts; earlier
// hosts win, then document order.
const JsonValue* FindHostKey(const JsonValue& obj, const std::vector<std::string>& hosts, std::string* key_out) {
  for (const std::string& host : hosts) {
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (NormalizeAuthKey(key) == host) {
        *key_out = std::string(key);
        return &it->value;
      }
    }
  }
  return nullptr;
}

std::string ConfigDir(const CredentialOptions& options) {
  if (!options.docker_config_dir.empty()) return options.docker_config_dir;
  if (const char* d = std::getenv("DOCKER_CONFIG"); d != nullptr && *d != '\0') return d;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::string(h) + "/.docker";
  return "";
}

// credHelpers[host] of an auth file: the helper's name, or nullopt.
Result<std::optional<std::string>> CredHelperFor(const JsonDocument& doc, const std::string& path,
                                                 const std::vector<std::string>& hosts) {
  auto it = doc.FindMember("credHelpers");
  if (it == doc.MemberEnd() || it->value.IsNull()) return std::optional<std::string>();
  if (!it->value.IsObject()) return Status::InvalidArgument(path + ": credHelpers: want an object");
  std::string key;
  const JsonValue* helper = FindHostKey(it->value, hosts, &key);
  if (helper == nullptr) return std::optional<std::string>();
  if (!helper->IsString()) return Status::InvalidArgument(path + ": credHelpers[\"" + key + "\"]: want a string");
  return std::optional<std::string>(std::string(helper->GetString(), helper->GetStringLength()));
}

}  // namespace

Result<std::optional<JsonDocument>> ReadAuthFile(const std::string& path) {
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadSmallFile(path));
  if (!text) return std::optional<JsonDocument>();
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc,
                            ParseJsonDocument(*text, path, kMaxConfigSize, ErrorCode::kInvalidArgument));
  if (!doc.IsObject()) return Status::InvalidArgument(path + ": want a JSON object");
  return std::optional<JsonDocument>(std::move(doc));
}

namespace {

// docker/cli's order in config.json: credHelpers[host] -> credsStore ->
// auths[host]; the first that applies decides.
Result<std::optional<Credential>> LookupInDockerConfig(const std::string& path, const std::string& registry,
                                                       int timeout_ms) {
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<JsonDocument> doc_or, ReadAuthFile(path));
  if (!doc_or) return std::optional<Credential>();
  const JsonDocument& doc = *doc_or;
  const std::vector<std::string> hosts = CandidateHosts(registry);

  // 1. credHelpers[host]
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<std::string> helper, CredHelperFor(doc, path, hosts));
  if (helper) return RunHelper(*helper, registry, timeout_ms);
  // 2. credsStore
  if (auto it = doc.FindMember("credsStore"); it != doc.MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsString()) return Status::InvalidArgument(path + ": credsStore: want a string");
    if (it->value.GetStringLength() > 0) return RunHelper(it->value.GetString(), registry, timeout_ms);
  }
  // 3. auths[key]
  if (auto it = doc.FindMember("auths"); it != doc.MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsObject()) return Status::InvalidArgument(path + ": auths: want an object");
    std::string key;
    if (const JsonValue* entry = FindHostKey(it->value, hosts, &key)) {
      return FromAuthEntry(*entry, path + ": auths[\"" + key + "\"]");
    }
  }
  return std::optional<Credential>();
}

// containers/image's order in an auth.json: credHelpers[host], then auths
// keys from the most specific namespace to the host ("reg/team/app",
// "reg/team", "reg"; a host key may be URL-style, as docker writes them).
// The outer nullopt: the file has nothing for this registry (try the next).
Result<std::optional<std::optional<Credential>>> LookupInContainersAuthFile(const std::string& path,
                                                                            const std::string& registry,
                                                                            const std::string& repository,
                                                                            int timeout_ms) {
  using Found = std::optional<std::optional<Credential>>;
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<JsonDocument> doc_or, ReadAuthFile(path));
  if (!doc_or) return Found();
  const JsonDocument& doc = *doc_or;
  const std::vector<std::string> hosts = CandidateHosts(registry);
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<std::string> helper, CredHelperFor(doc, path, hosts));
  if (helper) {
    LAZYROOT_ASSIGN_OR_RETURN(std::optional<Credential> c, RunHelper(*helper, registry, timeout_ms));
    return Found(std::move(c));
  }
  auto it = doc.FindMember("auths");
  if (it == doc.MemberEnd() || it->value.IsNull()) return Found();
  if (!it->value.IsObject()) return Status::InvalidArgument(path + ": auths: want an object");
  const JsonValue& auths = it->value;
  for (const std::string& host : hosts) {
    // Namespaces, most specific first, compared exactly (after lowering the host).
    std::string ns = repository;
    while (!ns.empty()) {
      const std::string want = host + "/" + ns;
      for (auto m = auths.MemberBegin(); m != auths.MemberEnd(); ++m) {
        std::string_view key(m->name.GetString(), m->name.GetStringLength());
        size_t slash = key.find('/');
        if (slash == std::string_view::npos || key.find("://") != std::string_view::npos) continue;
        if (AsciiLower(key.substr(0, slash)) + std::string(key.substr(slash)) != want) continue;
        LAZYROOT_ASSIGN_OR_RETURN(std::optional<Credential> c,
                                  FromAuthEntry(m->value, path + ": auths[\"" + std::string(key) + "\"]"));
        if (c) return Found(std::move(c));
      }
      size_t cut = ns.rfind('/');
      ns.resize(cut == std::string::npos ? 0 : cut);
    }
  }
  // The host itself: "reg" or a URL-style key ("https://reg/v1/", as docker
  // writes them); a namespaced key never stands for its whole host.
  for (const std::string& host : hosts) {
    for (auto m = auths.MemberBegin(); m != auths.MemberEnd(); ++m) {
      std::string_view key(m->name.GetString(), m->name.GetStringLength());
      bool url = key.find("://") != std::string_view::npos;
      if (!url && key.find('/') != std::string_view::npos) continue;
      if (NormalizeAuthKey(key) != host) continue;
      LAZYROOT_ASSIGN_OR_RETURN(std::optional<Credential> c,
                                FromAuthEntry(m->value, path + ": auths[\"" + std::string(key) + "\"]"));
      if (c) return Found(std::move(c));
    }
  }
  return Found();
}

}  // namespace

Result<CredentialHelperRun> RunCredentialHelper(const std::string& helper, const std::string& action,
                                                const std::string& input, const std::string& registry,
                                                int timeout_ms) {
  const std::string program = "docker-credential-" + helper;
  const std::string context = "credential helper " + program + " for registry " + registry;
  if (helper.empty() || helper.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
    return Status::Unauthorized("invalid credential helper name \"" + helper + "\" for registry " + registry);
  }
  if (input.size() > kMaxHelperInput) return Status::InvalidArgument(context + ": input too large");
  // The input goes into the stdin pipe before the child exists: it fits in
  // the pipe buffer, and we can never take SIGPIPE from a helper that exits
  // without reading.
  int in_pipe[2];
  int out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return Status::FromErrno(context + ": pipe", errno);
  Fd in_read, in_write, out_read, out_write;
  in_read.fd = in_pipe[0];
  in_write.fd = in_pipe[1];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Status::FromErrno(context + ": pipe", errno);
  out_read.fd = out_pipe[0];
  out_write.fd = out_pipe[1];
  if (write(in_write.fd, input.data(), input.size()) != static_cast<ssize_t>(input.size())) {
    return Status::FromErrno(context + ": write", errno);
  }
  in_write.Close();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.fd, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(action.c_str()), nullptr};
  // The helper starts with no signal blocked: extract blocks SIGINT/SIGTERM/
  // SIGHUP in every thread (src/cli/interrupt.h), and a helper inheriting
  // that mask would outlive a Ctrl-C.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, program.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    if (rc == ENOENT) return Status::Unauthorized(context + ": " + program + " not found on PATH");
    return Status::Error(ErrorCode::kUnauthorized, context + ": cannot run it: " + std::strerror(rc));
  }
  in_read.Close();
  out_write.Close();

  std::string output;
  bool too_big = false, timed_out = false, exited = false;
  int wstatus = 0;
  Status read_error;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    // A helper that hangs (a keychain prompt nobody answers) must not hang
    // the pull: wait for output until the deadline, then kill it.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    struct pollfd pfd = {out_read.fd, POLLIN, 0};
    // In slices: end of file never comes while a process the helper left
    // running (an agent it started) holds its stdout, so the helper's own
    // exit also ends the wait, once what it wrote has been read.
    const int64_t slice = exited ? 0 : std::min<int64_t>(left.count(), 100);
    int ready = left.count() > 0 || exited ? poll(&pfd, 1, static_cast<int>(slice)) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0 && exited) break;  // it exited and its output is all read
    if (ready == 0 && left.count() > 0) {
      pid_t w = waitpid(pid, &wstatus, WNOHANG);
      if (w == pid) exited = true;
      if (w < 0 && errno != EINTR) return Status::FromErrno(context + ": waitpid", errno);
      continue;
    }
    if (ready == 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    ssize_t n = read(out_read.fd, buf, sizeof buf);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      read_error = Status::FromErrno(context + ": read", err);
      break;
    }
    if (n == 0) break;
    if (output.size() + static_cast<size_t>(n) > kMaxHelperOutput) {
      too_big = true;
      break;
    }
    output.append(buf, static_cast<size_t>(n));
  }
  // Closing our end makes a helper still writing get EPIPE and exit.
  out_read.Close();
  while (!exited && waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Status::FromErrno(context + ": waitpid", errno);
  }
  if (!read_error.ok()) return read_error;
  if (timed_out) {
    return Status::Unauthorized(context + ": no answer within " + std::to_string(timeout_ms / 1000.0).substr(0, 4) +
                                " s; stopped it (set LAZYROOT_CREDENTIAL_HELPER_TIMEOUT to wait longer)");
  }
  if (too_big) {
    return Status::Unauthorized(context + ": output larger than " + std::to_string(kMaxHelperOutput) + " bytes");
  }
  if (!WIFEXITED(wstatus)) {
    return Status::Unauthorized(context + ": killed by signal " + std::to_string(WTERMSIG(wstatus)));
  }
  return CredentialHelperRun{WEXITSTATUS(wstatus), std::move(output)};
}

std::string CredentialHelperServerUrl(const std::string& registry) {
  return IsDockerHub(registry) ? std::string(kDockerHubAuthKey) : registry;
}

std::string NormalizeAuthKey(std::string_view key) {
  if (key.starts_with("http://")) {
    key.remove_prefix(7);
  } else if (key.starts_with("https://")) {
    key.remove_prefix(8);
  }
  return AsciiLower(key.substr(0, key.find('/')));
}

std::vector<std::string> ContainersAuthFiles(const CredentialOptions& options) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  std::vector<std::string> files;
  // A file the user names is the only one read (containers/image's
  // getAuthFilePaths: no XDG config file, no docker config.json after it).
  if (!options.authfile.empty()) return {options.authfile};
  if (std::string f = env("REGISTRY_AUTH_FILE"); !f.empty()) return {f};
  files.push_back(PrimaryAuthFile());
  if (std::string config = env("XDG_CONFIG_HOME"); !config.empty()) {
    files.push_back(config + "/containers/auth.json");
  } else if (std::string home = env("HOME"); !home.empty()) {
    files.push_back(home + "/.config/containers/auth.json");
  }
  return files;
}

Result<std::optional<Credential>> LookupCredential(const std::string& registry, const CredentialOptions& options) {
  if (options.explicit_credential) return options.explicit_credential;
  LAZYROOT_ASSIGN_OR_RETURN(int timeout_ms, CredentialHelperTimeoutMs(options));
  for (const std::string& path : ContainersAuthFiles(options)) {
    LAZYROOT_ASSIGN_OR_RETURN(std::optional<std::optional<Credential>> found,
                              LookupInContainersAuthFile(path, registry, options.repository, timeout_ms));
    if (found) return *found;
  }
  const char* given = std::getenv("REGISTRY_AUTH_FILE");
  if (!options.authfile.empty() || (given != nullptr && *given != '\0')) return std::optional<Credential>();
  std::string path = DockerConfigPath(options);
  if (path.empty()) return std::optional<Credential>();
  return LookupInDockerConfig(path, registry, timeout_ms);
}

Result<int> CredentialHelperTimeoutMs(const CredentialOptions& options) {
  if (options.helper_timeout_ms > 0) return options.helper_timeout_ms;
  const char* t = std::getenv("LAZYROOT_CREDENTIAL_HELPER_TIMEOUT");
  if (t == nullptr || *t == '\0') return 30'000;
  char* end = nullptr;
  double secs = std::strtod(t, &end);
  if (end == t || *end != '\0' || !(secs > 0) || secs > 86400) {
    return Status::InvalidArgument("LAZYROOT_CREDENTIAL_HELPER_TIMEOUT=" + std::string(t) +
                                   ": want seconds, more than 0 and at most 86400");
  }
  return std::max(1, static_cast<int>(secs * 1000));
}

std::string PrimaryAuthFile() {
  const char* run = std::getenv("XDG_RUNTIME_DIR");
  if (run != nullptr && *run != '\0') return std::string(run) + "/containers/auth.json";
  return "/run/containers/" + std::to_string(::getuid()) + "/auth.json";
}

std::string DockerConfigPath(const CredentialOptions& options) {
  std::string dir = ConfigDir(options);
  return dir.empty() ? dir : dir + "/config.json";
}

Result<std::optional<std::string>> AuthFileHelperFor(const std::string& path, const std::string& registry,
                                                     bool docker_config) {
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<JsonDocument> doc, ReadAuthFile(path));
  if (!doc) return std::optional<std::string>();
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<std::string> helper, CredHelperFor(*doc, path, CandidateHosts(registry)));
  if (helper || !docker_config) return helper;
  if (auto it = doc->FindMember("credsStore"); it != doc->MemberEnd() && !it->value.IsNull()) {
    if (!it->value.IsString()) return Status::InvalidArgument(path + ": credsStore: want a string");
    if (it->value.GetStringLength() > 0) return std::optional<std::string>(it->value.GetString());
  }
  return std::optional<std::string>();
}

}  // namespace lazyroot
