#include "src/store/unit_copy_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>

#include "fs/extract_writer.h"
#include "index/unit_copy.h"
#include "src/store/store.h"

namespace lazyroot {
namespace {

// The names in an open directory (no . and ..); empty when it cannot be read.
std::vector<std::string> NamesIn(int dir_fd) {
  std::vector<std::string> names;
  const int fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return names;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return names;
  }
  ::rewinddir(d);
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

class StoreUnitCopies final : public UnitCopies {
 public:
  // One per distinct layer digest: an image listing a layer twice has one
  // directory and one budget for it.
  //
  // The budget bounds the bytes in the directory, whoever wrote them: used
  // counts what was there when this process first looked, what it wrote,
  // and every file another writer (another mount, or a thread of this one)
  // put there that it met since (Has). Every writer reaches a unit by
  // decoding the span from its start, asking Has about each unit on the
  // way, so a writer behind another counts the other's files before it
  // could add its own; counting only its own let N concurrent writers
  // (two mounts of an image, a layer listed twice under `mount --layers`)
  // write N budgets, each taking the units the one before stopped at.
  struct Layer {
    std::string dir, digest;
    uint64_t budget = 0;  // bytes of copies at most
    bool counted = false;  // used includes what was there when this process first looked
    uint64_t used = 0;
    std::set<std::pair<uint64_t, uint64_t>> present;  // (start, length) of units known to have a file, counted in used
  };

  // layers: one per distinct digest; slot: the index in layers of each of
  // the image's layers, in the image's order.
  StoreUnitCopies(std::vector<Layer> layers, std::vector<uint32_t> slot)
      : layers_(std::move(layers)), slot_(std::move(slot)) {}

  bool Load(uint32_t layer, uint64_t start, std::span<uint8_t> out) override {
    if (layer >= slot_.size()) return false;
    const Layer& l = layers_[slot_[layer]];
    const std::string name = UnitCopyName(start, out.size());
    const std::string path = l.dir + "/" + name;
    Fd dir = OpenLayerDir(l);
    if (!dir.valid()) return false;
    // Never more than a valid copy of this unit can be: a huge or sparse
    // file costs a stat, not its size in memory.
    const uint64_t cap = 128 + ZSTD_compressBound(out.size());
    Result<std::string> bytes = ReadWholeFileAt(dir.get(), name, path, cap);
    if (!bytes.ok()) {
      if (bytes.status().code() != ErrorCode::kNotFound) Drop(dir.get(), layer, start, out.size());
      return false;
    }
    const auto* p = reinterpret_cast<const uint8_t*>(bytes->data());
    if (!DecodeUnitCopy({p, bytes->size()}, l.digest, start, out, path).ok()) {
      Drop(dir.get(), layer, start, out.size());
      return false;
    }
    return true;
  }

