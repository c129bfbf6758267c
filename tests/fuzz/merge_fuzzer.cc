// Fuzzes the merge: the input is one to three uncompressed tar layers
// separated by "\n==LAYER==\n". Each is parsed by TarReader (the entries
// before a parse error still count: they are what a shorter, valid layer
// would give) and applied bottom first to one TreeBuilder, which is then
// frozen and walked completely. Any entry may be refused; a builder whose
// every Apply succeeded must produce a tree that passes its own validation
// and stays within the kernel's limits (symlink target, xattr value).
// A quarter of the inputs run the literal mode (mount --layer N: whiteouts
// are files, the first layer any index); the others snapshot the tree after
// each layer (mount --layers' upto/N), and the snapshots and the final tree
// are composed into one (ComposeTrees), which must validate too.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "index/limits.h"
#include "index/merge.h"
#include "index/tar_reader.h"
#include "index/tree_compose.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/tree_walk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::vector<TarEntry>> layers;
  ForEachPart(in, "\n==LAYER==\n", 3, [&](std::string_view part) {
    std::vector<TarEntry>& entries = layers.emplace_back();
    TarReader reader("fuzz layer", [&](const TarEntry& e) {
      entries.push_back(e);
      return Status::Ok();
    });
    Status s = reader.Feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(part.data()), part.size()));
    if (s.ok()) s = reader.Finish();
    CheckError(s);
  });

  // A quarter of the inputs merge under small budgets, so that the
  // LimitExceeded paths run too; whatever the budget, the builder's work
  // must stay within it (plus one path's worth of steps before it notices).
  Limits limits;
  Rng rng(std::span<const uint8_t>(data, size));
  if (rng.Next() % 4 == 0) {
    limits.image_entries = rng.Range(1, 64);
    limits.image_metadata = rng.Range(1, 4096);
    limits.symlink_steps = rng.Range(1, 256);
  }
  const bool literal = rng.Next() % 4 == 0;
  const uint32_t first = literal ? static_cast<uint32_t>(rng.Range(0, 4)) : 0;
  TreeBuilder builder(limits, literal ? MergeMode::kLiteral : MergeMode::kApply);
  std::vector<std::string> digests;
  std::vector<TreePart> parts;
  Status s;
  for (uint32_t i = 0; i < first; ++i) digests.emplace_back();
  for (uint32_t i = 0; i < layers.size() && s.ok(); ++i) {
    digests.push_back("sha256:" + std::string(64, static_cast<char>('a' + i)));
    s = builder.BeginLayer(first + i, digests.back());
    FUZZ_CHECK(s.ok());
    for (const TarEntry& e : layers[i]) {
      s = builder.Apply(e);
      if (!s.ok()) break;
    }
    if (s.ok()) s = builder.EndLayer();
    if (s.ok() && !literal) {
      Result<ImageTree> snap = builder.Snapshot("fuzz upto");
      if (snap.ok()) {
        FUZZ_CHECK(snap->layer_count() == i + 1);
        parts.push_back(TreePart{{"upto", std::to_string(i + 1)}, std::make_shared<const ImageTree>(std::move(*snap))});
      } else {
        FUZZ_CHECK(snap.status().code() == ErrorCode::kLimitExceeded);
      }
    }
  }
  CheckError(s);
  FUZZ_CHECK(builder.symlink_steps() <= limits.symlink_steps + Limits::kMaxPath);
  if (!s.ok()) return 0;
  Result<ImageTree> tree = std::move(builder).Finish("fuzz image");
  if (!tree.ok()) {
    // Only a budget may stop a merge whose entries all applied.
    CheckError(tree.status());
    FUZZ_CHECK(tree.status().code() == ErrorCode::kLimitExceeded);
    return 0;
  }
  FUZZ_CHECK(tree->layer_count() == first + layers.size());
  if (!parts.empty()) {
    parts.push_back(TreePart{{"merged"}, std::make_shared<const ImageTree>(*tree)});
    ComposeOptions options;
    options.layer_digests = digests;
    Result<ComposedTree> composed = ComposeTrees(parts, options);
    if (composed.ok()) {
      WalkTree(composed->tree);
    } else {
      FUZZ_CHECK(composed.status().code() == ErrorCode::kLimitExceeded);
    }
  }
  // A tree serves readlink and getxattr: the kernel's limits must hold.
  for (NodeId id = 0; id < tree->node_count(); ++id) {
    if (tree->IsSymlink(id)) FUZZ_CHECK(tree->SymlinkTarget(id).size() <= Limits::kMaxSymlinkTarget);
    for (uint32_t k = 0; k < tree->XattrCount(id); ++k) {
      FUZZ_CHECK(tree->XattrAt(id, k).value.size() <= Limits::kMaxXattrValue);
    }
  }
  WalkTree(*tree);
  return 0;
}
