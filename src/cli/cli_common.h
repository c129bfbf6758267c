// What every command of the lazyroot command line shares, free of the
// library's C++ core: argument parsing (CLI11), exit codes (0 ok, 1 failure,
// 2 usage) and the command registry. The launcher's verbs include this and
// <lazyroot/lazyroot.hpp> alone, so they use nothing a launcher could not.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lazyroot {
inline namespace cxx_v0 {
class Error;  // <lazyroot/lazyroot.hpp>
}  // namespace cxx_v0
}  // namespace lazyroot

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
void AddSaveCommand(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddLoginCommands(CLI::App& app, const GlobalOptions& global, Runner* run);
void AddDfCommand(CLI::App& app, const GlobalOptions& global, Runner* run);

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

// --registries-conf FILE, --hosts-dir DIR, -v/--debug (endpoint_options.cc),
// for pull and inspect --remote; `needs` (may be null) is an option each requires.
struct EndpointArgs {
  std::string registries_conf, hosts_dir;
  bool verbose = false;
};
void AddEndpointOptions(CLI::App* cmd, EndpointArgs* args, CLI::Option* needs = nullptr);

// `lazyroot mount IMAGE DIR` without a debug view or --foreground
// (cmd_mount_library.cc): the mount daemon of the public API.
struct LibraryMount {
  std::string image, dir;
  bool pull = true, allow_other = false, suid = false, dev = false, krun_config = false;
  uint64_t cache_mib = 256;  // 0: none
  unsigned threads = 8, read_ahead_kib = 1024;
  std::vector<std::string> limits;
};
int RunLibraryMount(const GlobalOptions& global, const LibraryMount& mount);

// Adds `--limit NAME=VALUE` (repeatable) to cmd, its help listing the defaults.
void AddLimitOption(CLI::App* cmd, std::vector<std::string>* values);
// $LAZYROOT_LIMITS items, then --limit values: what the library is given
// as its `limits` (applied in order, so the flags win). A bad item is
// reported (naming it and where it came from) and gives nullopt: exit 2.
std::optional<std::vector<std::string>> LimitItems(const std::vector<std::string>& values);

// s with control characters and invalid UTF-8 escaped: what may reach a
// terminal of text that names an image's files.
std::string ForTerminal(std::string_view s);

// Prints "lazyroot: <message>" to stderr and returns the exit code for a
// public API error (2 for an invalid argument, else 1).
int Fail(const lazyroot::Error& error);

}  // namespace lazyroot::cli
