// See rootfs_check.h. One pass over the tree's directories in node order
// (breadth-first ids: a directory's parent was visited before it), each
// opened beneath the root without following symlinks; its children are
// lstat'ed by name relative to that fd, then its on-disk names are listed to
// find the ones the image does not have. File contents, when asked for, are
// compared afterwards in layer stream order so each layer is decoded once.
#include "fs/rootfs_check.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "fs/extract.h"
#include "fs/extract_writer.h"

namespace lazyroot {
namespace {

constexpr size_t kChunk = 1 << 20;

std::string Octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", v);
  return buf;
}

const char* TypeName(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
  }
  return "unknown type";
}

std::string Time(int64_t sec, uint64_t nsec) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09llu", static_cast<long long>(sec), static_cast<unsigned long long>(nsec));
  return buf;
}

struct ContentJob {
  NodeId node = 0;
  std::string path;  // relative to the root
  uint32_t layer = 0;
  uint64_t data_offset = 0;
};

class Checker {
 public:
  Checker(const ImageTree& tree, const ImageContent* content, const RootfsCheckOptions& options, int root_fd)
      : tree_(tree), content_(content), options_(options), root_fd_(root_fd) {}

  Result<std::vector<RootfsDifference>> Run() {
    const uint32_t count = tree_.node_count();
    if (count == 0 || !tree_.IsDir(ImageTree::kRoot)) return Status::Corruption(tree_.name() + ": root is not a directory");
    dir_path_.resize(count);
    dir_ok_.assign(count, false);
    first_ino_.assign(count, 0);
    struct stat root {};
    if (::fstat(root_fd_, &root) != 0) return Status::FromErrno("stat rootfs", errno);
    owner_uid_ = root.st_uid;
    owner_gid_ = root.st_gid;
    dev_ = root.st_dev;
    CheckEntry(ImageTree::kRoot, tree_.GetNode(ImageTree::kRoot), "", root_fd_, nullptr, root);
    for (NodeId d = 0; d < count && !Full(); ++d) {
      if (!tree_.IsDir(d) || !dir_ok_[d]) continue;
      LAZYROOT_RETURN_IF_ERROR(CheckDirectory(d));
    }
    if (options_.contents && content_ != nullptr && !Full()) LAZYROOT_RETURN_IF_ERROR(CheckContents());
    return std::move(diffs_);
  }

 private:
  bool Full() const { return options_.max_differences != 0 && diffs_.size() >= options_.max_differences; }

  void Add(const std::string& rel, std::string what) {
    if (Full()) return;
    diffs_.push_back({"/" + rel, std::move(what)});
  }

  bool rootless() const { return options_.rootless; }

  std::string Join(NodeId dir, std::string_view name) const {
    std::string p = dir_path_[dir];
    if (!p.empty()) p += '/';
    p += name;
    return p;
  }

