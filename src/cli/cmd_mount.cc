// `lazyroot mount IMAGE DIR` and `lazyroot umount DIR`; with --layer N,
// --upto N or --layers a debug view of the image's layers (ApplyDebugView).
//
// Without --foreground the mount runs in a forked daemon and the command
// returns only once the kernel mount exists: the child writes one byte to a
// pipe right after fuse_session_mount succeeded, or its error message if it
// failed; the parent waits for that, never for a timer. Until then the child
// still shares our stderr (so libfuse's own complaints reach the user); after
// it, the daemon's stdio is /dev/null and runtime errors go to syslog.
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "fs/mount.h"
#include "src/cli/cli.h"
#include "src/store/open_image.h"
#include "src/launch/launch_config.h"
#include "src/inspect/layer_query.h"
#include "src/launch/mount_daemon.h"
#include "src/image/reference.h"
#include "src/launch/runtime_spec.h"
#include "src/store/test_pause.h"
#include "src/store/unit_copy_store.h"

namespace lazyroot::cli {
namespace {

struct MountArgs {
  std::string image, dir;
  bool foreground = false, debug = false, suid = false, dev = false, pull = true;
  std::vector<std::string> fuse_options;  // -o a,b
  std::vector<std::string> limits;        // --limit NAME=VALUE
  uint64_t cache_mib = 256;
  unsigned threads = 8;
  unsigned read_ahead_kib = 1024;
  std::string layer, upto;   // --layer / --upto: N or a digest prefix ("" = not given)
  bool layers = false;       // --layers
  bool krun_config = false;  // --krun-config: /.krun_config.json served at the root
};

// Turns -o values into MountOptions flags; unknown ones are usage errors.
Status ApplyFuseOptions(const std::vector<std::string>& values, MountOptions* o) {
  for (const std::string& value : values) {
    std::stringstream ss(value);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty()) continue;
      if (opt == "allow_other")
        o->allow_other = true;
      else if (opt == "suid")
        o->suid = true;
      else if (opt == "dev")
        o->dev = true;
      else if (opt == "ro" || opt == "nosuid" || opt == "nodev" || opt == "default_permissions")
        continue;
      else
        return Status::InvalidArgument("-o " + opt + ": unsupported (known: allow_other, suid, dev)");
    }
  }
  return Status::Ok();
}

// --layer, --upto, --layers: swaps the merged tree for the view's (built now
// from the layer indexes, under the store lock) and turns on the
// user.lazyroot.layer xattr. Without them nothing changes: the normal mount.
Status ApplyDebugView(Store& store, const MountArgs& a, const Limits& limits, OpenedImage* image,
                      MountOptions* options) {
  const ImageRecord& record = image->record;
  if (!a.layer.empty()) {
    LAZYROOT_ASSIGN_OR_RETURN(uint32_t layer, ResolveLayerArg(record, a.layer));
    LAZYROOT_ASSIGN_OR_RETURN(ImageTree tree, LayerTree(store, record, layer, limits));
    image->tree = std::make_shared<const ImageTree>(std::move(tree));
  } else if (!a.upto.empty()) {
    LAZYROOT_ASSIGN_OR_RETURN(uint32_t layer, ResolveLayerArg(record, a.upto));
    LAZYROOT_ASSIGN_OR_RETURN(ImageTree tree, TreeUpTo(store, record, layer + 1, limits));
    image->tree = std::make_shared<const ImageTree>(std::move(tree));
  } else if (a.layers) {
    LAZYROOT_ASSIGN_OR_RETURN(ComposedTree view,
                              LayersViewTree(store, record, image->tree, ImageCreated(store, record), limits));
    image->tree = std::make_shared<const ImageTree>(std::move(view.tree));
    options->synthetic_nodes = view.synthetic_nodes;
  } else {
    return Status::Ok();
  }
  options->layer_xattr_values = LayerXattrValues(record);
  // The parts the view was built from are freed: hand their pages back
  // before the daemon forks, or it starts out holding them.
  malloc_trim(0);
  return Status::Ok();
}

