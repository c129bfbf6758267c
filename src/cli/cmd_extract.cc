// `lazyroot extract`: write an image's merged tree into a directory.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstdio>

#include "fs/extract.h"
#include "fs/extract_writer.h"
#include "src/cli/cli.h"
#include "src/cli/interrupt.h"
#include "src/cli/progress_render.h"
#include "src/image_rootfs.h"
#include "src/index_consumer.h"
#include "src/pull.h"
#include "src/reference.h"
#include "src/test_pause.h"

namespace lazyroot::cli {
namespace {

struct ExtractArgs {
  std::string image, dir;
  std::vector<std::string> limits;
  bool rootless = false, pull = true;
  unsigned threads = 0;
  uint64_t max_size = 0;  // 0: the free space of DIR's file system, less a margin
};

// The default target: <store>/rootfs/<manifest hex>, complete once
// <hex>.done exists (written after the rename; it holds the mode used).
// <hex>.lock serialises extractions of one image between processes.
struct DefaultTarget {
  std::string dir, done, lock;
};

DefaultTarget DefaultTargetFor(const Store& store, const ImageRecord& rec) {
  std::string digest = rec.manifest_digest;
  size_t colon = digest.find(':');
  std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
  std::string base = store.root() + "/rootfs/" + hex;
  return {base, base + ".done", base + ".lock"};
}

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
  for (const std::string& w : r.warning_samples) std::fprintf(stderr, "lazyroot: warning: %s\n", w.c_str());
  if (r.warnings > r.warning_samples.size()) {
    std::fprintf(stderr, "lazyroot: … and %llu more warning(s)\n",
                 static_cast<unsigned long long>(r.warnings - r.warning_samples.size()));
  }
}

int RunExtract(const GlobalOptions& global, const ExtractArgs& args) {
  // Before the pull starts any thread, so every thread inherits the mask.
  InterruptScope interrupt;
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Fail(limits.status());
  auto store = OpenStore(global);
  if (!store.ok()) return Fail(store.status());
  // Shared from before the pull to the end (src/STORE.md): gc waits, so it
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
  const bool rootless = args.rootless || ::geteuid() != 0;
  const std::string mode = rootless ? "rootless\n" : "root\n";

  std::string dir = args.dir;
  DefaultTarget target;
  int lock_fd = -1;
  if (dir.empty()) {
    target = DefaultTargetFor(**store, *rec);
    dir = target.dir;
    lock_fd = ::open(target.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) return Fail(Status::FromErrno("open " + target.lock, errno));
    if (::flock(lock_fd, LOCK_EX) != 0) {
      Status st = Status::FromErrno("lock " + target.lock, errno);
      ::close(lock_fd);
      return Fail(st);
    }
  }
  Fd lock(lock_fd);
  if (!target.done.empty()) {
    struct stat st {};
    bool have_dir = ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    auto done = ReadWholeFile(target.done, 64);
    if (have_dir && done.ok() && *done == mode) {
      std::printf("%s\n", dir.c_str());
      std::fprintf(stderr, "lazyroot: %s already extracted\n", rec->reference.c_str());
      return kExitOk;
    }
    // Incomplete (crash between rename and .done) or extracted in the other mode.
    ::unlink(target.done.c_str());
    Status removed = RemoveTree(dir);
    if (!removed.ok()) return Fail(removed);
  }

  // Extract reads whole layers anyway: re-hash them first, so a blob changed
  // on disk is caught rather than written out (OpenImage names the image).
  auto opened = OpenImage(**store, *rec, OpenImageOptions{.verify_blobs = true, .limits = *limits});
  if (!opened.ok()) return Fail(opened.status());
  auto start = std::chrono::steady_clock::now();
  // Armed while DIR's temp dir exists: a signal then makes ExtractTree stop
  // and remove it rather than leave a half-written tree beside DIR.
  interrupt.Arm();
  auto report = ExtractTree(*opened->tree, *opened->content, dir, options);
  interrupt.Disarm();
  if (!report.ok()) return Fail(report.status().WithContext("image " + rec->reference));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!target.done.empty()) {
    Status st = WriteFileAtomic(target.done, mode);
    if (!st.ok()) return Fail(st);
  }
  std::printf("%s\n", dir.c_str());
  PrintSummary(dir, *report, seconds);
  return kExitOk;
}

}  // namespace

void AddExtractCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto args = std::make_shared<ExtractArgs>();
  CLI::App* cmd = app.add_subcommand(
      "extract",
      "Write an image's merged root filesystem into DIR (absent or empty), or into the store's rootfs/ "
      "directory when DIR is omitted; prints the directory");
  cmd->add_option("IMAGE", args->image, "Image reference; pulled first (pull's defaults) if not in the store")
      ->required();
  cmd->add_option("DIR", args->dir, "Target directory: must not exist, or be empty");
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
