// bench_sha256_lanes: what one and two SHA-256 streams cost per CPU second
// on this machine, as the pull hashes them (index/sha256_pair.h): OpenSSL
// (Sha256), one Sha256Pair lane, and both lanes over the same bytes
// (UpdateBoth, the DiffID with the file digests, the blob with its chunks).
// Run by hand:  build/tests/bench_sha256_lanes [buffer_KiB [total_MiB]]
// (default 256 KiB, in cache as the pull's buffers are, hashed to 1 GiB).
// Prints MB/s of input per CPU second (this thread), median of 5.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "index/sha256.h"
#include "index/sha256_pair.h"

namespace {

double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double MedianRate(size_t total, const std::function<void()>& pass, size_t passes) {
  std::vector<double> rates;
  for (int r = 0; r < 5; ++r) {
    const double t0 = CpuNow();
    for (size_t i = 0; i < passes; ++i) pass();
    rates.push_back(static_cast<double>(total) / 1e6 / (CpuNow() - t0));
  }
  std::sort(rates.begin(), rates.end());
  return rates[2];
}

}  // namespace

int main(int argc, char** argv) {
  const size_t buf_bytes = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 256) << 10;
  const size_t total = (argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024) << 20;
  if (buf_bytes == 0 || total < buf_bytes) {
    std::fprintf(stderr, "usage: bench_sha256_lanes [buffer_KiB [total_MiB]]\n");
    return 2;
  }
  std::vector<uint8_t> buf(buf_bytes);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 131 + 7);
  const size_t passes = total / buf_bytes;
  const size_t hashed = passes * buf_bytes;

  lazyroot::Sha256 openssl;
  lazyroot::Sha256Pair pair;
  const double one_openssl = MedianRate(hashed, [&] { openssl.Update(buf); }, passes);
  const double one_lane = MedianRate(hashed, [&] { pair.Update(0, buf); }, passes);
  const double two_lanes = MedianRate(hashed, [&] { pair.UpdateBoth(buf); }, passes);
  std::printf("buffer %zu KiB, %zu MiB per run, SHA-NI %s\n", buf_bytes >> 10, hashed >> 20,
              pair.UsesShaNi() ? "yes" : "no");
  std::printf("one stream, OpenSSL:          %7.0f MB/s of input per CPU second\n", one_openssl);
  std::printf("one stream, a Sha256Pair lane: %6.0f MB/s\n", one_lane);
  std::printf("two streams, UpdateBoth:       %6.0f MB/s (%.0f MB/s of digests; %.2fx the cost of one stream)\n",
              two_lanes, 2 * two_lanes, std::max(one_openssl, one_lane) / two_lanes);
  // Prints a byte of each digest, so the hashing cannot be optimized away.
  std::printf("(%02x%02x%02x)\n", openssl.Finish()[0], pair.Finish(0)[0], pair.Finish(1)[0]);
  return 0;
}
