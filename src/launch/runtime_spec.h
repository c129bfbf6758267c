// An OCI runtime-spec config.json for an image, converted from its config as
// the image spec's conversion.md says (process.args/env/cwd/user from the
// launch configuration; os, architecture, author, created, exposed ports,
// stop signal and labels as annotations), around the defaults `crun spec`
// and `runc spec` write (namespaces, mounts, masked paths, capabilities).
// What `extract --bundle` writes as DIR/config.json and `--krun-config` as
// /.krun_config.json (libkrun's init reads process.args/env/cwd from it).
#pragma once

#include <string>

#include "src/launch/launch_config.h"
#include "src/image/manifest.h"

namespace lazyroot {

struct RuntimeSpecOptions {
  std::string root_path = "rootfs";  // root.path, relative to the bundle
  bool terminal = false;
};

// The config.json text (pretty JSON, ends with a newline).
std::string RuntimeSpecJson(const ImageConfig& config, const LaunchConfig& launch,
                            const RuntimeSpecOptions& options = {});

}  // namespace lazyroot
