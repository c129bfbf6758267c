#include "index/status.h"

#include <cstring>

namespace lazyroot {

Status Status::FromErrno(std::string m, int err) {
  m += ": ";
  m += std::strerror(err);
  return Status(ErrorCode::kIoError, std::move(m));
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

std::string Status::ToString() const { return ok() ? std::string("OK") : message_; }

namespace {

// Length of the valid UTF-8 sequence starting s[i] (1–4), 0 if invalid.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  }
  const uint32_t cp = len == 1   ? c
                      : len == 2 ? ((c & 0x1fu) << 6) | (b(i + 1) & 0x3fu)
                      : len == 3 ? ((c & 0x0fu) << 12) | ((b(i + 1) & 0x3fu) << 6) | (b(i + 2) & 0x3fu)
                                 : ((c & 0x07u) << 18) | ((b(i + 1) & 0x3fu) << 12) | ((b(i + 2) & 0x3fu) << 6) |
                                       (b(i + 3) & 0x3fu);
  const uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;  // overlong, surrogate
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;                        // C0, DEL, C1
  return len;
}

}  // namespace

std::string Displayable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8Length(s, i);
    if (len > 0) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    static const char kHex[] = "0123456789abcdef";
    const auto c = static_cast<uint8_t>(s[i++]);
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

}  // namespace lazyroot
