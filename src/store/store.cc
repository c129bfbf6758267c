#include "src/store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "fs/extract_writer.h"
#include "index/layer_index.h"
#include "index/sha256.h"
#include "src/image/json_document.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"
#include "src/store/test_pause.h"

namespace lazyroot {
namespace {

// An image record is a few hundred bytes plus 72 per layer.
constexpr uint64_t kMaxRecordBytes = uint64_t{1} << 20;

Status MakeDirs(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + cur, errno);
  }
  return Status::Ok();
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

std::vector<std::string> ListNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void PrefetchFiles(const std::vector<std::string>& read, const std::vector<std::string>& look_up,
                   const std::vector<std::string>& index_mount_ranges, bool index_headers_only) {
  struct stat st {};
  for (const std::string& path : look_up) (void)::stat(path.c_str(), &st);
  auto open_all = [](const std::vector<std::string>& paths) {
    std::vector<int> fds;
    for (const std::string& path : paths) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not hang us
      if (fd >= 0) fds.push_back(fd);
    }
    return fds;
  };
  std::vector<int> fds = open_all(read);
  const std::vector<int> indexes = open_all(index_mount_ranges);
  for (int fd : indexes) (void)::posix_fadvise(fd, 0, LayerIndex::kHeaderBytes, POSIX_FADV_WILLNEED);
  for (int fd : fds) {
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    ::close(fd);
  }
  for (int fd : indexes) {
    if (index_headers_only) {
      ::close(fd);
      continue;
    }
    uint8_t header[LayerIndex::kHeaderBytes];
    ssize_t n;
    do {
      n = ::pread(fd, header, sizeof header, 0);
    } while (n < 0 && errno == EINTR);
    std::optional<std::pair<uint64_t, uint64_t>> range;
    if (n == static_cast<ssize_t>(sizeof header) && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      range = LayerIndex::MountRange(header, static_cast<uint64_t>(st.st_size));
    }
    // Checked bounds: within the file (a hint anyway; the reader checks again).
    if (range) {
      (void)::posix_fadvise(fd, static_cast<off_t>(range->first), static_cast<off_t>(range->second - range->first),
                            POSIX_FADV_WILLNEED);
    } else {
      (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    }
    ::close(fd);
  }
}

Result<std::string> ReadSelfSizedFile(const std::string& path, uint64_t cap, std::string_view magic, uint32_t version,
                                      size_t header_size, uint64_t (*declared)(const uint8_t* header)) {
  constexpr uint64_t kSmall = 64 << 10;
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(path + " does not exist");
    return Status::FromErrno("open " + path, err);
  }
  struct stat st {};
  std::vector<uint8_t> header(header_size);
  ssize_t got = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) >= header_size) {
    do {
      got = ::pread(fd, header.data(), header_size, 0);
    } while (got < 0 && errno == EINTR);
  }
  ::close(fd);
  if (got == static_cast<ssize_t>(header_size)) {
    const auto size = static_cast<uint64_t>(st.st_size);
    uint32_t v = 0;  // little-endian, right after the magic (both formats)
    for (size_t i = 4; i-- > 0;) v = (v << 8) | header[magic.size() + i];
    if (std::memcmp(header.data(), magic.data(), magic.size()) != 0) {
      if (size > kSmall) {
        return Status::Corruption(path + ": not a file of this kind (" + std::to_string(size) +
                                  " bytes without its magic); not read");
      }
    } else if (v != version) {
      // Another format version: its parser names it from the header alone
      // (an older index is rebuilt), so nothing past it is read - of a
      // sparse file, up to `cap` bytes of memory and time for nothing.
      return std::string(reinterpret_cast<const char*>(header.data()), header.size());
    } else if (declared(header.data()) != size) {
      return Status::Corruption(path + ": its header describes " + std::to_string(declared(header.data())) +
                                " bytes, the file has " + std::to_string(size) + "; not read");
    }
  }
  return ReadWholeFile(path, cap);  // short, a FIFO, …: it says what is wrong
}

