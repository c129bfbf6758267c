// Merge tests: correctness.md §1.1-§1.4 as a table of (layers of entries ->
// canonical listing | error), umoci's TestUnpackOpaqueWhiteout cases in
// their upper/shouldSurvive form, moby's TestApplyLayerWhiteouts 4-layer
// vector, and a 100k-file performance sanity run.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "index/image_tree.h"
#include "index/limits.h"
#include "index/merge.h"
#include "index/tar_entry.h"

namespace lazyroot {
namespace {

using Layer = std::vector<TarEntry>;

uint64_t next_data_offset = 512;

TarEntry Entry(std::string path, EntryType type, uint32_t mode) {
  TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  return e;
}
TarEntry Dir(std::string path, uint32_t mode = 0755, uint32_t uid = 0, uint32_t gid = 0, int64_t mtime = 0) {
  TarEntry e = Entry(std::move(path), EntryType::kDirectory, mode);
  e.uid = uid;
  e.gid = gid;
  e.mtime_sec = mtime;
  return e;
}
TarEntry File(std::string path, std::string_view content = "", uint32_t mode = 0644) {
  TarEntry e = Entry(std::move(path), EntryType::kRegular, mode);
  e.size = e.stored_size = content.size();
  e.header_offset = next_data_offset - 512;
  e.data_offset = next_data_offset;
  next_data_offset += 512 + (content.size() + 511) / 512 * 512;
  return e;
}
TarEntry Sym(std::string path, std::string target) {
  TarEntry e = Entry(std::move(path), EntryType::kSymlink, 0777);
  e.link_target = std::move(target);
  return e;
}
TarEntry Link(std::string path, std::string target) {
  TarEntry e = Entry(std::move(path), EntryType::kHardlink, 0644);
  e.link_target = std::move(target);
  return e;
}
// A hardlink header carrying its own metadata, which the merge must ignore.
TarEntry LinkWithHeader(std::string path, std::string target, uint32_t mode, uint32_t uid, uint32_t gid,
                        int64_t mtime) {
  TarEntry e = Link(std::move(path), std::move(target));
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  e.mtime_sec = mtime;
  return e;
}
TarEntry Wh(std::string path) { return File(std::move(path)); }
TarEntry WithXattr(TarEntry e, std::string name, std::string value) {
  e.xattrs.emplace_back(std::move(name), std::move(value));
  return e;
}

Result<ImageTree> Merge(const std::vector<Layer>& layers) {
  TreeBuilder b;
  for (size_t i = 0; i < layers.size(); ++i) {
    LAZYROOT_RETURN_IF_ERROR(b.BeginLayer(static_cast<uint32_t>(i), "sha256:layer" + std::to_string(i)));
    for (const TarEntry& e : layers[i]) LAZYROOT_RETURN_IF_ERROR(b.Apply(e));
    LAZYROOT_RETURN_IF_ERROR(b.EndLayer());
  }
  return std::move(b).Finish("test tree");
}

char TypeChar(NodeType t) {
  switch (t) {
    case NodeType::kRegular:
      return 'f';
    case NodeType::kDirectory:
      return 'd';
    case NodeType::kSymlink:
      return 'l';
    case NodeType::kCharDevice:
      return 'c';
    case NodeType::kBlockDevice:
      return 'b';
    case NodeType::kFifo:
      return 'p';
  }
  return '?';
}

// The canonical listing: one line per name, depth-first in name order,
// "path type mode uid:gid size link nlink" (root is ".").
std::vector<std::string> Listing(const ImageTree& tree) {
  std::vector<std::string> out;
  struct Item {
    std::string path;
    NodeId node;
  };
  std::vector<Item> stack{{".", ImageTree::kRoot}};
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    Node n = tree.GetNode(it.node);
    char line[256];
    std::snprintf(line, sizeof line, " %c %04o %u:%u %llu ", TypeChar(n.type), n.mode, n.uid, n.gid,
                  static_cast<unsigned long long>(n.size));
    std::string s = it.path + line + (n.type == NodeType::kSymlink ? std::string(n.symlink_target) : "-") + " " +
                    std::to_string(n.nlink);
    out.push_back(s);
    for (uint32_t i = tree.ChildCount(it.node); i-- > 0;) {
      DirEntry c = tree.ChildAt(it.node, i);
      stack.push_back({it.path == "." ? std::string(c.name) : it.path + "/" + std::string(c.name), c.node});
    }
  }
  return out;
}

struct Case {
  const char* name;
  std::vector<Layer> layers;
  std::vector<std::string> want;  // listing, or empty when an error is expected
  std::string error = "";         // substring of the expected error
};

// Rows of correctness.md §1 (number in the case name).
std::vector<Case> Cases() {
  return {
      // §1.1 whiteouts
      {"r01_whiteout_file", {{File("a", "x"), File("b")}, {Wh(".wh.a")}}, {". d 0755 0:0 0 - 2", "b f 0644 0:0 0 - 1"}},
      {"r02_whiteout_dir_subtree", {{Dir("d/"), File("d/x"), File("d/s/y")}, {Wh(".wh.d")}}, {". d 0755 0:0 0 - 2"}},
      {"r03_same_layer_whiteout_after_file",
       {{File("b", "lower")}, {File("b", "upper!"), Wh(".wh.b")}},
       {". d 0755 0:0 0 - 2", "b f 0644 0:0 6 - 1"}},
      {"r04_whiteout_then_recreate",
       {{File("a"), File("b", "old")}, {Wh(".wh.b"), File("b", "new!")}},
       {". d 0755 0:0 0 - 2", "a f 0644 0:0 0 - 1", "b f 0644 0:0 4 - 1"}},
      {"r05_whiteout_before_new_child_recreates_implicit_dir",
       {{Dir("a/", 0700), File("a/old")}, {Wh(".wh.a"), File("a/new")}},
       {". d 0755 0:0 0 - 3", "a d 0755 0:0 0 - 2", "a/new f 0644 0:0 0 - 1"}},
      {"r05_whiteout_after_new_child_keeps_lower_dir",
       {{Dir("a/", 0700), File("a/old")}, {File("a/new"), Wh(".wh.a")}},
       {". d 0755 0:0 0 - 3", "a d 0700 0:0 0 - 2", "a/new f 0644 0:0 0 - 1"}},
      {"r06_opaque_marker_last",
       {{File("d/x"), File("d/s/y")}, {Dir("d/", 0700), File("d/z"), Dir("d/s/"), Wh("d/.wh..wh..opq")}},
       {". d 0755 0:0 0 - 3", "d d 0700 0:0 0 - 3", "d/s d 0755 0:0 0 - 2", "d/z f 0644 0:0 0 - 1"}},
      {"r07_opaque_marker_first_redeclared_dir",
       {{File("d/x"), File("d/s/y")}, {Dir("d/", 0700), Wh("d/.wh..wh..opq"), Dir("d/s/", 0711), File("d/z")}},
       {". d 0755 0:0 0 - 3", "d d 0700 0:0 0 - 3", "d/s d 0711 0:0 0 - 2", "d/z f 0644 0:0 0 - 1"}},
      {"r08_opaque_plus_whiteout_plus_new",
       {{File("d/x"), File("d/w")}, {Wh("d/.wh..wh..opq"), Wh("d/.wh.x"), File("d/y")}},
       {". d 0755 0:0 0 - 3", "d d 0755 0:0 0 - 2", "d/y f 0644 0:0 0 - 1"}},
      {"r09_root_opaque",
       {{File("a"), File("b/c")}, {Wh(".wh..wh..opq"), File("n")}},
       {". d 0755 0:0 0 - 2", "n f 0644 0:0 0 - 1"}},
      {"r10_whiteouts_in_missing_dirs_create_nothing",
       {{File("a")}, {Wh("nd/.wh.x"), Wh("nd2/.wh..wh..opq")}},
       {". d 0755 0:0 0 - 2", "a f 0644 0:0 0 - 1"}},
      {"r11_whiteout_without_name", {{File("d/x")}, {Wh("d/.wh.")}}, {}, "names no file"},
      {"r11_whiteout_of_dot", {{File("d/x")}, {Wh("d/.wh..")}}, {}, "names no file"},
      {"r11_whiteout_of_dotdot", {{File("x")}, {Wh(".wh...")}}, {}, "names no file"},
      {"r12_whiteout_type_ignored",
       {{File("a"), File("b"), File("c"), File("k")}, {Dir(".wh.a/"), Sym(".wh.b", "k"), File(".wh.c", "junk")}},
       {". d 0755 0:0 0 - 2", "k f 0644 0:0 0 - 1"}},
      {"r13_prefix_on_directory_component",
       {{File(".wh.etc/somefile")}},
       {". d 0755 0:0 0 - 3", ".wh.etc d 0755 0:0 0 - 2", ".wh.etc/somefile f 0644 0:0 0 - 1"}},
      {"r14_whiteout_symlink_not_target",
       {{File("d/f"), Sym("s", "d")}, {Wh(".wh.s")}},
       {". d 0755 0:0 0 - 3", "d d 0755 0:0 0 - 2", "d/f f 0644 0:0 0 - 1"}},
      {"r15_whiteout_through_symlinked_parent",
       {{File("d/f"), Sym("s2", "d")}, {Wh("s2/.wh.f")}},
       {". d 0755 0:0 0 - 3", "d d 0755 0:0 0 - 2", "s2 l 0777 0:0 1 d 1"}},
      {"r16_whiteout_then_recreate_in_later_layer",
       {{File("a/foo")}, {Wh(".wh.a")}, {Dir("a/"), File("a/baz")}},
       {". d 0755 0:0 0 - 3", "a d 0755 0:0 0 - 2", "a/baz f 0644 0:0 0 - 1"}},
      {"r17_whiteout_missing_target", {{File("a")}, {Wh(".wh.zzz")}}, {". d 0755 0:0 0 - 2", "a f 0644 0:0 0 - 1"}},
      // §1.2 type changes, duplicates, parents, the root
      {"r19_file_becomes_dir",
       {{File("p", "x")}, {Dir("p/"), File("p/n")}},
       {". d 0755 0:0 0 - 3", "p d 0755 0:0 0 - 2", "p/n f 0644 0:0 0 - 1"}},
      {"r20_dir_becomes_file",
       {{Dir("q/"), File("q/c")}, {File("q", "abc")}},
       {". d 0755 0:0 0 - 2", "q f 0644 0:0 3 - 1"}},
      {"r21_dir_over_dir_replaces_attributes",
       {{Dir("d/", 0700, 1, 1), File("d/f")}, {Dir("d/", 0750, 2, 3)}},
       {". d 0755 0:0 0 - 3", "d d 0750 2:3 0 - 2", "d/f f 0644 0:0 0 - 1"}},
      {"r22_dir_replaces_symlink_not_written_through",
       {{Dir("etc/"), Sym("s", "/etc")}, {Dir("s/"), File("s/n")}},
       {". d 0755 0:0 0 - 4", "etc d 0755 0:0 0 - 2", "s d 0755 0:0 0 - 2", "s/n f 0644 0:0 0 - 1"}},
      {"r23_duplicates_last_wins",
       {{File("f", "first"), File("f", "second"), Dir("d/", 0700), Dir("d/", 0751), Dir("k/"), File("k")}},
       {". d 0755 0:0 0 - 3", "d d 0751 0:0 0 - 2", "f f 0644 0:0 6 - 1", "k f 0644 0:0 0 - 1"}},
      {"r24_non_directory_parent_is_error",
       {{File("n")}, {File("n/x")}},
       {},
       "layer 2 (sha256:layer1): entry \"n/x\": parent \"n\" is not a directory"},
      {"r25_implicit_parents",
       {{File("x/y/z")}},
       {". d 0755 0:0 0 - 3", "x d 0755 0:0 0 - 3", "x/y d 0755 0:0 0 - 2", "x/y/z f 0644 0:0 0 - 1"}},
      {"r26_root_entry_sets_root", {{Dir("./", 0700, 5, 6, 1234)}}, {". d 0700 5:6 0 - 2"}},
      {"r26_root_entry_dot_slash_and_slash",
       {{Dir(".", 0711), File("a")}, {Dir("/", 0750, 1, 1)}},
       {". d 0750 1:1 0 - 2", "a f 0644 0:0 0 - 1"}},
      {"r27_root_as_symlink_is_error", {{Sym(".", "/tmp")}}, {}, "refusing to change the type of the root"},
      {"r27_root_as_file_is_error", {{File("a")}, {File("./")}}, {}, "layer 2 (sha256:layer1): entry \"./\": refusing"},
      {"r28_lexical_clamp",
       {{File("../../evil"), File("/abs/file"), File("./dot/x"), File("a//b/./c")}},
       {". d 0755 0:0 0 - 5", "a d 0755 0:0 0 - 3", "a/b d 0755 0:0 0 - 2", "a/b/c f 0644 0:0 0 - 1",
        "abs d 0755 0:0 0 - 2", "abs/file f 0644 0:0 0 - 1", "dot d 0755 0:0 0 - 2", "dot/x f 0644 0:0 0 - 1",
        "evil f 0644 0:0 0 - 1"}},
      {"r29_normalised_names_are_one_node",
       {{Dir("./a/", 0700), File("./a/f")}, {Dir("a", 0711)}, {Dir("/a/", 0751), File("a/g")}},
       {". d 0755 0:0 0 - 3", "a d 0751 0:0 0 - 2", "a/f f 0644 0:0 0 - 1", "a/g f 0644 0:0 0 - 1"}},
      // §1.3 hardlinks
      {"r31_hardlink_header_metadata_ignored",
       {{File("f", "abc"), LinkWithHeader("h", "f", 0777, 99, 99, 222)}},
       {". d 0755 0:0 0 - 2", "f f 0644 0:0 3 - 2", "h f 0644 0:0 3 - 2"}},
      {"r32_hardlink_to_lower_layer",
       {{File("f", "abc")}, {Link("h", "f")}},
       {". d 0755 0:0 0 - 2", "f f 0644 0:0 3 - 2", "h f 0644 0:0 3 - 2"}},
      {"r33_hardlink_chain_and_whiteout_one_name",
       {{File("f", "v1")}, {Link("h", "f"), Link("c1", "h"), Link("c2", "c1")}, {Wh(".wh.f")}},
       {". d 0755 0:0 0 - 2", "c1 f 0644 0:0 2 - 3", "c2 f 0644 0:0 2 - 3", "h f 0644 0:0 2 - 3"}},
      {"r34_rewrite_after_link_is_new_inode",
       {{File("f", "v1"), Link("h", "f"), File("f", "v22")}},
       {". d 0755 0:0 0 - 2", "f f 0644 0:0 3 - 1", "h f 0644 0:0 2 - 1"}},
      {"r34_rewrite_in_later_layer",
       {{File("f", "v1"), Link("h", "f")}, {File("f", "v22")}},
       {". d 0755 0:0 0 - 2", "f f 0644 0:0 3 - 1", "h f 0644 0:0 2 - 1"}},
      {"r35_forward_reference",
       {{Link("h", "f"), File("f")}},
       {},
       "layer 1 (sha256:layer0): entry \"h\": hardlink target \"f\" does not exist"},
      {"r36_link_to_whited_out", {{File("f")}, {Wh(".wh.f"), Link("h", "f")}}, {}, "does not exist"},
      {"r37_link_to_directory", {{Dir("d/")}, {Link("h", "d")}}, {}, "hardlink target \"d\" is a directory"},
      {"r37_link_to_root", {{Link("h", "/")}}, {}, "is a directory"},
      {"r38_link_targets_clamped_in_root",
       {{File("etc/passwd", "root")}, {Link("h1", "/etc/passwd"), Link("h2", "../../etc/passwd")}},
       {". d 0755 0:0 0 - 3", "etc d 0755 0:0 0 - 2", "etc/passwd f 0644 0:0 4 - 3", "h1 f 0644 0:0 4 - 3",
        "h2 f 0644 0:0 4 - 3"}},
      {"r39_hardlink_to_symlink",
       {{File("t"), Sym("s", "t"), Link("hs", "s")}},
       {". d 0755 0:0 0 - 2", "hs l 0777 0:0 1 t 2", "s l 0777 0:0 1 t 2", "t f 0644 0:0 0 - 1"}},
      {"r40_link_then_opaque_keeps_link",
       {{File("d/f", "F")}, {Link("h", "d/f"), Wh("d/.wh..wh..opq")}},
       {". d 0755 0:0 0 - 3", "d d 0755 0:0 0 - 2", "h f 0644 0:0 1 - 1"}},
      {"r40_opaque_then_link_is_error",
       {{File("d/f", "F")}, {Wh("d/.wh..wh..opq"), Link("h", "d/f")}},
       {},
       "does not exist"},
      {"r41_aufs_metadata_like_umoci",
       {{Dir(".wh..wh.plnk/", 0700), File(".wh..wh.plnk/123.456", "x"), Link("x", ".wh..wh.plnk/123.456"),
         File(".wh..wh.aufs")}},
       {". d 0755 0:0 0 - 3", ".wh..wh.plnk d 0755 0:0 0 - 2", ".wh..wh.plnk/123.456 f 0644 0:0 1 - 2",
        "x f 0644 0:0 1 - 2"}},
      // §1.4 symlinks and path resolution
      {"r42_symlink_targets_verbatim",
       {{Sym("abs", "/etc/passwd"), Sym("rel", "../../../../etc/shadow"), Sym("dang", "nope"), Sym("dir/up", "..")}},
       {". d 0755 0:0 0 - 3", "abs l 0777 0:0 11 /etc/passwd 1", "dang l 0777 0:0 4 nope 1", "dir d 0755 0:0 0 - 2",
        "dir/up l 0777 0:0 2 .. 1", "rel l 0777 0:0 22 ../../../../etc/shadow 1"}},
      {"r43_usrmerge",
       {{Dir("usr/"), Dir("usr/lib/"), Sym("lib", "usr/lib")}, {File("lib/systemd/x.service")}},
       {". d 0755 0:0 0 - 3", "lib l 0777 0:0 7 usr/lib 1", "usr d 0755 0:0 0 - 3", "usr/lib d 0755 0:0 0 - 3",
        "usr/lib/systemd d 0755 0:0 0 - 2", "usr/lib/systemd/x.service f 0644 0:0 0 - 1"}},
      {"r44_absolute_symlink_parent_in_root",
       {{Dir("etc/"), Sym("l", "/etc")}, {File("l/x")}},
       {". d 0755 0:0 0 - 3", "etc d 0755 0:0 0 - 2", "etc/x f 0644 0:0 0 - 1", "l l 0777 0:0 4 /etc 1"}},
      {"r45_relative_escape_clamped",
       {{Sym("e", "../../../../tmp"), File("e/evil")}},
       {". d 0755 0:0 0 - 3", "e l 0777 0:0 15 ../../../../tmp 1", "tmp d 0755 0:0 0 - 2",
        "tmp/evil f 0644 0:0 0 - 1"}},
      {"r46_symlink_chain_and_dangling_parent",
       {{Sym("a", "b"), Sym("b", "c"), Dir("c/"), Sym("dl", "nonexist/deeper")}, {File("a/x"), File("dl/y")}},
       {". d 0755 0:0 0 - 4", "a l 0777 0:0 1 b 1", "b l 0777 0:0 1 c 1", "c d 0755 0:0 0 - 2", "c/x f 0644 0:0 0 - 1",
        "dl l 0777 0:0 15 nonexist/deeper 1", "nonexist d 0755 0:0 0 - 3", "nonexist/deeper d 0755 0:0 0 - 2",
        "nonexist/deeper/y f 0644 0:0 0 - 1"}},
      {"r47_symlink_loop", {{Sym("p", "q"), Sym("q", "p"), File("p/x")}}, {}, "too many levels of symbolic links"},
      {"r48_each_entry_sees_the_tree_as_it_is",
       {{Dir("foo/"), File("foo/tmp/x", "1"), Sym("foo", "/"), File("foo/tmp/x", "22"), Dir("foo/"),
         File("foo/tmp/x", "333")}},
       {". d 0755 0:0 0 - 4", "foo d 0755 0:0 0 - 3", "foo/tmp d 0755 0:0 0 - 2", "foo/tmp/x f 0644 0:0 3 - 1",
        "tmp d 0755 0:0 0 - 2", "tmp/x f 0644 0:0 2 - 1"}},
      {"r49_hardlink_target_parent_is_symlink",
       {{File("etc/passwd", "pw"), Sym("breakouts/d1", "../../etc")}, {Link("h", "breakouts/d1/passwd")}},
       {". d 0755 0:0 0 - 4", "breakouts d 0755 0:0 0 - 2", "breakouts/d1 l 0777 0:0 9 ../../etc 1",
        "etc d 0755 0:0 0 - 2", "etc/passwd f 0644 0:0 2 - 2", "h f 0644 0:0 2 - 2"}},
      // Beyond the rows.
      {"devices_and_fifo",
       {{[] {
           TarEntry e = Entry("dev/null", EntryType::kCharDevice, 0666);
           e.dev_major = 1;
           e.dev_minor = 3;
           return e;
         }(),
         Entry("dev/sda", EntryType::kBlockDevice, 0660), Entry("p", EntryType::kFifo, 0600), File("suid", "", 04755),
         Dir("tmp/", 01777)}},
       {". d 0755 0:0 0 - 4", "dev d 0755 0:0 0 - 2", "dev/null c 0666 0:0 0 - 1", "dev/sda b 0660 0:0 0 - 1",
        "p p 0600 0:0 0 - 1", "suid f 4755 0:0 0 - 1", "tmp d 1777 0:0 0 - 2"}},
      {"symlink_replaced_by_file_not_written_through",
       {{File("real", "abc"), Sym("s", "real")}, {File("s", "z")}},
       {". d 0755 0:0 0 - 2", "real f 0644 0:0 3 - 1", "s f 0644 0:0 1 - 1"}},
      {"symlink_parent_to_file_is_error",
       {{File("f"), Sym("s", "f")}, {File("s/x")}},
       {},
       "parent \"f\" is not a directory"},
  };
}

TEST(MergeTable, CorrectnessRows) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Result<ImageTree> tree = Merge(c.layers);
    if (!c.error.empty()) {
      ASSERT_FALSE(tree.ok()) << "expected error containing: " << c.error;
      EXPECT_NE(tree.status().message().find(c.error), std::string::npos) << tree.status().message();
      continue;
    }
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    EXPECT_EQ(Listing(*tree), c.want);
  }
}

