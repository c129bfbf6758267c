// ImageTree tests: the file round trip (in memory == written and read
// back), lookups and inode mapping, in-root Resolve, and corruption: every
// flipped byte and every truncation is an error, and records rewritten with a
// *valid* checksum never crash a reader (run under ASan too).

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "index/image_tree.h"
#include "index/merge.h"

namespace lazyroot {
namespace {

TarEntry Make(std::string path, EntryType type, uint32_t mode = 0644) {
  TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  return e;
}
TarEntry File(std::string path, uint64_t size, uint64_t data_offset) {
  TarEntry e = Make(std::move(path), EntryType::kRegular);
  e.size = e.stored_size = size;
  e.data_offset = data_offset;
  return e;
}
TarEntry Linked(std::string path, EntryType type, std::string target) {
  TarEntry e = Make(std::move(path), type, 0777);
  e.link_target = std::move(target);
  return e;
}

// A tree that uses every record kind: dirs, files, sparse, symlinks,
// hardlinks, devices, fifo, xattrs, two layers, whiteouts.
ImageTree SampleTree() {
  TreeBuilder b;
  EXPECT_TRUE(b.BeginLayer(0, "sha256:aaaa").ok());
  TarEntry root = Make("./", EntryType::kDirectory, 0755);
  root.mtime_sec = 1700000000;
  root.mtime_nsec = 5;
  EXPECT_TRUE(b.Apply(root).ok());
  TarEntry etc = Make("etc/", EntryType::kDirectory, 0755);
  etc.xattrs = {{"trusted.overlay.opaque", "y"}, {"user.note", std::string("bin\0ary", 7)}};
  EXPECT_TRUE(b.Apply(etc).ok());
  EXPECT_TRUE(b.Apply(File("etc/passwd", 120, 1024)).ok());
  TarEntry ping = File("bin/ping", 4000, 2048);
  ping.mode = 04755;
  ping.uid = 3000000;
  ping.gid = 7;
  ping.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}};
  EXPECT_TRUE(b.Apply(ping).ok());
  TarEntry sp = File("var/sparse", 3 << 20, 8192);
  sp.sparse = {{0, 512}, {1 << 20, 1024}, {3 << 20, 0}};
  sp.stored_size = 1536;
  EXPECT_TRUE(b.Apply(sp).ok());
  TarEntry null = Make("dev/null", EntryType::kCharDevice, 0666);
  null.dev_major = 1;
  null.dev_minor = 3;
  EXPECT_TRUE(b.Apply(null).ok());
  TarEntry sda = Make("dev/sda", EntryType::kBlockDevice, 0660);
  sda.dev_major = 8;
  EXPECT_TRUE(b.Apply(sda).ok());
  EXPECT_TRUE(b.Apply(Make("run/fifo", EntryType::kFifo, 0600)).ok());
  EXPECT_TRUE(b.Apply(Make("usr/lib/", EntryType::kDirectory, 0755)).ok());
  EXPECT_TRUE(b.Apply(Linked("lib", EntryType::kSymlink, "usr/lib")).ok());
  EXPECT_TRUE(b.Apply(Linked("abs", EntryType::kSymlink, "/etc/../etc/passwd")).ok());
  EXPECT_TRUE(b.Apply(Linked("loop1", EntryType::kSymlink, "loop2")).ok());
  EXPECT_TRUE(b.Apply(Linked("loop2", EntryType::kSymlink, "loop1")).ok());
  EXPECT_TRUE(b.EndLayer().ok());
  EXPECT_TRUE(b.BeginLayer(1, "sha256:bbbb").ok());
  EXPECT_TRUE(b.Apply(File("lib/libc.so", 99, 512)).ok());
  EXPECT_TRUE(b.Apply(Linked("bin/ping6", EntryType::kHardlink, "/bin/ping")).ok());
  EXPECT_TRUE(b.Apply(File("etc/.wh.passwd", 0, 0)).ok());
  EXPECT_TRUE(b.Apply(File("etc/passwd", 130, 4096)).ok());
  EXPECT_TRUE(b.EndLayer().ok());
  auto tree = std::move(b).Finish("sample");
  EXPECT_TRUE(tree.ok()) << tree.status().ToString();
  return std::move(tree).value();
}

// Every observable field of every node, in node order.
std::string Dump(const ImageTree& t) {
  std::string out = "layers";
  for (uint32_t i = 0; i < t.layer_count(); ++i) out += " " + std::string(t.LayerDigest(i));
  out += "\n";
  for (NodeId id = 0; id < t.node_count(); ++id) {
    Node n = t.GetNode(id);
    char line[512];
    std::snprintf(line, sizeof line, "%u t%d m%o %u:%u %lld.%u nl%u sz%llu L%u p%u dev%u,%u @%llu+%llu st%o", id,
                  static_cast<int>(n.type), n.mode, n.uid, n.gid, static_cast<long long>(n.mtime_sec), n.mtime_nsec,
                  n.nlink, static_cast<unsigned long long>(n.size), n.layer, n.parent, n.rdev_major, n.rdev_minor,
                  static_cast<unsigned long long>(n.data_offset), static_cast<unsigned long long>(n.stored_size),
                  n.StMode());
    out += line;
    if (n.type == NodeType::kSymlink) out += " -> " + std::string(n.symlink_target);
    for (uint32_t i = 0; i < t.ChildCount(id); ++i) {
      DirEntry e = t.ChildAt(id, i);
      out += " [" + std::string(e.name) + "=" + std::to_string(e.node) + "]";
    }
    for (uint32_t i = 0; i < t.XattrCount(id); ++i) {
      Xattr x = t.XattrAt(id, i);
      out += " {" + std::string(x.name) + "=" + std::string(x.value) + "}";
    }
    for (uint32_t i = 0; i < t.SparseCount(id); ++i) {
      SparseExtent x = t.SparseAt(id, i);
      out += " <" + std::to_string(x.logical_offset) + "," + std::to_string(x.length) + ">";
    }
    out += "\n";
  }
  return out;
}

