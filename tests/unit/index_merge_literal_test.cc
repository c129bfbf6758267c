// MergeMode::kLiteral (mount --layer N: one layer as `tar -x` unpacks it),
// TreeBuilder::Snapshot (mount --layers' upto/N), and ComposeTrees (the
// --layers tree made of them).

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "index/image_tree.h"
#include "index/limits.h"
#include "index/merge.h"
#include "index/tar_entry.h"
#include "index/tree_compose.h"

namespace lazyroot {
namespace {

TarEntry Make(std::string path, EntryType type, uint32_t mode = 0644, uint64_t size = 0) {
  TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  e.size = e.stored_size = size;
  e.data_offset = 512;
  return e;
}

ImageTree BuildLiteral(uint32_t layer, const std::vector<TarEntry>& entries, const Limits& limits = Limits()) {
  TreeBuilder b(limits, MergeMode::kLiteral);
  EXPECT_TRUE(b.BeginLayer(layer, "sha256:bb").ok());
  for (const TarEntry& e : entries) EXPECT_TRUE(b.Apply(e).ok()) << e.path;
  EXPECT_TRUE(b.EndLayer().ok());
  auto t = std::move(b).Finish("literal");
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t).value();
}

TEST(MergeLiteral, WhiteoutsAreFilesAndParentsAreImplied) {
  TarEntry wh = Make("etc/.wh.old", EntryType::kRegular, 0600);
  wh.uid = 7;
  wh.mtime_sec = 1234;
  ImageTree t = BuildLiteral(2, {wh, Make("a/.wh..wh..opq", EntryType::kRegular), Make("a/b/c", EntryType::kRegular)});
  EXPECT_EQ(t.layer_count(), 3u);  // layers 0 and 1 recorded with no digest
  EXPECT_EQ(t.LayerDigest(0), "");
  EXPECT_EQ(t.LayerDigest(2), "sha256:bb");
  auto id = t.LookupPath("etc/.wh.old");
  ASSERT_TRUE(id);
  Node n = t.GetNode(*id);
  EXPECT_EQ(n.type, NodeType::kRegular);
  EXPECT_EQ(n.mode, 0600u);
  EXPECT_EQ(n.uid, 7u);
  EXPECT_EQ(n.mtime_sec, 1234);
  EXPECT_EQ(n.layer, 2u);
  ASSERT_TRUE(t.LookupPath("a/.wh..wh..opq"));
  auto b = t.LookupPath("a/b");
  ASSERT_TRUE(b);
  EXPECT_TRUE(t.GetNode(*b).IsDir());
  EXPECT_EQ(t.GetNode(*b).mode, 0755u);
  EXPECT_EQ(t.GetNode(*b).layer, 2u);
  EXPECT_EQ(t.GetNode(ImageTree::kRoot).layer, 2u);
}

TEST(MergeLiteral, WhiteoutDoesNotDeleteTheSameLayersFile) {
  ImageTree t = BuildLiteral(0, {Make("x", EntryType::kRegular), Make(".wh.x", EntryType::kRegular)});
  EXPECT_TRUE(t.LookupPath("x"));
  EXPECT_TRUE(t.LookupPath(".wh.x"));
}

TEST(MergeLiteral, LastDuplicateWinsAndHardlinksShareANode) {
  ImageTree t = BuildLiteral(0, {Make("f", EntryType::kRegular, 0644, 1), Make("f", EntryType::kRegular, 0600, 5), [] {
                                   TarEntry l = Make("g", EntryType::kHardlink);
                                   l.link_target = "f";
                                   return l;
                                 }()});
  auto f = t.LookupPath("f");
  auto g = t.LookupPath("g");
  ASSERT_TRUE(f && g);
  EXPECT_EQ(*f, *g);
  EXPECT_EQ(t.GetNode(*f).mode, 0600u);
  EXPECT_EQ(t.GetNode(*f).size, 5u);
  EXPECT_EQ(t.GetNode(*f).nlink, 2u);
}

TEST(MergeLiteral, HardlinkToALowerLayerIsLeftOut) {
  TarEntry l = Make("g", EntryType::kHardlink);
  l.link_target = "from/lower";
  ImageTree t = BuildLiteral(1, {l, Make("h", EntryType::kRegular)});
  EXPECT_FALSE(t.LookupPath("g"));
  EXPECT_TRUE(t.LookupPath("h"));
}

TEST(MergeLiteral, WhiteoutNamesKeepTheKernelLimit) {
  TreeBuilder b(Limits(), MergeMode::kLiteral);
  ASSERT_TRUE(b.BeginLayer(0).ok());
  Status st = b.Apply(Make(".wh." + std::string(255, 'a'), EntryType::kRegular));
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded) << st.message();
}

TEST(MergeLiteral, BudgetsStillApply) {
  Limits limits;
  limits.image_entries = 100;
  TreeBuilder b(limits, MergeMode::kLiteral);
  ASSERT_TRUE(b.BeginLayer(0).ok());
  Status st = Status::Ok();
  for (int i = 0; i < 200 && st.ok(); ++i) st = b.Apply(Make("f" + std::to_string(i), EntryType::kRegular));
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(st.message().find("image"), std::string::npos) << st.message();
}

