// Eager extraction of a merged image tree.
//
// Shape. The tree is walked, never the layers, so a file that later layers
// replaced or whited out costs nothing, and each surviving node is written
// once. Work goes into a temp dir beside the target (mkdtemp, 0700 while we
// write, so no half-written setuid binary is reachable by others) and is
// renamed into place at the end; any failure removes the temp dir.
//
//  1. Skeleton, one thread, directories in node order. Node ids are
//     breadth-first, so a directory's id is below its children's and one
//     pass in id order meets every parent first. Each directory is opened
//     once beneath the root (openat2 RESOLVE_BENEATH|NO_SYMLINKS); its
//     children are created relative to that fd: subdirectories (0700 for
//     now), symlinks (target verbatim), devices and fifos, empty files, and
//     second names of symlinks/devices (linkat). Regular files with data
//     are queued.
//  2. File data, in parallel. Queued files are grouped by the layer holding
//     their bytes and sorted by data_offset, so a worker's RandomReader reads
//     its layer front to back and never re-primes its decoder (zlib/zstd
//     stay warm; layer_decoder.h). Layers go to up to `threads` workers, the
//     largest first; when there are fewer layers than threads, a layer with
//     several checkpoints is cut into pieces of at least min_split_bytes
//     (each piece re-primes once). A single-frame zstd layer has one
//     checkpoint and is never cut: a second reader would decode it from the
//     start again. Sparse files: ftruncate to size, pwrite only the data
//     extents, so holes stay holes. Zero runs: an aligned 4 KiB block of
//     zeros in the data is skipped (lseek-free: pwrite at offsets past it)
//     and the file is ftruncated to its size at the end, as
//     `cp --sparse=always` does, so a layer of a few MB holding gigabytes of
//     zeros costs no disk. Finding them is one memcmp against a zero block
//     per 4 KiB, which stops at the first non-zero byte of real data.
//  3. Second names of regular files (linkat), after their first name holds
//     its data.
//  4. Directory metadata, deepest first (reverse id order), the root last:
//     a directory's mtime is set after everything inside it was created.
//
// Disk budget (ExtractOptions::max_bytes). Before anything is created, the
// tree's file data (sparse holes excluded) must fit the bound: the explicit
// one, or the free space of the target's file system less a margin. While
// writing, every pwrite is counted first, so the bytes actually written
// never pass the bound either (zero runs left as holes are not counted).
//
// Metadata order for one entry: data, then chown (it clears setuid/setgid
// and security.capability), then xattrs, then chmod (a non-root caller needs
// write permission to set user.* xattrs, which a 0555 or 0000 mode takes
// away; chmod clears neither setuid nor capabilities), then times (writes
// would move mtime). Directories' modes wait for step 4, so a 0555 directory is
// still writable while its children are created.
//
// Xattrs: set verbatim, security.capability included, except what
// fs/xattr_policy.h drops (security.selinux). EPERM and ENOTSUP are warnings, not
// errors: rootless processes cannot set security.* / trusted.*, some file
// systems take no user.* xattrs, and Linux refuses user.* on symlinks.
//
// Rootless (euid != 0, or options.rootless): everything is owned by the
// caller, so the on-disk modes lose setuid, setgid, sticky and group/other
// write (kRootlessModeMask): a setuid file we own would run image code as
// us for any local user, and a world-writable one would let anyone change
// the tree. The image's own mode, unmasked, is what override_stat holds.
// Each entry except symlinks and fifos (Linux takes user.* xattrs on regular
// files and directories only; the fifo keeps its masked mode) gets
// user.containers.override_stat = "uid:gid:0<st_mode>" with the image's
// values, which libkrun / crun / fuse-overlayfs present to the guest.
// Character and block devices become empty regular files with mode 0000, as
// umoci --rootless does, whose override_stat carries the device type (the
// device numbers are lost: a warning each). Fifos need no privilege and are
// created as fifos.
//
// Security. Every path given to the kernel is relative to a directory fd we
// opened with RESOLVE_NO_SYMLINKS (or an O_NOFOLLOW component walk), and the
// last component of every create is O_EXCL/O_NOFOLLOW or a *at call that
// does not follow; chown/utimes use AT_SYMLINK_NOFOLLOW and symlinks are
// never chmod'ed. The merge already resolved the image's symlinks in-root
// (merge.cc), so the tree has no child below a symlink; the fd discipline
// is what makes that hold on disk too, even against a concurrent writer.
#include "fs/extract.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>

