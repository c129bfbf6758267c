// Fuzzes the image tree file reader as a mount or extract meets a tree file
// from the store: whole (ImageTree::Open, what extract, fsck and the debug
// verbs do) and lazily (ImageTree::OpenLazy, what a mount does). Before
// opening, the harness writes the input's real length into the header's
// file_size and the total of the regular nodes' sizes (as far as the header's
// node table lies in the input) and recomputes the block checksums and the
// header's CRC-32C, so that mutations get past them and reach the structural
// checks; inputs
// ending in 0xA5 then get one body byte flipped, so that a lazy reader meets
// a damaged block. A tree that opens whole must have cost validation work
// linear in the file, and is then walked completely the way the FUSE ops and
// extract do: every node, dirent (and its Lookup), xattr (and GetXattr),
// sparse extent and layer digest; path lookups and in-root resolution of
// every symlink must terminate and agree with the walk. The same file opened
// lazily must open too and walk the same without throwing. A file only the
// lazy reader opens is walked with every damage it finds thrown as
// TreeCorruptionError and caught: anything else is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/image_tree.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/tree_walk.h"

namespace lazyroot::fuzz {
namespace {

constexpr size_t kHeaderSize = 136, kFileSizeAt = 16, kBlockSizeAt = 112, kBlockCountAt = 116, kCrcAt = 124;
constexpr size_t kNodeCountAt = 24, kNodesOffsetAt = 48, kRegularBytesAt = 128, kNodeSize = 80;

void FixUp(std::vector<uint8_t>& b) {
  if (b.size() < kHeaderSize) return;
  PutLe64(b.data() + kFileSizeAt, b.size());
  const uint64_t nodes = GetLe64(b.data() + kNodesOffsetAt), node_count = GetLe32(b.data() + kNodeCountAt);
  if (nodes <= b.size() && node_count <= (b.size() - nodes) / kNodeSize) {
    uint64_t total = 0;
    for (uint64_t i = 0; i < node_count; ++i) {
      const uint8_t* r = b.data() + nodes + i * kNodeSize;
      if (r[0] != 1) continue;  // regular files only
      const uint64_t size = GetLe64(r + 32);
      total = total > UINT64_MAX - size ? UINT64_MAX : total + size;
    }
    PutLe64(b.data() + kRegularBytesAt, total);
  }
  const uint64_t block_size = GetLe32(b.data() + kBlockSizeAt), count = GetLe32(b.data() + kBlockCountAt);
  const uint64_t body = (kHeaderSize + 4 * count + 7) & ~uint64_t{7};
  if (body > b.size()) return;
  if (block_size > 0) {
    for (uint64_t k = 0; k < count && body + k * block_size < b.size(); ++k) {
      const uint64_t at = body + k * block_size;
      PutLe32(b.data() + kHeaderSize + 4 * k, Crc32c(0, b.data() + at, std::min<uint64_t>(block_size, b.size() - at)));
    }
  }
  uint32_t crc = Crc32c(0, b.data(), kCrcAt);
  crc = Crc32c(crc, b.data() + kCrcAt + 4, body - (kCrcAt + 4));
  PutLe32(b.data() + kCrcAt, crc);
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::vector<uint8_t> bytes(data, data + size);
  FixUp(bytes);
  if (size > kHeaderSize + 8 && data[size - 1] == 0xA5) {
    const uint64_t at = kHeaderSize + GetLe32(data + size - 5) % (size - kHeaderSize);
    bytes[at] ^= 0x20;
  }
  // Validation allocates per node at most; never out of proportion to the file.
  const size_t bound = 16 * size + (1 << 20);
  Result<ImageTree> tree = Status::Aborted("");
  {
    AllocationWatch watch;
    tree = ImageTree::Open(bytes, "fuzz tree");
    FUZZ_CHECK(watch.largest() <= bound);
  }
  Result<ImageTree> lazy = Status::Aborted("");
  {
    AllocationWatch watch;
    lazy = ImageTree::OpenLazy(bytes, "fuzz tree");
    FUZZ_CHECK(watch.largest() <= bound);
  }
  if (!lazy.ok()) CheckError(lazy.status());
  if (!tree.ok()) {
    CheckError(tree.status());
    if (lazy.ok()) WalkLazyTree(*lazy);
    return 0;
  }
  // Validation visits each record once, whatever the counts and ranges claim:
  // linear in the file (the smallest record, a dirent, is 12 bytes).
  FUZZ_CHECK(tree->validation_work() <= size / 12 + 1);
  WalkTree(*tree);
  // What opens whole opens lazily, and reads the same without a throw.
  FUZZ_CHECK(lazy.ok());
  try {
    WalkTree(*lazy);
    FUZZ_CHECK(lazy->node_count() == tree->node_count());
    for (NodeId id = 0; id < tree->node_count(); ++id) {
      FUZZ_CHECK(lazy->GetNode(id).size == tree->GetNode(id).size);
      FUZZ_CHECK(lazy->ChildCount(id) == tree->ChildCount(id));
    }
    FUZZ_CHECK(lazy->regular_bytes() == tree->regular_bytes());  // statfs: the same either way
  } catch (const TreeCorruptionError&) {
    FUZZ_CHECK(false);
  }
  return 0;
}
