#include "index/unit_copy.h"

#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader: the frame's checksum flag
#include <zstd.h>

#include <cstring>
#include <memory>
#include <vector>

namespace lazyroot {
namespace {

constexpr char kMagic[8] = {'L', 'Z', 'U', 'N', 'I', 'T', '\0', '\1'};
constexpr size_t kDigestBytes = 71;  // "sha256:" + 64 hex
constexpr size_t kHeaderBytes = 8 + kDigestBytes + 8 + 8 + 4 + 4;  // ends with the header's crc32

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetLe(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t Crc(std::span<const uint8_t> b) {
  uLong c = crc32(0, Z_NULL, 0);
  while (!b.empty()) {
    const size_t n = std::min<size_t>(b.size(), 1u << 30);
    c = crc32(c, b.data(), static_cast<uInt>(n));
    b = b.subspan(n);
  }
  return static_cast<uint32_t>(c);
}
bool WellFormedDigest(const std::string& d) {
  if (d.size() != kDigestBytes || d.compare(0, 7, "sha256:") != 0) return false;
  for (size_t i = 7; i < d.size(); ++i) {
    if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f'))) return false;
  }
  return true;
}

struct Parsed {
  std::string digest;
  uint64_t start = 0, length = 0;
  std::span<const uint8_t> frame;
};

// The header, and where the frame is; the frame's bytes are checked by
// zstd's own content checksum when it is decoded.
Result<Parsed> Parse(std::span<const uint8_t> f, const std::string& name) {
  auto bad = [&](const std::string& why) { return Status::Corruption(name + ": unit copy: " + why); };
  if (f.size() < kHeaderBytes) return bad("truncated (" + std::to_string(f.size()) + " bytes)");
  if (std::memcmp(f.data(), kMagic, 7) != 0) return bad("bad magic");
  if (f[7] != kMagic[7]) return bad("unknown format version " + std::to_string(f[7]));
  const uint32_t want_crc = static_cast<uint32_t>(GetLe(f.data() + kHeaderBytes - 4, 4));
  if (Crc(f.first(kHeaderBytes - 4)) != want_crc) return bad("header checksum mismatch");
  Parsed p;
  p.digest.assign(reinterpret_cast<const char*>(f.data() + 8), kDigestBytes);
  if (!WellFormedDigest(p.digest)) return bad("malformed layer digest");
  const uint8_t* h = f.data() + 8 + kDigestBytes;
  p.start = GetLe(h, 8);
  p.length = GetLe(h + 8, 8);
  const uint64_t frame = GetLe(h + 16, 4);
  if (p.length == 0 || p.length > kMaxUnitCopyBytes) return bad("unit length " + std::to_string(p.length) + " out of range");
  if (p.start > UINT64_MAX - p.length) return bad("unit offset out of range");
  if (frame != f.size() - kHeaderBytes) return bad("frame size " + std::to_string(frame) + " disagrees with the file size");
  p.frame = f.subspan(kHeaderBytes, static_cast<size_t>(frame));
  return p;
}

Status Inflate(const Parsed& p, std::span<uint8_t> out, const std::string& name) {
  // The frame must say exactly the unit's length and carry a checksum of its
  // content; decompressing into a buffer of that size can then neither
  // overflow nor yield bytes other than those written.
  ZSTD_frameHeader fh{};
  if (ZSTD_getFrameHeader(&fh, p.frame.data(), p.frame.size()) != 0 || fh.frameType != ZSTD_frame ||
      fh.frameContentSize != p.length || fh.checksumFlag == 0 || out.size() != p.length) {
    return Status::Corruption(name + ": unit copy: frame header does not describe the unit");
  }
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> d(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!d) return Status::IoError(name + ": unit copy: cannot create a zstd context");
  ZSTD_DCtx_setParameter(d.get(), ZSTD_d_windowLogMax, 24);
  const size_t n = ZSTD_decompressDCtx(d.get(), out.data(), out.size(), p.frame.data(), p.frame.size());
  if (ZSTD_isError(n) || n != out.size()) {
    return Status::Corruption(name + ": unit copy: frame does not decode" +
                              (ZSTD_isError(n) ? std::string(": ") + ZSTD_getErrorName(n) : std::string()));
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> EncodeUnitCopy(const std::string& layer_digest, uint64_t start, std::span<const uint8_t> bytes) {
  if (!WellFormedDigest(layer_digest)) return Status::InvalidArgument("unit copy: malformed layer digest " + layer_digest);
  if (bytes.empty() || bytes.size() > kMaxUnitCopyBytes) {
    return Status::InvalidArgument("unit copy: unit of " + std::to_string(bytes.size()) + " bytes");
  }
  std::string frame(ZSTD_compressBound(bytes.size()), '\0');
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> c(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!c) return Status::IoError("unit copy: cannot create a zstd context");
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_checksumFlag, 1);
  const size_t n = ZSTD_compress2(c.get(), frame.data(), frame.size(), bytes.data(), bytes.size());
  if (ZSTD_isError(n)) return Status::IoError(std::string("unit copy: zstd: ") + ZSTD_getErrorName(n));
  frame.resize(n);
  std::string s(kMagic, sizeof kMagic);
  s += layer_digest;
  PutU64(&s, start);
  PutU64(&s, bytes.size());
  PutU32(&s, static_cast<uint32_t>(frame.size()));
  PutU32(&s, Crc(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size())));
  s += frame;
  return s;
}

Status DecodeUnitCopy(std::span<const uint8_t> file, const std::string& layer_digest, uint64_t start,
                      std::span<uint8_t> out, const std::string& name) {
  LAZYROOT_ASSIGN_OR_RETURN(Parsed p, Parse(file, name));
  if (p.digest != layer_digest) return Status::Corruption(name + ": unit copy of another layer (" + p.digest + ")");
  if (p.start != start || p.length != out.size()) {
    return Status::Corruption(name + ": unit copy of [" + std::to_string(p.start) + ", +" + std::to_string(p.length) +
                              "), expected [" + std::to_string(start) + ", +" + std::to_string(out.size()) + ")");
  }
  return Inflate(p, out, name);
}

Result<UnitCopyInfo> CheckUnitCopy(std::span<const uint8_t> file, const std::string& name) {
  LAZYROOT_ASSIGN_OR_RETURN(Parsed p, Parse(file, name));
  std::vector<uint8_t> scratch(static_cast<size_t>(p.length));
  LAZYROOT_RETURN_IF_ERROR(Inflate(p, scratch, name));
  return UnitCopyInfo{p.digest, p.start, p.length};
}

}  // namespace lazyroot
