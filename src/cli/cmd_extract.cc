// `lazyroot extract`: write an image's merged tree into a directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "fs/extract.h"
#include "fs/extract_writer.h"
#include "fs/root_file.h"
#include "fs/rootfs_check.h"
#include "fs/rootfs_copy.h"
#include "src/cli/cli.h"
#include "src/cli/interrupt.h"
#include "src/cli/progress_render.h"
#include "src/store/open_image.h"
#include "src/store/index_consumer.h"
#include "src/launch/launch_config.h"
#include "src/pull/pull.h"
#include "src/image/reference.h"
#include "src/store/rootfs_cache.h"
#include "src/launch/runtime_spec.h"
#include "src/store/test_pause.h"

namespace lazyroot::cli {
namespace {

struct ExtractArgs {
  std::string image, dir;
  std::string copy;          // --copy DIR: a private copy of the cached rootfs
  bool reflink = false;      // --reflink: that copy shares extents (FICLONE)
  std::string bundle;        // --bundle DIR: DIR/rootfs + DIR/config.json (an OCI runtime bundle)
  bool krun_config = false;  // --krun-config: /.krun_config.json in the written root
  std::vector<std::string> limits;
  bool rootless = false, pull = true;
  unsigned threads = 0;
  uint64_t max_size = 0;  // 0: the free space of DIR's file system, less a margin
};

void PrintSummary(const std::string& dir, const ExtractReport& r, double seconds) {
  std::fprintf(stderr,
               "lazyroot: extracted into %s%s: %llu files, %llu dirs, %llu symlinks, %llu hardlinks, %llu devices, "
               "%llu skipped, %llu warnings, %.1f MiB in %.2f s\n",
               dir.c_str(), r.rootless ? " (rootless)" : "", static_cast<unsigned long long>(r.files),
               static_cast<unsigned long long>(r.dirs), static_cast<unsigned long long>(r.symlinks),
               static_cast<unsigned long long>(r.hardlinks), static_cast<unsigned long long>(r.devices),
               static_cast<unsigned long long>(r.skipped), static_cast<unsigned long long>(r.warnings),
               static_cast<double>(r.bytes) / (1 << 20), seconds);
  if (r.zero_bytes > 0) {
    std::fprintf(stderr, "lazyroot: %.1f MiB of zeros left as holes\n", static_cast<double>(r.zero_bytes) / (1 << 20));
  }
  // Warnings name the image's files: never raw to the terminal.
  for (const std::string& w : r.warning_samples) {
    std::fprintf(stderr, "lazyroot: warning: %s\n", Displayable(w).c_str());
  }
  if (r.warnings > r.warning_samples.size()) {
    std::fprintf(stderr, "lazyroot: … and %s more\n",
                 Counted(r.warnings - r.warning_samples.size(), "warning").c_str());
  }
}

// Removes what a failed `extract --bundle` added to the bundle directory:
// all of it when it created the directory, else its rootfs and config.json.
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

int RunExtractTo(const GlobalOptions& global, const ExtractArgs& args);

int RunExtract(const GlobalOptions& global, const ExtractArgs& args) {
  if (args.bundle.empty()) return RunExtractTo(global, args);
  if (!args.dir.empty() || !args.copy.empty()) {
    return Fail(Status::InvalidArgument("extract: --bundle DIR writes DIR/rootfs; give no other DIR or --copy"));
  }
  // Refused before anything is pulled or extracted.
  auto usable = CheckTargetDir(args.bundle, "extract --bundle");
  if (!usable.ok()) return Fail(usable.status());
  bool created = ::mkdir(args.bundle.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) return Fail(Status::FromErrno("create " + args.bundle, errno));
  BundleCleanup cleanup(args.bundle, created);
  ExtractArgs inner = args;
  inner.dir = args.bundle + "/rootfs";
  int rc = RunExtractTo(global, inner);
  if (rc == kExitOk) cleanup.Done();
  return rc;
}

int RunExtractTo(const GlobalOptions& global, const ExtractArgs& args) {
  if (!args.copy.empty() && !args.dir.empty()) {
    return Fail(Status::InvalidArgument("extract: give either DIR or --copy DIR, not both"));
  }
  if (args.krun_config && args.dir.empty() && args.copy.empty()) {
    return Fail(Status::InvalidArgument(
        "extract: --krun-config writes into the root: give DIR, --copy DIR or --bundle DIR (the store's cached "
        "rootfs is shared and stays as the image has it)"));
  }
  if (args.reflink && args.copy.empty()) {
    return Fail(Status::InvalidArgument("extract: --reflink needs --copy DIR"));
  }
  if (!args.copy.empty()) {
    // Refused before anything is pulled or extracted (checked again when copying).
    auto usable = CheckTargetDir(args.copy, "extract --copy");
    if (!usable.ok()) return Fail(usable.status());
  }
  if (!args.dir.empty()) {
    // A DIR that is not absent or empty is refused before the pull (and
    // again when extracting, where it counts).
    auto usable = CheckTargetDir(args.dir, "extract");
    if (!usable.ok()) return Fail(usable.status());
  }
  // Before the pull starts any thread, so every thread inherits the mask.
  InterruptScope interrupt;
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Fail(limits.status());
  auto store = OpenStore(global);
  if (!store.ok()) return Fail(store.status());
  // Shared from before the pull to the end (src/store/STORE.md): gc waits, so it
  // cannot delete what we pulled, read or are writing into rootfs/.
  auto store_lock = (*store)->LockStore(
      false, [] { std::fprintf(stderr, "lazyroot: waiting for the store lock (gc or fsck --repair is running)\n"); });
  if (!store_lock.ok()) return Fail(store_lock.status());
  auto rec = FindOrPullImage(**store, args.image, args.pull, *limits);
  if (!rec.ok()) return Fail(rec.status());
  TestPause("extract-pulled");

  ExtractOptions options;
  options.rootless = args.rootless;
  options.threads = args.threads;
  options.max_bytes = args.max_size;
  options.interrupted = interrupt.flag();
  // Every byte extract reads of a blob is checked against the chunk digests
  // recorded at pull (OpenImage's VerifiedByteSource): a blob changed on disk
  // fails the extract, naming the blob and the bytes, and leaves no DIR.
  auto opened = OpenImage(**store, *rec, OpenImageOptions{.limits = *limits});
  if (!opened.ok()) return Fail(opened.status());

  // The runtime config (--bundle, --krun-config), made before anything is
  // written: an image whose User is not in its /etc/passwd fails here.
  std::string runtime_spec;
  if (!args.bundle.empty() || args.krun_config) {
    auto loaded = LoadImageLaunch(**store, *rec, *opened->tree, *opened->content);
    if (!loaded.ok()) return Fail(loaded.status());
    runtime_spec = RuntimeSpecJson(loaded->config, loaded->launch);
  }
  // Writes the runtime config files once the root at `root` is complete.
  auto write_configs = [&](const std::string& root) -> Status {
    if (args.krun_config) LAZYROOT_RETURN_IF_ERROR(WriteRootFile(root, ".krun_config.json", runtime_spec));
    if (!args.bundle.empty()) LAZYROOT_RETURN_IF_ERROR(WriteRootFile(args.bundle, "config.json", runtime_spec));
    return Status::Ok();
  };

  if (!args.dir.empty()) {
    struct stat before {};
    const bool existed = ::lstat(args.dir.c_str(), &before) == 0;  // empty, as checked
    auto start = std::chrono::steady_clock::now();
    // Armed while a temp dir exists: a signal then makes ExtractTree stop
    // and remove it rather than leave a half-written tree behind.
    interrupt.Arm();
    auto report = ExtractTree(*opened->tree, *opened->content, args.dir, options);
    interrupt.Disarm();
    if (!report.ok()) return Fail(report.status().WithContext("extract " + rec->reference + " into " + args.dir));
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (Status st = write_configs(args.dir); !st.ok()) {
      // A root without its config is not what was asked for: leave DIR as it was.
      (void)RemoveTree(args.dir);
      if (existed) (void)::mkdir(args.dir.c_str(), before.st_mode & 07777);
      return Fail(st);
    }
    std::printf("%s\n", (args.bundle.empty() ? args.dir : args.bundle).c_str());
    PrintSummary(args.dir, *report, seconds);
    return kExitOk;
  }

  // The store's cached tree, checked before reuse (src/store/rootfs_cache.h).
  CachedRootfsOptions cache_options;
  cache_options.extract = options;
  cache_options.note = [](const std::string& line) { std::fprintf(stderr, "lazyroot: %s\n", line.c_str()); };
  cache_options.before_extract = [&] { interrupt.Arm(); };
  cache_options.after_extract = [&] { interrupt.Disarm(); };
  auto cached = EnsureCachedRootfs(**store, *rec, *opened, cache_options);
  if (!cached.ok()) return Fail(cached.status());
  const std::string& dir = cached->dir;
  if (args.copy.empty()) std::printf("%s\n", dir.c_str());
  if (cached->report) PrintSummary(dir, *cached->report, cached->seconds);
  if (args.copy.empty()) return kExitOk;

  // --copy: the checked (or fresh) cached tree, copied while the image's
  // lock keeps another extract from replacing it.
  auto start = std::chrono::steady_clock::now();
  CopyOptions copy_options;
  copy_options.reflink = args.reflink;
  copy_options.interrupted = interrupt.flag();
  interrupt.Arm();
  auto copied = CopyRootfs(*opened->tree, dir, args.copy, copy_options);
  interrupt.Disarm();
  if (!copied.ok()) return Fail(copied.status().WithContext("copy " + dir + " into " + args.copy));
  if (Status st = write_configs(args.copy); !st.ok()) return Fail(st);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s\n", args.copy.c_str());
  std::fprintf(stderr,
               "lazyroot: %s %s into %s: %llu files, %llu dirs, %llu symlinks, %llu hardlinks, %llu others, "
               "%.1f MiB in %.2f s\n",
               args.reflink ? "reflinked" : "copied", dir.c_str(), args.copy.c_str(),
               static_cast<unsigned long long>(copied->files), static_cast<unsigned long long>(copied->dirs),
               static_cast<unsigned long long>(copied->symlinks), static_cast<unsigned long long>(copied->hardlinks),
               static_cast<unsigned long long>(copied->others), static_cast<double>(copied->bytes) / (1 << 20),
               seconds);
  return kExitOk;
}

}  // namespace

void AddExtractCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto args = std::make_shared<ExtractArgs>();
  CLI::App* cmd = app.add_subcommand(
      "extract",
      "Write an image's merged root filesystem into DIR (absent or empty), or into the store's rootfs/ "
      "directory when DIR is omitted (with --copy DIR: there, then a private copy into DIR); prints the directory");
  cmd->add_option("IMAGE", args->image, "Image reference; pulled first (pull's defaults) if not in the store")
      ->required();
  cmd->add_option("DIR", args->dir,
                  "Target directory: must not exist, or be empty. Without it, the image is extracted once into the "
                  "store's rootfs/ (checked against the image before each reuse, extracted again if changed)");
  cmd->add_option("--copy", args->copy,
                  "Extract into (or reuse) the store's rootfs/, then copy it to DIR (absent or empty): a private, "
                  "writable root for one VM, with modes, owners, xattrs, mtimes, hardlinks and holes kept")
      ->option_text("DIR");
  cmd->add_flag("--reflink", args->reflink,
                "With --copy: share the files' extents with the cached rootfs (FICLONE; copy-on-write, no data "
                "copied). DIR must be on the store's file system, and it must support reflinks (xfs with "
                "reflink=1, btrfs); fails otherwise, never falls back to copying");
  cmd->add_option("--bundle", args->bundle,
                  "Write an OCI runtime bundle into DIR (absent or empty): DIR/rootfs and DIR/config.json, "
                  "converted from the image config (process args, env, cwd and user as inspect --launch gives "
                  "them; runc's and crun's default namespaces and mounts), ready for `runc run -b DIR`")
      ->option_text("DIR");
  cmd->add_flag("--krun-config", args->krun_config,
                "Also write /.krun_config.json (the runtime config libkrun's init reads: process args, env, cwd) "
                "at the top of the written root, replacing whatever the image has at that name without writing "
                "through it. Needs DIR, --copy DIR or --bundle DIR");
  cmd->add_flag("--rootless", args->rootless,
                "Do not chown or create devices; no setuid/setgid/sticky or group/other write bits on disk; "
                "record the image's uid:gid:mode in user.containers.override_stat (always on when not running "
                "as root)");
  cmd->add_flag("--pull,!--no-pull", args->pull, "Pull IMAGE when it is not in the store (default: yes)");
  cmd->add_option("--threads", args->threads, "Worker threads writing files (default: one per CPU)")
      ->check(CLI::Range(0u, 256u));
  cmd->add_option("--max-size", args->max_size,
                  "The most file data to write (K, M, G suffixes: powers of 1024); default: what DIR's file "
                  "system has free, less 64 MiB or 1 % of it. Checked before writing (file data without sparse "
                  "holes) and while writing (zero runs become holes and do not count)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1}, UINT64_MAX))
      ->option_text("SIZE");
  AddLimitOption(cmd, &args->limits);
  cmd->callback([args, &global, run] { *run = [args, &global] { return RunExtract(global, *args); }; });
}

}  // namespace lazyroot::cli
