#include "index/tar_header.h"

#include <cstring>
#include <string>

namespace lazyroot::tar {

HeaderFormat TarHeader::format() const {
  std::string_view mv = Raw(kMagicVersion);
  if (mv == std::string_view("ustar  \0", 8)) return HeaderFormat::kGnu;
  if (mv == std::string_view("ustar\0" "00", 8)) {
    // star writes "tar\0" at 508 and keeps atime/ctime after a 131-byte prefix.
    return std::memcmp(block_ + 508, "tar\0", 4) == 0 ? HeaderFormat::kStar : HeaderFormat::kUstar;
  }
  return HeaderFormat::kV7;
}

std::string_view TarHeader::String(Field f) const {
  const char* p = reinterpret_cast<const char*>(block_ + f.offset);
  const void* nul = std::memchr(p, 0, f.length);
  return std::string_view(p, nul ? static_cast<const char*>(nul) - p : f.length);
}

std::string_view TarHeader::Raw(Field f) const {
  return std::string_view(reinterpret_cast<const char*>(block_ + f.offset), f.length);
}

Result<int64_t> TarHeader::Number(Field f, std::string_view what) const { return ParseNumericField(Raw(f), what); }

bool IsZeroBlock(const uint8_t* block) {
  // Word-at-a-time: this runs once per header on the pull path.
  uint64_t acc = 0;
  for (size_t i = 0; i < kBlockSize; i += 8) {
    uint64_t w;
    std::memcpy(&w, block + i, 8);
    acc |= w;
  }
  return acc == 0;
}

Status VerifyChecksum(const uint8_t* block) {
  // Historic writers summed signed chars; POSIX says unsigned. Accept either.
  // Branch-free so the compiler vectorises it: the signed sum differs from
  // the unsigned one by 256 per byte >= 0x80. The checksum field counts as spaces.
  uint32_t unsigned_total = 0, high_total = 0;
  for (size_t i = 0; i < kBlockSize; ++i) {
    unsigned_total += block[i];
    high_total += block[i] >> 7;
  }
  for (size_t i = kChecksum.offset; i < kChecksum.offset + kChecksum.length; ++i) {
    unsigned_total -= block[i];
    high_total -= block[i] >> 7;
  }
  unsigned_total += ' ' * kChecksum.length;
  const int64_t unsigned_sum = unsigned_total;
  const int64_t signed_sum = unsigned_sum - 256 * static_cast<int64_t>(high_total);
  Result<int64_t> stored =
      ParseNumericField(std::string_view(reinterpret_cast<const char*>(block + kChecksum.offset), kChecksum.length),
                        "checksum");
  if (!stored.ok() || (*stored != unsigned_sum && *stored != signed_sum)) {
    return Status::Corruption("bad checksum");
  }
  return Status::Ok();
}

Result<int64_t> ParseNumericField(std::string_view field, std::string_view what) {
  if (!field.empty() && (static_cast<uint8_t>(field[0]) & 0x80)) {
    // Base-256 (GNU/star): bit 6 of the first byte is the sign; inverting a
    // negative number's bytes turns -a-1 into a, which we accumulate unsigned.
    uint8_t inv = (static_cast<uint8_t>(field[0]) & 0x40) ? 0xff : 0x00;
    uint64_t x = 0;
    for (size_t i = 0; i < field.size(); ++i) {
      uint8_t c = static_cast<uint8_t>(field[i]) ^ inv;
      if (i == 0) c &= 0x7f;
      if (x >> 56) return Status::Corruption(std::string(what) + " field overflows 64 bits");
      x = (x << 8) | c;
    }
    if (x >> 63) return Status::Corruption(std::string(what) + " field overflows 64 bits");
    return inv ? ~static_cast<int64_t>(x) : static_cast<int64_t>(x);
  }
  size_t i = 0;
  while (i < field.size() && (field[i] == ' ' || field[i] == '\0')) ++i;
  uint64_t x = 0;
  for (; i < field.size() && field[i] != ' ' && field[i] != '\0'; ++i) {
    char c = field[i];
    if (c < '0' || c > '7') {
      return Status::Corruption("bad octal digit in " + std::string(what) + " field");
    }
    // A 12-byte field holds at most 36 bits; the check only guards future callers.
    if (x >> 60) return Status::Corruption(std::string(what) + " field overflows 64 bits");
    x = (x << 3) | static_cast<uint64_t>(c - '0');
  }
  if (x >> 63) return Status::Corruption(std::string(what) + " field overflows 64 bits");
  return static_cast<int64_t>(x);
}

Result<uint64_t> ParseDecimal(std::string_view s, std::string_view what, uint64_t max) {
  if (s.empty() || s.size() > 20) return Status::Corruption("bad " + std::string(what) + " \"" + std::string(s.substr(0, 32)) + "\"");
  uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Status::Corruption("bad " + std::string(what) + " \"" + std::string(s) + "\"");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (d > max || x > (max - d) / 10) return Status::Corruption(std::string(what) + " " + std::string(s) + " out of range");
    x = x * 10 + d;
  }
  return x;
}

}  // namespace lazyroot::tar
