// `lazyroot pull`, on the public API (lazyroot.hpp) as a launcher would.
#include <lazyroot/lazyroot.hpp>

#include <cstdio>
#include <iostream>
#include <map>

#include "src/cli/cli_common.h"
#include "src/cli/progress_observer.h"

namespace lazyroot::cli {
void AddPullCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  struct Args {
    std::string image, platform, creds, username, authfile, progress = "auto";
    bool password_stdin = false, insecure = false, tls_verify = true, quiet = false;
    std::vector<std::string> cert_dirs, limits;
    int jobs = 3;
    EndpointArgs endpoints;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("pull", "Download an image into the store, verifying every byte");
  cmd->add_option("IMAGE", args->image,
                  "Image reference: alpine, ghcr.io/o/app:v1, host:5000/x@sha256:…, http://127.0.0.1:5000/x:1 "
                  "(plain HTTP), oci:DIR[:tag] (an OCI image layout), oci-archive:FILE[:tag] (a tar of one), "
                  "docker-archive:FILE[:ref|:@N] (a docker save tarball; ref picks by RepoTags, @N the N-th image; "
                  "FILE ends at the first ':')")
      ->required();
  cmd->add_option("--platform", args->platform,
                  "os/arch[/variant] to pick from a multi-platform image (default: this host)");
  cmd->add_option("--creds", args->creds,
                  "USER:PASSWORD for the registry (otherwise the auth files: containers' auth.json, then docker's "
                  "config.json; see --authfile)");
  cmd->add_option("--authfile", args->authfile,
                  "The containers auth.json to read, and no other (default: $REGISTRY_AUTH_FILE; without either, "
                  "$XDG_RUNTIME_DIR/containers/auth.json, then $XDG_CONFIG_HOME/containers/auth.json and docker's "
                  "config.json are read), as podman and skopeo do")
      ->option_text("FILE");
  cmd->add_option("--username", args->username,
                  "User name for the registry; the password is read with --password-stdin");
  cmd->add_flag("--password-stdin", args->password_stdin, "Read the password from standard input");
  cmd->add_flag("--insecure", args->insecure, "Talk plain HTTP to the registry");
  cmd->add_flag("--tls-verify,!--no-tls-verify", args->tls_verify,
                "Verify the registry's TLS certificate (--tls-verify=false to skip)");
  cmd->add_option("--cert-dir", args->cert_dirs,
                  "Directory holding HOST[:PORT]/{*.crt,*.cert,*.key} (also searched: /etc/containers/certs.d, "
                  "/etc/docker/certs.d; /etc is $LAZYROOT_SYSCONFDIR when set)");
  cmd->add_option("--progress", args->progress, "Progress output: auto, tty, plain or json (on stderr)")
      ->check(CLI::IsMember({"auto", "tty", "plain", "json"}));
  cmd->add_flag("-q,--quiet", args->quiet, "Print only the manifest digest");
  cmd->add_option("-j,--jobs", args->jobs, "Layers downloaded at once")->check(CLI::Range(1, 32));
  AddEndpointOptions(cmd, &args->endpoints);
  AddLimitOption(cmd, &args->limits);
  cmd->callback([args, &global, run] {
    *run = [args, &global]() -> int {
      lazyroot::PullOptions options;
      if (!args->platform.empty()) options.platform = args->platform;
      options.jobs = args->jobs;
      auto limits = LimitItems(args->limits);
      if (!limits) return kExitUsage;
      options.limits = *limits;
      options.insecure = args->insecure;
      options.tls_verify = args->tls_verify;
      options.cert_dirs = args->cert_dirs;
      if (!args->authfile.empty()) options.authfile = args->authfile;
      if (!args->creds.empty() || !args->username.empty()) {
        if (!args->creds.empty()) {
          size_t colon = args->creds.find(':');
          if (colon == std::string::npos || colon == 0) {
            std::fprintf(stderr, "lazyroot: --creds must be USER:PASSWORD\n");
            return kExitUsage;
          }
          options.username = args->creds.substr(0, colon);
          options.password = args->creds.substr(colon + 1);
        } else {
          if (!args->password_stdin) {
            std::fprintf(stderr, "lazyroot: --username needs --password-stdin\n");
            return kExitUsage;
          }
          std::string secret;
          std::getline(std::cin, secret);
          while (!secret.empty() && (secret.back() == '\r' || secret.back() == '\n')) secret.pop_back();
          options.username = args->username;
          options.password = std::move(secret);
        }
      } else if (args->password_stdin) {
        std::fprintf(stderr, "lazyroot: --password-stdin needs --username\n");
        return kExitUsage;
      }
      static const std::map<std::string, ProgressMode> kModes = {{"auto", ProgressMode::kAuto},
                                                                 {"tty", ProgressMode::kTty},
                                                                 {"plain", ProgressMode::kPlain},
                                                                 {"json", ProgressMode::kJson}};
      auto progress = MakeProgress(args->quiet ? ProgressMode::kNone : kModes.at(args->progress));
      options.registries_conf = args->endpoints.registries_conf;
      options.hosts_dir = args->endpoints.hosts_dir;
      options.verbose = args->endpoints.verbose;
      // -q draws nothing, but a mirror passed over (and -v's endpoints) is still said.
      ProgressObserver observer(progress.get());
      NotesOnly notes;
      options.observer = args->quiet ? static_cast<lazyroot::PullObserver*>(&notes) : &observer;
      try {
        lazyroot::Store store(global.root);
        lazyroot::PullResult result = store.Pull(args->image, options);
        if (args->quiet) {
          std::printf("%s\n", result.manifest_digest.c_str());
        } else {
          std::printf("%s\nDigest: %s\nPlatform: %s\nDownloaded %s, %llu bytes\n", result.reference.c_str(),
                      result.manifest_digest.c_str(), result.platform.c_str(),
                      Counted(result.blobs_fetched, "blob").c_str(),
                      static_cast<unsigned long long>(result.bytes_fetched));
        }
      } catch (const lazyroot::Error& e) {
        return Fail(e);
      }
      return kExitOk;
    };
  });
}

}  // namespace lazyroot::cli
