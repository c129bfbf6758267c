#include "index/pax_records.h"

#include <cstring>
#include <type_traits>

#include "index/ascii.h"
#include "index/limits.h"
#include "index/tar_header.h"

namespace lazyroot::tar {
namespace {

constexpr std::string_view kSchilyXattr = "SCHILY.xattr.";
constexpr std::string_view kLibarchiveXattr = "LIBARCHIVE.xattr.";

// A hostile key or name may be megabytes long: messages show its start only.
std::string Cut(std::string_view s) {
  constexpr size_t kShown = 64;
  return s.size() <= kShown ? std::string(s) : std::string(s.substr(0, kShown)) + "…";
}

Status Bad(std::string_view what, std::string_view key) {
  return Status::Corruption("PAX record " + Cut(key) + ": " + std::string(what));
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

Status CheckXattrSizes(std::string_view name, uint64_t value_size) {
  // A namespace with nothing after it: setxattr refuses it (EINVAL), so an
  // extract would fail on it late and a mount would list it.
  for (std::string_view ns : {"user.", "trusted.", "security.", "system."}) {
    if (name == ns) return Status::Corruption("xattr name " + Cut(name) + " names no attribute");
  }
  if (name.size() > Limits::kMaxXattrName) {
    return Status::LimitExceeded("xattr name " + Cut(name) + " is " + std::to_string(name.size()) +
                                 " bytes, over the kernel's " + std::to_string(Limits::kMaxXattrName));
  }
  if (value_size > Limits::kMaxXattrValue) {
    return Status::LimitExceeded("xattr " + Cut(name) + " is " + std::to_string(value_size) +
                                 " bytes, over the kernel's " + std::to_string(Limits::kMaxXattrValue));
  }
  return Status::Ok();
}

// Sets one xattr, keeping out->xattr_bytes and the kernel's per-file total.
Status SetXattr(std::string name, std::string value, PaxRecords* out) {
  uint64_t total = out->xattr_bytes;
  auto it = out->xattrs.find(name);
  if (it != out->xattrs.end()) total -= it->first.size() + it->second.size();
  total += name.size() + value.size();
  if (total > Limits::kMaxXattrsPerEntry) {
    return Status::LimitExceeded("xattrs add up to " + std::to_string(total) +
                                 " bytes (names and values), over the kernel's " +
                                 std::to_string(Limits::kMaxXattrsPerEntry) + " per file");
  }
  out->xattr_bytes = total;
  out->xattrs[std::move(name)] = std::move(value);
  return Status::Ok();
}

void EraseXattr(const std::string& name, PaxRecords* out) {
  auto it = out->xattrs.find(name);
  if (it == out->xattrs.end()) return;
  out->xattr_bytes -= it->first.size() + it->second.size();
  out->xattrs.erase(it);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bsdtar writes xattr names URL-encoded (RFC 1738 style: %XX for unsafe bytes).
Result<std::string> DecodeUrlEncoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return Status::Corruption("bad %-escape in xattr name");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// "off,len,off,len,..." (GNU sparse 0.1).
Status ParseSparseMapList(std::string_view s, size_t max_extents, std::vector<SparseExtent>* out) {
  out->clear();
  if (s.empty()) return Status::Ok();
  std::vector<uint64_t> numbers;
  while (true) {
    size_t comma = s.find(',');
    LAZYROOT_ASSIGN_OR_RETURN(uint64_t n, ParseDecimal(s.substr(0, comma), "GNU.sparse.map number"));
    if (numbers.size() >= 2 * max_extents) return Status::Corruption("sparse map has too many extents");
    numbers.push_back(n);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (numbers.size() % 2 != 0) return Status::Corruption("GNU.sparse.map has an odd number of values");
  for (size_t i = 0; i < numbers.size(); i += 2) out->push_back({numbers[i], numbers[i + 1]});
  return Status::Ok();
}

// Sparse 0.0 lists GNU.sparse.offset / GNU.sparse.numbytes records that must
// alternate within one header.
struct SparsePairs {
  bool have_offset = false;
  uint64_t offset = 0;
  bool seen = false;
  std::vector<SparseExtent> extents;
};

// Applies one record to *out.
Status ApplyRecord(std::string_view key, std::string_view value, size_t max_extents, PaxRecords* out,
                   SparsePairs* pairs) {
  auto set_string = [&](std::optional<std::string>* field) -> Status {
    if (HasNul(value)) return Bad("NUL in value", key);
    if (value.empty()) {
      field->reset();
    } else {
      *field = std::string(value);
    }
    return Status::Ok();
  };
  auto set_number = [&](auto* field, uint64_t max) -> Status {
    if (value.empty()) {
      field->reset();
      return Status::Ok();
    }
    Result<uint64_t> n = ParseDecimal(value, key, max);
    if (!n.ok()) return n.status();
    *field = static_cast<typename std::remove_reference_t<decltype(**field)>>(*n);
    return Status::Ok();
  };

  if (key == "path" || key == "linkpath" || key == "GNU.sparse.name") {
    if (value.size() > Limits::kMaxPath) {
      return Status::LimitExceeded(std::string(key) + " is " + std::to_string(value.size()) +
                                   " bytes, over the kernel's " + std::to_string(Limits::kMaxPath));
    }
  }
  if (key == "path") return set_string(&out->path);
  if (key == "linkpath") return set_string(&out->linkpath);
  if (key == "uname") return set_string(&out->uname);
  if (key == "gname") return set_string(&out->gname);
  if (key == "size") return set_number(&out->size, INT64_MAX);
  if (key == "uid") return set_number(&out->uid, UINT32_MAX);
  if (key == "gid") return set_number(&out->gid, UINT32_MAX);
  if (key == "mtime" || key == "atime" || key == "ctime") {
    if (value.empty()) {
      if (key == "mtime") out->mtime.reset();
      return Status::Ok();
    }
    Result<PaxTime> t = ParsePaxTime(value);
    if (!t.ok()) return Bad("bad time \"" + std::string(value) + "\"", key);
    // TarEntry keeps only mtime; atime/ctime are validated like Go does.
    if (key == "mtime") out->mtime = *t;
    return Status::Ok();
  }
  if (key.starts_with(kSchilyXattr)) {
    std::string_view name = key.substr(kSchilyXattr.size());
    if (name.empty()) return Bad("empty xattr name", key);
    // An empty value deletes the keyword (POSIX pax; Go's mergePAX and so
    // umoci/containerd/moby set nothing).
    if (value.empty()) {
      EraseXattr(std::string(name), out);
      return Status::Ok();
    }
    LAZYROOT_RETURN_IF_ERROR(CheckXattrSizes(name, value.size()));
    return SetXattr(std::string(name), std::string(value), out);
  }
  if (key.starts_with(kLibarchiveXattr)) {
    Result<std::string> name = DecodeUrlEncoded(key.substr(kLibarchiveXattr.size()));
    if (!name.ok()) return Bad(name.status().message(), key);
    if (name->empty() || HasNul(*name)) return Bad("bad xattr name", key);
    if (value.empty()) {
      EraseXattr(*name, out);
      return Status::Ok();
    }
    // Refused before decoding: base64 holds 3 bytes per 4 characters.
    LAZYROOT_RETURN_IF_ERROR(CheckXattrSizes(*name, value.size() / 4 * 3));
    std::optional<std::string> v = DecodeBase64(value, Base64Padding::kOptional);
    if (!v) return Bad("bad base64 xattr value", key);
    LAZYROOT_RETURN_IF_ERROR(CheckXattrSizes(*name, v->size()));
    return SetXattr(std::move(*name), std::move(*v), out);
  }
  if (!key.starts_with("GNU.sparse.")) return Status::Ok();  // unknown keywords are ignored

  if (key == "GNU.sparse.name") return set_string(&out->sparse_name);
  if (key == "GNU.sparse.realsize" || key == "GNU.sparse.size") return set_number(&out->sparse_real_size, INT64_MAX);
  if (key == "GNU.sparse.major") return set_number(&out->sparse_major, INT64_MAX);
  if (key == "GNU.sparse.minor") return set_number(&out->sparse_minor, INT64_MAX);
  if (key == "GNU.sparse.numblocks") return set_number(&out->sparse_numblocks, INT64_MAX);
  if (key == "GNU.sparse.map") {
    LAZYROOT_RETURN_IF_ERROR(ParseSparseMapList(value, max_extents, &out->sparse_map));
    out->has_sparse_map = true;
    return Status::Ok();
  }
  if (key == "GNU.sparse.offset") {
    if (pairs->have_offset) return Bad("two offsets without numbytes", key);
    LAZYROOT_ASSIGN_OR_RETURN(pairs->offset, ParseDecimal(value, key));
    pairs->have_offset = true;
    return Status::Ok();
  }
  if (key == "GNU.sparse.numbytes") {
    if (!pairs->have_offset) return Bad("numbytes without offset", key);
    LAZYROOT_ASSIGN_OR_RETURN(uint64_t n, ParseDecimal(value, key));
    if (pairs->extents.size() >= max_extents) return Status::Corruption("sparse map has too many extents");
    pairs->extents.push_back({pairs->offset, n});
    pairs->have_offset = false;
    pairs->seen = true;
    return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace

bool PaxRecords::empty() const {
  return !path && !linkpath && !uname && !gname && !size && !uid && !gid && !mtime && xattrs.empty() && !sparse_name &&
         !sparse_real_size && !sparse_major && !sparse_minor && !sparse_numblocks && !has_sparse_map;
}

void PaxRecords::Clear() { *this = PaxRecords(); }

Status ParsePaxRecords(std::string_view data, size_t max_sparse_extents, PaxRecords* out) {
  SparsePairs pairs;
  uint64_t record_start = 0;
  while (!data.empty()) {
    // "%d %s=%s\n": the length counts itself, the space, the key, '=', value and '\n'.
    size_t space = data.find(' ');
    if (space == std::string_view::npos || space == 0 || space > 20) {
      return Status::Corruption("malformed PAX record at byte " + std::to_string(record_start));
    }
    Result<uint64_t> len = ParseDecimal(data.substr(0, space), "PAX record length");
    if (!len.ok() || *len < space + 4 || *len > data.size()) {
      return Status::Corruption("bad PAX record length at byte " + std::to_string(record_start));
    }
    std::string_view record = data.substr(space + 1, *len - space - 1);
    if (record.back() != '\n') {
      return Status::Corruption("PAX record at byte " + std::to_string(record_start) + " does not end in a newline");
    }
    record.remove_suffix(1);
    size_t eq = record.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Status::Corruption("PAX record at byte " + std::to_string(record_start) + " has no key");
    }
    std::string_view key = record.substr(0, eq);
    std::string_view value = record.substr(eq + 1);
    if (HasNul(key)) return Status::Corruption("NUL in PAX record key at byte " + std::to_string(record_start));
    LAZYROOT_RETURN_IF_ERROR(ApplyRecord(key, value, max_sparse_extents, out, &pairs));
    data.remove_prefix(*len);
    record_start += *len;
  }
  if (pairs.have_offset) return Status::Corruption("PAX record GNU.sparse.offset without numbytes");
  if (pairs.seen) {
    out->sparse_map = std::move(pairs.extents);
    out->has_sparse_map = true;
  }
  return Status::Ok();
}

Result<PaxTime> ParsePaxTime(std::string_view s) {
  bool negative = !s.empty() && s[0] == '-';
  std::string_view digits = negative ? s.substr(1) : s;
  size_t dot = digits.find('.');
  std::string_view whole = digits.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : digits.substr(dot + 1);
  if (dot != std::string_view::npos && frac.empty()) return Status::Corruption("bad PAX time");
  LAZYROOT_ASSIGN_OR_RETURN(uint64_t sec, ParseDecimal(whole, "PAX time", INT64_MAX));
  uint32_t nsec = 0;
  for (size_t i = 0; i < frac.size(); ++i) {
    if (frac[i] < '0' || frac[i] > '9') return Status::Corruption("bad PAX time");
    if (i < 9) nsec = nsec * 10 + static_cast<uint32_t>(frac[i] - '0');
  }
  for (size_t i = frac.size(); i < 9; ++i) nsec *= 10;
  PaxTime t;
  if (!negative) {
    t.sec = static_cast<int64_t>(sec);
    t.nsec = nsec;
  } else if (nsec == 0) {
    t.sec = -static_cast<int64_t>(sec);
  } else {
    // -sec.frac == -(sec+1) + (1 - 0.frac)
    t.sec = -static_cast<int64_t>(sec) - 1;
    t.nsec = 1000000000u - nsec;
  }
  return t;
}

}  // namespace lazyroot::tar
