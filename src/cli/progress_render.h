// Renderers of PullProgress for the terminal: bars on a TTY, periodic plain
// lines in logs, JSON lines for programs, nothing with -q. All write to
// stderr and are thread-safe.
#pragma once

#include <memory>
#include <string>

#include "src/progress.h"

namespace lazyroot::cli {

enum class ProgressMode { kAuto, kTty, kPlain, kJson, kNone };

// "auto" picks tty when stderr is a terminal, else plain.
std::unique_ptr<PullProgress> MakeProgress(ProgressMode mode);

}  // namespace lazyroot::cli