  bool Has(uint32_t layer, uint64_t start, uint64_t length) override {
    if (layer >= slot_.size()) return true;  // nothing to save
    std::lock_guard lock(mu_);
    Layer& l = layers_[slot_[layer]];
    if (l.present.count({start, length}) != 0) return true;
    int err = 0;
    Fd dir = OpenLayerDir(l, &err);
    // Absent: Save makes it. A symlink or not a directory: nowhere to save
    // the unit (see OpenLayerDir).
    if (!dir.valid()) return err != ENOENT;
    CountOnce(l, dir.get());
    if (l.present.count({start, length}) != 0) return true;
    struct stat st {};
    if (::fstatat(dir.get(), UnitCopyName(start, length).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      // Another writer's, made since the count: it takes its share of the budget.
      l.present.insert({start, length});
      l.used += static_cast<uint64_t>(st.st_size);
      return true;
    }
    return false;
  }

  void Save(uint32_t layer, uint64_t start, std::span<const uint8_t> bytes) override {
    if (layer >= slot_.size()) return;
    Layer& l = layers_[slot_[layer]];
    const size_t slash = l.dir.rfind('/');
    (void)::mkdir(l.dir.substr(0, slash).c_str(), 0755);
    (void)::mkdir(l.dir.c_str(), 0755);
    Fd dir = OpenLayerDir(l);
    if (!dir.valid()) return;
    {
      std::lock_guard lock(mu_);
      CountOnce(l, dir.get());
      if (l.used >= l.budget) return;
    }
    Result<std::string> file = EncodeUnitCopy(l.digest, start, bytes);
    if (!file.ok()) return;
    {
      std::lock_guard lock(mu_);
      if (l.used + file->size() > l.budget) return;
      l.used += file->size();
    }
    const std::string name = UnitCopyName(start, bytes.size());
    const std::string tmp = name + UniqueTempSuffix();
    const int fd = ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t done = 0;
    while (done < file->size()) {
      const ssize_t n = ::write(fd, file->data() + done, file->size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    const bool ok = done == file->size() && ::close(fd) == 0;
    if (!ok || ::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
      ::unlinkat(dir.get(), tmp.c_str(), 0);
      return;
    }
    std::lock_guard lock(mu_);
    l.present.insert({start, bytes.size()});
  }

 private:
  // The layer's directory, its last component not followed: a units/<hex>
  // that is a symlink may point out of the store (it is not one this code
  // made), and nothing is ever written or removed through it; such a layer
  // gets no copies (fsck reports the symlink, --repair removes it). Invalid
  // if it is absent or not a directory.
  static Fd OpenLayerDir(const Layer& l, int* err = nullptr) {
    const int fd = ::open(l.dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && err != nullptr) *err = errno;
    return Fd(fd);
  }

  // REQUIRES: mu_ held. The first time the layer's directory is looked at:
  // every file in it counts against the budget (temp files, stale copies,
  // anything), and the units named have a file.
  static void CountOnce(Layer& l, int dir) {
    if (l.counted) return;
    l.counted = true;
    for (const std::string& name : NamesIn(dir)) {
      struct stat st {};
      if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      l.used += static_cast<uint64_t>(st.st_size);
      unsigned long long start = 0, length = 0;
      if (std::sscanf(name.c_str(), "%16llx-%llx", &start, &length) == 2 && UnitCopyName(start, length) == name) {
        l.present.insert({start, length});
      }
    }
  }

  void Drop(int dir, uint32_t layer, uint64_t start, uint64_t length) {
    ::unlinkat(dir, UnitCopyName(start, length).c_str(), 0);
    std::lock_guard lock(mu_);
    layers_[slot_[layer]].present.erase({start, length});
  }

  std::mutex mu_;  // guards each Layer's counted, used and present
  std::vector<Layer> layers_;
  const std::vector<uint32_t> slot_;
};

}  // namespace

std::string UnitCopyDir(const std::string& store_root, const std::string& layer_digest) {
  return store_root + "/units/" + layer_digest.substr(layer_digest.find(':') + 1);
}

std::string UnitCopyName(uint64_t start, uint64_t length) {
  char name[40];
  std::snprintf(name, sizeof name, "%016llx-%llx", static_cast<unsigned long long>(start),
                static_cast<unsigned long long>(length));
  return name;
}

std::shared_ptr<UnitCopies> NewStoreUnitCopies(const Store& store, const ImageContent& content) {
  std::vector<StoreUnitCopies::Layer> layers;
  std::vector<uint32_t> slot;
  std::map<std::string, uint32_t> seen;
  for (size_t i = 0; i < content.layer_count(); ++i) {
    const LayerBlob& b = content.layer(static_cast<uint32_t>(i));
    auto [it, fresh] = seen.emplace(b.digest, static_cast<uint32_t>(layers.size()));
    slot.push_back(it->second);
    if (!fresh) continue;
    StoreUnitCopies::Layer l;
    l.dir = UnitCopyDir(store.root(), b.digest);
    l.digest = b.digest;
    l.budget = 2 * b.blob_size + (16 << 20);
    layers.push_back(std::move(l));
  }
  return std::make_shared<StoreUnitCopies>(std::move(layers), std::move(slot));
}

}  // namespace lazyroot
