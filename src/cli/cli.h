// The lazyroot command line: argument parsing (CLI11) mapped to library
// calls, results to output and exit codes (0 ok, 1 failure, 2 usage).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "index/limits.h"
#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot::cli {

struct GlobalOptions {
  std::string root;  // --root; empty = Store::DefaultRoot()
};

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// "1 layer", "3 layers", "1 index", "2 indexes": a count with its noun in
// the right number (plural: noun + "s" unless given).
inline std::string Counted(unsigned long long n, std::string_view noun, std::string_view plural = {}) {
  std::string out = std::to_string(n) + " ";
  if (n == 1) return out.append(noun);
  return plural.empty() ? out.append(noun).append("s") : out.append(plural);
}

// "unknown command 'lyaers' (did you mean 'layers'?)" for a first word that
// names no command of app; "" when it does (or there is none). Global
// options taking a value (--root DIR) are skipped.
std::string UnknownCommandMessage(const CLI::App& app, int argc, const char* const* argv);

// Each command registers itself and sets *run to what executes it.
using Runner = std::function<int()>;
void AddPullCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddImageCommands(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddMountCommands(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddExtractCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddFsckCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddLayersCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddWhichCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddLsCommands(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddDiffCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddLoginCommands(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddDfCommand(CLI::App& app, const GlobalOptions& global, Runner* run);

// `lazyroot images`: the images in the store, as a table or JSON.
int ListImages(const GlobalOptions& global, const std::string& format);

// The record of a pulled image named as the user typed it; kNotFound says
// "pull it first".
Result<ImageRecord> FindImage(Store& store, const std::string& text);
// FindImage, but a missing image is pulled first (under `limits`) when pull is true.
// REQUIRES: the store lock, held shared (the pull runs under it).
Result<ImageRecord> FindOrPullImage(Store& store, const std::string& text, bool pull, const Limits& limits = Limits());

// `lazyroot inspect --launch IMAGE [ARG...]` (cmd_launch.cc): the launch
// configuration as JSON, with docker run's overrides.
struct LaunchArgs {
  bool launch = false;
  std::string entrypoint, user, workdir;
  CLI::Option *entrypoint_opt = nullptr, *user_opt = nullptr, *workdir_opt = nullptr, *args_opt = nullptr;
  std::vector<std::string> env, args, limits;
};
void AddLaunchOptions(CLI::App* inspect, LaunchArgs* args);
int RunInspectLaunch(const GlobalOptions& global, const std::string& image, const LaunchArgs& args);

// `lazyroot inspect --remote IMAGE` (cmd_inspect_remote.cc): the manifest
// and config as the registry has them, no layer pulled.
struct RemoteArgs {
  bool remote = false, insecure = false, tls_verify = true;
  std::string platform, authfile;
  std::vector<std::string> cert_dirs;
};
void AddRemoteOptions(CLI::App* inspect, RemoteArgs* args);
int RunInspectRemote(const std::string& image, const RemoteArgs& args);

// Adds `--limit NAME=VALUE` (repeatable) to cmd, its help listing the defaults.
void AddLimitOption(CLI::App* cmd, std::vector<std::string>* values);
// The budgets: defaults, then $LAZYROOT_LIMITS, then each --limit value.
// kInvalidArgument (exit 2) naming the bad item and where it came from.
Result<Limits> ResolveLimits(const std::vector<std::string>& values);

// Opens the store named by --root or the environment.
Result<std::unique_ptr<Store>> OpenStore(const GlobalOptions& global);
// Prints "lazyroot: <message>" to stderr and returns the exit code for st.
int Fail(const Status& st);

}  // namespace lazyroot::cli
