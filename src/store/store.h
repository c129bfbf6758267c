// Store: lazyroot's on-disk state under one root directory.
//   blobs/sha256/<hex>   verified content (layers, configs, manifests)
//   index/sha256/<hex>   layer indexes (written by the index code)
//   trees/<hex>          merged image tree of manifest <hex> (read whole, never mapped)
//   images/<key>.json    reference -> manifest digest + platform, one file each
//   rootfs/<hex>         extracted tree of manifest <hex> (+ .done, .lock)
//   tmp/                 downloads in progress (<hex>.partial, staged <hex>.index)
//                        and the per-blob download locks (<hex>.lock)
//   inuse/<hex>.lock     held (flock, shared) by each mount of manifest <hex>
//   units/<hex>/<start>  copies of decoded units of layer <hex> (unit_copy_store.h)
//   store.lock           the store lock
// Every publish is a temp file (UniqueTempSuffix) + fsync + rename, so no
// reader sees a half-written object. Processes and threads coordinate through
// flock(2): `store.lock` is held shared by everything that reads or writes
// store objects (pull, extract, a mount while it opens, fsck) and exclusive by
// gc and fsck --repair; a per-blob lock makes a blob download once. The whole
// protocol, and why it has no window for gc, is in src/store/STORE.md. Thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"
#include "src/common/file_io.h"  // the store's files are read and written with it

namespace lazyroot {

// An flock(2) held until destruction. Move-only.
class FileLock {
 public:
  FileLock() = default;
  explicit FileLock(int fd) : fd_(fd) {}
  ~FileLock();
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

struct ImageRecord {
  std::string reference;        // normalised, as Reference::ToString()
  std::string manifest_digest;  // the platform manifest
  std::string index_digest;     // the index it was chosen from, or ""
  std::string platform;         // "linux/amd64"
  std::string config_digest;
  std::vector<std::string> layer_digests;
  uint64_t size = 0;   // config + layers, compressed
  int64_t pulled_at = 0;  // unix seconds
};

struct GcReport {
  uint64_t blobs_removed = 0, indexes_removed = 0, partials_removed = 0, rootfs_removed = 0;
  uint64_t bytes_freed = 0;
  // What could not be removed and why (e.g. a cached extract with a file
  // system mounted inside it, which gc never enters).
  std::vector<std::string> not_removed;
};

// What gc keeps, decided from the live images (Store::LiveImages): one
// place for the rule, shared by gc and df.
struct LiveSet {
  std::set<std::string> objects;    // hex: manifests, indexes of manifests, configs, layers
  std::set<std::string> manifests;  // hex of each live image's manifest
  // blobs/sha256/<name> and index/sha256/<name> (a layer's index is named by the layer).
  bool KeepsObject(const std::string& name) const { return objects.count(name) != 0; }
  // trees/<name>.
  bool KeepsTree(const std::string& name) const { return manifests.count(name) != 0; }
  // rootfs/<name>: <hex>, <hex>.done and <hex>.lock of a live manifest; gc
  // removes every other entry (swapped-out extracts, dead extracts' temp dirs).
  bool KeepsRootfsEntry(const std::string& name) const;
};

class Store {
 public:
  // Opens (creating if needed) the store at root.
  static Result<std::unique_ptr<Store>> Open(const std::string& root);
  // $LAZYROOT_HOME, else $XDG_DATA_HOME/lazyroot, else ~/.local/share/lazyroot.
  static std::string DefaultRoot();

  const std::string& root() const { return root_; }
  // Paths of a validated digest ("sha256:<hex>"); the caller validated it.
  std::string BlobPath(std::string_view digest) const;
  std::string IndexPath(std::string_view digest) const;
  std::string PartialPath(std::string_view digest) const;
  // The merged tree of an image, keyed by its manifest digest.
  std::string TreePath(std::string_view manifest_digest) const;
  std::string TempDir() const { return root_ + "/tmp"; }

  bool HasBlob(std::string_view digest) const;
  // Reads a whole blob of at most cap bytes, verifying its digest.
  Result<std::string> ReadBlob(std::string_view digest, uint64_t cap) const;
  // Publishes bytes as a blob after checking they hash to digest. A stored
  // blob of that digest is kept if it holds these bytes, and replaced if not
  // (damaged on disk): the caller has the verified bytes in memory, so a
  // pull repairs its small blobs instead of keeping a copy fsck calls corrupt.
  // dir_sync kCaller: the rename is durable once the caller's SyncBlobDir
  // returns (a pull publishes all its blobs with one).
  Status WriteBlob(std::string_view digest, std::string_view bytes, DirSync dir_sync = DirSync::kNow);
  // Moves a fully written, verified partial download into blobs/ (fsync,
  // rename, fsync dir unless dir_sync is kCaller). OK if the blob is already
  // there. fsynced: the caller fsynced the partial since its last write (the
  // pull's download does, at its end): not again (on ext4 an fsync of a clean
  // file still flushes the disk's cache, ~6-10 ms on a busy disk).
  Status CommitPartial(std::string_view digest, DirSync dir_sync = DirSync::kNow, bool fsynced = false);
  // fsync of blobs/sha256: every rename into it so far, by anyone, is durable.
  Status SyncBlobDir();

