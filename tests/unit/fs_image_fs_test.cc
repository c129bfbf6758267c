// ImageFs operations without a mount: a two-layer tree made by TreeBuilder
// from TarEntry values, whose file bytes live in an in-memory layer stream
// (gzip-compressed with small checkpoint spans, and a plain one), read back
// through ImageContent exactly as the FUSE adapter does.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <random>
#include <stdexcept>
#include <thread>

#include "fs/image_fs.h"
#include "index/merge.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

using fixtures::Bytes;
using fixtures::Gzip;

// A layer stream under construction: entries plus the bytes they point at.
// (The stream is not a tar: ReadFileData only follows data_offset.)
struct LayerStream {
  std::string bytes;
  std::vector<TarEntry> entries;

  TarEntry& Add(std::string path, EntryType type, uint32_t mode) {
    TarEntry e;
    e.path = std::move(path);
    e.type = type;
    e.mode = mode;
    e.mtime_sec = 1700000000;
    e.mtime_nsec = 123456789;
    entries.push_back(e);
    return entries.back();
  }
  TarEntry& File(std::string path, const std::string& data, uint32_t mode = 0644) {
    bytes.append(512, 'H');  // stands in for a header: data never starts at 0
    TarEntry& e = Add(std::move(path), EntryType::kRegular, mode);
    e.data_offset = bytes.size();
    e.size = e.stored_size = data.size();
    bytes += data;
    return e;
  }
};

std::string RandomBytes(size_t n, unsigned seed) { return fixtures::Compressible(n, seed); }

CheckpointTable TableFor(const std::string& blob, Compression c) { return fixtures::TableFor(blob, c, 64 << 10); }

class MountOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    big_ = RandomBytes(3 << 20, 1);
    sparse_data_ = "AAAA" + std::string("BBBBBBBB");
    LayerStream l0;
    l0.Add("etc/", EntryType::kDirectory, 0755);
    TarEntry& host = l0.File("etc/hostname", "demo\n");
    host.uid = 1000;
    host.gid = 100;
    host.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)},
                   {"security.selinux", "system_u:object_r:etc_t:s0"},  // hidden, as extract drops it
                   {"user.note", "hello"}};
    TarEntry& link = l0.Add("etc/hostname.link", EntryType::kHardlink, 0644);
    link.link_target = "etc/hostname";
    l0.Add("bin/", EntryType::kDirectory, 0755);
    l0.Add("bin/sh", EntryType::kSymlink, 0777).link_target = "busybox";
    l0.File("bin/busybox", "#!busybox\n", 04755);
    l0.Add("bin/ash", EntryType::kHardlink, 0).link_target = "bin/busybox";
    l0.File("big", big_);
    TarEntry& dev = l0.Add("dev/null", EntryType::kCharDevice, 0666);
    dev.dev_major = 1;
    dev.dev_minor = 3;
    // Sparse: 4 bytes at 0, a 1 MiB hole, 8 bytes at 1 MiB + 4, size 2 MiB.
    TarEntry& sp = l0.File("sparse", sparse_data_);
    sp.size = 2 << 20;
    sp.sparse = {{0, 4}, {(1 << 20) + 4, 8}};
    l0.File("empty", "");
    plain0_ = l0.bytes;
    blob0_ = Gzip(plain0_);

    LayerStream l1;
    l1.bytes.append(3000, 'x');          // layer-1 data at a different offset than any in layer 0
    l1.File("etc/hostname", "upper\n");  // replaces the lower file and its hardlink partner keeps the old
    l1.File("layer1.txt", "plain layer\n");
    blob1_ = l1.bytes;

    TreeBuilder b;
    ASSERT_TRUE(b.BeginLayer(0, "sha256:layer0").ok());
    for (const TarEntry& e : l0.entries) ASSERT_TRUE(b.Apply(e).ok()) << e.path;
    ASSERT_TRUE(b.EndLayer().ok());
    ASSERT_TRUE(b.BeginLayer(1, "sha256:layer1").ok());
    for (const TarEntry& e : l1.entries) ASSERT_TRUE(b.Apply(e).ok()) << e.path;
    ASSERT_TRUE(b.EndLayer().ok());
    auto tree = std::move(b).Finish("test tree");
    ASSERT_TRUE(tree.ok()) << tree.status().message();
    tree_ = std::make_shared<const ImageTree>(std::move(*tree));
    content_ = MakeContent(blob0_);
  }

  std::shared_ptr<const ImageContent> MakeContent(const std::string& layer0_blob) {
    std::vector<LayerBlob> layers;
    layers.push_back(LayerBlob{"sha256:layer0", MemoryByteSource(Bytes(layer0_blob), "blob sha256:layer0"),
                               std::make_shared<const CheckpointTable>(TableFor(blob0_, Compression::kGzip))});
    layers.push_back(LayerBlob{"sha256:layer1", MemoryByteSource(Bytes(blob1_), "blob sha256:layer1"),
                               std::make_shared<const CheckpointTable>(TableFor(blob1_, Compression::kNone))});
    return std::make_shared<const ImageContent>(std::move(layers));
  }

  ImageFs MakeFs(uint64_t cache_bytes = 8 << 20, unsigned workers = 2) {
    ImageFsOptions o;
    o.streams.capacity_bytes = cache_bytes;
    o.streams.prefetch_workers = workers;
    o.log = [this](const std::string& line) {
      std::lock_guard lock(log_mu_);
      log_.push_back(line);
    };
    return ImageFs(tree_, content_, std::move(o));
  }

  uint64_t Ino(const ImageFs& fs, const std::string& path) {
    auto node = fs.tree().LookupPath(path);
    EXPECT_TRUE(node.has_value()) << path;
    return ImageTree::InodeOf(node.value_or(0));
  }

  std::string ReadAll(ImageFs& fs, const std::string& path, size_t chunk = 4096) {
    const uint64_t ino = Ino(fs, path);
    EXPECT_TRUE(fs.Open(ino, false).ok());
    std::string out;
    std::vector<uint8_t> buf(chunk);
    for (;;) {
      FsResult<size_t> n = fs.Read(ino, out.size(), buf);
      EXPECT_TRUE(n.ok());
      if (!n.ok() || *n == 0) break;
      out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
    return out;
  }

  std::string big_, sparse_data_, plain0_, blob0_, blob1_;
  std::shared_ptr<const ImageTree> tree_;
  std::shared_ptr<const ImageContent> content_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(MountOpsTest, RootIsInodeOneAndInodesAreBoundsChecked) {
  ImageFs fs = MakeFs();
  auto root = fs.GetAttr(1);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(S_ISDIR(root->mode));
  EXPECT_EQ(root->ino, 1u);
  EXPECT_EQ(fs.GetAttr(0).error(), FsError::kBadInode);
  EXPECT_EQ(fs.GetAttr(uint64_t{tree_->node_count()} + 1).error(), FsError::kBadInode);
  EXPECT_TRUE(fs.GetAttr(tree_->node_count()).ok());
  EXPECT_EQ(fs.Lookup(uint64_t{1} << 40, "etc").error(), FsError::kBadInode);
  EXPECT_EQ(fs.Open(0, false).error(), FsError::kBadInode);
}

TEST_F(MountOpsTest, LookupAttributes) {
  ImageFs fs = MakeFs();
  auto etc = fs.Lookup(1, "etc");
  ASSERT_TRUE(etc.ok());
  EXPECT_EQ(etc->mode, S_IFDIR | 0755u);
  EXPECT_EQ(etc->nlink, 2u);

  auto upper = fs.Lookup(etc->ino, "hostname");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(upper->size, 6u);  // layer 1's "upper\n"
  EXPECT_EQ(upper->mode, S_IFREG | 0644u);
  EXPECT_EQ(upper->mtime_sec, 1700000000);
  EXPECT_EQ(upper->mtime_nsec, 123456789u);

  auto lower = fs.Lookup(etc->ino, "hostname.link");  // the hardlink keeps the lower file
  ASSERT_TRUE(lower.ok());
  EXPECT_EQ(lower->size, 5u);
  EXPECT_EQ(lower->uid, 1000u);
  EXPECT_EQ(lower->gid, 100u);
  EXPECT_EQ(lower->blocks, 1u);

  auto bb = fs.Lookup(fs.Lookup(1, "bin")->ino, "busybox");
  ASSERT_TRUE(bb.ok());
  EXPECT_EQ(bb->mode, S_IFREG | 04755u);
  auto sh = fs.Lookup(fs.Lookup(1, "bin")->ino, "sh");
  EXPECT_EQ(sh->mode, S_IFLNK | 0777u);
  EXPECT_EQ(sh->size, 7u);

  auto dev = fs.GetAttr(Ino(fs, "dev/null"));
  EXPECT_EQ(dev->mode, S_IFCHR | 0666u);
  EXPECT_EQ(dev->rdev_major, 1u);
  EXPECT_EQ(dev->rdev_minor, 3u);

  auto big = fs.GetAttr(Ino(fs, "big"));
  EXPECT_EQ(big->size, big_.size());
  EXPECT_EQ(big->blocks, big_.size() / 512);

  EXPECT_EQ(fs.Lookup(1, "nope").error(), FsError::kNoEntry);
  EXPECT_EQ(fs.Lookup(Ino(fs, "big"), "x").error(), FsError::kNotDir);
  EXPECT_EQ(fs.Lookup(etc->ino, ".")->ino, etc->ino);
  EXPECT_EQ(fs.Lookup(etc->ino, "..")->ino, 1u);
  EXPECT_EQ(fs.Lookup(1, "..")->ino, 1u);
}

TEST_F(MountOpsTest, HardlinksShareAnInode) {
  ImageFs fs = MakeFs();
  auto ash = fs.GetAttr(Ino(fs, "bin/ash"));
  auto busybox = fs.GetAttr(Ino(fs, "bin/busybox"));
  EXPECT_EQ(ash->ino, busybox->ino);
  EXPECT_EQ(ash->nlink, 2u);
  EXPECT_EQ(ReadAll(fs, "bin/ash"), "#!busybox\n");
  // etc/hostname was replaced by layer 1: the old file keeps only its other name.
  auto a = fs.Lookup(Ino(fs, "etc"), "hostname.link");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->nlink, 1u);  // its partner name now points at the new file
  EXPECT_NE(a->ino, fs.Lookup(Ino(fs, "etc"), "hostname")->ino);
}

