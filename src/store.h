// Store: lazyroot's on-disk state under one root directory.
//   blobs/sha256/<hex>   verified content (layers, configs, manifests)
//   index/sha256/<hex>   layer indexes (written by the index code)
//   trees/<hex>          merged image tree of manifest <hex> (mmap-able)
//   images/<key>.json    reference -> manifest digest + platform, one file each
//   tmp/                 downloads in progress (<hex>.partial) and their locks
//   inuse/<hex>.lock     held (flock, shared) by each mount of manifest <hex>
// Every publish is temp file + fsync + rename. Processes coordinate through
// flock(2): a per-blob lock so a blob is downloaded once, and a store lock
// that pulls hold shared and gc holds exclusive. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

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
  // Publishes bytes as a blob after checking they hash to digest.
  Status WriteBlob(std::string_view digest, std::string_view bytes);
  // Moves a fully written, verified partial download into blobs/ (fsync,
  // rename, fsync dir). OK if the blob is already there.
  Status CommitPartial(std::string_view digest);

  // Blocking exclusive lock for downloading one blob.
  Result<FileLock> LockBlob(std::string_view digest);
  // The store-wide lock: shared for pulls, exclusive for gc.
  Result<FileLock> LockStore(bool exclusive);

  // Marks the image of manifest_digest as in use (by a mount) until the
  // returned lock is dropped or its process ends: gc keeps every blob, index
  // and tree of it, even after `rm` removed the record.
  Result<FileLock> HoldImageInUse(std::string_view manifest_digest);

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

  // Removes blobs, indexes, merged trees and extracted rootfs/ trees no image
  // record references, and partial downloads nobody is working on. Takes the
  // store lock exclusively.
  Result<GcReport> Gc();

 private:
  explicit Store(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// Reads a whole file of at most cap bytes (kNotFound when absent,
// kCorruption when larger than cap).
Result<std::string> ReadWholeFile(const std::string& path, uint64_t cap);

// Warms the page cache for a cold start: looks up every path of `look_up`
// and `read` first (directory and inode reads are small and must not queue
// behind big reads), then starts reading the files of `read` in the
// background (posix_fadvise WILLNEED). Paths that do not open are skipped.
void PrefetchFiles(const std::vector<std::string>& read, const std::vector<std::string>& look_up);

// Writes bytes to path atomically: a temp file beside it, fsync, rename,
// fsync of the directory.
Status WriteFileAtomic(const std::string& path, std::string_view bytes);

}  // namespace lazyroot
