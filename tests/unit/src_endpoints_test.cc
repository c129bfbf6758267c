// registries.conf and hosts.toml parsing and the endpoints they give a
// reference. Cases follow containers/image's sysregistriesv2 tests
// (refMatchingPrefix, FindRegistry, PullSourcesFromReference) and
// containerd's core/remotes/docker/config/hosts_test.go.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/registry/endpoints.h"
#include "src/registry/hosts_toml.h"
#include "src/registry/registries_conf.h"

namespace lazyroot {
namespace {

Reference Ref(const std::string& text) {
  auto r = ParseReference(text);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return *r;
}

std::vector<std::string> Describe(const std::vector<Endpoint>& eps) {
  std::vector<std::string> out;
  for (const Endpoint& e : eps) out.push_back(e.api_root + " " + e.repository);
  return out;
}

TEST(RegistriesConfTest, MatchPrefix) {
  EXPECT_EQ(MatchPrefix("example.com/foo", "example.com"), 11);
  EXPECT_EQ(MatchPrefix("example.com", "example.com"), 11);
  EXPECT_EQ(MatchPrefix("example.com/foo/bar", "example.com/foo"), 15);
  EXPECT_EQ(MatchPrefix("example.com/foobar", "example.com/foo"), -1);
  EXPECT_EQ(MatchPrefix("example.com:5000/x", "example.com"), 11);  // as containers/image (documented quirk)
  EXPECT_EQ(MatchPrefix("a.example.com/x", "*.example.com"), 13);
  EXPECT_EQ(MatchPrefix("b.a.example.com/x", "*.example.com"), 15);
  EXPECT_EQ(MatchPrefix("example.com/x", "*.example.com"), -1);
  EXPECT_EQ(MatchPrefix("a.example.com.evil/x", "*.example.com"), -1);
  EXPECT_EQ(MatchPrefix("evil.io/a.example.com", "*.example.com"), -1);
  EXPECT_EQ(MatchPrefix("x", ""), -1);
}

TEST(RegistriesConfTest, LongestPrefixWinsAndRewrites) {
  auto conf = ParseRegistriesConf(R"(
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "example.com"
location = "mirror.local/all"
[[registry]]
prefix = "example.com/team"
location = "internal.local:5000/team-ns"
insecure = true
[[registry.mirror]]
location = "m1.local"
[[registry.mirror]]
location = "m2.local/cache"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m3.local"
pull-from-mirror = "tag-only"
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
)",
                                  "test.conf");
  ASSERT_TRUE(conf.ok()) << conf.status().message();
  ASSERT_EQ(conf->registries.size(), 2u);
  const RegistryRule* rule = FindRegistryRule(*conf, "example.com/team/app");
  ASSERT_NE(rule, nullptr);
  EXPECT_EQ(rule->prefix, "example.com/team");
  EXPECT_EQ(FindRegistryRule(*conf, "example.com/teamx/app")->prefix, "example.com");
  EXPECT_EQ(FindRegistryRule(*conf, "other.com/team/app"), nullptr);

  auto by_tag = EndpointsFromRule(Ref("example.com/team/app:v1"), *rule, false);
  ASSERT_TRUE(by_tag.ok()) << by_tag.status().message();
  // Mirrors stand for the prefix, as the location does: example.com/team/app
  // is m1.local/app there (containers/image rewriteReference).
  EXPECT_EQ(Describe(*by_tag), (std::vector<std::string>{"https://m1.local/v2 app", "https://m3.local/v2 app",
                                                         "https://internal.local:5000/v2 team-ns/app"}));
  EXPECT_TRUE((*by_tag)[0].mirror);
  EXPECT_FALSE(by_tag->back().mirror);
  EXPECT_TRUE(by_tag->back().http_fallback);
  EXPECT_EQ(by_tag->back().tls_verify, std::optional<bool>(false));
  EXPECT_EQ(by_tag->back().Describe(), "internal.local:5000/team-ns/app");

