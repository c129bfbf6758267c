// The C interface of src/include/lazyroot/lazyroot.h over the library's
// C++ core. Every entry point catches everything: no exception crosses into
// C. Errors become a lazyroot_error holding the Status's code and message.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <climits>
#include <cstddef>
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
#include "src/store/unit_copy_store.h"
#include "src/store/open_image.h"
#include "src/include/lazyroot/lazyroot.h"
#include "src/store/index_consumer.h"
#include "src/launch/launch_config.h"
#include "src/image/manifest.h"
#include "src/launch/mount_daemon.h"
#include "src/pull/pull.h"
#include "src/image/reference.h"
#include "src/store/rootfs_cache.h"
#include "src/launch/extract_image.h"
#include "src/inspect/layer_query.h"
#include "src/store/test_pause.h"
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

// Whether an options struct the caller sized with `size` (maybe of an older
// header) reaches past `field`: fields added later are read only then.
#define HAS_FIELD(o, type, field) ((o) != nullptr && (o)->size >= offsetof(type, field) + sizeof((o)->field))
// The size of a struct's first version, ending at `last`: a smaller `size`
// is no version's (a caller's mistake), and the fields every version has
// are read without HAS_FIELD.
#define FIRST_SIZE(type, last) (offsetof(type, last) + sizeof(static_cast<type*>(nullptr)->last))

Result<lazyroot::ImageRecord> FindRecord(lazyroot::Store& store, const char* reference) {
  LAZYROOT_ASSIGN_OR_RETURN(lazyroot::Reference ref, lazyroot::ParseReference(reference));
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<lazyroot::ImageRecord> rec, store.GetImage(ref.ToString()));
  if (!rec) return Status::NotFound("image " + ref.ToString() + ": not in the store (pull it first)");
  return std::move(*rec);
}

