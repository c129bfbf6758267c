// sha256_pair: Sha256Pair's two lanes (SHA-NI where the CPU has it) against
// two OpenSSL streams, under whatever sequence of updates and finishes the
// input spells: a lane's digest must never depend on how the bytes came.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "index/sha256.h"
#include "index/sha256_pair.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using lazyroot::Sha256;
  using lazyroot::Sha256Pair;
  Sha256Pair pair;
  Sha256 want[2];
  size_t i = 0;
  // Each step: an op byte, a 16-bit length, then that many bytes to hash.
  while (i + 3 <= size) {
    const uint8_t op = data[i];
    size_t len = static_cast<size_t>(data[i + 1] | data[i + 2] << 8);
    i += 3;
    len = std::min(len, size - i);
    const std::span<const uint8_t> bytes(data + i, len);
    i += len;
    const int lane = op >> 7;
    switch (op % 4) {
      case 0:
        pair.Update(lane, bytes);
        want[lane].Update(bytes);
        break;
      case 1: {
        FUZZ_CHECK(pair.Finish(lane) == want[lane].Finish());
        want[lane].Reset();
        break;
      }
      default:
        pair.UpdateBoth(bytes);
        want[0].Update(bytes);
        want[1].Update(bytes);
    }
  }
  FUZZ_CHECK(pair.Finish(0) == want[0].Finish());
  FUZZ_CHECK(pair.Finish(1) == want[1].Finish());
  return 0;
}
