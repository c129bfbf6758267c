// Path names inside an image: lexical cleaning of tar names and in-root
// ("chroot semantics") resolution through the symlinks of a tree. Used by
// ImageTree::Resolve on the finished tree; the merge walks the growing tree
// the same way with memos and a budget added (TreeBuilder, merge.cc: Walk),
// so both agree on what a path means. Pure functions; thread-safe as long as
// the tree passed in is not mutated during the call.
//
// In-root resolution is what umoci's SecureJoinVFS and continuity's RootPath
// do: every symlink met on the way is expanded; an absolute target restarts
// at the root; ".." never climbs above the root; a component that does not
// exist (or sits below a non-directory) is kept lexically, so what follows
// it is "missing" too; more than kMaxSymlinkHops expansions is ELOOP.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/status.h"

namespace lazyroot {

// continuity fs.RootPath and filepath-securejoin both stop at 255 links.
inline constexpr int kMaxSymlinkHops = 255;

// The components of `path` after lexical cleaning the way umoci's CleanPath
// does it: leading "/" and "./" dropped, "//" and "." collapsed, ".." pops a
// component and is clamped at the root. The root itself is an empty vector.
std::vector<std::string> CleanPathComponents(std::string_view path);

// CleanPathComponents joined with "/"; "" for the root.
std::string JoinPath(const std::vector<std::string>& components, size_t count);
inline std::string JoinPath(const std::vector<std::string>& components) {
  return JoinPath(components, components.size());
}

// The outcome of an in-root resolution. components[i] names the i-th
// directory level below the root after every symlink was expanded; nodes[i]
// is the node at that level, or nullopt where the path does not exist (or
// continues below a non-directory). nodes.size() == components.size().
template <typename NodeId>
struct ResolvedPath {
  std::vector<std::string> components;
  std::vector<std::optional<NodeId>> nodes;
};

// Resolves `components` (already cleaned or not: "." and ".." are handled)
// below tree.Root(), expanding every symlink met, including one in the last
// component when it exists. Tree provides:
//   NodeId Root() const;
//   bool IsDir(NodeId) const;  bool IsSymlink(NodeId) const;
//   std::string_view SymlinkTarget(NodeId) const;
//   std::optional<NodeId> Child(NodeId dir, std::string_view name) const;
// Returns InvalidArgument ("too many levels of symbolic links") after more
// than kMaxSymlinkHops expansions.
template <typename Tree, typename NodeId = decltype(std::declval<const Tree&>().Root())>
Result<ResolvedPath<NodeId>> ResolveInRoot(const Tree& tree, const std::vector<std::string>& components) {
  ResolvedPath<NodeId> out;
  // Work stack of components still to walk, last element first in line.
  std::vector<std::string> pending(components.rbegin(), components.rend());
  int hops = 0;
  while (!pending.empty()) {
    std::string name = std::move(pending.back());
    pending.pop_back();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (!out.components.empty()) {
        out.components.pop_back();
        out.nodes.pop_back();
      }
      continue;
    }
    std::optional<NodeId> parent = out.nodes.empty() ? std::optional<NodeId>(tree.Root()) : out.nodes.back();
    std::optional<NodeId> child;
    if (parent && tree.IsDir(*parent)) child = tree.Child(*parent, name);
    if (child && tree.IsSymlink(*child)) {
      if (++hops > kMaxSymlinkHops) {
        return Status::InvalidArgument("too many levels of symbolic links");
      }
      std::string_view target = tree.SymlinkTarget(*child);
      if (!target.empty() && target.front() == '/') {
        out.components.clear();
        out.nodes.clear();
      }
      // Push the target's components so that its first one is walked next.
      size_t end = target.size();
      while (end > 0) {
        size_t slash = target.rfind('/', end - 1);
        size_t begin = slash == std::string_view::npos ? 0 : slash + 1;
        if (end > begin) pending.emplace_back(target.substr(begin, end - begin));
        if (slash == std::string_view::npos) break;
        end = slash;
      }
      continue;
    }
    out.components.push_back(std::move(name));
    out.nodes.push_back(child);
  }
  return out;
}

}  // namespace lazyroot