// Exercises every accessor on every node; used on trees that passed Open
// after hostile edits, so ASan can catch any read the validation missed.
void WalkEverything(const ImageTree& t) {
  for (NodeId id = 0; id < t.node_count(); ++id) {
    Node n = t.GetNode(id);
    (void)n.StMode();
    for (uint32_t i = 0; i < t.ChildCount(id); ++i) {
      DirEntry e = t.ChildAt(id, i);
      (void)t.Lookup(id, e.name);
      (void)t.GetNode(e.node);
    }
    for (uint32_t i = 0; i < t.XattrCount(id); ++i) (void)t.GetXattr(id, t.XattrAt(id, i).name);
    for (uint32_t i = 0; i < t.SparseCount(id); ++i) (void)t.SparseAt(id, i);
  }
  for (uint32_t i = 0; i < t.layer_count(); ++i) (void)t.LayerDigest(i);
  for (const char* p : {"lib/libc.so", "abs", "loop1/x", "bin/ping6", "/../etc", "nope/x"}) (void)t.Resolve(p);
}

std::string TempPath(const char* tag) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/lazyroot_image_tree_test_" + tag + "_" + std::to_string(::getpid());
}

void WriteFile(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// CRC-32C written from the definition (bitwise, reflected 0x82F63B78), as a
// reader following index/FORMAT.md would.
uint32_t CrcStep(uint32_t state, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    state ^= p[i];
    for (int k = 0; k < 8; ++k) state = (state & 1) ? (state >> 1) ^ 0x82F63B78u : state >> 1;
  }
  return state;
}
// Where the block table starts: at header_size (at 12; 136 in version 4).
// A hostile edit of that field is taken as 136, so that the helpers below
// stay within the file.
uint64_t TableOf(const std::vector<uint8_t>& b) {
  uint32_t header_size;
  std::memcpy(&header_size, b.data() + 12, 4);
  return header_size >= 128 && header_size <= b.size() ? header_size : 136;
}
// Versions 3-4: the body starts after the header and the block table (block
// count at 116, a u32 crc per block), at a multiple of 8.
uint64_t BodyOf(const std::vector<uint8_t>& b) {
  uint32_t count;
  std::memcpy(&count, b.data() + 116, 4);
  return (TableOf(b) + 4 * uint64_t{count} + 7) & ~uint64_t{7};
}
// The header's checksum: bytes [0,124) and [128, body).
uint32_t HeaderCrcByDefinition(const std::vector<uint8_t>& b) {
  return ~CrcStep(CrcStep(0xffffffffu, b.data(), 124), b.data() + 128, BodyOf(b) - 128);
}
// Block k's checksum: its bytes of the body (block size at 112).
uint32_t BlockCrcByDefinition(const std::vector<uint8_t>& b, uint64_t k) {
  uint32_t block_size;
  std::memcpy(&block_size, b.data() + 112, 4);
  const uint64_t at = BodyOf(b) + k * block_size;
  return ~CrcStep(0xffffffffu, b.data() + at, std::min<uint64_t>(block_size, b.size() - at));
}
// Version 4: the sum of the regular nodes' sizes (type 1, size at 32), at
// 128, as far as the header's node table lies within the file.
uint64_t RegularBytesByDefinition(const std::vector<uint8_t>& b) {
  uint64_t nodes, total = 0;
  uint32_t count;
  std::memcpy(&nodes, b.data() + 48, 8);
  std::memcpy(&count, b.data() + 24, 4);
  if (nodes > b.size() || count > (b.size() - nodes) / 80) return 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (b[nodes + 80 * i] != 1) continue;
    uint64_t size;
    std::memcpy(&size, b.data() + nodes + 80 * i + 32, 8);
    total = total > UINT64_MAX - size ? UINT64_MAX : total + size;
  }
  return total;
}
// Recomputes the header's total of regular sizes, every checksum the
// header's block size and count describe (as far as the file holds them),
// then the header's: an edit then meets the structural checks alone.
void FixCrc(std::vector<uint8_t>& b) {
  const uint64_t total = RegularBytesByDefinition(b);
  std::memcpy(b.data() + 128, &total, 8);
  uint32_t block_size, count;
  std::memcpy(&block_size, b.data() + 112, 4);
  std::memcpy(&count, b.data() + 116, 4);
  if (BodyOf(b) > b.size() || block_size == 0) return;
  for (uint64_t k = 0; k < count && BodyOf(b) + k * block_size < b.size(); ++k) {
    const uint32_t crc = BlockCrcByDefinition(b, k);
    std::memcpy(b.data() + TableOf(b) + 4 * k, &crc, 4);
  }
  const uint32_t crc = HeaderCrcByDefinition(b);
  std::memcpy(b.data() + 124, &crc, 4);
}

TEST(ImageTree, RoundTripThroughAFileEqualsTheInMemoryTree) {
  ImageTree tree = SampleTree();
  std::string path = TempPath("roundtrip");
  WriteFile(path, tree.bytes());
  auto mapped = ImageTree::OpenFile(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  std::remove(path.c_str());
  EXPECT_EQ(Dump(*mapped), Dump(tree));
  EXPECT_EQ(mapped->name(), path);
  ImageTree copy = *mapped;  // copies share the bytes
  EXPECT_EQ(Dump(copy), Dump(tree));
  // The stored checksums are CRC-32C as FORMAT.md defines them.
  std::vector<uint8_t> bytes(tree.bytes().begin(), tree.bytes().end());
  uint32_t stored, block_size, count;
  std::memcpy(&stored, bytes.data() + 124, 4);
  EXPECT_EQ(stored, HeaderCrcByDefinition(bytes));
  std::memcpy(&block_size, bytes.data() + 112, 4);
  std::memcpy(&count, bytes.data() + 116, 4);
  EXPECT_EQ(block_size, ImageTree::kBlockSize);
  EXPECT_EQ(count, (bytes.size() - BodyOf(bytes) + block_size - 1) / block_size);
  for (uint32_t k = 0; k < count; ++k) {
    std::memcpy(&stored, bytes.data() + TableOf(bytes) + 4 * k, 4);
    EXPECT_EQ(stored, BlockCrcByDefinition(bytes, k)) << "block " << k;
  }
  EXPECT_EQ(std::memcmp(bytes.data(), "LZRTREE1", 8), 0);
}

TEST(ImageTree, RecordsTheImageItWasBuiltFor) {
  ImageTreeWriter w({"sha256:layer"}, "sha256:manifest");
  Node root;
  root.type = NodeType::kDirectory;
  root.mode = 0755;
  w.AddNode(root, {}, {}, {});
  auto tree = w.Finish("with digest");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->ImageDigest(), "sha256:manifest");
  EXPECT_EQ(SampleTree().ImageDigest(), "");  // none given
  // Read back from a file; the file holds no reference to anything after.
  std::string path = TempPath("digest");
  WriteFile(path, tree->bytes());
  auto read = ImageTree::OpenFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->ImageDigest(), "sha256:manifest");
  // The reference lies within the string pool and is at most 255 bytes.
  std::vector<uint8_t> b(tree->bytes().begin(), tree->bytes().end());
  uint32_t huge = 1u << 20;
  std::memcpy(b.data() + 108, &huge, 4);
  FixCrc(b);
  auto bad = ImageTree::Open(b, "bad digest");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("image digest"), std::string::npos) << bad.status().ToString();
  ImageTreeWriter long_digest({}, std::string(256, 'x'));
  long_digest.AddNode(root, {}, {}, {});
  auto refused = long_digest.Finish("long");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("image digest"), std::string::npos) << refused.status().ToString();
}

