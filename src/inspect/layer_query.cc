#include "src/inspect/layer_query.h"

#include <cctype>
#include <cstring>
#include <ctime>
#include <map>
#include <unordered_map>

#include "index/merge.h"
#include "index/path_resolve.h"
#include "src/store/open_image.h"
#include "src/store/index_consumer.h"
#include "src/inspect/layer_paths.h"
#include "src/image/manifest.h"

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

// The hex of a "sha256:<hex>" digest (the whole string if it has no algorithm).
std::string_view DigestHex(std::string_view digest) {
  const size_t colon = digest.find(':');
  return colon == std::string_view::npos ? digest : digest.substr(colon + 1);
}

}  // namespace

Result<uint32_t> ResolveLayerArg(const ImageRecord& record, std::string_view arg) {
  const size_t n = record.layer_digests.size();
  const std::string count = "image " + record.reference + " has " + std::to_string(n) + " layer" + (n == 1 ? "" : "s");
  const std::string shown = "layer \"" + std::string(arg.substr(0, 80)) + "\"";
  const bool decimal = !arg.empty() && arg.size() <= 9 && arg.find_first_not_of("0123456789") == std::string_view::npos;
  if (decimal) {
    const uint32_t v = static_cast<uint32_t>(std::stoul(std::string(arg)));
    if (v == 0 || v > n) {
      return Status::InvalidArgument(shown + ": " + count + " (N counts from 1 at the base)");
    }
    return v - 1;
  }
  std::string_view hex = arg;
  if (hex.starts_with("sha256:")) hex.remove_prefix(7);
  if (hex.empty() || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
    return Status::InvalidArgument(shown + ": neither a layer number (1.." + std::to_string(n) +
                                   ") nor a hex digest prefix");
  }
  if (hex.size() < 4) return Status::InvalidArgument(shown + ": a digest prefix needs at least 4 hex digits");
  std::string want(hex);
  for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<uint32_t> hits;
  for (uint32_t i = 0; i < n; ++i) {
    if (DigestHex(record.layer_digests[i]).starts_with(want)) hits.push_back(i);
  }
  if (hits.empty()) return Status::InvalidArgument(shown + ": no layer's digest starts with it (" + count + ")");
  if (hits.size() > 1) {
    std::string m = shown + " is ambiguous: it matches layers";
    for (size_t k = 0; k < hits.size() && k < 8; ++k) {
      m += (k ? ", " : " ") + std::to_string(hits[k] + 1) + " (" + record.layer_digests[hits[k]] + ")";
    }
    if (hits.size() > 8) m += ", …";
    return Status::InvalidArgument(m);
  }
  return hits[0];
}

namespace {

// LayerTree with the config's diff_ids already read (--layers builds every layer).
Result<ImageTree> LiteralLayerTree(Store& store, const ImageRecord& record, const std::vector<std::string>& diff_ids,
                                   uint32_t layer, const Limits& limits) {
  for (int attempt = 0;; ++attempt) {
    TreeBuilder builder(limits, MergeMode::kLiteral);
    Status st = builder.BeginLayer(layer, record.layer_digests[layer]);
    bool restart = false;
    if (st.ok()) {
      auto table = ForEachStoredLayerEntry(
          store, record.layer_digests[layer], diff_ids[layer], limits, [&](TarEntry& e) { return builder.Apply(e); },
          &restart);
      st = table.ok() ? builder.EndLayer() : table.status();
    }
    if (!st.ok() && restart && attempt == 0) continue;  // the index was rebuilt midway: once more
    if (!st.ok()) return st.WithContext("image " + record.reference + ": layer " + std::to_string(layer + 1));
    return std::move(builder).Finish("image " + record.reference + " layer " + std::to_string(layer + 1));
  }
}

}  // namespace

Result<ImageTree> LayerTree(Store& store, const ImageRecord& record, uint32_t layer, const Limits& limits) {
  if (layer >= record.layer_digests.size()) {
    return Status::InvalidArgument("image " + record.reference + " has " + std::to_string(record.layer_digests.size()) +
                                   " layers, not " + std::to_string(layer + 1));
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, ImageDiffIds(store, record));
  return LiteralLayerTree(store, record, diff_ids, layer, limits);
}

std::vector<std::string> LayerXattrValues(const ImageRecord& record) {
  std::vector<std::string> out;
  for (size_t i = 0; i < record.layer_digests.size(); ++i) {
    out.push_back(std::to_string(i + 1) + " " + record.layer_digests[i]);
  }
  return out;
}