  auto by_digest = EndpointsFromRule(Ref("example.com/team/app@sha256:" + std::string(64, 'a')), *rule, false);
  ASSERT_TRUE(by_digest.ok());
  EXPECT_EQ(Describe(*by_digest), (std::vector<std::string>{"https://m1.local/v2 app", "https://m2.local/v2 cache/app",
                                                            "https://internal.local:5000/v2 team-ns/app"}));
}

TEST(RegistriesConfTest, DockerHubPrefixAndWildcard) {
  auto conf = ParseRegistriesConf(R"(
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.gcr.io"
[[registry]]
prefix = "*.corp.example"
blocked = true
)",
                                  "hub.conf");
  ASSERT_TRUE(conf.ok()) << conf.status().message();
  const Reference alpine = Ref("alpine");
  const RegistryRule* rule = FindRegistryRule(*conf, alpine.registry + "/" + alpine.repository);
  ASSERT_NE(rule, nullptr);
  auto eps = EndpointsFromRule(alpine, *rule, false);
  ASSERT_TRUE(eps.ok());
  EXPECT_EQ(Describe(*eps), (std::vector<std::string>{"https://mirror.gcr.io/v2 library/alpine",
                                                      "https://registry-1.docker.io/v2 library/alpine"}));
  EXPECT_EQ(eps->back().registry, "docker.io");
  EXPECT_TRUE(eps->back().origin.empty());  // the registry itself

  const RegistryRule* blocked = FindRegistryRule(*conf, "git.corp.example/x");
  ASSERT_NE(blocked, nullptr);
  auto st = EndpointsFromRule(Ref("git.corp.example/x:1"), *blocked, false);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("hub.conf"), std::string::npos) << st.status().message();
  EXPECT_NE(st.status().message().find("blocked"), std::string::npos);
}

TEST(RegistriesConfTest, RefusesWhatContainersImageRefuses) {
  for (const char* bad : {
           "[[registry]]\nlocation = \"https://x.io\"\n",
           "[[registry]]\ninsecure = true\n",
           "[[registry]]\nprefix = \"x.io/a\"\n",
           "[[registry]]\nprefix = \"*.x.io/a\"\n",
           "[[registry]]\nprefix = \"a.*.io\"\nlocation = \"b.io\"\n",
           "[[registry]]\nlocation = \"x.io\"\npull-from-mirror = \"all\"\n",
           "[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = "
           "\"sometimes\"\n",
           "[[registry]]\nlocation = \"x.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\n"
           "pull-from-mirror = \"all\"\n",
           "[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\ninsecure = true\n",
           "[[registry]]\nlocation = \"x.io\"\ninsecure = \"yes\"\n",
           "[[registry]]\nlocation = 5\n",
           "registry = 1\n",
           "[[registry]]\nlocation = \"x.io\"\ninsecure = true\n[[registry]]\nprefix = \"x.io/a\"\nlocation = "
           "\"x.io\"\n",
           "[registries.search]\nregistries = [\"a.io\"]\n[[registry]]\nlocation = \"x.io\"\n",
           "[[registry]\nlocation = \"x.io\"\n",
           // Only slashes: no registry (found by the fuzzer; it matched every image).
           "[[registry]]\nprefix = \"/\"\nlocation = \"int\"\n",
       }) {
    auto conf = ParseRegistriesConf(bad, "bad.conf");
    EXPECT_FALSE(conf.ok()) << bad;
    if (!conf.ok()) {
      EXPECT_NE(conf.status().message().find("bad.conf"), std::string::npos) << conf.status().message();
    }
  }
}

TEST(RegistriesConfTest, LocationMustBeARegistryName) {
  // ParseReference also reads transports and tags; a location is neither
  // (fuzz regression location-with-oci-transport-prefix).
  for (const char* location : {"oci:or.local/all", "docker://x.io/a", "x.io/a:tag"}) {
    auto conf = ParseRegistriesConf(
        std::string("[[registry]]\nprefix = \"example.com\"\nlocation = \"") + location + "\"\n", "loc.conf");
    ASSERT_TRUE(conf.ok()) << conf.status().message();
    auto eps = EndpointsFromRule(Ref("example.com/app:1"), conf->registries[0], false);
    EXPECT_FALSE(eps.ok()) << location;
  }
}