// Rows that need more than the listing: identity of nodes, mtimes, xattrs.

TEST(Merge, HardlinksShareOneNode) {
  auto tree = Merge({{File("f", "v1")}, {Link("h", "f"), Link("c1", "h"), Link("c2", "c1")}, {Wh(".wh.f")}});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  auto h = tree->LookupPath("h"), c1 = tree->LookupPath("c1"), c2 = tree->LookupPath("c2");
  ASSERT_TRUE(h && c1 && c2);
  EXPECT_EQ(*h, *c1);
  EXPECT_EQ(*h, *c2);
  EXPECT_EQ(tree->GetNode(*h).layer, 0u);  // content still from layer 0
}

TEST(Merge, HardlinkToItselfKeepsTheFile) {
  // GNU tar writes `f` then a hardlink `f -> f` when f is named twice on its
  // command line; the file must survive with one name.
  auto tree = Merge({{File("d/f", "v1"), Link("d/f", "d/f")}});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  auto f = tree->LookupPath("d/f");
  ASSERT_TRUE(f);
  EXPECT_EQ(tree->GetNode(*f).size, 2u);
  EXPECT_EQ(tree->GetNode(*f).nlink, 1u);
}

TEST(Merge, RewriteAfterLinkIsANewNodeWithNewContent) {
  TarEntry v1 = File("f", "v1"), v2 = File("f", "v2");
  auto tree = Merge({{v1, Link("h", "f"), v2}});
  ASSERT_TRUE(tree.ok());
  Node h = tree->GetNode(*tree->LookupPath("h")), f = tree->GetNode(*tree->LookupPath("f"));
  EXPECT_EQ(h.data_offset, v1.data_offset);
  EXPECT_EQ(f.data_offset, v2.data_offset);
}