int RunMountCommand(const GlobalOptions& global, const MountArgs& a) {
  auto limits = ResolveLimits(a.limits);
  if (!limits.ok()) return Fail(limits.status());
  MountOptions options;
  if (Status st = ApplyFuseOptions(a.fuse_options, &options); !st.ok()) return Fail(st);
  options.suid = options.suid || a.suid;
  options.dev = options.dev || a.dev;
  if ((options.suid || options.dev) && geteuid() != 0) {
    return Fail(Status::InvalidArgument("--suid and --dev need root"));
  }
  if (a.threads == 0) return Fail(Status::InvalidArgument("--threads must be at least 1"));
  // Decoded units are ~2 MiB (up to 8): a smaller cache could not hold the
  // unit a reader is in, and every read would decode it again.
  if (a.cache_mib != 0 && a.cache_mib < 16) {
    return Fail(Status::InvalidArgument("--cache-size must be 0 (no cache) or at least 16 MiB"));
  }
  options.debug = a.debug;
  options.threads = a.threads;
  options.cache_bytes = a.cache_mib << 20;
  options.read_ahead_kib = a.read_ahead_kib;
  // A plain mount is what a launcher does: through the public API. The
  // debugging ones (views, the foreground, the request trace) stay here.
  if (!a.foreground && !a.debug && a.layer.empty() && a.upto.empty() && !a.layers) {
    LibraryMount m;
    m.image = a.image;
    m.dir = a.dir;
    m.pull = a.pull;
    m.allow_other = options.allow_other;
    m.suid = options.suid;
    m.dev = options.dev;
    m.krun_config = a.krun_config;
    m.cache_mib = a.cache_mib;
    m.threads = a.threads;
    m.read_ahead_kib = a.read_ahead_kib;
    m.limits = a.limits;
    return RunLibraryMount(global, m);
  }

  char resolved[PATH_MAX];
  if (realpath(a.dir.c_str(), resolved) == nullptr) {
    const int err = errno;
    return Fail(Status::FromErrno("mountpoint " + a.dir, err));
  }
  struct stat st {};
  if (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail(Status::InvalidArgument("mountpoint " + a.dir + ": not a directory"));
  }
  options.mountpoint = resolved;

  // Shared from before the record is read until the in-use marker is held
  // and the image open (src/store/STORE.md): gc cannot run in between, so it can
  // neither delete what we are about to open nor sweep our marker.
  auto store = OpenStoreShared(
      global, [] { std::fprintf(stderr, "lazyroot: waiting for the store lock (gc or fsck --repair is running)\n"); });
  if (!store.ok()) return Fail(store.status());
  auto record = FindOrPullImage(**store, a.image, a.pull, *limits);
  if (!record.ok()) return Fail(record.status());
  // Held for the daemon's life (the fork inherits it): gc keeps this
  // image's blobs while it is mounted, even after `lazyroot rm`.
  auto in_use = (*store)->HoldImageInUse(record->manifest_digest);
  if (!in_use.ok()) return Fail(in_use.status());
  TestPause("mount-opening");          // store lock and marker held, image not open yet
  options.source = record->reference;  // `findmnt` then says which image is mounted where
  // The views are composed from the whole tree; a plain mount reads it lazily.
  const bool a_view = !a.layer.empty() || !a.upto.empty() || a.layers;
  auto image = OpenImage(**store, *record, OpenImageOptions{.limits = *limits, .lazy_tree = !a_view, .lazy_tables = !a_view});
  if (!image.ok()) return Fail(image.status());  // OpenImage names the image
  if (a.krun_config) {
    // Made from the image's own tree (user files) before any view replaces it.
    auto loaded = LoadImageLaunch(**store, *record, *image->tree, *image->content);
    if (!loaded.ok()) return Fail(loaded.status());
    options.root_files.push_back(
        RootFile{".krun_config.json", RuntimeSpecJson(loaded->config, loaded->launch), ImageCreated(**store, *record)});
  }
  if (Status view = ApplyDebugView(**store, a, *limits, &*image, &options); !view.ok()) return Fail(view);
  // Of the layers actually served (a view may have replaced them).
  options.unit_copies = NewStoreUnitCopies(**store, *image->content);
  // Released before the daemon forks, which would otherwise inherit it and
  // keep gc waiting for as long as the mount lives; the marker suffices now.
  store->lock = FileLock();

  // --debug traces every request on stderr, which only makes sense in the foreground.
  if (a.foreground || a.debug) {
    options.log = [](const std::string& line) { std::fprintf(stderr, "lazyroot: %s\n", line.c_str()); };
    Status run = RunMount(image->tree, image->content, options, nullptr);
    return run.ok() ? kExitOk : Fail(run);
  }

  // The image is open already (errors were reported above, in this process).
  auto prepare = [&]() -> Result<DaemonMount> {
    DaemonMount m{image->tree, image->content, options, {}};
    m.held.push_back(std::move(*in_use));
    return m;
  };
  Status started = StartMountDaemon(prepare, DaemonOptions{}, "mount " + a.dir);
  return started.ok() ? kExitOk : Fail(started);
}

}  // namespace

