#include "src/layer_query.h"

#include <map>
#include <unordered_map>

#include "index/merge.h"
#include "index/path_resolve.h"
#include "src/image_rootfs.h"
#include "src/index_consumer.h"
#include "src/layer_paths.h"
#include "src/manifest.h"

namespace lazyroot {
namespace {

std::string_view TypeName(EntryType t) {
  switch (t) {
    case EntryType::kRegular:
      return "file";
    case EntryType::kHardlink:
      return "hardlink";
    case EntryType::kSymlink:
      return "symlink";
    case EntryType::kCharDevice:
      return "char";
    case EntryType::kBlockDevice:
      return "block";
    case EntryType::kDirectory:
      return "dir";
    case EntryType::kFifo:
      return "fifo";
  }
  return "?";
}

// a == b, or a is a directory above b ("" is the root, above everything).
bool IsSelfOrAncestor(std::string_view a, std::string_view b) {
  if (a.empty()) return true;
  return b.size() >= a.size() && b.compare(0, a.size(), a) == 0 && (b.size() == a.size() || b[a.size()] == '/');
}

// `components` with the symlinks of the directories above the last one
// expanded in `tree` (the last is kept as named). A loop leaves the path as
// cleaned: the merge refused such an entry anyway.
std::string ResolveParents(const ImageTree& tree, std::vector<std::string> components) {
  if (components.empty()) return "";
  std::string last = std::move(components.back());
  components.pop_back();
  auto parent = ResolveInRoot(tree, components);
  std::vector<std::string> out = parent.ok() ? std::move(parent->components) : std::move(components);
  out.push_back(std::move(last));
  return JoinPath(out);
}

Result<std::vector<std::string>> DiffIds(Store& store, const ImageRecord& record) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string config_bytes, store.ReadBlob(record.config_digest, 8u << 20));
  LAZYROOT_ASSIGN_OR_RETURN(ImageConfig config, ParseImageConfig(config_bytes));
  if (config.diff_ids.size() != record.layer_digests.size()) {
    return Status::Corruption("image " + record.reference + ": config has " + std::to_string(config.diff_ids.size()) +
                              " diff_ids for " + std::to_string(record.layer_digests.size()) + " layers");
  }
  return std::move(config.diff_ids);
}

}  // namespace

std::string_view TouchActionName(TouchAction a) {
  switch (a) {
    case TouchAction::kCreated:
      return "created";
    case TouchAction::kReplaced:
      return "replaced";
    case TouchAction::kWhiteout:
      return "whiteout";
    case TouchAction::kOpaque:
      return "opaque";
  }
  return "?";
}