TEST(MergeLiteral, ApplyModeStillWantsLayersInOrder) {
  TreeBuilder b;
  EXPECT_EQ(b.BeginLayer(2).code(), ErrorCode::kInvalidArgument);
}

TEST(MergeSnapshot, SnapshotsEachLayerAndLeavesTheBuilderUsable) {
  TreeBuilder b;
  ASSERT_TRUE(b.BeginLayer(0, "sha256:aa").ok());
  ASSERT_TRUE(b.Apply(Make("x", EntryType::kRegular)).ok());
  ASSERT_TRUE(b.EndLayer().ok());
  auto s1 = b.Snapshot("upto 1");
  ASSERT_TRUE(s1.ok());
  ASSERT_TRUE(b.BeginLayer(1, "sha256:bb").ok());
  EXPECT_EQ(b.Snapshot("open").status().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(b.Apply(Make(".wh.x", EntryType::kRegular)).ok());
  ASSERT_TRUE(b.Apply(Make("y", EntryType::kRegular)).ok());
  ASSERT_TRUE(b.EndLayer().ok());
  auto full = std::move(b).Finish("full");
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(s1->LookupPath("x"));
  EXPECT_FALSE(s1->LookupPath("y"));
  EXPECT_EQ(s1->layer_count(), 1u);
  EXPECT_FALSE(full->LookupPath("x"));
  EXPECT_TRUE(full->LookupPath("y"));
}

std::shared_ptr<const ImageTree> Tree(std::vector<std::string> files, uint32_t layer = 0) {
  TreeBuilder b;
  for (uint32_t i = 0; i <= layer; ++i) {
    EXPECT_TRUE(b.BeginLayer(i, "sha256:" + std::to_string(i)).ok());
    if (i == layer) {
      for (const std::string& f : files) EXPECT_TRUE(b.Apply(Make(f, EntryType::kRegular)).ok());
    }
    EXPECT_TRUE(b.EndLayer().ok());
  }
  return std::make_shared<const ImageTree>(std::move(b).Finish("part").value());
}

TEST(ComposeTrees, PartsBelowSyntheticDirectories) {
  auto merged = Tree({"merged", "layers", "a/b"}, 1);  // names like the synthetic ones, below merged/
  auto l1 = Tree({"x"});
  ComposeOptions o;
  o.layer_digests = {"sha256:0", "sha256:1"};
  o.mtime_sec = 99;
  std::vector<TreePart> parts{{{"merged"}, merged}, {{"layers", "1-abc"}, l1}, {{"upto", "2"}, merged}};
  auto c = ComposeTrees(parts, o);
  ASSERT_TRUE(c.ok()) << c.status().message();
  const ImageTree& t = c->tree;
  EXPECT_EQ(c->synthetic_nodes, 3u);  // root, layers, upto
  EXPECT_EQ(t.node_count(), 3 + 2 * merged->node_count() + l1->node_count());
  Node root = t.GetNode(ImageTree::kRoot);
  EXPECT_EQ(root.mode, 0555u);
  EXPECT_EQ(root.mtime_sec, 99);
  EXPECT_EQ(root.nlink, 2u + 3u);
  auto ab = t.LookupPath("merged/a/b");
  ASSERT_TRUE(ab);
  EXPECT_EQ(t.GetNode(*ab).layer, 1u);
  EXPECT_TRUE(t.LookupPath("merged/layers"));
  EXPECT_TRUE(t.LookupPath("layers/1-abc/x"));
  EXPECT_TRUE(t.LookupPath("upto/2/a/b"));
  auto m = t.LookupPath("merged");
  ASSERT_TRUE(m);
  EXPECT_GE(*m, c->synthetic_nodes);
  EXPECT_EQ(t.GetNode(*m).parent, ImageTree::kRoot);
}

TEST(ComposeTrees, OverTheBudgetNamesIt) {
  auto part = Tree({"a", "b", "c"});
  ComposeOptions o;
  o.layer_digests = {"sha256:0"};
  o.max_nodes = 5;
  std::vector<TreePart> parts{{{"p"}, part}, {{"q"}, part}};
  auto c = ComposeTrees(parts, o);
  ASSERT_EQ(c.status().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(c.status().message().find("image-entries"), std::string::npos);
}

TEST(ComposeTrees, RefusesCollidingOrBadPaths) {
  auto part = Tree({"a"});
  ComposeOptions o;
  o.layer_digests = {"sha256:0"};
  std::vector<TreePart> twice{{{"p"}, part}, {{"p"}, part}};
  EXPECT_EQ(ComposeTrees(twice, o).status().code(), ErrorCode::kInvalidArgument);
  std::vector<TreePart> nested{{{"p"}, part}, {{"p", "q"}, part}};
  EXPECT_EQ(ComposeTrees(nested, o).status().code(), ErrorCode::kInvalidArgument);
  std::vector<TreePart> dots{{{".."}, part}};
  EXPECT_EQ(ComposeTrees(dots, o).status().code(), ErrorCode::kInvalidArgument);
  ComposeOptions few;  // the part names layer 0, the table has none
  std::vector<TreePart> one{{{"p"}, part}};
  EXPECT_EQ(ComposeTrees(one, few).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace lazyroot
