// Shared test fixtures for compressed layer streams: gzip and zstd blobs made
// with zlib and libzstd (independent of our decoders), compressible test
// bytes, and the checkpoint table our StreamDecoder builds for a blob.
// Header-only, for the index and fs test binaries alike.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "index/checkpoint.h"
#include "index/layer_decoder.h"

namespace lazyroot::fixtures {

inline std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// `in` deflated by zlib in one call: window_bits 31 is one gzip member, -15
// raw deflate (zlib's deflateInit2 conventions).
inline std::vector<uint8_t> Deflate(std::span<const uint8_t> in, int window_bits, int level = 6) {
  z_stream s{};
  EXPECT_EQ(deflateInit2(&s, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out(deflateBound(&s, in.size()) + 64);
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

// One gzip member (zlib, level 6).
inline std::string Gzip(const std::string& in) {
  const std::vector<uint8_t> out = Deflate(Bytes(in), 31);
  return std::string(out.begin(), out.end());
}

// One zstd frame (what `zstd` and containerd write by default).
inline std::string Zstd(const std::string& in, int level = 3) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

// Pseudo-random letters: compressible, but not trivially.
inline std::string Compressible(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() % 32 + 'A');
  return s;
}

// Pseudo-random bytes: incompressible.
inline std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// The checkpoint table our StreamDecoder records for blob.
inline CheckpointTable TableFor(const std::string& blob, Compression c, uint64_t span) {
  auto d = StreamDecoder::Create(c, "test", span);
  OutputFn discard = [](std::span<const uint8_t>) { return Status::Ok(); };
  EXPECT_TRUE(d->Feed(Bytes(blob), discard).ok());
  EXPECT_TRUE(d->Finish(discard).ok());
  return d->TakeCheckpoints();
}

}  // namespace lazyroot::fixtures
