#include "src/registry/registries_conf.h"

#include <dirent.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "src/registry/toml_document.h"

namespace lazyroot {
namespace {

using Limits = RegistriesConfLimits;

// containers/image parseLocation: trailing '/' trimmed, no scheme.
Result<std::string> ParseLocation(const std::string& in, const std::string& origin) {
  std::string s = in;
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.starts_with("http://") || s.starts_with("https://")) {
    return Status::InvalidArgument(origin + ": invalid location '" + in + "': URI schemes are not supported");
  }
  return s;
}

Result<RegistryMirror> ParseMirror(const toml::table& t, const std::string& origin, bool digest_only_registry) {
  RegistryMirror m;
  TomlReader r(t, origin + ": [[registry.mirror]]");
  std::string location, pull_from;
  LAZYROOT_RETURN_IF_ERROR(r.String("location", &location, Limits::kMaxString));
  LAZYROOT_RETURN_IF_ERROR(r.Bool("insecure", &m.insecure));
  LAZYROOT_RETURN_IF_ERROR(r.String("pull-from-mirror", &pull_from, Limits::kMaxString));
  LAZYROOT_ASSIGN_OR_RETURN(m.location, ParseLocation(location, origin));
  if (m.location.empty()) return Status::InvalidArgument(origin + ": a [[registry.mirror]] has no location");
  if (!pull_from.empty() && digest_only_registry) {
    return Status::InvalidArgument(origin + ": mirror " + m.location +
                                   ": pull-from-mirror cannot be combined with the registry's mirror-by-digest-only");
  }
  if (pull_from.empty() || pull_from == "all") {
    m.pull_from = RegistryMirror::PullFrom::kAll;
  } else if (pull_from == "digest-only") {
    m.pull_from = RegistryMirror::PullFrom::kDigestOnly;
  } else if (pull_from == "tag-only") {
    m.pull_from = RegistryMirror::PullFrom::kTagOnly;
  } else {
    return Status::InvalidArgument(origin + ": mirror " + m.location + ": unsupported pull-from-mirror value \"" +
                                   pull_from + "\" (all, digest-only or tag-only)");
  }
  return m;
}

Result<RegistryRule> ParseRegistry(const toml::table& t, const std::string& origin) {
  RegistryRule rule;
  rule.origin = origin;
  TomlReader r(t, origin + ": [[registry]]");
  std::string prefix, location, pull_from;
  LAZYROOT_RETURN_IF_ERROR(r.String("prefix", &prefix, Limits::kMaxString));
  LAZYROOT_RETURN_IF_ERROR(r.String("location", &location, Limits::kMaxString));
  LAZYROOT_RETURN_IF_ERROR(r.Bool("insecure", &rule.insecure));
  LAZYROOT_RETURN_IF_ERROR(r.Bool("blocked", &rule.blocked));
  LAZYROOT_RETURN_IF_ERROR(r.Bool("mirror-by-digest-only", &rule.mirror_by_digest_only));
  LAZYROOT_RETURN_IF_ERROR(r.String("pull-from-mirror", &pull_from, Limits::kMaxString));
  LAZYROOT_ASSIGN_OR_RETURN(rule.location, ParseLocation(location, origin));
  if (prefix.empty()) {
    if (rule.location.empty()) {
      return Status::InvalidArgument(origin + ": a [[registry]] has neither prefix nor location");
    }
    rule.prefix = rule.location;
  } else {
    LAZYROOT_ASSIGN_OR_RETURN(rule.prefix, ParseLocation(prefix, origin));
    // "/" is only slashes: it names no registry (an empty prefix would match every image).
    if (rule.prefix.empty()) {
      return Status::InvalidArgument(origin + ": [[registry]] prefix \"" + prefix + "\" names no registry");
    }
    if (!rule.prefix.starts_with("*.") && rule.location.empty()) {
      return Status::InvalidArgument(origin + ": [[registry]] prefix \"" + rule.prefix +
                                     "\": no location, and the prefix is not of the form *.example.com");
    }
  }
  if (rule.prefix.starts_with("*.") && rule.prefix.find_first_of("/@:") != std::string::npos) {
    return Status::InvalidArgument(origin + ": wildcard prefix \"" + rule.prefix +
                                   "\" must be of the form *.example.com (no namespace, port, tag or digest)");
  }
  if (rule.prefix.find('*', rule.prefix.starts_with("*.") ? 1 : 0) != std::string::npos) {
    return Status::InvalidArgument(origin + ": prefix \"" + rule.prefix +
                                   "\": '*' is allowed only as a leading \"*.\"");
  }
  if (!pull_from.empty()) {
    return Status::InvalidArgument(origin + ": [[registry]] " + rule.prefix +
                                   ": pull-from-mirror belongs in a [[registry.mirror]], not the registry");
  }
  const toml::node* mirrors = t.get("mirror");
  if (mirrors != nullptr) {
    const toml::array* arr = mirrors->as_array();
    if (arr == nullptr)
      return Status::InvalidArgument(origin + ": [[registry]] " + rule.prefix + ": mirror must be an array of tables");
    if (arr->size() > Limits::kMaxMirrors) {
      return Status::LimitExceeded(origin + ": [[registry]] " + rule.prefix + ": more than " +
                                   std::to_string(Limits::kMaxMirrors) + " mirrors");
    }
    for (const toml::node& n : *arr) {
      const toml::table* mt = n.as_table();
      if (mt == nullptr)
        return Status::InvalidArgument(origin + ": [[registry]] " + rule.prefix + ": a mirror is not a table");
      LAZYROOT_ASSIGN_OR_RETURN(RegistryMirror m, ParseMirror(*mt, origin, rule.mirror_by_digest_only));
      rule.mirrors.push_back(std::move(m));
    }
  }
  return rule;
}

// v1: [registries.insecure] registries = [...], [registries.block] registries = [...].
Status ParseV1(const toml::table& v1, const std::string& origin, RegistriesConf* conf) {
  std::map<std::string, RegistryRule> rules;
  for (const char* kind : {"insecure", "block"}) {
    const toml::node* section = v1.get(kind);
    if (section == nullptr) continue;
    const toml::table* st = section->as_table();
    if (st == nullptr) return Status::InvalidArgument(origin + ": [registries." + kind + "] is not a table");
    std::vector<std::string> list;
    LAZYROOT_RETURN_IF_ERROR(TomlReader(*st, origin + ": [registries." + kind + "]")
                                 .StringList("registries", &list, Limits::kMaxRegistries, Limits::kMaxString));
    for (const std::string& entry : list) {
      LAZYROOT_ASSIGN_OR_RETURN(std::string location, ParseLocation(entry, origin));
      if (location.empty()) continue;
      RegistryRule& rule = rules[location];
      rule.prefix = rule.location = location;
      rule.origin = origin;
      (std::string_view(kind) == "insecure" ? rule.insecure : rule.blocked) = true;
      if (rules.size() > Limits::kMaxRegistries) {
        return Status::LimitExceeded(origin + ": more than " + std::to_string(Limits::kMaxRegistries) + " registries");
      }
    }
  }
  for (auto& [prefix, rule] : rules) conf->registries.push_back(std::move(rule));
  return Status::Ok();
}

bool IsFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::string> ReadConfigFile(const std::string& path) { return ReadSmallConfigFile(path, Limits::kMaxFileBytes); }

}  // namespace

