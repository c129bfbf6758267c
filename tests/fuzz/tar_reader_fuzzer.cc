// Fuzzes TarReader: the input is one uncompressed tar stream. It is parsed
// twice, in one Feed and in chunks whose sizes come from the input (one byte,
// odd sizes, large ones), and both parses must agree entry by entry and on the
// outcome: chunking must never change what a layer means. Each entry must
// also satisfy what the index and the merge rely on.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "index/tar_reader.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot::fuzz {
namespace {

struct Parse {
  std::vector<TarEntry> entries;
  Status status;
  uint64_t offset = 0;
};

void CheckEntry(const TarEntry& e, uint64_t stream_size) {
  FUZZ_CHECK(e.header_offset % 512 == 0);
  FUZZ_CHECK(e.data_offset % 512 == 0);
  FUZZ_CHECK(e.header_offset < e.data_offset);
  FUZZ_CHECK(e.data_offset <= stream_size);
  FUZZ_CHECK((e.mode & ~07777u) == 0);
  if (e.type != EntryType::kRegular) FUZZ_CHECK(e.size == 0 && e.stored_size == 0 && e.sparse.empty());
  if (e.sparse.empty()) {
    FUZZ_CHECK(e.size == e.stored_size);
  } else {
    uint64_t sum = 0, end = 0;
    // A file that is all hole keeps one empty run at its end (tar_sparse.h).
    if (e.sparse.size() == 1 && e.sparse[0].length == 0) FUZZ_CHECK(e.sparse[0].logical_offset == e.size);
    for (const SparseExtent& x : e.sparse) {
      FUZZ_CHECK(x.length > 0 || e.sparse.size() == 1);
      FUZZ_CHECK(x.logical_offset >= end);
      FUZZ_CHECK(x.logical_offset + x.length >= x.logical_offset);
      end = x.logical_offset + x.length;
      FUZZ_CHECK(end <= e.size);
      sum += x.length;
    }
    FUZZ_CHECK(sum == e.stored_size);
  }
  for (size_t i = 1; i < e.xattrs.size(); ++i) FUZZ_CHECK(e.xattrs[i - 1].first < e.xattrs[i].first);
}

bool SameEntry(const TarEntry& a, const TarEntry& b) {
  if (a.sparse.size() != b.sparse.size()) return false;
  for (size_t i = 0; i < a.sparse.size(); ++i) {
    if (a.sparse[i].logical_offset != b.sparse[i].logical_offset || a.sparse[i].length != b.sparse[i].length) {
      return false;
    }
  }
  return a.path == b.path && a.link_target == b.link_target && a.type == b.type && a.mode == b.mode &&
         a.uid == b.uid && a.gid == b.gid && a.uname == b.uname && a.gname == b.gname &&
         a.mtime_sec == b.mtime_sec && a.mtime_nsec == b.mtime_nsec && a.dev_major == b.dev_major &&
         a.dev_minor == b.dev_minor && a.size == b.size && a.header_offset == b.header_offset &&
         a.data_offset == b.data_offset && a.stored_size == b.stored_size && a.xattrs == b.xattrs;
}

Parse Run(std::span<const uint8_t> data, const TarReader::Limits& limits, Rng* chunker) {
  Parse p;
  TarReader reader(
      "fuzz",
      [&](const TarEntry& e) {
        p.entries.push_back(e);
        return Status::Ok();
      },
      limits);
  size_t at = 0;
  while (at < data.size()) {
    size_t n = chunker ? std::min(NextChunk(*chunker), data.size() - at) : data.size();
    p.status = reader.Feed(data.subspan(at, n));
    at += n;
    if (!p.status.ok()) break;
  }
  if (p.status.ok()) p.status = reader.Finish();
  CheckError(p.status);
  p.offset = reader.offset();
  return p;
}

}  // namespace
}  // namespace lazyroot::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot::fuzz;
  std::span<const uint8_t> in(data, size);
  Rng rng(in);
  // A quarter of the inputs parse under small limits, so that their errors
  // are reached (and must not depend on chunking either).
  lazyroot::TarReader::Limits limits;
  if (rng.Next() % 4 == 0) {
    limits.max_pax_bytes = rng.Range(0, 4096);
    limits.max_long_name = rng.Range(0, 1024);
    limits.max_sparse_extents = rng.Range(0, 16);
    limits.max_sparse_map_bytes = rng.Range(0, 2048);
  }
  Parse whole = Run(in, limits, nullptr);
  Parse chunked = Run(in, limits, &rng);
  FUZZ_CHECK(whole.status.code() == chunked.status.code());
  FUZZ_CHECK(whole.entries.size() == chunked.entries.size());
  for (size_t i = 0; i < whole.entries.size(); ++i) {
    FUZZ_CHECK(SameEntry(whole.entries[i], chunked.entries[i]));
    CheckEntry(whole.entries[i], size);
    if (i > 0) FUZZ_CHECK(whole.entries[i - 1].data_offset <= whole.entries[i].header_offset);
  }
  if (whole.status.ok()) FUZZ_CHECK(whole.offset == size && chunked.offset == size);
  return 0;
}