#include "index/exception_status.h"
#include "fs/extract_writer.h"
#include "fs/xattr_policy.h"

namespace lazyroot {

std::string OverrideStatValue(uint32_t uid, uint32_t gid, uint32_t st_mode) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%u:%u:0%o", uid, gid, st_mode);
  return buf;
}

namespace {

constexpr size_t kChunkBytes = 1 << 20;
// Zero runs of at least one such aligned block become holes (the usual file
// system block; smaller holes would be allocated anyway).
constexpr size_t kHoleBlock = 4096;
constexpr size_t kMaxWarningSamples = 10;
constexpr uint32_t kNoDir = UINT32_MAX;

// A regular file whose first name is child `name` of directory `dir`.
struct FileJob {
  NodeId node = 0;
  NodeId dir = 0;
  std::string_view name;
  uint32_t layer = 0;
  uint64_t data_offset = 0;
  uint64_t bytes = 0;  // stored bytes to read
};

// A second (third, …) name of a regular file.
struct LinkJob {
  NodeId node = 0;
  NodeId dir = 0;
  std::string_view name;
};

// One contiguous run of one layer's sorted jobs, for one worker.
struct Piece {
  uint32_t layer = 0;
  size_t begin = 0, end = 0;
  uint64_t bytes = 0;
};

struct Location {
  NodeId dir = kNoDir;
  std::string_view name;
};

void FillTimes(const Node& n, struct timespec ts[2]) {
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(n.mtime_sec);
  ts[0].tv_nsec = ts[1].tv_nsec = static_cast<long>(n.mtime_nsec);
}

bool IsZeroBlock(const uint8_t* p) {
  static const uint8_t kZeros[kHoleBlock] = {};
  return std::memcmp(p, kZeros, kHoleBlock) == 0;
}

std::string HumanSize(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return buf;
}

// The bytes of file data the tree asks us to write: every inode once
// (hardlinks share a node), sparse holes excluded.
uint64_t TreeDataBytes(const ImageTree& tree) {
  uint64_t total = 0;
  for (NodeId id = 0; id < tree.node_count(); ++id) {
    const Node n = tree.GetNode(id);
    if (n.type != NodeType::kRegular) continue;
    const uint64_t bytes = n.sparse_count == 0 ? n.size : std::min(n.stored_size, n.size);
    total = bytes > UINT64_MAX - total ? UINT64_MAX : total + bytes;
  }
  return total;
}

Status WriteAll(int fd, const uint8_t* p, size_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + what, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

class Extractor {
 public:
  // `limit` bounds the file data bytes written; `limit_what` says where it
  // comes from, for the error.
  Extractor(const ImageTree& tree, const ImageContent& content, const ExtractOptions& options, int root_fd,
            uint64_t limit, std::string limit_what)
      : tree_(tree), content_(content), options_(options), root_fd_(root_fd), limit_(limit),
        limit_what_(std::move(limit_what)) {
    report_.rootless = options.rootless || ::geteuid() != 0;
    euid_ = ::geteuid();
    egid_ = ::getegid();
  }

  Status Run() {
    dir_path_.resize(tree_.node_count());
    first_.resize(tree_.node_count());
    // mkdtemp under a setgid parent gives a setgid root of the parent's
    // group; reset it so what we create is ours (NeedsChown relies on it).
    if (::fchmod(root_fd_, 0700) != 0) return Status::FromErrno("chmod extraction root", errno);
    struct stat st {};
    if (::fstat(root_fd_, &st) != 0) return Status::FromErrno("stat extraction root", errno);
    if (st.st_gid != egid_ && ::fchown(root_fd_, static_cast<uid_t>(-1), egid_) != 0) {
      return Status::FromErrno("chown extraction root", errno);
    }
    LAZYROOT_RETURN_IF_ERROR(CreateSkeleton());
    LAZYROOT_RETURN_IF_ERROR(WriteFiles());
    LAZYROOT_RETURN_IF_ERROR(LinkFiles());
    LAZYROOT_RETURN_IF_ERROR(FinishDirectories());
    report_.bytes = bytes_.load();
    report_.zero_bytes = zero_bytes_.load();
    report_.warnings = warnings_.load();
    return Status::Ok();
  }

  ExtractReport TakeReport() { return std::move(report_); }

 private:
  // kAborted once options_.interrupted holds a signal number.
  Status CheckInterrupt() const {
    const int sig = options_.interrupted ? options_.interrupted->load(std::memory_order_relaxed) : 0;
    if (sig == 0) return Status::Ok();
    // A signal number (the CLI's) is named; any other value is a caller's cancel.
    const char* name = sig > 0 ? ::sigabbrev_np(sig) : nullptr;
    if (name == nullptr) return Status::Aborted("cancelled");
    return Status::Aborted(std::string("interrupted by SIG") + name);
  }

  bool rootless() const { return report_.rootless; }

  // The permission bits an entry gets on disk.
  uint32_t DiskMode(const Node& n) const { return n.mode & (rootless() ? kRootlessModeMask : 07777); }

  std::string PathOf(NodeId dir, std::string_view name) const {
    const std::string& d = dir_path_[dir];
    if (d.empty()) return std::string(name);
    std::string p = d;
    p += '/';
    p += name;
    return p;
  }

  void Warn(std::string message) {
    warnings_.fetch_add(1);
    std::lock_guard<std::mutex> lock(warn_mu_);
    if (report_.warning_samples.size() < kMaxWarningSamples) report_.warning_samples.push_back(std::move(message));
  }

  Result<Fd> OpenDir(NodeId dir) const {
    return OpenBeneath(root_fd_, dir_path_[dir], O_RDONLY | O_DIRECTORY);
  }

  // The image's xattrs, then (rootless) the override record. `fd` >= 0 sets
  // through it; otherwise through (dir_fd, name) without following.
  Status ApplyXattrs(int fd, int dir_fd, const std::string& name, NodeId id, const Node& n,
                     const std::string& path) {
    auto set = [&](const std::string& key, std::string_view value) -> Status {
      int err = 0;
      if (fd >= 0) {
        if (::fsetxattr(fd, key.c_str(), value.data(), value.size(), 0) != 0) err = errno;
      } else {
        err = SetXattrAt(dir_fd, name, key, value);
      }
      if (err == 0) return Status::Ok();
      if (err == EPERM || err == ENOTSUP) {
        Warn(path + ": xattr " + key + " not set: " + std::strerror(err));
        return Status::Ok();
      }
      return Status::FromErrno(path + ": set xattr " + key, err);
    };
    for (uint32_t k = 0; k < n.xattr_count; ++k) {
      Xattr x = tree_.XattrAt(id, k);
      if (!RootfsKeepsXattr(x.name)) continue;
      if (rootless() && x.name == kOverrideStatXattr) continue;  // ours wins, below
      LAZYROOT_RETURN_IF_ERROR(set(std::string(x.name), x.value));
    }
    if (rootless() && n.type != NodeType::kSymlink) {
      LAZYROOT_RETURN_IF_ERROR(set(kOverrideStatXattr, OverrideStatValue(n.uid, n.gid, n.StMode())));
    }
    return Status::Ok();
  }

  // Entries we create belong to euid:egid already (no directory is setgid
  // while we write), so chown is needed only for other owners: one syscall
  // less per file for the common all-root image.
  bool NeedsChown(const Node& n) const { return !rootless() && (n.uid != euid_ || n.gid != egid_); }

  // Ownership, mode, xattrs, times of an entry we hold open (files, dirs).
  Status ApplyMetaFd(int fd, NodeId id, const Node& n, const std::string& path) {
    if (NeedsChown(n) && ::fchown(fd, n.uid, n.gid) != 0) return Status::FromErrno(path + ": chown", errno);
    LAZYROOT_RETURN_IF_ERROR(ApplyXattrs(fd, -1, {}, id, n, path));
    if (::fchmod(fd, DiskMode(n)) != 0) return Status::FromErrno(path + ": chmod", errno);
    struct timespec ts[2];
    FillTimes(n, ts);
    if (::futimens(fd, ts) != 0) return Status::FromErrno(path + ": set times", errno);
    return Status::Ok();
  }

  // The same for an entry reached by name: symlinks, devices, fifos.
  Status ApplyMetaAt(int dir_fd, const std::string& name, NodeId id, const Node& n, const std::string& path,
                     uint32_t mode) {
    if (NeedsChown(n) && ::fchownat(dir_fd, name.c_str(), n.uid, n.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(path + ": chown", errno);
    }
    LAZYROOT_RETURN_IF_ERROR(ApplyXattrs(-1, dir_fd, name, id, n, path));
    if (n.type != NodeType::kSymlink && ::fchmodat(dir_fd, name.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(path + ": chmod", errno);
    }
    struct timespec ts[2];
    FillTimes(n, ts);
    if (::utimensat(dir_fd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(path + ": set times", errno);
    }
    return Status::Ok();
  }

  Status CreateSkeleton() {
    const uint32_t count = tree_.node_count();
    if (count == 0 || !tree_.GetNode(ImageTree::kRoot).IsDir()) {
      return Status::Corruption(tree_.name() + ": root is not a directory");
    }
    for (NodeId d = 0; d < count; ++d) {
      if (!tree_.IsDir(d)) continue;
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      if (d != ImageTree::kRoot && first_[d].dir == kNoDir) {
        return Status::Corruption(tree_.name() + ": directory node " + std::to_string(d) + " has no name");
      }
      LAZYROOT_ASSIGN_OR_RETURN(Fd dfd, OpenDir(d));
      ++report_.dirs;
      const uint32_t children = tree_.ChildCount(d);
      for (uint32_t i = 0; i < children; ++i) {
        DirEntry e = tree_.ChildAt(d, i);
        LAZYROOT_RETURN_IF_ERROR(CreateChild(d, dfd.get(), e));
      }
    }
    return Status::Ok();
  }

  Status CreateChild(NodeId d, int dfd, const DirEntry& e) {
    const Node n = tree_.GetNode(e.node);
    const std::string name(e.name);
    const std::string path = PathOf(d, e.name);
    if (first_[e.node].dir != kNoDir) {
      if (n.IsDir() || e.node == ImageTree::kRoot) {
        return Status::Corruption(tree_.name() + ": directory " + path + " has a second name");
      }
      ++report_.hardlinks;
      if (n.type == NodeType::kRegular) {
        link_jobs_.push_back({e.node, d, e.name});
        return Status::Ok();
      }
      return Link(e.node, dfd, name, path);
    }
    first_[e.node] = {d, e.name};
    switch (n.type) {
      case NodeType::kDirectory:
        if (::mkdirat(dfd, name.c_str(), 0700) != 0) return Status::FromErrno("mkdir " + path, errno);
        dir_path_[e.node] = path;
        return Status::Ok();
      case NodeType::kSymlink: {
        std::string target(n.symlink_target);
        if (::symlinkat(target.c_str(), dfd, name.c_str()) != 0) return Status::FromErrno("symlink " + path, errno);
        ++report_.symlinks;
        return ApplyMetaAt(dfd, name, e.node, n, path, 0);
      }
      case NodeType::kCharDevice:
      case NodeType::kBlockDevice:
      case NodeType::kFifo:
        ++report_.devices;
        return CreateSpecial(dfd, name, e.node, n, path);
      case NodeType::kRegular:
        ++report_.files;
        if (n.size == 0 || n.stored_size == 0) {
          // Nothing to read: an empty file, or a sparse file that is all hole.
          Fd fd(::openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
          if (!fd.valid()) return Status::FromErrno("create " + path, errno);
          if (n.size > 0 && ::ftruncate(fd.get(), static_cast<off_t>(n.size)) != 0) {
            return Status::FromErrno("truncate " + path, errno);
          }
          return ApplyMetaFd(fd.get(), e.node, n, path);
        }
        if (n.layer >= content_.layer_count()) {
          return Status::Corruption(tree_.name() + ": " + path + ": layer " + std::to_string(n.layer) +
                                    " of " + std::to_string(content_.layer_count()));
        }
        file_jobs_.push_back({e.node, d, e.name, n.layer, n.data_offset, n.stored_size});
        return Status::Ok();
    }
    return Status::Corruption(tree_.name() + ": " + path + ": unknown node type");
  }

  Status CreateSpecial(int dfd, const std::string& name, NodeId id, const Node& n, const std::string& path) {
    const bool device = n.type != NodeType::kFifo;
    if (device && rootless()) {
      // umoci --rootless: an empty regular file, mode 0000 once its xattrs are
      // set (user.* needs write permission on the inode), holds the place;
      // override_stat (set by ApplyXattrs from n) still says "device".
      Fd fd(::openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd.valid()) return Status::FromErrno("create " + path, errno);
      Warn(path + ": device " + std::to_string(n.rdev_major) + ":" + std::to_string(n.rdev_minor) +
           " written as an empty placeholder (rootless)");
      LAZYROOT_RETURN_IF_ERROR(ApplyXattrs(fd.get(), -1, {}, id, n, path));
      if (::fchmod(fd.get(), 0) != 0) return Status::FromErrno(path + ": chmod", errno);
      struct timespec ts[2];
      FillTimes(n, ts);
      if (::futimens(fd.get(), ts) != 0) return Status::FromErrno(path + ": set times", errno);
      return Status::Ok();
    }
    mode_t type = n.type == NodeType::kCharDevice ? S_IFCHR : n.type == NodeType::kBlockDevice ? S_IFBLK : S_IFIFO;
    dev_t dev = device ? makedev(n.rdev_major, n.rdev_minor) : 0;
    if (::mknodat(dfd, name.c_str(), type | 0600, dev) != 0) return Status::FromErrno("mknod " + path, errno);
    return ApplyMetaAt(dfd, name, id, n, path, DiskMode(n));
  }

  // A second name for a symlink, device or fifo, linked to its first name.
  Status Link(NodeId id, int dfd, const std::string& name, const std::string& path) {
    const Location& first = first_[id];
    LAZYROOT_ASSIGN_OR_RETURN(Fd src, OpenDir(first.dir));
    std::string src_name(first.name);
    if (::linkat(src.get(), src_name.c_str(), dfd, name.c_str(), 0) != 0) {
      return Status::FromErrno("link " + path + " to " + PathOf(first.dir, first.name), errno);
    }
    return Status::Ok();
  }

  std::vector<Piece> PlanPieces(unsigned threads) {
    // Group by layer, each group in stream order.
    std::stable_sort(file_jobs_.begin(), file_jobs_.end(), [](const FileJob& a, const FileJob& b) {
      return a.layer != b.layer ? a.layer < b.layer : a.data_offset < b.data_offset;
    });
    std::vector<Piece> layers;
    uint64_t total = 0;
    for (size_t i = 0; i < file_jobs_.size();) {
      const uint32_t layer = file_jobs_[i].layer;
      Piece p{layer, i, i, 0};
      while (p.end < file_jobs_.size() && file_jobs_[p.end].layer == layer) {
        p.bytes += file_jobs_[p.end].bytes;
        ++p.end;
      }
      total += p.bytes;
      layers.push_back(p);
      i = p.end;
    }
    std::vector<Piece> pieces;
    for (const Piece& l : layers) {
      const LayerBlob& blob = content_.layer(l.layer);
      bool splittable = blob.checkpoints->compression == Compression::kNone || blob.checkpoints->points.size() > 1;
      uint64_t want = 1;
      if (splittable && layers.size() < threads && total > 0) {
        want = std::max<uint64_t>(1, (threads * l.bytes + total - 1) / total);
        want = std::min<uint64_t>(want, std::max<uint64_t>(1, l.bytes / std::max<uint64_t>(1, options_.min_split_bytes)));
      }
      uint64_t target = (l.bytes + want - 1) / want;
      Piece cur{l.layer, l.begin, l.begin, 0};
      for (size_t j = l.begin; j < l.end; ++j) {
        cur.bytes += file_jobs_[j].bytes;
        cur.end = j + 1;
        if (cur.bytes >= target && j + 1 < l.end) {
          pieces.push_back(cur);
          cur = Piece{l.layer, j + 1, j + 1, 0};
        }
      }
      if (cur.end > cur.begin) pieces.push_back(cur);
    }
    std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.bytes > b.bytes; });
    return pieces;
  }

  Status WriteFiles() {
    if (file_jobs_.empty()) return Status::Ok();
    unsigned threads = options_.threads ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
    std::vector<Piece> pieces = PlanPieces(threads);
    threads = static_cast<unsigned>(std::min<size_t>(threads, pieces.size()));
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex err_mu;
    Status first_error;
    auto worker = [&] {
      std::vector<uint8_t> buf;
      try {
        buf.resize(kChunkBytes);
      } catch (...) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (first_error.ok()) first_error = CurrentExceptionStatus("extract: a worker's read buffer");
        stop.store(true);
        return;
      }
      while (!stop.load()) {
        size_t k = next.fetch_add(1);
        if (k >= pieces.size()) return;
        Status st;
        try {
          st = WritePiece(pieces[k], buf, stop);
        } catch (...) {
          st = CurrentExceptionStatus("extract: writing the files of layer " + content_.layer(pieces[k].layer).digest);
        }
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(err_mu);
          if (first_error.ok()) first_error = st;
          stop.store(true);
          return;
        }
      }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
      try {
        pool.emplace_back(worker);
      } catch (...) {
        break;  // no thread to spare (EAGAIN, out of memory): the ones we have do the work
      }
    }
    worker();
    for (auto& t : pool) t.join();
    return first_error;
  }

  Status WritePiece(const Piece& piece, std::vector<uint8_t>& buf, const std::atomic<bool>& stop) {
    std::unique_ptr<RandomReader> reader = content_.NewReader(piece.layer);
    NodeId cached_dir = kNoDir;
    Fd dir_fd;
    for (size_t j = piece.begin; j < piece.end && !stop.load(); ++j) {
      const FileJob& job = file_jobs_[j];
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      if (job.dir != cached_dir) {
        LAZYROOT_ASSIGN_OR_RETURN(dir_fd, OpenDir(job.dir));
        cached_dir = job.dir;
      }
      LAZYROOT_RETURN_IF_ERROR(WriteFile(job, dir_fd.get(), *reader, buf));
    }
    return Status::Ok();
  }

  Status WriteFile(const FileJob& job, int dfd, RandomReader& reader, std::vector<uint8_t>& buf) {
    const Node n = tree_.GetNode(job.node);
    const std::string name(job.name);
    const std::string path = PathOf(job.dir, job.name);
    Fd fd(::openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return Status::FromErrno("create " + path, errno);
    uint64_t written = 0, zeros = 0;
    // Writes [off, off + len) of buf, leaving aligned zero blocks out.
    auto put = [&](const uint8_t* p, size_t len, uint64_t off) -> Status {
      size_t run = 0;  // bytes of p not yet written, ending at i
      auto flush = [&](size_t end) -> Status {
        if (run == 0) return Status::Ok();
        const uint64_t used = written_.fetch_add(run) + run;
        if (used > limit_) {
          return Status::LimitExceeded("extract: " + path + ": the file data written would pass " + limit_what_);
        }
        LAZYROOT_RETURN_IF_ERROR(WriteAll(fd.get(), p + end - run, run, off + end - run, path));
        written += run;
        run = 0;
        return Status::Ok();
      };
      for (size_t i = 0; i < len;) {
        const uint64_t at = off + i;
        const size_t step = static_cast<size_t>(std::min<uint64_t>(len - i, kHoleBlock - at % kHoleBlock));
        if (step == kHoleBlock && IsZeroBlock(p + i)) {
          LAZYROOT_RETURN_IF_ERROR(flush(i));
          zeros += kHoleBlock;
        } else {
          run += step;
        }
        i += step;
      }
      return flush(len);
    };
    auto copy = [&](uint64_t from, uint64_t to) -> Status {
      for (uint64_t off = from; off < to;) {
        LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), to - off));
        size_t got = 0;
        Status st = ReadFileData(tree_, job.node, reader, off, std::span<uint8_t>(buf.data(), want), &got);
        if (!st.ok()) return st.WithContext(path);
        if (got != want) return Status::Corruption(path + ": file data ends at " + std::to_string(off + got));
        LAZYROOT_RETURN_IF_ERROR(put(buf.data(), got, off));
        off += got;
      }
      return Status::Ok();
    };
    if (n.sparse_count == 0) {
      LAZYROOT_RETURN_IF_ERROR(copy(0, n.size));
    } else {
      if (::ftruncate(fd.get(), static_cast<off_t>(n.size)) != 0) return Status::FromErrno("truncate " + path, errno);
      for (uint32_t k = 0; k < n.sparse_count; ++k) {
        SparseExtent x = tree_.SparseAt(job.node, k);
        uint64_t end = std::min<uint64_t>(x.logical_offset + x.length, n.size);
        if (x.logical_offset < end) LAZYROOT_RETURN_IF_ERROR(copy(x.logical_offset, end));
      }
    }
    // A file ending in a hole has the size only ftruncate gives it (a sparse
    // file was truncated to its size before its extents were written).
    if (zeros > 0 && n.sparse_count == 0 && ::ftruncate(fd.get(), static_cast<off_t>(n.size)) != 0) {
      return Status::FromErrno("truncate " + path, errno);
    }
    bytes_.fetch_add(written);
    zero_bytes_.fetch_add(zeros);
    return ApplyMetaFd(fd.get(), job.node, n, path);
  }