TEST(ImageTree, Contents) {
  ImageTree t = SampleTree();
  EXPECT_EQ(t.layer_count(), 2u);
  EXPECT_EQ(t.LayerDigest(1), "sha256:bbbb");
  Node root = t.GetNode(ImageTree::kRoot);
  EXPECT_TRUE(root.IsDir());
  EXPECT_EQ(root.mtime_sec, 1700000000);
  EXPECT_EQ(root.mtime_nsec, 5u);
  EXPECT_EQ(root.StMode(), 040755u);

  auto ping = t.LookupPath("bin/ping"), ping6 = t.LookupPath("/bin/ping6");
  ASSERT_TRUE(ping && ping6);
  EXPECT_EQ(*ping, *ping6);
  Node p = t.GetNode(*ping);
  EXPECT_EQ(p.nlink, 2u);
  EXPECT_EQ(p.mode, 04755u);
  EXPECT_EQ(p.uid, 3000000u);
  EXPECT_EQ(p.data_offset, 2048u);
  EXPECT_EQ(t.GetXattr(*ping, "security.capability").value_or(""), std::string("\x01\x00\x00\x02", 4));

  Node pw = t.GetNode(*t.LookupPath("etc/passwd"));
  EXPECT_EQ(pw.layer, 1u);
  EXPECT_EQ(pw.size, 130u);
  EXPECT_EQ(t.GetXattr(*t.LookupPath("etc"), "user.note").value_or(""), std::string("bin\0ary", 7));

  Node null = t.GetNode(*t.LookupPath("dev/null"));
  EXPECT_EQ(null.type, NodeType::kCharDevice);
  EXPECT_EQ(null.rdev_major, 1u);
  EXPECT_EQ(null.rdev_minor, 3u);
  EXPECT_EQ(null.StMode(), 020666u);

  NodeId sp = *t.LookupPath("var/sparse");
  EXPECT_EQ(t.SparseCount(sp), 3u);
  EXPECT_EQ(t.GetNode(sp).stored_size, 1536u);

  // Directory children are sorted and Lookup agrees with ChildAt.
  NodeId dev = *t.LookupPath("dev");
  ASSERT_EQ(t.ChildCount(dev), 2u);
  EXPECT_EQ(t.ChildAt(dev, 0).name, "null");
  EXPECT_EQ(t.ChildAt(dev, 1).name, "sda");
  EXPECT_EQ(t.GetNode(dev).parent, ImageTree::kRoot);
  EXPECT_FALSE(t.Lookup(dev, "nope"));
  EXPECT_FALSE(t.Lookup(*ping, "x"));  // not a directory: no children
  EXPECT_EQ(t.ChildCount(*ping), 0u);

  // lib -> usr/lib is a symlink: the file written through it is in usr/lib.
  EXPECT_TRUE(t.LookupPath("usr/lib/libc.so"));
  EXPECT_FALSE(t.LookupPath("lib/libc.so"));  // LookupPath does not follow symlinks
}

TEST(ImageTree, InodeMapping) {
  ImageTree t = SampleTree();
  EXPECT_EQ(ImageTree::InodeOf(ImageTree::kRoot), 1u);
  EXPECT_EQ(t.NodeOfInode(1), ImageTree::kRoot);
  EXPECT_FALSE(t.NodeOfInode(0));
  EXPECT_EQ(t.NodeOfInode(t.node_count()), t.node_count() - 1);
  EXPECT_FALSE(t.NodeOfInode(uint64_t{t.node_count()} + 1));
  EXPECT_FALSE(t.NodeOfInode(~uint64_t{0}));
}

TEST(ImageTree, ResolveInRoot) {
  ImageTree t = SampleTree();
  auto libc = t.Resolve("lib/libc.so");
  ASSERT_TRUE(libc.ok()) << libc.status().ToString();
  EXPECT_EQ(*libc, *t.LookupPath("usr/lib/libc.so"));
  auto abs = t.Resolve("/abs");  // -> /etc/../etc/passwd, followed
  ASSERT_TRUE(abs.ok());
  EXPECT_EQ(*abs, *t.LookupPath("etc/passwd"));
  auto up = t.Resolve("../../../etc/passwd");  // clamped at the root
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(*up, *abs);
  EXPECT_EQ(*t.Resolve("/"), ImageTree::kRoot);
  auto missing = t.Resolve("etc/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  auto loop = t.Resolve("loop1");
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.status().message().find("too many levels"), std::string::npos);
}

TEST(ImageTree, EmptyTreeHasOnlyTheRoot) {
  auto t = TreeBuilder().Finish();
  // A temporary builder is an rvalue: Finish consumes it.
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->node_count(), 1u);
  EXPECT_EQ(t->layer_count(), 0u);
  Node root = t->GetNode(ImageTree::kRoot);
  EXPECT_EQ(root.mode, 0755u);
  EXPECT_EQ(root.nlink, 2u);
  auto again = ImageTree::Open(std::vector<uint8_t>(t->bytes().begin(), t->bytes().end()), "copy");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
}

