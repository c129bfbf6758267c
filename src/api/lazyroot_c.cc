// The C interface of src/include/lazyroot/lazyroot.h over the library's
// C++ core. Every entry point catches everything: no exception crosses into
// C. Errors become a lazyroot_error holding the Status's code and message.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "fs/extract.h"
#include "fs/mount.h"
#include "index/exception_status.h"
#include "src/store/open_image.h"
#include "src/include/lazyroot/lazyroot.h"
#include "src/store/index_consumer.h"
#include "src/launch/launch_config.h"
#include "src/image/manifest.h"
#include "src/launch/mount_daemon.h"
#include "src/pull/pull.h"
#include "src/image/reference.h"
#include "src/store/rootfs_cache.h"
#include "src/launch/runtime_spec.h"
#include "src/store/store.h"

struct lazyroot_error {
  lazyroot_status code;
  std::string message;
};

struct lazyroot_store {
  std::unique_ptr<lazyroot::Store> store;
};

struct lazyroot_launch {
  std::vector<std::string> args, env;
  std::vector<const char*> argv, envp;
  std::string cwd, json, runtime_spec;
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
};

struct lazyroot_mount {
  std::string dir;
};

namespace {

using lazyroot::ErrorCode;
using lazyroot::Result;
using lazyroot::Status;

lazyroot_status ToC(ErrorCode c) {
  switch (c) {
    case ErrorCode::kOk:
      return LAZYROOT_OK;
    case ErrorCode::kInvalidArgument:
      return LAZYROOT_INVALID_ARGUMENT;
    case ErrorCode::kNotFound:
      return LAZYROOT_NOT_FOUND;
    case ErrorCode::kCorruption:
      return LAZYROOT_CORRUPTION;
    case ErrorCode::kIoError:
      return LAZYROOT_IO_ERROR;
    case ErrorCode::kUnsupported:
      return LAZYROOT_UNSUPPORTED;
    case ErrorCode::kUnauthorized:
      return LAZYROOT_UNAUTHORIZED;
    case ErrorCode::kNetwork:
      return LAZYROOT_NETWORK;
    case ErrorCode::kAborted:
      return LAZYROOT_CANCELLED;
    case ErrorCode::kLimitExceeded:
      return LAZYROOT_LIMIT_EXCEEDED;
  }
  return LAZYROOT_INTERNAL;
}

lazyroot_status Report(const Status& st, lazyroot_error** err) {
  if (st.ok()) return LAZYROOT_OK;
  const lazyroot_status code = ToC(st.code());
  if (err != nullptr) *err = new (std::nothrow) lazyroot_error{code, st.message()};
  return code;
}

lazyroot_status Invalid(const char* what, lazyroot_error** err) { return Report(Status::InvalidArgument(what), err); }

// Runs body, turning any exception into an error (out of memory, a bug).
template <typename Body>
lazyroot_status Guard(lazyroot_error** err, Body&& body) noexcept {
  try {
    return Report(body(), err);
  } catch (const std::bad_alloc&) {
    if (err != nullptr) *err = new (std::nothrow) lazyroot_error{LAZYROOT_INTERNAL, "out of memory"};
    return LAZYROOT_INTERNAL;
  } catch (...) {
    if (err != nullptr) *err = new (std::nothrow) lazyroot_error{LAZYROOT_INTERNAL, "internal error"};
    return LAZYROOT_INTERNAL;
  }
}

char* Dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

Result<lazyroot::ImageRecord> FindRecord(lazyroot::Store& store, const char* reference) {
  LAZYROOT_ASSIGN_OR_RETURN(lazyroot::Reference ref, lazyroot::ParseReference(reference));
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<lazyroot::ImageRecord> rec, store.GetImage(ref.ToString()));
  if (!rec) return Status::NotFound("image " + ref.ToString() + ": not in the store (pull it first)");
  return std::move(*rec);
}

// Sums blob progress for the caller's callback and polls its cancel flag.
class ProgressAdapter final : public lazyroot::PullProgress {
 public:
  ProgressAdapter(const lazyroot_pull_options* o, std::atomic<bool>* cancel) : o_(o), cancel_(cancel) {}
  void Resolved(const std::string&, const std::string&, const std::string&, int, uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    total_ = total;
    Call();
  }
  void BlobProgress(const std::string& digest, uint64_t current, uint64_t) override { Set(digest, current); }
  void BlobDone(const std::string& digest, uint64_t total, bool) override { Set(digest, total); }
  // The total counts every blob (the config too): the last call says all of it.
  void Finished(const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    Call();
  }

