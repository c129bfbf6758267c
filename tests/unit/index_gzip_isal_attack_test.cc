// Hostile gzip shapes against ISA-L's gzip passes, each checked against
// zlib's own decode of the same bytes:
// - a member header that straddles the ISA-L point decoder's 64 KiB refill:
//   isal_inflate parses a gzip header only if it is handed whole (ISA-L
//   issue #224: its header state is local to one call), so a read that
//   crossed such a header read a FNAME as deflate data ("invalid deflate
//   block") or failed the FHCRC — a valid layer pulled, passed fsck, and
//   could not be read.
// - a wrong header CRC-16 is reported as one, not as a trailer mismatch;
//   junk after the last member shorter than a header, as such.
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>
#include <vector>

#include "index/gzip_index.h"
#include "index/gzip_isal_stream.h"
#include "index/layer_decoder.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

using Bytes = std::vector<uint8_t>;

void PutLe32(Bytes* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint32_t Crc(const Bytes& b) { return static_cast<uint32_t>(crc32(0, b.data(), static_cast<uInt>(b.size()))); }

// A gzip header with FNAME (and FEXTRA + FHCRC when `all`).
Bytes Header(bool all, bool bad_hcrc = false) {
  Bytes h = {0x1f, 0x8b, 8, static_cast<uint8_t>(all ? 8 | 4 | 2 : 8), 0, 0, 0, 0, 0, 3};
  if (all) {
    h.push_back(40);
    h.push_back(0);
    for (int i = 0; i < 40; ++i) h.push_back('e');
  }
  for (const char* c = "usr.tar"; *c; ++c) h.push_back(static_cast<uint8_t>(*c));
  h.push_back(0);
  if (all) {
    const uint32_t crc = Crc(h) ^ (bad_hcrc ? 0x1234u : 0u);
    h.push_back(static_cast<uint8_t>(crc));
    h.push_back(static_cast<uint8_t>(crc >> 8));
  }
  return h;
}

Bytes RawDeflate(const Bytes& in) { return fixtures::Deflate(in, -15); }

Bytes Text(size_t n, uint32_t seed) {
  static const char* kWords[] = {"usr ", "lib ", "share ", "locale ", "\n", "x86_64 "};
  std::mt19937 rng(seed);
  Bytes out;
  while (out.size() < n) {
    for (const char* c = kWords[rng() % 6]; *c && out.size() < n; ++c) out.push_back(static_cast<uint8_t>(*c));
  }
  return out;
}

struct Decoded {
  Status status;
  Bytes output;
  CheckpointTable table;
};

Decoded Stream(const Bytes& blob, InflateEngine engine, uint64_t span) {
  Decoded d;
  auto dec = engine == InflateEngine::kIsal ? NewIsalGzipStreamDecoder("attack", span)
                                            : NewGzipStreamDecoder("attack", span, InflateEngine::kZlib);
  OutputFn sink = [&](std::span<const uint8_t> o) {
    d.output.insert(d.output.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t at = 0; at < blob.size() && d.status.ok(); at += 4093) {
    d.status = dec->Feed(std::span<const uint8_t>(blob).subspan(at, std::min<size_t>(4093, blob.size() - at)), sink);
  }
  if (d.status.ok()) d.status = dec->Finish(sink);
  if (d.status.ok()) d.table = dec->TakeCheckpoints();
  return d;
}

// Member 1 is one stored block of n random bytes, so member 2's header lands
// wherever n puts it; the reader primes at member 1's first deflate byte
// (offset 10) and refills 64 KiB at a time from there, so for n near 65.5 K
// member 2's header straddles its first refill.
TEST(GzipIsalAttack, ReaderCrossesAMemberHeaderSplitByItsRefill) {
  if (!HaveIsal()) GTEST_SKIP() << "built without ISA-L";
  std::mt19937 rng(3);
  const Bytes second = Text(300000, 4);
  size_t straddled = 0;
  for (const bool all : {false, true}) {
    for (size_t n = 65536 - 90; n <= 65535; n += 3) {
      Bytes first(n);
      for (uint8_t& b : first) b = static_cast<uint8_t>(rng());
      Bytes blob = Header(false);
      blob.push_back(1);  // BFINAL, stored
      blob.push_back(static_cast<uint8_t>(n));
      blob.push_back(static_cast<uint8_t>(n >> 8));
      blob.push_back(static_cast<uint8_t>(~n));
      blob.push_back(static_cast<uint8_t>(~n >> 8));
      blob.insert(blob.end(), first.begin(), first.end());
      PutLe32(&blob, Crc(first));
      PutLe32(&blob, static_cast<uint32_t>(n));
      const size_t header_at = blob.size();
      const Bytes h = Header(all);
      blob.insert(blob.end(), h.begin(), h.end());
      const Bytes body = RawDeflate(second);
      blob.insert(blob.end(), body.begin(), body.end());
      PutLe32(&blob, Crc(second));
      PutLe32(&blob, static_cast<uint32_t>(second.size()));
      straddled += header_at < 10 + (64u << 10) && header_at + h.size() > 10 + (64u << 10);

      Bytes want = first;
      want.insert(want.end(), second.begin(), second.end());
      SCOPED_TRACE("n " + std::to_string(n) + (all ? " FEXTRA+FNAME+FHCRC" : " FNAME"));
      for (const InflateEngine pass : {InflateEngine::kZlib, InflateEngine::kIsal}) {
        Decoded d = Stream(blob, pass, 16 << 20);  // one checkpoint: reads cross member 2's header
        ASSERT_TRUE(d.status.ok()) << d.status.ToString();
        ASSERT_EQ(d.output, want);
        ASSERT_EQ(d.table.points.size(), 1u);
        auto table = std::make_shared<const CheckpointTable>(d.table);
        auto src = MemoryByteSource(blob, "blob");
        for (const InflateEngine reader : {InflateEngine::kZlib, InflateEngine::kIsal}) {
          auto r = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "attack", reader));
          Bytes got(want.size());
          size_t got_n = 0;
          Status st = r->Read(0, got, &got_n);
          ASSERT_TRUE(st.ok()) << (reader == InflateEngine::kIsal ? "ISA-L" : "zlib") << " reader: " << st.ToString();
          ASSERT_EQ(got_n, want.size());
          EXPECT_TRUE(got == want);
        }
      }
    }
  }
  EXPECT_GT(straddled, 4u);
}

