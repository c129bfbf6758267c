#include "src/registry/hosts_toml.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "src/registry/toml_document.h"

namespace lazyroot {
namespace {

using Limits = HostsTomlLimits;

std::string AbsPath(const std::string& p, const std::string& dir) {
  if (p.starts_with("/") || dir.empty()) return p;
  return dir + "/" + p;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// RFC 9110 token characters: what a header name may hold.
bool IsHeaderName(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// A header value must stay one line: no CR, LF or NUL (no header injection).
bool IsHeaderValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// "https://host:port/path" (a scheme-less value gets https://, as in
// containerd's parseHostConfig) -> scheme, host, API root path.
Status ParseServer(const std::string& value, bool override_path, const std::string& where, HostEntry* h) {
  std::string url = value.starts_with("http") ? value : "https://" + value;
  size_t sep = url.find("://");
  if (sep == std::string::npos) return Status::InvalidArgument(where + ": \"" + value + "\" is not an http(s) URL");
  h->scheme = url.substr(0, sep);
  if (h->scheme != "http" && h->scheme != "https") {
    return Status::InvalidArgument(where + ": \"" + value + "\": the scheme must be http or https");
  }
  std::string rest = url.substr(sep + 3);
  size_t slash = rest.find('/');
  h->host = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  const bool host_chars = std::all_of(h->host.begin(), h->host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == ':' || c == '[' ||
           c == ']';
  });
  if (h->host.empty() || !host_chars || h->host.back() == ':' || h->host.front() == ':') {
    return Status::InvalidArgument(where + ": \"" + value + "\": no usable host");
  }
  if (path.find_first_of("?# \t\r\n") != std::string::npos ||
      path.find(std::string_view("\0", 1)) != std::string::npos) {
    return Status::InvalidArgument(where + ": \"" + value + "\": the path may hold no query, fragment or blank");
  }
  // path.Clean, enough of it: no repeated or trailing '/'.
  std::string clean;
  for (char c : path) {
    if (c == '/' && !clean.empty() && clean.back() == '/') continue;
    clean += c;
  }
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  if (clean == "/") clean.clear();
  if (override_path) {
    h->path = clean;
  } else {
    h->path = clean.ends_with("/v2") ? clean : clean + "/v2";
  }
  return Status::Ok();
}

Status ParseHostConfig(const toml::table& t, const std::string& server, const std::string& dir,
                       const std::string& where, HostEntry* h) {
  TomlReader r(t, where);
  bool override_path = false;
  LAZYROOT_RETURN_IF_ERROR(r.Bool("override_path", &override_path));
  if (!server.empty()) LAZYROOT_RETURN_IF_ERROR(ParseServer(server, override_path, where, h));

  std::vector<std::string> caps;
  bool has_caps = false;
  LAZYROOT_RETURN_IF_ERROR(r.StringList("capabilities", &caps, 8, Limits::kMaxString, &has_caps));
  if (has_caps && !caps.empty()) {
    h->pull = h->resolve = false;
    for (std::string c : caps) {
      std::transform(c.begin(), c.end(), c.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (c == "pull") {
        h->pull = true;
      } else if (c == "resolve") {
        h->resolve = true;
      } else if (c != "push" && c != "referrers") {
        return Status::InvalidArgument(where + ": unknown capability \"" + c + "\" (pull, resolve, push, referrers)");
      }
    }
  }
  if (const toml::node* n = t.get("skip_verify"); n != nullptr) {
    bool v = false;
    LAZYROOT_RETURN_IF_ERROR(r.Bool("skip_verify", &v));
    h->skip_verify = v;
  }
  std::vector<std::string> cas;
  LAZYROOT_RETURN_IF_ERROR(r.StringList("ca", &cas, Limits::kMaxFiles, Limits::kMaxString));
  for (const std::string& ca : cas) h->ca_files.push_back(AbsPath(ca, dir));

  // client: "file" | ["file", …] | [["cert", "key"], …]
  if (const toml::node* n = t.get("client"); n != nullptr) {
    const std::string cw = where + ": client";
    if (n->is_string()) {
      LAZYROOT_ASSIGN_OR_RETURN(std::string f, TomlString(*n, cw, Limits::kMaxString));
      h->client_pairs.emplace_back(AbsPath(f, dir), "");
    } else if (const toml::array* arr = n->as_array(); arr != nullptr) {
      if (arr->size() > Limits::kMaxFiles) {
        return Status::LimitExceeded(cw + ": more than " + std::to_string(Limits::kMaxFiles) + " items");
      }
      for (const toml::node& item : *arr) {
        if (item.is_string()) {
          LAZYROOT_ASSIGN_OR_RETURN(std::string f, TomlString(item, cw, Limits::kMaxString));
          h->client_pairs.emplace_back(AbsPath(f, dir), "");
          continue;
        }
        const toml::array* pair = item.as_array();
        if (pair == nullptr || pair->size() != 2) {
          return Status::InvalidArgument(cw + " entries must be a file or a [cert, key] pair");
        }
        LAZYROOT_ASSIGN_OR_RETURN(std::string cert, TomlString(*pair->get(0), cw, Limits::kMaxString));
        LAZYROOT_ASSIGN_OR_RETURN(std::string key, TomlString(*pair->get(1), cw, Limits::kMaxString));
        h->client_pairs.emplace_back(AbsPath(cert, dir), AbsPath(key, dir));
      }
    } else {
      return Status::InvalidArgument(cw + " must be a file, a list of files or a list of [cert, key] pairs");
    }
  }

  if (const toml::node* n = t.get("header"); n != nullptr) {
    const toml::table* ht = n->as_table();
    if (ht == nullptr) return Status::InvalidArgument(where + ": header must be a table");
    if (ht->size() > Limits::kMaxHeaders) {
      return Status::LimitExceeded(where + ": more than " + std::to_string(Limits::kMaxHeaders) + " headers");
    }
    for (auto&& [k, v] : *ht) {
      const std::string name(k.str());
      const std::string hw = where + ": header " + name;
      if (!IsHeaderName(name) || name.size() > 256) return Status::InvalidArgument(hw + ": not a valid header name");
      std::vector<std::string> values;
      if (v.is_string()) {
        LAZYROOT_ASSIGN_OR_RETURN(std::string s, TomlString(v, hw, Limits::kMaxString));
        values.push_back(std::move(s));
      } else if (const toml::array* arr = v.as_array(); arr != nullptr) {
        if (arr->size() > Limits::kMaxHeaderValues) {
          return Status::LimitExceeded(hw + ": more than " + std::to_string(Limits::kMaxHeaderValues) + " values");
        }
        for (const toml::node& item : *arr) {
          LAZYROOT_ASSIGN_OR_RETURN(std::string s, TomlString(item, hw, Limits::kMaxString));
          values.push_back(std::move(s));
        }
      } else {
        return Status::InvalidArgument(hw + " must be a string or an array of strings");
      }
      for (const std::string& s : values) {
        if (!IsHeaderValue(s)) return Status::InvalidArgument(hw + ": a value holds a line break or NUL");
        h->headers.push_back(name + ": " + s);
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<HostsToml> ParseHostsToml(std::string_view bytes, const std::string& dir, const std::string& origin) {
  if (bytes.size() > Limits::kMaxFileBytes) {
    return Status::LimitExceeded(origin + ": larger than " + std::to_string(Limits::kMaxFileBytes) + " bytes");
  }
  LAZYROOT_ASSIGN_OR_RETURN(toml::table doc, ParseTomlDocument(bytes, origin));
  HostsToml out;
  out.file = origin;
  if (const toml::node* hosts = doc.get("host"); hosts != nullptr) {
    const toml::table* ht = hosts->as_table();
    if (ht == nullptr) return Status::InvalidArgument(origin + ": host must be a table of [host.\"URL\"] tables");
    if (ht->size() > Limits::kMaxHosts) {
      return Status::LimitExceeded(origin + ": more than " + std::to_string(Limits::kMaxHosts) + " hosts");
    }
    // toml++ keeps keys sorted; containerd tries hosts in the order the
    // file lists them, which the tables' source positions still tell.
    struct Item {
      toml::source_position at;
      std::string key;
      const toml::table* table;
    };
    std::vector<Item> items;
    for (auto&& [k, v] : *ht) {
      const toml::table* t = v.as_table();
      if (t == nullptr)
        return Status::InvalidArgument(origin + ": host \"" + std::string(k.str()) + "\" must be a table");
      if (k.str().size() > Limits::kMaxString) {
        return Status::LimitExceeded(origin + ": a host key is longer than " + std::to_string(Limits::kMaxString) +
                                     " bytes");
      }
      items.push_back(Item{v.source().begin, std::string(k.str()), t});
    }
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      return a.at.line != b.at.line ? a.at.line < b.at.line : a.at.column < b.at.column;
    });
    for (const Item& it : items) {
      HostEntry h;
      if (it.key.empty()) return Status::InvalidArgument(origin + ": an empty [host.\"\"] key");
      LAZYROOT_RETURN_IF_ERROR(ParseHostConfig(*it.table, it.key, dir, origin + ": [host.\"" + it.key + "\"]", &h));
      out.hosts.push_back(std::move(h));
    }
  }
  HostEntry server;
  std::string server_url;
  LAZYROOT_RETURN_IF_ERROR(TomlReader(doc, origin).String("server", &server_url, Limits::kMaxString));
  LAZYROOT_RETURN_IF_ERROR(
      ParseHostConfig(doc, server_url, dir, origin + (server_url.empty() ? "" : ": server"), &server));
  if (server_url.empty()) {
    // containerd: the registry itself, with every capability.
    server.host.clear();
    server.path = "/v2";
    server.pull = server.resolve = true;
  }
  out.hosts.push_back(std::move(server));
  return out;
}

std::string HostDirectoryName(const std::string& host) {
  size_t colon = host.rfind(':');
  if (colon == std::string::npos || colon == 0) return host;
  return host.substr(0, colon) + "_" + host.substr(colon + 1) + "_";
}

std::string HostsDirFor(const std::string& root, const std::string& host, bool allow_default) {
  if (root.empty() || host.empty() || host.find('/') != std::string::npos || host == "." || host == "..") return "";
  std::vector<std::string> candidates;
  if (HostDirectoryName(host) != host) candidates.push_back(root + "/" + HostDirectoryName(host));
  candidates.push_back(root + "/" + host);
  if (allow_default) candidates.push_back(root + "/_default");
  for (const std::string& c : candidates) {
    if (IsDir(c)) return c;
  }
  return "";
}

Result<HostsToml> LoadHostsDir(const std::string& dir) {
  const std::string file = dir + "/hosts.toml";
  auto bytes = ReadSmallConfigFile(file, Limits::kMaxFileBytes);
  if (bytes.ok() && !bytes->empty()) return ParseHostsToml(*bytes, dir, file);
  if (!bytes.ok() && bytes.status().code() != ErrorCode::kNotFound) return bytes.status();
  // containerd's loadCertFiles: *.crt are CAs, *.cert (+ .key) client pairs.
  HostsToml out;
  out.file = dir;
  HostEntry self;
  self.host.clear();
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str()); d != nullptr) {
    while (dirent* e = ::readdir(d)) {
      if (names.size() >= 2 * Limits::kMaxFiles) break;
      std::string n = e->d_name;
      if (n.ends_with(".crt") || n.ends_with(".cert")) names.push_back(std::move(n));
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    if (n.ends_with(".crt")) {
      self.ca_files.push_back(dir + "/" + n);
    } else {
      std::string key = dir + "/" + n.substr(0, n.size() - 5) + ".key";
      struct stat st {};
      self.client_pairs.emplace_back(dir + "/" + n, ::stat(key.c_str(), &st) == 0 ? key : "");
    }
  }
  out.hosts.push_back(std::move(self));
  return out;
}

}  // namespace lazyroot
