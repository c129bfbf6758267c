// Looking a mount point up in mountinfo text, as `lazyroot umount` does
// before it unmounts anything: escaped paths, stacked mounts, optional
// fields, prefixes that are not the path.
#include <gtest/gtest.h>

#include "fs/mount_table.h"

namespace lazyroot {
namespace {

constexpr std::string_view kInfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 0:35 / /tmp/a rw,relatime shared:20 - tmpfs tmpfs rw\n"
    "41 22 0:36 / /tmp/a\\040b rw,nosuid,nodev - fuse.lazyroot registry.test/app:1 ro,user_id=0\n"
    "42 40 0:37 / /tmp/a rw - fuse.lazyroot 127.0.0.1:5000/demo\\134x:v1 ro\n"
    "43 22 0:38 / /tmp/ab rw master:3 propagate_from:2 unbindable - tmpfs none rw\n"
    "44 22 0:39 / /tmp/broken rw\n";

TEST(MountTable, FindsTheVisibleMountAtAPath) {
  auto top = FindMountIn(kInfo, "/tmp/a");  // tmpfs, then a lazyroot mount on top of it
  ASSERT_TRUE(top);
  EXPECT_EQ(top->fstype, kLazyrootFsType);
  EXPECT_EQ(top->source, "127.0.0.1:5000/demo\\x:v1");
  EXPECT_EQ(top->device, "0:37");  // the lazyroot mount's, not the tmpfs under it
  auto root = FindMountIn(kInfo, "/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->fstype, "ext4");
  EXPECT_EQ(root->source, "/dev/sda1");
  EXPECT_EQ(root->device, "8:1");
}

TEST(MountTable, UnescapesPathsAndSkipsOptionalFields) {
  auto spaced = FindMountIn(kInfo, "/tmp/a b");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->mount_point, "/tmp/a b");
  EXPECT_EQ(spaced->source, "registry.test/app:1");
  EXPECT_FALSE(FindMountIn(kInfo, "/tmp/a\\040b"));
  auto many = FindMountIn(kInfo, "/tmp/ab");
  ASSERT_TRUE(many);
  EXPECT_EQ(many->fstype, "tmpfs");
  EXPECT_EQ(many->source, "none");
}

TEST(MountTable, NotMountedOrMalformedIsNothing) {
  EXPECT_FALSE(FindMountIn(kInfo, "/tmp"));
  EXPECT_FALSE(FindMountIn(kInfo, "/tmp/a/"));
  EXPECT_FALSE(FindMountIn(kInfo, "/tmp/broken"));
  EXPECT_FALSE(FindMountIn("", "/"));
}

TEST(MountTable, ReadsThisProcessTable) {
  auto root = FindMount("/");
  ASSERT_TRUE(root.ok()) << root.status().message();
  ASSERT_TRUE(*root);
  EXPECT_FALSE((*root)->fstype.empty());
}

}  // namespace
}  // namespace lazyroot