TEST(Merge, RootAttributesAndDefaults) {
  auto plain = Merge({{File("a")}});
  ASSERT_TRUE(plain.ok());
  Node root = plain->GetNode(ImageTree::kRoot);
  EXPECT_EQ(root.mode, 0755u);
  EXPECT_EQ(root.mtime_sec, 0);
  auto set = Merge({{Dir("./", 0700, 5, 6, 1234)}});
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->GetNode(ImageTree::kRoot).mtime_sec, 1234);
}

TEST(Merge, DirectoryMtimeIsItsOwnLatestEntry) {  // row 30
  auto tree = Merge({{Dir("d/", 0755, 0, 0, 1000), File("d/f")}, {File("d/g"), File("x/y")}});
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(tree->GetNode(*tree->LookupPath("d")).mtime_sec, 1000);
  EXPECT_EQ(tree->GetNode(*tree->LookupPath("x")).mtime_sec, 0);  // implicit
  auto later = Merge({{Dir("d/", 0755, 0, 0, 1000)}, {Dir("d/", 0755, 0, 0, 2000), File("d/g")}});
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->GetNode(*later->LookupPath("d")).mtime_sec, 2000);
  EXPECT_EQ(later->GetNode(*later->LookupPath("d")).layer, 1u);
}

TEST(Merge, DirectoryOverDirectoryReplacesTheWholeXattrSet) {  // row 21
  auto tree = Merge({{WithXattr(Dir("d/"), "user.a", "1"), File("d/f")},
                     {WithXattr(WithXattr(Dir("d/"), "user.c", "3"), "user.b", "2")}});
  ASSERT_TRUE(tree.ok());
  NodeId d = *tree->LookupPath("d");
  ASSERT_EQ(tree->XattrCount(d), 2u);
  EXPECT_EQ(tree->XattrAt(d, 0).name, "user.b");
  EXPECT_EQ(tree->XattrAt(d, 1).name, "user.c");
  EXPECT_FALSE(tree->GetXattr(d, "user.a"));
  EXPECT_EQ(tree->GetXattr(d, "user.c").value_or(""), "3");
}

