#include "src/pull/transfer_rate.h"

#include <cmath>
#include <cstdio>

namespace lazyroot {

void TransferRate::Sample(uint64_t done, double now_s) {
  if (!started_ || done < last_done_) {
    started_ = true;
    last_done_ = done;
    last_s_ = now_s;
    rate_ = 0;
    return;
  }
  const double dt = now_s - last_s_;
  // Shorter intervals are folded into the next one: a burst of callbacks
  // a few microseconds apart would otherwise read as an absurd rate.
  if (dt < 0.2) return;
  const double instant = static_cast<double>(done - last_done_) / dt;
  constexpr double kTimeConstant = 3.0;
  const double weight = rate_ == 0 ? 1.0 : 1.0 - std::exp(-dt / kTimeConstant);
  rate_ += weight * (instant - rate_);
  last_done_ = done;
  last_s_ = now_s;
}

std::string FormatTimeLeft(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= 100 * 3600) return "";
  const auto s = static_cast<unsigned long>(std::ceil(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lu:%02lu", s / 60, s % 60);
  }
  return buf;
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string FormatTransfer(uint64_t done, uint64_t total, double rate) {
  std::string out = HumanBytes(done);
  if (total > 0) out += " / " + HumanBytes(total);
  if (!(rate > 0) || !std::isfinite(rate)) return out;
  out += "  " + HumanBytes(static_cast<uint64_t>(rate)) + "/s";
  if (total > done) {
    std::string left = FormatTimeLeft(static_cast<double>(total - done) / rate);
    if (!left.empty()) out += "  " + left + " left";
  }
  return out;
}

}  // namespace lazyroot
