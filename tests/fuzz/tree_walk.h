// WalkTree: reads every part of an ImageTree the way the FUSE ops and
// extract do, checking what the format promises a reader (index/FORMAT.md,
// "What a reader validates on open"). Shared by the tree-file and merge
// fuzz targets; crashes (FUZZ_CHECK) on a broken promise.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "index/image_tree.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot::fuzz {

inline void WalkTree(const ImageTree& tree) {
  const uint32_t n = tree.node_count();
  FUZZ_CHECK(n >= 1 && tree.GetNode(ImageTree::kRoot).IsDir());
  for (uint32_t i = 0; i < tree.layer_count(); ++i) (void)tree.LayerDigest(i);
  uint64_t regular_bytes = 0;  // what statfs reports, from the header
  for (NodeId id = 0; id < n; ++id) {
    Node node = tree.GetNode(id);
    if (node.type == NodeType::kRegular) {
      regular_bytes = regular_bytes > UINT64_MAX - node.size ? UINT64_MAX : regular_bytes + node.size;
    }
    FUZZ_CHECK(node.mode <= 07777 && node.mtime_nsec < 1000000000u);
    FUZZ_CHECK(tree.NodeOfInode(ImageTree::InodeOf(id)) == id);
    uint32_t xattrs = tree.XattrCount(id);
    for (uint32_t k = 0; k < xattrs; ++k) {
      Xattr x = tree.XattrAt(id, k);
      auto found = tree.GetXattr(id, x.name);
      FUZZ_CHECK(found && *found == x.value);
    }
    if (node.type == NodeType::kRegular) {
      FUZZ_CHECK(node.layer < tree.layer_count());
      uint64_t sum = 0;
      for (uint32_t k = 0; k < tree.SparseCount(id); ++k) sum += tree.SparseAt(id, k).length;
      if (tree.SparseCount(id) > 0) FUZZ_CHECK(sum == node.stored_size);
    }
    if (node.type == NodeType::kSymlink) (void)tree.SymlinkTarget(id);
  }
  FUZZ_CHECK(regular_bytes == tree.regular_bytes());
  // Breadth-first from the root: directories are met exactly once, so the
  // walk visits at most n directories and terminates.
  std::vector<uint8_t> dir_seen(n, 0);
  std::deque<std::pair<NodeId, std::string>> queue{{ImageTree::kRoot, ""}};
  std::vector<std::string> symlinks;
  dir_seen[0] = 1;
  while (!queue.empty()) {
    auto [dir, path] = std::move(queue.front());
    queue.pop_front();
    uint32_t count = tree.ChildCount(dir);
    for (uint32_t k = 0; k < count; ++k) {
      DirEntry e = tree.ChildAt(dir, k);
      FUZZ_CHECK(e.node != 0 && e.node < n);
      FUZZ_CHECK(tree.Lookup(dir, e.name) == e.node);
      std::string child_path = path + "/" + std::string(e.name);
      if (tree.IsDir(e.node)) {
        FUZZ_CHECK(!dir_seen[e.node]);
        dir_seen[e.node] = 1;
        FUZZ_CHECK(tree.GetNode(e.node).parent == dir);
        queue.emplace_back(e.node, child_path);
      } else if (tree.IsSymlink(e.node) && symlinks.size() < 64) {
        symlinks.push_back(child_path);
      }
      if (child_path.size() < 512) FUZZ_CHECK(tree.LookupPath(child_path) == e.node);
    }
  }
  for (const std::string& path : symlinks) {
    Result<NodeId> r = tree.Resolve(path);
    if (r.ok()) {
      FUZZ_CHECK(*r < n);
    } else {
      CheckError(r.status());
    }
    (void)tree.Resolve(path + "/x/../y");
  }
}

// WalkLazyTree: the same reads on a lazily opened tree that the whole-file
// checks would have refused. Nothing holds it to a tree shape (a directory
// may be named twice, a node by none): the walk only must not crash, and
// every damage must come as TreeCorruptionError (caught here, per node).
inline void WalkLazyTree(const ImageTree& tree) {
  const uint32_t n = tree.node_count();
  FUZZ_CHECK(n >= 1);
  for (uint32_t i = 0; i < tree.layer_count(); ++i) (void)tree.LayerDigest(i);
  (void)tree.ImageDigest();
  std::vector<std::string> symlinks;
  for (NodeId id = 0; id < n; ++id) {
    try {
      Node node = tree.GetNode(id);
      FUZZ_CHECK(node.mode <= 07777 && node.mtime_nsec < 1000000000u);
      for (uint32_t k = 0; k < tree.XattrCount(id); ++k) {
        Xattr x = tree.XattrAt(id, k);
        FUZZ_CHECK(!x.name.empty() && x.name.size() <= 255 && x.value.size() <= 65536);
        (void)tree.GetXattr(id, x.name);
      }
      if (node.type == NodeType::kRegular) {
        FUZZ_CHECK(node.layer < tree.layer_count());
        for (uint32_t k = 0; k < tree.SparseCount(id); ++k) (void)tree.SparseAt(id, k);
      }
      if (node.type == NodeType::kSymlink) FUZZ_CHECK(tree.SymlinkTarget(id).size() <= 4095);
      for (uint32_t k = 0; k < tree.ChildCount(id); ++k) {
        DirEntry e = tree.ChildAt(id, k);
        FUZZ_CHECK(e.node != 0 && e.node < n && !e.name.empty() && e.name.size() <= 255);
        FUZZ_CHECK(e.name.find('/') == std::string_view::npos && e.name != "." && e.name != "..");
        (void)tree.Lookup(id, e.name);
        if (symlinks.size() < 64 && tree.IsSymlink(e.node)) symlinks.push_back("/" + std::string(e.name));
      }
      if (node.IsDir()) FUZZ_CHECK(node.parent < n);
    } catch (const TreeCorruptionError& e) {
      FUZZ_CHECK(std::string(e.what()).find("fuzz tree") != std::string::npos);
    }
  }
  for (const std::string& path : symlinks) {
    Result<NodeId> r = tree.Resolve(path);  // never throws
    if (r.ok()) {
      FUZZ_CHECK(*r < n);
    } else {
      CheckError(r.status());
    }
    (void)tree.Resolve(path + "/x/../y");
  }
}

}  // namespace lazyroot::fuzz
