// libfuse low-level handlers over ImageFs. The tree is immutable, so the
// kernel may cache everything for as long as it likes: long entry/attr
// timeouts, negative entries cached (ino 0), keep_cache on files,
// cache_readdir on directories, cached symlinks, readdirplus. Inodes are
// never allocated, so forget has nothing to do.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fs/mount_table.h"
#include "fs/fuse_adapter.h"

namespace lazyroot {
namespace {

constexpr double kForever = 86400.0;  // seconds; nothing ever changes under a mount

int ToErrno(FsError e) {
  switch (e) {
    case FsError::kNoEntry: return ENOENT;
    case FsError::kBadInode: return ESTALE;
    case FsError::kNotDir: return ENOTDIR;
    case FsError::kIsDir: return EISDIR;
    case FsError::kNotSymlink: return EINVAL;
    case FsError::kReadOnly: return EROFS;
    case FsError::kNoData: return ENODATA;
    case FsError::kRange: return ERANGE;
    case FsError::kIo: return EIO;
    case FsError::kNoOffset: return ENXIO;
    case FsError::kAccess: return EACCES;
  }
  return EIO;
}

// The per-mount state handed to libfuse as userdata.
struct Session {
  Session(ImageFs& f, const MountOptions& o) : fs(f), options(o) {}
  ImageFs& fs;
  const MountOptions& options;
  // Set in init when the kernel lets opendir / open answer ENOSYS once: it
  // then stops sending them (and their releases) and behaves as if they had
  // answered keep_cache (+ cache_readdir). Reads need nothing but the inode,
  // so a small file costs one round trip (read) instead of three.
  std::atomic<bool> no_opendir{false};
  std::atomic<bool> no_open{false};
  std::string device;  // "major:minor" of the mount, for its read-ahead setting
  std::once_flag read_ahead_once;
  void Log(const std::string& line) const {
    if (options.log) options.log(line);
  }
};

// The "major:minor" of the file system mounted at `resolved` (a canonical
// path, taken before mounting), from mountinfo: a stat of the mountpoint
// would send GETATTR to a session that may not be serving yet.
std::string MountDevice(const std::string& resolved) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint ...; spaces in paths are \040.
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point)) continue;
    std::string unescaped;
    for (size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        unescaped.push_back(static_cast<char>(std::strtol(point.substr(i + 1, 3).c_str(), nullptr, 8)));
        i += 3;
      } else {
        unescaped.push_back(point[i]);
      }
    }
    if (unescaped == resolved) found = dev;  // the last one is the top of the stack: ours
  }
  return found;
}

// Raises the kernel's read-ahead for this mount; best effort (root only).
// Must run after the kernel has taken our INIT reply (which caps read-ahead
// at its 128 KiB default) and before the first file is opened (an open file
// keeps the read-ahead it was opened with): the first request after INIT
// does it, through Serve.
void SetReadAhead(const Session& s) {
  if (s.options.read_ahead_kib == 0 || s.device.empty()) return;
  const std::string path = "/sys/class/bdi/" + s.device + "/read_ahead_kb";
  std::ofstream f(path);
  f << s.options.read_ahead_kib << '\n';
  f.flush();
  if (!f && s.options.debug) s.Log("read-ahead: cannot write " + path + " (not root?); the kernel's default stays");
}

struct stat ToStat(const Attr& a) {
  struct stat st {};
  st.st_ino = a.ino;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_blksize = 4096;
  st.st_rdev = makedev(a.rdev_major, a.rdev_minor);
  st.st_mtim.tv_sec = a.mtime_sec;
  st.st_mtim.tv_nsec = a.mtime_nsec;
  st.st_atim = st.st_mtim;
  st.st_ctim = st.st_mtim;
  return st;
}

fuse_entry_param ToEntry(const Attr& a) {
  fuse_entry_param e{};
  e.ino = a.ino;
  e.attr = ToStat(a);
  e.attr_timeout = kForever;
  e.entry_timeout = kForever;
  return e;
}

// The one way a handler answers: each method sends one reply and disarms the
// object; a second attempt is dropped, and a handler that returns (or throws)
// without replying gets EIO from the destructor. So every request is answered
// exactly once.
class Reply {
 public:
  // forget: the request takes no answer but fuse_reply_none, even a failed one.
  Reply(fuse_req_t req, bool forget) : req_(req), forget_(forget) {}
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply() { Fail(EIO); }

  // The answer of a failed handler.
  void Fail(int err) {
    if (forget_) return None();
    Errno(err);
  }

