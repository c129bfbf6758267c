// Endpoints: where a pull of one reference may read from, in the order to
// try them — mirrors first, the registry last — from registries.conf
// (containers) or hosts.toml (containerd), whichever configures the
// registry; without either, the reference's registry alone, exactly as
// before either file was read.
//
// Which file wins. Containers tools never read hosts.toml and containerd
// never reads registries.conf, so a machine may hold both, each written for
// its own tool. lazyroot takes, first match wins:
//   1. --hosts-dir DIR given: hosts.toml from DIR (DIR/HOST, else
//      DIR/_default; neither: the registry itself) — the user named it;
//   2. SYSCONF/containerd/certs.d/HOST exists: that directory — a statement
//      about this very registry;
//   3. a registries.conf [[registry]] whose prefix matches the image;
//   4. SYSCONF/containerd/certs.d/_default exists: that directory;
//   5. the registry itself.
// A registries.conf `blocked` rule is enforced whatever serves the pull: it
// is a policy, not a route. Value types; the functions are pure except
// SelectEndpoints, which reads the files (src/registry/registries_conf.h,
// hosts_toml.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "index/status.h"
#include "src/image/reference.h"
#include "src/registry/hosts_toml.h"
#include "src/registry/registries_conf.h"

namespace lazyroot {

struct Endpoint {
  std::string registry;    // "host[:port]" it is reached at: credentials, certs.d, messages
  std::string repository;  // the repository there (registries.conf may rewrite it)
  std::string api_root;    // every request goes below it: "https://host:port/v2", "http://h/prefix/v2"
  bool mirror = false;     // not the reference's own registry
  // registries.conf `insecure`: HTTPS without certificate checks, and plain
  // HTTP when HTTPS fails (containers/image's detectProperties).
  bool http_fallback = false;
  std::optional<bool> tls_verify;  // false: no certificate checks for this host (skip_verify, insecure)
  std::vector<std::string> ca_files;
  std::string client_cert, client_key;  // one pair (hosts.toml `client`)
  std::vector<std::string> headers;     // "Name: value" on every request (hosts.toml `header`)
  std::string query;                    // "ns=docker.io": containerd names the upstream to a mirror
  bool resolve = true;                  // may be asked for tags
  bool pull = true;                     // may be asked for digests (manifests, blobs)
  bool lenient_ping = false;            // override_path: the API root need not answer GET /
  std::string origin;                   // "registries.conf FILE", "hosts.toml FILE", "" (no file)

  // "127.0.0.1:5001/demo/app" (with the API root's path when it is not /v2).
  std::string Describe() const;
  // Describe() plus where it comes from: "… (mirror, registries.conf FILE)".
  std::string DescribeWithOrigin() const;
};

struct EndpointOptions {
  std::string registries_conf;  // --registries-conf FILE: that file alone
  std::string hosts_dir;        // --hosts-dir DIR (containerd's `ctr --hosts-dir`)
  bool read_config = true;      // false: the reference's registry alone, no file read
};

// The reference's registry itself ("https://registry-1.docker.io/v2" for
// docker.io); plain HTTP when plain_http.
Endpoint UpstreamEndpoint(const Reference& ref, bool plain_http);

// A registries.conf rule applied to ref: its mirrors that the reference
// kind allows (pull-from-mirror, mirror-by-digest-only), then its location.
// kInvalidArgument when a rewritten name is no registry/repository;
// kUnauthorized when the rule blocks the image.
Result<std::vector<Endpoint>> EndpointsFromRule(const Reference& ref, const RegistryRule& rule, bool plain_http);

// hosts.toml's hosts in order, the server (or the registry) last. Hosts
// that can neither resolve nor pull are dropped; a tag reference with no
// host able to resolve is kInvalidArgument naming the file.
Result<std::vector<Endpoint>> EndpointsFromHosts(const Reference& ref, const HostsToml& hosts, bool plain_http);

// The rule above: reads registries.conf (RegistriesConfLookup) and the
// hosts directories. Errors name the file at fault.
Result<std::vector<Endpoint>> SelectEndpoints(const Reference& ref, bool plain_http, const EndpointOptions& options);

}  // namespace lazyroot