TEST(Merge, ErrorsNameLayerAndEntryAndSpendTheBuilder) {
  TreeBuilder b;
  ASSERT_TRUE(b.BeginLayer(0).ok());
  ASSERT_TRUE(b.Apply(File("n")).ok());
  ASSERT_TRUE(b.EndLayer().ok());
  ASSERT_TRUE(b.BeginLayer(1).ok());
  ASSERT_TRUE(b.Apply(File("a")).ok());
  ASSERT_TRUE(b.BeginLayer(1).ok() == false);  // layer still open: an error that spends the builder
  Status st = b.Apply(File("b"));
  EXPECT_FALSE(st.ok());
  TreeBuilder c;
  EXPECT_FALSE(c.BeginLayer(1).ok());  // out of order
  TreeBuilder d;
  EXPECT_FALSE(d.Apply(File("x")).ok());  // outside a layer
}

TEST(Merge, SparseMapIsKeptAndChecked) {
  TarEntry sp = File("sp");
  sp.size = 3 << 20;
  sp.sparse = {{0, 4096}, {1 << 20, 4096}, {3 << 20, 0}};
  sp.stored_size = 8192;
  auto tree = Merge({{sp}});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  NodeId n = *tree->LookupPath("sp");
  ASSERT_EQ(tree->SparseCount(n), 3u);
  EXPECT_EQ(tree->SparseAt(n, 1).logical_offset, 1u << 20);
  EXPECT_EQ(tree->GetNode(n).stored_size, 8192u);
  sp.sparse = {{1 << 20, 4096}, {0, 4096}};
  EXPECT_FALSE(Merge({{sp}}).ok());
}

