// lazyroot entry point: parse, dispatch, map errors to exit codes.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "index/exception_status.h"
#include "src/cli/cli.h"

namespace lazyroot::cli {

Result<std::unique_ptr<Store>> OpenStore(const GlobalOptions& global) {
  return Store::Open(global.root.empty() ? Store::DefaultRoot() : global.root);
}

Result<SharedStore> OpenStoreShared(const GlobalOptions& global, const std::function<void()>& on_wait) {
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenStore(global));
  LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, store->LockStore(false, on_wait));
  return SharedStore{std::move(store), std::move(lock)};
}

int Fail(const Status& st) {
  // Messages name paths and tar entries from outside: never raw to a terminal.
  std::fprintf(stderr, "lazyroot: %s\n", Displayable(st.message()).c_str());
  return st.code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

namespace {

// "pull alpine", "extract a b": the command and the image(s) it was given.
std::string Operation(const CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands()) {
    out += out.empty() ? "" : " ";
    out += sub->get_name();
    if (const CLI::Option* image = sub->get_option_no_throw("IMAGE"); image != nullptr) {
      for (const std::string& r : image->results()) out += " " + r;
    }
  }
  return out;
}

// REQUIRES: inside a catch block. Any exception that reaches main (out of
// memory on a hostile input, say) ends with a message and exit status 1,
// never with std::terminate's abort.
int FailOnException(const CLI::App& app) noexcept {
  try {
    return Fail(lazyroot::CurrentExceptionStatus(Operation(app)));
  } catch (...) {
    std::fputs("lazyroot: out of memory\n", stderr);  // not even the message could be built
    return kExitFailure;
  }
}

}  // namespace

}  // namespace lazyroot::cli

int main(int argc, char** argv) {
  using namespace lazyroot::cli;
  CLI::App app{
      "lazyroot: OCI/Docker images as root filesystems for micro-VMs and sandboxes.\n"
      "Pull an image into a verified, content-addressed store, then mount it (FUSE, read-through\n"
      "from the compressed layers) or extract it to a directory.",
      "lazyroot"};
  app.set_version_flag("--version", "lazyroot 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions global;
  app.add_option("--root", global.root,
                 "Store directory (default: $LAZYROOT_HOME, else $XDG_DATA_HOME/lazyroot, else "
                 "~/.local/share/lazyroot)");
  app.footer("Exit status: 0 success, 1 failure, 2 usage error.");

  Runner run;
  AddPullCommand(app, global, &run);
  AddImageCommands(app, global, &run);
  AddMountCommands(app, global, &run);
  AddExtractCommand(app, global, &run);
  AddFsckCommand(app, global, &run);
  AddLayersCommand(app, global, &run);
  AddWhichCommand(app, global, &run);
  AddLsCommands(app, global, &run);
  AddDiffCommand(app, global, &run);
  AddSaveCommand(app, global, &run);
  AddLoginCommands(app, global, &run);
  AddDfCommand(app, global, &run);
  if (std::string unknown = UnknownCommandMessage(app, argc, argv); !unknown.empty()) {
    std::fprintf(stderr, "lazyroot: %s\n", unknown.c_str());
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  } catch (...) {
    return FailOnException(app);
  }
  if (!run) return kExitUsage;
  try {
    return run();
  } catch (...) {
    return FailOnException(app);
  }
}
