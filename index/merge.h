// TreeBuilder: applies the layers of an image, bottom first, entry by entry
// in tar order, to one in-memory tree (whiteouts, opaque directories,
// replacements, hardlinks, in-root symlink resolution; umoci 0.4.7 semantics,
// the rules are stated at the top of merge.cc) and freezes it into an
// immutable ImageTree. Not thread-safe: one builder per merge, one thread.
//
// Usage:
//   TreeBuilder b(limits);  // or TreeBuilder b; for the default budgets
//   for (i, layer) : { b.BeginLayer(i, digest); for (e : entries) b.Apply(e); b.EndLayer(); }
//   Result<ImageTree> tree = std::move(b).Finish("image sha256:…");
//
// After any call returns an error the builder is spent: every later call
// returns that same error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "index/image_tree.h"
#include "index/limits.h"
#include "index/status.h"
#include "index/tar_entry.h"

namespace lazyroot {

// kApply: the merge (whiteouts and opaque markers delete, layers come as
// 0, 1, 2, …). kLiteral: one layer as `tar -x` would unpack it alone, for
// `mount --layer N`: `.wh.*` entries are ordinary entries (the files the tar
// holds), the first layer may be any index (earlier ones are recorded with
// empty digests), and a hardlink to a name the layer does not hold is left
// out, as GNU tar fails that one entry and goes on. Everything else (names,
// parents through in-root symlinks, duplicates, budgets) is the merge's.
enum class MergeMode : uint8_t { kApply, kLiteral };

class TreeBuilder {
 public:
  // `limits`: the image budgets (image_entries, image_metadata,
  // symlink_steps) and the kernel limits every entry must keep to; over one
  // is LimitExceeded naming the layer, the entry and the limit.
  explicit TreeBuilder(const Limits& limits = Limits{}, MergeMode mode = MergeMode::kApply);
  ~TreeBuilder();
  TreeBuilder(const TreeBuilder&) = delete;
  TreeBuilder& operator=(const TreeBuilder&) = delete;
  TreeBuilder(TreeBuilder&&) noexcept;
  TreeBuilder& operator=(TreeBuilder&&) noexcept;

  // Starts the layer `layer_index` (0 = bottom); layers come as 0, 1, 2, …
  // `digest` (e.g. "sha256:…") is recorded in the tree so a reader can check
  // it was built from the image it is about to serve. Returns
  // InvalidArgument if out of order or if a layer is already open.
  Status BeginLayer(uint32_t layer_index, std::string_view digest = {});

  // Applies one entry of the open layer. Returns Corruption naming the layer
  // index and entry path when the layer is invalid: a non-directory root
  // entry, a non-directory parent, a symlink loop, a whiteout without a name,
  // a hardlink to a missing entry or to a directory, a bad sparse map.
  Status Apply(const TarEntry& entry);

  // Ends the open layer: its whiteouts can no longer spare what it created.
  Status EndLayer();

  // Records the image (its manifest digest, "sha256:…") the tree is built
  // for, so that a reader can tell a tree of another image from its own
  // (ImageTree::ImageDigest). Optional; any time before Finish.
  void SetImageDigest(std::string digest);

  // Freezes the tree. REQUIRES: no layer open. `name` names the tree in
  // later errors. The builder is spent afterwards.
  Result<ImageTree> Finish(std::string name = "image tree") &&;
  // The tree as Finish would freeze it now, leaving the builder as it is:
  // `upto/N` of every N in one pass over the layers. REQUIRES: no layer open.
  // Costs a frozen tree's memory on top of the builder's while it is made.
  Result<ImageTree> Snapshot(std::string name) const;

  // Node slots in use or free for reuse: bounded by the largest live tree,
  // not by the number of entries applied. For tests and memory accounting.
  size_t allocated_nodes() const;
  // Path components walked so far while resolving parents and hardlink
  // targets (what Limits::symlink_steps bounds). Memoised resolutions cost
  // nothing, so this grows with the image's distinct directories and
  // symlinks, not with entries x chain length. For tests of that bound.
  uint64_t symlink_steps() const;
  // Dirents marked or created while making entries' parents: one or two per
  // entry however deep its parent lies. For tests of that bound.
  uint64_t parent_steps() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazyroot
