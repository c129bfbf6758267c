// The rate and time left of a transfer, as progress output shows them:
// "45.1 MiB / 120.0 MiB  38.2 MiB/s  0:02 left". TransferRate smooths the
// rate (an exponentially weighted mean with a ~3 s time constant) so that
// one slow or bursty read does not make the time left jump about.
// Value types; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

namespace lazyroot {

class TransferRate {
 public:
  // done bytes at now_s seconds (any monotonic origin). A done that goes
  // down (a restarted download) starts the mean over.
  void Sample(uint64_t done, double now_s);
  // Bytes per second; 0 until the first interval of at least 0.2 s.
  double rate() const { return rate_; }

 private:
  bool started_ = false;
  uint64_t last_done_ = 0;
  double last_s_ = 0;
  double rate_ = 0;
};

// "0:02", "12:05", "1:05:09"; "" for a negative or non-finite time or one
// beyond 100 hours (nobody waits for that estimate).
std::string FormatTimeLeft(double seconds);

// "45.1 MiB / 120.0 MiB  38.2 MiB/s  0:02 left". Without a total (0: the
// size is not known) just "45.1 MiB  38.2 MiB/s", no time left; without a
// rate (0) no rate and no time left; when done reaches total no time left.
std::string FormatTransfer(uint64_t done, uint64_t total, double rate);

// "45.1 MiB", "512 B": binary units, one decimal above bytes.
std::string HumanBytes(uint64_t bytes);

}  // namespace lazyroot
