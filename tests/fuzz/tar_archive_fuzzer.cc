// Fuzzes opening a tar archive of an image (TarArchive: the member table of
// docker-archive: and oci-archive:) and finding members in it. The input is
// the archive file. Names looked up: the ones image archives use, plus
// some derived from the input. A member found must lie inside the file, and
// what Read returns must be as long as the member.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "src/image/tar_archive.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct TempFile {
  std::string path;
  TempFile() {
    char tmpl[] = "/tmp/lazyroot-fuzz-archive.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) __builtin_trap();
    ::close(fd);
    path = tmpl;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  static TempFile file;
  FILE* f = std::fopen(file.path.c_str(), "wb");
  FUZZ_CHECK(f != nullptr);
  FUZZ_CHECK(std::fwrite(data, 1, size, f) == size);
  FUZZ_CHECK(std::fclose(f) == 0);

  auto archive = TarArchive::Open(file.path, "archive");
  if (!archive.ok()) {
    CheckError(archive.status());
    return 0;
  }
  Rng rng(std::span<const uint8_t>(data, size));
  std::string derived(reinterpret_cast<const char*>(data), std::min<size_t>(size, 1 + rng.Next() % 64));
  for (const std::string& name : {std::string("manifest.json"), std::string("index.json"), std::string("oci-layout"),
                                  std::string("a/layer.tar"), std::string("./b"), derived}) {
    auto m = (*archive)->Find(name);
    if (!m.ok()) {
      CheckError(m.status());
      continue;
    }
    FUZZ_CHECK(m->data_offset + m->size <= size);
    auto bytes = (*archive)->Read(name, 1 << 20);
    if (bytes.ok()) {
      FUZZ_CHECK(bytes->size() == m->size);
    } else {
      CheckError(bytes.status());
    }
  }
  return 0;
}
