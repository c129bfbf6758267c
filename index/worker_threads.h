// RunOnThreads: `worker` run by up to n threads, this one included, joined
// before returning. A thread that cannot be started (EAGAIN, out of memory)
// is not an error: the workers already running take its share, so worker
// must pull its work from a shared queue or counter. worker must not throw.
#pragma once

#include <functional>
#include <system_error>
#include <thread>
#include <vector>

namespace lazyroot {

inline void RunOnThreads(unsigned n, const std::function<void()>& worker) {
  std::vector<std::thread> threads;
  // Reserved first: a vector growing (bad_alloc) with threads running would
  // destroy joinable threads, which is std::terminate.
  threads.reserve(n > 1 ? n - 1 : 0);
  for (unsigned t = 1; t < n; ++t) {
    try {
      threads.emplace_back(worker);
    } catch (const std::system_error&) {
      break;
    }
  }
  worker();
  for (auto& t : threads) t.join();
}

}  // namespace lazyroot
