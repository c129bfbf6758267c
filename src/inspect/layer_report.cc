#include "src/inspect/layer_report.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "src/store/open_image.h"
#include "src/store/index_consumer.h"
#include "src/image/json_document.h"
#include "src/inspect/layer_paths.h"
#include "src/image/manifest.h"

namespace lazyroot {
namespace {

// The state of one path of the tree merged so far.
struct PathState {
  uint32_t layer = 0;  // 0-based layer that wrote it last
  bool is_dir = false;
  int64_t data = -1;  // index into Walk::data_ for regular files and hardlinks to them
};

// Regular-file bytes shipped by one layer, shared by its hardlinks.
struct FileData {
  uint32_t layer = 0;
  uint64_t size = 0;
  uint32_t names = 0;  // paths of the merged tree that still hold these bytes
};

class Walk {
 public:
  Walk(ImageLayerReport* report, const ImageTree& merged, const Limits& limits)
      : report_(report), limits_(limits), mapper_(merged) {}

  // Layer i's entries in tar order; whiteouts wait for EndLayer.
  Status ApplyEntry(uint32_t i, const TarEntry& e) {
    LayerStats& s = report_->layers[i];
    ++s.entries;
    LayerPathMapper::Mapped m = mapper_.Map(i, e);
    switch (m.kind) {
      case LayerPathMapper::Kind::kRoot:  // the root's own attributes
        return Status::Ok();
      case LayerPathMapper::Kind::kMarker:  // AUFS bookkeeping: deletes nothing that can exist
        return Status::Ok();
      case LayerPathMapper::Kind::kOpaque:
      case LayerPathMapper::Kind::kWhiteout:
        // Applied at the end of the layer: they remove only what lower layers
        // put there, so their place in the tar does not matter.
        whiteouts_.push_back(std::move(m));
        return Status::Ok();
      case LayerPathMapper::Kind::kEntry:
        break;
    }
    std::string path = std::move(m.path);
    const bool is_dir = e.type == EntryType::kDirectory;
    // One descent finds the path or where it goes.
    const auto pos = paths_.lower_bound(path);
    const auto it = pos != paths_.end() && pos->first == path ? pos : paths_.end();
    if (!is_dir) {
      if (it == paths_.end())
        ++s.added;
      else if (it->second.layer < i)
        ++s.modified;
      // else: a second entry for the path in this layer; counted once
    }
    if (it != paths_.end() && it->second.is_dir && is_dir) {
      it->second.layer = i;  // the directory stays, taking the entry's attributes
      return Status::Ok();
    }
    PathState st{i, is_dir, -1};
    if (e.type == EntryType::kRegular) {
      st.data = static_cast<int64_t>(data_.size());
      data_.push_back(FileData{i, e.size, 1});
      s.bytes_added += e.size;
    } else if (e.type == EntryType::kHardlink) {
      auto target = paths_.find(mapper_.MapLinkTarget(e.link_target));
      if (target != paths_.end() && target->second.data >= 0) {
        st.data = target->second.data;
        ++data_[st.data].names;
      }
    }
    if (it != paths_.end()) {
      const bool was_dir = it->second.is_dir;
      Release(it->second);
      it->second = st;
      if (was_dir) RemoveBelow(path, UINT32_MAX);
      return Status::Ok();
    }
    paths_.emplace_hint(pos, std::move(path), st);  // nothing was erased since pos was found
    return CheckBudget(limits_, "image", paths_.size(), 0);
  }

  // Applies layer i's whiteouts and opaque markers.
  //
  // A removal at or below a path whose subtree was already swept in this
  // call removes nothing more (nothing lower can appear there meanwhile), so
  // its walk is skipped: N whiteouts or opaque markers of one directory of N
  // entries (or of its ancestors) cost N steps, not N^2. Sorted with '/'
  // before every other byte, a subtree follows its root without a gap, so
  // the last swept path is the only one to check. The order of the removals
  // does not change what they leave.
  void EndLayer(uint32_t i) {
    std::sort(whiteouts_.begin(), whiteouts_.end(),
              [](const LayerPathMapper::Mapped& a, const LayerPathMapper::Mapped& b) {
                auto key = [](char c) { return c == '/' ? 0 : static_cast<int>(static_cast<unsigned char>(c)) + 1; };
                return std::lexicographical_compare(a.path.begin(), a.path.end(), b.path.begin(), b.path.end(),
                                                    [&](char x, char y) { return key(x) < key(y); });
              });
    const std::string* swept = nullptr;
    for (const LayerPathMapper::Mapped& m : whiteouts_) {
      const bool covered = swept != nullptr && (swept->empty() || m.path == *swept ||
                                                (m.path.starts_with(*swept) && m.path[swept->size()] == '/'));
      ApplyWhiteout(i, m, !covered);
      if (!covered) swept = &m.path;
    }
    whiteouts_.clear();
  }

