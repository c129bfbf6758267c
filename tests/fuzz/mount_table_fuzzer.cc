// Fuzzes the /proc/self/mountinfo reader behind `lazyroot umount`: mount
// points are names anyone can create (spaces, newlines and backslashes come
// escaped as \040, \012, \134), and a wrong answer unmounts the wrong thing.
// The input is "<mount point>\n<mountinfo text>"; any entry found must be
// one whose unescaped mount point is exactly the one asked for, with an
// fstype and no NUL-free guarantees broken.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "fs/mount_table.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view want = nl == std::string_view::npos ? in : in.substr(0, nl);
  const std::string_view table = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  std::optional<MountEntry> found = FindMountIn(table, want);
  if (found) {
    FUZZ_CHECK(found->mount_point == want);
    FUZZ_CHECK(found->mount_point.size() <= table.size());
    FUZZ_CHECK(found->fstype.size() <= table.size() && found->source.size() <= table.size());
  }
  return 0;
}