int64_t ImageCreated(Store& store, const ImageRecord& record) {
  auto bytes = store.ReadBlob(record.config_digest, 8u << 20);
  if (!bytes.ok()) return 0;
  auto config = ParseImageConfig(*bytes);
  if (!config.ok() || config->created.size() < 19) return 0;
  // RFC 3339: 2024-01-02T03:04:05[.frac](Z|±hh:mm).
  std::tm tm{};
  const char* end = strptime(config->created.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return 0;
  int64_t t = timegm(&tm);
  while (*end == '.' || (*end >= '0' && *end <= '9')) ++end;
  if ((*end == '+' || *end == '-') && std::strlen(end) >= 6) {
    const int64_t off = ((end[1] - '0') * 10 + (end[2] - '0')) * 3600 + ((end[4] - '0') * 10 + (end[5] - '0')) * 60;
    t += *end == '+' ? -off : off;
  }
  return t < 0 ? 0 : t;
}

Result<ComposedTree> LayersViewTree(Store& store, const ImageRecord& record, std::shared_ptr<const ImageTree> merged,
                                    int64_t mtime, const Limits& limits) {
  const uint32_t n = static_cast<uint32_t>(record.layer_digests.size());
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, ImageDiffIds(store, record));
  std::vector<TreePart> parts;
  uint64_t nodes = merged->node_count();
  // Stops as soon as the parts built so far are over the budget, before the
  // rest (and the composed copy) are built.
  auto over_budget = [&] {
    return Status::LimitExceeded("mount --layers of image " + record.reference + ": the merged tree, " +
                                 std::to_string(n) + " layers and " + std::to_string(n) +
                                 " partial merges hold more than " + std::to_string(limits.image_entries) +
                                 " nodes together (limit image-entries; raise with --limit image-entries=N or "
                                 "LAZYROOT_LIMITS, or mount one view with --layer N or --upto N)");
  };
  auto add = [&](std::vector<std::string> path, std::shared_ptr<const ImageTree> tree) -> Status {
    nodes += tree->node_count();
    if (nodes > limits.image_entries) return over_budget();
    parts.push_back(TreePart{std::move(path), std::move(tree)});
    return Status::Ok();
  };
  parts.push_back(TreePart{{"merged"}, merged});
  for (uint32_t i = 0; i < n; ++i) {
    LAZYROOT_ASSIGN_OR_RETURN(ImageTree layer, LiteralLayerTree(store, record, diff_ids, i, limits));
    std::string name = std::to_string(i + 1) + "-" + std::string(DigestHex(record.layer_digests[i]).substr(0, 12));
    LAZYROOT_RETURN_IF_ERROR(add({"layers", std::move(name)}, std::make_shared<const ImageTree>(std::move(layer))));
  }
  // upto/N for every N in one merge: a snapshot after each layer.
  for (int attempt = 0;; ++attempt) {
    parts.resize(1 + n);
    nodes = 0;
    for (const TreePart& p : parts) nodes += p.tree->node_count();
    TreeBuilder builder(limits);
    Status st = Status::Ok();
    bool restart = false;
    for (uint32_t i = 0; i + 1 < n && st.ok(); ++i) {
      st = builder.BeginLayer(i, record.layer_digests[i]);
      if (!st.ok()) break;
      auto table = ForEachStoredLayerEntry(
          store, record.layer_digests[i], diff_ids[i], limits, [&](TarEntry& e) { return builder.Apply(e); }, &restart);
      st = table.ok() ? builder.EndLayer() : table.status();
      if (!st.ok()) break;
      auto snap = builder.Snapshot("image " + record.reference + " up to layer " + std::to_string(i + 1));
      if (!snap.ok()) {
        st = snap.status();
        break;
      }
      st = add({"upto", std::to_string(i + 1)}, std::make_shared<const ImageTree>(std::move(*snap)));
    }
    if (!st.ok() && restart && attempt < static_cast<int>(n)) continue;
    if (!st.ok()) return st.WithContext("image " + record.reference);
    break;
  }
  // upto/<all> is the merged tree again (the composed tree copies it).
  if (n > 0) LAZYROOT_RETURN_IF_ERROR(add({"upto", std::to_string(n)}, merged));
  ComposeOptions options;
  options.dir_mode = 0555;
  options.mtime_sec = mtime;
  options.layer_digests = record.layer_digests;
  options.image_digest = record.manifest_digest;
  options.max_nodes = limits.image_entries;
  options.name = "mount --layers of image " + record.reference;
  return ComposeTrees(parts, options);
}

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
  open_options.tree_only = true;  // only the tree's symlinks are read
  LAZYROOT_ASSIGN_OR_RETURN(OpenedImage image, OpenImage(store, record, open_options));
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, ImageDiffIds(store, record));
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
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, ImageDiffIds(store, record));
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
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<std::string> diff_ids, ImageDiffIds(store, record));
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