void AddMountCommands(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto ma = std::make_shared<MountArgs>();
  CLI::App* mount = app.add_subcommand("mount", "Mount a pulled image read-only at DIR (FUSE, lazy reads)");
  mount->add_option("IMAGE", ma->image, "Image reference (pulled first when not in the store)")->required();
  mount->add_option("DIR", ma->dir, "Mountpoint (an existing directory)")->required();
  mount->add_flag("-f,--foreground", ma->foreground, "Serve in this process instead of a daemon");
  mount->add_flag("--pull,!--no-pull", ma->pull, "Pull IMAGE when it is not in the store (default: yes)");
  mount->add_option("-o", ma->fuse_options, "Mount options: allow_other (implies default_permissions), suid, dev")
      ->allow_extra_args(false);
  mount->add_option("--cache-size", ma->cache_mib,
                    "Decompressed data kept in memory, MiB, shared by all readers (default 256; 0 or >= 16)");
  mount->add_option("--read-ahead", ma->read_ahead_kib,
                    "Kernel read-ahead for this mount, KiB (default 1024; root only, else the kernel's 128; "
                    "0 leaves it)");
  mount->add_option("--threads", ma->threads, "FUSE worker threads at most (default 8)");
  mount->add_flag("--suid", ma->suid, "Honour setuid/setgid bits (root only; default nosuid)");
  mount->add_flag("--dev", ma->dev, "Allow device nodes (root only; default nodev)");
  mount->add_flag("--debug", ma->debug, "Trace FUSE requests on stderr (implies --foreground)");
  auto* layer = mount->add_option("--layer", ma->layer,
                                  "Mount layer N alone, as `tar -x` of its blob would unpack it: whiteouts are the "
                                  ".wh.* files it holds (`find DIR -name '.wh.*'` lists what it deletes). N counts "
                                  "from 1 at the base, or is a digest prefix (>= 4 hex digits, one layer)");
  auto* upto = mount->add_option("--upto", ma->upto,
                                 "Mount the merged tree of layers 1..N only (N or a digest prefix: up to and "
                                 "including that layer)");
  mount->add_flag("--krun-config", ma->krun_config,
                  "Serve /.krun_config.json at the root of the mount: the runtime config libkrun's init reads "
                  "(process args, env, cwd, user; as extract --krun-config writes it). A file of ours, read-only, "
                  "not part of the image: it hides an entry of that name the image has; nothing else changes");
  auto* layers = mount->add_flag("--layers", ma->layers,
                                 "Mount every view at once: DIR/merged/, DIR/layers/<N>-<12 hex of digest>/, "
                                 "DIR/upto/<N>/ (all of them count against --limit image-entries)");
  layer->excludes(upto)->excludes(layers);
  upto->excludes(layers);
  mount->footer(
      "With --layer, --upto or --layers every file and directory of the views carries the xattr "
      "user.lazyroot.layer = \"<N> sha256:<digest>\", the layer that wrote it (N from 1; `getfattr -n "
      "user.lazyroot.layer FILE`; the kernel serves user.* xattrs of regular files and directories only), in "
      "place of any xattr of that name the image has. The views are built from the layer indexes when mounting "
      "(no unpacking; file bytes are read lazily as in a normal mount). A normal mount adds no xattr and no file.");
  AddLimitOption(mount, &ma->limits);
  mount->callback([ma, &global, run] { *run = [ma, &global] { return RunMountCommand(global, *ma); }; });

  auto dir = std::make_shared<std::string>();
  auto lazy = std::make_shared<bool>(false);
  CLI::App* umount = app.add_subcommand("umount", "Unmount a lazyroot mount; returns once its daemon has finished (at most 10 s)");
  umount->alias("unmount");
  umount->add_option("DIR", *dir, "Mountpoint")->required();
  umount->add_flag("-l,--lazy", *lazy,
                   "Detach now even if files are still open there; the daemon exits when the last is closed");
  umount->callback([dir, lazy, run] {
    *run = [dir, lazy] {
      bool finished = true;
      Status st = Unmount(*dir, *lazy, &finished);
      if (!st.ok()) return Fail(st);
      // Unmounted all the same; but `umount && fsck` (or gc) may now race
      // the daemon's last writes, which the wait is there to prevent: say so.
      if (!finished) {
        std::fprintf(stderr,
                     "lazyroot: umount %s: unmounted, but its mount daemon had not finished after %lld s (a "
                     "store check or gc now may still see its last writes)\n",
                     dir->c_str(), static_cast<long long>(kDaemonExitWait.count()));
      }
      return kExitOk;
    };
  });
}

}  // namespace lazyroot::cli
