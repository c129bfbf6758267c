// Writing one file of our own at the top of an extracted root (libkrun's
// /.krun_config.json) without trusting anything the image put there: the
// root is opened O_NOFOLLOW, the bytes go to a fresh temp file created
// O_EXCL|O_NOFOLLOW beside the name, and a rename replaces whatever the image
// had at the name (a symlink to the host's files, a hardlink to the image's
// /etc/passwd) without writing through it (CVE-2025-24965 in crun's krun
// handler was writing through such a link).
#pragma once

#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

// Writes `data` as root/`name` (one path component, mode 0644, fsynced).
// IoError naming the file on failure (e.g. the image has a directory there);
// the temp file is removed on every failure.
Status WriteRootFile(const std::string& root, std::string_view name, std::string_view data);

}  // namespace lazyroot
