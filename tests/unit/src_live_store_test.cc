// An image opened like the library opens it (OpenImage), then its store
// files changed underneath: the tree, each layer index and each blob,
// truncated, rewritten in place, replaced by rename, deleted. Reads through
// the opened ImageContent must return the right bytes or an error, never
// wrong bytes and never a signal (the tree used to be mmap'd: truncating it
// was SIGBUS). A fresh OpenImage afterwards rebuilds what it must or fails
// naming the object.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "index/sha256.h"
#include "src/store/open_image.h"
#include "tests/unit/compressed_fixtures.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

namespace fs = std::filesystem;
using fixtures::Compressible;
using fixtures::Gzip;
using tartest::File;
using tartest::Zeros;

std::string Digest(std::string_view bytes) {
  Sha256 h;
  h.Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  return "sha256:" + h.FinishHex();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string Garbage(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

enum class Damage { kTruncateHalf, kTruncateZero, kRewriteInPlace, kReplaceByRename, kDelete };
const char* DamageName(Damage d) {
  switch (d) {
    case Damage::kTruncateHalf: return "truncated to half";
    case Damage::kTruncateZero: return "truncated to 0";
    case Damage::kRewriteInPlace: return "rewritten in place";
    case Damage::kReplaceByRename: return "replaced by rename";
    case Damage::kDelete: return "deleted";
  }
  return "?";
}
constexpr Damage kAllDamage[] = {Damage::kTruncateHalf, Damage::kTruncateZero, Damage::kRewriteInPlace,
                                 Damage::kReplaceByRename, Damage::kDelete};

void Apply(Damage d, const std::string& path) {
  const auto size = static_cast<off_t>(fs::file_size(path));
  switch (d) {
    case Damage::kTruncateHalf:
      ASSERT_EQ(::truncate(path.c_str(), size / 2), 0) << path;
      break;
    case Damage::kTruncateZero:
      ASSERT_EQ(::truncate(path.c_str(), 0), 0) << path;
      break;
    case Damage::kRewriteInPlace: {
      // Same inode, same size, other bytes (what a stray writer does).
      int fd = ::open(path.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0) << path;
      std::string g = Garbage(static_cast<size_t>(size), 7);
      ASSERT_EQ(::pwrite(fd, g.data(), g.size(), 0), static_cast<ssize_t>(g.size()));
      ::close(fd);
      break;
    }
    case Damage::kReplaceByRename: {
      std::string tmp = path + ".replacement";
      WriteAll(tmp, Garbage(static_cast<size_t>(size), 11));
      ASSERT_EQ(::rename(tmp.c_str(), path.c_str()), 0) << path;
      break;
    }
    case Damage::kDelete:
      ASSERT_EQ(::unlink(path.c_str()), 0) << path;
      break;
  }
}

class LiveStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-live-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    // Layer 0 gzip (a checkpointed stream), layer 1 uncompressed (reads are
    // preads of the blob); big enough for several reads per file.
    files_["a"] = Compressible(300000, 1);
    files_["dir/b"] = "layer zero's b\n";
    files_["c"] = Compressible(200000, 2);
    std::string tar0 = File("a", files_["a"]) + File("dir/b", files_["dir/b"]) + Zeros(2);
    files_["dir/b"] = "layer one's b\n";
    std::string tar1 = File("c", files_["c"]) + File("dir/b", files_["dir/b"]) + Zeros(2);
    blobs_ = {Gzip(tar0), tar1};
    diff_ids_ = {Digest(tar0), Digest(tar1)};
  }
  void TearDown() override {
    lock_.reset();
    store_.reset();
    fs::remove_all(tmp_);
  }

  // A fresh store holding the image (its blobs and config; indexes and tree
  // are built by the first OpenImage).
  void MakeStore() {
    lock_.reset();
    store_.reset();
    fs::remove_all(tmp_ + "/store");
    auto s = Store::Open(tmp_ + "/store");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    // OpenImage's requirement, as mount and extract hold it (src/store/STORE.md).
    auto lock = store_->LockStore(/*exclusive=*/false);
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    lock_.emplace(std::move(*lock));
    record_ = ImageRecord{};
    record_.reference = "example.test/live:v1";
    record_.manifest_digest = Digest("manifest of example.test/live:v1");
    std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" +
                         diff_ids_[0] + R"(",")" + diff_ids_[1] + R"("]}})";
    record_.config_digest = Digest(config);
    ASSERT_TRUE(store_->WriteBlob(record_.config_digest, config).ok());
    for (const std::string& b : blobs_) {
      record_.layer_digests.push_back(Digest(b));
      ASSERT_TRUE(store_->WriteBlob(record_.layer_digests.back(), b).ok());
    }
  }

  // Opens the image the way mount and extract do, with its tree and indexes
  // already in the store (a second open: the first one built them).
  OpenedImage OpenWarm() {
    auto first = OpenImage(*store_, record_);
    EXPECT_TRUE(first.ok()) << first.status().ToString();
    auto img = OpenImage(*store_, record_);
    EXPECT_TRUE(img.ok()) << img.status().ToString();
    EXPECT_FALSE(img->tree_built) << "the stored tree was not used";
    return std::move(*img);
  }

  // Reads every regular file in 64 KiB steps; each read gives the right
  // bytes or an error. Returns how many reads failed.
  int CheckReads(const OpenedImage& img, const std::string& what) {
    int errors = 0;
    std::vector<std::unique_ptr<RandomReader>> readers;
    for (uint32_t i = 0; i < img.content->layer_count(); ++i) readers.push_back(img.content->NewReader(i));
    for (const auto& [path, want] : files_) {
      auto id = img.tree->LookupPath(path);
      EXPECT_TRUE(id.has_value()) << what << ": " << path << " missing from the tree";
      if (!id) continue;
      Node node = img.tree->GetNode(*id);
      EXPECT_EQ(node.size, want.size()) << what << ": " << path;
      std::vector<uint8_t> buf(65536);
      for (uint64_t off = 0; off < want.size(); off += buf.size()) {
        size_t n = 0;
        Status st = ReadFileData(*img.tree, *id, *readers.at(node.layer), off, buf, &n);
        if (!st.ok()) {
          ++errors;
          EXPECT_FALSE(st.message().empty());
          continue;
        }
        size_t expect = std::min<uint64_t>(buf.size(), want.size() - off);
        EXPECT_EQ(n, expect) << what << ": " << path << " @" << off;
        if (n != expect) continue;
        EXPECT_EQ(std::memcmp(buf.data(), want.data() + off, n), 0)
            << what << ": " << path << " @" << off << " read different bytes";
      }
    }
    return errors;
  }

  std::string tmp_;
  std::map<std::string, std::string> files_;
  std::vector<std::string> blobs_, diff_ids_;
  std::unique_ptr<Store> store_;
  std::optional<FileLock> lock_;
  ImageRecord record_;
};

