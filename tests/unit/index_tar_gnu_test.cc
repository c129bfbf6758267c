// TarReader against an independent writer: GNU tar archives a temp tree at
// test time (--format=posix with each sparse version, and --format=gnu), and
// every entry is checked against lstat() and the file bytes, sparse files
// rebuilt from their extents. Skipped when /usr/bin/tar is missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "index/tar_reader.h"

namespace lazyroot {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const fs::path& p, std::string_view content, mode_t mode) {
  std::ofstream(p, std::ios::binary) << content;
  ASSERT_EQ(::chmod(p.c_str(), mode), 0);
}

class TarReaderGnuTar : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/tar", X_OK) != 0) GTEST_SKIP() << "/usr/bin/tar is missing";
    std::string tmpl = (fs::temp_directory_path() / "lazyroot-tar-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    fs::path d = root_ / "d";
    fs::create_directory(d);
    WriteFile(d / "hello", "hello world\n", 0640);
    WriteFile(d / "suid", "#!/bin/sh\n", 04755);
    fs::path deep = d / std::string(120, 'D');
    fs::create_directory(deep);
    WriteFile(deep / std::string(90, 'f'), std::string(5000, 'x'), 0600);  // path > 200 chars
    fs::create_symlink(std::string(150, 'T'), d / "link");
    fs::create_hard_link(d / "hello", d / "hard");
    ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0644), 0);
    has_xattr_ = ::setxattr((d / "hello").c_str(), "user.lazyroot", "v\0w", 3, 0) == 0;
    // 1 MiB + 100 with data at 0 and at 512 KiB; holes elsewhere.
    fs::path sp = d / "sparse";
    int fd = ::open(sp.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    std::string a(4096, 'a'), b(4096, 'b');
    ASSERT_EQ(::pwrite(fd, a.data(), a.size(), 0), 4096);
    ASSERT_EQ(::pwrite(fd, b.data(), b.size(), 512 * 1024), 4096);
    ASSERT_EQ(::ftruncate(fd, 1024 * 1024 + 100), 0);
    ::close(fd);
    struct stat st;
    ASSERT_EQ(::stat(sp.c_str(), &st), 0);
    sparse_on_disk_ = st.st_blocks * 512 < st.st_size;
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }

  // Runs GNU tar over root_ with `flags`, returning the archive bytes.
  std::string Tar(const std::string& flags) {
    std::string cmd = "LC_ALL=C /usr/bin/tar " + flags + " -C '" + root_.string() + "' -cf - . 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (p == nullptr) return "";
    std::string out;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << cmd;
    return out;
  }

  // Parses `tar` and checks every entry against the tree; returns the entries by path.
  std::map<std::string, TarEntry> Check(const std::string& tar, const std::string& label) {
    std::map<std::string, TarEntry> by_path;
    std::vector<TarEntry> entries;
    TarReader r("gnu tar " + label, [&](const TarEntry& e) {
      entries.push_back(e);
      return Status::Ok();
    });
    // Feed in odd-sized chunks to exercise the block assembly.
    Status st;
    for (size_t i = 0; i < tar.size() && st.ok(); i += 3001) {
      size_t n = std::min<size_t>(3001, tar.size() - i);
      st = r.Feed(std::span(reinterpret_cast<const uint8_t*>(tar.data()) + i, n));
    }
    if (st.ok()) st = r.Finish();
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(r.end_of_archive()) << label;

    for (const TarEntry& e : entries) {
      std::string rel = e.path;
      if (rel.starts_with("./")) rel = rel.substr(2);
      while (!rel.empty() && rel.back() == '/') rel.pop_back();
      by_path[rel] = e;
      fs::path p = rel.empty() ? root_ : root_ / rel;
      struct stat sb;
      EXPECT_EQ(::lstat(p.c_str(), &sb), 0) << label << ": " << e.path;
      EXPECT_EQ(e.uid, sb.st_uid) << rel;
      EXPECT_EQ(e.gid, sb.st_gid) << rel;
      EXPECT_EQ(e.mtime_sec, sb.st_mtim.tv_sec) << rel;
      switch (e.type) {
        case EntryType::kDirectory:
          EXPECT_TRUE(S_ISDIR(sb.st_mode)) << rel;
          break;
        case EntryType::kSymlink:
          EXPECT_TRUE(S_ISLNK(sb.st_mode)) << rel;
          EXPECT_EQ(e.link_target, fs::read_symlink(p).string()) << rel;
          continue;  // symlink modes are not meaningful
        case EntryType::kHardlink: {
          struct stat tb;
          std::string target = e.link_target.starts_with("./") ? e.link_target.substr(2) : e.link_target;
          EXPECT_EQ(::lstat((root_ / target).c_str(), &tb), 0) << e.link_target;
          EXPECT_EQ(tb.st_ino, sb.st_ino) << rel;
          break;
        }
        case EntryType::kFifo:
          EXPECT_TRUE(S_ISFIFO(sb.st_mode)) << rel;
          break;
        case EntryType::kRegular: {
          EXPECT_TRUE(S_ISREG(sb.st_mode)) << rel;
          EXPECT_EQ(e.size, static_cast<uint64_t>(sb.st_size)) << rel;
          // Rebuild the content from the archive: contiguous, or extents over zeros.
          std::string content;
          if (e.sparse.empty()) {
            EXPECT_EQ(e.stored_size, e.size);
            content = tar.substr(e.data_offset, e.stored_size);
          } else {
            content.assign(e.size, '\0');
            uint64_t at = e.data_offset;
            for (const SparseExtent& x : e.sparse) {
              content.replace(x.logical_offset, x.length, tar.substr(at, x.length));
              at += x.length;
            }
            EXPECT_EQ(at, e.data_offset + e.stored_size) << rel;
          }
          EXPECT_TRUE(content == ReadFile(p)) << label << ": content of " << rel;
          break;
        }
        case EntryType::kCharDevice:
        case EntryType::kBlockDevice:
          ADD_FAILURE() << "unexpected device " << rel;
          break;
      }
      EXPECT_EQ(e.mode, sb.st_mode & 07777) << rel;
    }
    // Every file of the tree is in the archive.
    size_t files = 1;  // the root
    for ([[maybe_unused]] const auto& f : fs::recursive_directory_iterator(root_)) ++files;
    EXPECT_EQ(by_path.size(), files) << label;
    return by_path;
  }

  fs::path root_;
  bool has_xattr_ = false;
  bool sparse_on_disk_ = false;
};