  Status LinkFiles() {
    std::unordered_map<NodeId, Fd> dirs;
    auto dir_fd = [&](NodeId d) -> Result<int> {
      auto it = dirs.find(d);
      if (it != dirs.end()) return it->second.get();
      LAZYROOT_ASSIGN_OR_RETURN(Fd fd, OpenDir(d));
      int raw = fd.get();
      dirs.emplace(d, std::move(fd));
      return raw;
    };
    for (const LinkJob& job : link_jobs_) {
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      if (dirs.size() > 64) dirs.clear();  // bound open fds; never while a raw fd is in use
      const Location& first = first_[job.node];
      LAZYROOT_ASSIGN_OR_RETURN(int src, dir_fd(first.dir));
      LAZYROOT_ASSIGN_OR_RETURN(int dst, dir_fd(job.dir));
      std::string src_name(first.name), dst_name(job.name);
      if (::linkat(src, src_name.c_str(), dst, dst_name.c_str(), 0) != 0) {
        return Status::FromErrno("link " + PathOf(job.dir, job.name) + " to " + PathOf(first.dir, first.name), errno);
      }
    }
    return Status::Ok();
  }

  Status FinishDirectories() {
    for (NodeId d = tree_.node_count(); d-- > 0;) {
      if (!tree_.IsDir(d)) continue;
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      const Node n = tree_.GetNode(d);
      const std::string& path = d == ImageTree::kRoot ? std::string("/") : dir_path_[d];
      if (d == ImageTree::kRoot) {
        LAZYROOT_RETURN_IF_ERROR(ApplyMetaFd(root_fd_, d, n, path));
        continue;
      }
      LAZYROOT_ASSIGN_OR_RETURN(Fd fd, OpenDir(d));
      LAZYROOT_RETURN_IF_ERROR(ApplyMetaFd(fd.get(), d, n, path));
    }
    return Status::Ok();
  }