TEST(RegistriesConfTest, V1ListsBecomeRules) {
  auto conf = ParseRegistriesConf(
      "[registries.search]\nregistries = [\"docker.io\"]\n"
      "[registries.insecure]\nregistries = [\"old.local:5000\"]\n"
      "[registries.block]\nregistries = [\"bad.io\"]\n",
      "v1.conf");
  ASSERT_TRUE(conf.ok()) << conf.status().message();
  ASSERT_EQ(conf->registries.size(), 2u);
  EXPECT_TRUE(FindRegistryRule(*conf, "bad.io/x")->blocked);
  EXPECT_TRUE(FindRegistryRule(*conf, "old.local:5000/x")->insecure);
}

TEST(RegistriesConfTest, LaterFileReplacesSamePrefix) {
  auto a = ParseRegistriesConf("[[registry]]\nlocation = \"x.io\"\n[[registry]]\nlocation = \"y.io\"\n", "a.conf");
  auto b = ParseRegistriesConf("[[registry]]\nlocation = \"x.io\"\nblocked = true\n", "b.conf");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(MergeRegistriesConf(&*a, std::move(*b)).ok());
  ASSERT_EQ(a->registries.size(), 2u);
  EXPECT_TRUE(FindRegistryRule(*a, "x.io/r")->blocked);
  EXPECT_EQ(FindRegistryRule(*a, "x.io/r")->origin, "b.conf");
  EXPECT_EQ(a->files, (std::vector<std::string>{"a.conf", "b.conf"}));
}

TEST(HostsTomlTest, HostsInFileOrderThenServer) {
  auto h = ParseHostsToml(R"(
server = "https://registry-1.docker.io"
skip_verify = false

[host."https://zz.mirror.local:5000"]
  capabilities = ["pull"]
  ca = "ca.pem"
  client = [["c.pem", "/abs/k.pem"]]
  [host."https://zz.mirror.local:5000".header]
    X-Token = "abc"
    X-List = ["1", "2"]

[host."http://aa.mirror.local/prefix"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  ca = ["/etc/a.crt", "b.crt"]

[host."https://override.local/api/custom"]
  override_path = true
)",
                          "/etc/containerd/certs.d/docker.io", "hosts.toml");
  ASSERT_TRUE(h.ok()) << h.status().message();
  ASSERT_EQ(h->hosts.size(), 4u);
  EXPECT_EQ(h->hosts[0].host, "zz.mirror.local:5000");
  EXPECT_FALSE(h->hosts[0].resolve);
  EXPECT_TRUE(h->hosts[0].pull);
  EXPECT_EQ(h->hosts[0].ca_files, (std::vector<std::string>{"/etc/containerd/certs.d/docker.io/ca.pem"}));
  ASSERT_EQ(h->hosts[0].client_pairs.size(), 1u);
  EXPECT_EQ(h->hosts[0].client_pairs[0].first, "/etc/containerd/certs.d/docker.io/c.pem");
  EXPECT_EQ(h->hosts[0].client_pairs[0].second, "/abs/k.pem");
  EXPECT_EQ(h->hosts[0].headers, (std::vector<std::string>{"X-List: 1", "X-List: 2", "X-Token: abc"}));
  EXPECT_EQ(h->hosts[1].scheme, "http");
  EXPECT_EQ(h->hosts[1].path, "/prefix/v2");
  EXPECT_EQ(h->hosts[1].skip_verify, std::optional<bool>(true));
  EXPECT_EQ(h->hosts[2].path, "/api/custom");
  EXPECT_EQ(h->hosts[3].host, "registry-1.docker.io");

  auto eps = EndpointsFromHosts(Ref("alpine:3"), *h, false);
  ASSERT_TRUE(eps.ok()) << eps.status().message();
  ASSERT_EQ(eps->size(), 4u);
  EXPECT_EQ((*eps)[0].api_root, "https://zz.mirror.local:5000/v2");
  EXPECT_EQ((*eps)[0].query, "ns=docker.io");
  EXPECT_TRUE((*eps)[0].mirror);
  EXPECT_EQ((*eps)[1].api_root, "http://aa.mirror.local/prefix/v2");
  EXPECT_EQ((*eps)[1].tls_verify, std::optional<bool>(false));
  EXPECT_TRUE((*eps)[2].lenient_ping);
  EXPECT_EQ((*eps)[2].Describe(), "override.local/api/custom/library/alpine");
  EXPECT_FALSE(eps->back().mirror);  // registry-1.docker.io is docker.io itself
  EXPECT_EQ(eps->back().query, "");
}

