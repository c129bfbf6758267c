#include "src/launch/extract_image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "fs/extract_writer.h"
#include "fs/root_file.h"
#include "src/launch/launch_config.h"
#include "src/launch/runtime_spec.h"
#include "src/store/open_image.h"
#include "src/store/rootfs_cache.h"

namespace lazyroot {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Removes what a failed bundle extract added to the bundle directory: all
// of it when it created the directory, else its rootfs and config.json.
class BundleCleanup {
 public:
  BundleCleanup(std::string bundle, bool created) : bundle_(std::move(bundle)), created_(created) {}
  ~BundleCleanup() {
    if (bundle_.empty() || done_) return;
    if (created_) {
      (void)RemoveTree(bundle_);
    } else {
      (void)RemoveTree(bundle_ + "/rootfs");
      ::unlink((bundle_ + "/config.json").c_str());
    }
  }
  void Done() { done_ = true; }

 private:
  std::string bundle_;
  bool created_ = false, done_ = false;
};

Result<ExtractImageResult> ExtractInto(Store& store, const ImageRecord& rec, const ExtractImageOptions& args) {
  ExtractOptions options;
  options.rootless = args.rootless;
  options.threads = args.threads;
  options.max_bytes = args.max_bytes;
  options.interrupted = args.interrupted;
  // Every byte read of a blob is checked against the chunk digests recorded
  // at pull (OpenImage's VerifiedByteSource): a blob changed on disk fails
  // the extract, naming the blob and the bytes, and leaves no DIR.
  LAZYROOT_ASSIGN_OR_RETURN(OpenedImage opened, OpenImage(store, rec, OpenImageOptions{.limits = args.limits}));

  // The runtime config (bundle, krun config), made before anything is
  // written: an image whose User is not in its /etc/passwd fails here.
  std::string runtime_spec;
  if (!args.bundle.empty() || args.krun_config) {
    LAZYROOT_ASSIGN_OR_RETURN(ImageLaunch loaded, LoadImageLaunch(store, rec, *opened.tree, *opened.content));
    runtime_spec = RuntimeSpecJson(loaded.config, loaded.launch);
  }
  // Writes the runtime config files once the root at `root` is complete.
  auto write_configs = [&](const std::string& root) -> Status {
    if (args.krun_config) LAZYROOT_RETURN_IF_ERROR(WriteRootFile(root, ".krun_config.json", runtime_spec));
    if (!args.bundle.empty()) LAZYROOT_RETURN_IF_ERROR(WriteRootFile(args.bundle, "config.json", runtime_spec));
    return Status::Ok();
  };

  ExtractImageResult result;
  if (!args.dir.empty()) {
    struct stat before {};
    const bool existed = ::lstat(args.dir.c_str(), &before) == 0;  // empty, as checked
    auto start = std::chrono::steady_clock::now();
    auto report = ExtractTree(*opened.tree, *opened.content, args.dir, options);
    if (!report.ok()) return report.status().WithContext("extract " + rec.reference + " into " + args.dir);
    result.seconds = SecondsSince(start);
    if (Status st = write_configs(args.dir); !st.ok()) {
      // A root without its config is not what was asked for: leave DIR as it was.
      (void)RemoveTree(args.dir);
      if (existed) (void)::mkdir(args.dir.c_str(), before.st_mode & 07777);
      return st;
    }
    result.path = args.bundle.empty() ? args.dir : args.bundle;
    result.extracted = true;
    result.report = std::move(*report);
    return result;
  }

  // The store's cached tree, checked before reuse (src/store/rootfs_cache.h).
  CachedRootfsOptions cache_options;
  cache_options.extract = options;
  cache_options.note = args.note;
  LAZYROOT_ASSIGN_OR_RETURN(CachedRootfs cached, EnsureCachedRootfs(store, rec, opened, cache_options));
  result.cached_dir = cached.dir;
  result.path = cached.dir;
  result.extracted = cached.report.has_value();
  result.report = cached.report;
  result.seconds = cached.seconds;
  if (args.copy.empty()) return result;

  // The copy: the checked (or fresh) cached tree, copied while the image's
  // extract lock (held by `cached`) keeps another extract from replacing it.
  auto start = std::chrono::steady_clock::now();
  CopyOptions copy_options;
  copy_options.reflink = args.reflink;
  copy_options.interrupted = args.interrupted;
  auto copied = CopyRootfs(*opened.tree, cached.dir, args.copy, copy_options);
  if (!copied.ok()) return copied.status().WithContext("copy " + cached.dir + " into " + args.copy);
  LAZYROOT_RETURN_IF_ERROR(write_configs(args.copy));
  result.copy_seconds = SecondsSince(start);
  result.copied = *copied;
  result.path = args.copy;
  return result;
}

}  // namespace

Status CheckExtractTargets(const ExtractImageOptions& args) {
  if (!args.bundle.empty()) {
    if (!args.dir.empty() || !args.copy.empty()) {
      return Status::InvalidArgument("extract: --bundle DIR writes DIR/rootfs; give no other DIR or --copy");
    }
    return CheckTargetDir(args.bundle, "extract --bundle").status();
  }
  if (!args.copy.empty() && !args.dir.empty()) {
    return Status::InvalidArgument("extract: give either DIR or --copy DIR, not both");
  }
  if (args.krun_config && args.dir.empty() && args.copy.empty()) {
    return Status::InvalidArgument(
        "extract: --krun-config writes into the root: give DIR, --copy DIR or --bundle DIR (the store's cached "
        "rootfs is shared and stays as the image has it)");
  }
  if (args.reflink && args.copy.empty()) return Status::InvalidArgument("extract: --reflink needs --copy DIR");
  // Checked again when writing, where it counts.
  if (!args.copy.empty()) LAZYROOT_RETURN_IF_ERROR(CheckTargetDir(args.copy, "extract --copy").status());
  if (!args.dir.empty()) LAZYROOT_RETURN_IF_ERROR(CheckTargetDir(args.dir, "extract").status());
  return Status::Ok();
}

Result<ExtractImageResult> ExtractImage(Store& store, const ImageRecord& record, const ExtractImageOptions& args) {
  LAZYROOT_RETURN_IF_ERROR(CheckExtractTargets(args));
  if (args.bundle.empty()) return ExtractInto(store, record, args);
  bool created = ::mkdir(args.bundle.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) return Status::FromErrno("create " + args.bundle, errno);
  BundleCleanup cleanup(args.bundle, created);
  ExtractImageOptions inner = args;
  inner.dir = args.bundle + "/rootfs";
  LAZYROOT_ASSIGN_OR_RETURN(ExtractImageResult result, ExtractInto(store, record, inner));
  cleanup.Done();
  return result;
}

}  // namespace lazyroot
