// CompareRootfs against trees ExtractTree wrote: a fresh extract is equal (as
// root and rootless); each kind of change a guest can make — edit, chmod,
// chown, touch, add, delete, replace with a symlink, break a hardlink,
// override_stat rewritten — is named; contents are compared only when asked
// (same size, same mtime, other bytes) and through sparse holes; the walk
// stops at max_differences and never leaves the root through a planted
// symlink.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "fs/extract.h"
#include "fs/extract_writer.h"
#include "fs/rootfs_check.h"
#include "fs/rootfs_copy.h"
#include "tests/unit/fs_test_image.h"

namespace lazyroot {
namespace {

using testing_image::Image;

class RootfsCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-rootfs-check-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    out_ = base_ + "/out";
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(base_).ok()); }

  // A small image with every kind of entry; extracted into out_.
  void Extract(bool rootless = false) {
    img_.Dir(0, "etc", 0755);
    img_.File(0, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    TarEntry& su = img_.File(0, "bin/su", "#!suid", 04755);
    su.uid = 1234;
    su.gid = 5678;
    img_.Link(0, "bin/su-link", "bin/su");
    img_.Sym(0, "abs", "/etc/passwd");
    img_.Dir(0, "tmp", 01777);
    img_.File(0, "empty", "");
    img_.Sparse(0, "sparse", 1 << 20, {{8192, std::string(4096, 'a')}, {65536, std::string(100, 'b')}});
    img_.Node(0, "dev/null", EntryType::kCharDevice, 1, 3, 0666);
    img_.Node(0, "dev/fifo", EntryType::kFifo, 0, 0, 0640);
    tree_ = std::make_unique<ImageTree>(img_.Tree());
    content_ = std::make_unique<ImageContent>(img_.Content());
    ExtractOptions opt;
    opt.rootless = rootless;
    auto report = ExtractTree(*tree_, *content_, out_, opt);
    ASSERT_TRUE(report.ok()) << report.status().message();
    options_.rootless = report->rootless;
  }

  std::vector<RootfsDifference> Compare(bool contents = false, size_t max = 20) {
    RootfsCheckOptions o = options_;
    o.contents = contents;
    o.max_differences = max;
    auto diffs = CompareRootfs(*tree_, content_.get(), out_, o);
    EXPECT_TRUE(diffs.ok()) << diffs.status().message();
    return diffs.ok() ? *diffs : std::vector<RootfsDifference>{};
  }

  static std::string Describe(const std::vector<RootfsDifference>& diffs) {
    std::string s;
    for (const auto& d : diffs) s += d.path + ": " + d.what + "\n";
    return s;
  }

  // The first difference, as "path: what" ("" if none).
  std::string First(bool contents = false) {
    auto diffs = Compare(contents);
    return diffs.empty() ? "" : diffs[0].path + ": " + diffs[0].what;
  }

  // Writes `bytes` over the start of `rel` and puts its times back.
  void Overwrite(const std::string& rel, const std::string& bytes) {
    const std::string p = out_ + "/" + rel;
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(::futimens(fd, ts), 0);
    ::close(fd);
  }

  Image img_{1};
  std::unique_ptr<ImageTree> tree_;
  std::unique_ptr<ImageContent> content_;
  RootfsCheckOptions options_;
  std::string base_, out_;
};

TEST_F(RootfsCheckTest, FreshExtractIsEqual) {
  Extract();
  EXPECT_EQ(Describe(Compare()), "");
  EXPECT_EQ(Describe(Compare(true)), "");
}

TEST_F(RootfsCheckTest, RootlessExtractIsEqual) {
  Extract(true);
  EXPECT_EQ(Describe(Compare()), "");
  EXPECT_EQ(Describe(Compare(true)), "");
  // Checked in the other mode, the same tree is not what extract writes.
  options_.rootless = false;
  EXPECT_FALSE(Compare().empty());
}

TEST_F(RootfsCheckTest, RootlessChownIsOverrideStat) {
  Extract(true);
  const std::string p = out_ + "/etc/passwd";
  const std::string forged = OverrideStatValue(0, 0, 0104755);
  ASSERT_EQ(::lsetxattr(p.c_str(), kOverrideStatXattr, forged.data(), forged.size(), 0), 0);
  EXPECT_EQ(First(), "/etc/passwd: " + std::string(kOverrideStatXattr) + " 0:0:0104755, image says 0:0:0100644");
}

TEST_F(RootfsCheckTest, SizeChange) {
  Extract();
  ASSERT_EQ(::truncate((out_ + "/etc/passwd").c_str(), 3), 0);
  auto diffs = Compare();
  ASSERT_FALSE(diffs.empty());
  EXPECT_EQ(diffs[0].path, "/etc/passwd");
  EXPECT_EQ(diffs[0].what, "size 3, image says 26");
}