namespace {

// Opens (creating) and flocks path. A lock file that can be removed (blob
// locks, in-use markers) is removed only by a sweeper holding it exclusively
// (UnlinkIfUnlocked); so if the sweep came between our open and our flock,
// the path no longer names the inode we locked by the time we get it, and we
// start over on the file the path names now. Without this check the lock
// would live on an unlinked inode that no later sweep can see.
Result<FileLock> LockFile(const std::string& path, int op, const std::function<void()>* on_wait = nullptr,
                          std::string_view pause_point = {}) {
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno("open lock " + path, errno);
    if (!pause_point.empty()) TestPause(pause_point);
    bool waited = on_wait == nullptr || !*on_wait;
    for (int how = waited ? op : op | LOCK_NB; ::flock(fd, how) != 0;) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK && !waited) {
        (*on_wait)();
        waited = true;
        how = op;
        continue;
      }
      const int err = errno;
      ::close(fd);
      return Status::FromErrno("flock " + path, err);
    }
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      return FileLock(fd);
    }
    ::close(fd);
    // Each round lost means a sweep under the exclusive store lock ran in
    // between; that does not happen a hundred times to a caller holding the
    // store lock as documented.
    if (attempt == 100) return Status::IoError("lock " + path + ": removed again and again while locking it");
  }
}

// Removes the lock file at path if nobody holds it: true when it is gone.
// Unlinked while we hold it exclusively, which LockFile's check relies on.
// With remove false it only tells (df, under the shared lock, removes nothing).
bool UnlinkIfUnlocked(const std::string& path, bool remove = true) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not hang gc
  if (fd < 0) return errno == ENOENT;
  const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (free && remove) ::unlink(path.c_str());
  ::close(fd);
  return free;
}

std::string RecordToJson(const ImageRecord& r) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("reference"); w.String(r.reference.c_str());
  w.Key("manifest"); w.String(r.manifest_digest.c_str());
  w.Key("index"); w.String(r.index_digest.c_str());
  w.Key("platform"); w.String(r.platform.c_str());
  w.Key("config"); w.String(r.config_digest.c_str());
  w.Key("layers");
  w.StartArray();
  for (const auto& l : r.layer_digests) w.String(l.c_str());
  w.EndArray();
  w.Key("size"); w.Uint64(r.size);
  w.Key("pulled_at"); w.Int64(r.pulled_at);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

Result<ImageRecord> RecordFromJson(const std::string& text, const std::string& path) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument d, ParseJsonDocument(text, "image record " + path, kMaxRecordBytes));
  auto bad = [&] { return Status::Corruption("image record " + path + ": malformed"); };
  auto str = [&](const char* k, std::string* out) {
    if (!d.HasMember(k) || !d[k].IsString()) return false;
    *out = d[k].GetString();
    return true;
  };
  ImageRecord r;
  if (!str("reference", &r.reference) || !str("manifest", &r.manifest_digest) || !str("index", &r.index_digest) ||
      !str("platform", &r.platform) || !str("config", &r.config_digest)) {
    return bad();
  }
  if (!ValidateDigest(r.manifest_digest).ok() || !ValidateDigest(r.config_digest).ok()) return bad();
  if (!d.HasMember("layers") || !d["layers"].IsArray()) return bad();
  for (const auto& l : d["layers"].GetArray()) {
    if (!l.IsString() || !ValidateDigest(l.GetString()).ok()) return bad();
    r.layer_digests.emplace_back(l.GetString());
  }
  if (d.HasMember("size") && d["size"].IsUint64()) r.size = d["size"].GetUint64();
  if (d.HasMember("pulled_at") && d["pulled_at"].IsInt64()) r.pulled_at = d["pulled_at"].GetInt64();
  return r;
}

}  // namespace

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

