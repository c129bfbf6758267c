// `lazyroot mount IMAGE DIR` as a launcher does it: lazyroot.hpp's
// MountImage, which forks the daemon serving the mount and returns once the
// kernel mount exists.
#include <lazyroot/lazyroot.hpp>

#include <cstdio>

#include "src/cli/cli_common.h"
#include "src/cli/progress_observer.h"

namespace lazyroot::cli {
int RunLibraryMount(const GlobalOptions& global, const LibraryMount& a) {
  auto limits = LimitItems(a.limits);
  if (!limits) return kExitUsage;
  lazyroot::MountOptions o;
  o.allow_other = a.allow_other;
  o.suid = a.suid;
  o.dev = a.dev;
  o.krun_config = a.krun_config;
  o.cache_mib = a.cache_mib;
  o.threads = a.threads;
  o.read_ahead_kib = a.read_ahead_kib;
  o.limits = *limits;
  auto progress = MakeProgress(ProgressMode::kAuto);
  ProgressObserver observer(progress.get());
  if (a.pull) {
    // As `lazyroot pull IMAGE` with its defaults; registry flags are pull's business.
    o.pull = lazyroot::PullOptions{};
    o.pull->limits = *limits;
    o.pull->observer = &observer;
  }
  o.note = [](const std::string& line) { std::fprintf(stderr, "lazyroot: %s\n", ForTerminal(line).c_str()); };
  try {
    lazyroot::Store store(global.root);
    // The mount lives on in its daemon; `lazyroot umount DIR` ends it.
    store.MountImage(a.image, a.dir, o).Release();
  } catch (const lazyroot::Error& e) {
    return Fail(e);
  }
  return kExitOk;
}

}  // namespace lazyroot::cli
