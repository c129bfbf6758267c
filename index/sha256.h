// Sha256: incremental SHA-256 through OpenSSL EVP (SHA-NI where the CPU has
// it; ~4x coreutils). One object per stream; not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace lazyroot {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view bytes);
  // Finishes the hash; the object must not be updated afterwards (until Reset).
  std::array<uint8_t, 32> Finish();
  // Starts a new hash in the same context: no allocation, for hashing many
  // small inputs in a row (one per file of a layer).
  void Reset();
  // Finish() as 64 lower-case hex digits.
  std::string FinishHex();

  // One-shot helpers.
  static std::array<uint8_t, 32> Of(std::span<const uint8_t> bytes);
  static std::string HexOf(std::span<const uint8_t> bytes);
  static std::string HexOf(std::string_view bytes);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lower-case hex of bytes (a digest's encoded part).
std::string ToHex(std::span<const uint8_t> bytes);

// True when s is 64 lower-case hex digits (a sha256 digest's encoded part).
bool IsSha256Hex(std::string_view s);

}  // namespace lazyroot
