#include "index/tar_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

namespace lazyroot {
namespace {

using tar::kBlockSize;

uint64_t Padding(uint64_t size) { return (kBlockSize - size % kBlockSize) % kBlockSize; }

std::string Printable(char c) {
  char buf[16];
  if (c >= 0x21 && c < 0x7f) {
    std::snprintf(buf, sizeof buf, "'%c'", c);
  } else {
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
  }
  return buf;
}

Result<uint32_t> FitU32(int64_t v, const char* what) {
  if (v < 0 || v > static_cast<int64_t>(UINT32_MAX)) {
    return Status::Corruption(std::string(what) + " " + std::to_string(v) + " does not fit in 32 bits");
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

TarReader::TarReader(std::string name, EntryFn on_entry)
    : TarReader(std::move(name), std::move(on_entry), Limits()) {}

TarReader::TarReader(std::string name, EntryFn on_entry, Limits limits)
    : name_(std::move(name)), on_entry_(std::move(on_entry)), limits_(limits), sparse_map_(limits.max_sparse_extents) {}

Status TarReader::Fail(Status s) {
  status_ = s.WithContext(name_ + ": tar header at offset " + std::to_string(header_offset_));
  return status_;
}

Status TarReader::FailEntry(Status s, std::string_view path) {
  status_ = s.WithContext(name_ + ": " + DescribeEntry(entry_start_, path));
  return status_;
}

Status TarReader::Feed(std::span<const uint8_t> bytes) {
  if (!status_.ok()) return status_;
  if (finished_) {
    header_offset_ = offset_;
    return Fail(Status::InvalidArgument("Feed after Finish"));
  }
  return Run(bytes);
}

Status TarReader::Run(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    if (skip_ > 0) {
      // Entry data: counted, never copied.
      size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, bytes.size()));
      skip_ -= n;
      offset_ += n;
      bytes = bytes.subspan(n);
      continue;
    }
    if (state_ == State::kTrailing) {
      offset_ += bytes.size();
      return Status::Ok();
    }
    if (state_ == State::kExtensionData) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(ext_remaining_, bytes.size()));
      ext_data_.append(reinterpret_cast<const char*>(bytes.data()), n);
      ext_remaining_ -= n;
      offset_ += n;
      bytes = bytes.subspan(n);
      if (ext_remaining_ == 0) {
        skip_ = ext_padding_;
        LAZYROOT_RETURN_IF_ERROR(FinishExtension());
      }
      continue;
    }
    // Block states. A whole block in the caller's buffer is parsed in place.
    const uint8_t* block;
    if (block_fill_ == 0 && bytes.size() >= kBlockSize) {
      block = bytes.data();
      bytes = bytes.subspan(kBlockSize);
      offset_ += kBlockSize;
    } else {
      size_t n = std::min(kBlockSize - block_fill_, bytes.size());
      std::memcpy(block_ + block_fill_, bytes.data(), n);
      block_fill_ += n;
      offset_ += n;
      bytes = bytes.subspan(n);
      if (block_fill_ < kBlockSize) continue;
      block_fill_ = 0;
      block = block_;
    }
    LAZYROOT_RETURN_IF_ERROR(ProcessBlock(block));
  }
  return Status::Ok();
}

Status TarReader::ProcessBlock(const uint8_t* block) {
  switch (state_) {
    case State::kHeader:
      header_offset_ = offset_ - kBlockSize;
      return ParseHeader(block);
    case State::kGnuSparseExtension:
      return ContinueGnuSparse(block);
    case State::kSparseMap:
      return ContinueSparseMap(block);
    case State::kExtensionData:
    case State::kTrailing:
      break;
  }
  return Fail(Status::Corruption("internal: block in a stream state"));
}