pid_t TempOwner(const std::string& name) {
  size_t at = name.find(".tmp.");
  if (at == std::string::npos) return 0;
  const char* p = name.c_str() + at + 5;
  char* end = nullptr;
  long pid = std::strtol(p, &end, 10);
  return end != p && pid > 0 ? static_cast<pid_t>(pid) : 0;
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

std::string Store::DefaultRoot() {
  if (const char* h = std::getenv("LAZYROOT_HOME"); h != nullptr && *h != '\0') return h;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') return std::string(x) + "/lazyroot";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") + "/.local/share/lazyroot";
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& root) {
  if (root.empty()) return Status::InvalidArgument("store root is empty");
  for (const char* sub : {"/blobs/sha256", "/index/sha256", "/trees", "/images", "/tmp", "/rootfs", "/inuse"}) {
    Status st = MakeDirs(root + sub);
    if (!st.ok()) return st.WithContext("store " + root);
    // mkdir's EEXIST is also a file of that name: said here, naming it, for
    // every command (fsck included) rather than as ENOTDIR from some later
    // open, after fsck found "nothing wrong". A symlink to a directory is fine.
    struct stat st_sub {};
    if (::stat((root + sub).c_str(), &st_sub) != 0 || !S_ISDIR(st_sub.st_mode)) {
      return Status::Corruption("store " + root + ": " + std::string(sub + 1) +
                                " is not a directory; move it away (the store recreates it)");
    }
  }
  return std::unique_ptr<Store>(new Store(root));
}

std::string Store::BlobPath(std::string_view digest) const {
  return root_ + "/blobs/sha256/" + std::string(digest.substr(7));
}
std::string Store::IndexPath(std::string_view digest) const {
  return root_ + "/index/sha256/" + std::string(digest.substr(7));
}
std::string Store::PartialPath(std::string_view digest) const {
  return root_ + "/tmp/" + std::string(digest.substr(7)) + ".partial";
}
std::string Store::TreePath(std::string_view digest) const {
  return root_ + "/trees/" + std::string(digest.substr(7));
}
std::string Store::ImagePath(const std::string& reference) const {
  return root_ + "/images/" + Sha256::HexOf(std::string_view(reference)) + ".json";
}

bool Store::HasBlob(std::string_view digest) const { return ::access(BlobPath(digest).c_str(), F_OK) == 0; }

Result<std::string> Store::ReadBlob(std::string_view digest, uint64_t cap) const {
  LAZYROOT_RETURN_IF_ERROR(ValidateDigest(digest));
  auto bytes = ReadWholeFile(BlobPath(digest), cap);
  if (!bytes.ok()) return bytes.status().WithContext("blob " + std::string(digest));
  if ("sha256:" + Sha256::HexOf(std::string_view(*bytes)) != digest) {
    return Status::Corruption("blob " + std::string(digest) + ": stored bytes do not match the digest (run gc and pull again)");
  }
  return bytes;
}

Status Store::WriteBlob(std::string_view digest, std::string_view bytes, DirSync dir_sync) {
  LAZYROOT_RETURN_IF_ERROR(ValidateDigest(digest));
  if ("sha256:" + Sha256::HexOf(bytes) != digest) {
    return Status::Corruption("blob " + std::string(digest) + ": content does not match the digest");
  }
  if (HasBlob(digest)) {
    // One byte past the expected size tells a longer file from an equal one.
    auto stored = ReadWholeFile(BlobPath(digest), bytes.size() + 1);
    if (stored.ok() && *stored == bytes) return Status::Ok();
  }
  return WriteFileAtomic(BlobPath(digest), bytes, 0644, dir_sync);
}

Status Store::SyncBlobDir() { return FsyncDir(root_ + "/blobs/sha256"); }

Status Store::CommitPartial(std::string_view digest, DirSync dir_sync, bool fsynced) {
  if (HasBlob(digest)) return Status::Ok();
  std::string partial = PartialPath(digest);
  // Not followed: a symlink (or any other file) put in place of the staged
  // download would be renamed into blobs/ as it is, and the image named
  // corrupt by fsck after a pull that said it succeeded.
  int fd = ::open(partial.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ELOOP) {
    return Status::Corruption("blob " + std::string(digest) + ": " + partial +
                              " is a symlink, not a staged download; remove it (or run lazyroot gc)");
  }
  if (fd < 0) return Status::FromErrno("blob " + std::string(digest) + ": open " + partial, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Corruption("blob " + std::string(digest) + ": " + partial +
                              " is not a regular file; remove it (or run lazyroot gc)");
  }
  // The download fsynced it already (fsynced): another fsync of a clean file
  // would still flush the disk cache.
  int rc = fsynced ? 0 : ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno("fsync " + partial, err);
  if (::rename(partial.c_str(), BlobPath(digest).c_str()) != 0) {
    return Status::FromErrno("blob " + std::string(digest) + ": rename into store", errno);
  }
  return dir_sync == DirSync::kNow ? SyncBlobDir() : Status::Ok();
}

Result<FileLock> Store::LockBlob(std::string_view digest) {
  return LockFile(root_ + "/tmp/" + std::string(digest.substr(7)) + ".lock", LOCK_EX);
}

Result<FileLock> Store::LockStore(bool exclusive, const std::function<void()>& on_wait) {
  return LockFile(root_ + "/store.lock", exclusive ? LOCK_EX : LOCK_SH, &on_wait);
}

Result<FileLock> Store::HoldImageInUse(std::string_view manifest_digest) {
  return LockFile(root_ + "/inuse/" + std::string(manifest_digest.substr(7)) + ".lock", LOCK_SH, nullptr,
                  "inuse-opened");
}

Status Store::PutImage(const ImageRecord& record) { return WriteFileAtomic(ImagePath(record.reference), RecordToJson(record)); }

Result<ImageRecord> Store::ReadImageRecord(const std::string& path) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path, kMaxRecordBytes));
  return RecordFromJson(text, path);
}