TEST_F(MountOpsTest, ReadDirListsDotsThenSortedChildrenWithResumableOffsets) {
  ImageFs fs = MakeFs();
  std::vector<std::pair<std::string, uint64_t>> all;
  auto done = fs.ReadDir(1, 0, [&](const DirListing& e) {
    all.emplace_back(std::string(e.name), e.next_offset);
    return true;
  });
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  std::vector<std::string> names;
  for (auto& [n, off] : all) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "big", "bin", "dev", "empty", "etc", "layer1.txt", "sparse"}));
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].second, i + 1);

  // Resume after any entry: the rest comes out unchanged; a full buffer stops early.
  for (size_t k = 0; k < all.size(); ++k) {
    std::vector<std::string> rest;
    ASSERT_TRUE(fs.ReadDir(1, all[k].second, [&](const DirListing& e) {
                    rest.emplace_back(e.name);
                    return true;
                  }).ok());
    EXPECT_EQ(rest, std::vector<std::string>(names.begin() + static_cast<long>(k) + 1, names.end()));
  }
  int calls = 0;
  auto stopped = fs.ReadDir(1, 0, [&](const DirListing&) { return ++calls < 3; });
  EXPECT_FALSE(*stopped);
  EXPECT_EQ(calls, 3);

  // readdirplus attributes come with the children.
  ASSERT_TRUE(fs.ReadDir(Ino(fs, "bin"), 2, [&](const DirListing& e) {
                  EXPECT_FALSE(e.is_dot);
                  EXPECT_EQ(e.attr.ino, Ino(fs, "bin/" + std::string(e.name)));
                  EXPECT_EQ(e.attr.mode, fs.GetAttr(e.attr.ino)->mode);
                  return true;
                }).ok());
  EXPECT_EQ(fs.ReadDir(Ino(fs, "big"), 0, [](const DirListing&) { return true; }).error(), FsError::kNotDir);
  EXPECT_EQ(fs.OpenDir(Ino(fs, "big")).error(), FsError::kNotDir);
}

TEST_F(MountOpsTest, ReadWholeFilesAcrossLayers) {
  ImageFs fs = MakeFs();
  EXPECT_EQ(ReadAll(fs, "etc/hostname"), "upper\n");
  EXPECT_EQ(ReadAll(fs, "etc/hostname.link"), "demo\n");
  EXPECT_EQ(ReadAll(fs, "layer1.txt"), "plain layer\n");
  EXPECT_EQ(ReadAll(fs, "empty"), "");
  EXPECT_EQ(ReadAll(fs, "big", 128 << 10), big_);
  EXPECT_EQ(ReadAll(fs, "big", 1000), big_);  // unaligned chunks
}

TEST_F(MountOpsTest, RandomReadsMatchTheSourceAndStopAtEof) {
  ImageFs fs = MakeFs();
  const uint64_t f = Ino(fs, "big");
  std::mt19937 rng(3);
  std::vector<uint8_t> buf(70000);
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng() % (big_.size() + 100);
    size_t len = rng() % buf.size() + 1;
    FsResult<size_t> n = fs.Read(f, off, {buf.data(), len});
    ASSERT_TRUE(n.ok());
    size_t expect = off >= big_.size() ? 0 : std::min<size_t>(len, big_.size() - off);
    ASSERT_EQ(*n, expect) << off;
    ASSERT_EQ(std::string(reinterpret_cast<char*>(buf.data()), *n),
              big_.substr(std::min<size_t>(off, big_.size()), *n));
  }
  FsResult<size_t> past = fs.Read(f, uint64_t{1} << 40, buf);
  EXPECT_EQ(*past, 0u);
}

