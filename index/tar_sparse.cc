#include "index/tar_sparse.h"

#include <string>
#include <string_view>

#include "index/tar_header.h"

namespace lazyroot::tar {

Status AppendOldGnuSparseEntries(const uint8_t* entries, size_t count, size_t max_extents,
                                 std::vector<SparseExtent>* out) {
  for (size_t i = 0; i < count; ++i) {
    const char* e = reinterpret_cast<const char*>(entries + i * 24);
    if (e[0] == '\0') break;
    LAZYROOT_ASSIGN_OR_RETURN(int64_t offset, ParseNumericField(std::string_view(e, 12), "sparse offset"));
    LAZYROOT_ASSIGN_OR_RETURN(int64_t length, ParseNumericField(std::string_view(e + 12, 12), "sparse numbytes"));
    if (offset < 0 || length < 0) return Status::Corruption("negative sparse offset or length");
    if (out->size() >= max_extents) return Status::Corruption("sparse map has too many extents");
    out->push_back({static_cast<uint64_t>(offset), static_cast<uint64_t>(length)});
  }
  return Status::Ok();
}

Status SparseMap1x0Parser::EndToken() {
  if (token_digits_ == 0) return Status::Corruption("empty number in sparse map");
  uint64_t v = token_;
  token_ = 0;
  token_digits_ = 0;
  if (!have_count_) {
    if (v > max_extents_) return Status::Corruption("sparse map has too many extents");
    have_count_ = true;
    count_ = v;
    extents_.reserve(v);
  } else if (!have_offset_) {
    pending_offset_ = v;
    have_offset_ = true;
  } else {
    extents_.push_back({pending_offset_, v});
    have_offset_ = false;
  }
  done_ = have_count_ && extents_.size() == count_ && !have_offset_;
  return Status::Ok();
}

Status SparseMap1x0Parser::ConsumeBlock(const uint8_t* block) {
  for (size_t i = 0; i < kBlockSize && !done_; ++i) {
    uint8_t c = block[i];
    if (c == '\n') {
      LAZYROOT_RETURN_IF_ERROR(EndToken());
    } else if (c >= '0' && c <= '9') {
      // 19 digits always fit in int64; more would not.
      if (++token_digits_ > 19) return Status::Corruption("number too long in sparse map");
      token_ = token_ * 10 + (c - '0');
    } else {
      return Status::Corruption("bad byte in sparse map");
    }
  }
  return Status::Ok();
}

Status NormalizeSparseExtents(std::vector<SparseExtent>* extents, uint64_t real_size, uint64_t stored_size) {
  uint64_t end = 0, total = 0;
  for (const SparseExtent& e : *extents) {
    if (e.logical_offset < end) return Status::Corruption("sparse extents overlap or are out of order");
    if (e.length > real_size || e.logical_offset > real_size - e.length) {
      return Status::Corruption("sparse extent at " + std::to_string(e.logical_offset) + " ends past the file size " +
                                std::to_string(real_size));
    }
    end = e.logical_offset + e.length;
    total += e.length;  // <= real_size, no overflow
  }
  if (total != stored_size) {
    return Status::Corruption("sparse map covers " + std::to_string(total) + " bytes but the archive stores " +
                              std::to_string(stored_size));
  }
  std::erase_if(*extents, [](const SparseExtent& e) { return e.length == 0; });
  // A file that is all hole (GNU tar writes one zero-length run at its end)
  // keeps one empty extent, so it stays recognisably sparse: stored size 0,
  // logical size real_size.
  if (extents->empty()) extents->push_back(SparseExtent{real_size, 0});
  return Status::Ok();
}

}  // namespace lazyroot::tar
