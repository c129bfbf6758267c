// Fuzzes containerd's hosts.toml: ParseHostsToml, then the endpoints it
// gives a tag and a digest reference. Whatever a file says, the server
// entry comes last, hosts stay within their bounds, every header is one
// "Name: value" line (no CR, LF or NUL: no header injection), and every
// endpoint is an http(s) URL whose capabilities allow what it is asked.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "src/registry/endpoints.h"
#include "src/registry/hosts_toml.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto hosts = ParseHostsToml(in, "/etc/containerd/certs.d/docker.io", "fuzz-hosts.toml");
  if (!hosts.ok()) {
    CheckError(hosts.status());
    return 0;
  }
  FUZZ_CHECK(!hosts->hosts.empty() && hosts->hosts.size() <= HostsTomlLimits::kMaxHosts + 1);
  for (const HostEntry& h : hosts->hosts) {
    FUZZ_CHECK(h.scheme == "http" || h.scheme == "https");
    FUZZ_CHECK(h.ca_files.size() <= HostsTomlLimits::kMaxFiles && h.client_pairs.size() <= HostsTomlLimits::kMaxFiles);
    FUZZ_CHECK(h.headers.size() <= HostsTomlLimits::kMaxHeaders * HostsTomlLimits::kMaxHeaderValues);
    for (const std::string& line : h.headers) {
      FUZZ_CHECK(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
      FUZZ_CHECK(line.find(": ") != std::string::npos && line.find(": ") > 0);
    }
    for (const std::string& f : h.ca_files) FUZZ_CHECK(f.starts_with("/"));
  }
  for (const char* text : {"alpine:3",
                           "docker.io/library/alpine@sha256:"
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                           "127.0.0.1:5000/demo/app:v1"}) {
    auto ref = ParseReference(text);
    FUZZ_CHECK(ref.ok());
    auto eps = EndpointsFromHosts(*ref, *hosts, false);
    if (!eps.ok()) {
      CheckError(eps.status());
      continue;
    }
    bool resolves = false;
    for (const Endpoint& e : *eps) {
      FUZZ_CHECK(e.api_root.starts_with("https://") || e.api_root.starts_with("http://"));
      FUZZ_CHECK(e.pull || e.resolve);
      FUZZ_CHECK(!e.registry.empty() && e.repository == ref->repository);
      resolves = resolves || e.resolve;
      (void)e.DescribeWithOrigin();
    }
    FUZZ_CHECK(!ref->digest.empty() || resolves);
  }
  return 0;
}
