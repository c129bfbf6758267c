#include "src/store/store_check.h"
#include "index/worker_threads.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "fs/extract_writer.h"
#include "fs/rootfs_check.h"
#include "index/exception_status.h"
#include "index/byte_source.h"
#include "index/image_content.h"
#include "index/image_tree.h"
#include "index/layer_index.h"
#include "index/merge.h"
#include "index/sha256.h"
#include "src/store/index_consumer.h"
#include "src/store/unit_copy_store.h"
#include "index/unit_copy.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"



namespace lazyroot {

size_t StoreCheckReport::problems() const {
  size_t n = 0;
  for (const StoreFinding& f : findings) n += f.problem ? 1 : 0;
  return n;
}
size_t StoreCheckReport::notes() const { return findings.size() - problems(); }
size_t StoreCheckReport::unrepaired() const {
  size_t n = 0;
  for (const StoreFinding& f : findings) n += f.problem && f.repaired.empty() ? 1 : 0;
  return n;
}

namespace {

// As index_consumer.cc and open_image.cc read them.
constexpr uint64_t kMaxDerivedBytes = uint64_t{1} << 34;

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Whether another process holds an flock on path (an absent file: no).
bool LockHeld(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not hang fsck
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Status RemovePath(const std::string& path) {
  if (IsDir(path)) return RemoveTree(path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove " + path, errno);
  return Status::Ok();
}

std::string Hex(const std::string& digest) { return digest.substr(7); }

// An error about a file, without the "<kind> <path>: " its parser put in
// front (the finding names the object already).
std::string Without(const std::string& message, const std::string& path) {
  const size_t at = message.find(path + ": ");
  return at == std::string::npos ? message : message.substr(at + path.size() + 2);
}

// The format version of a layer index or tree file (index/FORMAT.md: a u32
// LE after the 8-byte magic). REQUIRES: at least 12 bytes.
uint32_t FormatVersion(const std::string& file) {
  const auto* p = reinterpret_cast<const uint8_t*>(file.data()) + 8;
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// fn(i) for i in [0, n) on up to one thread per CPU: hashing blobs and
// re-indexing layers are CPU-bound and independent. fn must not throw.
void ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  RunOnThreads(static_cast<unsigned>(std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), n)), worker);
}

struct BlobState {
  bool present = false;
  bool bad = false;  // its bytes or its size are wrong: unusable
  uint64_t size = 0;
};

struct Record {
  ImageRecord record;
  std::string file;  // under images/
  bool broken = false;
};

class Checker {
 public:
  Checker(Store& store, const StoreCheckOptions& options) : store_(store), options_(options), root_(store.root()) {}

  Result<StoreCheckReport> Run() {
    LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, store_.LockStore(options_.repair));
    const bool whole = options_.references.empty();
    LoadRecords();
    if (!whole) {
      std::vector<Record> chosen;
      for (const std::string& ref : options_.references) {
        auto it = std::find_if(records_.begin(), records_.end(), [&](const Record& r) { return r.record.reference == ref; });
        if (it == records_.end()) return Status::NotFound("image " + ref + ": not in the store");
        chosen.push_back(*it);
      }
      records_ = std::move(chosen);
    }
    report_.images = records_.size();
    CheckBlobs(whole);
    for (Record& r : records_) CheckRecord(r);
    DropBrokenRecords();
    for (Record& r : records_) {
      if (!r.broken) CheckDerived(r);
      Progress("images", ++images_done_, records_.size());
    }
    if (whole) {
      CollectInUse();
      CheckOrphans();
      CheckTmp();
    }
    return std::move(report_);
  }

 private:
  // ---- findings -------------------------------------------------------------

  StoreFinding& Problem(const std::string& object, const std::string& what) {
    report_.findings.push_back(StoreFinding{true, object, what, ""});
    return report_.findings.back();
  }
  void Note(const std::string& object, const std::string& what, const std::string& repaired = "") {
    report_.findings.push_back(StoreFinding{false, object, what, repaired});
  }
  // Runs a repair action when repairing: records what was done, or why not.
  void Repair(StoreFinding& f, const std::string& done, const std::function<Status()>& action) {
    if (!options_.repair) return;
    Status st = action();
    if (st.ok()) {
      f.repaired = done;
    } else {
      f.what += " (repair failed: " + st.message() + ")";
    }
  }
  void RepairNote(const std::string& object, const std::string& what, const std::string& path) {
    std::string done;
    if (options_.repair) {
      Status st = RemovePath(path);
      done = st.ok() ? "removed" : "not removed: " + st.message();
    }
    Note(object, what, done);
  }
  // A file or dir whose name says it is a temp of a writer: in progress while
  // the writer lives, debris (a note) once it is gone.
  void TempDebris(const std::string& rel) {
    pid_t pid = TempOwner(rel.substr(rel.rfind('/') + 1));
    if (ProcessAlive(pid)) return;  // being written
    RepairNote(rel, "temp file of an interrupted write (process " + std::to_string(pid) + " is gone)", root_ + "/" + rel);
  }
  void Progress(const char* phase, uint64_t done, uint64_t total) {
    if (!options_.progress) return;
    std::lock_guard<std::mutex> lock(progress_mu_);
    options_.progress(StoreCheckProgress{phase, done, total});
  }