std::string SysconfDir() {
  const char* e = std::getenv("LAZYROOT_SYSCONFDIR");
  return e != nullptr && *e != '\0' ? std::string(e) : std::string("/etc");
}

Result<RegistriesConf> ParseRegistriesConf(std::string_view bytes, const std::string& origin) {
  if (bytes.size() > Limits::kMaxFileBytes) {
    return Status::LimitExceeded(origin + ": larger than " + std::to_string(Limits::kMaxFileBytes) + " bytes");
  }
  LAZYROOT_ASSIGN_OR_RETURN(toml::table doc, ParseTomlDocument(bytes, origin));
  RegistriesConf conf;
  conf.files.push_back(origin);
  bool v2 = false;
  if (const toml::node* regs = doc.get("registry"); regs != nullptr) {
    v2 = true;
    const toml::array* arr = regs->as_array();
    if (arr == nullptr) return Status::InvalidArgument(origin + ": registry must be an array of tables ([[registry]])");
    if (arr->size() > Limits::kMaxRegistries) {
      return Status::LimitExceeded(origin + ": more than " + std::to_string(Limits::kMaxRegistries) +
                                   " [[registry]] tables");
    }
    for (const toml::node& n : *arr) {
      const toml::table* t = n.as_table();
      if (t == nullptr) return Status::InvalidArgument(origin + ": a [[registry]] entry is not a table");
      LAZYROOT_ASSIGN_OR_RETURN(RegistryRule rule, ParseRegistry(*t, origin));
      conf.registries.push_back(std::move(rule));
    }
  }
  for (const char* key : {"unqualified-search-registries", "credential-helpers", "short-name-mode", "aliases"}) {
    if (doc.contains(key)) v2 = true;
  }
  if (const toml::node* v1 = doc.get("registries"); v1 != nullptr) {
    if (v2) return Status::InvalidArgument(origin + ": mixes the v1 [registries.*] format with v2 settings");
    const toml::table* t = v1->as_table();
    if (t == nullptr) return Status::InvalidArgument(origin + ": registries is not a table");
    LAZYROOT_RETURN_IF_ERROR(ParseV1(*t, origin, &conf));
  }
  // One rule per prefix, the first one winning, sorted (containers/image
  // postProcessRegistries); conflicting insecure/blocked settings for one
  // location are refused as it refuses them.
  std::map<std::string, const RegistryRule*> by_location;
  for (const RegistryRule& r : conf.registries) {
    const std::string& key = r.location.empty() ? r.prefix : r.location;
    auto [it, inserted] = by_location.emplace(key, &r);
    if (!inserted && (it->second->insecure != r.insecure || it->second->blocked != r.blocked)) {
      return Status::InvalidArgument(origin + ": registry '" + key + "' is defined more than once with conflicting " +
                                     (it->second->insecure != r.insecure ? "'insecure'" : "'blocked'") + " settings");
    }
  }
  std::map<std::string, RegistryRule> unique;
  for (RegistryRule& r : conf.registries) unique.emplace(r.prefix, std::move(r));
  conf.registries.clear();
  for (auto& [prefix, rule] : unique) conf.registries.push_back(std::move(rule));
  return conf;
}