Status TarReader::ParseHeader(const uint8_t* block) {
  if (tar::IsZeroBlock(block)) {
    if (!limit_error_.ok()) return FailEntry(limit_error_, "");
    if (pending_) return Fail(Status::Corruption("end-of-archive block after an extension header"));
    if (saw_zero_block_) state_ = State::kTrailing;
    saw_zero_block_ = true;
    return Status::Ok();
  }
  if (saw_zero_block_) return Fail(Status::Corruption("header after a single end-of-archive zero block"));
  Status st = tar::VerifyChecksum(block);
  if (!st.ok()) return Fail(st);
  tar::TarHeader h(block);
  if (!pending_) entry_start_ = header_offset_;
  switch (h.typeflag()) {
    case 'g': {
      // A PAX global header is neither a file nor applied (row 54): skip it.
      Result<int64_t> size = h.Number(tar::kSize, "size");
      if (!size.ok()) return Fail(size.status());
      if (*size < 0) return Fail(Status::Corruption("negative size"));
      skip_ = static_cast<uint64_t>(*size) + Padding(static_cast<uint64_t>(*size));
      return Status::Ok();
    }
    case 'x':
    case 'L':
    case 'K':
      return StartExtension(h);
    default:
      LAZYROOT_RETURN_IF_ERROR(BuildEntry(h));
      return Status::Ok();
  }
}

Status TarReader::StartExtension(const tar::TarHeader& h) {
  Result<int64_t> size = h.Number(tar::kSize, "size");
  if (!size.ok()) return Fail(size.status());
  if (*size < 0) return Fail(Status::Corruption("negative size"));
  uint64_t n = static_cast<uint64_t>(*size);
  ext_kind_ = h.typeflag();
  if (ext_kind_ == 'x') {
    if (n > limits_.max_pax_bytes - std::min<uint64_t>(pax_bytes_, limits_.max_pax_bytes)) {
      return Fail(Status::Corruption("PAX header too large (" + std::to_string(pax_bytes_ + n) + " bytes)"));
    }
    pax_bytes_ += n;
  } else if (n > limits_.max_long_name) {
    return Fail(Status::Corruption(std::string(ext_kind_ == 'L' ? "GNU long name" : "GNU long link") +
                                   " too large (" + std::to_string(n) + " bytes)"));
  } else if (n > lazyroot::Limits::kMaxPath + kBlockSize) {
    // Refused before it is read; the exact length (up to the first NUL) is
    // checked with the entry.
    return FailEntry(Status::LimitExceeded(std::string(ext_kind_ == 'L' ? "GNU long name" : "GNU long link") +
                                           " is " + std::to_string(n) + " bytes, over the kernel's " +
                                           std::to_string(lazyroot::Limits::kMaxPath)),
                     "");
  }
  pending_ = true;
  ext_data_.clear();
  ext_remaining_ = n;
  ext_padding_ = Padding(n);
  state_ = State::kExtensionData;
  if (n == 0) return FinishExtension();
  ext_data_.reserve(n);
  return Status::Ok();
}

Status TarReader::FinishExtension() {
  state_ = State::kHeader;
  if (ext_kind_ == 'x') {
    Status st = tar::ParsePaxRecords(ext_data_, limits_.max_sparse_extents, &pax_);
    if (st.code() == ErrorCode::kLimitExceeded) {
      // Nothing over the limit was kept. The error waits for the entry's
      // header (the next block or few), so that it can name the entry's path.
      if (limit_error_.ok()) limit_error_ = st;
      return Status::Ok();
    }
    if (!st.ok()) return Fail(st);
  } else {
    // GNU long names end at the first NUL; the last 'L'/'K' wins (row 51).
    std::string_view v(ext_data_);
    v = v.substr(0, v.find('\0'));
    (ext_kind_ == 'L' ? long_name_ : long_link_) = std::string(v);
  }
  return Status::Ok();
}

