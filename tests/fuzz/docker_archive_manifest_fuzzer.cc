// Fuzzes docker save's manifest.json (`lazyroot pull docker-archive:FILE`):
// the input is the document; every parsed image is then selected by "", by
// "@N" and by each of its RepoTags, which must pick an image that has it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "src/image/docker_archive.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto images = ParseDockerArchiveManifest(in, "manifest.json");
  if (!images.ok()) {
    CheckError(images.status());
    return 0;
  }
  FUZZ_CHECK(!images->empty());
  auto only = SelectDockerArchiveImage(*images, "", "a");
  FUZZ_CHECK(only.ok() == (images->size() == 1));
  if (!only.ok()) CheckError(only.status());
  for (size_t i = 0; i < images->size() && i < 64; ++i) {
    auto at = SelectDockerArchiveImage(*images, "@" + std::to_string(i), "a");
    FUZZ_CHECK(at.ok() && *at == i);
    for (const std::string& tag : (*images)[i].repo_tags) {
      auto picked = SelectDockerArchiveImage(*images, tag, "a");
      if (!picked.ok()) {
        CheckError(picked.status());
        continue;
      }
      FUZZ_CHECK(*picked <= i);  // the first image carrying an equal tag
    }
  }
  return 0;
}