 private:
  void Set(const std::string& digest, uint64_t current) {
    std::lock_guard<std::mutex> lock(mu_);
    done_[digest] = current;
    Call();
  }
  void Call() {
    if (o_ == nullptr) return;
    if (o_->cancel != nullptr && *o_->cancel != 0) cancel_->store(true);
    if (o_->progress == nullptr) return;
    uint64_t sum = 0;
    for (const auto& [d, n] : done_) sum += n;
    if (finished_ || sum > total_) sum = total_;
    o_->progress(o_->progress_user, sum, total_);
  }
  const lazyroot_pull_options* o_;
  std::atomic<bool>* cancel_;
  std::mutex mu_;
  std::map<std::string, uint64_t> done_;
  uint64_t total_ = 0;
  bool finished_ = false;
};

lazyroot_status DoPull(lazyroot_store* store, const char* reference, const lazyroot_pull_options* o, bool only_missing,
                       char** manifest_digest, lazyroot_error** err) {
  if (store == nullptr || reference == nullptr) return Invalid("lazyroot_pull: store and reference are required", err);
  if (o != nullptr && o->size < sizeof(size_t)) return Invalid("lazyroot_pull: options.size is not set", err);
  return Guard(err, [&]() -> Status {
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::Reference ref, lazyroot::ParseReference(reference));
    if (only_missing) {
      LAZYROOT_ASSIGN_OR_RETURN(std::optional<lazyroot::ImageRecord> rec, store->store->GetImage(ref.ToString()));
      if (rec) {
        if (manifest_digest != nullptr) *manifest_digest = Dup(rec->manifest_digest);
        return Status::Ok();
      }
    }
    lazyroot::PullOptions options;
    if (o != nullptr) {
      if (o->platform != nullptr) {
        LAZYROOT_ASSIGN_OR_RETURN(options.platform, lazyroot::ParsePlatform(o->platform));
        options.platform_explicit = true;
      }
      if (o->username != nullptr || o->password != nullptr) {
        if (o->username == nullptr || o->password == nullptr) {
          return Status::InvalidArgument("lazyroot_pull: give both username and password, or neither");
        }
        lazyroot::Credential c;
        c.username = o->username;
        c.secret = o->password;
        options.registry.credentials.explicit_credential = std::move(c);
      }
      if (o->authfile != nullptr) options.registry.credentials.authfile = o->authfile;
      options.registry.insecure = o->insecure != 0;
    }
    std::atomic<bool> cancel{false};
    ProgressAdapter progress(o, &cancel);
    options.progress = &progress;
    options.cancel = &cancel;
    options.consumer_factory = lazyroot::MakeIndexingConsumerFactory(*store->store, options.limits);
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::PullResult r, lazyroot::Pull(*store->store, ref, options));
    if (manifest_digest != nullptr) *manifest_digest = Dup(r.record.manifest_digest);
    return Status::Ok();
  });
}

}  // namespace

extern "C" {

const char* lazyroot_version(void) { return LAZYROOT_VERSION; }

lazyroot_status lazyroot_error_code(const lazyroot_error* err) { return err == nullptr ? LAZYROOT_OK : err->code; }
const char* lazyroot_error_message(const lazyroot_error* err) { return err == nullptr ? "" : err->message.c_str(); }
void lazyroot_error_free(lazyroot_error* err) { delete err; }
void lazyroot_free(void* p) { std::free(p); }

lazyroot_status lazyroot_store_open(const char* root, lazyroot_store** out, lazyroot_error** err) {
  if (out == nullptr) return Invalid("lazyroot_store_open: out is required", err);
  *out = nullptr;
  return Guard(err, [&]() -> Status {
    LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<lazyroot::Store> s,
                              lazyroot::Store::Open(root != nullptr ? root : lazyroot::Store::DefaultRoot()));
    *out = new lazyroot_store{std::move(s)};
    return Status::Ok();
  });
}

void lazyroot_store_close(lazyroot_store* store) { delete store; }

void lazyroot_pull_options_init(lazyroot_pull_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
}

lazyroot_status lazyroot_pull(lazyroot_store* store, const char* reference, const lazyroot_pull_options* options,
                              char** manifest_digest, lazyroot_error** err) {
  return DoPull(store, reference, options, false, manifest_digest, err);
}

lazyroot_status lazyroot_ensure(lazyroot_store* store, const char* reference, const lazyroot_pull_options* options,
                                char** manifest_digest, lazyroot_error** err) {
  return DoPull(store, reference, options, true, manifest_digest, err);
}