TEST(ImageTree, OpenFileErrorsNameTheFile) {
  auto missing = ImageTree::OpenFile("/nonexistent/lazyroot/tree");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kIoError);
  EXPECT_NE(missing.status().message().find("/nonexistent/lazyroot/tree"), std::string::npos);
  std::string path = TempPath("empty");
  WriteFile(path, {});
  auto empty = ImageTree::OpenFile(path);
  std::remove(path.c_str());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(empty.status().message().find(path), std::string::npos) << empty.status().message();
}

TEST(ImageTree, EveryFlippedByteIsDetected) {
  ImageTree tree = SampleTree();
  const std::vector<uint8_t> good(tree.bytes().begin(), tree.bytes().end());
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> bad = good;
      bad[i] ^= mask;
      auto t = ImageTree::Open(std::move(bad), "flipped");
      ASSERT_FALSE(t.ok()) << "byte " << i << " mask " << int{mask};
      EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
      EXPECT_NE(t.status().message().find("image tree flipped"), std::string::npos) << t.status().message();
    }
  }
}

// OpenFile checksums a tree a piece (1 MiB) at a time as it reads it: a
// flipped byte anywhere, in the header before the checksum field, at either
// side of a piece boundary or in the last byte, is found as when the whole
// file is checked at once, and named.
TEST(ImageTree, OpenFileFindsAFlippedByteInAnyPiece) {
  TreeBuilder b;
  ASSERT_TRUE(b.BeginLayer(0, "sha256:aaaa").ok());
  for (int i = 0; i < 40000; ++i) {  // 40k nodes: a 3.5 MB file, four pieces
    TarEntry f = File("d" + std::to_string(i % 7) + "/file-" + std::to_string(i), 1, 512 * uint64_t(i + 1));
    ASSERT_TRUE(b.Apply(f).ok());
  }
  ASSERT_TRUE(b.EndLayer().ok());
  auto tree = std::move(b).Finish("big");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  const std::vector<uint8_t> good(tree->bytes().begin(), tree->bytes().end());
  ASSERT_GT(good.size(), size_t{3} << 20);
  std::string path = TempPath("pieces");
  WriteFile(path, good);
  auto back = ImageTree::OpenFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->node_count(), tree->node_count());
  for (size_t at : {size_t{100}, size_t{125}, size_t{200}, (size_t{1} << 20) - 1, size_t{1} << 20,
                    (size_t{2} << 20) + 7, good.size() - 1}) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x10;
    WriteFile(path, bad);
    auto t = ImageTree::OpenFile(path);
    ASSERT_FALSE(t.ok()) << "byte " << at;
    EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
    EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status().message();
    if (at != 125) {  // there it is the checksum itself that no longer matches
      EXPECT_NE(t.status().message().find("checksum mismatch"), std::string::npos) << at << ": "
                                                                                  << t.status().message();
    }
  }
  std::remove(path.c_str());
}

TEST(ImageTree, EveryTruncationIsDetected) {
  ImageTree tree = SampleTree();
  const std::vector<uint8_t> good(tree.bytes().begin(), tree.bytes().end());
  for (size_t n = 0; n < good.size(); ++n) {
    auto t = ImageTree::Open(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<ptrdiff_t>(n)), "short");
    ASSERT_FALSE(t.ok()) << "length " << n;
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_FALSE(ImageTree::Open(std::move(longer), "long").ok());
}

// Hostile files: bytes rewritten and the checksum recomputed, so only the
// structural validation stands between them and the accessors. Each edit
// must either be rejected or yield a tree every accessor can walk safely.
TEST(ImageTree, RewrittenRecordsWithAValidChecksumNeverCrash) {
  ImageTree tree = SampleTree();
  const std::vector<uint8_t> good(tree.bytes().begin(), tree.bytes().end());
  std::mt19937 rng(12345);
  const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x07, 0x10, 0x7f, 0x80, 0xfe, 0xff};
  int accepted = 0, rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t v : interesting) {
      if (good[i] == v) continue;
      std::vector<uint8_t> bad = good;
      bad[i] = v;
      // Sometimes also smash a whole little-endian u32 around the byte.
      if (rng() % 4 == 0 && i + 4 <= bad.size()) {
        uint32_t w = rng();
        std::memcpy(bad.data() + i, &w, 4);
      }
      FixCrc(bad);
      auto t = ImageTree::Open(std::move(bad), "hostile");
      if (t.ok()) {
        ++accepted;
        WalkEverything(*t);
      } else {
        ++rejected;
        EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
      }
    }
  }
  std::printf("[ hostile  ] %d edits accepted (harmless), %d rejected\n", accepted, rejected);
  EXPECT_GT(rejected, 0);
}

TEST(ImageTree, WriterRejectsInconsistentTrees) {
  {
    ImageTreeWriter w({});
    Node root;
    root.type = NodeType::kDirectory;
    root.mode = 0755;
    Node f;
    f.type = NodeType::kFifo;
    const DirEntry unsorted[] = {{"b", 1}, {"a", 2}};
    w.AddNode(root, unsorted, {}, {});
    w.AddNode(f, {}, {}, {});
    w.AddNode(f, {}, {}, {});
    auto t = w.Finish("unsorted");
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find("not sorted"), std::string::npos) << t.status().message();
  }
  {
    ImageTreeWriter w({});
    Node root;
    root.type = NodeType::kDirectory;
    const DirEntry dangling[] = {{"a", 7}};
    w.AddNode(root, dangling, {}, {});
    EXPECT_FALSE(w.Finish("dangling").ok());
  }
  {
    ImageTreeWriter w({});
    Node file;  // a regular file cannot be the root
    w.AddNode(file, {}, {}, {});
    EXPECT_FALSE(w.Finish("file root").ok());
  }
}

// --- Validation does linear work whatever the file claims.