  void Finish() {
    for (LayerStats& s : report_->layers) report_->bytes_shipped += s.bytes_added;
    uint64_t wasted = 0;
    for (const LayerStats& s : report_->layers) wasted += s.bytes_shadowed;
    report_->bytes_wasted = wasted;
    report_->bytes_merged = report_->bytes_shipped - wasted;
    report_->efficiency = report_->bytes_shipped == 0 ? 1.0
                                                      : static_cast<double>(report_->bytes_merged) /
                                                            static_cast<double>(report_->bytes_shipped);
  }

 private:
  // sweep: whether to remove what lies below (false: EndLayer knows it is gone).
  void ApplyWhiteout(uint32_t i, const LayerPathMapper::Mapped& m, bool sweep) {
    LayerStats& s = report_->layers[i];
    if (m.kind == LayerPathMapper::Kind::kOpaque) {
      ++s.opaque;
      if (sweep) RemoveBelow(m.path, i);
      return;
    }
    ++s.deleted;
    const std::string& target = m.path;
    if (sweep) RemoveBelow(target, i);
    auto it = paths_.find(target);
    if (it != paths_.end() && it->second.layer < i && !(it->second.is_dir && HasBelow(target))) {
      Release(it->second);
      paths_.erase(it);
    }
  }

  void Release(const PathState& st) {
    if (st.data < 0) return;
    FileData& d = data_[st.data];
    if (--d.names == 0) report_->layers[d.layer].bytes_shadowed += d.size;
  }

  // Removes the paths strictly below dir ("" = the root) written by a layer
  // before `before`, sparing a directory that still holds something after
  // (a path of the layer being applied; merge.cc rule 3). Keys below "a" are
  // the contiguous range of keys starting "a/", and a directory sorts before
  // everything below it: walking the range backwards meets a directory only
  // after its whole subtree has been dealt with.
  void RemoveBelow(const std::string& dir, uint32_t before) {
    const std::string prefix = dir.empty() ? std::string() : dir + "/";
    auto it = paths_.lower_bound(prefix);
    while (it != paths_.end() && it->first.starts_with(prefix)) ++it;
    while (it != paths_.begin()) {
      auto cur = std::prev(it);
      if (!cur->first.starts_with(prefix)) break;
      if (cur->second.layer >= before || (cur->second.is_dir && HasBelow(cur->first))) {
        it = cur;
        continue;
      }
      Release(cur->second);
      paths_.erase(cur);  // `it` stays valid
    }
  }

  bool HasBelow(const std::string& dir) const {
    const std::string prefix = dir + "/";
    auto it = paths_.lower_bound(prefix);
    return it != paths_.end() && it->first.starts_with(prefix);
  }

  ImageLayerReport* report_;
  const Limits& limits_;
  std::map<std::string, PathState> paths_;
  std::vector<FileData> data_;
  LayerPathMapper mapper_;
  std::vector<LayerPathMapper::Mapped> whiteouts_;  // of the open layer
};

Result<std::string> OptionalString(const JsonValue& obj, const char* key, const std::string& where) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || it->value.IsNull()) return std::string();
  if (!it->value.IsString()) return Status::Corruption(where + "." + key + ": want a string");
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

}  // namespace

