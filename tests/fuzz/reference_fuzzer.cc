// Fuzzes image references: ParseReference, then ToString (what the store
// uses as the image's key and what messages print), then ParseReference of
// that text must give back the same reference, field by field, and print
// the same. Only plain_http is not carried by the printed form. Digests go
// through ValidateDigest too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "src/image/reference.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckError(ValidateDigest(in));
  Result<Reference> first = ParseReference(in);
  if (!first.ok()) {
    CheckError(first.status());
    return 0;
  }
  if (!first->digest.empty()) FUZZ_CHECK(ValidateDigest(first->digest).ok());
  (void)first->ManifestSelector();
  (void)first->ApiHost();
  const std::string printed = first->ToString();
  Result<Reference> second = ParseReference(printed);
  if (!second.ok()) std::fprintf(stderr, "reparse of \"%s\": %s\n", printed.c_str(), second.status().ToString().c_str());
  FUZZ_CHECK(second.ok());
  if (second->ToString() != printed || second->registry != first->registry ||
      second->repository != first->repository) {
    std::fprintf(stderr, "\"%s\" -> \"%s\" -> \"%s\"\n", std::string(in).c_str(), printed.c_str(),
                 second->ToString().c_str());
  }
  FUZZ_CHECK(second->transport == first->transport);
  FUZZ_CHECK(second->registry == first->registry);
  FUZZ_CHECK(second->repository == first->repository);
  FUZZ_CHECK(second->tag == first->tag);
  FUZZ_CHECK(second->digest == first->digest);
  FUZZ_CHECK(second->layout_dir == first->layout_dir);
  FUZZ_CHECK(second->ToString() == printed);
  return 0;
}
