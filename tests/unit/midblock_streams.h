// Shared by the mid-block point tests (index_midblock_test,
// index_midblock_attack_test): word text, zlib's own decode as the oracle,
// and an index built by ISA-L's pass under a fine point policy.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <random>
#include <span>
#include <vector>

#include "index/checkpoint.h"
#include "index/fine_points.h"
#include "index/gzip_index.h"
#include "index/layer_decoder.h"

namespace lazyroot::midblock_test {

using Bytes = std::vector<uint8_t>;

// Word text: gzip -6 ends its blocks every 16K symbols, hundreds of KiB of
// output apart.
inline Bytes Words(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  static const char* kWords[] = {"alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta ", "theta "};
  Bytes out;
  while (out.size() < n) {
    for (const char* c = kWords[rng() % 8]; *c; ++c) out.push_back(static_cast<uint8_t>(*c));
  }
  out.resize(n);
  return out;
}

// zlib's own decode of every member (empty ones too), and if headers is
// given its blocks' header bit offsets.
inline Bytes ZlibDecode(const Bytes& blob, std::vector<uint64_t>* headers = nullptr) {
  Bytes out;
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 31), Z_OK);
  z.next_in = const_cast<Bytef*>(blob.data());
  z.avail_in = static_cast<uInt>(blob.size());
  Bytes buf(1 << 16);
  for (;;) {
    z.next_out = buf.data();
    z.avail_out = static_cast<uInt>(buf.size());
    const int r = inflate(&z, Z_BLOCK);
    out.insert(out.end(), buf.data(), z.next_out);
    if (r == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);
      continue;
    }
    EXPECT_TRUE(r == Z_OK || r == Z_BUF_ERROR) << r;
    if (r != Z_OK && r != Z_BUF_ERROR) break;
    if (r == Z_BUF_ERROR && z.avail_in == 0) {
      ADD_FAILURE() << "the stream ends inside a member";
      break;
    }
    if ((z.data_type & 128) && !(z.data_type & 64) && headers != nullptr) {
      headers->push_back(static_cast<uint64_t>(z.next_in - blob.data()) * 8 - (z.data_type & 7));
    }
  }
  inflateEnd(&z);
  return out;
}

struct Built {
  Bytes output;
  CheckpointTable table;
  bool ok = false;
};

// The ISA-L pass over blob with all of [0, out_size) a fine range; fed whole,
// or in random pieces of 1..max_piece bytes drawn from chunking.
inline Built Build(const Bytes& blob, uint64_t out_size, std::mt19937* chunking, uint8_t policy = kFinePolicyV2,
                   size_t max_piece = 90000) {
  FineRanges fine;
  fine.policy = policy;
  fine.Add(0, out_size);
  auto d = NewGzipStreamDecoder("layer test", 4 << 20, InflateEngine::kIsal, &fine);
  Built b;
  OutputFn sink = [&](std::span<const uint8_t> o) {
    b.output.insert(b.output.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t off = 0; off < blob.size();) {
    const size_t n = chunking == nullptr ? blob.size() : std::min<size_t>(blob.size() - off, 1 + (*chunking)() % max_piece);
    Status s = d->Feed(std::span<const uint8_t>(blob).subspan(off, n), sink);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return b;
    off += n;
  }
  Status s = d->Finish(sink);
  EXPECT_TRUE(s.ok()) << s.ToString();
  b.table = d->TakeCheckpoints();
  b.ok = s.ok();
  return b;
}

}  // namespace lazyroot::midblock_test
