// Fuzzes the registry's JSON answers: the input is a manifest, index or image
// config body, classified under a Content-Type derived from the input and
// given to every parser (ParseIndex, ParseImageManifest, ParseImageConfig),
// as a hostile registry could send any body for any of them. What parses
// must hold only validated digests; an index then goes through platform
// selection. The input also serves as a media type and a platform string.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "src/image/manifest.h"
#include "src/image/platform.h"
#include "src/image/reference.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  static constexpr std::string_view kContentTypes[] = {
      "", "application/json", "text/plain; charset=utf-8", "application/octet-stream",
      media_type::kOciIndex, media_type::kOciManifest, media_type::kDockerList, media_type::kDockerManifest,
      media_type::kDockerSchema1Signed, "Application/Vnd.Oci.Image.Index.V1+Json ; x=y"};
  Rng rng(std::span<const uint8_t>(data, size));
  std::string_view content_type = kContentTypes[rng.Next() % std::size(kContentTypes)];

  auto kind = ClassifyManifest(content_type, body);
  auto type = ManifestMediaType(content_type, body);
  if (!kind.ok()) CheckError(kind.status());
  if (!type.ok()) CheckError(type.status());
  FUZZ_CHECK(kind.ok() == type.ok());

  auto index = ParseIndex(body);
  if (index.ok()) {
    for (const IndexEntry& e : *index) FUZZ_CHECK(ValidateDigest(e.digest).ok() && e.size >= 0);
    for (std::string_view want : {"linux/amd64", "linux/arm64/v8", "linux/arm/v6"}) {
      auto p = ParsePlatform(want);
      FUZZ_CHECK(p.ok());
      auto pick = SelectPlatform(*index, *p);
      if (pick.ok()) {
        FUZZ_CHECK(*pick < index->size());
      } else {
        CheckError(pick.status());
      }
    }
  } else {
    CheckError(index.status());
  }

  auto manifest = ParseImageManifest(body);
  if (manifest.ok()) {
    FUZZ_CHECK(ValidateDigest(manifest->config.digest).ok());
    for (const Layer& l : manifest->layers) {
      FUZZ_CHECK(ValidateDigest(l.descriptor.digest).ok() && l.descriptor.size >= 0);
    }
  } else {
    CheckError(manifest.status());
  }

  auto config = ParseImageConfig(body);
  if (config.ok()) {
    for (const std::string& d : config->diff_ids) FUZZ_CHECK(ValidateDigest(d).ok());
  } else {
    CheckError(config.status());
  }

  auto compression = LayerCompression(body);
  if (!compression.ok()) CheckError(compression.status());
  auto platform = ParsePlatform(body);
  if (platform.ok()) {
    (void)platform->ToString();
  } else {
    CheckError(platform.status());
  }
  return 0;
}
