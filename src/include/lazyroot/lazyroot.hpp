// lazyroot for C++: RAII types over the C interface of lazyroot.h
// (header-only, so the library's ABI stays the C one). Errors are thrown as
// lazyroot::Error, carrying the C status and the message that names the
// object at fault.
#ifndef LAZYROOT_LAZYROOT_HPP
#define LAZYROOT_LAZYROOT_HPP

#include <lazyroot/lazyroot.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lazyroot {
// The C++ names are versioned with the interface (lazyroot::Store is
// lazyroot::cxx_v0::Store to the linker): a program never mixes two
// versions' inline code, and the library's own C++ core, which has types of
// the same names, can be linked beside it (the lazyroot command does).
inline namespace cxx_v0 {

class Error : public std::runtime_error {
 public:
  Error(lazyroot_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  lazyroot_status code() const noexcept { return code_; }

 private:
  lazyroot_status code_;
};

namespace detail {
// Call as `lazyroot_status st = lazyroot_x(..., &err); Check(st, err);`:
// in Check(lazyroot_x(..., &err), err) the second argument may be read first.
inline void Check(lazyroot_status st, lazyroot_error* err) {
  if (st == LAZYROOT_OK) return;
  std::string message = err != nullptr ? lazyroot_error_message(err) : "lazyroot error";
  lazyroot_error_free(err);
  throw Error(st, message);
}
inline std::string Take(char* s) {
  std::string out = s != nullptr ? s : "";
  lazyroot_free(s);
  return out;
}
}  // namespace detail

// The launch configuration: argv, env, cwd and ids for krun_set_exec and co.
struct Launch {
  std::vector<std::string> args, env;
  std::string cwd;
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string json;          // as `lazyroot inspect --launch` prints it
  std::string runtime_spec;  // the OCI config.json (/.krun_config.json)
};

// A mount; unmounts (lazily if busy) when destroyed, unless released.
class Mount {
 public:
  explicit Mount(lazyroot_mount* m) : m_(m) {}
  Mount(Mount&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Mount& operator=(Mount&& o) noexcept {
    if (this != &o) {
      Close();
      m_ = std::exchange(o.m_, nullptr);
    }
    return *this;
  }
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount() { Close(); }

  std::string dir() const { return m_ != nullptr ? lazyroot_mount_dir(m_) : ""; }
  // Unmounts now; throws on failure (the handle is gone either way).
  void Unmount() {
    lazyroot_error* err = nullptr;
    lazyroot_status st = lazyroot_unmount(std::exchange(m_, nullptr), &err);
    detail::Check(st, err);
  }
  // Leaves the mount in place (`lazyroot umount DIR` ends it).
  void Release() { lazyroot_mount_release(std::exchange(m_, nullptr)); }

 private:
  void Close() noexcept {
    if (m_ == nullptr) return;
    lazyroot_error* err = nullptr;
    lazyroot_unmount(std::exchange(m_, nullptr), &err);
    lazyroot_error_free(err);
  }
  lazyroot_mount* m_;
};

// Pull events, one virtual call each, from the pull's worker threads (one
// call at a time). Strings are valid during the call. Must not throw.
class PullObserver {
 public:
  virtual ~PullObserver() = default;
  virtual void Resolved(const std::string& reference, const std::string& manifest_digest,
                        const std::string& platform, int layers, uint64_t total_bytes) {
    (void)reference, (void)manifest_digest, (void)platform, (void)layers, (void)total_bytes;
  }
  virtual void BlobStarted(const std::string& digest, uint64_t current, uint64_t total) {
    (void)digest, (void)current, (void)total;
  }
  virtual void BlobProgress(const std::string& digest, uint64_t current, uint64_t total) {
    (void)digest, (void)current, (void)total;
  }
  virtual void BlobDone(const std::string& digest, uint64_t total, bool already_present) {
    (void)digest, (void)total, (void)already_present;
  }
  virtual void Note(const std::string& text) { (void)text; }
  virtual void Finished(const std::string& manifest_digest) { (void)manifest_digest; }
};

struct PullOptions {
  std::optional<std::string> platform, username, password, authfile;
  bool insecure = false;
  bool tls_verify = true;
  std::vector<std::string> cert_dirs;
  int jobs = 0;                     // 0: the default, 3
  std::vector<std::string> limits;  // "NAME=VALUE[,…]", applied in order
  PullObserver* observer = nullptr;
  const volatile int* cancel = nullptr;
  std::string registries_conf, hosts_dir;  // empty: the default lookups
  bool verbose = false;                    // notes name each transfer's endpoint
};

struct PullResult {
  std::string reference, manifest_digest, platform;
  uint64_t blobs_fetched = 0, bytes_fetched = 0;
  bool pulled = false;  // false: Ensure found it in the store
};

// docker run's overrides of the image config (lazyroot_launch_options).
struct LaunchOptions {
  std::optional<std::string> entrypoint;            // "" clears it (and drops Cmd)
  std::optional<std::vector<std::string>> cmd;      // replaces Cmd
  std::optional<std::string> user, workdir;
  std::vector<std::string> env;                     // KEY=VALUE
  std::vector<std::string> limits;
};

namespace detail {
// NULL-terminated arrays of copies of strings, alive as long as this object.
class CStrings {
 public:
  explicit CStrings(std::vector<std::string> v) : s_(std::move(v)) {
    for (const std::string& s : s_) p_.push_back(s.c_str());
    p_.push_back(nullptr);
  }
  CStrings(const CStrings&) = delete;
  CStrings& operator=(const CStrings&) = delete;
  const char* const* get() const { return p_.data(); }

 private:
  std::vector<std::string> s_;
  std::vector<const char*> p_;
};
inline void ForwardPullEvent(void* user, const lazyroot_pull_event* e) {
  auto* o = static_cast<PullObserver*>(user);
  switch (e->kind) {
    case LAZYROOT_PULL_RESOLVED:
      o->Resolved(e->reference, e->digest, e->platform, e->layers, e->total);
      break;
    case LAZYROOT_PULL_BLOB_STARTED:
      o->BlobStarted(e->digest, e->current, e->total);
      break;
    case LAZYROOT_PULL_BLOB_PROGRESS:
      o->BlobProgress(e->digest, e->current, e->total);
      break;
    case LAZYROOT_PULL_BLOB_DONE:
      o->BlobDone(e->digest, e->total, e->already_present != 0);
      break;
    case LAZYROOT_PULL_NOTE:
      o->Note(e->text);
      break;
    case LAZYROOT_PULL_FINISHED:
      o->Finished(e->digest);
      break;
  }
}
// lazyroot_note_fn over a std::function<void(const std::string&)> (user).
inline void ForwardNote(void* user, const char* line) {
  (*static_cast<const std::function<void(const std::string&)>*>(user))(line);
}

// PullOptions as the C struct over a copy of them, alive as long as this object.
class PullOptionsC {
 public:
  explicit PullOptionsC(PullOptions options)
      : p_(std::move(options)), cert_dirs_(p_.cert_dirs), limits_(p_.limits) {
    const PullOptions& p = p_;
    lazyroot_pull_options_init(&o_);
    if (p.platform) o_.platform = p.platform->c_str();
    if (p.username) o_.username = p.username->c_str();
    if (p.password) o_.password = p.password->c_str();
    if (p.authfile) o_.authfile = p.authfile->c_str();
    o_.insecure = p.insecure ? 1 : 0;
    o_.no_tls_verify = p.tls_verify ? 0 : 1;
    o_.cert_dirs = cert_dirs_.get();
    o_.limits = limits_.get();
    o_.jobs = p.jobs;
    o_.cancel = p.cancel;
    if (!p.registries_conf.empty()) o_.registries_conf = p.registries_conf.c_str();
    if (!p.hosts_dir.empty()) o_.hosts_dir = p.hosts_dir.c_str();
    o_.verbose = p.verbose ? 1 : 0;
    if (p.observer != nullptr) {
      o_.event = &ForwardPullEvent;
      o_.event_user = p.observer;
    }
  }
  PullOptionsC(const PullOptionsC&) = delete;
  PullOptionsC& operator=(const PullOptionsC&) = delete;
  const lazyroot_pull_options* get() const { return &o_; }

 private:
  PullOptions p_;
  CStrings cert_dirs_, limits_;
  lazyroot_pull_options o_;
};
}  // namespace detail

struct ExtractOptions {
  std::optional<std::string> copy, bundle;  // see lazyroot_extract_options
  bool reflink = false, krun_config = false, rootless = false;
  unsigned threads = 0;
  uint64_t max_size = 0;
  std::vector<std::string> limits;
  const volatile int* cancel = nullptr;
  std::optional<PullOptions> pull;  // set: pull first when missing
  std::function<void(const std::string&)> note;  // must not throw
};

struct MountOptions {
  bool allow_other = false, krun_config = false, suid = false, dev = false;
  std::optional<uint64_t> cache_mib;  // 0: no cache; unset: 256
  std::optional<unsigned> read_ahead_kib;  // 0: the kernel's; unset: 1024
  unsigned threads = 0;                    // 0: the default, 8
  std::vector<std::string> limits;
  std::optional<PullOptions> pull;  // set: pull first when missing
  std::function<void(const std::string&)> note;  // must not throw
};

struct ExtractResult {
  std::string path, cached_dir;
  bool extracted = false, rootless = false, copied = false;
  lazyroot_tree_counts extract{}, copy{};
};

class Store {
 public:
  // root empty: the default store ($LAZYROOT_HOME, XDG, ~/.local/share/lazyroot).
  explicit Store(const std::string& root = {}) {
    lazyroot_store* s = nullptr;
    lazyroot_error* err = nullptr;
    lazyroot_status st = lazyroot_store_open(root.empty() ? nullptr : root.c_str(), &s, &err);
    detail::Check(st, err);
    s_.reset(s);
  }

  PullResult Pull(const std::string& reference, const PullOptions& o = {}) { return DoPull(reference, o, false); }
  // Pulls only when the image is not in the store yet.
  PullResult Ensure(const std::string& reference, const PullOptions& o = {}) { return DoPull(reference, o, true); }

  std::string ImageInfo(const std::string& reference) {
    char* json = nullptr;
    lazyroot_error* err = nullptr;
    lazyroot_status st = lazyroot_image_info(s_.get(), reference.c_str(), &json, &err);
    detail::Check(st, err);
    return detail::Take(json);
  }

  Launch LaunchConfig(const std::string& reference, const LaunchOptions& options = {}) {
    lazyroot_launch_options o;
    lazyroot_launch_options_init(&o);
    if (options.entrypoint) o.entrypoint = options.entrypoint->c_str();
    detail::CStrings cmd(options.cmd.value_or(std::vector<std::string>{}));
    if (options.cmd) {
      o.cmd = cmd.get();
      o.cmd_set = 1;
    }
    if (options.user) o.user = options.user->c_str();
    if (options.workdir) o.workdir = options.workdir->c_str();
    detail::CStrings env(options.env), limits(options.limits);
    o.env = env.get();
    o.limits = limits.get();
    lazyroot_launch* l = nullptr;
    lazyroot_error* err = nullptr;
    lazyroot_status st = lazyroot_launch_config(s_.get(), reference.c_str(), &o, &l, &err);
    detail::Check(st, err);
    std::unique_ptr<lazyroot_launch, decltype(&lazyroot_launch_free)> owned(l, &lazyroot_launch_free);
    Launch out;
    for (const char* const* a = lazyroot_launch_argv(l); *a != nullptr; ++a) out.args.emplace_back(*a);
    for (const char* const* e = lazyroot_launch_envp(l); *e != nullptr; ++e) out.env.emplace_back(*e);
    out.cwd = lazyroot_launch_cwd(l);
    out.uid = lazyroot_launch_uid(l);
    out.gid = lazyroot_launch_gid(l);
    const uint32_t* gids = nullptr;
    size_t n = lazyroot_launch_additional_gids(l, &gids);
    out.additional_gids.assign(gids, gids + n);
    out.json = lazyroot_launch_json(l);
    out.runtime_spec = lazyroot_launch_runtime_spec(l);
    return out;
  }

  // Into dir, or (dir empty) the store's cached extract, checked before
  // reuse. Returns the directory written.
  std::string Extract(const std::string& reference, const std::string& dir = {}) {
    return Extract(reference, dir, ExtractOptions{}).path;
  }
  ExtractResult Extract(const std::string& reference, const std::string& dir, const ExtractOptions& options) {
    lazyroot_extract_options o;
    lazyroot_extract_options_init(&o);
    if (options.copy) o.copy = options.copy->c_str();
    o.reflink = options.reflink ? 1 : 0;
    if (options.bundle) o.bundle = options.bundle->c_str();
    o.krun_config = options.krun_config ? 1 : 0;
    o.rootless = options.rootless ? 1 : 0;
    o.threads = options.threads;
    o.max_size = options.max_size;
    detail::CStrings limits(options.limits);
    o.limits = limits.get();
    o.cancel = options.cancel;
    detail::PullOptionsC pull(options.pull.value_or(PullOptions{}));
    if (options.pull) o.pull = pull.get();
    if (options.note) {
      o.note = &detail::ForwardNote;
      o.note_user = const_cast<std::function<void(const std::string&)>*>(&options.note);
    }
    lazyroot_extract_result r;
    lazyroot_extract_result_init(&r);
    lazyroot_error* err = nullptr;
    lazyroot_status st =
        lazyroot_extract(s_.get(), reference.c_str(), dir.empty() ? nullptr : dir.c_str(), &o, &r, &err);
    ExtractResult out;
    if (st == LAZYROOT_OK) {
      out.path = r.path != nullptr ? r.path : "";
      out.cached_dir = r.cached_dir != nullptr ? r.cached_dir : "";
      out.extracted = r.extracted != 0;
      out.rootless = r.rootless != 0;
      out.extract = r.extract;
      out.copied = r.copied != 0;
      out.copy = r.copy;
    }
    lazyroot_extract_result_free(&r);
    detail::Check(st, err);
    return out;
  }

  Mount MountImage(const std::string& reference, const std::string& dir, bool krun_config = false) {
    MountOptions o;
    o.krun_config = krun_config;
    return MountImage(reference, dir, o);
  }
  Mount MountImage(const std::string& reference, const std::string& dir, const MountOptions& options) {
    lazyroot_mount_options o;
    lazyroot_mount_options_init(&o);
    o.allow_other = options.allow_other ? 1 : 0;
    o.krun_config = options.krun_config ? 1 : 0;
    if (options.cache_mib) {
      o.cache_mib = *options.cache_mib;
      o.no_cache = *options.cache_mib == 0 ? 1 : 0;
    }
    if (options.read_ahead_kib) {
      o.read_ahead_kib = *options.read_ahead_kib == 0 ? LAZYROOT_READ_AHEAD_KERNEL : *options.read_ahead_kib;
    }
    o.threads = options.threads;
    o.suid = options.suid ? 1 : 0;
    o.dev = options.dev ? 1 : 0;
    detail::CStrings limits(options.limits);
    o.limits = limits.get();
    detail::PullOptionsC pull(options.pull.value_or(PullOptions{}));
    if (options.pull) o.pull = pull.get();
    if (options.note) {
      o.note = &detail::ForwardNote;
      o.note_user = const_cast<std::function<void(const std::string&)>*>(&options.note);
    }
    lazyroot_mount* m = nullptr;
    lazyroot_error* err = nullptr;
    lazyroot_status st = lazyroot_mount_image(s_.get(), reference.c_str(), dir.c_str(), &o, &m, &err);
    detail::Check(st, err);
    return Mount(m);
  }

 private:
  PullResult DoPull(const std::string& reference, const PullOptions& p, bool only_missing) {
    detail::PullOptionsC o(p);
    lazyroot_pull_result r;
    lazyroot_pull_result_init(&r);
    lazyroot_error* err = nullptr;
    lazyroot_status st = only_missing ? lazyroot_ensure(s_.get(), reference.c_str(), o.get(), &r, &err)
                                      : lazyroot_pull(s_.get(), reference.c_str(), o.get(), &r, &err);
    PullResult out;
    if (st == LAZYROOT_OK) {
      out.reference = r.reference != nullptr ? r.reference : "";
      out.manifest_digest = r.manifest_digest != nullptr ? r.manifest_digest : "";
      out.platform = r.platform != nullptr ? r.platform : "";
      out.blobs_fetched = r.blobs_fetched;
      out.bytes_fetched = r.bytes_fetched;
      out.pulled = r.pulled != 0;
    }
    lazyroot_pull_result_free(&r);
    detail::Check(st, err);
    return out;
  }
  std::unique_ptr<lazyroot_store, decltype(&lazyroot_store_close)> s_{nullptr, &lazyroot_store_close};
};

}  // namespace cxx_v0
}  // namespace lazyroot

#endif  // LAZYROOT_LAZYROOT_HPP