uint32_t U32At(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
void PutU32At(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

// A tree of realistic size: 2,000 directories of 50 files (9 MB, as large
// as a big distribution image's).
ImageTree LargeTree() {
  TreeBuilder b;
  EXPECT_TRUE(b.BeginLayer(0, "sha256:big").ok());
  for (int d = 0; d < 2000; ++d) {
    for (int f = 0; f < 50; ++f) {
      EXPECT_TRUE(b.Apply(File("usr/d" + std::to_string(d) + "/f" + std::to_string(f), 10, 512)).ok());
    }
  }
  EXPECT_TRUE(b.EndLayer().ok());
  auto t = std::move(b).Finish("large");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TEST(ImageTreeValidation, WorkIsOneVisitPerRecord) {
  ImageTree t = LargeTree();
  uint64_t dirents = 0, xattrs = 0, sparse = 0;
  for (NodeId i = 0; i < t.node_count(); ++i) {
    dirents += t.ChildCount(i);
    xattrs += t.XattrCount(i);
    sparse += t.SparseCount(i);
  }
  EXPECT_GT(t.bytes().size(), 8u << 20);
  EXPECT_EQ(t.validation_work(), t.node_count() + dirents + xattrs + sparse);
  std::printf("[ validate ] %zu-byte tree: %llu records visited for %u nodes\n", t.bytes().size(),
              static_cast<unsigned long long>(t.validation_work()), t.node_count());
}

// The attack of issue 13: every directory claims the same big dirent range,
// so checking each directory's children walked (directories x range)
// records. Ranges must tile the dirent table in node order, so the second
// directory that claims a range someone else owns fails, after a few records.
TEST(ImageTreeValidation, OverlappingDirentRangesFailAtOnce) {
  ImageTree t = LargeTree();
  std::vector<uint8_t> bad(t.bytes().begin(), t.bytes().end());
  uint64_t nodes_offset;
  std::memcpy(&nodes_offset, bad.data() + 48, 8);
  const uint32_t dirent_count = U32At(bad, 28);
  uint32_t dirs = 0;
  for (uint32_t i = 0; i < t.node_count(); ++i) {
    uint8_t* r = bad.data() + nodes_offset + uint64_t{i} * 80;
    if (r[0] != static_cast<uint8_t>(NodeType::kDirectory)) continue;
    ++dirs;
    PutU32At(bad, nodes_offset + uint64_t{i} * 80 + 72, 0);             // first dirent
    PutU32At(bad, nodes_offset + uint64_t{i} * 80 + 76, dirent_count);  // count: all of them
  }
  EXPECT_GT(dirs, 2000u);
  FixCrc(bad);
  auto r = ImageTree::Open(std::move(bad), "overlapping");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  // The root's range is all dirents: the root passes the range rule and
  // fails on its children; any later directory fails on the range itself.
  EXPECT_NE(r.status().message().find("image tree overlapping: node 0:"), std::string::npos) << r.status().message();

  // Leave the root alone: the first directory after it is refused on its range.
  std::vector<uint8_t> bad2(t.bytes().begin(), t.bytes().end());
  for (uint32_t i = 1; i < t.node_count(); ++i) {
    uint8_t* rec = bad2.data() + nodes_offset + uint64_t{i} * 80;
    if (rec[0] != static_cast<uint8_t>(NodeType::kDirectory)) continue;
    PutU32At(bad2, nodes_offset + uint64_t{i} * 80 + 72, 0);
    PutU32At(bad2, nodes_offset + uint64_t{i} * 80 + 76, dirent_count);
  }
  FixCrc(bad2);
  r = ImageTree::Open(std::move(bad2), "overlapping");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("node 1: dirent range does not start where"), std::string::npos)
      << r.status().message();
}

// Each record kind's range is checked the same way, and names and targets
// keep to the kernel's limits.
TEST(ImageTreeValidation, RangesTileAndNamesKeepToTheKernelLimits) {
  ImageTree sample = SampleTree();
  const std::vector<uint8_t> good(sample.bytes().begin(), sample.bytes().end());
  uint64_t nodes_offset;
  std::memcpy(&nodes_offset, good.data() + 48, 8);
  // Two nodes sharing one xattr: the second node's xattr range starts early.
  int edited = 0;
  for (uint32_t i = 1; i < sample.node_count() && edited == 0; ++i) {
    if (sample.XattrCount(i) == 0) continue;
    std::vector<uint8_t> bad = good;
    uint32_t first = U32At(bad, nodes_offset + uint64_t{i} * 80 + 64);
    if (first == 0) continue;
    PutU32At(bad, nodes_offset + uint64_t{i} * 80 + 64, first - 1);
    FixCrc(bad);
    auto r = ImageTree::Open(std::move(bad), "x");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("xattr range"), std::string::npos) << r.status().message();
    ++edited;
  }
  EXPECT_EQ(edited, 1);

  // Names and symlink targets over the kernel's limits, written directly.
  auto write = [](std::string_view name, std::string_view target) {
    ImageTreeWriter w({"sha256:x"});
    Node root;
    root.type = NodeType::kDirectory;
    root.mode = 0755;
    Node link;
    link.type = NodeType::kSymlink;
    link.mode = 0777;
    link.symlink_target = target;
    link.size = target.size();
    const DirEntry children[] = {{name, 1}};
    w.AddNode(root, children, {}, {});
    w.AddNode(link, {}, {}, {});
    return w.Finish("limits");
  };
  EXPECT_TRUE(write(std::string(255, 'n'), std::string(4095, 't')).ok());
  auto long_name = write(std::string(256, 'n'), "t");
  ASSERT_FALSE(long_name.ok());
  EXPECT_NE(long_name.status().message().find("bad dirent name"), std::string::npos) << long_name.status().message();
  auto long_target = write("n", std::string(4096, 't'));
  ASSERT_FALSE(long_target.ok());
  EXPECT_NE(long_target.status().message().find("symlink target longer"), std::string::npos)
      << long_target.status().message();
  EXPECT_FALSE(write("n", std::string("a\0b", 3)).ok());

  // A node no directory names.
  ImageTreeWriter w({});
  Node root;
  root.type = NodeType::kDirectory;
  Node fifo;
  fifo.type = NodeType::kFifo;
  w.AddNode(root, {}, {}, {});
  w.AddNode(fifo, {}, {}, {});
  auto orphan = w.Finish("orphan");
  ASSERT_FALSE(orphan.ok());
  EXPECT_NE(orphan.status().message().find("not named by any directory"), std::string::npos)
      << orphan.status().message();
}

// --- Lazy reading (OpenFileLazy, OpenLazy): what a mount does.

// Every accessor on every node, as Dump, but a lazily found damage is
// recorded instead of thrown: returns how many nodes threw.
int WalkCatching(const ImageTree& t, std::vector<std::string>* messages = nullptr) {
  int threw = 0;
  for (NodeId id = 0; id < t.node_count(); ++id) {
    try {
      Node n = t.GetNode(id);
      (void)n.StMode();
      for (uint32_t i = 0; i < t.ChildCount(id); ++i) {
        DirEntry e = t.ChildAt(id, i);
        EXPECT_EQ(t.Lookup(id, e.name), e.node);
        EXPECT_LT(e.node, t.node_count());
      }
      for (uint32_t i = 0; i < t.XattrCount(id); ++i) (void)t.GetXattr(id, t.XattrAt(id, i).name);
      for (uint32_t i = 0; i < t.SparseCount(id); ++i) (void)t.SparseAt(id, i);
      (void)t.SymlinkTarget(id);
    } catch (const TreeCorruptionError& e) {
      ++threw;
      if (messages != nullptr && e.first_report()) messages->push_back(e.what());
    }
  }
  for (const char* p : {"lib/libc.so", "abs", "loop1/x", "bin/ping6", "/../etc", "nope/x", "usr/d5/f3"}) {
    auto r = t.Resolve(p);  // never throws: damage is a Corruption status
    if (!r.ok()) {
      const ErrorCode c = r.status().code();
      EXPECT_TRUE(c == ErrorCode::kNotFound || c == ErrorCode::kInvalidArgument || c == ErrorCode::kCorruption)
          << r.status().ToString();
    }
  }
  return threw;
}

TEST(ImageTreeLazy, ReadsTheSameTreeAsAWholeOpen) {
  for (const ImageTree& tree : {SampleTree(), LargeTree()}) {
    const std::vector<uint8_t> bytes(tree.bytes().begin(), tree.bytes().end());
    auto lazy = ImageTree::OpenLazy(bytes, "lazy");
    ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
    EXPECT_TRUE(lazy->lazy());
    EXPECT_EQ(Dump(*lazy), Dump(tree));
    EXPECT_EQ(lazy->blocks_read(), lazy->block_count());  // Dump read everything
    EXPECT_EQ(WalkCatching(*lazy), 0);
    std::string path = TempPath("lazy");
    WriteFile(path, bytes);
    auto from_file = ImageTree::OpenFileLazy(path);
    std::remove(path.c_str());  // the open file stays readable
    ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
    EXPECT_EQ(from_file->name(), path);
    EXPECT_EQ(Dump(*from_file), Dump(tree));
  }
}

// Opening reads the header, the block table, the root's records and the
// image's and layers' names; a path lookup reads the blocks on its way.
TEST(ImageTreeLazy, AnOpenReadsAFewBlocksWhateverTheSize) {
  ImageTree tree = LargeTree();
  const std::vector<uint8_t> bytes(tree.bytes().begin(), tree.bytes().end());
  std::string path = TempPath("few");
  WriteFile(path, bytes);
  auto lazy = ImageTree::OpenFileLazy(path);
  std::remove(path.c_str());
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  EXPECT_GT(lazy->block_count(), 100u);
  EXPECT_LE(lazy->blocks_read(), 4u);
  std::optional<NodeId> f = lazy->LookupPath("usr/d1234/f7");
  ASSERT_TRUE(f);
  EXPECT_EQ(lazy->GetNode(*f).size, 10u);
  EXPECT_LE(lazy->blocks_read(), 12u);
  std::printf("[ lazy     ] %zu-byte tree, %u blocks: open and one lookup read %u\n", bytes.size(),
              lazy->block_count(), lazy->blocks_read());
}

// A damaged block is found when first used, not at open: the nodes whose
// records are in it throw (naming the tree, the image and the block, once
// per block), every other node reads as before, and a whole open (fsck,
// extract) refuses the file.
TEST(ImageTreeLazy, ADamagedBlockFailsOnlyWhatUsesIt) {
  ImageTree tree = LargeTree();
  std::vector<uint8_t> bad(tree.bytes().begin(), tree.bytes().end());
  const uint64_t body = BodyOf(bad);
  const uint64_t at = body + 20 * uint64_t{ImageTree::kBlockSize} + 100;  // inside the node table
  uint64_t strings_offset;
  std::memcpy(&strings_offset, bad.data() + 88, 8);
  ASSERT_LT(at, strings_offset);
  bad[at] ^= 0x40;
  auto whole = ImageTree::Open(bad, "whole");
  ASSERT_FALSE(whole.ok());
  EXPECT_NE(whole.status().message().find("block 20 "), std::string::npos) << whole.status().message();
  EXPECT_NE(whole.status().message().find("checksum mismatch"), std::string::npos) << whole.status().message();

  auto lazy = ImageTree::OpenLazy(bad, "damaged.tree");
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  std::vector<std::string> messages;
  const int threw = WalkCatching(*lazy, &messages);
  // The block holds ~820 node records (80 bytes each), plus the directories
  // whose children are among them.
  EXPECT_GT(threw, 800);
  EXPECT_LT(threw, 900);
  ASSERT_EQ(messages.size(), 1u);  // reported once, for the block
  EXPECT_NE(messages[0].find("image tree damaged.tree"), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("block 20 "), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("checksum mismatch"), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("fsck --repair"), std::string::npos) << messages[0];
  // Still damaged when asked again, and never reported again.
  uint64_t nodes_offset;
  std::memcpy(&nodes_offset, bad.data() + 48, 8);
  const auto node = static_cast<NodeId>((at - nodes_offset) / 80);
  try {
    (void)lazy->GetNode(node);
    ADD_FAILURE() << "node " << node << " read from a damaged block";
  } catch (const TreeCorruptionError& e) {
    EXPECT_FALSE(e.first_report());
  }
  // Resolving a path through it is an error, not a throw.
  int corrupt = 0, found = 0;
  for (int d = 0; d < 2000; ++d) {
    auto r = lazy->Resolve("usr/d" + std::to_string(d) + "/f1");
    if (r.ok()) {
      ++found;
    } else {
      EXPECT_EQ(r.status().code(), ErrorCode::kCorruption) << r.status().ToString();
      EXPECT_NE(r.status().message().find("damaged.tree"), std::string::npos) << r.status().message();
      ++corrupt;
    }
  }
  EXPECT_GT(corrupt, 0);
  EXPECT_GT(found, 1000);
}

// Damage in what an open reads (header, block table, root) fails the open,
// as it did before trees were read lazily: the mount rebuilds the tree.
TEST(ImageTreeLazy, DamageInTheHeaderOrTableFailsTheOpen) {
  ImageTree tree = SampleTree();
  const std::vector<uint8_t> good(tree.bytes().begin(), tree.bytes().end());
  for (size_t i = 0; i < BodyOf(good); ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x01;
    auto t = ImageTree::OpenLazy(std::move(bad), "flipped");
    ASSERT_FALSE(t.ok()) << "byte " << i;
    EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
  }
  // The sample is one block: all of it is read at open, so every flip fails it.
  for (size_t i = BodyOf(good); i < good.size(); ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x80;
    ASSERT_FALSE(ImageTree::OpenLazy(std::move(bad), "flipped").ok()) << "byte " << i;
  }
  // An older version is refused (the store then rebuilds it), as OpenFile does.
  std::vector<uint8_t> v2 = good;
  v2[8] = 2;
  auto old = ImageTree::OpenLazy(v2, "old");
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("format version 2 (older lazyroot)"), std::string::npos)
      << old.status().message();
}