lazyroot_status lazyroot_image_info(lazyroot_store* store, const char* reference, char** json, lazyroot_error** err) {
  if (store == nullptr || reference == nullptr || json == nullptr) {
    return Invalid("lazyroot_image_info: store, reference and json are required", err);
  }
  return Guard(err, [&]() -> Status {
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageRecord rec, FindRecord(*store->store, reference));
    LAZYROOT_ASSIGN_OR_RETURN(std::string manifest_bytes,
                              store->store->ReadBlob(rec.manifest_digest, lazyroot::kMaxManifestBytes));
    LAZYROOT_ASSIGN_OR_RETURN(std::string config_bytes,
                              store->store->ReadBlob(rec.config_digest, lazyroot::kMaxConfigBytes));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageManifest manifest, lazyroot::ParseImageManifest(manifest_bytes));
    rapidjson::StringBuffer sb;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    auto str = [&](const std::string& s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
    w.StartObject();
    w.Key("reference");
    str(rec.reference);
    w.Key("digest");
    str(rec.manifest_digest);
    w.Key("platform");
    str(rec.platform);
    w.Key("media_type");
    str(manifest.media_type);
    w.Key("size");
    w.Uint64(rec.size);
    w.Key("layers");
    w.StartArray();
    for (const lazyroot::Layer& l : manifest.layers) {
      w.StartObject();
      w.Key("digest");
      str(l.descriptor.digest);
      w.Key("size");
      w.Int64(l.descriptor.size);
      w.Key("media_type");
      str(l.descriptor.media_type);
      w.EndObject();
    }
    w.EndArray();
    // The image config as stored (already validated JSON at pull).
    w.Key("config");
    w.RawValue(config_bytes.data(), config_bytes.size(), rapidjson::kObjectType);
    w.EndObject();
    *json = Dup(std::string(sb.GetString(), sb.GetSize()));
    return Status::Ok();
  });
}

lazyroot_status lazyroot_launch_config(lazyroot_store* store, const char* reference, lazyroot_launch** out,
                                       lazyroot_error** err) {
  if (store == nullptr || reference == nullptr || out == nullptr) {
    return Invalid("lazyroot_launch_config: store, reference and out are required", err);
  }
  *out = nullptr;
  return Guard(err, [&]() -> Status {
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageRecord rec, FindRecord(*store->store, reference));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::OpenedImage image, lazyroot::OpenImage(*store->store, rec));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageLaunch loaded,
                              lazyroot::LoadImageLaunch(*store->store, rec, *image.tree, *image.content));
    auto l = std::make_unique<lazyroot_launch>();
    const lazyroot::LaunchConfig& lc = loaded.launch;
    l->args = lc.args;
    l->env = lc.env;
    for (const std::string& a : l->args) l->argv.push_back(a.c_str());
    l->argv.push_back(nullptr);
    for (const std::string& e : l->env) l->envp.push_back(e.c_str());
    l->envp.push_back(nullptr);
    l->cwd = lc.cwd;
    l->uid = lc.exec_user.uid;
    l->gid = lc.exec_user.gid;
    l->groups = lc.exec_user.additional_gids;
    l->json = lazyroot::LaunchJson(rec, lc);
    l->runtime_spec = lazyroot::RuntimeSpecJson(loaded.config, lc);
    *out = l.release();
    return Status::Ok();
  });
}

const char* const* lazyroot_launch_argv(const lazyroot_launch* l) { return l->argv.data(); }
const char* const* lazyroot_launch_envp(const lazyroot_launch* l) { return l->envp.data(); }
const char* lazyroot_launch_cwd(const lazyroot_launch* l) { return l->cwd.c_str(); }
uint32_t lazyroot_launch_uid(const lazyroot_launch* l) { return l->uid; }
uint32_t lazyroot_launch_gid(const lazyroot_launch* l) { return l->gid; }
size_t lazyroot_launch_additional_gids(const lazyroot_launch* l, const uint32_t** gids) {
  if (gids != nullptr) *gids = l->groups.data();
  return l->groups.size();
}
const char* lazyroot_launch_json(const lazyroot_launch* l) { return l->json.c_str(); }
const char* lazyroot_launch_runtime_spec(const lazyroot_launch* l) { return l->runtime_spec.c_str(); }
void lazyroot_launch_free(lazyroot_launch* l) { delete l; }