// Forwards the pull's events to the caller's callbacks (the byte sum to
// `progress`, each event to `event`) and polls its cancel flag.
class ProgressAdapter final : public lazyroot::PullProgress {
 public:
  ProgressAdapter(const lazyroot_pull_options* o, std::atomic<bool>* cancel) : o_(o), cancel_(cancel) {}
  void Resolved(const std::string& reference, const std::string& digest, const std::string& platform, int layers,
                uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    total_ = total;
    lazyroot_pull_event e = Event(LAZYROOT_PULL_RESOLVED);
    e.reference = reference.c_str();
    e.digest = digest.c_str();
    e.platform = platform.c_str();
    e.layers = layers;
    e.total = total;
    Emit(e);
    Call();
  }
  void BlobStarted(const std::string& digest, uint64_t current, uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    lazyroot_pull_event e = Event(LAZYROOT_PULL_BLOB_STARTED);
    e.digest = digest.c_str();
    e.current = current;
    e.total = total;
    Emit(e);
  }
  void BlobProgress(const std::string& digest, uint64_t current, uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    lazyroot_pull_event e = Event(LAZYROOT_PULL_BLOB_PROGRESS);
    e.digest = digest.c_str();
    e.current = current;
    e.total = total;
    Emit(e);
    Set(digest, current);
  }
  void BlobDone(const std::string& digest, uint64_t total, bool already_present) override {
    std::lock_guard<std::mutex> lock(mu_);
    lazyroot_pull_event e = Event(LAZYROOT_PULL_BLOB_DONE);
    e.digest = digest.c_str();
    e.current = total;
    e.total = total;
    e.already_present = already_present ? 1 : 0;
    Emit(e);
    Set(digest, total);
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu_);
    lazyroot_pull_event e = Event(LAZYROOT_PULL_NOTE);
    e.text = text.c_str();
    Emit(e);
  }
  // The total counts every blob (the config too): the last call says all of it.
  void Finished(const std::string& digest) override {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    lazyroot_pull_event e = Event(LAZYROOT_PULL_FINISHED);
    e.digest = digest.c_str();
    Emit(e);
    Call();
  }

 private:
  static lazyroot_pull_event Event(lazyroot_pull_event_kind kind) {
    lazyroot_pull_event e{};
    e.kind = kind;
    e.reference = e.digest = e.platform = e.text = "";
    return e;
  }
  void Emit(const lazyroot_pull_event& e) {
    if (o_ == nullptr) return;
    if (o_->cancel != nullptr && *o_->cancel != 0) cancel_->store(true);
    if (HAS_FIELD(o_, lazyroot_pull_options, event_user) && o_->event != nullptr) o_->event(o_->event_user, &e);
  }
  // REQUIRES: mu_ held.
  void Set(const std::string& digest, uint64_t current) {
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

// Mirrors a caller's `volatile int` cancel flag into the std::atomic<int>
// the extract polls (and the pull's std::atomic<bool>), from a thread of its
// own (polled every 20 ms): a pull waiting on a silent server has no
// progress event to carry the flag.
class CancelWatch {
 public:
  // also (if not null) is set true with it: the pull's own flag.
  explicit CancelWatch(const volatile int* flag, std::atomic<bool>* also = nullptr) : flag_(flag), also_(also) {
    if (flag_ == nullptr) return;
    // A flag already set is seen now: a small extract could finish before
    // the thread's first look.
    if (*flag_ != 0) Set();
    thread_ = std::thread([this] { Run(); });
  }
  ~CancelWatch() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  CancelWatch(const CancelWatch&) = delete;
  CancelWatch& operator=(const CancelWatch&) = delete;
  const std::atomic<int>* flag() const { return flag_ != nullptr ? &mirror_ : nullptr; }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (*flag_ != 0) Set();
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }
  void Set() {
    mirror_.store(*flag_);
    if (also_ != nullptr) also_->store(true);
  }
  const volatile int* flag_;
  std::atomic<bool>* also_;
  std::atomic<int> mirror_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// The budgets: the defaults, then each "NAME=VALUE[,…]" item in order.
Status ApplyLimits(const char* const* items, const char* what, lazyroot::Limits* limits) {
  for (size_t i = 0; items != nullptr && items[i] != nullptr; ++i) {
    if (i >= 4096) return Status::InvalidArgument(std::string(what) + ": more than 4096 limit items");
    LAZYROOT_RETURN_IF_ERROR(lazyroot::ParseLimits(items[i], limits).WithContext(what));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Strings(const char* const* items, const char* what) {
  std::vector<std::string> out;
  for (size_t i = 0; items != nullptr && items[i] != nullptr; ++i) {
    if (i >= 65536) return Status::InvalidArgument(std::string(what) + ": more than 65536 items");
    out.emplace_back(items[i]);
  }
  return out;
}

void FillResult(lazyroot_pull_result* result, const lazyroot::ImageRecord& rec, uint64_t blobs, uint64_t bytes,
                bool pulled) {
  if (result == nullptr) return;
  result->reference = Dup(rec.reference);
  result->manifest_digest = Dup(rec.manifest_digest);
  result->platform = Dup(rec.platform);
  result->blobs_fetched = blobs;
  result->bytes_fetched = bytes;
  result->pulled = pulled ? 1 : 0;
}

// The pull of options o; store_locked: the caller holds the store lock.
Result<lazyroot::PullResult> RunPull(lazyroot::Store& store, const lazyroot::Reference& ref,
                                     const lazyroot_pull_options* o, bool store_locked) {
  if (o != nullptr && o->size < FIRST_SIZE(lazyroot_pull_options, cancel)) {
    return Status::InvalidArgument("lazyroot_pull: options.size is not set (lazyroot_pull_options_init)");
  }
  lazyroot::PullOptions options;
  options.store_locked = store_locked;
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
    if (HAS_FIELD(o, lazyroot_pull_options, event_user)) {
      options.registry.tls_verify = o->no_tls_verify == 0;
      LAZYROOT_ASSIGN_OR_RETURN(options.registry.cert_dirs, Strings(o->cert_dirs, "cert_dirs"));
      if (o->jobs < 0 || o->jobs > 32) return Status::InvalidArgument("lazyroot_pull: jobs must be 0 to 32");
      if (o->jobs != 0) options.jobs = o->jobs;
      LAZYROOT_RETURN_IF_ERROR(ApplyLimits(o->limits, "limits", &options.limits));
    }
  }
  std::atomic<bool> cancel{false};
  CancelWatch watch(o != nullptr ? o->cancel : nullptr, &cancel);
  ProgressAdapter progress(o, &cancel);
  options.progress = &progress;
  if (HAS_FIELD(o, lazyroot_pull_options, verbose)) {
    if (o->registries_conf != nullptr) options.registry.endpoints.registries_conf = o->registries_conf;
    if (o->hosts_dir != nullptr) options.registry.endpoints.hosts_dir = o->hosts_dir;
    if (o->verbose != 0) options.registry.debug = [&progress](const std::string& text) { progress.Note(text); };
  }
  options.cancel = &cancel;
  options.consumer_factory = lazyroot::MakeIndexingConsumerFactory(store, options.limits);
  return lazyroot::Pull(store, ref, options);
}

lazyroot_status DoPull(lazyroot_store* store, const char* reference, const lazyroot_pull_options* o, bool only_missing,
                       lazyroot_pull_result* result, lazyroot_error** err) {
  if (store == nullptr || reference == nullptr) return Invalid("lazyroot_pull: store and reference are required", err);
  if (result != nullptr && result->size != sizeof *result) {
    return Invalid("lazyroot_pull: result is not initialised (lazyroot_pull_result_init)", err);
  }
  return Guard(err, [&]() -> Status {
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::Reference ref, lazyroot::ParseReference(reference));
    if (only_missing) {
      LAZYROOT_ASSIGN_OR_RETURN(std::optional<lazyroot::ImageRecord> rec, store->store->GetImage(ref.ToString()));
      if (rec) {
        FillResult(result, *rec, 0, 0, false);
        return Status::Ok();
      }
    }
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::PullResult r, RunPull(*store->store, ref, o, false));
    FillResult(result, r.record, static_cast<uint64_t>(r.blobs_fetched), r.bytes_fetched, true);
    return Status::Ok();
  });
}

