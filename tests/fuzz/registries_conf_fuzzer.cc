// Fuzzes registries.conf: ParseRegistriesConf, then the rule each of a few
// references finds (longest prefix) and the endpoints it gives, by tag and
// by digest. Whatever a file says, an endpoint must be an http(s) URL with
// a registry and a repository, a mirror before the registry, and no more
// endpoints than mirrors + 1; a rule must carry the bounds it was parsed
// under.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "src/registry/endpoints.h"
#include "src/registry/registries_conf.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazyroot;
  using namespace lazyroot::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto conf = ParseRegistriesConf(in, "fuzz.conf");
  if (!conf.ok()) {
    CheckError(conf.status());
    return 0;
  }
  FUZZ_CHECK(conf->registries.size() <= RegistriesConfLimits::kMaxRegistries);
  for (const RegistryRule& r : conf->registries) {
    FUZZ_CHECK(!r.prefix.empty());
    FUZZ_CHECK(r.mirrors.size() <= RegistriesConfLimits::kMaxMirrors);
    FUZZ_CHECK(r.prefix.size() <= RegistriesConfLimits::kMaxString &&
               r.location.size() <= RegistriesConfLimits::kMaxString);
  }
  const std::string digest = "@sha256:" + std::string(64, 'a');
  for (const char* text : {"alpine", "example.com/team/app:v1", "127.0.0.1:5000/demo/app:v1", "a.b.example.com/x/y:1",
                           "localhost/x", "quay.io/org/repo"}) {
    for (int by_digest = 0; by_digest < 2; ++by_digest) {
      auto ref = ParseReference(std::string(text) + (by_digest ? digest : ""));
      FUZZ_CHECK(ref.ok());
      const RegistryRule* rule = FindRegistryRule(*conf, ref->registry + "/" + ref->repository);
      if (rule == nullptr) continue;
      auto eps = EndpointsFromRule(*ref, *rule, by_digest == 1);
      if (!eps.ok()) {
        CheckError(eps.status());
        continue;
      }
      FUZZ_CHECK(!eps->empty() && eps->size() <= rule->mirrors.size() + 1);
      for (size_t i = 0; i < eps->size(); ++i) {
        const Endpoint& e = (*eps)[i];
        FUZZ_CHECK(e.api_root.starts_with("https://") || e.api_root.starts_with("http://"));
        FUZZ_CHECK(!e.registry.empty() && !e.repository.empty());
        FUZZ_CHECK(e.mirror == (i + 1 < eps->size()));
        (void)e.DescribeWithOrigin();
      }
    }
  }
  return 0;
}