Result<std::vector<HistoryEntry>> ParseConfigHistory(std::string_view config_body) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc, ParseJsonDocument(config_body, "config", kMaxConfigBytes));
  std::vector<HistoryEntry> out;
  auto h = doc.FindMember("history");
  if (h == doc.MemberEnd() || h->value.IsNull()) return out;
  if (!h->value.IsArray()) return Status::Corruption("config.history: want an array");
  for (rapidjson::SizeType i = 0; i < h->value.Size(); ++i) {
    const JsonValue& v = h->value[i];
    std::string where = "config.history[" + std::to_string(i) + "]";
    if (!v.IsObject()) return Status::Corruption(where + ": want an object");
    HistoryEntry e;
    LAZYROOT_ASSIGN_OR_RETURN(e.created, OptionalString(v, "created", where));
    LAZYROOT_ASSIGN_OR_RETURN(e.created_by, OptionalString(v, "created_by", where));
    LAZYROOT_ASSIGN_OR_RETURN(e.author, OptionalString(v, "author", where));
    LAZYROOT_ASSIGN_OR_RETURN(e.comment, OptionalString(v, "comment", where));
    auto empty = v.FindMember("empty_layer");
    if (empty != v.MemberEnd() && !empty->value.IsNull()) {
      if (!empty->value.IsBool()) return Status::Corruption(where + ".empty_layer: want a boolean");
      e.empty_layer = empty->value.GetBool();
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<int> MatchHistoryToLayers(const std::vector<HistoryEntry>& history, size_t layer_count) {
  std::vector<int> out(layer_count, -1);
  size_t layer = 0;
  for (size_t h = 0; h < history.size() && layer < layer_count; ++h) {
    if (!history[h].empty_layer) out[layer++] = static_cast<int>(h);
  }
  return out;
}

Result<ImageLayerReport> ComputeLayerReport(Store& store, const ImageRecord& record, const Limits& limits) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string manifest_bytes, store.ReadBlob(record.manifest_digest, kMaxManifestBytes));
  auto parsed_manifest = ParseImageManifest(manifest_bytes);
  if (!parsed_manifest.ok()) return parsed_manifest.status().WithContext("manifest " + record.manifest_digest);
  ImageManifest manifest = std::move(*parsed_manifest);
  LAZYROOT_ASSIGN_OR_RETURN(std::string config_bytes, store.ReadBlob(record.config_digest, kMaxConfigBytes));
  auto config = ParseImageConfig(config_bytes);
  if (!config.ok()) return config.status().WithContext("config " + record.config_digest);
  auto history = ParseConfigHistory(config_bytes);
  if (!history.ok()) return history.status().WithContext("config " + record.config_digest);
  const size_t n = manifest.layers.size();
  const std::string what = "image " + record.reference;
  if (config->diff_ids.size() != n || record.layer_digests.size() != n) {
    return Status::Corruption(what + ": config has " + std::to_string(config->diff_ids.size()) + " diff_ids for " +
                              std::to_string(n) + " layers");
  }
  std::vector<int> matched = MatchHistoryToLayers(*history, n);
  // Entries are counted at the paths the merge applied them at, which the
  // merged tree's symlinks decide.
  OpenImageOptions open_options;
  open_options.limits = limits;
  open_options.tree_only = true;  // only the tree's symlinks are read
  LAZYROOT_ASSIGN_OR_RETURN(OpenedImage image, OpenImage(store, record, open_options));
  // A layer index found corrupt after some of its entries were counted has
  // been rebuilt from its blob: start over (once per layer at most).
  for (size_t attempt = 0;; ++attempt) {
    ImageLayerReport report;
    report.layers.resize(n);
    Walk walk(&report, *image.tree, limits);
    bool restart = false;
    Status st = Status::Ok();
    for (size_t i = 0; i < n && st.ok(); ++i) {
      LayerStats& s = report.layers[i];
      s.index = static_cast<uint32_t>(i + 1);
      s.digest = manifest.layers[i].descriptor.digest;
      s.media_type = manifest.layers[i].descriptor.media_type;
      s.diff_id = config->diff_ids[i];
      s.compressed_size = static_cast<uint64_t>(manifest.layers[i].descriptor.size);
      if (matched[i] >= 0) s.created_by = (*history)[static_cast<size_t>(matched[i])].created_by;
      const uint32_t layer = static_cast<uint32_t>(i);
      auto table = ForEachStoredLayerEntry(
          store, s.digest, s.diff_id, limits, [&](TarEntry& e) { return walk.ApplyEntry(layer, e); }, &restart);
      if (!table.ok()) {
        st = table.status().WithContext("layer " + s.digest);
        break;
      }
      s.uncompressed_size = table->uncompressed_size;
      walk.EndLayer(layer);
    }
    if (restart && attempt < n) continue;
    LAZYROOT_RETURN_IF_ERROR(st);
    walk.Finish();
    return report;
  }
}

}  // namespace lazyroot