TEST_F(RootfsCheckTest, NamesEachKindOfChange) {
  Extract();
  ASSERT_EQ(::chmod((out_ + "/etc/passwd").c_str(), 0666), 0);
  EXPECT_EQ(First(), "/etc/passwd: mode 0666, image says 0644");
  ASSERT_EQ(::chmod((out_ + "/etc/passwd").c_str(), 0644), 0);

  if (::geteuid() == 0) {
    ASSERT_EQ(::lchown((out_ + "/bin/su").c_str(), 0, 0), 0);
    auto diffs = Compare();
    ASSERT_FALSE(diffs.empty());
    EXPECT_EQ(diffs[0].path, "/bin/su");
    EXPECT_NE(Describe(diffs).find("owner 0:0, image says 1234:5678"), std::string::npos) << Describe(diffs);
    ASSERT_EQ(::lchown((out_ + "/bin/su").c_str(), 1234, 5678), 0);
    ASSERT_EQ(::chmod((out_ + "/bin/su").c_str(), 04755), 0);  // chown cleared setuid
  }
  EXPECT_EQ(Describe(Compare()), "");

  struct timespec ts[2] = {{0, UTIME_OMIT}, {1700000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (out_ + "/empty").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(First(), "/empty: mtime 1700000000.000000000, image says 1600000000.123456789");
  ts[1] = {1600000000, 123456789};
  ASSERT_EQ(::utimensat(AT_FDCWD, (out_ + "/empty").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);

  // A new file changes its directory's mtime too; both are named.
  std::ofstream(out_ + "/etc/added") << "x";
  std::string all = Describe(Compare());
  EXPECT_NE(all.find("/etc/added: not in the image"), std::string::npos) << all;
  EXPECT_NE(all.find("/etc: mtime"), std::string::npos) << all;
  ASSERT_EQ(::unlink((out_ + "/etc/added").c_str()), 0);

  ASSERT_EQ(::unlink((out_ + "/etc/passwd").c_str()), 0);
  all = Describe(Compare());
  EXPECT_NE(all.find("/etc/passwd: missing"), std::string::npos) << all;

  // Replaced with a symlink to a host file: named, and never followed.
  ASSERT_EQ(::symlink("/etc/hostname", (out_ + "/etc/passwd").c_str()), 0);
  all = Describe(Compare(true));
  EXPECT_NE(all.find("/etc/passwd: is a symlink, image says regular file"), std::string::npos) << all;
}

TEST_F(RootfsCheckTest, DirectoryReplacedBySymlinkIsNotEntered) {
  Extract();
  ASSERT_TRUE(RemoveTree(out_ + "/etc").ok());
  ASSERT_EQ(::symlink("/etc", (out_ + "/etc").c_str()), 0);
  std::string all = Describe(Compare(true));
  EXPECT_NE(all.find("/etc: is a symlink, image says directory"), std::string::npos) << all;
  // Nothing of the host's /etc was looked at.
  EXPECT_EQ(all.find("/etc/"), std::string::npos) << all;
}

TEST_F(RootfsCheckTest, BrokenAndAddedHardlinks) {
  Extract();
  // su-link becomes a copy of su: same bytes, same metadata, another inode.
  const std::string link = out_ + "/bin/su-link";
  ASSERT_EQ(::unlink(link.c_str()), 0);
  ASSERT_EQ(::link((out_ + "/etc/passwd").c_str(), link.c_str()), 0);
  std::string all = Describe(Compare());
  EXPECT_NE(all.find("/bin/su-link: is a separate copy"), std::string::npos) << all;
  EXPECT_NE(all.find("/bin/su: 1 links, image says 2"), std::string::npos) << all;
  EXPECT_NE(all.find("/etc/passwd: 2 links, image says 1"), std::string::npos) << all;
}

TEST_F(RootfsCheckTest, TwoNodesSharingAnInode) {
  Extract();
  // /empty's only name replaced by a hardlink to /bin/su: /empty is visited
  // first (the root's children come before /bin's), so /bin/su is named.
  ASSERT_EQ(::unlink((out_ + "/empty").c_str()), 0);
  ASSERT_EQ(::link((out_ + "/bin/su").c_str(), (out_ + "/empty").c_str()), 0);
  std::string all = Describe(Compare());
  EXPECT_NE(all.find("/bin/su: shares its inode with another path"), std::string::npos) << all;
}

TEST_F(RootfsCheckTest, ContentsOnlyWhenAsked) {
  Extract();
  Overwrite("etc/passwd", "ROOT");  // same size, same mtime
  EXPECT_EQ(Describe(Compare()), "");
  EXPECT_EQ(First(true), "/etc/passwd: contents differ from the image at byte 0");
}

TEST_F(RootfsCheckTest, CtimeAfterTheExtractIsAChange) {
  Extract();
  // What extract does: a marker written after the tree; its mtime is the bound.
  const std::string marker = base_ + "/done";
  std::ofstream(marker) << "root\n";
  struct stat done {};
  ASSERT_EQ(::stat(marker.c_str(), &done), 0);
  options_.extracted_at_ns = int64_t{done.st_mtim.tv_sec} * 1000000000 + done.st_mtim.tv_nsec;
  EXPECT_EQ(Describe(Compare()), "");
  ::usleep(20000);  // past the file system's timestamp granularity
  Overwrite("etc/passwd", "ROOT");  // same size, mtime put back
  EXPECT_EQ(First().substr(0, 46), "/etc/passwd: changed after the extract (ctime ");
}

TEST_F(RootfsCheckTest, ContentsThroughSparseHoles) {
  Extract();
  EXPECT_EQ(Describe(Compare(true)), "");
  // A byte written into a hole (where the image has zeros).
  const std::string p = out_ + "/sparse";
  struct stat st {};
  ASSERT_EQ(::lstat(p.c_str(), &st), 0);
  int fd = ::open(p.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "z", 1, 500000), 1);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::futimens(fd, ts), 0);
  ::close(fd);
  EXPECT_EQ(First(true), "/sparse: contents differ from the image at byte 500000");
}

TEST_F(RootfsCheckTest, StopsAtMaxDifferences) {
  Extract();
  for (int i = 0; i < 50; ++i) std::ofstream(out_ + "/tmp/x" + std::to_string(i)) << i;
  EXPECT_EQ(Compare(false, 5).size(), 5u);
  EXPECT_EQ(Compare(false, 0).size(), 51u);  // 50 files and /tmp's mtime
}

TEST_F(RootfsCheckTest, MissingDirIsAnError) {
  Extract();
  auto diffs = CompareRootfs(*tree_, nullptr, base_ + "/nope", options_);
  ASSERT_FALSE(diffs.ok());
  EXPECT_NE(diffs.status().message().find(base_ + "/nope"), std::string::npos);
}


// CopyRootfs: the copy of a checked tree is equal to the image (CompareRootfs
// on the copy), holes stay holes, the copy is a separate tree; an interrupted
// or refused copy leaves nothing.
TEST_F(RootfsCheckTest, CopyIsEqualAndSeparate) {
  Extract();
  const std::string copy = base_ + "/copy";
  auto report = CopyRootfs(*tree_, out_, copy);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->hardlinks, 1u);
  std::string saved = out_;
  out_ = copy;
  EXPECT_EQ(Describe(Compare(true)), "");
  struct stat st {};
  ASSERT_EQ(::lstat((copy + "/sparse").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1 << 19) << "holes were copied as data";
  Overwrite("etc/passwd", "ROOT");
  out_ = saved;
  EXPECT_EQ(Describe(Compare(true)), "");
}

TEST_F(RootfsCheckTest, CopyOfRootlessTreeKeepsOverrideStat) {
  Extract(true);
  const std::string copy = base_ + "/copy";
  auto report = CopyRootfs(*tree_, out_, copy);
  ASSERT_TRUE(report.ok()) << report.status().message();
  out_ = copy;
  EXPECT_EQ(Describe(Compare(true)), "");
}

TEST_F(RootfsCheckTest, CopyRefusedOrInterruptedLeavesNothing) {
  Extract();
  const std::string copy = base_ + "/copy";
  ASSERT_EQ(::mkdir(copy.c_str(), 0755), 0);
  std::ofstream(copy + "/keep") << "x";
  auto refused = CopyRootfs(*tree_, out_, copy);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("is not empty"), std::string::npos) << refused.status().message();
  std::atomic<int> interrupted{SIGINT};
  CopyOptions options;
  options.interrupted = &interrupted;
  const std::string other = base_ + "/other";
  auto stopped = CopyRootfs(*tree_, out_, other, options);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), ErrorCode::kAborted);
  struct stat st {};
  EXPECT_NE(::lstat(other.c_str(), &st), 0);
  int entries = 0;
  for (const char* n : {"out", "copy", "other"}) entries += ::lstat((base_ + "/" + n).c_str(), &st) == 0;
  EXPECT_EQ(entries, 2);  // out and copy; no temp dir either (checked by name below)
  DIR* d = ::opendir(base_.c_str());
  while (struct dirent* e = ::readdir(d)) EXPECT_EQ(std::string(e->d_name).find("lazyroot-tmp"), std::string::npos);
  ::closedir(d);
}

TEST_F(RootfsCheckTest, ReflinkFailsClearlyWhereUnsupported) {
  Extract();
  CopyOptions options;
  options.reflink = true;
  auto copied = CopyRootfs(*tree_, out_, base_ + "/copy", options);
  const std::string fs = FileSystemName(base_);
  if (fs == "xfs" || fs == "btrfs") GTEST_SKIP() << "this test dir can reflink";
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(copied.status().message().find("the " + fs + " file system"), std::string::npos)
      << copied.status().message();
  struct stat st {};
  EXPECT_NE(::lstat((base_ + "/copy").c_str(), &st), 0);
}

}  // namespace
}  // namespace lazyroot