// A file truncated (or shortened) under a lazy reader: the blocks it lost
// fail with "truncated", the rest reads, nothing crashes.
TEST(ImageTreeLazy, TruncationAfterTheOpenFailsTheLostBlocks) {
  ImageTree tree = LargeTree();
  const std::vector<uint8_t> bytes(tree.bytes().begin(), tree.bytes().end());
  std::string path = TempPath("truncated");
  WriteFile(path, bytes);
  auto lazy = ImageTree::OpenFileLazy(path);
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(bytes.size() / 2)), 0);
  std::vector<std::string> messages;
  const int threw = WalkCatching(*lazy, &messages);
  std::remove(path.c_str());
  EXPECT_GT(threw, 0);
  ASSERT_FALSE(messages.empty());
  EXPECT_NE(messages[0].find("truncated"), std::string::npos) << messages[0];
  // Every prefix of the file fails the open or the first use, never more.
  for (size_t n = 0; n < bytes.size(); n += (n < 4096 ? 1 : 7919)) {
    auto t = ImageTree::OpenLazy(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n)), "p");
    EXPECT_FALSE(t.ok()) << "length " << n;
  }
}

// Hostile records with valid checksums, read lazily: every accessor either
// answers or throws TreeCorruptionError; none reads out of bounds (ASan).
TEST(ImageTreeLazy, RewrittenRecordsWithValidChecksumsNeverCrash) {
  ImageTree tree = SampleTree();
  const std::vector<uint8_t> good(tree.bytes().begin(), tree.bytes().end());
  std::mt19937 rng(4242);
  int opened = 0, threw = 0;
  for (size_t i = BodyOf(good); i < good.size(); ++i) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0x01}, uint8_t{0x7f}, uint8_t{0xff}}) {
      if (good[i] == v) continue;
      std::vector<uint8_t> bad = good;
      bad[i] = v;
      if (rng() % 4 == 0 && i + 4 <= bad.size()) {
        uint32_t w = rng();
        std::memcpy(bad.data() + i, &w, 4);
      }
      FixCrc(bad);
      auto t = ImageTree::OpenLazy(std::move(bad), "hostile");
      if (!t.ok()) {
        EXPECT_EQ(t.status().code(), ErrorCode::kCorruption);
        continue;
      }
      ++opened;
      threw += WalkCatching(*t) > 0;
    }
  }
  std::printf("[ hostile  ] lazily: %d edits opened, %d of them threw on a walk\n", opened, threw);
  EXPECT_GT(opened, 0);
  EXPECT_GT(threw, 0);
}