Result<std::optional<ImageRecord>> Store::GetImage(const std::string& reference) const {
  std::string path = ImagePath(reference);
  auto text = ReadWholeFile(path, kMaxRecordBytes);
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound) return std::optional<ImageRecord>();
    return text.status();
  }
  LAZYROOT_ASSIGN_OR_RETURN(ImageRecord r, RecordFromJson(*text, path));
  return std::optional<ImageRecord>(std::move(r));
}

Result<std::vector<ImageRecord>> Store::ListImages() const {
  std::vector<ImageRecord> out;
  for (const std::string& name : ListNames(root_ + "/images")) {
    if (!name.ends_with(".json")) continue;
    std::string path = root_ + "/images/" + name;
    auto text = ReadWholeFile(path, kMaxRecordBytes);
    if (!text.ok()) {
      if (text.status().code() == ErrorCode::kNotFound) continue;  // removed meanwhile
      return text.status();
    }
    LAZYROOT_ASSIGN_OR_RETURN(ImageRecord r, RecordFromJson(*text, path));
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const ImageRecord& a, const ImageRecord& b) { return a.reference < b.reference; });
  return out;
}

Status Store::RemoveImage(const std::string& reference) {
  std::string path = ImagePath(reference);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Status::NotFound("image " + reference + ": not in the store");
    return Status::FromErrno("remove " + path, errno);
  }
  return FsyncDir(root_ + "/images");
}

Result<std::vector<ImageRecord>> Store::LiveImages(bool sweep) {
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<ImageRecord> images, ListImages());
  std::set<std::string> recorded;
  for (const ImageRecord& r : images) recorded.insert(r.manifest_digest);
  // Images a mount is serving stay, record or not: their manifest names the
  // rest. A marker nobody holds any more is stale. No marker is being
  // created meanwhile: that happens under the shared store lock only.
  for (const std::string& name : ListNames(root_ + "/inuse")) {
    const std::string path = root_ + "/inuse/" + name;
    if (UnlinkIfUnlocked(path, sweep)) continue;
    const std::string hex = name.substr(0, name.find('.'));
    if (!IsSha256Hex(hex) || recorded.count("sha256:" + hex) != 0) continue;
    ImageRecord mounted;
    mounted.manifest_digest = "sha256:" + hex;
    auto bytes = ReadBlob(mounted.manifest_digest, kMaxManifestBytes);
    Result<ImageManifest> manifest = bytes.ok() ? ParseImageManifest(*bytes) : Result<ImageManifest>(bytes.status());
    if (!manifest.ok()) {
      return Status::Corruption("in-use image " + mounted.manifest_digest + " (" + path + " is held): " +
                                manifest.status().message() +
                                "; cannot tell what it needs, so nothing is removed (unmount it, or run lazyroot fsck)");
    }
    mounted.config_digest = manifest->config.digest;
    for (const Layer& l : manifest->layers) mounted.layer_digests.push_back(l.descriptor.digest);
    images.push_back(std::move(mounted));
  }
  return images;
}

LiveSet CollectLive(const std::vector<ImageRecord>& images) {
  LiveSet live;
  for (const ImageRecord& r : images) {
    for (const std::string* d : {&r.manifest_digest, &r.index_digest, &r.config_digest}) {
      if (!d->empty()) live.objects.insert(d->substr(7));
    }
    for (const std::string& l : r.layer_digests) live.objects.insert(l.substr(7));
    live.manifests.insert(r.manifest_digest.substr(7));
  }
  return live;
}

bool LiveSet::KeepsRootfsEntry(const std::string& name) const {
  const std::string hex = name.substr(0, name.find('.'));
  const std::string rest = name.substr(hex.size());
  return manifests.count(hex) != 0 && (rest.empty() || rest == ".done" || rest == ".lock");
}

