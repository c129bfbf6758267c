// Fuzzes the layer index file reader (LayerIndex::Parse, ParseCheckpoints and
// ParseFileDigests)
// as the merge and the mount meet an index file from the store. The input is
// an index file whose entry section is stored raw (flag bit 0 clear: what
// scripts/fuzz_seeds.py writes), so mutations land on records rather than on
// deflate bits. Before parsing, the harness
//  - if the flag bit is set, deflates the raw entry section and fixes the
//    section offsets and the inflated length, as LayerIndex::Serialize would;
//  - recomputes the checkpoint table's CRC-32 (for an even-sized input; an
//    odd-sized one keeps whatever CRC it has: the index parsers leave it to
//    the section's SHA-256) and then every section's SHA-256 and the
//    header's (format v4: ResealLayerIndexFile),
// so mutations get past the checksums. An odd-sized input whose size is 3
// mod 4 then has one byte of its file digest section flipped: the mount's
// reader (ParseCheckpoints) must not notice, Parse and ParseFileDigests must. The file digest section (format v3)
// is what the header's file digest count says at the end of the file, the
// chunk digest section (v2) what the chunk count says before it. No allocation may be out of
// proportion to the file (an inflated entry count must not size a vector).
// An index that parses must serialise to bytes that parse back to the same
// serialisation.
#include <zlib.h>

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "index/layer_index.h"
#include "index/sha256.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot::fuzz {
namespace {

constexpr size_t kHeaderSize = 304;  // index/FORMAT.md, version 4

void FixUp(std::vector<uint8_t>& b, bool fix_table_crc) {
  if (b.size() < kHeaderSize) return;
  uint64_t e_len = GetLe64(b.data() + 112);
  // The file digests close the file, the chunk digests come before them:
  // each at most what is there after the header.
  uint64_t f_len = GetLe64(b.data() + 192);
  f_len = f_len > (b.size() - kHeaderSize) / 40 ? 0 : f_len * 40;
  uint64_t d_len = GetLe64(b.data() + 144);
  d_len = d_len > (b.size() - kHeaderSize - f_len) / 32 ? 0 : d_len * 32;
  if (e_len > b.size() - kHeaderSize - d_len - f_len) e_len = b.size() - kHeaderSize - d_len - f_len;
  if (GetLe32(b.data() + 12) & 1) {
    std::vector<uint8_t> packed(compressBound(e_len));
    uLongf packed_len = packed.size();
    if (compress2(packed.data(), &packed_len, b.data() + kHeaderSize, e_len, 1) == Z_OK) {
      std::vector<uint8_t> out(b.begin(), b.begin() + kHeaderSize);
      out.insert(out.end(), packed.begin(), packed.begin() + packed_len);
      out.insert(out.end(), b.begin() + kHeaderSize + e_len, b.end());
      PutLe32(out.data() + 136, static_cast<uint32_t>(e_len));
      e_len = packed_len;
      b = std::move(out);
    }
  }
  PutLe64(b.data() + 104, kHeaderSize);
  PutLe64(b.data() + 112, e_len);
  PutLe64(b.data() + 120, kHeaderSize + e_len);
  const size_t c_off = kHeaderSize + e_len, c_len = b.size() - c_off - d_len - f_len;
  PutLe64(b.data() + 128, c_len);
  PutLe64(b.data() + 152, c_off + c_len);
  PutLe64(b.data() + 200, c_off + c_len + d_len);
  // The checkpoint table closes with its own CRC-32 of everything before it.
  if (c_len >= 4 && fix_table_crc) {
    PutLe32(b.data() + c_off + c_len - 4, static_cast<uint32_t>(crc32(0L, b.data() + c_off, static_cast<uInt>(c_len - 4))));
  }
  // Every section's SHA-256, then the header's (version 4).
  ResealLayerIndexFile(b);
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::vector<uint8_t> bytes(data, data + size);
  FixUp(bytes, size % 2 == 0);
  // A damaged file digest section (format v4's own SHA-256): what only
  // `diff` and fsck read.
  const bool damage_files = size % 4 == 3 && bytes.size() >= kHeaderSize &&
                            GetLe64(bytes.data() + 200) < bytes.size() && GetLe64(bytes.data() + 200) >= kHeaderSize;
  if (damage_files) bytes[GetLe64(bytes.data() + 200)] ^= 1;

  // No allocation may be out of proportion to the records: the input is the
  // raw entry section (what any inflated one can be), a TarEntry in memory
  // is at most ~15x its smallest record, so 64x plus slack is generous.
  const size_t bound = 64 * std::max(size, bytes.size()) + (1 << 20);
  std::string diff_id;
  Result<CheckpointTable> table = Status::Aborted("");
  Result<LayerIndex> idx = Status::Aborted("");
  Result<std::vector<FileDigest>> files = Status::Aborted("");
  {
    AllocationWatch watch;
    table = LayerIndex::ParseCheckpoints(bytes, "fuzz index", "", &diff_id);
    files = LayerIndex::ParseFileDigests(bytes, "fuzz index", "", nullptr);
    idx = LayerIndex::Parse(bytes, "fuzz index", "");
    if (watch.largest() > bound) {
      std::fprintf(stderr, "a %zu-byte index file made a %zu-byte allocation\n", bytes.size(), watch.largest());
    }
    FUZZ_CHECK(watch.largest() <= bound);
  }
  if (!table.ok()) CheckError(table.status());
  if (!files.ok()) CheckError(files.status());
  if (table.ok()) {
    // The section on its own: the same table when its crc32 is left to the
    // caller; with the crc32 checked, the same table or a crc32 mismatch.
    const std::span<const uint8_t> section(bytes.data() + GetLe64(bytes.data() + 120), GetLe64(bytes.data() + 128));
    Result<CheckpointTable> covered = CheckpointTable::Parse(section, "fuzz index", true);
    FUZZ_CHECK(covered.ok() && *covered == *table);
    Result<CheckpointTable> checked = CheckpointTable::Parse(section, "fuzz index");
    FUZZ_CHECK(checked.ok() ? *checked == *table : checked.status().message().find("crc32") != std::string::npos);
  }
  if (damage_files) {
    // The sections a mount reads are as sealed: the same answer as before
    // the flip; the readers of the file digests refuse the file.
    std::vector<uint8_t> undamaged = bytes;
    undamaged[GetLe64(bytes.data() + 200)] ^= 1;
    std::string undamaged_id;
    Result<CheckpointTable> before = LayerIndex::ParseCheckpoints(undamaged, "fuzz index", "", &undamaged_id);
    FUZZ_CHECK(before.ok() == table.ok());
    if (table.ok()) FUZZ_CHECK(*before == *table && undamaged_id == diff_id);
    FUZZ_CHECK(!files.ok() && !idx.ok());
  }
  if (!idx.ok()) {
    CheckError(idx.status());
    return 0;
  }
  // Parse validates more than ParseCheckpoints, never less.
  FUZZ_CHECK(table.ok() && *table == idx->checkpoints && diff_id == idx->diff_id);
  // Each file digest names a regular entry's data (Parse checks it), and
  // the digests-only parser (which checks less: not the entries, not the
  // checkpoints) accepts it and returns the same records, ascending.
  FUZZ_CHECK(files.ok() && files->size() == idx->file_digests.size());
  for (size_t i = 0; i < files->size(); ++i) {
    FUZZ_CHECK((*files)[i].data_offset == idx->file_digests[i].data_offset);
    FUZZ_CHECK((*files)[i].digest == idx->file_digests[i].digest);
    FUZZ_CHECK(i == 0 || (*files)[i - 1].data_offset < (*files)[i].data_offset);
    FUZZ_CHECK(FindFileDigest(*files, (*files)[i].data_offset) == &(*files)[i]);
  }
  size_t regular = 0;
  for (const TarEntry& e : idx->entries) regular += e.type == EntryType::kRegular;
  FUZZ_CHECK(idx->file_digests.size() <= regular);
  std::string once = idx->Serialize();
  Result<LayerIndex> again = LayerIndex::Parse(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(once.data()), once.size()), "fuzz index",
      idx->blob_digest);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->Serialize() == once);
  return 0;
}