// zlib's pass skips the header CRC-16 (inflateValidate), ISA-L's checks it:
// the error must say which check failed and where.
TEST(GzipIsalAttack, AWrongHeaderCrcIsNamed) {
  if (!HaveIsal()) GTEST_SKIP() << "built without ISA-L";
  const Bytes data = Text(5000, 5);
  Bytes blob = Header(true, /*bad_hcrc=*/true);
  const size_t header_end = blob.size();
  const Bytes body = RawDeflate(data);
  blob.insert(blob.end(), body.begin(), body.end());
  PutLe32(&blob, Crc(data));
  PutLe32(&blob, static_cast<uint32_t>(data.size()));
  Decoded d = Stream(blob, InflateEngine::kIsal, 1 << 20);
  ASSERT_FALSE(d.status.ok());
  EXPECT_NE(d.status.message().find("header CRC-16"), std::string::npos) << d.status.ToString();
  EXPECT_NE(d.status.message().find("compressed offset " + std::to_string(header_end)), std::string::npos)
      << d.status.ToString();
}

// A few junk bytes after the last member (fewer than a header's ten, which
// ISA-L would buffer as a partial header): the error names where the junk
// starts, as zlib's "incorrect header check" does; a real header cut short is
// a truncated member.
TEST(GzipIsalAttack, ShortJunkAfterTheLastMemberIsNamed) {
  if (!HaveIsal()) GTEST_SKIP() << "built without ISA-L";
  const Bytes data = Text(5000, 6);
  Bytes blob = Header(false);
  const Bytes body = RawDeflate(data);
  blob.insert(blob.end(), body.begin(), body.end());
  PutLe32(&blob, Crc(data));
  PutLe32(&blob, static_cast<uint32_t>(data.size()));
  const size_t end = blob.size();
  for (const Bytes& junk : {Bytes{'j', 'u', 'n', 'k'}, Bytes(8, 0), Bytes{0x1f, 0x8b, 8}}) {
    Bytes b = blob;
    b.insert(b.end(), junk.begin(), junk.end());
    Decoded d = Stream(b, InflateEngine::kIsal, 1 << 20);
    ASSERT_FALSE(d.status.ok());
    const std::string want = junk[0] == 0x1f ? "truncated at compressed offset " + std::to_string(b.size())
                                              : "compressed offset " + std::to_string(end) + " after member 1 are not a gzip header";
    EXPECT_NE(d.status.message().find(want), std::string::npos) << d.status.ToString();
    EXPECT_FALSE(Stream(b, InflateEngine::kZlib, 1 << 20).status.ok());
  }
}

}  // namespace
}  // namespace lazyroot
