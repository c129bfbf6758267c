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

#include "index/checkpoint.h"
#include "index/layer_decoder.h"

namespace lazyroot::fixtures {

inline std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// One gzip member (zlib, level 6).
inline std::string Gzip(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
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

// The checkpoint table our StreamDecoder records for blob.
inline CheckpointTable TableFor(const std::string& blob, Compression c, uint64_t span) {
  auto d = StreamDecoder::Create(c, "test", span);
  OutputFn discard = [](std::span<const uint8_t>) { return Status::Ok(); };
  EXPECT_TRUE(d->Feed(Bytes(blob), discard).ok());
  EXPECT_TRUE(d->Finish(discard).ok());
  return d->TakeCheckpoints();
}

}  // namespace lazyroot::fixtures