Result<WhichResult> WhichPath(Store& store, const ImageRecord& record, std::string_view path, const Limits& limits) {
  OpenImageOptions open_options;
  open_options.limits = limits;
  LAZYROOT_ASSIGN_OR_RETURN(OpenedImage image, OpenImage(store, record, open_options));
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, DiffIds(store, record));
  const ImageTree& tree = *image.tree;

  WhichResult out;
  std::vector<std::string> components = CleanPathComponents(path);
  out.path = JoinPath(components);
  out.resolved = ResolveParents(tree, components);
  if (std::optional<NodeId> id = tree.LookupPath(out.resolved)) out.winner = tree.GetNode(*id).layer;

  // An entry is of interest when the image path it acts on is the query or
  // one of its parents, read either as typed (the symlinks on the way are
  // themselves parents) or resolved.
  auto of_interest = [&](std::string_view p) {
    return !p.empty() && (IsSelfOrAncestor(p, out.path) || IsSelfOrAncestor(p, out.resolved));
  };
  // Image path -> the layer whose entry is live there (absent: none).
  std::map<std::string, uint32_t, std::less<>> live;
  LayerPathMapper mapper(tree);

  for (uint32_t i = 0; i < record.layer_digests.size(); ++i) {
    const std::string& digest = record.layer_digests[i];
    std::vector<PathTouch> layer_touches;
    auto fn = [&](TarEntry& e) -> Status {
      LayerPathMapper::Mapped m = mapper.Map(i, e);
      PathTouch t;
      t.layer = i;
      t.entry = e.path;
      t.path = std::move(m.path);
      switch (m.kind) {
        case LayerPathMapper::Kind::kRoot:
        case LayerPathMapper::Kind::kMarker:
          return Status::Ok();
        case LayerPathMapper::Kind::kOpaque:
          // An opaque directory hides the lower layers' entries below it, so it
          // touches the query when it is the query or a parent of it.
          if (!t.path.empty() && !of_interest(t.path)) return Status::Ok();
          if (t.path.empty() && out.path.empty()) return Status::Ok();
          t.action = TouchAction::kOpaque;
          for (auto& [p, layer] : live) {
            if (layer < i && p != t.path && IsSelfOrAncestor(t.path, p)) layer = UINT32_MAX;
          }
          break;
        case LayerPathMapper::Kind::kWhiteout:
          if (!of_interest(t.path)) return Status::Ok();
          t.action = TouchAction::kWhiteout;
          for (auto& [p, layer] : live) {
            if (layer < i && IsSelfOrAncestor(t.path, p)) layer = UINT32_MAX;
          }
          break;
        case LayerPathMapper::Kind::kEntry: {
          if (!of_interest(t.path)) return Status::Ok();
          auto it = live.find(t.path);
          t.action = it != live.end() && it->second != UINT32_MAX ? TouchAction::kReplaced : TouchAction::kCreated;
          live[t.path] = i;
          t.type = TypeName(e.type);
          if (e.type == EntryType::kSymlink || e.type == EntryType::kHardlink) t.link_target = e.link_target;
          break;
        }
      }
      t.digest = digest;
      layer_touches.push_back(std::move(t));
      return Status::Ok();
    };
    bool restart = false;
    auto table = ForEachStoredLayerEntry(store, digest, diff_ids[i], limits, fn, &restart);
    if (!table.ok() && restart) {
      // The index proved corrupt midway and was rebuilt: read it again.
      layer_touches.clear();
      table = ForEachStoredLayerEntry(store, digest, diff_ids[i], limits, fn, &restart);
    }
    if (!table.ok())
      return table.status().WithContext("image " + record.reference + ": layer " + std::to_string(i + 1));
    for (PathTouch& t : layer_touches) out.touches.push_back(std::move(t));
  }
  return out;
}

Result<ImageTree> TreeUpTo(Store& store, const ImageRecord& record, uint32_t upto, const Limits& limits) {
  const size_t n = record.layer_digests.size();
  if (upto == 0 || upto > n) {
    return Status::InvalidArgument("image " + record.reference + " has " + std::to_string(n) + " layers, not " +
                                   std::to_string(upto));
  }
  if (upto == n) {
    OpenImageOptions open_options;
    open_options.limits = limits;
    LAZYROOT_ASSIGN_OR_RETURN(OpenedImage image, OpenImage(store, record, open_options));
    return *image.tree;
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, DiffIds(store, record));
  for (size_t attempt = 0;; ++attempt) {
    TreeBuilder builder(limits);
    bool restart = false;
    Status st = Status::Ok();
    for (uint32_t i = 0; i < upto && st.ok(); ++i) {
      st = builder.BeginLayer(i, record.layer_digests[i]);
      if (!st.ok()) break;
      auto table = ForEachStoredLayerEntry(
          store, record.layer_digests[i], diff_ids[i], limits, [&](TarEntry& e) { return builder.Apply(e); }, &restart);
      if (!table.ok()) {
        st = table.status();
        break;
      }
      st = builder.EndLayer();
    }
    if (restart && attempt < upto) continue;
    LAZYROOT_RETURN_IF_ERROR(st);
    return std::move(builder).Finish("image " + record.reference + " up to layer " + std::to_string(upto));
  }
}

Result<std::vector<TarEntry>> LayerEntries(Store& store, const ImageRecord& record, uint32_t layer,
                                           const Limits& limits) {
  if (layer >= record.layer_digests.size()) {
    return Status::InvalidArgument("image " + record.reference + " has " + std::to_string(record.layer_digests.size()) +
                                   " layers, not " + std::to_string(layer + 1));
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, DiffIds(store, record));
  std::vector<TarEntry> out;
  auto fn = [&](TarEntry& e) {
    out.push_back(std::move(e));
    return Status::Ok();
  };
  bool restart = false;
  auto table = ForEachStoredLayerEntry(store, record.layer_digests[layer], diff_ids[layer], limits, fn, &restart);
  if (!table.ok() && restart) {
    out.clear();  // rebuilt midway: what came before is from the corrupt index
    table = ForEachStoredLayerEntry(store, record.layer_digests[layer], diff_ids[layer], limits, fn, &restart);
  }
  if (!table.ok())
    return table.status().WithContext("image " + record.reference + ": layer " + std::to_string(layer + 1));
  return out;
}

}  // namespace lazyroot