TEST_F(TarReaderGnuTar, PosixFormatWithEachSparseVersion) {
  for (std::string version : {"0.0", "0.1", "1.0"}) {
    std::string tar = Tar("--format=posix --xattrs --sparse --sparse-version=" + version);
    auto entries = Check(tar, "posix sparse " + version);
    ASSERT_TRUE(entries.count("d/sparse")) << version;
    const TarEntry& sp = entries["d/sparse"];
    if (sparse_on_disk_) {
      EXPECT_FALSE(sp.sparse.empty()) << version;
      EXPECT_LT(sp.stored_size, sp.size) << version;
    }
    if (has_xattr_) {
      const TarEntry& h = entries["d/hello"];
      bool found = false;
      for (const auto& [k, v] : h.xattrs) found |= k == "user.lazyroot" && v == std::string("v\0w", 3);
      EXPECT_TRUE(found) << "xattr user.lazyroot in " << version;
    }
  }
}

TEST_F(TarReaderGnuTar, GnuFormat) {
  auto entries = Check(Tar("--format=gnu --sparse"), "gnu");
  ASSERT_TRUE(entries.count("d/sparse"));
  if (sparse_on_disk_) {
    EXPECT_FALSE(entries["d/sparse"].sparse.empty());
  }
  EXPECT_EQ(entries["d/suid"].mode, 04755u);
}

TEST_F(TarReaderGnuTar, UstarFormatShortNames) {
  // ustar cannot hold the 150-char symlink target: archive a subset with short names only.
  fs::remove_all(root_ / "d" / std::string(120, 'D'));
  fs::remove(root_ / "d" / "link");
  Check(Tar("--format=ustar"), "ustar");
}

}  // namespace
}  // namespace lazyroot