  // ---- image records --------------------------------------------------------

  void LoadRecords() {
    const std::string dir = root_ + "/images";
    for (const std::string& name : ListNames(dir)) {
      const std::string rel = "images/" + name;
      if (TempOwner(name) != 0) {
        if (options_.references.empty()) TempDebris(rel);
        continue;
      }
      if (!name.ends_with(".json")) {
        if (options_.references.empty()) {
          StoreFinding& f = Problem(rel, "not an image record (records are <sha256 of the reference>.json)");
          Repair(f, "removed", [&] { return RemovePath(dir + "/" + name); });
        }
        continue;
      }
      auto rec = Store::ReadImageRecord(dir + "/" + name);
      if (!rec.ok()) {
        if (rec.status().code() == ErrorCode::kNotFound) continue;  // removed meanwhile
        if (options_.references.empty()) {
          StoreFinding& f = Problem(rel, rec.status().message());
          Repair(f, "removed (its reference is unknown: pull the image again)",
                 [&] { return RemovePath(dir + "/" + name); });
        }
        continue;
      }
      const bool selected = options_.references.empty() ||
                            std::find(options_.references.begin(), options_.references.end(), rec->reference) !=
                                options_.references.end();
      if (!selected) {
        records_.push_back(Record{std::move(*rec), name});
        continue;
      }
      auto ref = ParseReference(rec->reference);
      if (!ref.ok() || ref->ToString() != rec->reference) {
        StoreFinding& f = Problem(rel, "names the reference \"" + rec->reference + "\", which is not a normalised reference");
        Repair(f, "removed", [&] { return RemovePath(dir + "/" + name); });
        continue;
      }
      const std::string want = Sha256::HexOf(std::string_view(rec->reference)) + ".json";
      if (want != name) {
        StoreFinding& f = Problem("image " + rec->reference, "its record is " + rel + ", but the reference's record is images/" + want);
        if (!Exists(dir + "/" + want)) {
          Repair(f, "moved to images/" + want, [&] {
            LAZYROOT_RETURN_IF_ERROR(store_.PutImage(*rec));
            return RemovePath(dir + "/" + name);
          });
          records_.push_back(Record{*rec, f.repaired.empty() ? name : want});
        } else {
          // The reference's own record is checked on its own.
          Repair(f, "removed (images/" + want + " is the record)", [&] { return RemovePath(dir + "/" + name); });
        }
        continue;
      }
      records_.push_back(Record{std::move(*rec), name});
    }
  }

  // ---- blobs ----------------------------------------------------------------

  void CheckBlobs(bool whole) {
    const std::string dir = root_ + "/blobs/sha256";
    std::vector<std::string> names;
    if (whole) {
      names = ListNames(dir);
    } else {
      std::set<std::string> wanted;
      for (const Record& r : records_) {
        for (const std::string* d : {&r.record.manifest_digest, &r.record.index_digest, &r.record.config_digest}) {
          if (!d->empty()) wanted.insert(Hex(*d));
        }
        for (const std::string& l : r.record.layer_digests) wanted.insert(Hex(l));
      }
      names.assign(wanted.begin(), wanted.end());
    }
    uint64_t total = 0;
    for (const std::string& name : names) {
      struct stat st {};
      if (::lstat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_size);
    }
    std::vector<std::string> to_hash;
    for (const std::string& name : names) {
      const std::string path = dir + "/" + name;
      const std::string rel = "blobs/sha256/" + name;
      if (TempOwner(name) != 0) {
        TempDebris(rel);
        continue;
      }
      if (!IsSha256Hex(name)) {
        StoreFinding& f = Problem(rel, "not a blob (its name is not a SHA-256 digest)");
        Repair(f, "removed", [&] { return RemovePath(path); });
        continue;
      }
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;  // restricted check: found missing by its record
      BlobState& b = blobs_[name];
      b.present = true;
      b.size = static_cast<uint64_t>(st.st_size);
      if (!S_ISREG(st.st_mode)) {
        b.bad = true;
        Problem("blob sha256:" + name, "not a regular file");
        continue;
      }
      report_.blobs++;
      report_.blob_bytes += b.size;
      if (!options_.quick) to_hash.push_back(name);
    }
    std::vector<std::optional<Result<std::string>>> hashes(to_hash.size());
    std::atomic<uint64_t> done{0};
    ParallelFor(to_hash.size(), [&](size_t i) {
      try {
        hashes[i] = HashFile(dir + "/" + to_hash[i], &done, total);
      } catch (...) {
        hashes[i] = Result<std::string>(CurrentExceptionStatus("hash blob sha256:" + to_hash[i]));
      }
    });
    for (size_t i = 0; i < to_hash.size(); ++i) {
      const Result<std::string>& got = *hashes[i];
      if (got.ok() && *got == to_hash[i]) continue;
      blobs_[to_hash[i]].bad = true;
      Problem("blob sha256:" + to_hash[i], got.ok() ? "the stored bytes hash to sha256:" + *got : got.status().message());
    }
  }