// umoci oci/layer/tar_extract_test.go TestUnpackOpaqueWhiteout: lower
// dentries in layer 0, upper dentries in layer 1 followed by an opaque marker
// for the subdirectory; every dentry says whether it must survive.
struct Dentry {
  TarEntry entry;
  bool upper;
  bool should_survive;
};

void RunOpaqueCase(const char* name, const std::vector<Dentry>& dentries) {
  SCOPED_TRACE(name);
  const std::string sub = "test-subdir/";
  Layer lower{Dir(sub)}, upper;
  for (const Dentry& d : dentries) {
    TarEntry e = d.entry;
    e.path = sub + e.path;
    (d.upper ? upper : lower).push_back(e);
  }
  upper.push_back(Wh(sub + ".wh..wh..opq"));
  auto tree = Merge({lower, upper});
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  for (const Dentry& d : dentries) {
    std::string base = d.entry.path.substr(d.entry.path.rfind('/') + 1);
    if (base.starts_with(".wh.")) continue;
    EXPECT_EQ(tree->LookupPath(sub + d.entry.path).has_value(), d.should_survive) << d.entry.path;
  }
  auto root = tree->LookupPath(sub);
  ASSERT_TRUE(root);
  EXPECT_TRUE(tree->GetNode(*root).IsDir());
}

TEST(MergeUmociOpaque, UpperShouldSurvive) {
  RunOpaqueCase("MultiLevel", {
                                  {File("level1_file"), true, true},
                                  {Sym("level1_link", ".."), false, false},
                                  {Dir("level1a"), true, true},
                                  {File("level1a/level2_file"), false, false},
                                  {Sym("level1a/level2_link", "../../../"), true, true},
                                  {Dir("level1a/level2a"), false, false},
                                  {File("level1a/level2a/level3_fileA"), false, false},
                                  {File("level1a/level2a/level3_fileB"), false, false},
                                  {Dir("level1a/level2b"), true, true},
                                  {File("level1a/level2b/level3_fileA"), true, true},
                                  {File("level1a/level2b/level3_fileB"), false, false},
                                  {Dir("level1a/level2b/level3"), false, false},
                                  {Dir("level1a/level2b/level3/level4"), false, false},
                                  {Dir("level1a/level2b/level3/level4"), false, false},
                                  {File("level1a/level2b/level3_fileA"), true, true},
                                  {Dir("level1b"), false, false},
                                  {File("level1b/level2_fileA"), false, false},
                                  {File("level1b/level2_fileB"), false, false},
                                  {Dir("level1b/level2"), false, false},
                                  {File("level1b/level2/level3_file"), false, false},
                              });
  RunOpaqueCase("MissingUpperAncestor", {
                                            {Dir("some"), false, true},
                                            {Dir("some/dir"), false, true},
                                            {File("some/dir/somewhere"), true, true},
                                            {Dir("another"), false, false},
                                            {Dir("another/dir"), false, false},
                                            {File("another/dir/somewhere"), false, false},
                                        });
  RunOpaqueCase("UpperWhiteout", {
                                     {Wh(".wh.fileB"), true, true},
                                     {File("fileA"), true, true},
                                     {File("fileB"), true, true},
                                     {File("fileC"), false, false},
                                     {Wh(".wh.fileA"), true, true},
                                     {Wh(".wh.fileC"), true, true},
                                 });
  RunOpaqueCase("UpperDirWhiteout",
                {
                    {Wh(".wh.dir2"), true, true},
                    {File("file"), false, false},
                    {Dir("dir1"), true, true},
                    {File("dir1/file"), true, true},
                    {Sym("dir1/link", "../badlink"), false, false},
                    {Sym("dir1/verybadlink", "../../../../../../../../../../../../etc/shadow"), true, true},
                    {Sym("dir1/verybadlink2", "/../../../../../../../../../../../../etc/shadow"), false, false},
                    {Wh(".wh.dir1"), true, true},
                    {Dir("dir2"), true, true},
                    {File("dir2/file"), true, true},
                    {Sym("dir2/link", "../badlink"), false, false},
                });
}

