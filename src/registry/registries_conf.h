// registries.conf (containers-registries.conf(5), the v2 format podman,
// skopeo and buildah read): the [[registry]] tables that rewrite, block or
// mirror a namespace. Parsing is pure (bytes -> rules, fuzzed); the file
// lookup (LoadRegistriesConf) follows containers/image's
// sysregistriesv2: one main file, then drop-ins in lexical order, a later
// [[registry]] with the same prefix replacing an earlier one.
// What is not read: unqualified-search-registries, [aliases] and
// short-name-mode (short names stay docker.io names), credential-helpers.
// Value types; thread-compatible.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace lazyroot {

// Budgets for one file (hostile input: a config file anyone may have written).
struct RegistriesConfLimits {
  static constexpr size_t kMaxFileBytes = 1 << 20;  // bigger files are refused unread
  static constexpr size_t kMaxRegistries = 1000;    // [[registry]] tables, all files together
  static constexpr size_t kMaxMirrors = 64;         // [[registry.mirror]] per registry
  static constexpr size_t kMaxString = 1024;        // prefix, location
  static constexpr size_t kMaxDropIns = 256;        // *.conf files in one registries.conf.d
};

struct RegistryMirror {
  std::string location;  // "host[:port][/namespace…]", no scheme
  bool insecure = false;
  enum class PullFrom { kAll, kDigestOnly, kTagOnly } pull_from = PullFrom::kAll;
};

struct RegistryRule {
  std::string prefix;    // "host[:port][/ns…]" or "*.example.com"; defaults to location
  std::string location;  // may be empty only with a "*." prefix (no rewrite)
  bool insecure = false;
  bool blocked = false;
  bool mirror_by_digest_only = false;
  std::vector<RegistryMirror> mirrors;
  std::string origin;  // the file that defined it (for messages)
};

struct RegistriesConf {
  std::vector<RegistryRule> registries;  // sorted by prefix, one per prefix
  std::vector<std::string> files;        // the files read, in order
};

// Parses one file's bytes; `origin` names it in errors and in each rule.
// kInvalidArgument naming the file (and line for TOML syntax) on what
// containers/image also refuses: a scheme in a location, a rule with
// neither prefix nor location, a bad wildcard, a bad pull-from-mirror, a
// value of the wrong type. The v1 format ([registries.insecure] /
// [registries.block] lists) becomes rules; [registries.search] is ignored.
// kLimitExceeded past RegistriesConfLimits.
Result<RegistriesConf> ParseRegistriesConf(std::string_view bytes, const std::string& origin);

// Merges `later` into `base`: a rule with the same prefix replaces the
// earlier one (containers/image updateWithConfigurationFrom).
Status MergeRegistriesConf(RegistriesConf* base, RegistriesConf later);

// Where the files are. `explicit_file` set: that file alone (--registries-conf).
// Otherwise containers/image's lookup: $CONTAINERS_REGISTRIES_CONF (or
// $REGISTRIES_CONFIG_PATH) must exist; else USER/containers/registries.conf
// if it exists (USER = $XDG_CONFIG_HOME, else $HOME/.config), then only
// USER/containers/registries.conf.d; else SYSCONF/containers/registries.conf
// (may be missing), then the drop-ins of SYSCONF/containers/registries.conf.d
// and USER/containers/registries.conf.d. SYSCONF is $LAZYROOT_SYSCONFDIR,
// else /etc.
struct RegistriesConfPaths {
  std::string main;
  bool main_required = false;
  std::vector<std::string> dropin_dirs;
};
RegistriesConfPaths RegistriesConfLookup(const std::string& explicit_file);

// Reads and merges the files of `paths`; a missing optional file or
// directory is skipped, every other read or parse error names the file.
Result<RegistriesConf> LoadRegistriesConf(const RegistriesConfPaths& paths);

// The rule with the longest prefix matching `name` ("host[:port]/repo", no
// tag or digest); nullptr when none does.
const RegistryRule* FindRegistryRule(const RegistriesConf& conf, const std::string& name);

// Length of `name` matched by `prefix` (containers/image refMatchingPrefix),
// or -1: "a.io/x" matches "a.io/x", "a.io/x/y", "a.io/x:tag", not "a.io/xy";
// "*.a.io" matches any subdomain of a.io (not a.io itself).
long MatchPrefix(const std::string& name, const std::string& prefix);

// The system-wide configuration root: $LAZYROOT_SYSCONFDIR or "/etc".
std::string SysconfDir();

}  // namespace lazyroot
