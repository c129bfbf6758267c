// ExtractTree over trees merged from hand-made TarEntry values whose bytes sit
// in in-memory plain (Compression::kNone) layers: contents, modes, owners,
// hardlinks, symlinks verbatim, sparse holes, mtimes in ns, devices, xattrs,
// rootless override_stat, hostile symlinks with a canary beside the target,
// refusal of a non-empty target and clean failure mid-way.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fs/extract.h"
#include "fs/extract_writer.h"
#include "index/merge.h"
#include "tests/unit/fs_test_image.h"

namespace lazyroot {
namespace {

using testing_image::Image;

class ExtractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-extract-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    out_ = base_ + "/out";
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(base_).ok()); }

  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static struct stat Lstat(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
  }
  static std::string GetXattr(const std::string& path, const char* name) {
    char buf[256];
    ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf);
    return n < 0 ? std::string("<none>") : std::string(buf, static_cast<size_t>(n));
  }
  std::vector<std::string> Siblings() const {
    std::vector<std::string> names;
    DIR* d = ::opendir(base_.c_str());
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string base_, out_;
};

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_F(ExtractTest, WritesEveryKindOfEntry) {
  Image img(2);
  img.Dir(0, "etc", 0755);
  img.File(0, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  img.File(0, "etc/gone", "whited out");
  std::string big = RandomBytes(3 * 1024 * 1024 + 17, 1);  // crosses the 1 MiB chunk
  img.File(0, "big", big);
  TarEntry& suid = img.File(1, "bin/su", "#!suid", 04755);
  suid.uid = 1234;
  suid.gid = 5678;
  img.File(1, "bin/sg", "sgid", 02711);
  img.Dir(1, "tmp", 01777);
  img.File(1, ".wh.gone-not-here", "");
  img.File(1, "etc/.wh.gone", "");
  img.Sym(1, "abs", "/etc/passwd");
  img.Sym(1, "rel", "../../../../etc/shadow");
  img.Sym(1, "dang", "nope");
  img.Link(1, "bin/su-link", "bin/su");
  img.File(1, "empty", "");
  TarEntry& cap = img.File(1, "bin/ping", "ping", 0755);
  cap.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20)},
                {"security.selinux", "system_u:object_r:bin_t:s0"},
                {"user.note", "hello"}};
  TarEntry& d = img.Dir(1, "data", 0750);
  d.mtime_sec = 1500000000;
  d.mtime_nsec = 42;
  img.File(1, "data/inner", "x");  // created after data's own entry: mtime must survive
  const bool root = ::geteuid() == 0;
  img.Node(1, "dev/null", EntryType::kCharDevice, 1, 3, 0666);
  img.Node(1, "dev/fifo", EntryType::kFifo, 0, 0, 0640);

  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  ExtractOptions opt;
  opt.threads = 3;
  auto report = ExtractTree(tree, content, out_, opt);
  ASSERT_TRUE(report.ok()) << report.status().message();

  EXPECT_EQ(Read(out_ + "/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  EXPECT_NE(::access((out_ + "/etc/gone").c_str(), F_OK), 0);
  EXPECT_EQ(Read(out_ + "/big"), big);
  EXPECT_EQ(report->bytes, big.size() + 26 + 6 + 4 + 4 + 1);
  EXPECT_EQ(report->files, 7u);  // passwd big su sg empty ping inner
  EXPECT_EQ(report->symlinks, 3u);
  EXPECT_EQ(report->hardlinks, 1u);
  EXPECT_EQ(report->devices, 2u);

  struct stat su = Lstat(out_ + "/bin/su");
  EXPECT_EQ(su.st_mode & 07777, root ? 04755u : 0755u);
  EXPECT_EQ(Lstat(out_ + "/bin/sg").st_mode & 07777, root ? 02711u : 0711u);
  EXPECT_EQ(Lstat(out_ + "/tmp").st_mode & 07777, root ? 01777u : 0755u);
  EXPECT_EQ(Lstat(out_ + "/data").st_mode & 07777, 0750u);
  struct stat link = Lstat(out_ + "/bin/su-link");
  EXPECT_EQ(link.st_ino, su.st_ino);
  EXPECT_EQ(su.st_nlink, 2u);

  char target[256];
  ssize_t n = ::readlink((out_ + "/abs").c_str(), target, sizeof target);
  EXPECT_EQ(std::string(target, static_cast<size_t>(std::max<ssize_t>(n, 0))), "/etc/passwd");
  n = ::readlink((out_ + "/rel").c_str(), target, sizeof target);
  EXPECT_EQ(std::string(target, static_cast<size_t>(std::max<ssize_t>(n, 0))), "../../../../etc/shadow");

  struct stat passwd = Lstat(out_ + "/etc/passwd");
  EXPECT_EQ(passwd.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(passwd.st_mtim.tv_nsec, 123456789);
  struct stat data = Lstat(out_ + "/data");
  EXPECT_EQ(data.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(data.st_mtim.tv_nsec, 42);
  struct stat abs = Lstat(out_ + "/abs");
  EXPECT_EQ(abs.st_mtim.tv_nsec, 123456789);

  EXPECT_EQ(GetXattr(out_ + "/bin/ping", "user.note"), "hello");
  EXPECT_EQ(GetXattr(out_ + "/bin/ping", "security.selinux").find("bin_t"), std::string::npos);
  EXPECT_TRUE(S_ISFIFO(Lstat(out_ + "/dev/fifo").st_mode));
  EXPECT_EQ(Lstat(out_ + "/dev/fifo").st_mode & 07777, 0640u);
  if (root) {
    EXPECT_FALSE(report->rootless);
    EXPECT_EQ(su.st_uid, 1234u);
    EXPECT_EQ(su.st_gid, 5678u);
    EXPECT_EQ(GetXattr(out_ + "/bin/ping", "security.capability").size(), 20u);
    struct stat null = Lstat(out_ + "/dev/null");
    EXPECT_TRUE(S_ISCHR(null.st_mode));
    EXPECT_EQ(null.st_rdev, makedev(1, 3));
    EXPECT_EQ(null.st_mode & 07777, 0666u);
  }
  EXPECT_EQ(Siblings(), std::vector<std::string>{"out"});  // no temp dir left behind
}

TEST_F(ExtractTest, SparseFileKeepsHoles) {
  Image img(1);
  const uint64_t size = 64ull << 20;
  std::string a = RandomBytes(4096, 2), b = RandomBytes(8192, 3);
  img.Sparse(0, "sparse", size, {{0, a}, {40ull << 20, b}});
  img.Sparse(0, "allhole", 1 << 20, {{1 << 20, ""}});  // one empty extent at the end, as GNU tar writes
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  auto report = ExtractTree(tree, content, out_);
  ASSERT_TRUE(report.ok()) << report.status().message();
  struct stat st = Lstat(out_ + "/sparse");
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 4ull << 20) << "holes were written";
  std::string got = Read(out_ + "/sparse");
  ASSERT_EQ(got.size(), size);
  EXPECT_EQ(got.substr(0, 4096), a);
  EXPECT_EQ(got.substr(40ull << 20, 8192), b);
  EXPECT_EQ(got.find_first_not_of('\0', 4096), 40ull << 20);
  EXPECT_EQ(got.find_first_not_of('\0', (40ull << 20) + 8192), std::string::npos);
  EXPECT_EQ(report->bytes, 4096u + 8192u);
  EXPECT_EQ(Lstat(out_ + "/allhole").st_size, 1 << 20);
}

// Many files over three layers, one layer cut into pieces for several workers:
// every byte lands in the right file.
TEST_F(ExtractTest, ParallelLayersAndPieces) {
  Image img(3);
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 0; i < 600; ++i) {
    size_t layer = i < 400 ? 0 : (i < 500 ? 1 : 2);
    std::string path = "d" + std::to_string(i % 7) + "/f" + std::to_string(i);
    std::string data = RandomBytes(static_cast<size_t>(i * 37 % 5000), static_cast<unsigned>(i));
    img.File(layer, path, data);
    files.emplace_back(path, data);
  }
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  ExtractOptions opt;
  opt.threads = 8;
  opt.min_split_bytes = 64 * 1024;
  auto report = ExtractTree(tree, content, out_, opt);
  ASSERT_TRUE(report.ok()) << report.status().message();
  for (const auto& [path, data] : files) ASSERT_EQ(Read(out_ + "/" + path), data) << path;
  EXPECT_EQ(report->files, 600u);
  EXPECT_EQ(report->dirs, 8u);
}

// Symlinks pointing outside (absolute, and up through ".."), then files
// written "through" them: the merge resolves them in-root, so they land
// inside DIR; a canary directory beside DIR stays empty.
TEST_F(ExtractTest, HostileSymlinksStayInside) {
  const std::string canary = base_ + "/canary";
  ASSERT_EQ(::mkdir(canary.c_str(), 0755), 0);
  Image img(2);
  img.Sym(0, "evil", canary);
  img.Sym(0, "up", "../../../../../../canary");
  img.Dir(0, "a/b");
  img.Sym(0, "a/b/rel", "../../../canary");
  img.File(1, "evil/pwned", "1");
  img.File(1, "up/pwned2", "2");
  img.File(1, "a/b/rel/pwned3", "3");
  img.Link(1, "hl", "evil/pwned");
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  auto report = ExtractTree(tree, content, out_);
  ASSERT_TRUE(report.ok()) << report.status().message();

  DIR* d = ::opendir(canary.c_str());
  ASSERT_NE(d, nullptr);
  int entries = 0;
  while (struct dirent* e = ::readdir(d)) entries += std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..";
  ::closedir(d);
  EXPECT_EQ(entries, 0) << "something was written outside DIR";

  EXPECT_EQ(Read(out_ + canary + "/pwned"), "1");  // absolute target, re-rooted
  EXPECT_EQ(Read(out_ + "/canary/pwned2"), "2");   // ".." clamped at the root
  EXPECT_EQ(Read(out_ + "/canary/pwned3"), "3");
  EXPECT_EQ(Lstat(out_ + "/hl").st_ino, Lstat(out_ + canary + "/pwned").st_ino);
  char target[512];
  ssize_t n = ::readlink((out_ + "/evil").c_str(), target, sizeof target);
  EXPECT_EQ(std::string(target, static_cast<size_t>(std::max<ssize_t>(n, 0))), canary);
}

// The disk-side guard on its own: a path through a planted symlink is refused.
TEST_F(ExtractTest, OpenBeneathRefusesSymlinks) {
  const std::string root = base_ + "/root", canary = base_ + "/canary";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(canary.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(canary.c_str(), (root + "/evil").c_str()), 0);
  ASSERT_EQ(::symlink("../canary", (root + "/up").c_str()), 0);
  Fd rfd(::open(root.c_str(), O_RDONLY | O_DIRECTORY));
  EXPECT_FALSE(OpenBeneath(rfd.get(), "evil", O_RDONLY | O_DIRECTORY).ok());
  EXPECT_FALSE(OpenBeneath(rfd.get(), "up", O_RDONLY | O_DIRECTORY).ok());
  EXPECT_FALSE(OpenBeneath(rfd.get(), "evil/x", O_WRONLY | O_CREAT, 0644).ok());
  EXPECT_FALSE(OpenBeneath(rfd.get(), "../canary/x", O_WRONLY | O_CREAT, 0644).ok());
  EXPECT_TRUE(OpenBeneath(rfd.get(), "", O_RDONLY | O_DIRECTORY).ok());
  EXPECT_NE(::access((canary + "/x").c_str(), F_OK), 0);
}

TEST_F(ExtractTest, RefusesNonEmptyTargetAndReplacesEmptyOne) {
  Image img(1);
  img.File(0, "f", "data");
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  ASSERT_EQ(::mkdir(out_.c_str(), 0755), 0);
  std::ofstream(out_ + "/keep") << "mine";
  auto r = ExtractTree(tree, content, out_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not empty"), std::string::npos);
  EXPECT_EQ(Read(out_ + "/keep"), "mine");
  EXPECT_EQ(Siblings(), std::vector<std::string>{"out"});

  const std::string file = base_ + "/afile";
  std::ofstream(file) << "x";
  EXPECT_EQ(ExtractTree(tree, content, file).status().code(), ErrorCode::kInvalidArgument);

  const std::string empty = base_ + "/empty";
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  auto ok = ExtractTree(tree, content, empty + "/");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(Read(empty + "/f"), "data");
  EXPECT_FALSE(ExtractTree(tree, content, base_ + "/no/such/parent").ok());
}

TEST_F(ExtractTest, FailureMidwayLeavesNothing) {
  Image img(1);
  for (int i = 0; i < 50; ++i) img.File(0, "dir/f" + std::to_string(i), RandomBytes(3000, static_cast<unsigned>(i)));
  img.Dir(0, "ro", 0555);
  img.File(0, "ro/inner", "x");
  ImageTree tree = img.Tree();
  ImageContent content = img.Content(512 + 20 * 3584);  // the blob ends inside file 20
  ExtractOptions opt;
  opt.rootless = true;  // 0555 directories must still be removable
  auto r = ExtractTree(tree, content, out_, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption) << r.status().message();
  EXPECT_TRUE(Siblings().empty()) << Siblings().front();
}

// The CLI sets options.interrupted from SIGINT/SIGTERM/SIGHUP: the extract
// stops with kAborted naming the signal, and DIR's temp dir is removed.
TEST_F(ExtractTest, InterruptedLeavesNothing) {
  Image img(1);
  for (int i = 0; i < 20; ++i) img.File(0, "dir/f" + std::to_string(i), "x");
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  std::atomic<int> interrupted{SIGTERM};
  ExtractOptions opt;
  opt.interrupted = &interrupted;
  auto r = ExtractTree(tree, content, out_, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kAborted);
  EXPECT_NE(r.status().message().find("interrupted by SIGTERM"), std::string::npos) << r.status().message();
  EXPECT_TRUE(Siblings().empty()) << Siblings().front();
  interrupted = 0;
  EXPECT_TRUE(ExtractTree(tree, content, out_, opt).ok());
}

TEST_F(ExtractTest, RootlessRecordsOverrideStat) {
  Image img(1);
  TarEntry& f = img.File(0, "bin/su", "x", 04755);
  f.uid = 0;
  f.gid = 0;
  TarEntry& d = img.Dir(0, "ro", 0555);
  d.uid = 1000;
  d.gid = 100;
  img.File(0, "ro/inner", "y", 0600);
  img.Node(0, "dev/sda", EntryType::kBlockDevice, 8, 0, 0660);
  img.Sym(0, "s", "bin/su");
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  ExtractOptions opt;
  opt.rootless = true;
  auto r = ExtractTree(tree, content, out_, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->rootless);
  EXPECT_EQ(GetXattr(out_ + "/bin/su", kOverrideStatXattr), "0:0:0104755");
  EXPECT_EQ(GetXattr(out_ + "/ro", kOverrideStatXattr), "1000:100:040555");
  EXPECT_EQ(GetXattr(out_ + "/ro/inner", kOverrideStatXattr), "0:0:0100600");
  EXPECT_EQ(Lstat(out_ + "/ro").st_mode & 07777, 0555u);  // restored after writing inside
  EXPECT_EQ(Lstat(out_ + "/bin/su").st_mode & 07777, 0755u);  // no setuid on disk
  struct stat sda = Lstat(out_ + "/dev/sda");
  EXPECT_TRUE(S_ISREG(sda.st_mode));
  EXPECT_EQ(sda.st_mode & 07777, 0u);
  EXPECT_EQ(sda.st_size, 0);
  if (::geteuid() != 0) ::chmod((out_ + "/dev/sda").c_str(), 0400);  // reading user.* needs read permission
  EXPECT_EQ(GetXattr(out_ + "/dev/sda", kOverrideStatXattr), "0:0:060660");
  EXPECT_EQ(r->devices, 1u);
  EXPECT_GE(r->warnings, 1u);
  EXPECT_EQ(Lstat(out_ + "/ro/inner").st_uid, ::geteuid());
  EXPECT_EQ(GetXattr(out_ + "/s", kOverrideStatXattr), "<none>");
}

// RemoveTree (the cleanup after a failure) copes with directories a rootless
// extraction left 0000 / 0555, with symlinks to the outside (never followed)
// and with a depth whose path is far beyond PATH_MAX.
TEST_F(ExtractTest, RemoveTreeLocksAndDepth) {
  const std::string top = base_ + "/top", canary = base_ + "/canary";
  ASSERT_EQ(::mkdir(canary.c_str(), 0755), 0);
  std::ofstream(canary + "/keep") << "keep";
  ASSERT_EQ(::mkdir(top.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((top + "/locked").c_str(), 0755), 0);
  std::ofstream(top + "/locked/f") << "x";
  ASSERT_EQ(::symlink(canary.c_str(), (top + "/locked/out").c_str()), 0);
  ASSERT_EQ(::chmod((top + "/locked").c_str(), 0), 0);
  ASSERT_EQ(::mkdir((top + "/ro").c_str(), 0755), 0);
  std::ofstream(top + "/ro/f") << "x";
  ASSERT_EQ(::chmod((top + "/ro").c_str(), 0555), 0);
  Fd fd(::open(top.c_str(), O_RDONLY | O_DIRECTORY));
  for (int i = 0; i < 1500; ++i) {  // "d/d/d/…": 3000 bytes of path below top
    ASSERT_EQ(::mkdirat(fd.get(), "dd", 0755), 0);
    fd = Fd(::openat(fd.get(), "dd", O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(fd.valid());
  }
  ASSERT_EQ(::symlinkat(canary.c_str(), fd.get(), "deep-out"), 0);
  fd.reset();
  Status st = RemoveTree(top);
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_NE(::access(top.c_str(), F_OK), 0);
  EXPECT_EQ(Read(canary + "/keep"), "keep");
}

// Aligned 4 KiB blocks of zeros in file data become holes, whatever their
// place (start, middle, end); unaligned zeros and data around them are written.
TEST_F(ExtractTest, ZeroRunsBecomeHoles) {
  Image img(1);
  const size_t size = 16 << 20;
  std::string data(size, '\0');
  const std::string head = RandomBytes(5000, 4), mid = RandomBytes(100, 5);
  data.replace(0, head.size(), head);
  data.replace((9 << 20) + 123, mid.size(), mid);  // unaligned, inside a block
  img.File(0, "mostly-zero", data);                 // ends in zeros: the size comes from ftruncate
  img.File(0, "all-zero", std::string((4 << 20) + 100, '\0'));  // an unaligned tail of zeros
  img.File(0, "small-zero", std::string(100, '\0'));
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  auto report = ExtractTree(tree, content, out_);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(Read(out_ + "/mostly-zero"), data);
  EXPECT_EQ(Read(out_ + "/all-zero"), std::string((4 << 20) + 100, '\0'));
  EXPECT_EQ(Read(out_ + "/small-zero"), std::string(100, '\0'));
  struct stat st = Lstat(out_ + "/mostly-zero");
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, 64u << 10) << "zeros were written";
  EXPECT_LE(static_cast<uint64_t>(Lstat(out_ + "/all-zero").st_blocks) * 512, 8u << 10);
  // Written: the two head blocks (5000 bytes span blocks 0 and 1), the block holding mid,
  // the 100-byte tails of all-zero and small-zero (partial blocks are written).
  EXPECT_EQ(report->bytes, 2 * 4096u + 4096u + 100u + 100u);
  EXPECT_EQ(report->zero_bytes, size - 3 * 4096u + (4u << 20));
}

// Rootless (as a non-root caller, or asked for): no setuid/setgid/sticky and
// no group/other write on disk; the image's mode stays in override_stat.
TEST_F(ExtractTest, RootlessMasksModesOnDisk) {
  Image img(1);
  img.File(0, "bin/sh", "#!", 04755);
  img.Dir(0, "sgid", 02755);
  img.File(0, "open", "w", 0777);
  img.Dir(0, "tmp", 01777);
  img.File(0, "tmp/ro", "r", 0444);
  img.Node(0, "fifo", EntryType::kFifo, 0, 0, 0666);
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  ExtractOptions opt;
  opt.rootless = true;
  auto r = ExtractTree(tree, content, out_, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Lstat(out_ + "/bin/sh").st_mode & 07777, 0755u);
  EXPECT_EQ(Lstat(out_ + "/sgid").st_mode & 07777, 0755u);
  EXPECT_EQ(Lstat(out_ + "/open").st_mode & 07777, 0755u);
  EXPECT_EQ(Lstat(out_ + "/tmp").st_mode & 07777, 0755u);
  EXPECT_EQ(Lstat(out_ + "/tmp/ro").st_mode & 07777, 0444u);
  EXPECT_EQ(Lstat(out_ + "/fifo").st_mode & 07777, 0644u);
  EXPECT_EQ(GetXattr(out_ + "/bin/sh", kOverrideStatXattr), "0:0:0104755");
  EXPECT_EQ(GetXattr(out_ + "/sgid", kOverrideStatXattr), "0:0:042755");
  EXPECT_EQ(GetXattr(out_ + "/open", kOverrideStatXattr), "0:0:0100777");
  EXPECT_EQ(GetXattr(out_ + "/tmp", kOverrideStatXattr), "0:0:041777");
  // Linux takes user.* xattrs on files and directories only: a fifo's image
  // mode is lost, and the masked one is what a guest sees (documented).
  EXPECT_EQ(GetXattr(out_ + "/fifo", kOverrideStatXattr), "<none>");
}

// The disk budget is checked before anything is created: file data (sparse
// holes excluded, zeros included) over max_bytes fails and leaves nothing.
TEST_F(ExtractTest, MaxBytesFailsBeforeWriting) {
  Image img(1);
  img.File(0, "a", RandomBytes(3000, 6));
  img.File(0, "zeros", std::string(8192, '\0'));
  img.Sparse(0, "sparse", 1ull << 40, {{0, RandomBytes(1000, 7)}});  // 1 TiB apparent, 1000 bytes of data
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  ExtractOptions opt;
  opt.max_bytes = 3000 + 8192 + 1000 - 1;
  auto r = ExtractTree(tree, content, out_, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kLimitExceeded) << r.status().message();
  EXPECT_NE(r.status().message().find("--max-size"), std::string::npos) << r.status().message();
  EXPECT_TRUE(Siblings().empty());
  opt.max_bytes += 1;
  auto ok = ExtractTree(tree, content, out_, opt);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->bytes, 3000u + 1000u);
  EXPECT_EQ(ok->zero_bytes, 8192u);
}

// The default bound is the free space of the target's file system: a tree
// claiming more than any disk holds fails early, naming both sizes.
TEST_F(ExtractTest, DefaultBoundIsTheFreeSpace) {
  Image img(1);
  TarEntry& e = img.File(0, "huge", "x");
  e.size = e.stored_size = 1ull << 60;  // the bytes are never read: the check comes first
  ImageTree tree = img.Tree();
  ImageContent content = img.Content();
  auto r = ExtractTree(tree, content, out_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kLimitExceeded) << r.status().message();
  EXPECT_NE(r.status().message().find("free"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("--max-size"), std::string::npos) << r.status().message();
  EXPECT_TRUE(Siblings().empty());
}

// A reader that throws (out of memory deep in a decoder) ends as an error
// naming the layer, not in std::terminate; the temp dir is removed.
class ThrowingSource final : public ByteSource {
 public:
  explicit ThrowingSource(std::unique_ptr<ByteSource> inner) : inner_(std::move(inner)) {}
  Status ReadAt(uint64_t, std::span<uint8_t>, size_t*) const override { throw std::bad_alloc(); }
  uint64_t Size() const override { return inner_->Size(); }
  const std::string& Name() const override { return inner_->Name(); }

 private:
  std::unique_ptr<ByteSource> inner_;
};

TEST_F(ExtractTest, AThrowingWorkerBecomesAnError) {
  Image img(2);
  for (int i = 0; i < 20; ++i) img.File(i % 2, "d/f" + std::to_string(i), RandomBytes(2000, static_cast<unsigned>(i)));
  ImageTree tree = img.Tree();
  ImageContent content =
      img.ContentWith([](std::unique_ptr<ByteSource> s) { return std::make_unique<ThrowingSource>(std::move(s)); });
  ExtractOptions opt;
  opt.threads = 2;
  auto r = ExtractTree(tree, content, out_, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIoError);
  EXPECT_NE(r.status().message().find("out of memory"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("sha256:layer"), std::string::npos) << r.status().message();
  EXPECT_TRUE(Siblings().empty());
}

TEST(OverrideStat, Format) {
  EXPECT_EQ(OverrideStatValue(0, 0, 0100755), "0:0:0100755");
  EXPECT_EQ(OverrideStatValue(65534, 65534, 020620), "65534:65534:020620");
}

}  // namespace
}  // namespace lazyroot
