// The launch configuration of an image: what a VM launcher hands to
// krun_set_exec / krun_set_env / krun_set_workdir (or writes into an OCI
// runtime spec's `process`), derived from the image config with docker's
// rules, the user resolved from the image's own /etc/passwd and /etc/group
// read from the merged tree (never extracted). `lazyroot inspect --launch`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "index/image_content.h"
#include "index/image_tree.h"
#include "index/status.h"
#include "src/image/manifest.h"
#include "src/store/store.h"
#include "src/launch/user_lookup.h"

namespace lazyroot {

// What `docker run` lets a user change.
struct LaunchOverrides {
  // --entrypoint: replaces the image's Entrypoint (an empty string clears
  // it) and drops the image's Cmd, as docker does.
  std::optional<std::string> entrypoint;
  // Trailing arguments: replace the image's Cmd.
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::string> user;     // --user
  std::optional<std::string> workdir;  // --workdir
  std::vector<std::string> env;        // --env KEY=VALUE, replacing the image's KEY, applied in order
};

struct LaunchConfig {
  std::vector<std::string> args;  // argv: Entrypoint + Cmd
  std::vector<std::string> env;   // KEY=VALUE, image order, defaults appended
  std::string cwd;                // absolute
  std::string user;               // the User spec resolved ("" = root)
  ExecUser exec_user;
  std::vector<std::string> exposed_ports, volumes;
  std::string stop_signal;
  std::map<std::string, std::string> labels;
};

// docker's default PATH when the image's Env has none.
inline constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The image's /etc/passwd and /etc/group, read from `tree` through `content`
// (symlinks followed inside the image; every byte verified). nullopt when the
// image has no such file; Corruption/Unsupported naming the file when it is
// not a regular file or is larger than 4 MiB.
struct UserFiles {
  std::optional<std::string> passwd, group;
};
Result<UserFiles> ReadUserFiles(const ImageTree& tree, const ImageContent& content);

// Pure: config + overrides + the image's user files -> the launch
// configuration. kNotFound when the result has no command ("neither
// Entrypoint nor Cmd"), kInvalidArgument when an override is malformed; user
// lookup errors as ResolveExecUser's. A relative WorkingDir is made absolute
// ("rel" -> "/rel").
Result<LaunchConfig> MakeLaunchConfig(const ImageConfig& config, const LaunchOverrides& overrides,
                                      const UserFiles& files);

// The image config and launch configuration of a pulled image whose merged
// tree and content are open (OpenImage). Errors name the image.
// REQUIRES: the store lock, held shared.
struct ImageLaunch {
  ImageConfig config;
  LaunchConfig launch;
};
Result<ImageLaunch> LoadImageLaunch(Store& store, const ImageRecord& record, const ImageTree& tree,
                                    const ImageContent& content, const LaunchOverrides& overrides = {});

// What `lazyroot inspect --launch` prints: the image, args, env, cwd, user,
// uid, gid, additional_gids, home, exposed_ports, volumes, stop_signal,
// labels (pretty JSON, no trailing newline).
std::string LaunchJson(const ImageRecord& record, const LaunchConfig& launch);

}  // namespace lazyroot