Status TarReader::BuildEntry(const tar::TarHeader& h) {
  const char flag = h.typeflag();
  const tar::HeaderFormat format = h.format();
  TarEntry& e = entry_;
  switch (flag) {
    case '0': case '\0': case '7': case 'S': e.type = EntryType::kRegular; break;
    case '1': e.type = EntryType::kHardlink; break;
    case '2': e.type = EntryType::kSymlink; break;
    case '3': e.type = EntryType::kCharDevice; break;
    case '4': e.type = EntryType::kBlockDevice; break;
    case '5': e.type = EntryType::kDirectory; break;
    case '6': e.type = EntryType::kFifo; break;
    default:
      return Fail(Status::Unsupported("unsupported typeflag " + Printable(flag)));
  }

  // Names: ustar prefix (only when the magic says ustar, row 57), then PAX,
  // then GNU long name/link.
  e.path.clear();
  if (format == tar::HeaderFormat::kUstar || format == tar::HeaderFormat::kStar) {
    std::string_view prefix = h.String(format == tar::HeaderFormat::kUstar ? tar::kUstarPrefix : tar::kStarPrefix);
    if (!prefix.empty()) {
      e.path.append(prefix);
      e.path.push_back('/');
    }
  }
  e.path.append(h.String(tar::kName));
  e.link_target.assign(h.String(tar::kLinkname));
  if (pax_.path) e.path = *pax_.path;
  if (pax_.linkpath) e.link_target = *pax_.linkpath;
  if (long_name_) e.path = *long_name_;
  if (long_link_) e.link_target = *long_link_;
  if (flag == '\0' && !e.path.empty() && e.path.back() == '/') e.type = EntryType::kDirectory;
  if (!limit_error_.ok()) return FailEntry(limit_error_, e.path);

  const bool has_ustar_fields = format != tar::HeaderFormat::kV7;
  if (has_ustar_fields) {
    e.uname.assign(h.String(tar::kUname));
    e.gname.assign(h.String(tar::kGname));
  } else {
    e.uname.clear();
    e.gname.clear();
  }
  if (pax_.uname) e.uname = *pax_.uname;
  if (pax_.gname) e.gname = *pax_.gname;

  Result<int64_t> mode = h.Number(tar::kMode, "mode");
  if (!mode.ok()) return Fail(mode.status());
  e.mode = static_cast<uint32_t>(static_cast<uint64_t>(*mode) & 07777);  // type bits never override the flag

  Result<int64_t> uid = h.Number(tar::kUid, "uid");
  if (!uid.ok()) return Fail(uid.status());
  Result<int64_t> gid = h.Number(tar::kGid, "gid");
  if (!gid.ok()) return Fail(gid.status());
  if (pax_.uid) {
    e.uid = *pax_.uid;
  } else {
    Result<uint32_t> u = FitU32(*uid, "uid");
    if (!u.ok()) return Fail(u.status());
    e.uid = *u;
  }
  if (pax_.gid) {
    e.gid = *pax_.gid;
  } else {
    Result<uint32_t> g = FitU32(*gid, "gid");
    if (!g.ok()) return Fail(g.status());
    e.gid = *g;
  }

  Result<int64_t> mtime = h.Number(tar::kMtime, "mtime");
  if (!mtime.ok()) return Fail(mtime.status());
  e.mtime_sec = *mtime;
  e.mtime_nsec = 0;
  if (pax_.mtime) {
    e.mtime_sec = pax_.mtime->sec;
    e.mtime_nsec = pax_.mtime->nsec;
  }

  e.dev_major = e.dev_minor = 0;
  if ((flag == '3' || flag == '4') && has_ustar_fields) {
    Result<int64_t> major = h.Number(tar::kDevMajor, "devmajor");
    if (!major.ok()) return Fail(major.status());
    Result<int64_t> minor = h.Number(tar::kDevMinor, "devminor");
    if (!minor.ok()) return Fail(minor.status());
    Result<uint32_t> ma = FitU32(*major, "device major");
    if (!ma.ok()) return Fail(ma.status());
    Result<uint32_t> mi = FitU32(*minor, "device minor");
    if (!mi.ok()) return Fail(mi.status());
    e.dev_major = *ma;
    e.dev_minor = *mi;
  }

  Result<int64_t> size = h.Number(tar::kSize, "size");
  if (!size.ok()) return Fail(size.status());
  if (*size < 0) return Fail(Status::Corruption("negative size " + std::to_string(*size)));
  uint64_t stored = pax_.size ? *pax_.size : static_cast<uint64_t>(*size);
  if (e.type != EntryType::kRegular) stored = 0;  // header-only types carry no data (row 58)

  e.xattrs.assign(pax_.xattrs.begin(), pax_.xattrs.end());  // std::map: already sorted by name
  e.sparse.clear();
  e.header_offset = entry_start_;
  e.data_offset = offset_;
  e.size = stored;
  e.stored_size = stored;

  if (flag == 'S') {
    // Old GNU sparse: the map lives in this header and in extension blocks.
    if (format != tar::HeaderFormat::kGnu) return Fail(Status::Corruption("sparse 'S' header without GNU magic"));
    Result<int64_t> real = h.Number(tar::kGnuRealSize, "realsize");
    if (!real.ok()) return Fail(real.status());
    if (*real < 0) return Fail(Status::Corruption("negative sparse realsize"));
    sparse_real_size_ = static_cast<uint64_t>(*real);
    Status st = tar::AppendOldGnuSparseEntries(h.data() + tar::kGnuSparseOffset, tar::kGnuSparseEntriesInHeader,
                                               limits_.max_sparse_extents, &e.sparse);
    if (!st.ok()) return Fail(st);
    if (h.data()[tar::kGnuIsExtendedOffset] != 0) {
      state_ = State::kGnuSparseExtension;
      return Status::Ok();
    }
    return ContinueGnuSparse(nullptr);
  }
  if (pax_.sparse_major || pax_.sparse_minor || pax_.has_sparse_map) {
    if (e.type != EntryType::kRegular) return Fail(Status::Corruption("GNU.sparse records on a non-regular entry"));
    return StartPaxSparse(stored);
  }
  return EmitEntry();
}