TEST_F(MountOpsTest, SparseHolesReadAsZerosAndTakeNoBlocks) {
  ImageFs fs = MakeFs();
  std::string all = ReadAll(fs, "sparse", 65536);
  ASSERT_EQ(all.size(), 2u << 20);
  std::string expect(2 << 20, '\0');
  expect.replace(0, 4, "AAAA");
  expect.replace((1 << 20) + 4, 8, "BBBBBBBB");
  EXPECT_EQ(all, expect);
  EXPECT_EQ(fs.GetAttr(Ino(fs, "sparse"))->blocks, 1u);  // 12 stored bytes
}

TEST_F(MountOpsTest, AccessFollowsTheModeBits) {
  ImageFs fs = MakeFs();
  const Caller root;
  const uint64_t hostname = Ino(fs, "etc/hostname");  // 0644 root:root
  const uint64_t busybox = Ino(fs, "bin/busybox");    // 0755
  EXPECT_TRUE(fs.Access(hostname, R_OK, root).ok());
  EXPECT_EQ(fs.Access(hostname, X_OK, root).error(), FsError::kAccess);  // root too needs an x bit
  EXPECT_TRUE(fs.Access(busybox, X_OK, root).ok());
  EXPECT_TRUE(fs.Access(1, X_OK, root).ok());  // directories are searchable by root
  EXPECT_EQ(fs.Access(hostname, W_OK, root).error(), FsError::kReadOnly);
  Caller user;
  user.uid = 1000;
  user.gid = 1000;
  EXPECT_TRUE(fs.Access(hostname, R_OK, user).ok());  // other r--
  EXPECT_EQ(fs.Access(hostname, R_OK | X_OK, user).error(), FsError::kAccess);
  EXPECT_TRUE(fs.Access(busybox, R_OK | X_OK, user).ok());
  EXPECT_TRUE(fs.Access(hostname, F_OK, user).ok());
  EXPECT_EQ(fs.Access(hostname, W_OK, user).error(), FsError::kReadOnly);
  // Device nodes are not written through the file system: their modes decide.
  const uint64_t null = Ino(fs, "dev/null");  // 0666
  EXPECT_TRUE(fs.Access(null, R_OK | W_OK, user).ok());
  EXPECT_TRUE(fs.Access(null, W_OK, root).ok());
  EXPECT_EQ(fs.Access(0, R_OK, user).error(), FsError::kBadInode);
}

TEST_F(MountOpsTest, SeekDataAndHoleFollowTheSparseMap) {
  ImageFs fs = MakeFs();
  const uint64_t sp = Ino(fs, "sparse");  // 2 MiB: data [0,4) and [1 MiB+4, 1 MiB+12)
  const uint64_t mib = 1 << 20;
  EXPECT_EQ(*fs.Seek(sp, 0, true), 0u);
  EXPECT_EQ(*fs.Seek(sp, 0, false), 4u);
  EXPECT_EQ(*fs.Seek(sp, 3, false), 4u);
  EXPECT_EQ(*fs.Seek(sp, 4, true), mib + 4);
  EXPECT_EQ(*fs.Seek(sp, 4, false), 4u);  // already in a hole
  EXPECT_EQ(*fs.Seek(sp, mib + 5, true), mib + 5);
  EXPECT_EQ(*fs.Seek(sp, mib + 5, false), mib + 12);
  EXPECT_EQ(fs.Seek(sp, mib + 12, true).error(), FsError::kNoOffset);  // only the trailing hole is left
  EXPECT_EQ(*fs.Seek(sp, 2 * mib - 1, false), 2 * mib - 1);
  EXPECT_EQ(fs.Seek(sp, 2 * mib, false).error(), FsError::kNoOffset);  // at EOF
  const uint64_t big = Ino(fs, "big");
  EXPECT_EQ(*fs.Seek(big, 12345, true), 12345u);
  EXPECT_EQ(*fs.Seek(big, 12345, false), big_.size());
  EXPECT_EQ(fs.Seek(big, big_.size(), true).error(), FsError::kNoOffset);
  EXPECT_EQ(fs.Seek(Ino(fs, "empty"), 0, true).error(), FsError::kNoOffset);
  EXPECT_EQ(fs.Seek(1, 0, true).error(), FsError::kNoOffset);  // a directory
  EXPECT_EQ(fs.Seek(0, 0, true).error(), FsError::kBadInode);
}