  // Blocking exclusive lock for downloading one blob (tmp/<hex>.lock).
  // REQUIRES: the store lock, held shared.
  Result<FileLock> LockBlob(std::string_view digest);
  // The store-wide lock (store.lock): shared for everything that reads or
  // writes store objects, exclusive for gc and fsck --repair. Blocks; when
  // the lock is busy, on_wait (if set) is called once before waiting.
  Result<FileLock> LockStore(bool exclusive, const std::function<void()>& on_wait = nullptr);

  // Marks the image of manifest_digest as in use until the returned lock is
  // dropped or its process (and every child that inherited it) ends: gc and
  // fsck --repair keep every blob, index and tree of it and its rootfs/, even
  // after `rm` removed the record. The marker is locked on the file its path
  // names (re-checked after locking), never on one a sweep just unlinked.
  // REQUIRES: the store lock held shared from before the caller read the
  // record it opens until this returns; it may be released afterwards.
  Result<FileLock> HoldImageInUse(std::string_view manifest_digest);

  // The images gc must keep: every record, plus one per held in-use marker
  // (its manifest, config and layers, read from the stored manifest).
  // Removes markers nobody holds. kCorruption, naming the image, when an
  // in-use image's manifest cannot be read and no record names it: the
  // caller must then remove nothing.
  // REQUIRES: the store lock, held exclusively. With sweep false (df) no
  // marker is removed and the shared lock is enough: the answer is then a
  // snapshot (a mount locking its marker meanwhile is not in it).
  Result<std::vector<ImageRecord>> LiveImages(bool sweep = true);

  Status PutImage(const ImageRecord& record);
  // The file the record of reference is kept in: images/<sha256 of it>.json.
  std::string ImagePath(const std::string& reference) const;
  // Reads one record file (fsck reads them one by one, so a bad one does not
  // hide the others as in ListImages). kCorruption names the file.
  static Result<ImageRecord> ReadImageRecord(const std::string& path);
  Result<std::optional<ImageRecord>> GetImage(const std::string& reference) const;
  Result<std::vector<ImageRecord>> ListImages() const;
  // kNotFound when there is no such record.
  Status RemoveImage(const std::string& reference);

  // Takes the store lock exclusively (on_wait as for LockStore), then
  // removes blobs, indexes, merged trees and rootfs/ trees no live image
  // (LiveImages) needs, every temp file and partial download (no writer can
  // be running), and stale lock files.
  Result<GcReport> Gc(const std::function<void()>& on_wait = nullptr);

 private:
  explicit Store(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

LiveSet CollectLive(const std::vector<ImageRecord>& images);

// The names in dir (no . and ..), sorted; empty when it cannot be read.
std::vector<std::string> ListNames(const std::string& dir);

// Reads a cache file whose header records its own length (a layer index, a
// tree) without ever holding more than the header of one that is garbage: a
// file at least header_size long whose first bytes are `magic` and whose
// header says `version` is read only if declared(header) is its length; one
// with another magic is read only if it is small (64 KiB), so the caller can
// still say what it is. Other versions are read whole (up to cap) for the
// caller to tell an old format from damage. kCorruption naming the file
// otherwise: a zero-filled or sparse hole of gigabytes in the store costs a
// header read, not its size in memory.
Result<std::string> ReadSelfSizedFile(const std::string& path, uint64_t cap, std::string_view magic, uint32_t version,
                                      size_t header_size, uint64_t (*declared)(const uint8_t* header));

// Warms the page cache for a cold start: looks up every path of `look_up`
// and `read` first (directory and inode reads are small and must not queue
// behind big reads), then starts reading the files of `read` in the
// background (posix_fadvise WILLNEED). Of each layer index of
// `index_mount_ranges`, only what a mount reads (LayerIndex::MountRange:
// the header, then the checkpoint and chunk digest sections; the headers are
// asked for together and read here): not the entries and file digests, which
// are 4.5 MB of a 100k-file image's 5.4 MB index, and which queued ahead of
// the reads a mount waits for. An index whose header is not one of this
// version is asked for whole. Paths that do not open are skipped. With
// index_headers_only, only the headers (a mount that loads checkpoints at a
// layer's first read).
void PrefetchFiles(const std::vector<std::string>& read, const std::vector<std::string>& look_up,
                   const std::vector<std::string>& index_mount_ranges = {}, bool index_headers_only = false);

// The writer's pid in a temp name "<target>.tmp.<pid>[.<tid>.<n>]"
// (WriteFileAtomic, UniqueTempSuffix), or 0.
pid_t TempOwner(const std::string& name);
// Whether process pid exists (in this pid namespace).
bool ProcessAlive(pid_t pid);

}  // namespace lazyroot
