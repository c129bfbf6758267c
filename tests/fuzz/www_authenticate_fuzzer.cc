// Fuzzes WWW-Authenticate parsing (ParseWwwAuthenticate). A header that
// parses must give lower-cased schemes and keys, and printing the challenges
// back in canonical form (every value quoted, '"' and '\' escaped; a scheme
// or key quoted when it is not a token) must parse to the same challenges. The realm's host goes through IsInternalAddress,
// as the token fetch does.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "src/registry/registry_auth.h"
#include "src/registry/www_authenticate.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

bool IsLower(const std::string& s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

// The parser accepts a quoted scheme or key (registries are sloppy), so a
// name that is not a token is printed quoted.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + '"';
}

std::string Name(const std::string& s) {
  static const std::string kTchar = "!#$%&'*+-.^_`|~";
  bool token = !s.empty();
  for (char c : s) {
    token = token && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || kTchar.find(c) != std::string::npos);
  }
  return token ? s : Quote(s);
}

std::string Print(const std::vector<lazyroot::AuthChallenge>& challenges) {
  std::string out;
  for (const auto& c : challenges) {
    if (!out.empty()) out += ", ";
    out += Name(c.scheme);
    if (!c.token68.empty()) {
      out += " " + c.token68;
      continue;
    }
    bool first = true;
    for (const auto& [key, value] : c.params) {
      out += first ? " " : ", ";
      first = false;
      out += Name(key) + "=" + Quote(value);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseWwwAuthenticate(in);
  if (!parsed.ok()) {
    CheckError(parsed.status());
    return 0;
  }
  for (const AuthChallenge& c : *parsed) {
    FUZZ_CHECK(IsLower(c.scheme));
    for (const auto& [key, value] : c.params) FUZZ_CHECK(IsLower(key));
    if (auto it = c.params.find("realm"); it != c.params.end()) (void)IsInternalAddress(it->second);
  }
  const std::string printed = Print(*parsed);
  auto again = ParseWwwAuthenticate(printed);
  if (!again.ok()) std::fprintf(stderr, "reparse of [%s]: %s\n", printed.c_str(), again.status().ToString().c_str());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->size() == parsed->size());
  for (size_t i = 0; i < parsed->size(); ++i) {
    FUZZ_CHECK((*again)[i].scheme == (*parsed)[i].scheme);
    FUZZ_CHECK((*again)[i].params == (*parsed)[i].params);
    FUZZ_CHECK((*again)[i].token68 == (*parsed)[i].token68);
  }
  return 0;
}
