// Fuzzes docker config.json handling: the input is written as config.json in
// a private directory and LookupCredential reads it for a few registries
// (Docker Hub with its many key spellings, a host:port, another host).
// PATH points at an empty directory, so a credsStore / credHelpers entry
// ends in "not found on PATH" instead of running a program named by the
// input. The input is also an auths key for NormalizeAuthKey.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "src/registry/credentials.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Sandbox {
  std::string dir, config;
  Sandbox() {
    char tmpl[] = "/tmp/lazyroot-fuzz-credentials.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) __builtin_trap();
    dir = d;
    config = dir + "/config.json";
    std::string empty_path = dir + "/bin";
    if (mkdir(empty_path.c_str(), 0700) != 0) __builtin_trap();
    setenv("PATH", empty_path.c_str(), 1);
    unsetenv("DOCKER_CONFIG");
  }
  ~Sandbox() {
    unlink(config.c_str());
    rmdir((dir + "/bin").c_str());
    rmdir(dir.c_str());
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  static Sandbox sandbox;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)NormalizeAuthKey(in);

  FILE* f = std::fopen(sandbox.config.c_str(), "wb");
  FUZZ_CHECK(f != nullptr);
  FUZZ_CHECK(std::fwrite(data, 1, size, f) == size);
  FUZZ_CHECK(std::fclose(f) == 0);
  CredentialOptions options;
  options.docker_config_dir = sandbox.dir;
  for (const char* registry : {"docker.io", "127.0.0.1:5000", "ghcr.io"}) {
    auto cred = LookupCredential(registry, options);
    if (!cred.ok()) CheckError(cred.status());
  }
  return 0;
}
