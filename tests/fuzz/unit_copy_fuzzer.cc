// Fuzzes the unit copy file reader (index/unit_copy.h) as a mount or fsck
// meets a file under units/ in the store. Two shapes of input, by the first
// byte: a whole file (the header crc32 fixed up so that mutations reach the
// checks after it), or a payload that the harness encodes with EncodeUnitCopy
// and then damages at input-chosen places (so that the zstd frame is valid
// more often than a mutator would make it). A copy that decodes must be the
// unit it claims, of the length it claims, and decoding never allocates more
// than a unit can hold.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "index/unit_copy.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot::fuzz {
namespace {

constexpr size_t kHeaderBytes = 8 + 71 + 8 + 8 + 4 + 4;
const std::string kDigest = "sha256:" + std::string(64, 'a');

void FixUp(std::vector<uint8_t>& b) {
  if (b.size() < kHeaderBytes) return;
  uLong c = crc32(0, Z_NULL, 0);
  c = crc32(c, b.data(), static_cast<uInt>(kHeaderBytes - 4));
  PutLe32(b.data() + kHeaderBytes - 4, static_cast<uint32_t>(c));
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  if (size == 0) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  Rng rng(in);
  std::vector<uint8_t> file;
  if (data[0] % 2 == 0) {
    file.assign(in.begin(), in.end());
  } else {
    // Payloads up to 1 MiB: the input repeated, so small inputs make big units.
    std::vector<uint8_t> payload;
    const size_t want = in.empty() ? 0 : static_cast<size_t>(rng.Range(1, 1 << 20));
    while (payload.size() < want) payload.insert(payload.end(), in.begin(), in.begin() + std::min(in.size(), want - payload.size()));
    auto enc = EncodeUnitCopy(kDigest, rng.Range(0, 1 << 30), payload);
    if (!enc.ok()) return 0;
    file.assign(enc->begin(), enc->end());
    for (uint64_t n = rng.Range(0, 3); n > 0 && !file.empty(); --n) file[rng.Next() % file.size()] ^= static_cast<uint8_t>(rng.Range(1, 255));
    if (rng.Next() % 4 == 0) file.resize(static_cast<size_t>(rng.Range(0, file.size())));
  }
  if (rng.Next() % 2 == 0) FixUp(file);
  const size_t bound = kMaxUnitCopyBytes + (1 << 20);
  Result<UnitCopyInfo> info = Status::Aborted("");
  {
    AllocationWatch watch;
    info = CheckUnitCopy(file, "fuzz unit");
    FUZZ_CHECK(watch.largest() <= bound);
  }
  if (!info.ok()) {
    CheckError(info.status());
    return 0;
  }
  FUZZ_CHECK(info->length >= 1 && info->length <= kMaxUnitCopyBytes);
  std::vector<uint8_t> out(static_cast<size_t>(info->length));
  Status st = DecodeUnitCopy(file, info->layer_digest, info->start, out, "fuzz unit");
  FUZZ_CHECK(st.ok());  // what CheckUnitCopy accepts, the reader of that unit accepts
  // Asked for another unit, it must refuse.
  Status other = DecodeUnitCopy(file, info->layer_digest, info->start + 1, out, "fuzz unit");
  FUZZ_CHECK(!other.ok());
  CheckError(other);
  if (out.size() > 1) {
    std::vector<uint8_t> shorter(out.size() - 1);
    FUZZ_CHECK(!DecodeUnitCopy(file, info->layer_digest, info->start, shorter, "fuzz unit").ok());
  }
  return 0;
}