  void Error(FsError e) { Errno(ToErrno(e)); }
  void Errno(int err) {
    if (req_) fuse_reply_err(Take(), err);
  }
  void None() {
    if (req_) fuse_reply_none(Take());
  }
  void Entry(const fuse_entry_param& e) {
    if (req_) fuse_reply_entry(Take(), &e);
  }
  void Attr(const struct stat& st) {
    if (req_) fuse_reply_attr(Take(), &st, kForever);
  }
  // False if the kernel did not take the reply (the request was interrupted):
  // then no release will come for this handle.
  bool Open(const fuse_file_info& fi) { return req_ && fuse_reply_open(Take(), &fi) == 0; }
  void Buf(const void* data, size_t size) {
    if (req_) fuse_reply_buf(Take(), static_cast<const char*>(data), size);
  }
  void Readlink(const std::string& target) {
    if (req_) fuse_reply_readlink(Take(), target.c_str());
  }
  void Lseek(off_t off) {
    if (req_) fuse_reply_lseek(Take(), off);
  }
  void XattrSize(size_t size) {
    if (req_) fuse_reply_xattr(Take(), size);
  }
  void Statfs(const struct statvfs& st) {
    if (req_) fuse_reply_statfs(Take(), &st);
  }

 private:
  fuse_req_t Take() {
    fuse_req_t r = req_;
    req_ = nullptr;
    return r;
  }
  fuse_req_t req_;
  bool forget_;
};

// Runs body(session, reply) for one request `op` on inode `ino`; no
// exception leaves a handler: one that throws (std::bad_alloc on a hostile
// image) answers ENOMEM or EIO and logs one line, and the daemon serves on.
template <typename Body>
void Serve(fuse_req_t req, const char* op, fuse_ino_t ino, Body&& body) noexcept {
  Reply reply(req, std::string_view(op).starts_with("forget"));
  Session& s = *static_cast<Session*>(fuse_req_userdata(req));
  try {
    // Nothing may be thrown through call_once (that ends the daemon).
    std::call_once(s.read_ahead_once, [&]() noexcept {
      try {
        SetReadAhead(s);
      } catch (...) {
        // Out of memory for the path: the kernel's read-ahead stays.
      }
    });
    body(s, reply);
  } catch (...) {
    reply.Fail(FailedRequestErrno(op, ino, s.options.log));
  }
}

void Init(void* userdata, fuse_conn_info* conn) noexcept {
  Session& s = *static_cast<Session*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_CACHE_SYMLINKS);
  // Always plus, not READDIRPLUS_AUTO: attributes cost nothing here (they are in
  // the mapped tree), and every plain readdir chunk would be followed by one
  // LOOKUP per name (measured: 26k lookups walking 66k entries with AUTO).
  want(FUSE_CAP_READDIRPLUS);
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_ASYNC_READ);
  // Nothing changes, so a changed mtime can never be a reason to drop cached pages.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->time_gran = 1;
  s.no_opendir.store((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0, std::memory_order_relaxed);
  s.no_open.store((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0, std::memory_order_relaxed);
  // max_readahead stays at the kernel's offer (its cap); SetReadAhead raises
  // the mount's read-ahead after INIT instead.
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Serve(req, "lookup", parent, [&](Session& s, Reply& r) {
    FsResult<Attr> a = s.fs.Lookup(parent, name);
    if (a.ok()) return r.Entry(ToEntry(*a));
    if (a.error() == FsError::kNoEntry) {
      // A negative entry the kernel caches as long as a positive one.
      fuse_entry_param e{};
      e.ino = 0;
      e.entry_timeout = kForever;
      return r.Entry(e);
    }
    r.Error(a.error());
  });
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t) noexcept {
  Serve(req, "forget", ino, [](Session&, Reply& r) { r.None(); });
}

void ForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) noexcept {
  Serve(req, "forget_multi", 0, [](Session&, Reply& r) { r.None(); });
}

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) noexcept {
  Serve(req, "getattr", ino, [&](Session& s, Reply& r) {
    FsResult<Attr> a = s.fs.GetAttr(ino);
    if (!a.ok()) return r.Error(a.error());
    r.Attr(ToStat(*a));
  });
}