TEST_F(MountOpsTest, ReadersShareTheStreamCache) {
  ImageFs fs = MakeFs();
  EXPECT_EQ(ReadAll(fs, "big", 65536), big_);
  StreamCacheStats first = fs.streams().stats();
  EXPECT_GT(first.cache.insertions, 0u);
  EXPECT_LE(first.cache.bytes, 8u << 20);
  EXPECT_EQ(ReadAll(fs, "big", 65536), big_);  // a second reader: served from the cache
  StreamCacheStats second = fs.streams().stats();
  EXPECT_EQ(second.cache.insertions, first.cache.insertions);
  EXPECT_EQ(second.decoded_units, first.decoded_units);
  EXPECT_GT(second.cache.hits, first.cache.hits);

  ImageFs uncached = MakeFs(0);
  EXPECT_EQ(ReadAll(uncached, "big", 65536), big_);
  EXPECT_EQ(uncached.streams().stats().cache.insertions, 0u);
}

TEST_F(MountOpsTest, NonRegularAndBadInodesReadNothing) {
  ImageFs fs = MakeFs();
  std::vector<uint8_t> buf(100);
  EXPECT_EQ(*fs.Read(1, 0, buf), 0u);                  // the root directory
  EXPECT_EQ(*fs.Read(Ino(fs, "bin/sh"), 0, buf), 0u);  // a symlink
  EXPECT_EQ(fs.Read(0, 0, buf).error(), FsError::kBadInode);
}

