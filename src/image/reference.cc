#include "src/image/reference.h"

#include <string>

#include "index/ascii.h"
#include "index/sha256.h"

namespace lazyroot {
namespace {

constexpr std::string_view kDockerHub = "docker.io";
constexpr std::string_view kLegacyDockerHub = "index.docker.io";
constexpr std::string_view kDockerHubApiHost = "registry-1.docker.io";
constexpr std::string_view kOfficialPrefix = "library/";
constexpr std::string_view kDefaultTag = "latest";
// distribution/reference RepositoryNameTotalLengthMax; like distribution we
// apply it to the repository path (with "library/"), not to the domain.
constexpr size_t kMaxRepositoryLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsWordChar(char c) { return IsAlnum(c) || c == '_'; }

bool HasUpper(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

// path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
bool IsPathComponent(std::string_view s) {
  size_t i = 0;
  auto alnum_run = [&] {
    size_t start = i;
    while (i < s.size() && IsLowerAlnum(s[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

bool IsRepositoryPath(std::string_view path) {
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view component = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!IsPathComponent(component)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainComponent(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

// domain := ( domain-component ("." domain-component)* | "[" [a-fA-F0-9:]+ "]" ) [ ":" [0-9]+ ]
bool IsDomain(std::string_view s) {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : s.substr(1, close - 1)) {
      if (!IsHex(c) && c != ':') return false;
    }
    host = {};
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else {
    size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (port.empty()) return false;
    }
    size_t start = 0;
    while (true) {
      size_t dot = host.find('.', start);
      std::string_view component = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
      if (!IsDomainComponent(component)) return false;
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  for (char c : port) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// distribution/reference splitDockerDomain: a first component with '.' or
// ':', or "localhost", names a registry (so does one with upper case).
bool LooksLikeDomain(std::string_view first) {
  return first == "localhost" || first.find_first_of(".:") != std::string_view::npos;
}

// tag := [\w][\w.-]{0,127}
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > kMaxTagLength || !IsWordChar(s.front())) return false;
  for (char c : s) {
    if (!IsWordChar(c) && c != '.' && c != '-') return false;
  }
  return true;
}

Status Invalid(std::string_view text, std::string_view why) {
  std::string m = "invalid reference \"";
  m.append(text);
  m += "\": ";
  m.append(why);
  return Status::InvalidArgument(std::move(m));
}

// skopeo's "oci:path[:reference]": the reference is what follows the last ':'
// when that part holds no '/', so directories may contain ':' and '/'.
Result<Reference> ParseOciLayout(std::string_view text, std::string_view rest,
                                 Reference::Transport transport = Reference::Transport::kOciLayout) {
  const bool archive = transport == Reference::Transport::kOciArchive;
  Reference ref;
  ref.transport = transport;
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.substr(colon + 1).find('/') == std::string_view::npos) {
    ref.layout_dir = std::string(rest.substr(0, colon));
    ref.tag = std::string(rest.substr(colon + 1));
    // "oci:a:b:" would print as "oci:a:b", which reads back as tag "b".
    if (ref.tag.empty()) {
      return Invalid(text, archive ? "empty tag after ':' (write oci-archive:FILE or oci-archive:FILE:TAG)"
                                   : "empty tag after ':' (write oci:DIR or oci:DIR:TAG)");
    }
  } else {
    ref.layout_dir = std::string(rest);
  }
  if (ref.layout_dir.empty()) return Invalid(text, archive ? "missing archive file" : "missing OCI layout directory");
  return ref;
}

Result<Reference> ParseRegistryReference(std::string_view text, std::string_view s);

// skopeo's "docker-archive:path[:reference]": the path ends at the first ':';
// the reference is a tagged docker reference (no digest) or "@N".
Result<Reference> ParseDockerArchive(std::string_view text, std::string_view rest) {
  Reference ref;
  ref.transport = Reference::Transport::kDockerArchive;
  size_t colon = rest.find(':');
  ref.layout_dir = std::string(rest.substr(0, colon));
  if (ref.layout_dir.empty()) return Invalid(text, "missing archive file");
  if (colon == std::string_view::npos) return ref;
  std::string_view r = rest.substr(colon + 1);
  if (r.empty()) return Invalid(text, "empty reference after ':' (write docker-archive:FILE or docker-archive:FILE:REF)");
  if (r.starts_with("@")) {
    std::string_view n = r.substr(1);
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string_view::npos ||
        (n.size() > 1 && n[0] == '0')) {
      return Invalid(text, "want @N, a decimal image index, after the archive file");
    }
    ref.archive_ref = std::string(r);
    return ref;
  }
  // ToString writes "docker://" before a name that would read as another
  // transport ("oci:5000/x"): read it back the same way.
  if (r.starts_with("docker://")) r.remove_prefix(9);
  auto docker = ParseRegistryReference(text, r);
  if (!docker.ok()) return docker.status();
  if (!docker->digest.empty()) return Invalid(text, "a docker-archive reference cannot name a digest");
  ref.archive_ref = docker->ToString();
  return ref;
}

Result<Reference> ParseRegistryReference(std::string_view text, std::string_view s) {
  if (s.empty()) return Invalid(text, "repository name is empty");
  if (s.size() == 64 && IsSha256Hex(s)) {
    return Invalid(text, "repository name cannot be a 64-character hexadecimal string");
  }
  Reference ref;

  std::string_view name = s;
  if (size_t at = s.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(s.substr(at + 1));
    name = s.substr(0, at);
    if (Status st = ValidateDigest(ref.digest); !st.ok()) return Invalid(text, st.message());
  }
  size_t last_slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(name.substr(colon + 1));
    name = name.substr(0, colon);
    if (!IsTag(ref.tag)) {
      return Invalid(text, "invalid tag \"" + ref.tag + "\" (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})");
    }
  }
  if (name.empty()) return Invalid(text, "repository name is empty");

  // Domain detection as in distribution/reference splitDockerDomain.
  std::string_view domain = kDockerHub;
  std::string path;
  size_t slash = name.find('/');
  if (slash == std::string_view::npos) {
    path = std::string(name);
  } else {
    std::string_view first = name.substr(0, slash);
    if (LooksLikeDomain(first) || HasUpper(first)) {
      domain = first;
      path = std::string(name.substr(slash + 1));
    } else {
      path = std::string(name);
    }
  }
  if (!IsDomain(domain)) return Invalid(text, "invalid registry host \"" + std::string(domain) + "\"");
  // Host names are case-insensitive, so the canonical form is lower case —
  // unless the upper case is the only thing that makes the first component
  // a host ("WorkingDir5xz/arm64/v8"): lower-cased, it would read back as a
  // Docker Hub path and name (and store) another image. Such a host is kept
  // as written, as docker does.
  ref.registry = AsciiLower(domain);
  if (!LooksLikeDomain(ref.registry)) ref.registry = std::string(domain);
  if (ref.registry == kLegacyDockerHub) ref.registry = std::string(kDockerHub);
  if (ref.registry == kDockerHub && path.find('/') == std::string::npos) path.insert(0, kOfficialPrefix);

  if (!IsRepositoryPath(path)) {
    if (IsRepositoryPath(AsciiLower(path))) return Invalid(text, "repository name must be lowercase");
    return Invalid(text, "invalid repository name \"" + path + "\"");
  }
  if (path.size() > kMaxRepositoryLength) {
    return Invalid(text, "repository name longer than " + std::to_string(kMaxRepositoryLength) + " characters");
  }
  ref.repository = std::move(path);
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = std::string(kDefaultTag);
  return ref;
}

}  // namespace

std::string Reference::ToString() const {
  std::string out;
  if (transport == Transport::kOciLayout || transport == Transport::kOciArchive) {
    out = (transport == Transport::kOciLayout ? "oci:" : "oci-archive:") + layout_dir;
    if (!tag.empty()) out += ":" + tag;
    return out;
  }
  if (transport == Transport::kDockerArchive) {
    out = "docker-archive:" + layout_dir;
    if (!archive_ref.empty()) out += ":" + archive_ref;
    return out;
  }
  out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  // A registry named "oci" (with a port) would read back as an OCI layout.
  if (out.starts_with("oci:") || out.starts_with("oci-archive:") || out.starts_with("docker-archive:")) {
    out.insert(0, "docker://");
  }
  return out;
}

std::string Reference::ManifestSelector() const { return digest.empty() ? tag : digest; }

std::string Reference::ApiHost() const { return registry == kDockerHub ? std::string(kDockerHubApiHost) : registry; }

Result<Reference> ParseReference(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("invalid reference \"\": reference is empty");
  std::string_view rest = text;
  if (rest.starts_with("oci:")) return ParseOciLayout(text, rest.substr(4));
  if (rest.starts_with("oci-archive:")) return ParseOciLayout(text, rest.substr(12), Reference::Transport::kOciArchive);
  if (rest.starts_with("docker-archive:")) return ParseDockerArchive(text, rest.substr(15));
  bool plain_http = false;
  if (rest.starts_with("docker://")) {
    rest.remove_prefix(9);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
    plain_http = true;
  }
  LAZYROOT_ASSIGN_OR_RETURN(Reference ref, ParseRegistryReference(text, rest));
  ref.plain_http = plain_http;
  return ref;
}

Status ValidateDigest(std::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::InvalidArgument("invalid digest \"" + std::string(digest) + "\": want sha256:<64 hex digits>");
  }
  std::string_view algorithm = digest.substr(0, colon);
  std::string_view hex = digest.substr(colon + 1);
  if (algorithm != "sha256") {
    return Status::InvalidArgument("invalid digest \"" + std::string(digest) + "\": unsupported algorithm \"" +
                                   std::string(algorithm) + "\" (only sha256 is supported)");
  }
  if (hex.size() != 64) {
    return Status::InvalidArgument("invalid digest \"" + std::string(digest) + "\": want 64 hex digits, got " +
                                   std::to_string(hex.size()) + " characters");
  }
  if (!IsSha256Hex(hex)) {
    return Status::InvalidArgument("invalid digest \"" + std::string(digest) +
                                   "\": the hex part must be lower-case [0-9a-f]");
  }
  return Status::Ok();
}

}  // namespace lazyroot
