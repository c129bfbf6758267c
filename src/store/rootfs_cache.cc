#include "src/store/rootfs_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "fs/extract_writer.h"
#include "fs/rootfs_check.h"

namespace lazyroot {
namespace {

// The differences named when a cached rootfs was changed.
constexpr size_t kShownDifferences = 10;

struct Target {
  std::string dir, done, lock;
};

Target TargetFor(const Store& store, const ImageRecord& rec) {
  std::string digest = rec.manifest_digest;
  size_t colon = digest.find(':');
  std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
  std::string base = store.root() + "/rootfs/" + hex;
  return {base, base + ".done", base + ".lock"};
}

// Puts a fresh extract of the image at target.dir while a VM may still be
// running on the tree there: the fresh tree is written beside it, swapped in
// with one renameat2(RENAME_EXCHANGE) (no moment without a tree at that
// path), and the old one is left under "<hex>.stale-XXXXXX", which gc removes.
// A process running on the old tree keeps it (open directories follow the
// rename) until that gc; the next extract never hands it out.
Result<ExtractReport> ReplaceCachedRootfs(const Target& target, const OpenedImage& image,
                                          const ExtractOptions& options) {
  std::string fresh = target.dir + ".stale-XXXXXX";
  if (::mkdtemp(fresh.data()) == nullptr) return Status::FromErrno("create a temp dir beside " + target.dir, errno);
  auto report = ExtractTree(*image.tree, *image.content, fresh, options);
  if (!report.ok()) {
    (void)RemoveTree(fresh);
    return report.status();
  }
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, target.dir.c_str(), RENAME_EXCHANGE) != 0) {
    const int err = errno;
    (void)RemoveTree(fresh);
    return Status::FromErrno("cannot replace " + target.dir + " with a fresh extract (rename-exchange with " + fresh +
                                 "; a mount point?); remove it by hand and run extract again",
                             err);
  }
  return report;
}

}  // namespace

Result<CachedRootfs> EnsureCachedRootfs(Store& store, const ImageRecord& rec, const OpenedImage& image,
                                        const CachedRootfsOptions& options) {
  auto note = [&](const std::string& line) {
    if (options.note) options.note(line);
  };
  const bool rootless = options.extract.rootless || ::geteuid() != 0;
  const std::string mode = rootless ? "rootless\n" : "root\n";
  const Target target = TargetFor(store, rec);
  CachedRootfs out;
  out.dir = target.dir;
  int lock_fd = ::open(target.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return Status::FromErrno("open " + target.lock, errno);
  out.lock = FileLock(lock_fd);
  if (::flock(lock_fd, LOCK_EX) != 0) return Status::FromErrno("lock " + target.lock, errno);

  // A cached rootfs handed out before (a VM may have written it) is checked
  // before reuse; for that only the tree is needed, not a re-hash of blobs.
  struct stat st {};
  const bool have_dir = ::lstat(target.dir.c_str(), &st) == 0;
  std::string done_mode;
  if (auto done = ReadWholeFile(target.done, 64); done.ok()) done_mode = *done;
  const bool check = have_dir && S_ISDIR(st.st_mode) && done_mode == mode;
  int64_t extracted_at_ns = 0;  // the .done marker's mtime: written right after the tree was complete
  struct stat done_st {};
  if (check && ::stat(target.done.c_str(), &done_st) == 0) {
    extracted_at_ns = static_cast<int64_t>(done_st.st_mtim.tv_sec) * 1000000000 + done_st.st_mtim.tv_nsec;
  }

  if (check) {
    auto start = std::chrono::steady_clock::now();
    RootfsCheckOptions check_options;
    check_options.rootless = rootless;
    check_options.max_differences = kShownDifferences;
    check_options.extracted_at_ns = extracted_at_ns;
    auto diffs = CompareRootfs(*image.tree, nullptr, target.dir, check_options);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!diffs.ok()) {
      note(target.dir + " cannot be checked (" + diffs.status().message() + "); extracting it again");
    } else if (diffs->empty()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f", ms);
      note(rec.reference + " already extracted (" + std::to_string(image.tree->node_count()) +
           " entries match the image, checked in " + buf + " ms)");
      out.reused = true;
      return out;
    } else {
      note(target.dir + " was changed since it was extracted" +
           (diffs->size() >= kShownDifferences ? std::string(" (first differences)") : std::string()) + ":");
      for (const RootfsDifference& d : *diffs) note("  " + d.path + ": " + d.what);
      note("extracting it again");
    }
  } else if (have_dir && !done_mode.empty()) {
    note(target.dir + " was extracted " + (done_mode == "root\n" ? "as root" : "rootless") + "; extracting it again " +
         (rootless ? "rootless" : "as root"));
  }

  // No marker while the tree at dir is not the one it describes.
  if (::unlink(target.done.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove " + target.done, errno);
  auto start = std::chrono::steady_clock::now();
  if (options.before_extract) options.before_extract();
  auto report = have_dir ? ReplaceCachedRootfs(target, image, options.extract)
                         : ExtractTree(*image.tree, *image.content, target.dir, options.extract);
  if (options.after_extract) options.after_extract();
  if (!report.ok()) return report.status().WithContext("extract " + rec.reference + " into " + target.dir);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(target.done, mode));
  out.report = std::move(*report);
  return out;
}

}  // namespace lazyroot