TEST_F(MountOpsTest, ConcurrentReadersOfOneFile) {
  ImageFs fs = MakeFs(1 << 20);  // small: evictions race with hits and read-ahead
  const uint64_t big = Ino(fs, "big");
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<uint8_t> buf(20000);
      for (int i = 0; i < 60; ++i) {
        // Half the threads read sequential runs (read-ahead kicks in), half at random.
        uint64_t off = (t % 2) ? rng() % big_.size() : (uint64_t{20000} * i) % big_.size();
        FsResult<size_t> n = fs.Read(big, off, buf);
        if (!n.ok() || std::string(reinterpret_cast<char*>(buf.data()), *n) != big_.substr(off, *n)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(fs.streams().stats().cache.bytes, 1u << 20);
}

TEST_F(MountOpsTest, TruncatedBlobIsAnIoErrorLoggedOnceWithTheBlob) {
  // The blob ends halfway (a truncated download that slipped through): the
  // decoder runs out of input in the middle of the big file.
  std::string broken = blob0_.substr(0, blob0_.size() / 2);
  content_ = MakeContent(broken);
  ImageFs fs = MakeFs();
  const uint64_t f = Ino(fs, "big");
  std::vector<uint8_t> buf(1 << 20);
  bool failed = false;
  for (uint64_t off = 0; off < big_.size(); off += buf.size()) {
    FsResult<size_t> n = fs.Read(f, off, buf);
    if (!n.ok()) {
      EXPECT_EQ(n.error(), FsError::kIo);
      failed = true;
      break;
    }
  }
  EXPECT_TRUE(failed);
  std::lock_guard lock(log_mu_);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_NE(log_[0].find("sha256:layer0"), std::string::npos) << log_[0];
  EXPECT_NE(log_[0].find("offset"), std::string::npos) << log_[0];
}

TEST_F(MountOpsTest, OpenRefusesDirectoriesAndWriting) {
  ImageFs fs = MakeFs();
  EXPECT_EQ(fs.Open(1, false).error(), FsError::kIsDir);
  EXPECT_EQ(fs.Open(Ino(fs, "big"), true).error(), FsError::kReadOnly);
}

TEST_F(MountOpsTest, ReadLink) {
  ImageFs fs = MakeFs();
  EXPECT_EQ(*fs.ReadLink(Ino(fs, "bin/sh")), "busybox");
  EXPECT_EQ(fs.ReadLink(Ino(fs, "big")).error(), FsError::kNotSymlink);
}

TEST_F(MountOpsTest, XattrSizeProtocol) {
  ImageFs fs = MakeFs();
  const uint64_t ino = Ino(fs, "etc/hostname.link");
  const std::string list = std::string("security.capability") + '\0' + "user.note" + '\0';
  auto probe = fs.ListXattr(ino, 0);
  EXPECT_EQ(probe->size, list.size());
  EXPECT_TRUE(probe->data.empty());
  EXPECT_EQ(fs.ListXattr(ino, list.size())->data, list);
  EXPECT_EQ(fs.ListXattr(ino, list.size() - 1).error(), FsError::kRange);
  EXPECT_EQ(fs.ListXattr(1, 0)->size, 0u);

  EXPECT_EQ(fs.GetXattr(ino, "user.note", 0)->size, 5u);
  EXPECT_EQ(fs.GetXattr(ino, "user.note", 100)->data, "hello");
  EXPECT_EQ(fs.GetXattr(ino, "user.note", 4).error(), FsError::kRange);
  EXPECT_EQ(fs.GetXattr(ino, "security.capability", 4)->data, std::string("\x01\x00\x00\x02", 4));
  EXPECT_EQ(fs.GetXattr(ino, "security.selinux", 100).error(), FsError::kNoData);
  EXPECT_EQ(fs.GetXattr(ino, "user.none", 100).error(), FsError::kNoData);
  EXPECT_EQ(fs.GetXattr(0, "user.none", 100).error(), FsError::kBadInode);
}

TEST_F(MountOpsTest, LayerXattrOnlyInDebugViews) {
  ImageFs plain = MakeFs();
  for (NodeId id = 0; id < plain.tree().node_count(); ++id) {
    const std::string list = plain.ListXattr(ImageTree::InodeOf(id), 1 << 16)->data;
    EXPECT_EQ(list.find("user.lazyroot"), std::string::npos) << id;
    EXPECT_EQ(plain.GetXattr(ImageTree::InodeOf(id), kLayerXattr, 100).error(), FsError::kNoData);
  }
  ImageFsOptions o;
  o.layer_xattr_values = {"1 sha256:l0", "2 sha256:l1"};
  o.synthetic_nodes = 1;  // the root stands for a view's own directory here
  ImageFs view(tree_, content_, std::move(o));
  const uint64_t ino = Ino(view, "etc/hostname.link");
  const Node n = view.tree().GetNode(*view.NodeOf(ino));
  EXPECT_EQ(view.GetXattr(ino, kLayerXattr, 100)->data, n.layer == 0 ? "1 sha256:l0" : "2 sha256:l1");
  const std::string list = view.ListXattr(ino, 1 << 16)->data;
  EXPECT_EQ(list, std::string("security.capability") + '\0' + "user.note" + '\0' + "user.lazyroot.layer" + '\0');
  EXPECT_EQ(view.GetXattr(ino, "user.note", 100)->data, "hello");
  EXPECT_EQ(view.GetXattr(1, kLayerXattr, 100).error(), FsError::kNoData);  // synthetic
  // Not on a symlink: the kernel would not let anyone read it.
  EXPECT_EQ(view.GetXattr(Ino(view, "bin/sh"), kLayerXattr, 100).error(), FsError::kNoData);
  EXPECT_EQ(view.ListXattr(Ino(view, "bin/sh"), 0)->size, 0u);
  EXPECT_EQ(view.GetXattr(Ino(view, "etc"), kLayerXattr, 100)->data.substr(0, 2), "1 ");
  EXPECT_EQ(view.ListXattr(1, 0)->size, 0u);
}

TEST_F(MountOpsTest, StatFsCountsNodesAndBytes) {
  ImageFs fs = MakeFs();
  FsStats s = fs.StatFs();
  EXPECT_EQ(s.files, tree_->node_count());
  uint64_t bytes = 6 + 5 + 10 + big_.size() + (2u << 20) + 12;  // hostname, its old link, busybox, big, sparse, layer1
  EXPECT_EQ(s.blocks, (bytes + 4095) / 4096);
  // The walk statfs made before the header recorded the total: the same.
  uint64_t walked = 0;
  for (NodeId id = 0; id < tree_->node_count(); ++id) {
    const Node n = tree_->GetNode(id);
    if (n.type == NodeType::kRegular) walked += n.size;
  }
  EXPECT_EQ(s.blocks, (walked + 4095) / 4096);
  // A mount's lazily read tree answers the same without reading a block.
  auto lazy = ImageTree::OpenLazy(std::vector<uint8_t>(tree_->bytes().begin(), tree_->bytes().end()), "lazy");
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  auto lazy_tree = std::make_shared<const ImageTree>(std::move(*lazy));
  const uint32_t read_at_open = lazy_tree->blocks_read();
  ImageFs lazy_fs(lazy_tree, content_, ImageFsOptions{});
  FsStats l = lazy_fs.StatFs();
  EXPECT_EQ(l.files, s.files);
  EXPECT_EQ(l.blocks, s.blocks);
  EXPECT_EQ(lazy_tree->blocks_read(), read_at_open);
}

// A handler that throws answers an errno and logs one line naming the
// operation and the inode, instead of ending the daemon.
TEST(FailedRequest, OutOfMemoryIsENOMEMAndLogged) {
  std::vector<std::string> lines;
  auto log = [&](const std::string& l) { lines.push_back(l); };
  int err = 0;
  try {
    throw std::bad_alloc();
  } catch (...) {
    err = FailedRequestErrno("read", 42, log);
  }
  EXPECT_EQ(err, ENOMEM);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "read inode 42: out of memory");
  try {
    throw std::runtime_error("boom");
  } catch (...) {
    err = FailedRequestErrno("lookup", 1, log);
  }
  EXPECT_EQ(err, EIO);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "lookup inode 1: internal error: boom");
  // A log that throws too (still out of memory) costs the line, not the daemon.
  try {
    throw std::bad_alloc();
  } catch (...) {
    err = FailedRequestErrno("getattr", 7, [](const std::string&) { throw std::bad_alloc(); });
  }
  EXPECT_EQ(err, ENOMEM);
  try {
    throw 3;
  } catch (...) {
    err = FailedRequestErrno("open", 9, nullptr);
  }
  EXPECT_EQ(err, EIO);
  // A damaged part of a lazily read tree: EIO, its message logged the first
  // time only (a walk meets one damaged block once per node in it).
  for (bool first : {true, false}) {
    try {
      throw TreeCorruptionError("image tree /s/trees/ab (image sha256:ab): block 3: checksum mismatch", first);
    } catch (...) {
      err = FailedRequestErrno("lookup", 5, log);
    }
    EXPECT_EQ(err, EIO);
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "lookup inode 5: image tree /s/trees/ab (image sha256:ab): block 3: checksum mismatch");
}

}  // namespace
}  // namespace lazyroot

