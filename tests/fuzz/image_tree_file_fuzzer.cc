// Fuzzes the image tree file reader (ImageTree::Open) as a mount or extract
// meets a tree file from the store. Before opening, the harness writes the
// input's real length into the header's file_size and recomputes the CRC-32C,
// so that mutations get past the checksum and reach the structural checks. A
// tree that opens must have cost validation work linear in the file, and is
// then walked completely the way the FUSE ops and extract
// do: every node, dirent (and its Lookup), xattr (and GetXattr), sparse
// extent and layer digest; path lookups and in-root resolution of every
// symlink must terminate and agree with the walk.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/image_tree.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/tree_walk.h"

namespace lazyroot::fuzz {
namespace {

constexpr size_t kHeaderSize = 128, kFileSizeAt = 16, kCrcAt = 124;

void FixUp(std::vector<uint8_t>& b) {
  if (b.size() < kHeaderSize) return;
  PutLe64(b.data() + kFileSizeAt, b.size());
  uint32_t crc = Crc32c(0, b.data(), kCrcAt);
  crc = Crc32c(crc, b.data() + kHeaderSize, b.size() - kHeaderSize);
  PutLe32(b.data() + kCrcAt, crc);
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::vector<uint8_t> bytes(data, data + size);
  FixUp(bytes);
  // Validation allocates per node at most; never out of proportion to the file.
  const size_t bound = 16 * size + (1 << 20);
  Result<ImageTree> tree = Status::Aborted("");
  {
    AllocationWatch watch;
    tree = ImageTree::Open(std::move(bytes), "fuzz tree");
    FUZZ_CHECK(watch.largest() <= bound);
  }
  if (!tree.ok()) {
    CheckError(tree.status());
    return 0;
  }
  // Validation visits each record once, whatever the counts and ranges claim:
  // linear in the file (the smallest record, a dirent, is 12 bytes).
  FUZZ_CHECK(tree->validation_work() <= size / 12 + 1);
  WalkTree(*tree);
  return 0;
}
