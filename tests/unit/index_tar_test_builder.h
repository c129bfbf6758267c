// Test-only builder of hand-made tar bytes: ustar / old-GNU / V7 headers,
// PAX and GNU long-name extension headers, sparse headers, zero blocks.
// Each fixture in the tests is a short recipe over these helpers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lazyroot::tartest {

constexpr size_t kB = 512;

enum class Magic { kUstar, kGnu, kV7 };

struct Hdr {
  std::string name;
  char type = '0';
  uint64_t mode = 0644;
  uint64_t uid = 1000, gid = 1000;
  uint64_t size = 0;
  uint64_t mtime = 1700000000;
  std::string linkname;
  std::string uname = "user", gname = "group";
  std::string prefix;
  uint32_t devmajor = 0, devminor = 0;
  Magic magic = Magic::kUstar;
};

// len-1 zero-padded octal digits and a NUL.
inline void PutOctal(std::string& b, size_t off, size_t len, uint64_t v) {
  for (size_t i = 0; i < len - 1; ++i) {
    b[off + len - 2 - i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  b[off + len - 1] = '\0';
}

// Big-endian two's complement with the 0x80 (positive) / 0xff (negative) marker.
inline void PutBase256(std::string& b, size_t off, size_t len, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  for (size_t i = 0; i < len; ++i) {
    uint8_t byte = i < 8 ? static_cast<uint8_t>(u >> (8 * i)) : (v < 0 ? 0xff : 0x00);
    b[off + len - 1 - i] = static_cast<char>(byte);
  }
  b[off] = static_cast<char>(static_cast<uint8_t>(b[off]) | 0x80);
}

inline void PutStr(std::string& b, size_t off, std::string_view s) { b.replace(off, s.size(), s); }

// Writes "%06o\0 " of the unsigned (or signed) byte sum.
inline void FixChecksum(std::string& b, bool signed_sum = false) {
  for (size_t i = 148; i < 156; ++i) b[i] = ' ';
  int64_t sum = 0;
  for (unsigned char c : b) sum += signed_sum ? static_cast<int64_t>(static_cast<signed char>(c)) : c;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%06o", static_cast<unsigned>(sum & 0777777));
  PutStr(b, 148, std::string_view(buf, 6));
  b[154] = '\0';
  b[155] = ' ';
}

inline std::string Header(const Hdr& h) {
  std::string b(kB, '\0');
  PutStr(b, 0, h.name.substr(0, 100));
  PutOctal(b, 100, 8, h.mode);
  PutOctal(b, 108, 8, h.uid);
  PutOctal(b, 116, 8, h.gid);
  PutOctal(b, 124, 12, h.size);
  PutOctal(b, 136, 12, h.mtime);
  b[156] = h.type;
  PutStr(b, 157, h.linkname.substr(0, 100));
  if (h.magic == Magic::kUstar) PutStr(b, 257, std::string_view("ustar\0" "00", 8));
  if (h.magic == Magic::kGnu) PutStr(b, 257, std::string_view("ustar  \0", 8));
  if (h.magic != Magic::kV7) {
    PutStr(b, 265, h.uname);
    PutStr(b, 297, h.gname);
    PutOctal(b, 329, 8, h.devmajor);
    PutOctal(b, 337, 8, h.devminor);
  }
  if (h.magic == Magic::kUstar) PutStr(b, 345, h.prefix);
  FixChecksum(b);
  return b;
}

inline std::string Pad(std::string_view data) {
  std::string s(data);
  s.append((kB - s.size() % kB) % kB, '\0');
  return s;
}

inline std::string Zeros(size_t blocks) { return std::string(blocks * kB, '\0'); }

// A regular file: header + padded content.
inline std::string File(std::string name, std::string_view content, Magic magic = Magic::kUstar) {
  Hdr h;
  h.name = std::move(name);
  h.size = content.size();
  h.magic = magic;
  return Header(h) + Pad(content);
}

// A whole archive of one root-owned regular file: header, padded data, the
// two zero blocks that end it.
inline std::string OneFileTar(std::string name, std::string_view data) {
  Hdr h;
  h.name = std::move(name);
  h.uid = h.gid = 0;
  h.uname = h.gname = "";
  h.size = data.size();
  h.mtime = 014000000000;
  return Header(h) + Pad(data) + Zeros(2);
}

// One "%d %s=%s\n" record; the length counts its own digits.
inline std::string PaxRecord(std::string_view key, std::string_view value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

// An 'x' (or 'g') header carrying exactly `records` as its data.
inline std::string PaxRaw(std::string_view records, char type = 'x') {
  Hdr h;
  h.name = type == 'g' ? "pax_global_header" : "./PaxHeaders/f";
  h.type = type;
  h.size = records.size();
  return Header(h) + Pad(records);
}

inline std::string Pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x') {
  std::string data;
  for (const auto& [k, v] : records) data += PaxRecord(k, v);
  return PaxRaw(data, type);
}

// A GNU 'L' or 'K' header; `data` is stored verbatim (GNU tar adds a NUL).
inline std::string GnuLong(char type, std::string_view data) {
  Hdr h;
  h.name = "././@LongLink";
  h.type = type;
  h.size = data.size();
  h.magic = Magic::kGnu;
  h.uname = h.gname = "root";
  return Header(h) + Pad(data);
}

// Old-GNU 'S' header: up to 4 (offset, numbytes) pairs, isextended, realsize.
inline std::string GnuSparseHeader(std::string name, uint64_t stored, uint64_t realsize,
                                   const std::vector<std::pair<uint64_t, uint64_t>>& runs, bool extended) {
  Hdr h;
  h.name = std::move(name);
  h.type = 'S';
  h.size = stored;
  h.magic = Magic::kGnu;
  std::string b = Header(h);
  for (size_t i = 0; i < runs.size(); ++i) {
    PutOctal(b, 386 + i * 24, 12, runs[i].first);
    PutOctal(b, 386 + i * 24 + 12, 12, runs[i].second);
  }
  b[482] = extended ? 1 : 0;
  PutOctal(b, 483, 12, realsize);
  FixChecksum(b);
  return b;
}

// Old-GNU sparse extension block: up to 21 pairs, isextended at 504.
inline std::string GnuSparseExtension(const std::vector<std::pair<uint64_t, uint64_t>>& runs, bool extended) {
  std::string b(kB, '\0');
  for (size_t i = 0; i < runs.size(); ++i) {
    PutOctal(b, i * 24, 12, runs[i].first);
    PutOctal(b, i * 24 + 12, 12, runs[i].second);
  }
  b[504] = extended ? 1 : 0;
  return b;
}

}  // namespace lazyroot::tartest
