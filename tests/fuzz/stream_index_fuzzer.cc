// Fuzzes one compressed stream indexer (gzip or zstd, chosen at build time by
// FUZZ_COMPRESSION) and its random-access readers. The input is the blob. It
// is streamed through StreamDecoder in chunks, with a checkpoint span, both
// derived from the input (spans down to a byte, so tables get many points).
// If the blob decodes, the checkpoint table must survive Serialize/Parse, and
// reads of spans at random offsets, at and across checkpoints, sequential
// and backwards, through every engine, must return exactly the streamed bytes;
// and reads through a tampered (but self-consistent) table must fail cleanly.
// gzip: the default decoder is ISA-L's (when built with it); zlib's stream
// decoder must produce the same bytes whenever it accepts the blob too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/fine_points.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"
#include "index/zstd_index.h"
#include "tests/fuzz/fuzz_util.h"

#ifndef FUZZ_COMPRESSION
#error "build with -DFUZZ_COMPRESSION=kGzip or kZstd"
#endif

namespace lazyroot::fuzz {
namespace {

// Output beyond this is not kept: a bomb would only slow the fuzzer down.
constexpr size_t kMaxOutput = 16 << 20;

void CheckReads(RandomReader& reader, const CheckpointTable& table, const std::vector<uint8_t>& stream, Rng& rng) {
  const uint64_t total = stream.size();
  std::vector<uint8_t> buf;
  auto read_and_compare = [&](uint64_t offset, size_t len) {
    buf.assign(len, 0xAA);
    size_t n = 0;
    Status s = reader.Read(offset, buf, &n);
    FUZZ_CHECK(s.ok());  // the blob decoded when streamed: it must decode from any checkpoint too
    uint64_t want = offset >= total ? 0 : std::min<uint64_t>(len, total - offset);
    FUZZ_CHECK(n == want);
    FUZZ_CHECK(n == 0 || std::memcmp(buf.data(), stream.data() + offset, n) == 0);
  };
  // Across each checkpoint (a few bytes before to a few after), then random spans.
  size_t shown = 0;
  for (const Checkpoint& p : table.points) {
    if (++shown > 64) break;
    uint64_t back = rng.Range(0, 3);
    read_and_compare(p.out_offset >= back ? p.out_offset - back : 0, static_cast<size_t>(rng.Range(1, 4096)));
  }
  for (int i = 0; i < 16; ++i) {
    uint64_t offset = rng.Range(0, total + 2);
    read_and_compare(offset, static_cast<size_t>(rng.Range(0, i % 4 == 0 ? 65536 : 512)));
  }
  // Backwards, then everything in one read and past the end.
  if (total > 0) read_and_compare(total - 1, 1);
  read_and_compare(0, static_cast<size_t>(std::min<uint64_t>(total + 1, 1 << 20)));
  read_and_compare(total, 16);
}

// A store file is input too: an index whose checkpoint table passes its own
// validation but lies about the blob (wrong offsets, bits, windows, sizes)
// must make reads fail cleanly, never read out of bounds or loop. The edits
// come from the input; the table must still pass CheckpointTable::Parse.
void CheckTamperedReads(const CheckpointTable& good, std::span<const uint8_t> blob, Rng& rng) {
  CheckpointTable t = good;
  const int edits = static_cast<int>(rng.Range(1, 3));
  for (int k = 0; k < edits; ++k) {
    if (t.points.empty()) break;
    Checkpoint& p = t.points[rng.Next() % t.points.size()];
    switch (rng.Next() % 9) {
      case 0: p.in_offset = rng.Range(0, t.compressed_size); break;
      case 1: p.in_offset += rng.Range(0, 2); p.in_offset -= rng.Range(0, 2); break;
      case 2: p.bits = static_cast<uint8_t>(rng.Range(0, 7)); break;
      case 3: p.out_offset += rng.Range(0, 3); break;
      case 4: if (!p.window.empty()) p.window[rng.Next() % p.window.size()] ^= static_cast<char>(rng.Range(1, 255)); break;
      case 5: p.window_size = static_cast<uint32_t>(rng.Range(p.window.empty() ? 0 : 1, kMaxWindowBytes)); break;
      case 6: t.uncompressed_size += rng.Range(0, 100000); break;
      case 7:
        // A mid-block point naming another block header (or none).
        if (p.mid_block && p.bit_offset() > 0) p.header_bit = rng.Range(0, p.bit_offset() - 1);
        break;
      default: t.uncompressed_size -= std::min<uint64_t>(t.uncompressed_size, rng.Range(0, 1000)); break;
    }
  }
  std::string bytes = t.Serialize();
  Result<CheckpointTable> parsed = CheckpointTable::Parse(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "tampered");
  if (!parsed.ok()) return;
  auto table = std::make_shared<const CheckpointTable>(std::move(*parsed));
  auto source = MemoryByteSource(blob, "fuzz blob");
  auto reader = RandomReader::Create(table, source.get(), "fuzz blob");
  std::vector<uint8_t> buf;
  for (int i = 0; i < 8; ++i) {
    uint64_t offset = rng.Range(0, table->uncompressed_size + 2);
    buf.assign(static_cast<size_t>(rng.Range(1, 8192)), 0);
    size_t n = 0;
    Status s = reader->Read(offset, buf, &n);
    CheckError(s);
    if (s.ok()) FUZZ_CHECK(n <= buf.size());
  }
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  constexpr Compression kCompression = Compression::FUZZ_COMPRESSION;
  std::span<const uint8_t> blob(data, size);
  Rng rng(blob);
  const uint64_t span = rng.Next() % 2 ? rng.Range(1, 4096) : rng.Range(4096, 1 << 20);
  // gzip: fine points (fine_points.h) in up to three output ranges, half the
  // time; every pass below gets the same ranges (each its own copy: queries
  // consume them).
  std::vector<std::pair<uint64_t, uint64_t>> fine_ranges;
  const bool fine = kCompression == Compression::kGzip && rng.Next() % 2 == 0;
  // Policy 1, 2 with mid-block points (ISA-L's pass), or 3: stored blocks
  // recorded, the mid-block budget a share of the whole blob.
  const uint8_t policy = static_cast<uint8_t>(kFinePolicyV1 + rng.Next() % 3);
  if (fine) {
    uint64_t at = 0;
    for (uint64_t i = 0, n = rng.Range(1, 3); i < n; ++i) {
      at += rng.Range(0, 1 << 20);
      const uint64_t len = rng.Range(1, 4 << 20);
      fine_ranges.emplace_back(at, at + len);
      at += len;
    }
  }
  auto ranges_for = [&](FineRanges* r) {
    for (const auto& [s, e] : fine_ranges) r->Add(s, e);
    r->policy = policy;
    r->blob_size = size;
    return fine ? r : nullptr;
  };
  FineRanges main_ranges, zlib_ranges, again_ranges;
  auto decoder = StreamDecoder::Create(kCompression, "fuzz blob", span, InflateEngine::kIsal, ranges_for(&main_ranges));
  std::vector<uint8_t> stream;
  bool too_big = false;
  auto on_output = [&](std::span<const uint8_t> out) {
    if (stream.size() + out.size() > kMaxOutput) {
      too_big = true;
      return Status::Aborted("fuzz output cap");
    }
    stream.insert(stream.end(), out.begin(), out.end());
    return Status::Ok();
  };
  Status s;
  for (size_t at = 0; at < size && s.ok();) {
    size_t n = std::min(NextChunk(rng), size - at);
    s = decoder->Feed(blob.subspan(at, n), on_output);
    at += n;
  }
  if (s.ok()) s = decoder->Finish(on_output);
  CheckError(s);
  if (too_big) FUZZ_CHECK(s.code() == ErrorCode::kAborted);
  if (!s.ok()) return 0;
  FUZZ_CHECK(decoder->total_in() == size);
  FUZZ_CHECK(decoder->total_out() == stream.size());
  // ISA-L accepts some streams zlib refuses (an incomplete literal/length
  // Huffman code, a wrong header CRC-16 the other way round): zlib's reader
  // is only held to the bytes where zlib's own pass accepts the blob.
  bool zlib_accepts = true;
  if constexpr (kCompression == Compression::kGzip) {
    // The pull streams on ISA-L when it can; zlib is the oracle: where both
    // accept a blob they must agree on every byte.
    auto zlib = NewGzipStreamDecoder("fuzz zlib", span, InflateEngine::kZlib, ranges_for(&zlib_ranges));
    std::vector<uint8_t> zlib_stream;
    Status z;
    OutputFn zlib_out = [&](std::span<const uint8_t> out) {
      zlib_stream.insert(zlib_stream.end(), out.begin(), out.end());
      return Status::Ok();
    };
    for (size_t at = 0; at < size && z.ok(); at += 4096) z = zlib->Feed(blob.subspan(at, std::min<size_t>(4096, size - at)), zlib_out);
    if (z.ok()) z = zlib->Finish(zlib_out);
    if (z.ok()) FUZZ_CHECK(zlib_stream == stream);
    zlib_accepts = z.ok();
  }

  auto table = std::make_shared<CheckpointTable>(decoder->TakeCheckpoints());
  {
    // The table is a function of the stream, not of its chunking: fsck
    // compares a rebuilt index byte for byte. Fed whole this time.
    auto again = StreamDecoder::Create(kCompression, "fuzz blob", span, InflateEngine::kIsal, ranges_for(&again_ranges));
    OutputFn discard = [](std::span<const uint8_t>) { return Status::Ok(); };
    FUZZ_CHECK(again->Feed(blob, discard).ok() && again->Finish(discard).ok());
    FUZZ_CHECK(again->TakeCheckpoints() == *table);
  }
  FUZZ_CHECK(table->compression == kCompression);
  FUZZ_CHECK(table->compressed_size == size);
  FUZZ_CHECK(table->uncompressed_size == stream.size());
  FUZZ_CHECK(!table->points.empty() && table->points[0].out_offset == 0);
  for (size_t i = 1; i < table->points.size(); ++i) {
    FUZZ_CHECK(table->points[i - 1].out_offset < table->points[i].out_offset);
    FUZZ_CHECK(table->points[i - 1].in_offset <= table->points[i].in_offset);
  }
  FUZZ_CHECK(table->fine_policy == (fine ? policy : 0));
  for (const Checkpoint& p : table->points) {
    FUZZ_CHECK(p.in_offset <= size && p.window_size <= kMaxWindowBytes && p.bits < 8);
    FUZZ_CHECK(!p.fine || (fine && p.out_offset != 0));
    FUZZ_CHECK(!p.mid_block || (p.fine && policy >= kFinePolicyV2 && p.header_bit < p.bit_offset()));
    if (!p.stored_blocks.empty()) {
      // Recorded stored blocks are the stream's bytes, in the blob as they are.
      FUZZ_CHECK(fine && policy >= kFinePolicyV3 && !p.mid_block);
      uint64_t at = p.stored_data_offset(), out = p.out_offset;
      for (uint16_t len : p.stored_blocks) {
        FUZZ_CHECK(len != 0 && at + len <= size && out + len <= stream.size());
        FUZZ_CHECK(std::equal(stream.begin() + static_cast<ptrdiff_t>(out),
                              stream.begin() + static_cast<ptrdiff_t>(out + len),
                              blob.begin() + static_cast<ptrdiff_t>(at)));
        at += len + 5;
        out += len;
      }
    }
  }
  std::string serialized = table->Serialize();
  Result<CheckpointTable> parsed = CheckpointTable::Parse(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(serialized.data()), serialized.size()), "fuzz");
  FUZZ_CHECK(parsed.ok());
  FUZZ_CHECK(*parsed == *table);

  auto source = MemoryByteSource(blob, "fuzz blob");
  std::vector<std::unique_ptr<RandomReader>> readers;
  readers.push_back(RandomReader::Create(table, source.get(), "fuzz blob"));
  if constexpr (kCompression == Compression::kGzip) {
    if (zlib_accepts) {
      readers.push_back(RandomReader::Create(table, NewGzipPointDecoder(table.get(), source.get(), "zlib", InflateEngine::kZlib)));
    }
    if (HaveIsal()) {
      readers.push_back(RandomReader::Create(table, NewGzipPointDecoder(table.get(), source.get(), "isal", InflateEngine::kIsal)));
    }
  }
  for (auto& reader : readers) {
    Rng read_rng(blob);
    CheckReads(*reader, *table, stream, read_rng);
  }
  CheckTamperedReads(*table, blob, rng);
  return 0;
}
