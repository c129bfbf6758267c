// lazyroot entry point: parse, dispatch, map errors to exit codes.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "src/cli/cli.h"

namespace lazyroot::cli {

Result<std::unique_ptr<Store>> OpenStore(const GlobalOptions& global) {
  return Store::Open(global.root.empty() ? Store::DefaultRoot() : global.root);
}

int Fail(const Status& st) {
  std::fprintf(stderr, "lazyroot: %s\n", st.message().c_str());
  return st.code() == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

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
  }
  if (!run) return kExitUsage;
  return run();
}
