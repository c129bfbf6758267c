#include "src/store/store_usage.h"

#include <ftw.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <string_view>
#include <utility>

namespace lazyroot {
namespace {

// nftw(3) has no user pointer: the walk in progress, one per thread.
struct Walk {
  StoreUsage* usage = nullptr;
  const LiveSet* keep = nullptr;
  size_t root_len = 0;
  std::set<std::pair<dev_t, ino_t>> seen;                   // hard links counted once
  std::map<std::string, uint64_t>* object_bytes = nullptr;  // "blobs/<hex>", "index/<hex>" -> bytes
  std::string error;
};
thread_local Walk* current_walk = nullptr;

// The n-th '/'-separated component of rel ("" past the end).
std::string_view Component(std::string_view rel, int n) {
  for (int i = 0; i < n; ++i) {
    size_t slash = rel.find('/');
    if (slash == std::string_view::npos) return {};
    rel.remove_prefix(slash + 1);
  }
  return rel.substr(0, rel.find('/'));
}

// Would gc remove the store path rel (relative to the root)?
bool GcRemoves(std::string_view rel, const LiveSet& keep) {
  const std::string_view top = Component(rel, 0);
  const std::string name(top == "blobs" || top == "index" ? Component(rel, 2) : Component(rel, 1));
  if (name.empty()) return false;  // the category's own directories
  if (top == "blobs" || top == "index") return !keep.KeepsObject(name);
  if (top == "trees") return !keep.KeepsTree(name);
  if (top == "units") return !keep.KeepsObject(name);  // a layer's unit copies
  if (top == "rootfs") return !keep.KeepsRootfsEntry(name);
  if (top == "tmp") {
    return name.ends_with(".partial") || name.ends_with(".index") || name.find(".tmp.") != std::string::npos;
  }
  if (top == "images") return name.find(".tmp.") != std::string::npos;
  return false;
}

int Visit(const char* path, const struct stat* st, int type, struct FTW*) {
  Walk& w = *current_walk;
  if (type == FTW_DNR || type == FTW_NS) {
    // Gone between the directory listing and its stat (a pull or an
    // extract renaming its temp files under the same shared lock): it holds
    // no bytes now, so it is not counted, and df does not fail for it.
    struct stat again {};
    if (::lstat(path, &again) != 0 && (errno == ENOENT || errno == ENOTDIR)) return 0;
    if (w.error.empty()) w.error = std::string(path) + ": cannot be read";
    return 0;
  }
  if (st->st_nlink > 1 && !S_ISDIR(st->st_mode) && !w.seen.emplace(st->st_dev, st->st_ino).second) return 0;
  const uint64_t bytes = static_cast<uint64_t>(st->st_blocks) * 512;
  std::string_view rel(path);
  rel.remove_prefix(std::min(rel.size(), w.root_len));
  while (rel.starts_with("/")) rel.remove_prefix(1);
  const std::string_view top = Component(rel, 0);
  UsageBytes* cat = &w.usage->other;
  if (top == "blobs") cat = &w.usage->blobs;
  if (top == "index" || top == "units") cat = &w.usage->indexes;  // caches derived from layers
  if (top == "trees") cat = &w.usage->trees;
  if (top == "rootfs") cat = &w.usage->rootfs;
  if (top == "tmp") cat = &w.usage->partials;
  cat->bytes += bytes;
  // In tmp/ only the downloads count as files, not their (empty) lock files.
  if (S_ISREG(st->st_mode) && (top != "tmp" || rel.ends_with(".partial"))) cat->files++;
  w.usage->total += bytes;
  if (GcRemoves(rel, *w.keep)) w.usage->reclaimable += bytes;
  if ((top == "blobs" || top == "index") && S_ISREG(st->st_mode) && Component(rel, 3).empty()) {
    (*w.object_bytes)[std::string(top) + "/" + std::string(Component(rel, 2))] = bytes;
  }
  return 0;
}

}  // namespace

Result<StoreUsage> MeasureStore(Store& store) {
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<ImageRecord> live, store.LiveImages(/*sweep=*/false));
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<ImageRecord> records, store.ListImages());
  const LiveSet keep = CollectLive(live);
  StoreUsage usage;
  std::map<std::string, uint64_t> object_bytes;
  Walk walk;
  walk.usage = &usage;
  walk.keep = &keep;
  // The root itself may be a symlink (a store moved to a bigger disk): it
  // is walked as its real path, which FTW_PHYS would not enter.
  char* real = ::realpath(store.root().c_str(), nullptr);
  if (real == nullptr) return Status::FromErrno("store " + store.root(), errno);
  const std::string root(real);
  std::free(real);
  walk.root_len = root.size();
  walk.object_bytes = &object_bytes;
  current_walk = &walk;
  // FTW_PHYS: symlinks below the root are not followed; FTW_MOUNT: as du -x.
  int rc = ::nftw(root.c_str(), &Visit, 32, FTW_PHYS | FTW_MOUNT);
  int err = errno;
  current_walk = nullptr;
  if (rc != 0) return Status::FromErrno("walk " + store.root(), err);
  if (!walk.error.empty()) return Status::IoError(walk.error);

  // Per image: its blobs and layer indexes, shared when another record names them too.
  std::map<std::string, int> named_by;  // hex -> records naming it
  auto objects_of = [](const ImageRecord& r) {
    std::set<std::string> hexes;
    for (const std::string* d : {&r.manifest_digest, &r.index_digest, &r.config_digest}) {
      if (d->size() > 7) hexes.insert(d->substr(7));
    }
    for (const std::string& l : r.layer_digests) hexes.insert(l.substr(7));
    return hexes;
  };
  for (const ImageRecord& r : records) {
    for (const std::string& hex : objects_of(r)) named_by[hex]++;
  }
  for (const ImageRecord& r : records) {
    ImageUsage u;
    u.reference = r.reference;
    u.manifest_digest = r.manifest_digest;
    for (const std::string& hex : objects_of(r)) {
      uint64_t bytes = 0;
      for (const char* kind : {"blobs/", "index/"}) {
        if (auto it = object_bytes.find(kind + hex); it != object_bytes.end()) bytes += it->second;
      }
      (named_by[hex] > 1 ? u.shared_bytes : u.unique_bytes) += bytes;
    }
    usage.images.push_back(std::move(u));
  }
  return usage;
}

}  // namespace lazyroot
