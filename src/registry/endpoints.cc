#include "src/registry/endpoints.h"

namespace lazyroot {
namespace {

bool IsHostComponent(const std::string& s) {
  return !s.empty() && (s.find_first_of(".:") != std::string::npos || s == "localhost");
}

// "location + what follows the prefix" -> registry and repository, as
// containers/image's rewriteReference (which requires a host first).
Result<Endpoint> RewrittenEndpoint(const Reference& ref, const std::string& location, const std::string& prefix,
                                   const std::string& origin) {
  const std::string name = ref.registry + "/" + ref.repository;
  long matched = MatchPrefix(name, prefix);
  if (matched < 0) return Status::InvalidArgument(origin + ": prefix \"" + prefix + "\" does not match " + name);
  const std::string rewritten = location.empty() ? name : location + name.substr(static_cast<size_t>(matched));
  size_t slash = rewritten.find('/');
  const std::string host = rewritten.substr(0, slash);
  if (slash == std::string::npos || !IsHostComponent(host)) {
    return Status::InvalidArgument(origin + ": location \"" + location + "\" rewrites " + name + " to \"" + rewritten +
                                   "\", which does not start with a registry host");
  }
  auto parsed = ParseReference(rewritten);
  if (!parsed.ok()) {
    return Status::InvalidArgument(origin + ": location \"" + location + "\" rewrites " + name + " to \"" + rewritten +
                                   "\": " + parsed.status().message());
  }
  // ParseReference also knows transports ("oci:DIR", "docker://"): a
  // location is a registry name and nothing else.
  if (parsed->transport != Reference::Transport::kRegistry || rewritten.find(":", slash) != std::string::npos ||
      rewritten.find("://") != std::string::npos || parsed->registry.empty() || parsed->repository.empty() ||
      !parsed->digest.empty()) {
    return Status::InvalidArgument(origin + ": location \"" + location + "\" rewrites " + name + " to \"" + rewritten +
                                   "\", which is no registry/repository name");
  }
  Endpoint e = UpstreamEndpoint(*parsed, false);
  e.origin = origin;
  return e;
}

}  // namespace

std::string Endpoint::Describe() const {
  // "registry/repo"; an API root below a path (a prefix, override_path) shows it.
  size_t host_start = api_root.find("://");
  size_t path_start = host_start == std::string::npos ? std::string::npos : api_root.find('/', host_start + 3);
  std::string path = path_start == std::string::npos ? "" : api_root.substr(path_start);
  if (path == "/v2") path.clear();
  return registry + path + "/" + repository;
}

std::string Endpoint::DescribeWithOrigin() const {
  std::string what = mirror ? "mirror" : "";
  if (!origin.empty()) what += (what.empty() ? "" : ", ") + origin;
  return Describe() + (what.empty() ? "" : " (" + what + ")");
}

Endpoint UpstreamEndpoint(const Reference& ref, bool plain_http) {
  Endpoint e;
  e.registry = ref.registry;
  e.repository = ref.repository;
  e.api_root = std::string(plain_http ? "http://" : "https://") + ref.ApiHost() + "/v2";
  return e;
}

Result<std::vector<Endpoint>> EndpointsFromRule(const Reference& ref, const RegistryRule& rule, bool plain_http) {
  const std::string name = ref.registry + "/" + ref.repository;
  const std::string origin = "registries.conf " + rule.origin;
  if (rule.blocked) {
    return Status::Unauthorized(name + ": blocked by the [[registry]] with prefix \"" + rule.prefix + "\" in " +
                                rule.origin);
  }
  const bool by_digest = !ref.digest.empty();
  std::vector<Endpoint> out;
  for (const RegistryMirror& m : rule.mirrors) {
    if (rule.mirror_by_digest_only && !by_digest) continue;
    if (m.pull_from == RegistryMirror::PullFrom::kDigestOnly && !by_digest) continue;
    if (m.pull_from == RegistryMirror::PullFrom::kTagOnly && by_digest) continue;
    LAZYROOT_ASSIGN_OR_RETURN(Endpoint e, RewrittenEndpoint(ref, m.location, rule.prefix, origin));
    e.mirror = true;
    if (m.insecure) {
      e.http_fallback = true;
      e.tls_verify = false;
    }
    out.push_back(std::move(e));
  }
  LAZYROOT_ASSIGN_OR_RETURN(Endpoint primary, RewrittenEndpoint(ref, rule.location, rule.prefix, origin));
  const bool rewritten = primary.registry != ref.registry || primary.repository != ref.repository;
  if (!rewritten) primary.origin.clear();  // the registry itself: the rule only blocks or mirrors
  if (plain_http) primary.api_root = "http://" + primary.api_root.substr(primary.api_root.find("://") + 3);
  if (rule.insecure) {
    primary.http_fallback = !plain_http;
    primary.tls_verify = false;
  }
  out.push_back(std::move(primary));
  return out;
}

Result<std::vector<Endpoint>> EndpointsFromHosts(const Reference& ref, const HostsToml& hosts, bool plain_http) {
  const std::string origin = "hosts.toml " + hosts.file;
  std::vector<Endpoint> out;
  const Endpoint upstream = UpstreamEndpoint(ref, plain_http);
  const std::string upstream_host = ref.ApiHost();
  bool can_resolve = false;
  for (const HostEntry& h : hosts.hosts) {
    if (!h.pull && !h.resolve) continue;
    Endpoint e;
    if (h.host.empty()) {
      e = upstream;
    } else {
      e.registry = h.host;
      e.repository = ref.repository;
      e.api_root = h.scheme + "://" + h.host + h.path;
      e.lenient_ping = !h.path.ends_with("/v2");
      // containerd's isProxy: a host other than the registry is told
      // which registry the image is from.
      e.mirror = h.host != ref.registry && h.host != upstream_host;
      if (e.mirror) e.query = "ns=" + ref.registry;
    }
    e.origin = origin;
    e.resolve = h.resolve;
    e.pull = h.pull;
    if (h.skip_verify) e.tls_verify = !*h.skip_verify;
    e.ca_files = h.ca_files;
    if (!h.client_pairs.empty()) {
      e.client_cert = h.client_pairs.front().first;
      e.client_key =
          h.client_pairs.front().second.empty() ? h.client_pairs.front().first : h.client_pairs.front().second;
    }
    e.headers = h.headers;
    can_resolve = can_resolve || e.resolve;
    out.push_back(std::move(e));
  }
  if (out.empty()) return Status::InvalidArgument(origin + ": no host may pull " + ref.ToString());
  if (ref.digest.empty() && !can_resolve) {
    return Status::InvalidArgument(origin + ": no host has the resolve capability, so the tag of " + ref.ToString() +
                                   " cannot be looked up (pull it by digest)");
  }
  return out;
}

Result<std::vector<Endpoint>> SelectEndpoints(const Reference& ref, bool plain_http, const EndpointOptions& options) {
  if (!options.read_config) return std::vector<Endpoint>{UpstreamEndpoint(ref, plain_http)};
  LAZYROOT_ASSIGN_OR_RETURN(RegistriesConf conf, LoadRegistriesConf(RegistriesConfLookup(options.registries_conf)));
  const RegistryRule* rule = FindRegistryRule(conf, ref.registry + "/" + ref.repository);
  if (rule != nullptr && rule->blocked) return EndpointsFromRule(ref, *rule, plain_http).status();

  const std::string system_root = SysconfDir() + "/containerd/certs.d";
  std::string dir;
  if (!options.hosts_dir.empty()) {
    dir = HostsDirFor(options.hosts_dir, ref.registry, true);
    if (dir.empty()) return std::vector<Endpoint>{UpstreamEndpoint(ref, plain_http)};
  } else {
    dir = HostsDirFor(system_root, ref.registry, /*allow_default=*/false);
    if (dir.empty() && rule != nullptr) return EndpointsFromRule(ref, *rule, plain_http);
    if (dir.empty()) dir = HostsDirFor(system_root, "_default", false);
  }
  if (dir.empty()) return std::vector<Endpoint>{UpstreamEndpoint(ref, plain_http)};
  LAZYROOT_ASSIGN_OR_RETURN(HostsToml hosts, LoadHostsDir(dir));
  return EndpointsFromHosts(ref, hosts, plain_http);
}

}  // namespace lazyroot
