// Fuzzes LayerIndexer, the pull's single pass over a layer blob (any
// compression, sniffed as the pull does): decompression, DiffID hash, tar
// parse and checkpoints, fed in chunks derived from the input. If the blob
// indexes, every entry must be within the kernel's limits (xattr value,
// symlink target), the DiffID must be the SHA-256 of the stream, the index must
// survive Serialize/Parse, and reading each file's stored bytes through the
// checkpoints must give the bytes the stream had at its data offset.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/layer_decoder.h"
#include "index/layer_index.h"
#include "index/layer_indexer.h"
#include "index/limits.h"
#include "index/sha256.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  constexpr size_t kMaxOutput = 16 << 20;
  const std::string digest = "sha256:" + std::string(64, '0');
  std::span<const uint8_t> blob(data, size);
  const Compression compression = SniffCompression(blob.first(std::min<size_t>(size, 16)));
  Rng rng(blob);
  const uint64_t span = rng.Range(1, 1 << 16);

  // The reference stream, kept unless it is a bomb.
  std::vector<uint8_t> stream;
  {
    auto decoder = StreamDecoder::Create(compression, "fuzz", span);
    OutputFn keep = [&](std::span<const uint8_t> out) {
      if (stream.size() + out.size() > kMaxOutput) return Status::Aborted("fuzz output cap");
      stream.insert(stream.end(), out.begin(), out.end());
      return Status::Ok();
    };
    Status s = decoder->Feed(blob, keep);
    if (s.ok()) s = decoder->Finish(keep);
    if (!s.ok()) return 0;
  }

  // The declared size, as the pull passes the manifest's (policy 3 needs it).
  LayerIndexer indexer(digest, compression, "", span, Limits(), InflateEngine::kIsal, kDefaultFinePolicy, size);
  Status s;
  for (size_t at = 0; at < size && s.ok();) {
    size_t n = std::min(NextChunk(rng), size - at);
    s = indexer.Consume(blob.subspan(at, n));
    at += n;
  }
  CheckError(s);
  if (!s.ok()) return 0;
  Result<LayerIndex> idx = indexer.Finish(ChunkDigestsOf(blob));
  if (!idx.ok()) {
    CheckError(idx.status());
    return 0;
  }
  // What indexing accepts must be extractable: the kernel's limits
  // (index/limits.h) hold for every entry.
  for (const TarEntry& e : idx->entries) {
    if (e.type == EntryType::kSymlink) FUZZ_CHECK(e.link_target.size() <= Limits::kMaxSymlinkTarget);
    for (const auto& [name, value] : e.xattrs) FUZZ_CHECK(value.size() <= Limits::kMaxXattrValue);
  }
  Sha256 hash;
  hash.Update(stream);
  FUZZ_CHECK(idx->diff_id == "sha256:" + hash.FinishHex());
  FUZZ_CHECK(idx->blob_size == size && idx->uncompressed_size == stream.size());
  // One file digest per regular entry: sha256sum of its data, or for a
  // sparse file of SparseContentPrefix and the stored bytes.
  size_t k = 0;
  for (const TarEntry& e : idx->entries) {
    if (e.type != EntryType::kRegular) continue;
    FUZZ_CHECK(k < idx->file_digests.size() && idx->file_digests[k].data_offset == e.data_offset);
    if (k < 64) {
      Sha256 fh;
      if (!e.sparse.empty()) fh.Update(std::string_view(SparseContentPrefix(e.size, e.sparse)));
      fh.Update(std::span<const uint8_t>(stream).subspan(e.data_offset, e.stored_size));
      FUZZ_CHECK(fh.Finish() == idx->file_digests[k].digest);
    }
    ++k;
  }
  FUZZ_CHECK(k == idx->file_digests.size());

  std::string once = idx->Serialize();
  std::span<const uint8_t> once_bytes(reinterpret_cast<const uint8_t*>(once.data()), once.size());
  Result<LayerIndex> parsed = LayerIndex::Parse(once_bytes, "fuzz index", digest);
  FUZZ_CHECK(parsed.ok());
  FUZZ_CHECK(parsed->Serialize() == once);
  FUZZ_CHECK(parsed->checkpoints == idx->checkpoints);

  auto table = std::make_shared<const CheckpointTable>(std::move(parsed->checkpoints));
  auto source = MemoryByteSource(blob, "fuzz blob");
  auto reader = RandomReader::Create(table, source.get(), "fuzz blob");
  std::vector<uint8_t> buf;
  size_t files = 0;
  for (const TarEntry& e : idx->entries) {
    if (e.type != EntryType::kRegular || e.stored_size == 0) continue;
    if (++files > 32) break;
    FUZZ_CHECK(e.data_offset + e.stored_size <= stream.size());
    size_t len = static_cast<size_t>(std::min<uint64_t>(e.stored_size, 1 << 16));
    buf.assign(len, 0);
    size_t n = 0;
    FUZZ_CHECK(reader->Read(e.data_offset, buf, &n).ok());
    FUZZ_CHECK(n == len && std::memcmp(buf.data(), stream.data() + e.data_offset, n) == 0);
  }
  return 0;
}