void ReadLink(fuse_req_t req, fuse_ino_t ino) noexcept {
  Serve(req, "readlink", ino, [&](Session& s, Reply& r) {
    FsResult<std::string_view> t = s.fs.ReadLink(ino);
    if (!t.ok()) return r.Error(t.error());
    r.Readlink(std::string(*t));  // libfuse wants a NUL-terminated string
  });
}

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Serve(req, "open", ino, [&](Session& s, Reply& r) {
    FsResult<NodeId> f = s.fs.Open(ino, (fi->flags & O_ACCMODE) != O_RDONLY);
    if (!f.ok()) return r.Error(f.error());
    if (s.no_open.load(std::memory_order_relaxed)) return r.Errno(ENOSYS);
    fi->fh = 0;  // reads need nothing but the inode
    fi->keep_cache = 1;
    (void)r.Open(*fi);
  });
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) noexcept {
  Serve(req, "release", ino, [](Session&, Reply& r) { r.Errno(0); });
}

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  Serve(req, "read", ino, [&](Session& s, Reply& r) {
    if (off < 0) return r.Errno(EINVAL);
    // One reply buffer per worker thread, reused: a fresh 128 KiB-1 MiB buffer
    // per read is an mmap + page faults + zeroing each time.
    thread_local std::vector<uint8_t> buf;
    if (buf.size() < size) buf.resize(size);
    FsResult<size_t> n = s.fs.Read(ino, static_cast<uint64_t>(off), {buf.data(), size});
    if (!n.ok()) return r.Error(n.error());
    r.Buf(buf.data(), *n);
  });
}

// Reached only without default_permissions (with it the kernel checks modes
// itself). Root needs no groups; others' supplementary groups cost a read of
// /proc/PID/status (access(2) is rare next to stat and open).
void Access(fuse_req_t req, fuse_ino_t ino, int mask) noexcept {
  Serve(req, "access", ino, [&](Session& s, Reply& r) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    Caller caller;
    caller.uid = ctx->uid;
    caller.gid = ctx->gid;
    if (caller.uid != 0) {
      gid_t groups[256];
      const int n = fuse_req_getgroups(req, 256, groups);
      for (int i = 0; i < std::min(n, 256); ++i) caller.groups.push_back(groups[i]);
    }
    FsResult<bool> ok = s.fs.Access(ino, mask, caller);
    if (!ok.ok()) return r.Error(ok.error());
    r.Errno(0);
  });
}

// Only SEEK_DATA and SEEK_HOLE reach us; the kernel does the others itself.
void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) noexcept {
  Serve(req, "lseek", ino, [&](Session& s, Reply& r) {
    if (off < 0 || (whence != SEEK_DATA && whence != SEEK_HOLE)) return r.Errno(EINVAL);
    FsResult<uint64_t> to = s.fs.Seek(ino, static_cast<uint64_t>(off), whence == SEEK_DATA);
    if (!to.ok()) return r.Error(to.error());
    r.Lseek(static_cast<off_t>(*to));
  });
}

void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Serve(req, "opendir", ino, [&](Session& s, Reply& r) {
    FsResult<NodeId> d = s.fs.OpenDir(ino);
    if (!d.ok()) return r.Error(d.error());
    if (s.no_opendir.load(std::memory_order_relaxed)) return r.Errno(ENOSYS);
    fi->fh = 0;  // readdir needs nothing but the inode
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    (void)r.Open(*fi);
  });
}

void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) noexcept {
  Serve(req, "releasedir", ino, [](Session&, Reply& r) { r.Errno(0); });
}

// readdir and readdirplus: pack entries from `off` until `size` is full.
void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) noexcept {
  Serve(req, plus ? "readdirplus" : "readdir", ino, [&](Session& s, Reply& r) {
    if (off < 0) return r.Errno(EINVAL);
    std::vector<char> buf(size);
    size_t used = 0;
    std::string name;  // libfuse wants NUL-terminated names; tree names are views
    FsResult<bool> done = s.fs.ReadDir(ino, static_cast<uint64_t>(off), [&](const DirListing& e) {
      name.assign(e.name);
      const off_t next = static_cast<off_t>(e.next_offset);
      size_t need;
      if (plus) {
        fuse_entry_param p = ToEntry(e.attr);
        // The kernel neither instantiates nor counts "." and "..", nor a
        // damaged child (its lookup answers EIO then).
        if (e.is_dot || !e.attr_known) p.ino = 0;
        need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &p, next);
      } else {
        struct stat st {};
        st.st_ino = e.attr.ino;
        st.st_mode = e.attr.mode;
        need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, next);
      }
      if (need > size - used) return false;  // did not fit; the kernel asks again from here
      used += need;
      return true;
    });
    if (!done.ok()) return r.Error(done.error());
    r.Buf(buf.data(), used);
  });
}

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  ReadDirCommon(req, ino, size, off, false);
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  ReadDirCommon(req, ino, size, off, true);
}

