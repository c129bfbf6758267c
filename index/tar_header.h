// TarHeader: a read-only view of one 512-byte tar header block, with the
// field decoders every header kind shares (NUL-terminated strings, octal and
// base-256 numbers, the checksum). Knows the three layouts: V7, POSIX ustar
// (incl. star's 131-byte prefix) and old GNU. Does not own the block; pure
// functions, safe to use from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "index/status.h"

namespace lazyroot::tar {

inline constexpr size_t kBlockSize = 512;

// Which layout bytes 257-264 announce; decides whether bytes 345-500 are a
// ustar prefix (kUstar, kStar) or GNU atime/ctime/sparse fields (kGnu, row 57).
enum class HeaderFormat : uint8_t { kV7, kUstar, kStar, kGnu };

// Offsets and lengths of the fields of a header block.
struct Field {
  size_t offset;
  size_t length;
};
inline constexpr Field kName{0, 100};
inline constexpr Field kMode{100, 8};
inline constexpr Field kUid{108, 8};
inline constexpr Field kGid{116, 8};
inline constexpr Field kSize{124, 12};
inline constexpr Field kMtime{136, 12};
inline constexpr Field kChecksum{148, 8};
inline constexpr size_t kTypeflagOffset = 156;
inline constexpr Field kLinkname{157, 100};
inline constexpr Field kMagicVersion{257, 8};
inline constexpr Field kUname{265, 32};
inline constexpr Field kGname{297, 32};
inline constexpr Field kDevMajor{329, 8};
inline constexpr Field kDevMinor{337, 8};
inline constexpr Field kUstarPrefix{345, 155};
inline constexpr Field kStarPrefix{345, 131};
// Old GNU: 4 sparse entries of (offset[12], numbytes[12]), isextended, realsize.
inline constexpr size_t kGnuSparseOffset = 386;
inline constexpr size_t kGnuSparseEntriesInHeader = 4;
inline constexpr size_t kGnuIsExtendedOffset = 482;
inline constexpr Field kGnuRealSize{483, 12};
// Old GNU sparse extension block: 21 entries, then isextended.
inline constexpr size_t kGnuSparseEntriesInExtension = 21;
inline constexpr size_t kGnuExtensionIsExtendedOffset = 504;

class TarHeader {
 public:
  // REQUIRES: block points at kBlockSize readable bytes that outlive the view.
  explicit TarHeader(const uint8_t* block) : block_(block) {}

  HeaderFormat format() const;
  char typeflag() const { return static_cast<char>(block_[kTypeflagOffset]); }
  // The bytes of `f` up to the first NUL.
  std::string_view String(Field f) const;
  // The raw bytes of `f`.
  std::string_view Raw(Field f) const;
  // A numeric field (octal or base-256). Corruption names `what` on a bad field.
  Result<int64_t> Number(Field f, std::string_view what) const;
  const uint8_t* data() const { return block_; }

 private:
  const uint8_t* block_;
};

// True if all 512 bytes are zero (an end-of-archive block).
bool IsZeroBlock(const uint8_t* block);

// OK if the stored checksum equals the unsigned or the signed byte sum (with
// the checksum field counted as spaces); Corruption "bad checksum" otherwise.
Status VerifyChecksum(const uint8_t* block);

// Decodes a numeric header field: octal digits after optional leading spaces
// or NULs, ended by a space, a NUL or the field end (what follows the
// terminator is ignored); or base-256 when the first byte has bit 7 set (0x80
// positive, 0xff negative, big-endian two's complement). An all-blank field
// is 0. Corruption naming `what` on a bad digit or an int64 overflow.
Result<int64_t> ParseNumericField(std::string_view field, std::string_view what);

// Decodes an unsigned decimal string of 1..20 digits with no sign or blanks
// (PAX records, sparse maps). Corruption naming `what` if malformed or > max.
Result<uint64_t> ParseDecimal(std::string_view s, std::string_view what, uint64_t max = INT64_MAX);

}  // namespace lazyroot::tar
