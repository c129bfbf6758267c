#include "src/cli/interrupt.h"

#include <pthread.h>

#include <cerrno>
#include <ctime>

namespace lazyroot::cli {

InterruptScope::InterruptScope() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set_, &old_);
  try {
    thread_ = std::thread([this] { Wait(); });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);  // no waiter: the signals keep their default action
  }
}

InterruptScope::~InterruptScope() {
  stop_.store(true);
  if (thread_.joinable()) {
    ::pthread_kill(thread_.native_handle(), SIGHUP);  // wakes the wait; it sees stop_ and swallows this one
    thread_.join();
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);  // a signal pending since the join is delivered here
}

void InterruptScope::Wait() {
  // The destructor wakes us with a thread-directed SIGHUP; the timeout is
  // only a backstop.
  const struct timespec tick = {1, 0};
  while (!stop_.load()) {
    const int sig = ::sigtimedwait(&set_, nullptr, &tick);
    if (sig < 0) continue;  // EAGAIN (timeout) or EINTR
    if (stop_.load()) break;
    if (armed_.load() && signal_.load() == 0) {
      signal_.store(sig);
      continue;
    }
    // Not armed, or a second signal: the default action, delivered to this
    // thread (the only one with the signal unblocked).
    ::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    ::pthread_kill(::pthread_self(), sig);
  }
}

}  // namespace lazyroot::cli
