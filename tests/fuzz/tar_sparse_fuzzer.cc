// Fuzzes the GNU sparse maps: old-GNU (offset, numbytes) pairs as in 'S'
// headers and their extension blocks, and the PAX 1.0 map parsed block by
// block from the data area; each map then goes through
// NormalizeSparseExtents with a file size and stored size derived from the
// input (often the consistent ones, so that the success path is reached).
// A map that normalises must describe a readable file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "index/tar_sparse.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using lazyroot::SparseExtent;

void CheckNormalized(const std::vector<SparseExtent>& v, uint64_t real_size, uint64_t stored_size) {
  FUZZ_CHECK(!v.empty());
  if (v.size() == 1 && v[0].length == 0) {
    FUZZ_CHECK(v[0].logical_offset == real_size && stored_size == 0);
    return;
  }
  uint64_t end = 0, sum = 0;
  for (const SparseExtent& e : v) {
    FUZZ_CHECK(e.length > 0);
    FUZZ_CHECK(e.logical_offset >= end);
    FUZZ_CHECK(e.logical_offset <= real_size && e.length <= real_size - e.logical_offset);
    end = e.logical_offset + e.length;
    sum += e.length;
  }
  FUZZ_CHECK(sum == stored_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::span<const uint8_t> in(data + 1, size - 1);
  Rng rng(in);
  constexpr size_t kMaxExtents = 1 << 12;
  std::vector<SparseExtent> map;
  if (mode & 1) {
    // Old GNU: 4 pairs in the header, 21 per extension block.
    Status s = tar::AppendOldGnuSparseEntries(in.data(), in.size() / 24, kMaxExtents, &map);
    CheckError(s);
    if (!s.ok()) return 0;
    FUZZ_CHECK(map.size() <= kMaxExtents);
  } else {
    tar::SparseMap1x0Parser parser(kMaxExtents);
    uint8_t block[512];
    for (size_t at = 0; at < in.size() && !parser.done(); at += 512) {
      std::memset(block, 0, sizeof block);
      std::memcpy(block, in.data() + at, std::min<size_t>(512, in.size() - at));
      Status s = parser.ConsumeBlock(block);
      CheckError(s);
      if (!s.ok()) return 0;
    }
    if (!parser.done()) return 0;
    map = parser.extents();
    FUZZ_CHECK(map.size() <= kMaxExtents);
  }
  // The sizes a consistent archive would declare, or a near miss.
  uint64_t end = 0, sum = 0;
  for (const SparseExtent& e : map) {
    end = std::max(end, e.logical_offset + e.length);
    sum += e.length;
  }
  uint64_t real_size = end, stored_size = sum;
  switch (mode >> 1 & 3) {
    case 0: break;
    case 1: real_size += rng.Range(0, 1 << 20); break;
    case 2: stored_size += rng.Range(0, 2) - 1; break;
    default: real_size = rng.Next(); stored_size = rng.Next() % (real_size + 1); break;
  }
  std::vector<SparseExtent> normalized = map;
  Status s = tar::NormalizeSparseExtents(&normalized, real_size, stored_size);
  CheckError(s);
  if (s.ok()) CheckNormalized(normalized, real_size, stored_size);
  return 0;
}
