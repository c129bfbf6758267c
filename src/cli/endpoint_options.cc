// The options of every command that reads a registry: where mirrors and
// rewrites come from (--registries-conf, --hosts-dir) and -v/--debug, which
// names the endpoint that served the manifest and each blob.
#include <cctype>
#include <cstdio>

#include "src/cli/cli.h"
#include "src/pull/progress.h"
#include "src/registry/registry_client.h"

namespace lazyroot::cli {

void AddEndpointOptions(CLI::App* cmd, EndpointArgs* a, CLI::Option* needs) {
  auto with = [needs](CLI::Option* o) {
    if (needs != nullptr) {
      o->needs(needs);
      std::string text = o->get_description();
      if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
      o->description("With " + needs->get_name() + ": " + text);
    }
  };
  with(
      cmd->add_option("--registries-conf", a->registries_conf,
                      "The registries.conf to read, and no other (default: $CONTAINERS_REGISTRIES_CONF, else "
                      "$XDG_CONFIG_HOME/containers/registries.conf if it exists, else /etc/containers/registries.conf; "
                      "then the registries.conf.d drop-ins), for [[registry]] rewrites, blocks and mirrors")
          ->option_text("FILE"));
  with(cmd->add_option("--hosts-dir", a->hosts_dir,
                       "containerd hosts directory: DIR/host_port_/ or DIR/HOST[:PORT]/ (else DIR/_default/) holds "
                       "the registry's hosts.toml (mirrors, capabilities, ca, client, header, override_path), read in "
                       "place of registries.conf. Without it: /etc/containerd/certs.d/HOST/ when it exists, else a "
                       "matching registries.conf [[registry]], else /etc/containerd/certs.d/_default/")
           ->option_text("DIR"));
  with(cmd->add_flag("-v,--debug", a->verbose,
                     "Say which endpoint (registry or mirror) served the manifest and each blob"));
}

void ApplyEndpointOptions(const EndpointArgs& a, PullProgress* progress, RegistryOptions* options) {
  options->endpoints.registries_conf = a.registries_conf;
  options->endpoints.hosts_dir = a.hosts_dir;
  auto line = [progress](const std::string& text) {
    if (progress != nullptr) {
      progress->Note(Displayable(text));
    } else {
      std::fprintf(stderr, "lazyroot: %s\n", Displayable(text).c_str());
    }
  };
  options->warn = [line](const std::string& text) { line("warning: " + text); };
  if (a.verbose) options->debug = line;
}

}  // namespace lazyroot::cli
