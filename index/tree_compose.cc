#include "index/tree_compose.h"

#include <map>
#include <optional>

#include "index/limits.h"
#include "index/path_resolve.h"

namespace lazyroot {
namespace {

// A synthetic directory: named children that are synthetic directories or part roots.
struct SynthDir {
  NodeId parent = 0;
  std::map<std::string, size_t, std::less<>> dirs;   // name -> index into the SynthDir vector
  std::map<std::string, size_t, std::less<>> parts;  // name -> index into parts
};

bool BadName(const std::string& n) {
  return n.empty() || n == "." || n == ".." || n.size() > Limits::kMaxComponent || n.find('/') != std::string::npos ||
         n.find('\0') != std::string::npos;
}

}  // namespace

Result<ComposedTree> ComposeTrees(std::span<const TreePart> parts, const ComposeOptions& options) {
  const std::string& name = options.name;
  // The synthetic directories, in creation order (index 0 = root).
  std::vector<SynthDir> dirs(1);
  for (size_t p = 0; p < parts.size(); ++p) {
    const TreePart& part = parts[p];
    if (part.path.empty() || !part.tree) return Status::InvalidArgument(name + ": a part without a path or tree");
    for (const std::string& n : part.path) {
      if (BadName(n)) return Status::InvalidArgument(name + ": bad part name \"" + n.substr(0, 64) + "\"");
    }
    if (part.tree->layer_count() > options.layer_digests.size()) {
      return Status::InvalidArgument(name + ": part " + JoinPath(part.path) + " has more layers than the image");
    }
    size_t d = 0;
    for (size_t i = 0; i + 1 < part.path.size(); ++i) {
      if (dirs[d].parts.count(part.path[i]) != 0) {
        return Status::InvalidArgument(name + ": part below part " + JoinPath(part.path));
      }
      auto it = dirs[d].dirs.find(part.path[i]);
      if (it == dirs[d].dirs.end()) {
        dirs.emplace_back();
        it = dirs[d].dirs.emplace(part.path[i], dirs.size() - 1).first;
      }
      d = it->second;
    }
    const std::string& leaf = part.path.back();
    if (dirs[d].dirs.count(leaf) != 0 || !dirs[d].parts.emplace(leaf, p).second) {
      return Status::InvalidArgument(name + ": two parts at " + JoinPath(part.path));
    }
  }

  // Breadth-first ids for the synthetic directories, then the parts' bases.
  std::vector<size_t> order{0};
  std::vector<NodeId> id_of(dirs.size(), 0);
  for (size_t k = 0; k < order.size(); ++k) {
    for (const auto& [n, child] : dirs[order[k]].dirs) {
      id_of[child] = static_cast<NodeId>(order.size());
      dirs[child].parent = static_cast<NodeId>(k);
      order.push_back(child);
    }
  }
  const uint64_t synthetic = order.size();
  uint64_t total = synthetic;
  std::vector<uint64_t> base(parts.size(), 0);
  std::vector<NodeId> part_parent(parts.size(), 0);
  for (size_t k = 0; k < order.size(); ++k) {
    for (const auto& [n, p] : dirs[order[k]].parts) {
      base[p] = total;
      part_parent[p] = static_cast<NodeId>(k);
      total += parts[p].tree->node_count();
    }
  }
  if (total > options.max_nodes || total >= UINT32_MAX) {
    return Status::LimitExceeded(name + ": " + std::to_string(total) + " nodes (the merged tree, every layer and " +
                                 "every partial merge together), over the budget of " +
                                 std::to_string(options.max_nodes) + " (limit " + options.budget_name +
                                 "; raise with --limit " + options.budget_name + "=N or LAZYROOT_LIMITS)");
  }

  ImageTreeWriter writer(options.layer_digests, options.image_digest);
  // Every node but a root has a dirent (hardlinks have more): sized once
  // rather than doubled while the parts are still held.
  writer.Reserve(total, total);
  std::vector<DirEntry> children;
  std::vector<Xattr> xattrs;
  std::vector<SparseExtent> sparse;
  for (size_t k = 0; k < order.size(); ++k) {
    const SynthDir& d = dirs[order[k]];
    children.clear();
    // Both maps are sorted; merge them into one sorted list.
    auto a = d.dirs.begin();
    auto b = d.parts.begin();
    while (a != d.dirs.end() || b != d.parts.end()) {
      if (b == d.parts.end() || (a != d.dirs.end() && a->first < b->first)) {
        children.push_back(DirEntry{a->first, id_of[a->second]});
        ++a;
      } else {
        children.push_back(DirEntry{b->first, static_cast<NodeId>(base[b->second])});
        ++b;
      }
    }
    Node n;
    n.type = NodeType::kDirectory;
    n.mode = options.dir_mode & 07777;
    n.uid = options.uid;
    n.gid = options.gid;
    n.mtime_sec = options.mtime_sec;
    n.nlink = 2 + static_cast<uint32_t>(children.size());  // every child is a directory
    n.parent = d.parent;
    writer.AddNode(n, children, {}, {});
  }
  // Parts in id order: the order their bases were handed out.
  std::vector<size_t> part_order;
  for (size_t k = 0; k < order.size(); ++k) {
    for (const auto& [n, p] : dirs[order[k]].parts) part_order.push_back(p);
  }
  for (size_t p : part_order) {
    const ImageTree& t = *parts[p].tree;
    const NodeId shift = static_cast<NodeId>(base[p]);
    for (NodeId id = 0; id < t.node_count(); ++id) {
      Node n = t.GetNode(id);
      if (n.IsDir()) n.parent = id == 0 ? part_parent[p] : n.parent + shift;
      children.clear();
      for (uint32_t i = 0; i < n.child_count; ++i) {
        DirEntry e = t.ChildAt(id, i);
        children.push_back(DirEntry{e.name, e.node + shift});
      }
      xattrs.clear();
      for (uint32_t i = 0; i < n.xattr_count; ++i) xattrs.push_back(t.XattrAt(id, i));
      sparse.clear();
      for (uint32_t i = 0; i < n.sparse_count; ++i) sparse.push_back(t.SparseAt(id, i));
      writer.AddNode(n, children, xattrs, sparse);
    }
  }
  LAZYROOT_ASSIGN_OR_RETURN(ImageTree tree, writer.Finish(name));
  return ComposedTree{std::move(tree), static_cast<NodeId>(synthetic)};
}

}  // namespace lazyroot
