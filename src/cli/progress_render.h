// Renderers of PullProgress for the terminal: bars on a TTY, periodic plain
// lines in logs, JSON lines for programs, nothing with -q. All write to
// stderr and are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/pull/progress.h"
#include "src/pull/transfer_rate.h"

namespace lazyroot::cli {

enum class ProgressMode { kAuto, kTty, kPlain, kJson, kNone };

// "auto" picks tty when stderr is a terminal, else plain.
std::unique_ptr<PullProgress> MakeProgress(ProgressMode mode);

// One redrawn line on stderr, "<label> [====    ] done / total", for work
// measured in bytes (then with the rate and time left) or items (fsck). Drawn only when enabled (a TTY) and
// the total is at least min_total, at most every 100 ms. Not thread-safe.
class BarLine {
 public:
  BarLine(bool enabled, uint64_t min_total) : enabled_(enabled), min_total_(min_total) {}
  ~BarLine() { Clear(); }
  BarLine(const BarLine&) = delete;
  BarLine& operator=(const BarLine&) = delete;
  void Update(const std::string& label, uint64_t done, uint64_t total);
  // Erases the line (before other output).
  void Clear();

 private:
  bool enabled_;
  uint64_t min_total_;
  bool drawn_ = false;
  int64_t last_draw_ms_ = 0;
  std::string label_;
  TransferRate rate_;  // bytes only
};

}  // namespace lazyroot::cli