TEST(HostsTomlTest, NoServerMeansTheRegistryAndTagsNeedResolve) {
  auto h = ParseHostsToml("[host.\"http://127.0.0.1:5001\"]\ncapabilities = [\"pull\"]\n", "/d", "hosts.toml");
  ASSERT_TRUE(h.ok()) << h.status().message();
  auto eps = EndpointsFromHosts(Ref("127.0.0.1:5000/a/b:1"), *h, true);
  ASSERT_TRUE(eps.ok());
  ASSERT_EQ(eps->size(), 2u);
  EXPECT_EQ(eps->back().api_root, "http://127.0.0.1:5000/v2");
  EXPECT_TRUE(eps->back().resolve);

  auto pull_only = ParseHostsToml("server = \"https://r.io\"\ncapabilities = [\"pull\"]\n", "/d", "hosts.toml");
  ASSERT_TRUE(pull_only.ok());
  EXPECT_FALSE(EndpointsFromHosts(Ref("r.io/a:1"), *pull_only, false).ok());
  EXPECT_TRUE(EndpointsFromHosts(Ref("r.io/a@sha256:" + std::string(64, 'b')), *pull_only, false).ok());
}

TEST(HostsTomlTest, RefusesBadValues) {
  for (const char* bad : {
           "server = 5\n",
           "server = \"ftp://x\"\n",
           "[host.\"https://m\"]\ncapabilities = [\"fly\"]\n",
           "[host.\"https://m\"]\nca = 3\n",
           "[host.\"https://m\"]\nclient = [[\"only-one\"]]\n",
           "[host.\"https://m\"]\n[host.\"https://m\".header]\n\"Bad Name\" = \"v\"\n",
           "[host.\"https://m\"]\n[host.\"https://m\".header]\nX = \"a\\r\\nInjected: 1\"\n",
           "[host.\"https://m\"]\n[host.\"https://m\".header]\nX = 1\n",
           "host = 1\n",
           "[host.\"https://m?x=1\"]\n",
           "[host.\"https://\"]\n",
           "server = \"https://a\"\nskip_verify = \"no\"\n",
           "server = \"https://a\n",
       }) {
    auto h = ParseHostsToml(bad, "/d", "bad-hosts.toml");
    EXPECT_FALSE(h.ok()) << bad;
    if (!h.ok()) {
      EXPECT_NE(h.status().message().find("bad-hosts.toml"), std::string::npos) << h.status().message();
    }
  }
}

TEST(HostsTomlTest, Bounds) {
  std::string many;
  for (size_t i = 0; i <= HostsTomlLimits::kMaxHosts; ++i) many += "[host.\"https://m" + std::to_string(i) + "\"]\n";
  auto h = ParseHostsToml(many, "/d", "many.toml");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), ErrorCode::kLimitExceeded);
  std::string big(HostsTomlLimits::kMaxFileBytes + 1, '#');
  EXPECT_EQ(ParseHostsToml(big, "/d", "big.toml").status().code(), ErrorCode::kLimitExceeded);
  std::string long_loc =
      "[[registry]]\nlocation = \"" + std::string(RegistriesConfLimits::kMaxString + 1, 'a') + "\"\n";
  EXPECT_EQ(ParseRegistriesConf(long_loc, "long.conf").status().code(), ErrorCode::kLimitExceeded);
}

TEST(HostsTomlTest, DirectoryName) {
  EXPECT_EQ(HostDirectoryName("127.0.0.1:5000"), "127.0.0.1_5000_");
  EXPECT_EQ(HostDirectoryName("docker.io"), "docker.io");
  EXPECT_EQ(HostsDirFor("/nonexistent-root", "../x"), "");
}

}  // namespace
}  // namespace lazyroot
