#include "src/inspect/layer_paths.h"

#include "index/path_resolve.h"

namespace lazyroot {

LayerPathMapper::LayerPathMapper(const ImageTree& merged) : tree_(merged) {}

std::string LayerPathMapper::ResolveParents(std::vector<std::string> components) {
  if (components.empty()) return "";
  std::string last = std::move(components.back());
  components.pop_back();
  std::string key = JoinPath(components);
  auto it = dirs_.find(key);
  if (it == dirs_.end()) {
    // A loop or a dangling link leaves the path as cleaned: the merge
    // refused such an entry anyway.
    auto parent = ResolveInRoot(*this, components);
    it = dirs_.emplace(std::move(key), JoinPath(parent.ok() ? parent->components : components)).first;
  }
  return it->second.empty() ? last : it->second + "/" + last;
}

LayerPathMapper::Mapped LayerPathMapper::Map(uint32_t layer, const TarEntry& e) {
  if (layer != layer_) {  // the open layer's links become lower ones
    for (auto& [path, link] : current_) by_path_.insert_or_assign(path, link);
    current_.clear();
    layer_ = layer;
  }
  std::vector<std::string> c = CleanPathComponents(e.path);
  if (c.empty()) return {Kind::kRoot, ""};
  const std::string base = c.back();
  if (base == kOpaqueMarker) {
    // The marker's directory is its parent, resolved in full: `lib/.wh..wh..opq`
    // under `lib -> usr/lib` makes usr/lib opaque.
    std::string path = ResolveParents(std::move(c));
    size_t slash = path.rfind('/');
    path.resize(slash == std::string::npos ? 0 : slash);
    Mapped m{Kind::kOpaque, std::move(path)};
    Delete(m.path, layer, false);
    return m;
  }
  if (base.starts_with(kWhiteoutPrefix)) {
    std::string name = base.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == ".." || base.starts_with(".wh..wh.")) return {Kind::kMarker, ""};
    c.back() = std::move(name);
    Mapped m{Kind::kWhiteout, ResolveParents(std::move(c))};
    Delete(m.path, layer, true);
    return m;
  }
  Mapped m{Kind::kEntry, ResolveParents(std::move(c))};
  SetEntry(m.path, e, layer);
  return m;
}

std::string LayerPathMapper::MapLinkTarget(std::string_view target) {
  return ResolveParents(CleanPathComponents(target));
}

void LayerPathMapper::SetEntry(const std::string& path, const TarEntry& e, uint32_t layer) {
  bool changed = Remove(path);
  if (e.type == EntryType::kSymlink) {
    if (std::optional<NodeId> id = tree_.LookupPath(path)) {
      targets_[*id] = e.link_target;
      current_[path] = {*id, layer};
      changed = true;
    }  // else deleted later: nothing of the merged tree lies below it
  }
  if (changed) dirs_.clear();
}

// A whiteout (self) or opaque marker of layer `layer` at `path` drops the
// links of lower layers at (whiteout only) or below it. Only the keys at and
// below the path are visited, each dropped, and the open layer's links are
// kept apart: N whiteouts or markers cost N lookups, not N times the links
// that share their prefix or were made in the same layer.
void LayerPathMapper::Delete(const std::string& path, uint32_t layer, bool self) {
  bool changed = false;
  if (self && !path.empty()) {
    auto it = by_path_.find(path);
    if (it != by_path_.end() && it->second.layer < layer) {
      targets_.erase(it->second.node);
      by_path_.erase(it);
      changed = true;
    }
  }
  const std::string prefix = path.empty() ? std::string() : path + "/";
  for (auto it = by_path_.lower_bound(prefix); it != by_path_.end() && it->first.starts_with(prefix);) {
    if (it->second.layer < layer) {
      targets_.erase(it->second.node);
      it = by_path_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) dirs_.clear();
}

bool LayerPathMapper::Remove(const std::string& path) {
  for (auto* links : {&current_, &by_path_}) {
    auto it = links->find(path);
    if (it == links->end()) continue;
    targets_.erase(it->second.node);
    links->erase(it);
    return true;
  }
  return false;
}

}  // namespace lazyroot