void StatFs(fuse_req_t req, fuse_ino_t ino) noexcept {
  Serve(req, "statfs", ino, [&](Session& s, Reply& r) {
    FsStats f = s.fs.StatFs();
    struct statvfs st {};
    st.f_bsize = f.block_size;
    st.f_frsize = f.block_size;
    st.f_blocks = f.blocks;
    st.f_files = f.files;
    st.f_namemax = f.name_max;
    r.Statfs(st);
  });
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  Serve(req, "getxattr", ino, [&](Session& s, Reply& r) {
    FsResult<XattrReply> x = s.fs.GetXattr(ino, name, size);
    if (!x.ok()) return r.Error(x.error());
    if (size == 0) return r.XattrSize(x->size);
    r.Buf(x->data.data(), x->data.size());
  });
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  Serve(req, "listxattr", ino, [&](Session& s, Reply& r) {
    FsResult<XattrReply> x = s.fs.ListXattr(ino, size);
    if (!x.ok()) return r.Error(x.error());
    if (size == 0) return r.XattrSize(x->size);
    r.Buf(x->data.data(), x->data.size());
  });
}

fuse_lowlevel_ops Operations() {
  fuse_lowlevel_ops ops{};
  ops.init = Init;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.getattr = GetAttr;
  ops.readlink = ReadLink;
  ops.open = Open;
  ops.read = Read;
  ops.release = Release;
  ops.lseek = Lseek;
  ops.access = Access;
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.readdirplus = ReadDirPlus;
  ops.releasedir = ReleaseDir;
  ops.statfs = StatFs;
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  return ops;
}

std::string MountOptionString(const MountOptions& o) {
  // libfuse splits options at commas; a backslash escapes one (and itself).
  std::string fsname;
  for (char c : o.source.empty() ? std::string("lazyroot") : o.source) {
    if (c == ',' || c == '\\') fsname.push_back('\\');
    fsname.push_back(c);
  }
  // The subtype makes the kernel's fstype kLazyrootFsType, which umount checks.
  std::string opts = "ro,fsname=" + fsname + ",subtype=" + std::string(kLazyrootFsType.substr(5));
  opts += o.suid ? ",suid" : ",nosuid";
  opts += o.dev ? ",dev" : ",nodev";
  // Other users only get in with the kernel checking the image's modes.
  if (o.allow_other) opts += ",allow_other,default_permissions";
  return opts;
}

}  // namespace

Status ServeFuse(ImageFs& fs, const MountOptions& options, const std::function<void()>& on_ready,
                 DaemonToken* token) {
  const std::string& dir = options.mountpoint;
  // libfuse opens /dev/fuse itself and, when that fails, neither falls back
  // to fusermount3 nor says who may open it: say it here.
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    const int err = errno;
    return Status::FromErrno("mount " + dir + ": cannot open /dev/fuse as uid " + std::to_string(geteuid()) +
                                 " (it must be readable and writable for this user; most systems make it mode 0666)",
                             err);
  }
  Session session(fs, options);
  const fuse_lowlevel_ops ops = Operations();

  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  const std::string opts = MountOptionString(options);
  bool args_ok = fuse_opt_add_arg(&args, "lazyroot") == 0 && fuse_opt_add_arg(&args, "-o") == 0 &&
                 fuse_opt_add_arg(&args, opts.c_str()) == 0;
  if (args_ok && options.debug) args_ok = fuse_opt_add_arg(&args, "-d") == 0;
  fuse_session* se = args_ok ? fuse_session_new(&args, &ops, sizeof ops, &session) : nullptr;
  fuse_opt_free_args(&args);
  if (!se) return Status::IoError("mount " + dir + ": cannot create the FUSE session (options " + opts + ")");

  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return Status::IoError("mount " + dir + ": cannot install signal handlers");
  }
  // Canonical path of the mountpoint, taken while it is still a plain directory.
  std::string resolved_dir;
  if (char buf[PATH_MAX]; realpath(dir.c_str(), buf)) resolved_dir = buf;
  if (fuse_session_mount(se, dir.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return Status::IoError("mount " + dir + ": the FUSE mount failed (is /dev/fuse usable and fusermount3 installed?)");
  }
  if (!resolved_dir.empty()) session.device = MountDevice(resolved_dir);
  // Before on_ready: a umount right after the mount waits for us. Both
  // names: a umount that cannot statx this mount (root, no allow_other)
  // names it by its device.
  if (token) {
    const std::string name = MountTokenName(resolved_dir, session.device);
    token->Bind(name);
    if (name != session.device) token->Bind(session.device);
  }
  if (on_ready) on_ready();

  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, options.threads == 0 ? 1 : options.threads);
  fuse_loop_cfg_set_idle_threads(cfg, options.threads == 0 ? 1 : options.threads);
  const int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);

  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  // A positive value is the signal that ended the loop: a requested shutdown.
  if (rc < 0) return Status::FromErrno("mount " + dir + ": FUSE session loop failed", -rc);
  return Status::Ok();
}

}  // namespace lazyroot