Status MergeRegistriesConf(RegistriesConf* base, RegistriesConf later) {
  std::map<std::string, RegistryRule> merged;
  for (RegistryRule& r : base->registries) merged[r.prefix] = std::move(r);
  for (RegistryRule& r : later.registries) merged[r.prefix] = std::move(r);
  if (merged.size() > Limits::kMaxRegistries) {
    return Status::LimitExceeded("registries.conf: more than " + std::to_string(Limits::kMaxRegistries) +
                                 " [[registry]] tables in " + std::to_string(base->files.size() + later.files.size()) +
                                 " files");
  }
  base->registries.clear();
  for (auto& [prefix, rule] : merged) base->registries.push_back(std::move(rule));
  for (std::string& f : later.files) base->files.push_back(std::move(f));
  return Status::Ok();
}

RegistriesConfPaths RegistriesConfLookup(const std::string& explicit_file) {
  RegistriesConfPaths p;
  if (!explicit_file.empty()) {
    p.main = explicit_file;
    p.main_required = true;
    return p;
  }
  std::string user;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x == '/') {
    user = x;
  } else if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    user = std::string(h) + "/.config";
  }
  const std::string user_file = user.empty() ? "" : user + "/containers/registries.conf";
  const std::string user_dir = user.empty() ? "" : user + "/containers/registries.conf.d";
  const std::string sys = SysconfDir();
  const char* env = std::getenv("CONTAINERS_REGISTRIES_CONF");
  if (env == nullptr) env = std::getenv("REGISTRIES_CONFIG_PATH");
  if (env != nullptr && *env != '\0') {
    p.main = env;
    p.main_required = true;
  } else if (!user_file.empty() && IsFile(user_file)) {
    // containers/image: a user registries.conf replaces the system one and
    // its drop-ins.
    p.main = user_file;
    p.dropin_dirs.push_back(user_dir);
    return p;
  } else {
    p.main = sys + "/containers/registries.conf";
  }
  p.dropin_dirs.push_back(sys + "/containers/registries.conf.d");
  if (!user_dir.empty()) p.dropin_dirs.push_back(user_dir);
  return p;
}

