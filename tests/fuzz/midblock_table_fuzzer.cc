// Fuzzes the readers' resume at mid-block points (fine point policy 2,
// isal_midblock.h) with hostile checkpoint tables. One blob is built once: a
// gzip -6 stream of word text (long Huffman-coded blocks), a stored block and
// a Z_FIXED member, indexed by ISA-L's pass under policy 2 (many mid-block
// points). The input edits the pass's table: each 11-byte record picks a
// point and a field (header bit offset anywhere in or past the blob, the
// point's offsets and bits, window size and bytes, flags, sizes) and a value.
// The edited table is serialised; if CheckpointTable::Parse takes it, reads
// through every engine at and around its points must end cleanly (an error
// with a message, or bytes), never crash, read out of bounds or loop. An
// unedited point must still read exactly the bytes zlib decodes.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/fine_points.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot::fuzz {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Words(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  static const char* kWords[] = {"alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta ", "theta "};
  Bytes out;
  while (out.size() < n) {
    for (const char* c = kWords[rng() % 8]; *c; ++c) out.push_back(static_cast<uint8_t>(*c));
  }
  out.resize(n);
  return out;
}

// One gzip member; a stored block in the middle (Z_FULL_FLUSH at level 0).
Bytes Gzip(const Bytes& in, int level, int strategy) {
  z_stream s{};
  deflateInit2(&s, level, Z_DEFLATED, 31, 8, strategy);
  Bytes out(deflateBound(&s, in.size()) + 4096);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const size_t half = in.size() / 2;
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(half);
  deflate(&s, Z_FULL_FLUSH);
  deflateParams(&s, 0, strategy);
  s.avail_in = 4096;
  deflate(&s, Z_FULL_FLUSH);
  deflateParams(&s, level, strategy);
  s.avail_in = static_cast<uInt>(in.size() - half - 4096);
  deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

struct Fixture {
  Bytes data;  // what the blob decodes to
  Bytes blob;
  CheckpointTable table;
};

const Fixture& Get() {
  static const Fixture* f = [] {
    auto* x = new Fixture;
    const Bytes a = Words(1536 << 10, 1), b = Words(700 << 10, 2);
    x->blob = Gzip(a, 6, Z_DEFAULT_STRATEGY);
    const Bytes g2 = Gzip(b, 6, Z_FIXED);
    x->blob.insert(x->blob.end(), g2.begin(), g2.end());
    x->data = a;
    x->data.insert(x->data.end(), b.begin(), b.end());
    FineRanges fine;
    fine.policy = kFinePolicyV2;
    fine.Add(0, x->data.size());
    auto d = NewGzipStreamDecoder("fuzz blob", 1 << 20, InflateEngine::kIsal, &fine);
    OutputFn sink = [](std::span<const uint8_t>) { return Status::Ok(); };
    if (!d->Feed(x->blob, sink).ok() || !d->Finish(sink).ok()) __builtin_trap();
    x->table = d->TakeCheckpoints();
    return x;
  }();
  return *f;
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  const Fixture& f = Get();
  CheckpointTable t = f.table;
  std::vector<bool> edited(t.points.size(), false);
  const uint64_t blob_bits = uint64_t{f.blob.size()} * 8;
  for (size_t at = 0; at + 11 <= size && at < 11 * 8; at += 11) {
    const uint8_t* r = data + at;
    size_t i = (r[0] | r[1] << 8) % t.points.size();
    // Mostly the mid-block points.
    if (r[2] & 1) {
      for (size_t k = 0; k < t.points.size() && !t.points[i].mid_block; ++k) i = (i + 1) % t.points.size();
    }
    Checkpoint& p = t.points[i];
    edited[i] = true;
    uint64_t v = 0;
    std::memcpy(&v, r + 3, 8);
    switch (r[2] >> 1 & 15) {
      case 0: p.header_bit = v % (blob_bits + 64); break;                         // anywhere, past the blob too
      case 1: p.header_bit = p.bit_offset() - 1 - v % std::min<uint64_t>(p.bit_offset(), 4096); break;  // near before
      case 2: p.header_bit = p.header_bit + (v % 64) - 32; break;                  // near its own header
      case 3: p.header_bit = blob_bits - 1 - v % 16; break;                        // the last bytes' bits
      case 4: p.bits = static_cast<uint8_t>(v % 8); break;
      case 5: p.in_offset = v % (f.blob.size() + 2); break;
      case 6: p.in_offset += (v % 5) - 2; break;
      case 7: p.out_offset += (v % 70000) - 35000; break;
      case 8: {
        // None, as the pass writes for literal-heavy blocks, a quarter of the time.
        const uint32_t w = v % 4 == 0 ? 0 : static_cast<uint32_t>(v / 4 % (kMaxWindowBytes + 1));
        Bytes bytes(w, static_cast<uint8_t>(v >> 32));
        p.window_size = w;
        p.window = w == 0 ? std::string() : CompressWindow(bytes);
        break;
      }
      case 9:
        if (!p.window.empty()) p.window[(v >> 8) % p.window.size()] ^= static_cast<char>(v | 1);
        break;
      case 10: p.mid_block = !p.mid_block; p.fine = p.fine || p.mid_block; break;
      case 11: p.fine = !p.fine; break;
      case 12: t.uncompressed_size += v % 100000; break;
      case 13: t.compressed_size -= std::min<uint64_t>(t.compressed_size, v % 4096); break;
      case 14: t.fine_policy = static_cast<uint8_t>(v % 4); break;
      default: p.header_bit = v; break;
    }
  }
  const std::string bytes = t.Serialize();
  Result<CheckpointTable> parsed = CheckpointTable::Parse(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "fuzz table");
  if (!parsed.ok()) {
    CheckError(parsed.status());
    return 0;
  }
  auto table = std::make_shared<const CheckpointTable>(std::move(*parsed));
  auto source = MemoryByteSource(f.blob, "fuzz blob");
  Rng rng(std::span<const uint8_t>(data, size));
  for (InflateEngine engine : {InflateEngine::kIsal, InflateEngine::kZlib}) {
    // Prime + decode at points directly (what a mount's unit read does).
    auto d = NewGzipPointDecoder(table.get(), source.get(), "fuzz blob", engine);
    Bytes buf;
    // The edited points first (a fresh decoder's first prime, too), then any.
    std::vector<size_t> picks;
    for (size_t i = 0; i < edited.size() && picks.size() < 4; ++i)
      if (edited[i] && i < table->points.size()) picks.push_back(i);
    while (picks.size() < 8) picks.push_back(static_cast<size_t>(rng.Range(0, table->points.size() - 1)));
    for (size_t i : picks) {
      const Checkpoint& p = table->points[i];
      const size_t pi = PrimePoint(*table, p.out_offset, d->PrimesMidBlock());
      const Checkpoint& q = table->points[pi];
      Status s = d->Prime(q);
      if (s.ok()) {
        buf.assign(static_cast<size_t>(rng.Range(1, 70000)), 0);
        const uint64_t end = std::min<uint64_t>(table->uncompressed_size, f.data.size());
        if (q.out_offset >= end) continue;
        buf.resize(static_cast<size_t>(std::min<uint64_t>(buf.size(), end - q.out_offset)));
        s = d->Decode(buf);
        // An untouched table reads zlib's bytes.
        if (s.ok() && !edited[pi] && *table == f.table) {
          FUZZ_CHECK(std::memcmp(buf.data(), f.data.data() + q.out_offset, buf.size()) == 0);
        }
      }
      CheckError(s);
    }
    // And through the random reader, at and across points.
    auto reader = RandomReader::Create(table, NewGzipPointDecoder(table.get(), source.get(), "fuzz blob", engine));
    for (int k = 0; k < 4; ++k) {
      const Checkpoint& p = table->points[static_cast<size_t>(rng.Range(0, table->points.size() - 1))];
      const uint64_t off = p.out_offset - std::min<uint64_t>(p.out_offset, rng.Range(0, 3));
      buf.assign(static_cast<size_t>(rng.Range(1, 9000)), 0);
      size_t n = 0;
      Status s = reader->Read(off, buf, &n);
      CheckError(s);
      if (s.ok()) FUZZ_CHECK(n <= buf.size());
    }
  }
  return 0;
}
