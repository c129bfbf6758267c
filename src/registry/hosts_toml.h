// containerd's hosts.toml (docs/hosts.md; core/remotes/docker/config):
// per registry, the hosts to try in order, each with its capabilities
// (pull, resolve), TLS material, extra headers and API root, then `server`
// (the registry itself when absent). Parsing is pure (bytes -> hosts,
// fuzzed); HostsDirFor/LoadHostsDir find and read the directory of one
// registry as containerd does: ROOT/host_port_, ROOT/host:port, then
// ROOT/_default, the first that exists; without a hosts.toml in it, its
// docker-style *.crt / *.cert / *.key files configure the registry itself.
// Value types; thread-compatible.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/status.h"

namespace lazyroot {

struct HostsTomlLimits {
  static constexpr size_t kMaxFileBytes = 1 << 20;
  static constexpr size_t kMaxHosts = 64;         // [host."…"] tables
  static constexpr size_t kMaxString = 4096;      // server, host key, paths, header values
  static constexpr size_t kMaxHeaders = 64;       // header names per host
  static constexpr size_t kMaxHeaderValues = 16;  // values per header name
  static constexpr size_t kMaxFiles = 16;         // ca files, client pairs per host
};

struct HostEntry {
  std::string scheme = "https";  // "https" or "http"
  std::string host;              // "host[:port]"; empty: the registry itself (no `server`)
  std::string path = "/v2";      // API root: "/v2", "/prefix/v2", or the override_path as written
  bool pull = true, resolve = true;
  std::optional<bool> skip_verify;
  std::vector<std::string> ca_files;                              // absolute paths
  std::vector<std::pair<std::string, std::string>> client_pairs;  // cert, key ("": key in the cert file)
  std::vector<std::string> headers;                               // "Name: value", in key order
};

struct HostsToml {
  std::string file;              // hosts.toml's path (or the directory, for certificate files alone)
  std::vector<HostEntry> hosts;  // [host."…"] in file order, then the server entry last
};

// Parses hosts.toml bytes; relative ca/client paths are taken from `dir`.
// kInvalidArgument naming `origin` for a TOML error, a value of the wrong
// type, an unknown capability, a server or host that is no http(s) URL, a
// header name or value that could not be sent as one HTTP header line;
// kLimitExceeded past HostsTomlLimits.
Result<HostsToml> ParseHostsToml(std::string_view bytes, const std::string& dir, const std::string& origin);

// containerd's directory name for a host: "host:port" -> "host_port_".
std::string HostDirectoryName(const std::string& host);

// The directory configuring `host` ("docker.io", "127.0.0.1:5000") under
// root, "" when there is none. `allow_default`: _default counts.
std::string HostsDirFor(const std::string& root, const std::string& host, bool allow_default = true);

// Reads dir/hosts.toml, or, without one, the docker-style certificate files
// of dir as the configuration of the registry itself.
Result<HostsToml> LoadHostsDir(const std::string& dir);

}  // namespace lazyroot
