// Fuzzes the image's /etc/passwd and /etc/group parsers and the user
// resolution (src/launch/user_lookup.h), which `inspect --launch` runs on files an
// image supplies. Input: SPEC \0 PASSWD \0 GROUP (a missing part is a file
// the image lacks). Checks: parsed names hold no ':' or newline, ids stay in
// 0..2147483647, and a resolved user keeps to its spec: a numeric user
// resolves to that uid, a numeric explicit group to that gid.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "src/launch/user_lookup.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr uint32_t kMaxId = 2147483647;

bool IsDecimal(std::string_view s) {
  return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t a = in.find('\0');
  std::string_view spec = in.substr(0, a);
  std::optional<std::string> passwd, group;
  if (a != std::string_view::npos) {
    std::string_view rest = in.substr(a + 1);
    size_t b = rest.find('\0');
    passwd = std::string(rest.substr(0, b));
    if (b != std::string_view::npos) group = std::string(rest.substr(b + 1));
  }
  if (passwd) {
    for (const PasswdEntry& e : ParsePasswd(*passwd)) {
      FUZZ_CHECK(e.name.find_first_of(":\n") == std::string::npos);
      FUZZ_CHECK(e.uid <= kMaxId && e.gid <= kMaxId);
    }
  }
  if (group) {
    for (const GroupEntry& g : ParseGroup(*group)) {
      FUZZ_CHECK(g.name.find_first_of(":\n") == std::string::npos);
      FUZZ_CHECK(g.gid <= kMaxId);
      for (const std::string& m : g.members) FUZZ_CHECK(!m.empty() && m.find_first_of(":,\n") == std::string::npos);
    }
  }
  Result<ExecUser> u = ResolveExecUser(spec, passwd, group);
  if (!u.ok()) {
    fuzz::CheckError(u.status());
    return 0;
  }
  FUZZ_CHECK(u->uid <= kMaxId && u->gid <= kMaxId);
  FUZZ_CHECK(!u->home.empty());
  size_t colon = spec.find(':');
  std::string_view user = spec.substr(0, colon);
  if (IsDecimal(user)) FUZZ_CHECK(u->uid == std::stoul(std::string(user)));
  if (colon != std::string_view::npos) {
    std::string_view grp = spec.substr(colon + 1);
    grp = grp.substr(0, grp.find(':'));  // runc ignores fields after the second
    if (IsDecimal(grp)) FUZZ_CHECK(u->gid == std::stoul(std::string(grp)));
    // Supplementary groups only in the implicit form ("user" or "user:").
    if (!grp.empty()) FUZZ_CHECK(u->additional_gids.empty());
  }
  return 0;
}