// moby/go-archive diff_test.go TestApplyLayerWhiteouts (row 18). Its layers
// come from Tar() of a directory: entries in filepath.Walk order.
TEST(MergeMoby, ApplyLayerWhiteouts) {
  auto layer = [](std::vector<std::string> paths) {
    std::sort(paths.begin(), paths.end());
    Layer l;
    for (const std::string& p : paths) l.push_back(p.back() == '/' ? Dir(p, 0700) : File(p, "", 0600));
    return l;
  };
  const std::vector<std::string> base = {".baz",        "bar/",        "bar/bax",   "bar/bay/",   "baz",
                                         "foo/",        "foo/.abc",    "foo/.bcd/", "foo/.bcd/a", "foo/cde/",
                                         "foo/cde/def", "foo/cde/efg", "foo/fgh",   "foobar"};
  struct Step {
    std::vector<std::string> change, expected;
  };
  const std::vector<Step> steps = {
      {base, base},
      {{".bay", ".wh.baz", "foo/", "foo/.bce", "foo/.wh..wh..opq", "foo/cde/", "foo/cde/efg"},
       {".bay", ".baz", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.bce", "foo/cde/", "foo/cde/efg", "foobar"}},
      {{".bay", ".wh..baz", ".wh.foobar", "foo/", "foo/.abc", "foo/.wh.cde", "bar/"},
       {".bay", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.abc", "foo/.bce"}},
      {{".abc", ".wh..wh..opq", "foobar"}, {".abc", "foobar"}},
  };
  std::vector<Layer> layers;
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    layers.push_back(layer(steps[i].change));
    auto tree = Merge(layers);
    ASSERT_TRUE(tree.ok()) << tree.status().ToString();
    std::vector<std::string> got;
    for (const std::string& line : Listing(*tree)) {
      std::string path = line.substr(0, line.find(' '));
      if (path == ".") continue;
      got.push_back(path + (line[path.size() + 1] == 'd' ? "/" : ""));
    }
    std::vector<std::string> want = steps[i].expected;
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
  }
}

// Performance sanity, not a timed assertion: 100k files in 1k directories,
// half of them rewritten and a tenth whited out by a second layer.
TEST(MergePerformance, HundredThousandFiles) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  constexpr int kFiles = 100000;
  auto t0 = Clock::now();
  TreeBuilder b;
  ASSERT_TRUE(b.BeginLayer(0, "sha256:base").ok());
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(b.Apply(File("usr/share/d" + std::to_string(i % 1000) + "/file" + std::to_string(i), "0123")).ok());
  }
  ASSERT_TRUE(b.EndLayer().ok());
  ASSERT_TRUE(b.BeginLayer(1, "sha256:top").ok());
  for (int i = 0; i < kFiles; i += 2) {
    ASSERT_TRUE(b.Apply(File("usr/share/d" + std::to_string(i % 1000) + "/file" + std::to_string(i), "01")).ok());
  }
  for (int i = 1; i < kFiles; i += 10) {
    ASSERT_TRUE(b.Apply(Wh("usr/share/d" + std::to_string(i % 1000) + "/.wh.file" + std::to_string(i))).ok());
  }
  ASSERT_TRUE(b.EndLayer().ok());
  auto t1 = Clock::now();
  auto tree = std::move(b).Finish("perf");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  auto t2 = Clock::now();
  std::vector<uint8_t> bytes(tree->bytes().begin(), tree->bytes().end());
  auto t3 = Clock::now();
  auto reopened = ImageTree::Open(std::move(bytes), "perf copy");
  auto t4 = Clock::now();
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(reopened->node_count(), tree->node_count());
  EXPECT_EQ(tree->node_count(), 1u + 2 + 1000 + kFiles - kFiles / 10);
  std::printf("[ perf     ] 100k files: merge %.1f ms, finish+serialise %.1f ms (%zu bytes), open %.2f ms\n",
              ms(t1 - t0), ms(t2 - t1), tree->bytes().size(), ms(t4 - t3));
}

// Rewriting the same paths over and over must not grow the builder's memory
// with dead nodes: slots are reused, the tree only holds the live ones.
TEST(MergePerformance, ReplacementsStayLinear) {
  TreeBuilder b;
  ASSERT_TRUE(b.BeginLayer(0).ok());
  for (int round = 0; round < 200; ++round) {
    ASSERT_TRUE(b.Apply(Dir("d/")).ok());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(b.Apply(File("d/f" + std::to_string(i))).ok());
    ASSERT_TRUE(b.Apply(File("d")).ok());  // replaces the whole directory
  }
  ASSERT_TRUE(b.EndLayer().ok());
  EXPECT_LE(b.allocated_nodes(), 103u);  // root + the largest live set (d and 100 files) + slack
  auto tree = std::move(b).Finish();
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(tree->node_count(), 2u);
}

// --- Symlinked parents: memoised resolution and the image-wide budget.

// `links` symlinks, each `pad` "./" components long: link_i -> ./././…/link_{i-1},
// link_0 -> d (a directory). Returns the components the chain's targets hold.
uint64_t AddChain(Layer* layer, int links, int pad) {
  layer->push_back(Dir("d/"));
  uint64_t components = 0;
  for (int i = 0; i < links; ++i) {
    std::string target;
    for (int k = 0; k < pad; ++k) target += "./";
    target += i == 0 ? "d" : "l" + std::to_string(i - 1);
    components += static_cast<uint64_t>(pad) + 1;
    layer->push_back(Sym("l" + std::to_string(i), target));
  }
  return components;
}

struct ChainRun {
  Status status;
  uint64_t steps = 0;
  std::optional<ImageTree> tree;
};

// A chain of `links` long symlinks, then `files` files and `dirs` directories
// (each with a file) below the last link.
ChainRun MergeChain(int links, int pad, int files, int dirs, const Limits& limits = Limits{}) {
  Layer layer;
  AddChain(&layer, links, pad);
  const std::string last = "l" + std::to_string(links - 1);
  for (int i = 0; i < files; ++i) layer.push_back(File(last + "/f" + std::to_string(i)));
  for (int i = 0; i < dirs; ++i) layer.push_back(File(last + "/s" + std::to_string(i) + "/x/y/f"));
  TreeBuilder b(limits);
  ChainRun run;
  run.status = b.BeginLayer(0, "sha256:chain");
  for (const TarEntry& e : layer) {
    if (!run.status.ok()) break;
    run.status = b.Apply(e);
  }
  if (run.status.ok()) run.status = b.EndLayer();
  run.steps = b.symlink_steps();
  if (run.status.ok()) {
    auto tree = std::move(b).Finish("chain");
    if (tree.ok()) {
      run.tree = std::move(*tree);
    } else {
      run.status = tree.status();
    }
  }
  return run;
}

// The attack of issue 13: 200 chained symlinks of ~4 KB of "./" each, files
// and directories below the last one. Before the memo every entry below the
// chain re-walked all of it (200 x 2000 components each); now the chain is
// walked once and each entry below it costs a handful of steps.
TEST(MergeSymlinkChain, ChainIsWalkedOnceForTheWholeImage) {
  constexpr int kLinks = 200, kPad = 2000;
  Layer probe;
  const uint64_t chain = AddChain(&probe, kLinks, kPad);
  ChainRun small = MergeChain(kLinks, kPad, 1000, 100);
  ASSERT_TRUE(small.status.ok()) << small.status.ToString();
  ChainRun big = MergeChain(kLinks, kPad, 2000, 200);
  ASSERT_TRUE(big.status.ok()) << big.status.ToString();
  std::printf("[ chain    ] %d links x %d components: %llu steps for 1100 entries below, %llu for 2200\n", kLinks,
              kPad, static_cast<unsigned long long>(small.steps), static_cast<unsigned long long>(big.steps));
  // One walk of the chain plus a few steps per entry...
  EXPECT_LE(small.steps, chain + 2 * kLinks + 10 * 1100);
  // ...so twice the entries cost at most a few steps each more, not a chain each.
  EXPECT_LE(big.steps - small.steps, 10u * 1100);
  // And the files are where the chain leads.
  ASSERT_TRUE(big.tree);
  EXPECT_TRUE(big.tree->LookupPath("d/f1999"));
  EXPECT_TRUE(big.tree->LookupPath("d/s199/x/y/f"));
  EXPECT_FALSE(big.tree->LookupPath("l199/f0"));  // l199 is still the symlink
}

TEST(MergeSymlinkChain, BudgetIsForTheWholeImageAndNamesTheLimit) {
  Limits limits;
  limits.symlink_steps = 50000;  // less than one walk of the chain below
  ChainRun run = MergeChain(100, 1000, 10, 0, limits);
  ASSERT_FALSE(run.status.ok());
  EXPECT_EQ(run.status.code(), ErrorCode::kLimitExceeded);
  const std::string& m = run.status.message();
  EXPECT_NE(m.find("layer 1 (sha256:chain)"), std::string::npos) << m;
  EXPECT_NE(m.find("entry \"l99/f0\""), std::string::npos) << m;
  EXPECT_NE(m.find("symlink-steps=50000"), std::string::npos) << m;
  EXPECT_NE(m.find("raise with --limit symlink-steps=N"), std::string::npos) << m;
  EXPECT_LE(run.steps, 50001u);
}

// Removals drop the memos: what a walk went through may be gone.
TEST(MergeSymlinkChain, MemoForgetsWhatWasRemovedOrReplaced) {
  // Whiteout of the link, then a real directory under its name.
  auto t = Merge({{Dir("a/"), Dir("b/"), Sym("l", "a"), File("l/x")}, {Wh(".wh.l"), File("l/y")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/x"));
  EXPECT_TRUE(t->LookupPath("l/y"));
  EXPECT_FALSE(t->LookupPath("a/y"));
  // Replaced in the same layer by a link elsewhere.
  t = Merge({{Dir("a/"), Dir("b/"), Sym("l", "a"), File("l/x"), Sym("l", "b"), File("l/y")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/x"));
  EXPECT_TRUE(t->LookupPath("b/y"));
  // An opaque directory hides the link below it; the name becomes a directory.
  t = Merge({{Dir("d/"), Dir("a/"), Sym("d/l", "../a"), File("d/l/f")}, {Wh("d/.wh..wh..opq"), File("d/l/g")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/f"));
  EXPECT_TRUE(t->LookupPath("d/l/g"));
  EXPECT_FALSE(t->LookupPath("a/g"));
  // A chain link in the middle replaced by a directory.
  t = Merge({{Dir("a/"), Sym("l1", "a"), Sym("l2", "l1"), File("l2/x"), Dir("l1/")}, {File("l2/y")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/x"));
  EXPECT_TRUE(t->LookupPath("l1/y"));
}

// A walk that looked up a missing name is not memoised: creating the name
// later must change where the path leads.
TEST(MergeSymlinkChain, WalksThroughMissingNamesAreNotMemoised) {
  auto t = Merge({{Dir("a/"), Dir("b/c/"), Dir("b/a/"), Sym("l", "m/../a"), File("l/f"), Sym("m", "b/c"),
                   File("l/g")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/f"));    // m missing: "m/.." is the root
  EXPECT_TRUE(t->LookupPath("b/a/g"));  // m -> b/c: "b/c/.." is b
  // A file a walk popped with ".." ("f/..") replaced by a symlink: the walk
  // now goes through the symlink.
  t = Merge({{Dir("a/"), Dir("b/c/"), Dir("b/a/"), File("f"), Sym("l", "f/../a"), File("l/x"), Sym("f", "b/c"),
              File("l/y")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/x"));
  EXPECT_TRUE(t->LookupPath("b/a/y"));
  // And a file removed under it changes nothing ("f" missing: "f/.." is still the root).
  t = Merge({{Dir("a/"), File("f"), Sym("l", "f/../a"), File("l/x")}, {Wh(".wh.f"), File("l/y")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/y"));
  // An implicit directory made below a link is seen by the next entry.
  t = Merge({{Dir("a/"), Sym("l", "a"), File("l/n/f"), Sym("a/n/s", "../../a"), File("l/n/s/g")}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->LookupPath("a/n/f"));
  EXPECT_TRUE(t->LookupPath("a/g"));
}

// The memo keeps umoci's 255-expansion limit exact: a memoised chain counts
// all the links it went through.
TEST(MergeSymlinkChain, HopLimitCountsMemoisedLinks) {
  ChainRun ok = MergeChain(255, 1, 1, 0);
  EXPECT_TRUE(ok.status.ok()) << ok.status.ToString();
  Layer layer;
  AddChain(&layer, 200, 1);
  layer.push_back(File("l199/f"));  // memoises the 200 links
  for (int i = 0; i < 60; ++i) {
    layer.push_back(Sym("m" + std::to_string(i), i == 0 ? "l199" : "m" + std::to_string(i - 1)));
  }
  layer.push_back(File("m59/g"));  // 260 expansions
  auto t = Merge({layer});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("too many levels of symbolic links"), std::string::npos) << t.status().ToString();
}

TEST(MergeBudgets, ImageEntriesAndMetadata) {
  Limits limits;
  limits.image_entries = 3;
  TreeBuilder b(limits);
  ASSERT_TRUE(b.BeginLayer(0, "sha256:l0").ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.Apply(File("f" + std::to_string(i))).ok());
  ASSERT_TRUE(b.EndLayer().ok());
  ASSERT_TRUE(b.BeginLayer(1, "sha256:l1").ok());
  Status st = b.Apply(File("g"));
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(st.message().find("layer 2 (sha256:l1): entry \"g\""), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--limit image-entries=N"), std::string::npos) << st.message();

  Limits meta;
  meta.image_metadata = 1000;
  TreeBuilder c(meta);
  ASSERT_TRUE(c.BeginLayer(0).ok());
  ASSERT_TRUE(c.Apply(WithXattr(File("a"), "user.x", std::string(900, 'v'))).ok());
  st = c.Apply(WithXattr(File("b"), "user.x", std::string(100, 'v')));
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(st.message().find("--limit image-metadata=SIZE"), std::string::npos) << st.message();
}

TEST(MergeBudgets, KernelLimitsHoldInTheMerge) {
  auto t = Merge({{Sym("l", std::string(4096, 'a'))}});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(t.status().message().find("symlink target too long: 4096 bytes"), std::string::npos)
      << t.status().ToString();
  t = Merge({{File(std::string(256, 'n'))}});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("name too long: a component of 256 bytes"), std::string::npos)
      << t.status().ToString();
  // A whiteout of a 255-byte name is 259 bytes long, and fine.
  t = Merge({{File(std::string(255, 'n'))}, {Wh(".wh." + std::string(255, 'n'))}});
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  t = Merge({{WithXattr(File("x"), "user.big", std::string(65537, 'v'))}});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kLimitExceeded);
  // A parent that resolves to more than PATH_MAX through a link.
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += std::string(200, 'd') + "/";
  t = Merge({{Dir(deep), Sym("l", deep), File("l/" + std::string(200, 'e') + "/f")}});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("path too long: a parent resolves to more than the kernel's 4096"),
            std::string::npos)
      << t.status().ToString();
}

// The memos must not change a single result. Replacing a dummy symlink drops
// them (a removal), so merging each entry after such a replacement is the
// unmemoised walk; random layers of symlinks (relative, absolute, "..",
// dangling, chained), hardlinks, whiteouts and opaque markers must merge the
// same way both ways (the dummy aside), errors included.
TEST(MergeSymlinkChain, MemoisedEqualsUnmemoisedOnRandomLayers) {
  const std::vector<std::string> names = {"a", "b", "c"};
  const std::vector<std::string> targets = {"a", "b", "../a", "/b/c", "a/b", "c/../a", "missing/../b", ".", "..",
                                            "", "/", "b/./c", "../../c/a", "a/a/a", "f/../a", "a/g/../b"};
  std::mt19937 rng(20261206);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  auto path = [&] {
    std::string p = pick(names);
    for (int depth = static_cast<int>(rng() % 3); depth > 0; --depth) p += "/" + pick(names);
    return p;
  };
  int compared = 0, errors = 0;
  for (int round = 0; round < 400; ++round) {
    std::vector<Layer> plain, forgetful;
    std::vector<std::string> files;  // hardlink targets: names files were given
    for (int l = 0, layers = 1 + static_cast<int>(rng() % 3); l < layers; ++l) {
      Layer layer;
      for (int i = 0, n = 4 + static_cast<int>(rng() % 12); i < n; ++i) {
        switch (rng() % 8) {
          case 0: layer.push_back(Dir(path() + "/")); break;
          case 1: case 2: layer.push_back(Sym(path(), pick(targets))); break;
          case 3:
            if (!files.empty()) {
              layer.push_back(Link(path() + "/h", pick(files)));
              break;
            }
            [[fallthrough]];
          case 4: {
            std::string p = path();
            size_t slash = p.rfind('/');
            std::string dir = slash == std::string::npos ? "" : p.substr(0, slash + 1);
            layer.push_back(Wh(dir + (rng() % 4 == 0 ? ".wh..wh..opq" : ".wh." + pick(names))));
            break;
          }
          default:
            files.push_back(rng() % 8 == 0 ? path() : path() + (rng() % 2 ? "/f" : "/g"));
            layer.push_back(File(files.back(), "x"));
            break;
        }
      }
      Layer f;
      for (const TarEntry& e : layer) {
        f.push_back(Sym("zzdummy", "x"));
        f.push_back(Sym("zzdummy", "x"));  // replaces the first: drops the memos
        f.push_back(e);
      }
      plain.push_back(std::move(layer));
      forgetful.push_back(std::move(f));
    }
    auto a = Merge(plain);
    auto b = Merge(forgetful);
    ASSERT_EQ(a.ok(), b.ok()) << "round " << round << ": " << a.status().ToString() << " vs " << b.status().ToString();
    if (!a.ok()) {
      EXPECT_EQ(a.status().message(), b.status().message()) << "round " << round;
      ++errors;
      continue;
    }
    std::vector<std::string> la = Listing(*a), lb = Listing(*b);
    std::erase_if(lb, [](const std::string& line) { return line.starts_with("zzdummy "); });
    ASSERT_EQ(la, lb) << "round " << round;
    ++compared;
  }
  std::printf("[ memo     ] %d random merges identical with and without memos, %d equal errors\n", compared, errors);
  EXPECT_GT(compared, 100);
}

// A short entry path can resolve, through a symlink, to a directory far
// down; making its parents must not walk that depth for every entry.
TEST(MergeSymlinkChain, DeepParentsAreMarkedOncePerLayer) {
  constexpr int kDepth = 1000, kFiles = 20000;
  std::string deep;
  for (int i = 0; i < kDepth; ++i) deep += "a/";
  TreeBuilder b;
  ASSERT_TRUE(b.BeginLayer(0).ok());
  ASSERT_TRUE(b.Apply(Dir(deep)).ok());
  ASSERT_TRUE(b.Apply(Sym("l", deep)).ok());
  for (int i = 0; i < kFiles; ++i) ASSERT_TRUE(b.Apply(File("l/f" + std::to_string(i))).ok());
  ASSERT_TRUE(b.EndLayer().ok());
  const uint64_t first = b.parent_steps();
  ASSERT_TRUE(b.BeginLayer(1).ok());
  for (int i = 0; i < kFiles; ++i) ASSERT_TRUE(b.Apply(File("l/g" + std::to_string(i))).ok());
  ASSERT_TRUE(b.EndLayer().ok());
  const uint64_t second = b.parent_steps() - first;
  std::printf("[ parents  ] %d files %d levels down: %llu + %llu dirent steps\n", kFiles, kDepth,
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(second));
  EXPECT_LE(first, uint64_t{kDepth} + 2 * kFiles);
  EXPECT_LE(second, uint64_t{kDepth} + 2 * kFiles);  // a new layer marks the chain upper once
  auto tree = std::move(b).Finish();
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_TRUE(tree->LookupPath(deep + "f0"));
  EXPECT_TRUE(tree->LookupPath(deep + "g" + std::to_string(kFiles - 1)));
}

// A layer that rewrites every file of a lower one (an upgrade) removes a name
// per entry; removing files must not drop the memos, or each rewrite below
// a symlinked parent would walk the chain again.
TEST(MergeSymlinkChain, RewritingFilesKeepsTheMemos) {
  constexpr int kFiles = 2000;
  Layer base;
  const uint64_t chain = AddChain(&base, 50, 1000);
  for (int i = 0; i < kFiles; ++i) base.push_back(File("l49/f" + std::to_string(i), "old"));
  Layer upgrade;
  for (int i = 1; i < kFiles; i += 2) upgrade.push_back(File("l49/f" + std::to_string(i), "new!"));
  for (int i = 0; i < kFiles; i += 10) upgrade.push_back(Wh("l49/.wh.f" + std::to_string(i)));
  TreeBuilder b;
  for (uint32_t l = 0; l < 2; ++l) {
    ASSERT_TRUE(b.BeginLayer(l).ok());
    for (const TarEntry& e : l == 0 ? base : upgrade) ASSERT_TRUE(b.Apply(e).ok()) << e.path;
    ASSERT_TRUE(b.EndLayer().ok());
  }
  std::printf("[ rewrite  ] %d files rewritten below a %llu-component chain: %llu steps\n", kFiles,
              static_cast<unsigned long long>(chain), static_cast<unsigned long long>(b.symlink_steps()));
  EXPECT_LE(b.symlink_steps(), chain + 100);
  auto tree = std::move(b).Finish();
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->GetNode(*tree->LookupPath("d/f1")).size, 4u);
  EXPECT_EQ(tree->GetNode(*tree->LookupPath("d/f2")).size, 3u);
  EXPECT_FALSE(tree->LookupPath("d/f10"));
}

}  // namespace
// A layer that repeats an opaque marker (or whites out its own directory)
// costs a walk of that directory once, not once per marker: 250,000 files
// and 500,000 markers and whiteouts of their directory and of its parent
// used to take ~10^11 steps (hours). The tree is what one marker makes.
TEST(MergeWhiteoutStorm, RepeatedMarkersSweepADirectoryOnce) {
  constexpr int kN = 250000;
  Layer lower = {File("a/d/old"), File("a/keep")};
  Layer upper;
  upper.reserve(4 * kN);
  for (int i = 0; i < kN; ++i) upper.push_back(File("a/d/f" + std::to_string(i)));
  for (int i = 0; i < kN; ++i) {
    upper.push_back(Wh(i % 2 ? "a/d/.wh..wh..opq" : "a/.wh..wh..opq"));
    upper.push_back(Wh("a/.wh.d"));
  }
  upper.push_back(Wh(".wh.a"));  // an upper directory: swept, not removed
  auto t = Merge({lower, upper});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto d = t->Resolve("/a/d");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(t->ChildCount(*d), static_cast<uint32_t>(kN));
  EXPECT_FALSE(t->Resolve("/a/d/old").ok());
  EXPECT_FALSE(t->Resolve("/a/keep").ok());
}

}  // namespace lazyroot
