// lazyroot for C++: RAII types over the C interface of lazyroot.h
// (header-only, so the library's ABI stays the C one). Errors are thrown as
// lazyroot::Error, carrying the C status and the message that names the
// object at fault.
#ifndef LAZYROOT_LAZYROOT_HPP
#define LAZYROOT_LAZYROOT_HPP

#include <lazyroot/lazyroot.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lazyroot {

class Error : public std::runtime_error {
 public:
  Error(lazyroot_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  lazyroot_status code() const noexcept { return code_; }

 private:
  lazyroot_status code_;
};

namespace detail {
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

struct PullOptions {
  std::optional<std::string> platform, username, password, authfile;
  bool insecure = false;
};

class Store {
 public:
  // root empty: the default store ($LAZYROOT_HOME, XDG, ~/.local/share/lazyroot).
  explicit Store(const std::string& root = {}) {
    lazyroot_store* s = nullptr;
    lazyroot_error* err = nullptr;
    detail::Check(lazyroot_store_open(root.empty() ? nullptr : root.c_str(), &s, &err), err);
    s_.reset(s);
  }

  // The manifest digest pulled.
  std::string Pull(const std::string& reference, const PullOptions& o = {}) { return DoPull(reference, o, false); }
  // Pulls only when the image is not in the store yet.
  std::string Ensure(const std::string& reference, const PullOptions& o = {}) { return DoPull(reference, o, true); }

  std::string ImageInfo(const std::string& reference) {
    char* json = nullptr;
    lazyroot_error* err = nullptr;
    detail::Check(lazyroot_image_info(s_.get(), reference.c_str(), &json, &err), err);
    return detail::Take(json);
  }

  Launch LaunchConfig(const std::string& reference) {
    lazyroot_launch* l = nullptr;
    lazyroot_error* err = nullptr;
    detail::Check(lazyroot_launch_config(s_.get(), reference.c_str(), &l, &err), err);
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

  void Extract(const std::string& reference, const std::string& dir) {
    lazyroot_error* err = nullptr;
    detail::Check(lazyroot_extract(s_.get(), reference.c_str(), dir.c_str(), &err), err);
  }

  Mount MountImage(const std::string& reference, const std::string& dir, bool krun_config = false) {
    lazyroot_mount_options o;
    lazyroot_mount_options_init(&o);
    o.krun_config = krun_config ? 1 : 0;
    lazyroot_mount* m = nullptr;
    lazyroot_error* err = nullptr;
    detail::Check(lazyroot_mount_image(s_.get(), reference.c_str(), dir.c_str(), &o, &m, &err), err);
    return Mount(m);
  }

 private:
  std::string DoPull(const std::string& reference, const PullOptions& p, bool only_missing) {
    lazyroot_pull_options o;
    lazyroot_pull_options_init(&o);
    if (p.platform) o.platform = p.platform->c_str();
    if (p.username) o.username = p.username->c_str();
    if (p.password) o.password = p.password->c_str();
    if (p.authfile) o.authfile = p.authfile->c_str();
    o.insecure = p.insecure ? 1 : 0;
    char* digest = nullptr;
    lazyroot_error* err = nullptr;
    lazyroot_status st = only_missing ? lazyroot_ensure(s_.get(), reference.c_str(), &o, &digest, &err)
                                      : lazyroot_pull(s_.get(), reference.c_str(), &o, &digest, &err);
    detail::Check(st, err);
    return detail::Take(digest);
  }
  std::unique_ptr<lazyroot_store, decltype(&lazyroot_store_close)> s_{nullptr, &lazyroot_store_close};
};

}  // namespace lazyroot

#endif  // LAZYROOT_LAZYROOT_HPP