Result<GcReport> Store::Gc(const std::function<void()>& on_wait) {
  LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, LockStore(true, on_wait));
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<ImageRecord> images, LiveImages());
  TestPause("gc-collecting");  // the live set is decided, nothing removed yet
  const LiveSet keep = CollectLive(images);
  GcReport report;
  for (const std::string& name : ListNames(root_ + "/trees")) {
    if (!keep.KeepsTree(name)) {
      std::string path = root_ + "/trees/" + name;
      uint64_t size = FileSize(path);
      if (::unlink(path.c_str()) == 0) report.bytes_freed += size;
    }
  }
  // Extracted trees (rootfs/<hex> with <hex>.done / .lock) of images that
  // are not live any more, and for every image what else is there: trees
  // an extract replaced (<hex>.stale-*, kept so a VM still running on one
  // was not disturbed) and temp dirs of extracts that were killed (no
  // extract runs: it holds the store lock shared). Every .done marker goes
  // before any tree, so a gc killed midway never leaves a marker whose tree
  // is half removed.
  std::vector<std::string> rootfs_names = ListNames(root_ + "/rootfs");
  std::stable_partition(rootfs_names.begin(), rootfs_names.end(),
                        [](const std::string& n) { return n.ends_with(".done"); });
  for (const std::string& name : rootfs_names) {
    if (keep.KeepsRootfsEntry(name)) continue;
    std::string path = root_ + "/rootfs/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      Status removed = RemoveTree(path);
      if (removed.ok()) {
        report.rootfs_removed++;
      } else {
        report.not_removed.push_back(removed.message());
      }
    } else if (name.ends_with(".lock")) {
      UnlinkIfUnlocked(path);
    } else {
      ::unlink(path.c_str());
    }
  }
  // Records being written when their writer died.
  for (const std::string& name : ListNames(root_ + "/images")) {
    if (name.find(".tmp.") != std::string::npos) ::unlink((root_ + "/images/" + name).c_str());
  }
  for (const char* kind : {"blobs", "index"}) {
    std::string dir = root_ + "/" + kind + "/sha256";
    for (const std::string& name : ListNames(dir)) {
      if (keep.KeepsObject(name)) continue;
      std::string path = dir + "/" + name;
      uint64_t size = FileSize(path);
      if (::unlink(path.c_str()) == 0) {
        report.bytes_freed += size;
        // A temp file (a writer died) is not an object.
        if (name.find(".tmp.") == std::string::npos) (kind[0] == 'b' ? report.blobs_removed : report.indexes_removed)++;
      }
    }
  }
  // Unit copies (unit_copy_store.h) go with their layer. Those of kept
  // layers stay, and so do temp files a live writer owns: serving mounts
  // write them without the store lock. A dead writer's (a mount killed
  // mid-write) are removed: nothing else would, and they count against the
  // layer's copy budget. A units/<hex> that is not a directory (a symlink
  // may point out of the store) is removed as a file, never looked into.
  for (const std::string& name : ListNames(root_ + "/units")) {
    const std::string path = root_ + "/units/" + name;
    struct stat st {};
    const bool dir = ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (keep.KeepsObject(name) && dir) {
      for (const std::string& f : ListNames(path)) {
        const pid_t owner = TempOwner(f);
        if (owner == 0 || ProcessAlive(owner)) continue;
        const uint64_t size = FileSize(path + "/" + f);
        if (::unlink((path + "/" + f).c_str()) == 0) report.bytes_freed += size;
      }
      continue;
    }
    if (dir) {
      for (const std::string& f : ListNames(path)) report.bytes_freed += FileSize(path + "/" + f);
    }
    (void)RemoveTree(path);
  }
  // Everything in tmp/ belongs to a pull, and pulls are excluded by the
  // store lock: partial downloads, staged indexes and temp files are
  // abandoned (a later pull downloads again), blob locks unused.
  std::string tmp = root_ + "/tmp";
  for (const std::string& name : ListNames(tmp)) {
    std::string path = tmp + "/" + name;
    if (name.ends_with(".lock")) {
      UnlinkIfUnlocked(path);
    } else if (name.ends_with(".partial") || name.ends_with(".index") || name.find(".tmp.") != std::string::npos) {
      uint64_t size = FileSize(path);
      if (::unlink(path.c_str()) == 0 && name.ends_with(".partial")) {
        report.bytes_freed += size;
        report.partials_removed++;
      }
    }
  }
  return report;
}

}  // namespace lazyroot