lazyroot_status lazyroot_extract(lazyroot_store* store, const char* reference, const char* dir, char** path,
                                 lazyroot_error** err) {
  if (store == nullptr || reference == nullptr) {
    return Invalid("lazyroot_extract: store and reference are required", err);
  }
  return Guard(err, [&]() -> Status {
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageRecord rec, FindRecord(*store->store, reference));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::OpenedImage image, lazyroot::OpenImage(*store->store, rec));
    lazyroot::ExtractOptions options;
    options.rootless = geteuid() != 0;
    if (dir == nullptr) {
      lazyroot::CachedRootfsOptions cache_options;
      cache_options.extract = options;
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::CachedRootfs cached,
                                lazyroot::EnsureCachedRootfs(*store->store, rec, image, cache_options));
      if (path != nullptr) *path = Dup(cached.dir);
      return Status::Ok();
    }
    auto report = lazyroot::ExtractTree(*image.tree, *image.content, dir, options);
    if (!report.ok()) return report.status().WithContext("extract " + rec.reference + " into " + dir);
    if (path != nullptr) *path = Dup(dir);
    return Status::Ok();
  });
}

void lazyroot_mount_options_init(lazyroot_mount_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
}

lazyroot_status lazyroot_mount_image(lazyroot_store* store, const char* reference, const char* dir,
                                     const lazyroot_mount_options* o, lazyroot_mount** out, lazyroot_error** err) {
  if (store == nullptr || reference == nullptr || dir == nullptr || out == nullptr) {
    return Invalid("lazyroot_mount_image: store, reference, dir and out are required", err);
  }
  if (o != nullptr && o->size < sizeof(size_t)) return Invalid("lazyroot_mount_image: options.size is not set", err);
  *out = nullptr;
  return Guard(err, [&]() -> Status {
    char resolved[PATH_MAX];
    if (realpath(dir, resolved) == nullptr) return Status::FromErrno(std::string("mountpoint ") + dir, errno);
    const std::string root = store->store->root();
    const std::string ref_text = reference;
    lazyroot::MountOptions mount_options;
    mount_options.mountpoint = resolved;
    if (o != nullptr) {
      mount_options.allow_other = o->allow_other != 0;
      if (o->cache_mib != 0) mount_options.cache_bytes = o->cache_mib << 20;
    }
    const bool krun_config = o != nullptr && o->krun_config != 0;
    // Checked here for a clear error code before anything forks.
    {
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false));
      LAZYROOT_RETURN_IF_ERROR(FindRecord(*store->store, reference).status());
    }
    // The daemon opens the store itself, after closing every descriptor of
    // the caller's: nothing of the launcher lives on in it.
    auto prepare = [&]() -> Result<lazyroot::DaemonMount> {
      LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<lazyroot::Store> s, lazyroot::Store::Open(root));
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, s->LockStore(false));
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageRecord rec, FindRecord(*s, ref_text.c_str()));
      lazyroot::DaemonMount m;
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock in_use, s->HoldImageInUse(rec.manifest_digest));
      m.held.push_back(std::move(in_use));
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::OpenedImage image, lazyroot::OpenImage(*s, rec));
      m.options = mount_options;
      m.options.source = rec.reference;
      if (krun_config) {
        LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageLaunch loaded,
                                  lazyroot::LoadImageLaunch(*s, rec, *image.tree, *image.content));
        m.options.root_files.push_back(
            lazyroot::RootFile{".krun_config.json", lazyroot::RuntimeSpecJson(loaded.config, loaded.launch), 0});
      }
      m.tree = image.tree;
      m.content = image.content;
      return m;
    };
    lazyroot::DaemonOptions daemon_options;
    daemon_options.close_inherited_fds = true;
    LAZYROOT_RETURN_IF_ERROR(
        lazyroot::StartMountDaemon(prepare, daemon_options, "mount " + ref_text + " at " + std::string(resolved)));
    *out = new lazyroot_mount{resolved};
    return Status::Ok();
  });
}

const char* lazyroot_mount_dir(const lazyroot_mount* mount) { return mount->dir.c_str(); }

lazyroot_status lazyroot_unmount(lazyroot_mount* mount, lazyroot_error** err) {
  if (mount == nullptr) return Invalid("lazyroot_unmount: mount is required", err);
  std::unique_ptr<lazyroot_mount> owned(mount);
  return Guard(err, [&]() -> Status {
    Status st = lazyroot::Unmount(owned->dir, false);
    // Busy (a file still open, a process inside): detach it now; the daemon
    // serves what is open and exits after the last close.
    if (!st.ok() && st.code() == ErrorCode::kIoError) st = lazyroot::Unmount(owned->dir, true);
    return st;
  });
}

void lazyroot_mount_release(lazyroot_mount* mount) { delete mount; }

}  // extern "C"
