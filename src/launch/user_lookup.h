// Resolving an image's `User` to ids the way runc (libcontainer/user,
// GetExecUser) and so docker and podman do, from the image's own /etc/passwd
// and /etc/group: "name", "uid", "name:group", "uid:gid", "name:gid", ...;
// a numeric id absent from passwd is used as given (gid 0); a name absent
// is an error naming it. Supplementary groups only in the implicit form
// ("name" or "uid" matched in passwd): every group listing the user's name.
// Pure functions over the files' bytes; the caller reads them (bounded).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace lazyroot {

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0, gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

// passwd(5) / group(5) lines, in file order. Blank lines are skipped. Unlike
// runc, which reads an unparsable id as 0 (root), a line whose uid or gid is
// not a decimal number in 0..2147483647 is skipped: a garbled line must
// not make a user root. Missing trailing fields are empty.
std::vector<PasswdEntry> ParsePasswd(std::string_view text);
std::vector<GroupEntry> ParseGroup(std::string_view text);

struct ExecUser {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;  // file order, duplicates kept as runc does
  std::string home = "/";                 // the passwd entry's home; "/" without one
};

// `spec` as in the image config's User ("" = root). nullopt files are
// absent from the image (then only numeric ids resolve). kNotFound names the
// user or group that is not in the image's files; kInvalidArgument an id out
// of range.
Result<ExecUser> ResolveExecUser(std::string_view spec, const std::optional<std::string>& passwd,
                                 const std::optional<std::string>& group);

}  // namespace lazyroot
