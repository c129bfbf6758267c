// VerifiedByteSource under a script of reads and on-disk changes read from
// the input: reads at any offset and length (around chunk edges, the 1 KiB
// small-read bound, the 256 KiB spanning read), byte flips, truncation and
// regrowth, restoring, a short pread, a failed pread that wrote garbage,
// and re-opening the source. Oracle: the blob the digests were taken of.
// Every byte a read hands out (the first *n) is that blob's; the rest of the
// caller's buffer holds its own bytes, zeros, or the blob's; an OK read
// returns all it can; an error is kCorruption (or the injected I/O error);
// a source over the unchanged blob never fails; the caches stay bounded.
#include <cstring>
#include <memory>
#include <vector>

#include "index/chunk_digests.h"
#include "index/verified_source.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot {
namespace {

struct DiskState {
  std::vector<uint8_t> bytes;  // the file now (may be shorter or longer than the blob)
  bool short_next = false, fail_next = false;
};

class Disk final : public ByteSource {
 public:
  explicit Disk(DiskState* s) : s_(s) {}
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    *n = 0;
    if (s_->fail_next) {
      s_->fail_next = false;
      std::memset(out.data(), 0x3C, out.size());
      return Status::IoError(name_ + ": injected");
    }
    if (offset >= s_->bytes.size()) return Status::Ok();
    size_t take = static_cast<size_t>(std::min<uint64_t>(out.size(), s_->bytes.size() - offset));
    if (s_->short_next) {
      s_->short_next = false;
      take /= 2;
    }
    std::memcpy(out.data(), s_->bytes.data() + offset, take);
    *n = take;
    return Status::Ok();
  }
  uint64_t Size() const override { return s_->bytes.size(); }
  const std::string& Name() const override { return name_; }

 private:
  DiskState* s_;
  std::string name_ = "blob sha256:fuzz";
};

}  // namespace
}  // namespace lazyroot

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  if (size < 4) return 0;
  fuzz::Rng rng(std::span<const uint8_t>(data, 4));
  const uint32_t chunk = 4096u << (data[0] % 4);  // 4-32 KiB (an index allows up to 1 MiB)
  const size_t blob_size = (size_t{data[1]} << 10 | data[2] << 2) % (600u << 10);
  std::vector<uint8_t> blob(blob_size);
  for (auto& b : blob) b = static_cast<uint8_t>(rng.Next());
  ChunkHasher h(chunk);
  h.Update(blob);
  auto digests = std::make_shared<const ChunkDigests>(h.Finish());
  DiskState disk{blob};
  auto open = [&] { return NewVerifiedByteSource(std::make_unique<Disk>(&disk), digests); };
  std::unique_ptr<ByteSource> src = open();
  const uint64_t cs = chunk;
  std::vector<uint8_t> buf;
  for (size_t i = 3; i + 5 <= size; i += 5) {
    const uint8_t op = data[i];
    const uint32_t a = fuzz::GetLe32(data + i + 1);
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {  // a read: offset near a chunk edge or anywhere, a length from a menu or anywhere
        static const int64_t kLens[] = {0, 1, 2, 1023, 1024, 1025, 4095, 4096, 4097, 32767, 32768, 32769,
                                        65536, 262143, 262144, 262145, 300000};
        uint64_t off = (op & 8) ? (a % (blob_size / cs + 2)) * cs + (int8_t)(a >> 24) : a % (blob_size + 2);
        if (static_cast<int64_t>(off) < 0) off = 0;
        const size_t len = (op & 16) ? static_cast<size_t>(kLens[(a >> 8) % 17]) : (a >> 12) % (310u << 10);
        buf.assign(len, 0xA5);
        size_t n = 99;
        const bool intact = disk.bytes == blob && !disk.short_next && !disk.fail_next;
        Status st = src->ReadAt(off, buf, &n);
        fuzz::CheckError(st);
        const size_t expect = off >= blob_size ? 0 : static_cast<size_t>(std::min<uint64_t>(len, blob_size - off));
        FUZZ_CHECK(n <= expect);
        FUZZ_CHECK(!st.ok() || n == expect);
        FUZZ_CHECK(st.ok() || !intact);
        FUZZ_CHECK(st.ok() || st.code() == ErrorCode::kCorruption || st.code() == ErrorCode::kIoError);
        for (size_t k = 0; k < n; ++k) FUZZ_CHECK(buf[k] == blob[off + k]);
        for (size_t k = n; k < len; ++k) {
          FUZZ_CHECK(buf[k] == 0xA5 || buf[k] == 0 || (off + k < blob_size && buf[k] == blob[off + k]));
        }
        break;
      }
      case 3:  // flip a byte
        if (!disk.bytes.empty()) disk.bytes[a % disk.bytes.size()] ^= static_cast<uint8_t>(1 | (a >> 24));
        break;
      case 4:  // truncate or grow
        disk.bytes.resize(a % (blob_size + 4096), 0x77);
        break;
      case 5:  // put the blob back
        disk.bytes = blob;
        break;
      case 6:
        (a & 1 ? disk.short_next : disk.fail_next) = true;
        break;
      case 7:  // re-open (a mount re-loading the layer): nothing of the old source may serve it
        src = open();
        break;
    }
    FUZZ_CHECK(VerifiedSmallReadCacheBytes() <= (uint64_t{1} << 20));
    FUZZ_CHECK(VerifiedChunkCacheBytes() <= (uint64_t{2} << 20));
  }
  src.reset();
  FUZZ_CHECK(VerifiedSmallReadCacheBytes() == 0 && VerifiedChunkCacheBytes() == 0);
  return 0;
}