Status TarReader::StartPaxSparse(uint64_t stored_size) {
  TarEntry& e = entry_;
  uint64_t major = pax_.sparse_major.value_or(0), minor = pax_.sparse_minor.value_or(0);
  bool v1 = major == 1 && minor == 0;
  if (!v1 && !(major == 0 && (minor == 0 || minor == 1))) {
    return Fail(Status::Unsupported("unsupported GNU sparse version " + std::to_string(major) + "." +
                                    std::to_string(minor)));
  }
  if (pax_.sparse_name) e.path = *pax_.sparse_name;
  sparse_real_size_ = pax_.sparse_real_size.value_or(stored_size);
  if (v1) {
    sparse_map_ = tar::SparseMap1x0Parser(limits_.max_sparse_extents);
    sparse_map_bytes_ = 0;
    state_ = State::kSparseMap;
    return Status::Ok();
  }
  if (!pax_.has_sparse_map) return Fail(Status::Corruption("GNU sparse 0.x entry without a map"));
  if (pax_.sparse_numblocks && *pax_.sparse_numblocks != pax_.sparse_map.size()) {
    return Fail(Status::Corruption("GNU.sparse.numblocks " + std::to_string(*pax_.sparse_numblocks) +
                                   " disagrees with the map's " + std::to_string(pax_.sparse_map.size()) + " runs"));
  }
  e.sparse = std::move(pax_.sparse_map);
  Status st = tar::NormalizeSparseExtents(&e.sparse, sparse_real_size_, e.stored_size);
  if (!st.ok()) return Fail(st);
  e.size = sparse_real_size_;
  return EmitEntry();
}

Status TarReader::ContinueGnuSparse(const uint8_t* block) {
  TarEntry& e = entry_;
  if (block != nullptr) {
    Status st = tar::AppendOldGnuSparseEntries(block, tar::kGnuSparseEntriesInExtension, limits_.max_sparse_extents,
                                               &e.sparse);
    if (!st.ok()) return Fail(st);
    if (block[tar::kGnuExtensionIsExtendedOffset] != 0) return Status::Ok();  // another extension block follows
    state_ = State::kHeader;
  }
  e.data_offset = offset_;
  Status st = tar::NormalizeSparseExtents(&e.sparse, sparse_real_size_, e.stored_size);
  if (!st.ok()) return Fail(st);
  e.size = sparse_real_size_;
  return EmitEntry();
}

Status TarReader::ContinueSparseMap(const uint8_t* block) {
  TarEntry& e = entry_;
  sparse_map_bytes_ += kBlockSize;
  if (sparse_map_bytes_ > limits_.max_sparse_map_bytes) {
    return Fail(Status::Corruption("GNU sparse map too large (over " + std::to_string(limits_.max_sparse_map_bytes) +
                                   " bytes)"));
  }
  if (sparse_map_bytes_ > e.stored_size + Padding(e.stored_size)) {
    return Fail(Status::Corruption("GNU sparse map runs past the entry's data"));
  }
  Status st = sparse_map_.ConsumeBlock(block);
  if (!st.ok()) return Fail(st);
  if (!sparse_map_.done()) return Status::Ok();
  state_ = State::kHeader;
  // The map occupies whole blocks at the start of the data; the file data follows.
  if (sparse_map_bytes_ > e.stored_size) return Fail(Status::Corruption("GNU sparse map runs past the entry's data"));
  e.stored_size -= sparse_map_bytes_;
  e.data_offset = offset_;
  e.sparse = std::move(sparse_map_.extents());
  st = tar::NormalizeSparseExtents(&e.sparse, sparse_real_size_, e.stored_size);
  if (!st.ok()) return Fail(st);
  e.size = sparse_real_size_;
  return EmitEntry();
}

