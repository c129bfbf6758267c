// Fuzzes the PAX extended-header parser (ParsePaxRecords) and PAX times. The
// input is split at "\0\0PAX\0\0" into up to four 'x' data areas applied in
// order to one PaxRecords, as a chain of 'x' headers in front of an entry is.
// What the tar reader builds an entry from must hold afterwards.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "index/pax_records.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  Result<tar::PaxTime> t = tar::ParsePaxTime(in);
  if (t.ok()) {
    FUZZ_CHECK(t->nsec < 1000000000u);
  } else {
    CheckError(t.status());
  }

  constexpr size_t kMaxExtents = 1 << 12;
  tar::PaxRecords pax;
  bool ok = true;
  ForEachPart(in, std::string_view("\0\0PAX\0\0", 7), 4, [&](std::string_view part) {
    if (!ok) return;
    Status s = tar::ParsePaxRecords(part, kMaxExtents, &pax);
    CheckError(s);
    ok = s.ok();
  });
  if (!ok) return 0;
  auto no_nul = [](const std::optional<std::string>& s) { return !s || s->find('\0') == std::string::npos; };
  FUZZ_CHECK(no_nul(pax.path) && no_nul(pax.linkpath) && no_nul(pax.uname) && no_nul(pax.gname) &&
             no_nul(pax.sparse_name));
  if (pax.mtime) FUZZ_CHECK(pax.mtime->nsec < 1000000000u);
  FUZZ_CHECK(pax.sparse_map.size() <= kMaxExtents);
  for (const auto& [name, value] : pax.xattrs) FUZZ_CHECK(!name.empty());
  (void)pax.empty();
  pax.Clear();
  FUZZ_CHECK(pax.empty());
  return 0;
}