void Counts(const lazyroot::ExtractReport& r, double seconds, lazyroot_tree_counts* c) {
  c->files = r.files;
  c->dirs = r.dirs;
  c->symlinks = r.symlinks;
  c->hardlinks = r.hardlinks;
  c->devices = r.devices;
  c->warnings = r.warnings;
  c->bytes = r.bytes;
  c->zero_bytes = r.zero_bytes;
  c->seconds = seconds;
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

void lazyroot_pull_result_init(lazyroot_pull_result* result) {
  if (result == nullptr) return;
  std::memset(result, 0, sizeof *result);
  result->size = sizeof *result;
}

void lazyroot_pull_result_free(lazyroot_pull_result* result) {
  if (result == nullptr) return;
  std::free(result->reference);
  std::free(result->manifest_digest);
  std::free(result->platform);
  result->reference = result->manifest_digest = result->platform = nullptr;
}

lazyroot_status lazyroot_pull(lazyroot_store* store, const char* reference, const lazyroot_pull_options* options,
                              lazyroot_pull_result* result, lazyroot_error** err) {
  return DoPull(store, reference, options, false, result, err);
}

lazyroot_status lazyroot_ensure(lazyroot_store* store, const char* reference, const lazyroot_pull_options* options,
                                lazyroot_pull_result* result, lazyroot_error** err) {
  return DoPull(store, reference, options, true, result, err);
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

void lazyroot_launch_options_init(lazyroot_launch_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
}

lazyroot_status lazyroot_launch_config(lazyroot_store* store, const char* reference,
                                       const lazyroot_launch_options* o, lazyroot_launch** out, lazyroot_error** err) {
  if (store == nullptr || reference == nullptr || out == nullptr) {
    return Invalid("lazyroot_launch_config: store, reference and out are required", err);
  }
  if (o != nullptr && o->size < FIRST_SIZE(lazyroot_launch_options, limits)) {
    return Invalid("lazyroot_launch_config: options.size is not set (lazyroot_launch_options_init)", err);
  }
  *out = nullptr;
  return Guard(err, [&]() -> Status {
    lazyroot::LaunchOverrides overrides;
    lazyroot::OpenImageOptions open_options;
    if (o != nullptr) {
      if (o->entrypoint != nullptr) overrides.entrypoint = o->entrypoint;
      if (o->cmd_set != 0) {
        LAZYROOT_ASSIGN_OR_RETURN(overrides.cmd, Strings(o->cmd, "cmd"));
      }
      if (o->user != nullptr) overrides.user = o->user;
      if (o->workdir != nullptr) overrides.workdir = o->workdir;
      LAZYROOT_ASSIGN_OR_RETURN(overrides.env, Strings(o->env, "env"));
      for (const std::string& kv : overrides.env) {
        if (kv.find('=') == std::string::npos || kv.front() == '=') {
          return Status::InvalidArgument("env " + kv + ": not KEY=VALUE");
        }
      }
      LAZYROOT_RETURN_IF_ERROR(ApplyLimits(o->limits, "limits", &open_options.limits));
    }
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageRecord rec, FindRecord(*store->store, reference));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::OpenedImage image, lazyroot::OpenImage(*store->store, rec, open_options));
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageLaunch loaded,
                              lazyroot::LoadImageLaunch(*store->store, rec, *image.tree, *image.content, overrides));
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

void lazyroot_extract_options_init(lazyroot_extract_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->size = sizeof *options;
}

void lazyroot_extract_result_init(lazyroot_extract_result* result) {
  if (result == nullptr) return;
  std::memset(result, 0, sizeof *result);
  result->size = sizeof *result;
}

void lazyroot_extract_result_free(lazyroot_extract_result* result) {
  if (result == nullptr) return;
  std::free(result->path);
  std::free(result->cached_dir);
  result->path = result->cached_dir = nullptr;
}

lazyroot_status lazyroot_extract(lazyroot_store* store, const char* reference, const char* dir,
                                 const lazyroot_extract_options* o, lazyroot_extract_result* result,
                                 lazyroot_error** err) {
  if (store == nullptr || reference == nullptr) {
    return Invalid("lazyroot_extract: store and reference are required", err);
  }
  if (o != nullptr && o->size < FIRST_SIZE(lazyroot_extract_options, note_user)) {
    return Invalid("lazyroot_extract: options.size is not set (lazyroot_extract_options_init)", err);
  }
  if (result != nullptr && result->size != sizeof *result) {
    return Invalid("lazyroot_extract: result is not initialised (lazyroot_extract_result_init)", err);
  }
  return Guard(err, [&]() -> Status {
    auto note = [o](const std::string& line) {
      if (o != nullptr && o->note != nullptr) o->note(o->note_user, line.c_str());
    };
    lazyroot::ExtractImageOptions options;
    options.rootless = geteuid() != 0;
    if (dir != nullptr) options.dir = dir;
    if (o != nullptr) {
      if (o->copy != nullptr) options.copy = o->copy;
      options.reflink = o->reflink != 0;
      if (o->bundle != nullptr) options.bundle = o->bundle;
      options.krun_config = o->krun_config != 0;
      options.rootless = options.rootless || o->rootless != 0;
      options.threads = o->threads;
      options.max_bytes = o->max_size;
      LAZYROOT_RETURN_IF_ERROR(ApplyLimits(o->limits, "limits", &options.limits));
    }
    options.note = note;
    // Refused before anything is pulled or written.
    LAZYROOT_RETURN_IF_ERROR(lazyroot::CheckExtractTargets(options));
    CancelWatch cancel(o != nullptr ? o->cancel : nullptr);
    options.interrupted = cancel.flag();
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::Reference ref, lazyroot::ParseReference(reference));
    // Shared from before the record is read to the end (src/store/STORE.md):
    // gc cannot delete what is pulled, read or being written into rootfs/.
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false, [&] {
      note("waiting for the store lock (gc or fsck --repair is running)");
    }));
    LAZYROOT_ASSIGN_OR_RETURN(std::optional<lazyroot::ImageRecord> rec, store->store->GetImage(ref.ToString()));
    if (!rec && o != nullptr && o->pull != nullptr) {
      note(ref.ToString() + " is not in the store: pulling it");
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::PullResult pulled, RunPull(*store->store, ref, o->pull, true));
      rec = std::move(pulled.record);
    }
    if (!rec) return Status::NotFound("image " + ref.ToString() + ": not in the store (pull it first)");
    lazyroot::TestPause("extract-pulled");
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ExtractImageResult r, lazyroot::ExtractImage(*store->store, *rec, options));
    if (r.report) {
      // Warnings name the image's files: the caller decides how to show them.
      for (const std::string& w : r.report->warning_samples) note("warning: " + w);
      if (r.report->warnings > r.report->warning_samples.size()) {
        note("… and " + std::to_string(r.report->warnings - r.report->warning_samples.size()) + " more warnings");
      }
    }
    if (result != nullptr) {
      result->path = Dup(r.path);
      result->cached_dir = r.cached_dir.empty() ? nullptr : Dup(r.cached_dir);
      result->extracted = r.extracted ? 1 : 0;
      if (r.report) {
        result->rootless = r.report->rootless ? 1 : 0;
        Counts(*r.report, r.seconds, &result->extract);
      }
      if (r.copied) {
        result->copied = 1;
        const lazyroot::CopyReport& c = *r.copied;
        result->copy = lazyroot_tree_counts{c.files, c.dirs, c.symlinks, c.hardlinks, c.others, 0, c.bytes, 0,
                                            r.copy_seconds};
      }
    }
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
  if (o != nullptr && o->size < FIRST_SIZE(lazyroot_mount_options, cache_mib)) {
    return Invalid("lazyroot_mount_image: options.size is not set (lazyroot_mount_options_init)", err);
  }
  *out = nullptr;
  return Guard(err, [&]() -> Status {
    auto note = [o](const std::string& line) {
      if (HAS_FIELD(o, lazyroot_mount_options, note_user) && o->note != nullptr) o->note(o->note_user, line.c_str());
    };
    char resolved[PATH_MAX];
    if (realpath(dir, resolved) == nullptr) return Status::FromErrno(std::string("mountpoint ") + dir, errno);
    struct stat st {};
    if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::InvalidArgument(std::string("mountpoint ") + dir + ": not a directory");
    }
    // Absolute: the daemon reopens the store after chdir("/"), where a
    // relative --root names another directory (or none).
    std::string root = store->store->root();
    if (char abs[PATH_MAX]; !root.empty() && root[0] != '/' && ::realpath(root.c_str(), abs) != nullptr) root = abs;
    lazyroot::MountOptions mount_options;
    mount_options.mountpoint = resolved;
    lazyroot::Limits limits;
    const lazyroot_pull_options* pull = nullptr;
    if (o != nullptr) {
      mount_options.allow_other = o->allow_other != 0;
      if (o->cache_mib != 0) mount_options.cache_bytes = o->cache_mib << 20;
      if (HAS_FIELD(o, lazyroot_mount_options, note_user)) {
        if (o->no_cache != 0) mount_options.cache_bytes = 0;
        if (o->read_ahead_kib == LAZYROOT_READ_AHEAD_KERNEL) {
          mount_options.read_ahead_kib = 0;  // left as the kernel has it
        } else if (o->read_ahead_kib != 0) {
          mount_options.read_ahead_kib = o->read_ahead_kib;
        }
        if (o->threads != 0) mount_options.threads = o->threads;
        mount_options.suid = o->suid != 0;
        mount_options.dev = o->dev != 0;
        LAZYROOT_RETURN_IF_ERROR(ApplyLimits(o->limits, "limits", &limits));
        pull = o->pull;
      }
    }
    // Decoded units are ~2 MiB (up to 8): a smaller cache could not hold the
    // unit a reader is in, and every read would decode it again.
    if (mount_options.cache_bytes != 0 && mount_options.cache_bytes < (uint64_t{16} << 20)) {
      return Status::InvalidArgument("mount: the cache must be off or at least 16 MiB");
    }
    if (mount_options.threads > 1024) return Status::InvalidArgument("mount: at most 1024 threads");
    if ((mount_options.suid || mount_options.dev) && geteuid() != 0) {
      return Status::InvalidArgument("mount: suid and dev need root");
    }
    const bool krun_config = o != nullptr && o->krun_config != 0;
    LAZYROOT_ASSIGN_OR_RETURN(lazyroot::Reference ref, lazyroot::ParseReference(reference));
    const std::string ref_text = ref.ToString();
    // Found (or pulled) here for a clear error before anything forks.
    {
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, store->store->LockStore(false, [&] {
        note("waiting for the store lock (gc or fsck --repair is running)");
      }));
      LAZYROOT_ASSIGN_OR_RETURN(std::optional<lazyroot::ImageRecord> rec, store->store->GetImage(ref_text));
      if (!rec && pull != nullptr) {
        note(ref_text + " is not in the store: pulling it");
        LAZYROOT_RETURN_IF_ERROR(RunPull(*store->store, ref, pull, true).status());
      } else if (!rec) {
        return Status::NotFound("image " + ref_text + ": not in the store (pull it first)");
      } else {
        // A cold disk reads the tree and the indexes while the daemon forks
        // and opens the store (~10 ms of a cold mount's 50).
        lazyroot::PrefetchImageFiles(*store->store, *rec);
      }
    }
    // The daemon opens the store itself, after closing every descriptor of
    // the caller's: nothing of the launcher lives on in it.
    auto prepare = [&]() -> Result<lazyroot::DaemonMount> {
      LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<lazyroot::Store> s, lazyroot::Store::Open(root));
      // Shared from before the record is read until the in-use marker is
      // held and the image open (src/store/STORE.md): gc can neither delete
      // what is about to be opened nor sweep the marker.
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock lock, s->LockStore(false));
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageRecord rec, FindRecord(*s, ref_text.c_str()));
      lazyroot::DaemonMount m;
      // Held for the daemon's life: gc keeps this image's blobs while it is
      // mounted, even after `lazyroot rm`.
      LAZYROOT_ASSIGN_OR_RETURN(lazyroot::FileLock in_use, s->HoldImageInUse(rec.manifest_digest));
      m.held.push_back(std::move(in_use));
      lazyroot::TestPause("mount-opening");  // store lock and marker held, image not open yet
      // The tree is read lazily: the mount's start does not grow with it.
      LAZYROOT_ASSIGN_OR_RETURN(
          lazyroot::OpenedImage image,
          lazyroot::OpenImage(*s, rec, lazyroot::OpenImageOptions{.limits = limits, .lazy_tree = true, .lazy_tables = true}));
      m.options = mount_options;
      m.options.source = rec.reference;  // `findmnt` then says which image is mounted where
      if (krun_config) {
        LAZYROOT_ASSIGN_OR_RETURN(lazyroot::ImageLaunch loaded,
                                  lazyroot::LoadImageLaunch(*s, rec, *image.tree, *image.content));
        m.options.root_files.push_back(lazyroot::RootFile{
            ".krun_config.json", lazyroot::RuntimeSpecJson(loaded.config, loaded.launch), lazyroot::ImageCreated(*s, rec)});
      }
      m.tree = image.tree;
      m.content = image.content;
      m.options.unit_copies = lazyroot::NewStoreUnitCopies(*s, *image.content);
      return m;
    };
    lazyroot::DaemonOptions daemon_options;
    daemon_options.close_inherited_fds = true;
    LAZYROOT_RETURN_IF_ERROR(lazyroot::StartMountDaemon(prepare, daemon_options, "mount " + std::string(dir)));
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