  Status CheckDirectory(NodeId d) {
    auto opened = OpenBeneath(root_fd_, dir_path_[d], O_RDONLY | O_DIRECTORY);
    if (!opened.ok()) {
      // Swapped for something else since its lstat: say so, skip below it.
      Add(dir_path_[d], "cannot be opened as a directory: " + opened.status().message());
      return Status::Ok();
    }
    const int dfd = opened->get();
    const uint32_t children = tree_.ChildCount(d);
    for (uint32_t i = 0; i < children && !Full(); ++i) {
      DirEntry e = tree_.ChildAt(d, i);
      const std::string rel = Join(d, e.name);
      const std::string name(e.name);
      struct stat st {};
      if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        Add(rel, errno == ENOENT ? "missing" : std::string("cannot stat: ") + std::strerror(errno));
        continue;
      }
      const Node n = tree_.GetNode(e.node);
      if (n.IsDir()) dir_path_[e.node] = rel;
      CheckEntry(e.node, n, rel, dfd, &name, st);
    }
    if (Full()) return Status::Ok();
    // Names on disk the image does not have.
    int list_fd = ::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (list_fd < 0) return Status::FromErrno("open /" + dir_path_[d], errno);
    DIR* dir = ::fdopendir(list_fd);
    if (dir == nullptr) {
      ::close(list_fd);
      return Status::FromErrno("opendir /" + dir_path_[d], errno);
    }
    while (struct dirent* ent = ::readdir(dir)) {
      std::string_view name = ent->d_name;
      if (name == "." || name == "..") continue;
      if (!tree_.Lookup(d, name)) {
        Add(Join(d, name), "not in the image");
        if (Full()) break;
      }
    }
    ::closedir(dir);
    return Status::Ok();
  }

  // What extract writes for node `n` is compared with `st`. `name` is the
  // entry's name in dfd (nullptr: the root, dfd is the entry itself).
  void CheckEntry(NodeId id, const Node& n, const std::string& rel, int dfd, const std::string* name,
                  const struct stat& st) {
    const bool device = n.type == NodeType::kCharDevice || n.type == NodeType::kBlockDevice;
    const bool placeholder = device && rootless();
    const uint32_t want_type = placeholder ? S_IFREG : (n.StMode() & S_IFMT);
    if ((st.st_mode & S_IFMT) != want_type) {
      Add(rel, std::string("is a ") + TypeName(st.st_mode) + ", image says " + TypeName(want_type));
      return;
    }
    if (n.IsDir()) dir_ok_[id] = true;
    if (n.type != NodeType::kSymlink) {
      const uint32_t want = placeholder ? 0 : n.mode & (rootless() ? kRootlessModeMask : 07777);
      if ((st.st_mode & 07777) != want) {
        Add(rel, "mode " + Octal(st.st_mode & 07777) + ", image says " + Octal(want));
      }
    }
    if (rootless()) {
      if (st.st_uid != owner_uid_ || st.st_gid != owner_gid_) {
        Add(rel, "owner " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + ", the rootless extract's " +
                     std::to_string(owner_uid_) + ":" + std::to_string(owner_gid_));
      }
      if (n.type != NodeType::kSymlink && n.type != NodeType::kFifo) CheckOverrideStat(n, rel, dfd, name);
    } else if (st.st_uid != n.uid || st.st_gid != n.gid) {
      Add(rel, "owner " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + ", image says " +
                   std::to_string(n.uid) + ":" + std::to_string(n.gid));
    }
    switch (n.type) {
      case NodeType::kRegular:
        if (static_cast<uint64_t>(st.st_size) != n.size) {
          Add(rel, "size " + std::to_string(st.st_size) + ", image says " + std::to_string(n.size));
        }
        break;
      case NodeType::kSymlink: CheckSymlink(n, rel, dfd, name, st); break;
      case NodeType::kCharDevice:
      case NodeType::kBlockDevice:
        if (placeholder) {
          if (st.st_size != 0) Add(rel, "size " + std::to_string(st.st_size) + ", the device placeholder's 0");
        } else if (major(st.st_rdev) != n.rdev_major || minor(st.st_rdev) != n.rdev_minor) {
          Add(rel, "device " + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)) +
                       ", image says " + std::to_string(n.rdev_major) + ":" + std::to_string(n.rdev_minor));
        }
        break;
      default: break;
    }
    if (st.st_mtim.tv_sec != n.mtime_sec || static_cast<uint64_t>(st.st_mtim.tv_nsec) != n.mtime_nsec) {
      Add(rel, "mtime " + Time(st.st_mtim.tv_sec, static_cast<uint64_t>(st.st_mtim.tv_nsec)) + ", image says " +
                   Time(n.mtime_sec, n.mtime_nsec));
    }
    if (options_.extracted_at_ns != 0) {
      const int64_t ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
      if (ctime_ns > options_.extracted_at_ns) {
        Add(rel, "changed after the extract (ctime " + Time(st.st_ctim.tv_sec, static_cast<uint64_t>(st.st_ctim.tv_nsec)) +
                     ", extract ended " + Time(options_.extracted_at_ns / 1000000000,
                                               static_cast<uint64_t>(options_.extracted_at_ns % 1000000000)) + ")");
      }
    }
    const bool first_name = !n.IsDir() && CheckLinks(id, n, rel, st);
    // Bytes are compared once per inode, and only when the size is right.
    if (options_.contents && first_name && n.type == NodeType::kRegular && !placeholder && n.size > 0 &&
        static_cast<uint64_t>(st.st_size) == n.size) {
      contents_.push_back({id, rel, n.layer, n.data_offset});
    }
  }

  // All names of one node share one inode, which no other node has, and the
  // inode has as many names as the tree gives it (none outside the tree).
  // True for the first name of the node.
  bool CheckLinks(NodeId id, const Node& n, const std::string& rel, const struct stat& st) {
    const uint64_t key = uint64_t(st.st_ino) + 1;
    if (st.st_dev != dev_) {
      Add(rel, "on another file system (a mount point?)");
      return false;
    }
    if (first_ino_[id] == 0) {
      // An inode with one name shares it with nobody: only the others need
      // remembering (most files have one; the map stays small).
      if (st.st_nlink > 1 && !owner_of_ino_.emplace(key, id).second) {
        Add(rel, "shares its inode with another path of the image (a hardlink the image does not have)");
        return false;
      }
      first_ino_[id] = key;
      if (st.st_nlink != n.nlink) {
        Add(rel, std::to_string(st.st_nlink) + " links, image says " + std::to_string(n.nlink));
      }
      return true;
    }
    if (first_ino_[id] != key) Add(rel, "is a separate copy, image says it is a hardlink of another name");
    return false;
  }

  void CheckSymlink(const Node& n, const std::string& rel, int dfd, const std::string* name, const struct stat& st) {
    if (name == nullptr) return;
    std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
    ssize_t got = ::readlinkat(dfd, name->c_str(), target.data(), target.size());
    if (got < 0) {
      Add(rel, std::string("cannot read link: ") + std::strerror(errno));
      return;
    }
    target.resize(static_cast<size_t>(got));
    if (target != n.symlink_target) {
      Add(rel, "links to \"" + target + "\", image says \"" + std::string(n.symlink_target) + "\"");
    }
  }

  void CheckOverrideStat(const Node& n, const std::string& rel, int dfd, const std::string* name) {
    char buf[128];
    ssize_t got = 0;
    if (name == nullptr) {
      got = ::fgetxattr(dfd, kOverrideStatXattr, buf, sizeof buf);
    } else {
      // Through the directory's fd; the last component is not followed.
      const std::string path = "/proc/self/fd/" + std::to_string(dfd) + "/" + *name;
      got = ::lgetxattr(path.c_str(), kOverrideStatXattr, buf, sizeof buf);
    }
    const std::string want = OverrideStatValue(n.uid, n.gid, n.StMode());
    if (got < 0) {
      // A file system without user xattrs: extract only warned; nothing to compare.
      if (errno == ENOTSUP) return;
      Add(rel, std::string(kOverrideStatXattr) + " " + (errno == ENODATA ? "missing" : std::strerror(errno)) +
                   ", image says " + want);
      return;
    }
    std::string have(buf, static_cast<size_t>(got));
    if (have != want) Add(rel, std::string(kOverrideStatXattr) + " " + have + ", image says " + want);
  }

  Status CheckContents() {
    std::stable_sort(contents_.begin(), contents_.end(), [](const ContentJob& a, const ContentJob& b) {
      return a.layer != b.layer ? a.layer < b.layer : a.data_offset < b.data_offset;
    });
    std::vector<uint8_t> want(kChunk), have(kChunk);
    std::unique_ptr<RandomReader> reader;
    uint32_t reader_layer = UINT32_MAX;
    for (const ContentJob& job : contents_) {
      if (Full()) break;
      const Node n = tree_.GetNode(job.node);
      if (n.stored_size > 0 && n.layer != reader_layer) {
        if (n.layer >= content_->layer_count()) {
          return Status::Corruption(tree_.name() + ": /" + job.path + ": layer " + std::to_string(n.layer) + " of " +
                                    std::to_string(content_->layer_count()));
        }
        reader = content_->NewReader(n.layer);
        reader_layer = n.layer;
      }
      auto fd = OpenBeneath(root_fd_, job.path, O_RDONLY);
      if (!fd.ok()) {
        Add(job.path, "cannot be read: " + fd.status().message());
        continue;
      }
      for (uint64_t off = 0; off < n.size;) {
        const size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk, n.size - off));
        size_t got = 0;
        if (n.stored_size == 0) {
          std::fill(want.begin(), want.begin() + static_cast<ptrdiff_t>(len), uint8_t{0});
          got = len;
        } else {
          Status st = ReadFileData(tree_, job.node, *reader, off, std::span<uint8_t>(want.data(), len), &got);
          if (!st.ok()) return st.WithContext("/" + job.path);
        }
        if (got != len) return Status::Corruption("/" + job.path + ": image data ends at " + std::to_string(off + got));
        size_t read = 0;
        while (read < len) {
          ssize_t r = ::pread(fd->get(), have.data() + read, len - read, static_cast<off_t>(off + read));
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) break;
          read += static_cast<size_t>(r);
        }
        if (read != len) {
          Add(job.path, "ends at byte " + std::to_string(off + read) + ", image says " + std::to_string(n.size));
          break;
        }
        if (std::memcmp(want.data(), have.data(), len) != 0) {
          size_t at = 0;
          while (want[at] == have[at]) ++at;
          Add(job.path, "contents differ from the image at byte " + std::to_string(off + at));
          break;
        }
        off += len;
      }
    }
    return Status::Ok();
  }

  const ImageTree& tree_;
  const ImageContent* content_;
  const RootfsCheckOptions& options_;
  const int root_fd_;
  uid_t owner_uid_ = 0;
  gid_t owner_gid_ = 0;
  dev_t dev_ = 0;
  std::vector<std::string> dir_path_;  // directories: path relative to the root ("" = root)
  std::vector<bool> dir_ok_;           // directories found as directories on disk
  std::vector<uint64_t> first_ino_;    // non-directories: inode + 1 of the first name seen (0: none yet)
  std::unordered_map<uint64_t, NodeId> owner_of_ino_;
  std::vector<ContentJob> contents_;
  std::vector<RootfsDifference> diffs_;
};

}  // namespace

Result<std::vector<RootfsDifference>> CompareRootfs(const ImageTree& tree, const ImageContent* content,
                                                    const std::string& dir, const RootfsCheckOptions& options) {
  Fd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) return Status::FromErrno("open rootfs " + dir, errno);
  Checker checker(tree, content, options, root.get());
  auto result = checker.Run();
  if (!result.ok()) return result.status().WithContext("rootfs " + dir);
  return result;
}

}  // namespace lazyroot