namespace lazyroot {
namespace {

// mount --krun-config: a file of ours at the root, hiding the image's entry
// of the same name (here the image's directory "etc" stands in for a planted
// /.krun_config.json), served from memory, read-only, without xattrs.
TEST_F(MountOpsTest, RootFilesAreServedAtTheRootAndHideTheImagesEntry) {
  ImageFsOptions o;
  o.root_files = {RootFile{"etc", "{\"ociVersion\":\"1.0.2\"}\n", 1700000000},
                  RootFile{".krun_config.json", "config", 5}};
  ImageFs fs(tree_, content_, std::move(o));
  const uint64_t first = uint64_t{tree_->node_count()} + 1;

  FsResult<Attr> etc = fs.Lookup(1, "etc");
  ASSERT_TRUE(etc.ok());
  EXPECT_EQ(etc->ino, first);
  EXPECT_EQ(etc->mode, S_IFREG | 0444u);
  EXPECT_EQ(etc->size, 23u);
  EXPECT_EQ(etc->mtime_sec, 1700000000);
  EXPECT_EQ(fs.GetAttr(first + 1)->size, 6u);
  EXPECT_EQ(fs.GetAttr(first + 2).error(), FsError::kBadInode);
  // Only at the root: the image's own tree is unchanged below it.
  EXPECT_EQ(fs.Lookup(Ino(fs, "bin"), ".krun_config.json").error(), FsError::kNoEntry);

  std::vector<std::pair<std::string, uint64_t>> all;
  ASSERT_TRUE(fs.ReadDir(1, 0, [&](const DirListing& e) {
                  all.emplace_back(std::string(e.name), e.next_offset);
                  return true;
                }).ok());
  std::vector<std::string> names;
  for (auto& [n, off] : all) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "big", "bin", "dev", "empty", "layer1.txt", "sparse", "etc",
                                             ".krun_config.json"}));
  for (size_t k = 0; k < all.size(); ++k) {  // resumable after every entry
    std::vector<std::string> rest;
    ASSERT_TRUE(fs.ReadDir(1, all[k].second, [&](const DirListing& e) {
                    rest.emplace_back(e.name);
                    return true;
                  }).ok());
    EXPECT_EQ(rest, std::vector<std::string>(names.begin() + static_cast<long>(k) + 1, names.end())) << k;
  }

  std::vector<uint8_t> buf(64);
  EXPECT_TRUE(fs.Open(first, false).ok());
  EXPECT_EQ(fs.Open(first, true).error(), FsError::kReadOnly);
  FsResult<size_t> n = fs.Read(first, 2, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), *n), "ociVersion\":\"1.0.2\"}\n");
  EXPECT_EQ(*fs.Read(first, 23, buf), 0u);
  EXPECT_EQ(fs.OpenDir(first).error(), FsError::kNotDir);
  EXPECT_EQ(fs.ReadLink(first).error(), FsError::kNotSymlink);
  EXPECT_EQ(fs.ListXattr(first, 0)->size, 0u);
  EXPECT_EQ(fs.GetXattr(first, "user.lazyroot.layer", 100).error(), FsError::kNoData);
  Caller user{1000, 1000, {}};
  EXPECT_TRUE(fs.Access(first, R_OK, user).ok());
  EXPECT_EQ(fs.Access(first, W_OK, user).error(), FsError::kReadOnly);
  EXPECT_EQ(fs.Access(first, X_OK, Caller{}).error(), FsError::kAccess);
  EXPECT_EQ(*fs.Seek(first, 3, true), 3u);
  EXPECT_EQ(*fs.Seek(first, 3, false), 23u);
  EXPECT_EQ(fs.StatFs().files, uint64_t{tree_->node_count()} + 2);
}

}  // namespace
}  // namespace lazyroot