Status TarReader::CheckEntry() {
  const TarEntry& e = entry_;
  auto over = [](const char* what, size_t size, size_t limit) {
    return Status::LimitExceeded(std::string(what) + " is " + std::to_string(size) + " bytes, over the kernel's " +
                                 std::to_string(limit));
  };
  // The length of the first component over NAME_MAX, or 0. A whiteout
  // (".wh." + name) may be 4 bytes longer: it names a file of up to 255.
  auto long_component = [](std::string_view path) -> size_t {
    for (size_t start = 0; start <= path.size();) {
      size_t slash = path.find('/', start);
      if (slash == std::string_view::npos) slash = path.size();
      const std::string_view c = path.substr(start, slash - start);
      if (c.size() > lazyroot::Limits::kMaxComponent + (c.starts_with(".wh.") ? 4 : 0)) return c.size();
      start = slash + 1;
    }
    return 0;
  };
  if (e.path.size() > lazyroot::Limits::kMaxPath) return over("path", e.path.size(), lazyroot::Limits::kMaxPath);
  if (size_t c = long_component(e.path); c > 0) return over("a path component", c, lazyroot::Limits::kMaxComponent);
  if (e.type == EntryType::kSymlink && e.link_target.size() > lazyroot::Limits::kMaxSymlinkTarget) {
    return over("symlink target", e.link_target.size(), lazyroot::Limits::kMaxSymlinkTarget);
  }
  if (e.type == EntryType::kHardlink) {
    if (e.link_target.size() > lazyroot::Limits::kMaxPath) return over("hardlink target", e.link_target.size(), lazyroot::Limits::kMaxPath);
    if (size_t c = long_component(e.link_target); c > 0) {
      return over("a hardlink target component", c, lazyroot::Limits::kMaxComponent);
    }
  }
  // Kernel limits on xattrs were applied as the PAX records were parsed.
  entries_ += 1;
  metadata_bytes_ += MetadataBytes(e);
  return CheckBudget(limits_.budget, "layer", entries_, metadata_bytes_);
}

Status TarReader::EmitEntry() {
  state_ = State::kHeader;
  skip_ = entry_.stored_size + Padding(entry_.stored_size);
  if (Status st = CheckEntry(); !st.ok()) return FailEntry(st, entry_.path);
  ResetPending();
  Status st = on_entry_(entry_);
  if (!st.ok()) status_ = st;
  return st;
}

void TarReader::ResetPending() {
  pending_ = false;
  pax_bytes_ = 0;
  if (!pax_.empty()) pax_.Clear();
  long_name_.reset();
  long_link_.reset();
}

Status TarReader::Finish() {
  if (!status_.ok()) return status_;
  finished_ = true;
  if (!limit_error_.ok()) return FailEntry(limit_error_, "");
  switch (state_) {
    case State::kTrailing:
      return Status::Ok();
    case State::kExtensionData:
      return Fail(Status::Corruption("archive truncated inside extension header data at offset " +
                                     std::to_string(offset_)));
    case State::kGnuSparseExtension:
    case State::kSparseMap:
      return Fail(Status::Corruption("archive truncated inside a sparse map at offset " + std::to_string(offset_)));
    case State::kHeader:
      break;
  }
  if (skip_ > 0) {
    return Fail(Status::Corruption("archive truncated at offset " + std::to_string(offset_) + ": " +
                                   std::to_string(skip_) + " bytes of entry data and padding missing"));
  }
  if (block_fill_ > 0) {
    header_offset_ = offset_ - block_fill_;
    return Fail(Status::Corruption("archive truncated inside a header (" + std::to_string(block_fill_) + " of 512 bytes)"));
  }
  if (pending_) return Fail(Status::Corruption("archive ends after an extension header"));
  return Status::Ok();
}

}  // namespace lazyroot