Result<RegistriesConf> LoadRegistriesConf(const RegistriesConfPaths& paths) {
  RegistriesConf conf;
  if (!paths.main.empty()) {
    auto bytes = ReadConfigFile(paths.main);
    if (bytes.ok()) {
      LAZYROOT_ASSIGN_OR_RETURN(conf, ParseRegistriesConf(*bytes, paths.main));
    } else if (bytes.status().code() != ErrorCode::kNotFound || paths.main_required) {
      return bytes.status();
    }
  }
  for (const std::string& dir : paths.dropin_dirs) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) continue;  // most systems have none
    std::vector<std::string> names;
    bool too_many = false;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.size() <= 5 || !name.ends_with(".conf")) continue;
      if (names.size() >= Limits::kMaxDropIns) {
        too_many = true;
        break;
      }
      names.push_back(std::move(name));
    }
    ::closedir(d);
    if (too_many) {
      return Status::LimitExceeded(dir + ": more than " + std::to_string(Limits::kMaxDropIns) + " *.conf files");
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = dir + "/" + name;
      if (!IsFile(path)) continue;
      auto bytes = ReadConfigFile(path);
      if (!bytes.ok()) {
        if (bytes.status().code() == ErrorCode::kNotFound) continue;  // removed since the listing
        return bytes.status();
      }
      LAZYROOT_ASSIGN_OR_RETURN(RegistriesConf dropin, ParseRegistriesConf(*bytes, path));
      LAZYROOT_RETURN_IF_ERROR(MergeRegistriesConf(&conf, std::move(dropin)));
    }
  }
  return conf;
}

long MatchPrefix(const std::string& name, const std::string& prefix) {
  if (prefix.starts_with("*.")) {
    const std::string_view dot_domain = std::string_view(prefix).substr(1);  // ".example.com"
    size_t at = name.find(dot_domain);
    if (at == std::string::npos || at == 0 || name.substr(0, at).find('/') != std::string::npos) return -1;
    size_t end = at + dot_domain.size();
    if (end == name.size() || name[end] == ':' || name[end] == '/' || name[end] == '@') return static_cast<long>(end);
    return -1;
  }
  if (prefix.empty() || name.size() < prefix.size() || !name.starts_with(prefix)) return -1;
  if (name.size() == prefix.size()) return static_cast<long>(prefix.size());
  char c = name[prefix.size()];
  return c == ':' || c == '/' || c == '@' ? static_cast<long>(prefix.size()) : -1;
}

const RegistryRule* FindRegistryRule(const RegistriesConf& conf, const std::string& name) {
  const RegistryRule* best = nullptr;
  for (const RegistryRule& r : conf.registries) {
    if (MatchPrefix(name, r.prefix) < 0) continue;
    if (best == nullptr || r.prefix.size() > best->prefix.size()) best = &r;
  }
  return best;
}

}  // namespace lazyroot
