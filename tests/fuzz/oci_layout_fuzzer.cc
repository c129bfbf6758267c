// Fuzzes opening a local OCI image layout (`lazyroot pull oci:DIR[:tag]`):
// the input is DIR/index.json and, after "\n==FILE==\n", the manifest blob it
// may name (both hostile: the directory is whatever the user pointed at). The
// files are written to a private directory; DIR/oci-layout is valid. The tag
// asked for comes from the input. A layout that opens is asked for its
// manifest, which must hash to the digest index.json gave.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "index/sha256.h"
#include "src/image/oci_layout.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Layout {
  std::string dir;
  Layout() {
    char tmpl[] = "/tmp/lazyroot-fuzz-oci.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) __builtin_trap();
    dir = d;
    if (mkdir((dir + "/blobs").c_str(), 0700) != 0 || mkdir((dir + "/blobs/sha256").c_str(), 0700) != 0) {
      __builtin_trap();
    }
    Write("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  }
  ~Layout() {
    unlink((dir + "/oci-layout").c_str());
    unlink((dir + "/index.json").c_str());
    if (!blob.empty()) unlink(blob.c_str());
    rmdir((dir + "/blobs/sha256").c_str());
    rmdir((dir + "/blobs").c_str());
    rmdir(dir.c_str());
  }
  void Write(const std::string& name, std::string_view data) const {
    FILE* f = std::fopen((dir + "/" + name).c_str(), "wb");
    FUZZ_CHECK(f != nullptr);
    FUZZ_CHECK(std::fwrite(data.data(), 1, data.size(), f) == data.size());
    FUZZ_CHECK(std::fclose(f) == 0);
  }
  std::string blob;  // the manifest blob written last, removed before the next
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  static Layout layout;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view index = in, manifest;
  if (size_t at = in.find("\n==FILE==\n"); at != std::string_view::npos) {
    index = in.substr(0, at);
    manifest = in.substr(at + 10);
  }
  layout.Write("index.json", index);
  if (!layout.blob.empty()) unlink(layout.blob.c_str());
  Sha256 hash;
  hash.Update(manifest);
  const std::string hex = hash.FinishHex();
  layout.blob = layout.dir + "/blobs/sha256/" + hex;
  layout.Write("blobs/sha256/" + hex, manifest);

  static constexpr const char* kTags[] = {"", "latest", "v1", "(untagged)"};
  Rng rng(std::span<const uint8_t>(data, size));
  auto source = OpenOciLayout(layout.dir, kTags[rng.Next() % 4]);
  if (!source.ok()) {
    CheckError(source.status());
    return 0;
  }
  (void)(*source)->Describe();
  auto fetched = (*source)->GetManifest("");
  if (fetched.ok()) {
    FUZZ_CHECK(fetched->digest == "sha256:" + hex);
  } else {
    CheckError(fetched.status());
  }
  return 0;
}
