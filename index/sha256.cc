#include "index/sha256.h"

#include <openssl/evp.h>

#include <new>
#include <stdexcept>

namespace lazyroot {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  // Allocation failure of a hash context leaves nothing sensible to do.
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    throw std::bad_alloc();
  }
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(std::span<const uint8_t> bytes) { EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size()); }
void Sha256::Update(std::string_view bytes) { EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size()); }

std::array<uint8_t, 32> Sha256::Finish() {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out.data(), &len);
  return out;
}

void Sha256::Reset() {
  if (EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
}

std::string Sha256::FinishHex() { return ToHex(Finish()); }

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(2 * bytes.size(), '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = kHex[bytes[i] >> 4];
    s[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return s;
}

std::array<uint8_t, 32> Sha256::Of(std::span<const uint8_t> bytes) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
  return out;
}

std::string Sha256::HexOf(std::span<const uint8_t> bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.FinishHex();
}
std::string Sha256::HexOf(std::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.FinishHex();
}

bool IsSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace lazyroot
