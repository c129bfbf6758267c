// SIGINT, SIGTERM and SIGHUP for a command that must clean up after itself.
//
// An InterruptScope blocks the three signals in the calling thread (every
// thread started later inherits the mask) and waits for them on a thread of
// its own. Outside Arm() a signal ends the process as it would have (default
// action, so a pull's partial files are what gc already cleans); while armed,
// the first one only sets flag() to its number, and the command stops at its
// next check and removes what it wrote (extract: DIR's temp dir). A second
// signal while armed ends the process at once. The destructor joins the
// thread and restores the mask.
#pragma once

#include <signal.h>

#include <atomic>
#include <thread>

namespace lazyroot::cli {

class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  void Arm() { armed_.store(true); }
  void Disarm() { armed_.store(false); }
  const std::atomic<int>* flag() const { return &signal_; }

 private:
  void Wait();

  sigset_t set_{}, old_{};
  std::atomic<bool> armed_{false}, stop_{false};
  std::atomic<int> signal_{0};
  std::thread thread_;
};

}  // namespace lazyroot::cli