// Issue 13's attack, lazily: every directory claims the same (valid, sorted)
// dirent range as /usr. Each range is claimed by the first node checked;
// another claimant fails at once, so checking every node stays linear.
TEST(ImageTreeLazy, ARangeClaimedTwiceFailsTheSecondClaimant) {
  ImageTree t = LargeTree();
  std::vector<uint8_t> bad(t.bytes().begin(), t.bytes().end());
  uint64_t nodes_offset;
  std::memcpy(&nodes_offset, bad.data() + 48, 8);
  const std::optional<NodeId> usr = t.LookupPath("usr");
  ASSERT_TRUE(usr);
  const uint32_t a = U32At(bad, nodes_offset + uint64_t{*usr} * 80 + 72);
  const uint32_t b = U32At(bad, nodes_offset + uint64_t{*usr} * 80 + 76);
  for (uint32_t i = *usr + 1; i < t.node_count(); ++i) {
    if (bad[nodes_offset + uint64_t{i} * 80] != static_cast<uint8_t>(NodeType::kDirectory)) continue;
    PutU32At(bad, nodes_offset + uint64_t{i} * 80 + 72, a);
    PutU32At(bad, nodes_offset + uint64_t{i} * 80 + 76, b);
  }
  FixCrc(bad);
  EXPECT_FALSE(ImageTree::Open(bad, "whole").ok());
  auto lazy = ImageTree::OpenLazy(bad, "claimed");
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  EXPECT_EQ(lazy->ChildCount(*usr), 2000u);  // /usr checked first: the range is its
  std::optional<NodeId> d5 = lazy->Lookup(*usr, "d5");
  ASSERT_TRUE(d5);
  try {
    (void)lazy->ChildCount(*d5);
    ADD_FAILURE() << "a second directory got /usr's dirents";
  } catch (const TreeCorruptionError& e) {
    EXPECT_NE(std::string(e.what()).find("dirent range overlaps another directory's"), std::string::npos) << e.what();
  }
}

// Recomputes the checksums only (not the total, unlike FixCrc): a tampered
// total that reads back.
void Reseal(std::vector<uint8_t>& b) {
  uint64_t total;
  std::memcpy(&total, b.data() + 128, 8);
  FixCrc(b);
  std::memcpy(b.data() + 128, &total, 8);
  const uint32_t crc = HeaderCrcByDefinition(b);
  std::memcpy(b.data() + 124, &crc, 4);
}