  const ImageTree& tree_;
  const ImageContent& content_;
  const ExtractOptions& options_;
  const int root_fd_;
  uid_t euid_ = 0;
  gid_t egid_ = 0;
  ExtractReport report_;
  std::vector<std::string> dir_path_;  // directories: path relative to the root ("" = root)
  std::vector<Location> first_;        // where each node got its first name
  std::vector<FileJob> file_jobs_;
  std::vector<LinkJob> link_jobs_;
  const uint64_t limit_;
  const std::string limit_what_;
  std::atomic<uint64_t> written_{0};  // counted before each write, against limit_
  std::atomic<uint64_t> bytes_{0}, zero_bytes_{0}, warnings_{0};
  std::mutex warn_mu_;
};

}  // namespace

Result<ExtractReport> ExtractTree(const ImageTree& tree, const ImageContent& content, const std::string& dir_in,
                                  const ExtractOptions& options) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string dir, CheckTargetDir(dir_in, "extract"));

  // The disk budget, checked before anything is created.
  uint64_t limit = options.max_bytes;
  std::string limit_what = "--max-size " + HumanSize(limit);
  const uint64_t data = TreeDataBytes(tree);
  if (limit == 0) {
    const size_t slash = dir.rfind('/');
    const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
    struct statvfs fs {};
    if (::statvfs(parent.c_str(), &fs) != 0) return Status::FromErrno("extract: statvfs " + parent, errno);
    const uint64_t avail = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    const uint64_t margin = std::max<uint64_t>(kFreeSpaceMargin, static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize / 100);
    limit = avail > margin ? avail - margin : 0;
    limit_what = "the free space of " + parent + " (" + HumanSize(avail) + " free, less " + HumanSize(margin) +
                 " kept free; free some, or set the bound with --max-size SIZE)";
  }
  if (data > limit) {
    return Status::LimitExceeded("extract into " + dir + ": " + HumanSize(data) +
                                 " of file data to write (sparse holes excluded; runs of zeros are found only "
                                 "while writing), over " + limit_what + "; nothing was written");
  }

  std::string tmpl = dir + ".lazyroot-tmp-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Status::FromErrno("extract: create a temp dir beside " + dir, errno);
  const std::string tmp = tmpl;

  Status result;
  ExtractReport report;
  {
    Fd root(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root.valid()) {
      result = Status::FromErrno("extract: open " + tmp, errno);
    } else {
      try {
        Extractor ex(tree, content, options, root.get(), limit, limit_what);
        result = ex.Run();
        report = ex.TakeReport();
      } catch (...) {
        result = CurrentExceptionStatus("extract into " + dir);
      }
    }
  }
  if (result.ok() && ::rename(tmp.c_str(), dir.c_str()) != 0) {
    result = Status::FromErrno("extract: rename " + tmp + " to " + dir, errno);
  }
  if (!result.ok()) {
    (void)RemoveTree(tmp);  // the original error is the one to report
    return result;
  }
  return report;
}

}  // namespace lazyroot