TEST_F(LiveStoreTest, TreeChangedUnderAnOpenImageChangesNothingItServes) {
  for (Damage d : kAllDamage) {
    SCOPED_TRACE(DamageName(d));
    MakeStore();
    OpenedImage img = OpenWarm();
    EXPECT_EQ(img.tree->ImageDigest(), record_.manifest_digest);
    Apply(d, store_->TreePath(record_.manifest_digest));
    // Before the tree was read into memory, this was SIGBUS (truncation) or
    // records changed after validation (rewrite in place).
    EXPECT_EQ(CheckReads(img, "open image"), 0);
    ASSERT_EQ(img.tree->node_count(), 5u);  // root, a, c, dir, dir/b
    // The next open rebuilds the tree (a cache), never an error.
    auto again = OpenImage(*store_, record_);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(again->tree_built);
    EXPECT_EQ(CheckReads(*again, "reopened image"), 0);
  }
}

TEST_F(LiveStoreTest, LayerIndexChangedUnderAnOpenImageChangesNothingItServes) {
  for (Damage d : kAllDamage) {
    for (size_t layer = 0; layer < 2; ++layer) {
      SCOPED_TRACE(std::string(DamageName(d)) + ", layer " + std::to_string(layer));
      MakeStore();
      OpenedImage img = OpenWarm();
      Apply(d, store_->IndexPath(record_.layer_digests[layer]));
      EXPECT_EQ(CheckReads(img, "open image"), 0);  // the index was read into memory at open
      auto again = OpenImage(*store_, record_);     // rebuilt from the blob
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      EXPECT_EQ(CheckReads(*again, "reopened image"), 0);
      EXPECT_TRUE(fs::exists(store_->IndexPath(record_.layer_digests[layer])));
    }
  }
}

