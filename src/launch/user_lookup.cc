#include "src/launch/user_lookup.h"

#include <charconv>

namespace lazyroot {
namespace {

constexpr uint32_t kMaxId = 2147483647;  // runc's maxID: ids are int32 in the kernel ABI

// A number as Go's strconv.Atoi reads it (runc's), in range: an optional
// sign, then decimal digits ("+5" is 5, "-0" is 0).
std::optional<uint32_t> ParseId(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  uint64_t v = 0;
  if (s.empty() || s.size() > 10) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > kMaxId || (negative && v != 0)) return std::nullopt;
  return static_cast<uint32_t>(v);
}

// Calls fn with each non-blank line's ':'-separated fields (at most `n`; the
// last keeps any further ':' as runc's SplitN does not, but no field we use
// comes after it).
template <typename Fn>
void ForEachLine(std::string_view text, size_t n, Fn fn) {
  std::vector<std::string_view> f;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty()) continue;
    f.clear();
    for (size_t i = 0; i < n; ++i) {
      size_t colon = line.find(':');
      f.push_back(line.substr(0, colon));
      if (colon == std::string_view::npos) break;
      line.remove_prefix(colon + 1);
    }
    f.resize(n);
    fn(f);
  }
}

}  // namespace

std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  // name:password:uid:gid:gecos:home:shell
  ForEachLine(text, 7, [&](const std::vector<std::string_view>& f) {
    auto uid = ParseId(f[2]);
    auto gid = ParseId(f[3]);
    if (!uid || !gid) return;
    out.push_back(PasswdEntry{std::string(f[0]), *uid, *gid, std::string(f[5])});
  });
  return out;
}

std::vector<GroupEntry> ParseGroup(std::string_view text) {
  std::vector<GroupEntry> out;
  // name:password:gid:member,member
  ForEachLine(text, 4, [&](const std::vector<std::string_view>& f) {
    auto gid = ParseId(f[2]);
    if (!gid) return;
    GroupEntry g{std::string(f[0]), *gid, {}};
    std::string_view list = f[3];
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view m = list.substr(0, comma);
      if (!m.empty()) g.members.emplace_back(m);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    out.push_back(std::move(g));
  });
  return out;
}

Result<ExecUser> ResolveExecUser(std::string_view spec, const std::optional<std::string>& passwd,
                                 const std::optional<std::string>& group) {
  size_t colon = spec.find(':');
  std::string_view user_arg = spec.substr(0, colon);
  std::string_view group_arg = colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1);
  group_arg = group_arg.substr(0, group_arg.find(':'));  // runc ignores fields after the second
  const std::optional<uint32_t> uid_arg = ParseId(user_arg);
  const std::optional<uint32_t> gid_arg = ParseId(group_arg);
  auto looks_numeric = [](std::string_view s) {
    return !s.empty() && s.find_first_not_of("+-0123456789") == std::string_view::npos;
  };

  ExecUser u;
  std::string user_name;
  bool matched = false;
  if (passwd) {
    for (PasswdEntry& e : ParsePasswd(*passwd)) {
      // A numeric user is always a uid, never a name (runc).
      bool hit = user_arg.empty() ? e.uid == 0 : uid_arg ? e.uid == *uid_arg : e.name == user_arg;
      if (!hit) continue;
      u.uid = e.uid;
      u.gid = e.gid;
      if (!e.home.empty()) u.home = e.home;
      user_name = std::move(e.name);
      matched = true;
      break;  // the first match wins
    }
  }
  if (!matched && !user_arg.empty()) {
    if (!uid_arg) {
      if (looks_numeric(user_arg))
        return Status::InvalidArgument("user " + std::string(user_arg) + ": uids must be in 0-2147483647");
      return Status::NotFound("unable to find user " + std::string(user_arg) + ": no matching entries in " +
                              (passwd ? "the image's /etc/passwd" : "passwd file (the image has no /etc/passwd)"));
    }
    u.uid = *uid_arg;
  }

  if (group_arg.empty() && !matched) return u;
  std::vector<GroupEntry> groups = group ? ParseGroup(*group) : std::vector<GroupEntry>();
  if (!group_arg.empty()) {
    for (const GroupEntry& g : groups) {
      if (gid_arg ? g.gid == *gid_arg : g.name == group_arg) {
        u.gid = g.gid;  // the first match wins
        return u;
      }
    }
    if (!gid_arg) {
      if (looks_numeric(group_arg))
        return Status::InvalidArgument("group " + std::string(group_arg) + ": gids must be in 0-2147483647");
      return Status::NotFound("unable to find group " + std::string(group_arg) + ": no matching entries in " +
                              (group ? "the image's /etc/group" : "group file (the image has no /etc/group)"));
    }
    u.gid = *gid_arg;
    return u;
  }
  for (const GroupEntry& g : groups) {
    for (const std::string& m : g.members) {
      if (m == user_name) {
        u.additional_gids.push_back(g.gid);
        break;
      }
    }
  }
  return u;
}

}  // namespace lazyroot
