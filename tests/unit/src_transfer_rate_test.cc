#include <gtest/gtest.h>

#include <limits>

#include "src/pull/transfer_rate.h"

namespace lazyroot {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(FormatTransfer, RateAndTimeLeft) {
  // 74.9 MiB left at 38.2 MiB/s: 1.96 s, shown rounded up.
  EXPECT_EQ(FormatTransfer(45 * kMiB + kMiB / 10, 120 * kMiB, 38.2 * kMiB),
            "45.1 MiB / 120.0 MiB  38.2 MiB/s  0:02 left");
  EXPECT_EQ(FormatTransfer(0, 3 * 1024 * kMiB, 1 * kMiB), "0 B / 3.0 GiB  1.0 MiB/s  51:12 left");
  EXPECT_EQ(FormatTransfer(0, 4000 * kMiB, 0.25 * kMiB), "0 B / 3.9 GiB  256.0 KiB/s  4:26:40 left");
}

TEST(FormatTransfer, NoTimeLeftWithoutTotalOrRate) {
  EXPECT_EQ(FormatTransfer(512, 0, 2048), "512 B  2.0 KiB/s");               // size unknown: no ETA
  EXPECT_EQ(FormatTransfer(512, 1024, 0), "512 B / 1.0 KiB");                // no rate yet
  EXPECT_EQ(FormatTransfer(1024, 1024, 100), "1.0 KiB / 1.0 KiB  100 B/s");  // done
  EXPECT_EQ(FormatTransfer(0, 1024, std::numeric_limits<double>::infinity()), "0 B / 1.0 KiB");
  EXPECT_EQ(FormatTransfer(0, uint64_t{1} << 50, 1), "0 B / 1024.0 TiB  1 B/s");  // 100 h and more: no estimate
}

TEST(FormatTimeLeft, Shapes) {
  EXPECT_EQ(FormatTimeLeft(0), "0:00");
  EXPECT_EQ(FormatTimeLeft(59.2), "1:00");
  EXPECT_EQ(FormatTimeLeft(725), "12:05");
  EXPECT_EQ(FormatTimeLeft(3909), "1:05:09");
  EXPECT_EQ(FormatTimeLeft(-1), "");
  EXPECT_EQ(FormatTimeLeft(std::numeric_limits<double>::quiet_NaN()), "");
}

TEST(TransferRate, SmoothsAndRestarts) {
  TransferRate r;
  r.Sample(0, 10.0);
  EXPECT_EQ(r.rate(), 0);
  r.Sample(100, 10.1);  // too short an interval: folded into the next
  EXPECT_EQ(r.rate(), 0);
  r.Sample(1000, 11.0);  // first interval: 1000 B/s
  EXPECT_DOUBLE_EQ(r.rate(), 1000);
  r.Sample(1000 + 4000, 12.0);  // 4000 B/s for a second moves the mean part of the way only
  EXPECT_GT(r.rate(), 1000);
  EXPECT_LT(r.rate(), 2500);
  for (int i = 1; i <= 30; ++i) r.Sample(5000 + 4000 * static_cast<uint64_t>(i), 12.0 + i);
  EXPECT_NEAR(r.rate(), 4000, 1);  // a steady rate is reached
  r.Sample(10, 50.0);              // a restarted download: start over
  EXPECT_EQ(r.rate(), 0);
}

}  // namespace
}  // namespace lazyroot
