// `lazyroot extract`: write an image's merged tree into a directory, on the
// public API (lazyroot.hpp) as a launcher would.
#include <lazyroot/lazyroot.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "src/cli/cli_common.h"
#include "src/cli/interrupt.h"
#include "src/cli/progress_observer.h"

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

void PrintSummary(const std::string& dir, const lazyroot_tree_counts& c, bool rootless) {
  std::fprintf(stderr,
               "lazyroot: extracted into %s%s: %llu files, %llu dirs, %llu symlinks, %llu hardlinks, %llu devices, "
               "%llu warnings, %.1f MiB in %.2f s\n",
               dir.c_str(), rootless ? " (rootless)" : "", static_cast<unsigned long long>(c.files),
               static_cast<unsigned long long>(c.dirs), static_cast<unsigned long long>(c.symlinks),
               static_cast<unsigned long long>(c.hardlinks), static_cast<unsigned long long>(c.devices),
               static_cast<unsigned long long>(c.warnings), static_cast<double>(c.bytes) / (1 << 20), c.seconds);
  if (c.zero_bytes > 0) {
    std::fprintf(stderr, "lazyroot: %.1f MiB of zeros left as holes\n", static_cast<double>(c.zero_bytes) / (1 << 20));
  }
}

int RunExtract(const GlobalOptions& global, const ExtractArgs& args) {
  // Before any thread starts, so every thread inherits the mask. Armed for
  // the whole call: a signal stops the pull or the extract, which removes
  // what it wrote (DIR's temp dir, the bundle directory it made).
  InterruptScope interrupt;
  auto limits = LimitItems(args.limits);
  if (!limits) return kExitUsage;
  lazyroot::ExtractOptions options;
  if (!args.copy.empty()) options.copy = args.copy;
  if (!args.bundle.empty()) options.bundle = args.bundle;
  options.reflink = args.reflink;
  options.krun_config = args.krun_config;
  options.rootless = args.rootless;
  options.threads = args.threads;
  options.max_size = args.max_size;
  options.limits = *limits;
  // std::atomic<int> is an int in memory on every ABI we build for; the
  // library only reads it.
  static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free);
  options.cancel = reinterpret_cast<const volatile int*>(interrupt.flag());
  auto progress = MakeProgress(ProgressMode::kAuto);
  ProgressObserver observer(progress.get());
  if (args.pull) {
    // As `lazyroot pull IMAGE` with its defaults (host platform, the auth
    // files, progress on stderr); registry flags are pull's business.
    options.pull = lazyroot::PullOptions{};
    options.pull->limits = *limits;
    options.pull->observer = &observer;
    options.pull->cancel = options.cancel;
  }
  // Lines name the image's files: never raw to the terminal.
  options.note = [](const std::string& line) { std::fprintf(stderr, "lazyroot: %s\n", ForTerminal(line).c_str()); };
  lazyroot::ExtractResult r;
  try {
    lazyroot::Store store(global.root);
    interrupt.Arm();
    r = store.Extract(args.image, args.dir, options);
    interrupt.Disarm();
  } catch (const lazyroot::Error& e) {
    interrupt.Disarm();
    return Fail(e);
  }
  std::printf("%s\n", r.path.c_str());
  if (r.extracted) {
    const std::string root = !args.bundle.empty() ? args.bundle + "/rootfs" : !r.cached_dir.empty() ? r.cached_dir : r.path;
    PrintSummary(root, r.extract, r.rootless);
  }
  if (r.copied) {
    std::fprintf(stderr,
                 "lazyroot: %s %s into %s: %llu files, %llu dirs, %llu symlinks, %llu hardlinks, %llu others, "
                 "%.1f MiB in %.2f s\n",
                 args.reflink ? "reflinked" : "copied", r.cached_dir.c_str(), r.path.c_str(),
                 static_cast<unsigned long long>(r.copy.files), static_cast<unsigned long long>(r.copy.dirs),
                 static_cast<unsigned long long>(r.copy.symlinks), static_cast<unsigned long long>(r.copy.hardlinks),
                 static_cast<unsigned long long>(r.copy.devices), static_cast<double>(r.copy.bytes) / (1 << 20),
                 r.copy.seconds);
  }
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