TEST_F(LiveStoreTest, BlobChangedUnderAnOpenImageGivesRightBytesOrErrors) {
  for (Damage d : kAllDamage) {
    for (size_t layer = 0; layer < 2; ++layer) {
      SCOPED_TRACE(std::string(DamageName(d)) + ", layer " + std::to_string(layer));
      MakeStore();
      OpenedImage img = OpenWarm();
      const std::string blob = store_->BlobPath(record_.layer_digests[layer]);
      Apply(d, blob);
      {
        // Rewritten in place, even an uncompressed blob: the verified reads
        // (chunk digests of layer index v2) make its changed bytes errors.
        int errors = CheckReads(img, "open image");
        // Renamed over or deleted: the descriptor opened at OpenImage still
        // reads the old bytes. Truncated: the lost bytes are errors, not a
        // short read taken for the end of the data (or zeros).
        if (d == Damage::kReplaceByRename || d == Damage::kDelete) {
          EXPECT_EQ(errors, 0);
        }
        if (d == Damage::kTruncateHalf || d == Damage::kTruncateZero) {
          EXPECT_GT(errors, 0);
        }
      }
      // A fresh open: the tree and indexes are still sound and the blob is
      // not re-read at open (a mount starts in milliseconds), so it opens, or
      // fails naming the blob (deleted, or shorter than its index says);
      // reads give right bytes or errors.
      auto again = OpenImage(*store_, record_);
      if (d == Damage::kDelete || d == Damage::kTruncateHalf || d == Damage::kTruncateZero) {
        ASSERT_FALSE(again.ok());
        EXPECT_NE(again.status().message().find(record_.layer_digests[layer]), std::string::npos)
            << again.status().ToString();
      } else {
        ASSERT_TRUE(again.ok()) << again.status().ToString();
        CheckReads(*again, "reopened image");
      }
      // Re-hashing the stored blob (what fsck does) refuses it by name.
      Status checked = VerifyStoredBlob(*store_, record_.layer_digests[layer]);
      ASSERT_FALSE(checked.ok());
      EXPECT_NE(checked.message().find(record_.layer_digests[layer]), std::string::npos) << checked.ToString();
    }
  }
}

TEST_F(LiveStoreTest, ATreeOfAnotherImageIsRebuiltNotServed) {
  MakeStore();
  OpenedImage img = OpenWarm();
  // Another image with the same layers (another manifest: other annotations,
  // say). Its tree is a valid tree of the same layers, but not this image's.
  ImageRecord other = record_;
  other.reference = "example.test/live:other";
  other.manifest_digest = Digest("another manifest");
  ASSERT_EQ(::rename(store_->TreePath(record_.manifest_digest).c_str(), store_->TreePath(other.manifest_digest).c_str()),
            0);
  auto opened = OpenImage(*store_, other);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->tree_built) << "a tree recording image " << record_.manifest_digest << " was served for "
                                  << other.manifest_digest;
  EXPECT_EQ(opened->tree->ImageDigest(), other.manifest_digest);
  auto stored = ImageTree::OpenFile(store_->TreePath(other.manifest_digest));
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->ImageDigest(), other.manifest_digest);
}

TEST_F(LiveStoreTest, AVersion1TreeIsRebuiltNotAnError) {
  MakeStore();
  OpenedImage img = OpenWarm();
  // The same file as version 1 wrote it: version 1, no image digest (bytes
  // 104..123 zero), checksum over the rest (index/FORMAT.md).
  std::string path = store_->TreePath(record_.manifest_digest);
  std::string b = ReadAll(path);
  uint32_t v1 = 1;
  std::memcpy(b.data() + 8, &v1, 4);
  std::memset(b.data() + 104, 0, 20);
  auto bytes = std::vector<uint8_t>(b.begin(), b.end());
  auto rejected = ImageTree::Open(bytes, "v1 tree");
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.status().message().find("version 1"), std::string::npos) << rejected.status().ToString();
  WriteAll(path, b);
  auto opened = OpenImage(*store_, record_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->tree_built);
  EXPECT_EQ(CheckReads(*opened, "rebuilt"), 0);
  auto stored = ImageTree::OpenFile(path);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->ImageDigest(), record_.manifest_digest);
}

TEST_F(LiveStoreTest, AStoreThatCannotTakeTheTreeStillOpens) {
  MakeStore();
  // trees/ replaced by a file: publishing the built tree fails; the tree is
  // a cache and is in memory, so the image opens anyway.
  fs::remove_all(tmp_ + "/store/trees");
  WriteAll(tmp_ + "/store/trees", "not a directory");
  auto opened = OpenImage(*store_, record_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->tree_built);
  EXPECT_EQ(CheckReads(*opened, "unstored tree"), 0);
}

}  // namespace
}  // namespace lazyroot
