// `lazyroot pull`.
#include <cstdio>
#include <iostream>
#include <map>

#include "src/cli/cli.h"
#include "src/cli/progress_render.h"
#include "src/store/index_consumer.h"
#include "src/pull/pull.h"

namespace lazyroot::cli {

void AddPullCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  struct Args {
    std::string image, platform, creds, username, authfile, progress = "auto";
    bool password_stdin = false, insecure = false, tls_verify = true, quiet = false;
    std::vector<std::string> cert_dirs, limits;
    int jobs = 3;
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
                  "/etc/docker/certs.d)");
  cmd->add_option("--progress", args->progress, "Progress output: auto, tty, plain or json (on stderr)")
      ->check(CLI::IsMember({"auto", "tty", "plain", "json"}));
  cmd->add_flag("-q,--quiet", args->quiet, "Print only the manifest digest");
  cmd->add_option("-j,--jobs", args->jobs, "Layers downloaded at once")->check(CLI::Range(1, 32));
  AddLimitOption(cmd, &args->limits);
  cmd->callback([args, &global, run] {
    *run = [args, &global]() -> int {
      auto ref = ParseReference(args->image);
      if (!ref.ok()) return Fail(ref.status());
      PullOptions options;
      if (!args->platform.empty()) {
        auto p = ParsePlatform(args->platform);
        if (!p.ok()) return Fail(p.status());
        options.platform = *p;
        options.platform_explicit = true;
      }
      options.jobs = args->jobs;
      auto limits = ResolveLimits(args->limits);
      if (!limits.ok()) return Fail(limits.status());
      options.limits = *limits;
      options.registry.insecure = args->insecure;
      options.registry.tls_verify = args->tls_verify;
      options.registry.cert_dirs = args->cert_dirs;
      options.registry.credentials.authfile = args->authfile;
      if (!args->creds.empty() || !args->username.empty()) {
        Credential c;
        if (!args->creds.empty()) {
          size_t colon = args->creds.find(':');
          if (colon == std::string::npos || colon == 0) {
            return Fail(Status::InvalidArgument("--creds must be USER:PASSWORD"));
          }
          c.username = args->creds.substr(0, colon);
          c.secret = args->creds.substr(colon + 1);
        } else {
          if (!args->password_stdin) return Fail(Status::InvalidArgument("--username needs --password-stdin"));
          c.username = args->username;
          std::getline(std::cin, c.secret);
          while (!c.secret.empty() && (c.secret.back() == '\r' || c.secret.back() == '\n')) c.secret.pop_back();
        }
        options.registry.credentials.explicit_credential = c;
      } else if (args->password_stdin) {
        return Fail(Status::InvalidArgument("--password-stdin needs --username"));
      }
      static const std::map<std::string, ProgressMode> kModes = {{"auto", ProgressMode::kAuto},
                                                                 {"tty", ProgressMode::kTty},
                                                                 {"plain", ProgressMode::kPlain},
                                                                 {"json", ProgressMode::kJson}};
      auto progress = MakeProgress(args->quiet ? ProgressMode::kNone : kModes.at(args->progress));
      options.progress = progress.get();

      auto store = OpenStore(global);
      if (!store.ok()) return Fail(store.status());
      options.consumer_factory = MakeIndexingConsumerFactory(**store, options.limits);
      auto result = Pull(**store, *ref, options);
      if (!result.ok()) return Fail(result.status());
      if (args->quiet) {
        std::printf("%s\n", result->record.manifest_digest.c_str());
      } else {
        std::printf("%s\nDigest: %s\nPlatform: %s\nDownloaded %s, %llu bytes\n", result->record.reference.c_str(),
                    result->record.manifest_digest.c_str(), result->record.platform.c_str(),
                    Counted(static_cast<unsigned>(result->blobs_fetched), "blob").c_str(),
                    static_cast<unsigned long long>(result->bytes_fetched));
      }
      return kExitOk;
    };
  });
}

}  // namespace lazyroot::cli
