// The parts of cli_common.h that meet the public API.
#include <lazyroot/lazyroot.hpp>

#include <cstdio>

#include "index/status.h"
#include "src/cli/cli_common.h"
#include "src/cli/progress_observer.h"

namespace lazyroot::cli {

std::string ForTerminal(std::string_view s) { return Displayable(s); }

int Fail(const lazyroot::Error& error) {
  // Messages name paths and tar entries from outside: never raw to a terminal.
  std::fprintf(stderr, "lazyroot: %s\n", Displayable(error.what()).c_str());
  return error.code() == LAZYROOT_INVALID_ARGUMENT ? kExitUsage : kExitFailure;
}

void NotesOnly::Note(const std::string& text) { std::fprintf(stderr, "lazyroot: %s\n", ForTerminal(text).c_str()); }

}  // namespace lazyroot::cli
