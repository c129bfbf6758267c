// DiffTrees on merged trees built by hand (TreeBuilder), with a content
// comparison that records what it was asked.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "index/merge.h"
#include "src/inspect/image_diff.h"

namespace lazyroot {
namespace {

TarEntry Dir(const std::string& path, uint32_t mode = 0755) {
  TarEntry e;
  e.type = EntryType::kDirectory;
  e.path = path;
  e.mode = mode;
  return e;
}

// A regular file whose "content" is named by data_offset: the fake content
// comparison calls two files equal when their offsets are.
TarEntry File(const std::string& path, uint64_t size, uint64_t offset, uint32_t mode = 0644) {
  TarEntry e;
  e.type = EntryType::kRegular;
  e.path = path;
  e.mode = mode;
  e.size = e.stored_size = size;
  e.header_offset = offset - 512;
  e.data_offset = offset;
  return e;
}

TarEntry Link(const std::string& path, const std::string& target) {
  TarEntry e;
  e.type = EntryType::kSymlink;
  e.path = path;
  e.link_target = target;
  e.mode = 0777;
  return e;
}

ImageTree Build(const std::vector<std::vector<TarEntry>>& layers) {
  TreeBuilder b;
  for (uint32_t i = 0; i < layers.size(); ++i) {
    EXPECT_TRUE(b.BeginLayer(i, "sha256:layer" + std::to_string(i)).ok());
    for (const TarEntry& e : layers[i]) {
      Status st = b.Apply(e);
      EXPECT_TRUE(st.ok()) << e.path << ": " << st.message();
    }
    EXPECT_TRUE(b.EndLayer().ok());
  }
  auto t = std::move(b).Finish();
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(*t);
}

struct Walk {
  std::vector<DiffChange> changes;
  std::vector<std::pair<NodeId, NodeId>> asked;  // content comparisons
};

Walk Diff(const ImageTree& a, const ImageTree& b, const DiffOptions& options = {}) {
  Walk w;
  auto equal = [&](NodeId x, NodeId y, std::optional<Digest32>*, std::optional<Digest32>*) -> Result<bool> {
    w.asked.emplace_back(x, y);
    return a.GetNode(x).data_offset == b.GetNode(y).data_offset;
  };
  auto r = DiffTrees(a, ImageTree::kRoot, b, ImageTree::kRoot, "", options, equal);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (r.ok()) w.changes = std::move(*r);
  return w;
}

// path -> "A", "D" or "M:" + what.
std::map<std::string, std::string> Summary(const std::vector<DiffChange>& changes) {
  std::map<std::string, std::string> out;
  for (const DiffChange& c : changes) {
    std::string v = c.kind == DiffKind::kAdded ? "A" : c.kind == DiffKind::kRemoved ? "D" : "M:";
    if (c.kind == DiffKind::kModified) {
      for (std::string_view n : DiffWhatNames(c.what)) v += std::string(n) + ";";
    }
    out[c.path] = v;
  }
  return out;
}

TEST(DiffTrees, IdenticalTreesHaveNoChangesAndNeedNoContentWhenSizesAreZero) {
  const std::vector<std::vector<TarEntry>> layers = {{Dir("etc/"), File("etc/empty", 0, 1024), Link("l", "etc")}};
  Walk w = Diff(Build(layers), Build(layers));
  EXPECT_TRUE(w.changes.empty());
  EXPECT_TRUE(w.asked.empty());
}

TEST(DiffTrees, EveryKindOfChange) {
  TarEntry owned = File("owner", 5, 5120);
  TarEntry owned_b = owned;
  owned_b.uid = 1000;
  owned_b.gid = 50;
  TarEntry xa = File("x", 5, 6144);
  xa.xattrs = {{"user.a", "1"}, {"user.same", "s"}};
  TarEntry xb = xa;
  xb.xattrs = {{"user.b", "2"}, {"user.same", "s"}};
  ImageTree a = Build({{Dir("etc/"), File("etc/passwd", 10, 1024), File("gone", 1, 2048), File("mode", 3, 3072),
                        File("same", 7, 4096), owned, xa, Link("link", "a"), Dir("d/"), File("d/f", 1, 7168),
                        File("f2d", 1, 8192), Dir("old/"), Dir("old/sub/"), File("old/sub/x", 1, 9216)}});
  ImageTree b = Build({{Dir("etc/"), File("etc/passwd", 11, 11264), File("mode", 3, 3072, 0600), File("same", 7, 4096),
                        owned_b, xb, Link("link", "b"), File("d", 1, 12288), Dir("f2d/"), File("new", 2, 13312)}});
  Walk w = Diff(a, b);
  EXPECT_EQ(Summary(w.changes), (std::map<std::string, std::string>{
                                    {"d", "M:type;"},
                                    {"etc/passwd", "M:size;content;"},
                                    {"f2d", "M:type;"},
                                    {"gone", "D"},
                                    {"link", "M:link target;"},
                                    {"mode", "M:mode;"},
                                    {"new", "A"},
                                    {"old", "D"},
                                    {"owner", "M:owner;"},
                                    {"x", "M:xattrs;"},
                                }));
  // In path order, an entry before what lies below it.
  std::vector<std::string> order;
  for (const DiffChange& c : w.changes) order.push_back(c.path);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  for (const DiffChange& c : w.changes) {
    if (c.path == "x") {
      EXPECT_EQ(c.xattr_names, (std::vector<std::string>{"user.a", "user.b"}));
    }
    if (c.path == "old") {
      ASSERT_TRUE(c.a);
      EXPECT_EQ(c.a->entries, 2u) << "sub and sub/x";
    }
    if (c.path == "etc/passwd") {
      EXPECT_EQ(c.a->size, 10u);
      EXPECT_EQ(c.b->size, 11u);
    }
  }
  // Content is asked only of same-size files (mode, same, owner, x: never of etc/passwd).
  EXPECT_EQ(w.asked.size(), 4u);
}

TEST(DiffTrees, SameSizeDifferentContentAndMtimeOnlyWithTheOption) {
  TarEntry f = File("f", 4, 1024);
  TarEntry g = File("f", 4, 2048);
  TarEntry t = File("t", 4, 3072);
  TarEntry t2 = t;
  t2.mtime_sec = 99;
  ImageTree a = Build({{f, t}});
  ImageTree b = Build({{g, t2}});
  EXPECT_EQ(Summary(Diff(a, b).changes), (std::map<std::string, std::string>{{"f", "M:content;"}}));
  DiffOptions with_mtime;
  with_mtime.mtime = true;
  EXPECT_EQ(Summary(Diff(a, b, with_mtime).changes),
            (std::map<std::string, std::string>{{"f", "M:content;"}, {"t", "M:mtime;"}}));
}

TEST(DiffTrees, WhiteoutsAndOpaqueDirectoriesAreSeenThroughTheMergedTree) {
  ImageTree a = Build({{Dir("d/"), File("d/x", 1, 1024), Dir("o/"), File("o/old", 1, 2048)}});
  // B: the same base, then a layer deleting d and making o opaque with a new file.
  TarEntry wh = File("d", 0, 512 * 10);
  wh.path = ".wh.d";
  TarEntry opq = File("o/.wh..wh..opq", 0, 512 * 12);
  ImageTree b = Build({{Dir("d/"), File("d/x", 1, 1024), Dir("o/"), File("o/old", 1, 2048)},
                       {wh, Dir("o/"), opq, File("o/new", 1, 512 * 14)}});
  EXPECT_EQ(Summary(Diff(a, b).changes),
            (std::map<std::string, std::string>{{"d", "D"}, {"o/new", "A"}, {"o/old", "D"}}));
}

TEST(DiffTrees, HardLinkCountsAndTypeChangesStopTheDescent) {
  TarEntry h;
  h.type = EntryType::kHardlink;
  h.path = "h";
  h.link_target = "f";
  ImageTree a = Build({{File("f", 1, 1024), Dir("dir/"), File("dir/in", 1, 2048)}});
  ImageTree b = Build({{File("f", 1, 1024), h, File("dir", 1, 3072)}});
  EXPECT_EQ(Summary(Diff(a, b).changes),
            (std::map<std::string, std::string>{{"dir", "M:type;"}, {"f", "M:links;"}, {"h", "A"}}));
}

TEST(DiffTrees, DeepTreesCostHeapNotStack) {
  std::vector<TarEntry> layer;
  std::string p;
  for (int i = 0; i < 2000; ++i) {
    p += "d/";
    layer.push_back(Dir(p));
  }
  ImageTree a = Build({layer});
  layer.push_back(File(p + "leaf", 1, 1 << 20));
  ImageTree b = Build({layer});
  auto changes = Diff(a, b).changes;
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, DiffKind::kAdded);
  EXPECT_EQ(changes[0].path.size(), p.size() - 1 + 5);
}

}  // namespace
}  // namespace lazyroot