// The same tree in version 3's layout (FORMAT.md's history): the 128-byte
// header without the total, so the block table and every section 8 bytes
// earlier. The body's bytes and so its block checksums are unchanged.
std::vector<uint8_t> AsVersion3(std::vector<uint8_t> b) {
  b.erase(b.begin() + 128, b.begin() + 136);
  PutU32At(b, 8, 3);
  PutU32At(b, 12, 128);
  for (size_t at : {size_t{16}, size_t{48}, size_t{56}, size_t{64}, size_t{72}, size_t{80}, size_t{88}}) {
    uint64_t v;
    std::memcpy(&v, b.data() + at, 8);
    v -= 8;
    std::memcpy(b.data() + at, &v, 8);
  }
  const uint32_t crc = HeaderCrcByDefinition(b);
  std::memcpy(b.data() + 124, &crc, 4);
  return b;
}

uint64_t RegularBytesByWalk(const ImageTree& t) {
  uint64_t total = 0;
  for (NodeId id = 0; id < t.node_count(); ++id) {
    const Node n = t.GetNode(id);
    if (n.type == NodeType::kRegular) total += n.size;
  }
  return total;
}

// Version 4's header records the regular files' total size (what statfs
// reports): each file once, hardlinks included, a sparse file's logical
// size; a whole open checks it against the nodes, a lazy open reads it from
// the header without reading a block.
TEST(ImageTreeTotals, TheHeaderRecordsTheRegularFilesTotalSize) {
  ImageTree tree = SampleTree();
  // etc/passwd (the second layer's 130), bin/ping = bin/ping6, var/sparse's
  // 3 MiB, usr/lib/libc.so.
  EXPECT_EQ(tree.regular_bytes(), 130u + 4000u + (3u << 20) + 99u);
  EXPECT_EQ(tree.regular_bytes(), RegularBytesByWalk(tree));
  const std::vector<uint8_t> bytes(tree.bytes().begin(), tree.bytes().end());
  EXPECT_EQ(U32At(bytes, 8), 4u);
  EXPECT_EQ(U32At(bytes, 12), 136u);
  EXPECT_EQ(RegularBytesByDefinition(bytes), tree.regular_bytes());

  ImageTree large = LargeTree();
  const std::vector<uint8_t> large_bytes(large.bytes().begin(), large.bytes().end());
  auto lazy = ImageTree::OpenLazy(large_bytes, "large");
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  const uint32_t read_at_open = lazy->blocks_read();
  EXPECT_EQ(lazy->regular_bytes(), uint64_t{100000} * 10);
  EXPECT_EQ(lazy->blocks_read(), read_at_open);  // from the header alone
  EXPECT_EQ(lazy->regular_bytes(), RegularBytesByWalk(large));
}

// The total is a sum of u64 sizes: the writer, the check and the reader
// saturate at 2^64 - 1 rather than wrap.
TEST(ImageTreeTotals, AHugeTotalSaturates) {
  ImageTreeWriter w({"sha256:l"});
  const std::string a = "a", b = "b";
  const DirEntry children[] = {{a, 1}, {b, 2}};
  Node root;
  root.type = NodeType::kDirectory;
  root.mode = 0755;
  root.nlink = 2;
  w.AddNode(root, children, {}, {});
  Node f;
  f.mode = 0644;
  f.size = f.stored_size = uint64_t{1} << 63;
  w.AddNode(f, {}, {}, {});
  w.AddNode(f, {}, {}, {});
  auto t = w.Finish("huge");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->regular_bytes(), UINT64_MAX);
  std::vector<uint8_t> bytes(t->bytes().begin(), t->bytes().end());
  EXPECT_TRUE(ImageTree::Open(bytes, "huge").ok());
}

// A total that is not the nodes' (damage that reads back, or a tampered
// header resealed): a whole open (fsck, extract) refuses the tree, which is
// then rebuilt; a lazy open (a mount) trusts the header's checksum for it.
TEST(ImageTreeTotals, AWrongTotalFailsAWholeOpen) {
  ImageTree tree = SampleTree();
  std::vector<uint8_t> bad(tree.bytes().begin(), tree.bytes().end());
  const uint64_t wrong = tree.regular_bytes() + 1;
  std::memcpy(bad.data() + 128, &wrong, 8);
  Reseal(bad);
  auto whole = ImageTree::Open(bad, "tampered");
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(whole.status().message().find("the header's total of regular file sizes, 3149958 bytes, is not the "
                                          "nodes' 3149957"),
            std::string::npos)
      << whole.status().message();
  auto lazy = ImageTree::OpenLazy(bad, "tampered");
  ASSERT_TRUE(lazy.ok()) << lazy.status().ToString();
  EXPECT_EQ(lazy->regular_bytes(), wrong);
  // Not resealed: the header's checksum fails, either way.
  std::vector<uint8_t> flipped(tree.bytes().begin(), tree.bytes().end());
  flipped[130] ^= 0x01;
  EXPECT_NE(ImageTree::Open(flipped, "flipped").status().message().find("header checksum mismatch"), std::string::npos);
  EXPECT_NE(ImageTree::OpenLazy(flipped, "flipped").status().message().find("header checksum mismatch"),
            std::string::npos);
}

// A version-3 tree (no total) is refused by its version, whole, lazily and
// from a file, like every older tree: the store rebuilds it (a cache).
TEST(ImageTreeTotals, AVersion3TreeIsRefusedByItsVersion) {
  ImageTree tree = SampleTree();
  const std::vector<uint8_t> v3 = AsVersion3(std::vector<uint8_t>(tree.bytes().begin(), tree.bytes().end()));
  const std::string want = "format version 3 (older lazyroot), this lazyroot reads version 4";
  auto whole = ImageTree::Open(v3, "v3");
  ASSERT_FALSE(whole.ok());
  EXPECT_NE(whole.status().message().find(want), std::string::npos) << whole.status().message();
  auto lazy = ImageTree::OpenLazy(v3, "v3");
  ASSERT_FALSE(lazy.ok());
  EXPECT_NE(lazy.status().message().find(want), std::string::npos) << lazy.status().message();
  const std::string path = TempPath("v3");
  WriteFile(path, v3);
  auto file = ImageTree::OpenFileLazy(path);
  std::remove(path.c_str());
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find(want), std::string::npos) << file.status().message();
}

}  // namespace
}  // namespace lazyroot