namespace lazyroot {
namespace {

// statfs on a lazily read tree with one damaged block of node records: df
// (and every package manager's free-space check, which calls statvfs on /)
// answers from the tree's header, reading no block: the totals of the
// undamaged tree, nothing logged. The damage is logged once, by the first
// request that meets it, and a request that needs a damaged node answers EIO.
TEST(LazyTreeStatFs, StatFsReadsNoBlockSoADamagedOneDoesNotMatter) {
  constexpr uint32_t kFiles = 2000;  // 160 kB of node records: three 64 KiB blocks
  ImageTreeWriter w({"sha256:layer0"});
  std::vector<std::string> names;
  for (uint32_t i = 0; i < kFiles; ++i) names.push_back("f" + std::to_string(100000 + i));
  std::vector<DirEntry> children;
  for (uint32_t i = 0; i < kFiles; ++i) children.push_back(DirEntry{names[i], i + 1});
  Node root;
  root.type = NodeType::kDirectory;
  root.mode = 0755;
  root.nlink = 2;
  w.AddNode(root, children, {}, {});
  for (uint32_t i = 0; i < kFiles; ++i) {
    Node f;
    f.mode = 0644;
    f.size = f.stored_size = 3;
    w.AddNode(f, {}, {}, {});
  }
  auto built = w.Finish("statfs tree");
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  std::vector<uint8_t> bytes(built->bytes().begin(), built->bytes().end());
  uint64_t nodes_offset;
  std::memcpy(&nodes_offset, bytes.data() + 48, 8);
  const uint64_t damaged_at = nodes_offset + 1000 * 80 + 16;  // node 1000's mtime, block 1 (nodes only)
  bytes[damaged_at] ^= 0xff;                                  // its block's checksum no longer matches
  auto lazy = ImageTree::OpenLazy(std::move(bytes), "statfs tree");
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  auto tree = std::make_shared<const ImageTree>(std::move(*lazy));
  const uint32_t read_at_open = tree->blocks_read();
  ASSERT_LT(read_at_open, tree->block_count());

  static const std::string blob(3, 'x');
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:layer0", MemoryByteSource(Bytes(blob), "blob sha256:layer0"),
                             std::make_shared<const CheckpointTable>(TableFor(blob, Compression::kNone))});
  auto content = std::make_shared<const ImageContent>(std::move(layers));
  std::vector<std::string> log;
  ImageFsOptions o;
  o.log = [&log](const std::string& line) { log.push_back(line); };
  ImageFs fs(tree, content, std::move(o));

  FsStats s;
  ASSERT_NO_THROW(s = fs.StatFs());
  EXPECT_EQ(s.files, uint64_t{kFiles} + 1);
  EXPECT_EQ(s.blocks, (uint64_t{kFiles} * 3 + 4095) / 4096);  // the damaged block's files too
  EXPECT_EQ(tree->blocks_read(), read_at_open);
  EXPECT_TRUE(log.empty());
  // readdir lists every name: a damaged child with its inode number only
  // (readdirplus does not instantiate it), the names after it as usual.
  uint32_t listed = 0, unknown = 0;
  FsResult<bool> done = fs.ReadDir(1, 2, [&](const DirListing& e) {
    EXPECT_EQ(e.name, names[listed]);
    EXPECT_EQ(e.attr.ino, uint64_t{listed} + 2);
    if (!e.attr_known) {
      ++unknown;
      EXPECT_EQ(e.attr.mode, 0u);
    } else {
      EXPECT_EQ(e.attr.mode, S_IFREG | 0644u);
    }
    ++listed;
    return true;
  });
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(listed, kFiles);
  EXPECT_GT(unknown, 0u);
  EXPECT_LT(unknown, kFiles / 2);
  ASSERT_EQ(log.size(), 1u);  // reported once, by readdir
  EXPECT_NE(log[0].find("checksum mismatch"), std::string::npos) << log[0];
  // The node itself still fails (EIO through FailedRequestErrno), not logged again.
  EXPECT_THROW((void)fs.GetAttr(ImageTree::InodeOf(1000)), TreeCorruptionError);
  EXPECT_TRUE(fs.GetAttr(ImageTree::InodeOf(1)).ok());
}

}  // namespace
}  // namespace lazyroot
