// The lazyroot command line, the commands built on the library's C++ core
// (the debugging and store-maintenance verbs: ls, cat, which, layers, diff,
// fsck, gc, images, inspect, rm, mount's views). The launcher's verbs (pull,
// inspect --launch, ...) are built on the public API instead and include
// only cli_common.h: its <lazyroot/lazyroot.hpp> and the core cannot meet in
// one file (both define lazyroot::Store).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "index/limits.h"
#include "index/status.h"
#include "src/store/store.h"
#include "src/cli/cli_common.h"

namespace lazyroot {
struct RegistryOptions;
class PullProgress;
}  // namespace lazyroot

namespace lazyroot::cli {

// `lazyroot images`: the images in the store, as a table or JSON.
int ListImages(const GlobalOptions& global, const std::string& format);

// The record of a pulled image named as the user typed it; kNotFound says
// "pull it first".
Result<ImageRecord> FindImage(Store& store, const std::string& text);
// FindImage, but a missing image is pulled first (under `limits`) when pull is true.
// REQUIRES: the store lock, held shared (the pull runs under it).
Result<ImageRecord> FindOrPullImage(Store& store, const std::string& text, bool pull, const Limits& limits = Limits());

// Into options: the files of --registries-conf / --hosts-dir, mirror
// warnings ("warning: …") and, with -v, the endpoint of each transfer, as
// progress notes (stderr lines without progress). endpoint_options.cc.
void ApplyEndpointOptions(const EndpointArgs& args, PullProgress* progress, RegistryOptions* options);

// `lazyroot inspect --remote IMAGE` (cmd_inspect_remote.cc): the manifest
// and config as the registry has them, no layer pulled.
struct RemoteArgs {
  bool remote = false, insecure = false, tls_verify = true;
  std::string platform, authfile;
  std::vector<std::string> cert_dirs;
  EndpointArgs endpoints;
};
void AddRemoteOptions(CLI::App* inspect, RemoteArgs* args);
int RunInspectRemote(const std::string& image, const RemoteArgs& args);

// The budgets: defaults, then $LAZYROOT_LIMITS, then each --limit value.
// kInvalidArgument (exit 2) naming the bad item and where it came from.
Result<Limits> ResolveLimits(const std::vector<std::string>& values);

// Opens the store named by --root or the environment.
Result<std::unique_ptr<Store>> OpenStore(const GlobalOptions& global);

// The store of OpenStore with its lock (Store::LockStore) held shared until
// this is destroyed, as every command that reads or changes store objects
// holds it: gc cannot remove them meanwhile, pulls, mounts and other readers
// go on (src/store/STORE.md). on_wait as for LockStore.
struct SharedStore {
  std::unique_ptr<Store> store;
  FileLock lock;  // declared after store: released before it closes

  Store& operator*() const { return *store; }
  Store* operator->() const { return store.get(); }
};
Result<SharedStore> OpenStoreShared(const GlobalOptions& global, const std::function<void()>& on_wait = nullptr);
// Prints "lazyroot: <message>" to stderr and returns the exit code for st.
int Fail(const Status& st);

}  // namespace lazyroot::cli
