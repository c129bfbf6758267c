#include "src/image/tar_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lazyroot {
namespace {

// len-1 octal digits, zero-padded, then NUL. REQUIRES: v fits.
void Octal(char* field, size_t len, uint64_t v) {
  field[len - 1] = '\0';
  for (size_t i = len - 1; i-- > 0; v >>= 3) field[i] = static_cast<char>('0' + (v & 7));
}

}  // namespace

Status TarWriter::Write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(what_ + ": write", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status TarWriter::Header(std::string_view name, char type, uint32_t mode, uint64_t size) {
  if (name.empty() || name.size() > 100) {
    return Status::InvalidArgument(what_ + ": member name \"" + std::string(name) + "\" does not fit a ustar header");
  }
  char h[512] = {};
  std::memcpy(h, name.data(), name.size());
  Octal(h + 100, 8, mode);
  Octal(h + 108, 8, 0);
  Octal(h + 116, 8, 0);
  if (size < (uint64_t{1} << 33)) {
    Octal(h + 124, 12, size);
  } else {
    h[124] = static_cast<char>(0x80);  // base-256, big-endian
    for (int i = 0; i < 8; ++i) h[135 - i] = static_cast<char>((size >> (8 * i)) & 0xff);
  }
  Octal(h + 136, 12, 0);
  h[156] = type;
  std::memcpy(h + 257,
              "ustar\0"
              "00",
              8);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  Octal(h + 148, 7, sum);  // six digits, NUL, and the space already there
  return Write(h, sizeof h);
}

Status TarWriter::AddDirectory(std::string_view name) { return Header(name, '5', 0755, 0); }

Status TarWriter::AddFile(std::string_view name, std::string_view bytes) {
  return AddStreamed(name, bytes.size(), [&](const auto& sink) {
    return sink(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  });
}

Status TarWriter::AddStreamed(
    std::string_view name, uint64_t size,
    const std::function<Status(const std::function<Status(std::span<const uint8_t>)>&)>& fill) {
  LAZYROOT_RETURN_IF_ERROR(Header(name, '0', 0644, size));
  uint64_t written = 0;
  LAZYROOT_RETURN_IF_ERROR(fill([&](std::span<const uint8_t> b) -> Status {
    written += b.size();
    if (written > size) return Status::Corruption(what_ + ": " + std::string(name) + " grew while being written");
    return Write(b.data(), b.size());
  }));
  if (written != size) return Status::Corruption(what_ + ": " + std::string(name) + " shrank while being written");
  static const char kZeros[512] = {};
  return Write(kZeros, (512 - size % 512) % 512);
}

Status TarWriter::Finish() {
  static const char kZeros[1024] = {};
  return Write(kZeros, sizeof kZeros);
}

}  // namespace lazyroot