  // Called from several threads.
  Result<std::string> HashFile(const std::string& path, std::atomic<uint64_t>* done, uint64_t total) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not hang fsck
    if (fd < 0) return Status::FromErrno("open " + path, errno);
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    Sha256 hash;
    std::vector<uint8_t> buf(1 << 20);
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return Status::FromErrno("read " + path, err);
      }
      if (n == 0) break;
      hash.Update(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
      Progress("blobs", done->fetch_add(static_cast<uint64_t>(n)) + static_cast<uint64_t>(n), total);
    }
    ::close(fd);
    return hash.FinishHex();
  }

  // The blob's size against what a descriptor says of it; the blob is unusable if they differ.
  bool CheckSize(const std::string& digest, int64_t want, const std::string& who) {
    BlobState& b = blobs_[Hex(digest)];
    if (!b.present || want < 0 || b.size == static_cast<uint64_t>(want)) return true;
    if (!b.bad) {
      b.bad = true;
      Problem("blob " + digest, "size " + std::to_string(b.size) + ", " + who + " says " + std::to_string(want));
    }
    return false;
  }

  // ---- records --------------------------------------------------------------

  // A blob of the record: present and sound, else a problem on the image.
  bool Need(Record& r, const std::string& digest, const char* role) {
    const BlobState& b = blobs_[Hex(digest)];
    if (b.present && !b.bad) return true;
    Problem("image " + r.record.reference, std::string(role) + " " + digest + (b.present ? " is corrupt" : " is missing"));
    r.broken = true;
    return false;
  }

  void Broken(Record& r, const std::string& what) {
    Problem("image " + r.record.reference, what);
    r.broken = true;
  }

  void CheckRecord(Record& r) {
    const ImageRecord& rec = r.record;
    if (!Need(r, rec.manifest_digest, "manifest")) return;
    auto body = ReadWholeFile(store_.BlobPath(rec.manifest_digest), kMaxManifestBytes);
    if (!body.ok()) return Broken(r, "manifest " + rec.manifest_digest + ": " + body.status().message());
    auto manifest = ParseImageManifest(*body);
    if (!manifest.ok()) return Broken(r, "manifest " + rec.manifest_digest + ": " + manifest.status().message());
    const std::string by_manifest = "manifest " + rec.manifest_digest;
    if (!rec.index_digest.empty() && Need(r, rec.index_digest, "index")) {
      auto index_body = ReadWholeFile(store_.BlobPath(rec.index_digest), kMaxManifestBytes);
      auto entries = index_body.ok() ? ParseIndex(*index_body) : Result<std::vector<IndexEntry>>(index_body.status());
      if (!entries.ok()) {
        Broken(r, "index " + rec.index_digest + ": " + entries.status().message());
      } else {
        auto it = std::find_if(entries->begin(), entries->end(), [&](const IndexEntry& e) { return e.digest == rec.manifest_digest; });
        if (it == entries->end()) {
          Broken(r, "index " + rec.index_digest + " does not list manifest " + rec.manifest_digest);
        } else if (!CheckSize(rec.manifest_digest, it->size, "index " + rec.index_digest)) {
          r.broken = true;
        }
      }
    }
    if (manifest->config.digest != rec.config_digest) {
      Broken(r, "the record names config " + rec.config_digest + ", " + by_manifest + " says " + manifest->config.digest);
    }
    std::vector<std::string> layers;
    for (const Layer& l : manifest->layers) layers.push_back(l.descriptor.digest);
    if (layers != rec.layer_digests) Broken(r, "the record's layers are not those of " + by_manifest);
    if (r.broken) return;
    if (!CheckSize(rec.config_digest, manifest->config.size, by_manifest)) r.broken = true;
    for (const Layer& l : manifest->layers) {
      if (!CheckSize(l.descriptor.digest, l.descriptor.size, by_manifest)) r.broken = true;
    }
    if (!Need(r, rec.config_digest, "config")) return;
    for (const std::string& l : rec.layer_digests) Need(r, l, "layer");
    if (r.broken) return;
    auto config_body = ReadWholeFile(store_.BlobPath(rec.config_digest), kMaxConfigBytes);
    auto config = config_body.ok() ? ParseImageConfig(*config_body) : Result<ImageConfig>(config_body.status());
    if (!config.ok()) return Broken(r, "config " + rec.config_digest + ": " + config.status().message());
    if (config->diff_ids.size() != rec.layer_digests.size()) {
      return Broken(r, "config " + rec.config_digest + " has " + std::to_string(config->diff_ids.size()) +
                           " diff_ids for " + std::to_string(rec.layer_digests.size()) + " layers");
    }
    diff_ids_[rec.manifest_digest] = config->diff_ids;
  }

  // Records first (a record never names a removed blob, even if repair is
  // killed half way), then the corrupt blobs and their indexes.
  void DropBrokenRecords() {
    if (!options_.repair) return;
    std::vector<Record> kept;
    for (Record& r : records_) {
      if (!r.broken) {
        kept.push_back(std::move(r));
        continue;
      }
      Status st = RemovePath(root_ + "/images/" + r.file);
      const std::string object = "image " + r.record.reference;
      for (StoreFinding& f : report_.findings) {
        if (f.object != object || !f.problem) continue;
        if (st.ok()) f.repaired = "record removed: pull the image again";
        else f.what += " (repair failed: " + st.message() + ")";
      }
      if (st.ok()) report_.pull_again.push_back(r.record.reference);
      else kept.push_back(std::move(r));
    }
    records_ = std::move(kept);
    for (StoreFinding& f : report_.findings) {
      if (!f.problem || !f.object.starts_with("blob sha256:") || !f.repaired.empty()) continue;
      const std::string digest = f.object.substr(5);
      if (!IsSha256Hex(Hex(digest))) continue;
      Status st = RemovePath(store_.BlobPath(digest));
      if (st.ok()) st = RemovePath(store_.IndexPath(digest));
      if (st.ok()) {
        f.repaired = "removed (fsck never downloads: pull the images that use it again)";
        blobs_[Hex(digest)].present = false;
      } else {
        f.what += " (repair failed: " + st.message() + ")";
      }
    }
  }

  // ---- layer indexes, trees, cached extracts --------------------------------

  // Checks the layer's index; returns the bytes of a sound index for it (the
  // stored one, or the one rebuilt from the blob), or nullopt.
  // *sound: the stored file is right now (it was, or repair rewrote it).
  std::optional<std::string> CheckIndex(const std::string& digest, const std::string& diff_id,
                                        std::optional<Result<std::string>>* prebuilt, bool* sound) {
    *sound = false;
    const std::string path = store_.IndexPath(digest);
    const std::string object = "layer index " + digest;
    report_.indexes++;
    auto stored = ReadLayerIndexFile(path);  // garbage of any size costs a header read
    std::string wrong;
    if (!stored.ok()) {
      wrong = stored.status().code() == ErrorCode::kNotFound ? "missing" : stored.status().message();
    } else {
      LayerIndex header;
      Status st = LayerIndex::ForEachEntry(AsBytes(*stored), path, digest, &header, [](TarEntry&) { return Status::Ok(); });
      if (!st.ok()) wrong = Without(st.message(), path);
      else if (header.diff_id != diff_id) wrong = "made for DiffID " + header.diff_id + ", the config says " + diff_id;
    }
    // An index of an older format version (same magic, lower version) is a
    // cache to rebuild, not damage: knowing the current version takes a rebuild.
    const bool maybe_old = !wrong.empty() && stored.ok() && stored->size() >= 12 &&
                           stored->compare(0, 8, std::string_view("LZRLIDX\0", 8)) == 0;
    std::optional<std::string> built;
    if (!options_.quick || (!wrong.empty() && options_.repair) || maybe_old) {
      Result<std::string> b = prebuilt != nullptr && prebuilt->has_value()
                                  ? std::move(**prebuilt)
                                  : BuildLayerIndexFile(store_, digest, diff_id, options_.limits);
      if (!b.ok()) {
        // The blob hashed right: it is the config's DiffID or a budget that fails.
        Problem(object, "cannot be rebuilt from its blob: " + b.status().message());
        return std::nullopt;
      }
      built = std::move(*b);
      if (wrong.empty() && !options_.quick && *built != *stored) {
        wrong = "differs from the index rebuilt from its blob (" + std::to_string(stored->size()) + " bytes, rebuilt " +
                std::to_string(built->size()) + ")";
      }
    }
    if (wrong.empty()) {
      *sound = true;
      return std::move(*stored);
    }
    if (maybe_old && built && built->size() >= 12 && FormatVersion(*stored) < FormatVersion(*built)) {
      std::string done;
      if (options_.repair) {
        Status st = WriteFileAtomic(path, *built);
        done = st.ok() ? "rebuilt from the blob" : "not rebuilt: " + st.message();
      }
      Note(object, "format version " + std::to_string(FormatVersion(*stored)) + " (now " +
                       std::to_string(FormatVersion(*built)) + "): the next use rebuilds it",
           done);
      *sound = done == "rebuilt from the blob";
      return built;
    }
    StoreFinding& f = Problem(object, wrong);
    if (built) Repair(f, "rebuilt from the blob", [&] { return WriteFileAtomic(path, *built); });
    *sound = !f.repaired.empty();
    return built;
  }

  // The tree the merge makes of these index files: the layers applied in
  // order, as OpenImage's BuildTree does from the stored indexes.
  Result<ImageTree> MergeTree(const ImageRecord& rec, const std::vector<std::string>& indexes) {
    TreeBuilder builder(options_.limits);
    builder.SetImageDigest(rec.manifest_digest);
    for (size_t i = 0; i < indexes.size(); ++i) {
      const std::string& digest = rec.layer_digests[i];
      LAZYROOT_RETURN_IF_ERROR(builder.BeginLayer(static_cast<uint32_t>(i), digest));
      LAZYROOT_RETURN_IF_ERROR(LayerIndex::ForEachEntry(AsBytes(indexes[i]), store_.IndexPath(digest), digest, nullptr,
                                                        [&](TarEntry& e) { return builder.Apply(e); }));
      LAZYROOT_RETURN_IF_ERROR(builder.EndLayer());
    }
    return std::move(builder).Finish("image " + rec.reference);
  }

  void CheckDerived(Record& r) {
    const ImageRecord& rec = r.record;
    const std::vector<std::string>& diff_ids = diff_ids_[rec.manifest_digest];
    // The layers' indexes rebuilt from their blobs, in parallel: with
    // hashing, the time a full check takes.
    const size_t n = rec.layer_digests.size();
    std::vector<std::optional<Result<std::string>>> built(n);
    if (!options_.quick) {
      std::vector<size_t> todo;
      uint64_t total = 0;
      for (size_t i = 0; i < n; ++i) {
        if (index_sound_.count(rec.layer_digests[i]) != 0) continue;
        if (std::any_of(todo.begin(), todo.end(), [&](size_t j) { return rec.layer_digests[j] == rec.layer_digests[i]; })) {
          continue;
        }
        todo.push_back(i);
        total += blobs_[Hex(rec.layer_digests[i])].size;
      }
      std::atomic<uint64_t> done{0};
      ParallelFor(todo.size(), [&](size_t t) {
        const size_t i = todo[t];
        const std::string& digest = rec.layer_digests[i];
        try {
          built[i] = BuildLayerIndexFile(store_, digest, diff_ids[i], options_.limits);
        } catch (...) {
          built[i] = Result<std::string>(CurrentExceptionStatus("layer " + digest + ": rebuild its index"));
        }
        const uint64_t size = blobs_.at(Hex(digest)).size;
        Progress("indexes", done.fetch_add(size) + size, total);
      });
    }
    // One image's index files at a time in memory; a layer another image
    // shares was checked with that image, and is read again if it is sound.
    std::vector<std::string> indexes;
    bool have_indexes = true;
    for (size_t i = 0; i < n; ++i) {
      const std::string& digest = rec.layer_digests[i];
      auto dup = std::find(rec.layer_digests.begin(), rec.layer_digests.begin() + static_cast<ptrdiff_t>(i), digest);
      if (dup != rec.layer_digests.begin() + static_cast<ptrdiff_t>(i)) {
        if (have_indexes) indexes.push_back(indexes[static_cast<size_t>(dup - rec.layer_digests.begin())]);
        continue;
      }
      std::optional<std::string> bytes;
      auto known = index_sound_.find(digest);
      if (known == index_sound_.end()) {
        bool sound = false;
        bytes = CheckIndex(digest, diff_ids[i], &built[i], &sound);
        index_sound_[digest] = sound;
      } else if (known->second) {
        auto stored = ReadLayerIndexFile(store_.IndexPath(digest));
        if (stored.ok()) bytes = std::move(*stored);
      }
      if (!bytes) have_indexes = false;  // reported with the index; the others are still checked
      if (have_indexes) indexes.push_back(std::move(*bytes));
    }
    const std::string mhex = Hex(rec.manifest_digest);
    live_trees_.insert(mhex);
    std::optional<ImageTree> tree = CheckTree(rec, have_indexes ? &indexes : nullptr);
    CheckRootfs(rec, tree ? &*tree : nullptr, have_indexes ? &indexes : nullptr);
  }

  std::optional<ImageTree> CheckTree(const ImageRecord& rec, const std::vector<std::string>* indexes) {
    const std::string path = store_.TreePath(rec.manifest_digest);
    const std::string object = "tree " + rec.manifest_digest;
    // Read only if its header says its length (index/FORMAT.md: file_size at 16).
    auto stored = ReadSelfSizedFile(path, kMaxDerivedBytes, "LZRTREE1", ImageTree::kVersion, 128, [](const uint8_t* h) {
      uint64_t v = 0;
      for (int i = 7; i >= 0; --i) v = (v << 8) | h[16 + i];
      return v;
    });
    std::optional<ImageTree> merged;
    auto merge = [&]() -> bool {
      if (merged) return true;
      if (indexes == nullptr) return false;
      auto t = MergeTree(rec, *indexes);
      if (!t.ok()) {
        Problem("image " + rec.reference, "its layers do not merge: " + t.status().message());
        return false;
      }
      merged.emplace(std::move(*t));
      return true;
    };
    if (!stored.ok()) {
      if (stored.status().code() != ErrorCode::kNotFound) Problem(object, stored.status().message());
      // No tree yet: the first mount or extract merges it. The cached
      // extract, if any, is compared with the merge.
      if (!options_.quick || Exists(root_ + "/rootfs/" + Hex(rec.manifest_digest))) merge();
      return merged;
    }
    report_.trees++;
    // A tree of an older format version (same magic, lower version) is a
    // cache the next mount or extract rebuilds, not damage.
    uint32_t old_version = 0;
    if (stored->size() >= 12 && stored->compare(0, 8, std::string_view(ImageTree::kMagic, 8)) == 0 &&
        FormatVersion(*stored) < ImageTree::kVersion) {
      old_version = FormatVersion(*stored);
    }
    std::vector<uint8_t> bytes(stored->begin(), stored->end());
    std::string().swap(*stored);  // one copy at a time
    auto tree = ImageTree::Open(std::move(bytes), path);
    std::string wrong;
    if (!tree.ok() && old_version != 0) {
      const bool have_merged = merge();
      std::string done;
      if (options_.repair) {
        Status st = have_merged ? WriteFileAtomic(path, std::string_view(reinterpret_cast<const char*>(merged->bytes().data()),
                                                                           merged->bytes().size()))
                                : RemovePath(path);
        done = !st.ok() ? "not rebuilt: " + st.message() : have_merged ? "rebuilt from the layer indexes" : "removed";
      }
      Note(object, "format version " + std::to_string(old_version) + " (now " + std::to_string(ImageTree::kVersion) +
                       "): the next mount or extract rebuilds it",
           done);
      return merged;
    }
    if (!tree.ok()) {
      wrong = Without(tree.status().message(), path);
    } else if (tree->ImageDigest() != rec.manifest_digest) {
      wrong = "built for image " + std::string(tree->ImageDigest()) + ", not " + rec.manifest_digest;
    } else if (tree->layer_count() != rec.layer_digests.size()) {
      wrong = "made from " + std::to_string(tree->layer_count()) + " layers, the image has " +
              std::to_string(rec.layer_digests.size());
    } else {
      for (uint32_t i = 0; i < tree->layer_count() && wrong.empty(); ++i) {
        if (tree->LayerDigest(i) != rec.layer_digests[i]) wrong = "made from other layers than image " + rec.reference + "'s";
      }
    }
    if (wrong.empty() && !options_.quick && merge()) {
      auto a = tree->bytes(), b = merged->bytes();
      if (!std::equal(a.begin(), a.end(), b.begin(), b.end())) {
        wrong = "differs from the tree merged from its layer indexes (" + std::to_string(a.size()) + " bytes, merged " +
                std::to_string(b.size()) + ")";
      }
    }
    if (wrong.empty()) {
      if (merged) return merged;
      return std::move(*tree);
    }
    const bool have_merged = merge();  // before the finding: a failed merge adds one
    StoreFinding& f = Problem(object, wrong);
    if (have_merged) {
      Repair(f, "rebuilt from the layer indexes", [&] {
        auto b = merged->bytes();
        return WriteFileAtomic(path, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
      });
    } else {
      Repair(f, "removed (the next mount or extract merges it again)", [&] { return RemovePath(path); });
    }
    return merged;
  }

  // rootfs/<hex> (complete once <hex>.done exists; <hex>.lock held while an
  // extract works on it) and the temp dirs of extracts beside it.
  void CheckRootfs(const ImageRecord& rec, const ImageTree* tree, const std::vector<std::string>* indexes) {
    const std::string hex = Hex(rec.manifest_digest);
    const std::string base = root_ + "/rootfs/" + hex;
    rootfs_seen_.insert(hex);
    if (LockHeld(base + ".lock")) return;  // an extract is at work
    for (const std::string& name : ListNames(root_ + "/rootfs")) {
      if (name.starts_with(hex + ".lazyroot-tmp-")) {
        RepairNote("rootfs/" + name, "temp dir of an interrupted extract", root_ + "/rootfs/" + name);
      } else if (name.starts_with(hex + ".stale-")) {
        // A changed extract that extract swapped out: a VM may still run on it.
        Note("rootfs/" + name, "replaced cached extract (`lazyroot gc` removes it)");
      }
    }
    const bool dir = IsDir(base), done = Exists(base + ".done");
    if (!dir && done) return RepairNote("rootfs/" + hex + ".done", "marker of a cached extract that is gone", base + ".done");
    if (!dir) return;
    if (!done) return RepairNote("rootfs/" + hex, "extract never finished (no .done marker; the next extract redoes it)", base);
    report_.rootfs++;
    Progress("rootfs", 0, 1);
    if (tree == nullptr || indexes == nullptr) return;  // already reported
    auto mode = ReadWholeFile(base + ".done", 64);
    RootfsCheckOptions check;
    check.contents = !options_.quick;
    check.rootless = mode.ok() && *mode == "rootless\n";
    check.max_differences = 5;
    // As extract's reuse check: an entry changed after the .done marker was
    // written is a difference even when its size and mtime were put back
    // (--quick compares no contents, so this is what finds such an edit).
    struct stat done_st {};
    if (::stat((base + ".done").c_str(), &done_st) == 0) {
      check.extracted_at_ns = static_cast<int64_t>(done_st.st_mtim.tv_sec) * 1000000000 + done_st.st_mtim.tv_nsec;
    }
    std::vector<LayerBlob> layers;
    for (size_t i = 0; i < rec.layer_digests.size(); ++i) {
      const std::string& digest = rec.layer_digests[i];
      std::string diff_id;
      auto table = LayerIndex::ParseCheckpoints(AsBytes((*indexes)[i]), store_.IndexPath(digest), digest, &diff_id);
      auto blob = OpenFileByteSource(store_.BlobPath(digest), "blob " + digest);
      if (!table.ok() || !blob.ok()) return;  // reported with the index or the blob
      layers.push_back(LayerBlob{digest, std::move(*blob), std::make_shared<const CheckpointTable>(std::move(*table))});
    }
    ImageContent content(std::move(layers));
    auto diffs = CompareRootfs(*tree, &content, base, check);
    std::vector<std::string> lines;
    if (!diffs.ok()) lines.push_back(diffs.status().message());
    else for (const RootfsDifference& d : *diffs) lines.push_back(d.path + ": " + d.what);
    bool removed = false;
    for (const std::string& line : lines) {
      StoreFinding& f = Problem("rootfs/" + hex, "differs from image " + rec.reference + ": " + line);
      if (removed) {
        f.repaired = "removed";
        continue;
      }
      // Moved aside as extract does, not removed: it was handed out, and a VM
      // may run on it now (the changes are probably that VM's). gc removes it.
      Repair(f, "moved aside (the next extract makes it again; `lazyroot gc` removes the old one)", [&] {
        LAZYROOT_RETURN_IF_ERROR(RemovePath(base + ".done"));
        std::string aside = base + ".stale-XXXXXX";
        if (::mkdtemp(aside.data()) == nullptr) return Status::FromErrno("create a dir beside " + base, errno);
        if (::rename(base.c_str(), aside.c_str()) != 0) {
          const int err = errno;
          ::rmdir(aside.c_str());
          return Status::FromErrno("move " + base + " aside to " + aside, err);
        }
        return Status::Ok();
      });
      removed = !f.repaired.empty();
    }
  }

  // ---- the rest of the store --------------------------------------------------

  // Images a mount serves (inuse/<hex>.lock held) are live whether or not a
  // record names them, as for gc.
  void CollectInUse() {
    for (const Record& r : records_) {
      live_trees_.insert(Hex(r.record.manifest_digest));
      for (const std::string* d : {&r.record.manifest_digest, &r.record.index_digest, &r.record.config_digest}) {
        if (!d->empty()) live_blobs_.insert(Hex(*d));
      }
      for (const std::string& l : r.record.layer_digests) live_blobs_.insert(Hex(l));
    }
    for (const std::string& name : ListNames(root_ + "/inuse")) {
      const std::string hex = name.substr(0, name.find('.'));
      if (!IsSha256Hex(hex) || !LockHeld(root_ + "/inuse/" + name)) continue;
      live_trees_.insert(hex);
      live_blobs_.insert(hex);
      auto body = ReadWholeFile(store_.BlobPath("sha256:" + hex), kMaxManifestBytes);
      auto manifest = body.ok() ? ParseImageManifest(*body) : Result<ImageManifest>(body.status());
      if (!manifest.ok()) {
        // What the mount needs cannot be told: gc refuses to run (Store::LiveImages).
        const bool named = std::any_of(records_.begin(), records_.end(),
                                       [&](const Record& r) { return Hex(r.record.manifest_digest) == hex; });
        if (!named) {
          Problem("inuse/" + name, "a mount serves image sha256:" + hex + ", whose manifest cannot be read (" +
                                       manifest.status().message() + "); gc cannot run until that mount ends");
        }
        continue;
      }
      live_blobs_.insert(Hex(manifest->config.digest));
      for (const Layer& l : manifest->layers) live_blobs_.insert(Hex(l.descriptor.digest));
    }
  }

  void CheckOrphans() {
    for (const auto& [hex, b] : blobs_) {
      if (b.present && !b.bad && live_blobs_.count(hex) == 0) {
        Note("blob sha256:" + hex, "no image uses it (`lazyroot gc` removes it)");
      }
    }
    const std::string idir = root_ + "/index/sha256";
    for (const std::string& name : ListNames(idir)) {
      const std::string rel = "index/sha256/" + name;
      if (TempOwner(name) != 0) {
        TempDebris(rel);
      } else if (!IsSha256Hex(name)) {
        StoreFinding& f = Problem(rel, "not a layer index (its name is not a SHA-256 digest)");
        Repair(f, "removed", [&] { return RemovePath(idir + "/" + name); });
      } else if (!blobs_[name].present) {
        RepairNote("layer index sha256:" + name, "its blob is not in the store", idir + "/" + name);
      }
    }
    CheckUnitCopies();
    const std::string tdir = root_ + "/trees";
    for (const std::string& name : ListNames(tdir)) {
      if (TempOwner(name) != 0) {
        TempDebris("trees/" + name);
      } else if (!IsSha256Hex(name)) {
        StoreFinding& f = Problem("trees/" + name, "not a tree (its name is not a SHA-256 digest)");
        Repair(f, "removed", [&] { return RemovePath(tdir + "/" + name); });
      } else if (live_trees_.count(name) == 0) {
        RepairNote("tree sha256:" + name, "no image uses it", tdir + "/" + name);
      }
    }
    const std::string rdir = root_ + "/rootfs";
    for (const std::string& name : ListNames(rdir)) {
      const std::string hex = name.substr(0, name.find('.'));
      if (TempOwner(name) != 0) {  // <hex>.done.tmp.<pid>: a marker being written
        TempDebris("rootfs/" + name);
        continue;
      }
      if (rootfs_seen_.count(hex) != 0) continue;
      if (!IsSha256Hex(hex)) {
        StoreFinding& f = Problem("rootfs/" + name, "not a cached extract");
        Repair(f, "removed", [&] { return RemovePath(rdir + "/" + name); });
        continue;
      }
      if (name.ends_with(".lock") || LockHeld(rdir + "/" + hex + ".lock")) continue;
      if (live_trees_.count(hex) != 0) continue;  // a mounted image's
      RepairNote("rootfs/" + name, "cached extract of an image no record names (`lazyroot gc` removes it)", rdir + "/" + name);
    }
  }

  // units/<layer hex>/<start>: copies of decoded units (unit_copy_store.h),
  // a cache: one that does not validate is removed on repair (a mount then
  // decodes the unit again).
  void CheckUnitCopies() {
    const std::string udir = root_ + "/units";
    for (const std::string& hex : ListNames(udir)) {
      const std::string rel = "units/" + hex;
      if (!IsSha256Hex(hex)) {
        StoreFinding& f = Problem(rel, "not a layer's unit copies (its name is not a SHA-256 digest)");
        Repair(f, "removed", [&] { return RemovePath(udir + "/" + hex); });
        continue;
      }
      // A symlink here may point out of the store: nothing is read, checked
      // or removed through it (a mount neither writes nor removes copies
      // through one), only the link itself is removed.
      if (!IsDir(udir + "/" + hex)) {
        StoreFinding& f = Problem(rel, "not a directory (a symlink or another file where a layer's unit copies belong)");
        Repair(f, "removed", [&] { return RemovePath(udir + "/" + hex); });
        continue;
      }
      if (!blobs_[hex].present) {
        RepairNote("unit copies of layer sha256:" + hex, "the layer is not in the store", udir + "/" + hex);
        continue;
      }
      for (const std::string& name : ListNames(udir + "/" + hex)) {
        const std::string frel = rel + "/" + name;
        if (TempOwner(name) != 0) {
          TempDebris(frel);
          continue;
        }
        const std::string path = udir + "/" + hex + "/" + name;
        Status st = CheckUnitCopyFile(path, "sha256:" + hex, name);
        if (!st.ok()) {
          std::string what = st.message();
          if (what.starts_with(path + ": ")) what.erase(0, path.size() + 2);  // the finding names the file already
          StoreFinding& f = Problem(frel, what + " (a mount decodes the unit again)");
          Repair(f, "removed", [&] { return RemovePath(root_ + "/" + frel); });
        }
      }
    }
  }
  static Status CheckUnitCopyFile(const std::string& path, const std::string& digest, const std::string& name) {
    Result<std::string> bytes = ReadWholeFileAt(AT_FDCWD, path, path, 128 + ZSTD_COMPRESSBOUND(kMaxUnitCopyBytes));
    if (!bytes.ok()) return bytes.status();
    LAZYROOT_ASSIGN_OR_RETURN(UnitCopyInfo info, CheckUnitCopy(AsBytes(*bytes), path));
    if (info.layer_digest != digest) return Status::Corruption(path + ": unit copy of another layer (" + info.layer_digest + ")");
    if (UnitCopyName(info.start, info.length) != name) {
      return Status::Corruption(path + ": unit copy of [" + std::to_string(info.start) + ", +" +
                                std::to_string(info.length) + "), not its name's");
    }
    return Status::Ok();
  }

  void CheckTmp() {
    const std::string dir = root_ + "/tmp";
    for (const std::string& name : ListNames(dir)) {
      const std::string rel = "tmp/" + name;
      const std::string path = dir + "/" + name;
      const std::string hex = name.substr(0, name.find('.'));
      if (TempOwner(name) != 0) {
        TempDebris(rel);
        continue;
      }
      if (name.ends_with(".lock")) continue;
      const bool busy = IsSha256Hex(hex) && LockHeld(dir + "/" + hex + ".lock");
      if (busy) continue;  // a pull is downloading or publishing it
      if (name == hex + ".partial") {
        if (blobs_[hex].present) {
          RepairNote(rel, "partial download of a blob the store has", path);
        } else {
          struct stat st {};
          (void)::lstat(path.c_str(), &st);
          Note(rel, "partial download (" + std::to_string(st.st_size) + " bytes; the next pull resumes it)");
        }
      } else if (name == hex + ".index") {
        RepairNote(rel, "staged index of an interrupted pull", path);
      } else {
        Note(rel, "unknown file in tmp/ (left alone)");
      }
    }
  }

  Store& store_;
  const StoreCheckOptions& options_;
  const std::string root_;
  StoreCheckReport report_;
  std::vector<Record> records_;
  std::map<std::string, BlobState> blobs_;  // by hex
  std::map<std::string, std::vector<std::string>> diff_ids_;   // by manifest digest
  std::map<std::string, bool> index_sound_;  // checked layer indexes (by digest): is the stored file sound now?
  std::set<std::string> live_blobs_, live_trees_, rootfs_seen_;  // hex
  uint64_t images_done_ = 0;
  std::mutex progress_mu_;
};

}  // namespace

Result<StoreCheckReport> CheckStore(Store& store, const StoreCheckOptions& options) {
  return Checker(store, options).Run();
}

}  // namespace lazyroot
