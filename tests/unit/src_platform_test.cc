#include "src/image/platform.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lazyroot {
namespace {

Platform P(const std::string& text) {
  Result<Platform> p = ParsePlatform(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status().ToString();
  return p.ok() ? *p : Platform{};
}

IndexEntry Entry(const std::string& platform, const std::string& digest = "") {
  IndexEntry e;
  e.digest = digest.empty() ? platform : digest;
  e.has_platform = true;
  e.platform = P(platform);
  return e;
}

// containerd/platforms database.go normalizeArch / normalizeOS, and the
// expectations of platforms_test.go TestParseSelector.
TEST(Platform, Normalize) {
  struct Case {
    Platform in, out;
  };
  const std::vector<Case> cases = {
      {{"linux", "x86_64", ""}, {"linux", "amd64", ""}},
      {{"linux", "x86-64", ""}, {"linux", "amd64", ""}},
      {{"linux", "amd64", "v1"}, {"linux", "amd64", ""}},
      {{"linux", "amd64", "v3"}, {"linux", "amd64", "v3"}},
      {{"linux", "aarch64", ""}, {"linux", "arm64", ""}},
      {{"linux", "aarch64", "v8"}, {"linux", "arm64", ""}},
      {{"linux", "arm64", "8"}, {"linux", "arm64", ""}},
      {{"linux", "arm64", "v8"}, {"linux", "arm64", ""}},
      {{"linux", "arm64", "v8.0"}, {"linux", "arm64", ""}},
      {{"linux", "arm64", "v8.2"}, {"linux", "arm64", "v8.2"}},
      {{"linux", "arm64", "9"}, {"linux", "arm64", "v9"}},
      {{"linux", "arm64", "9.0"}, {"linux", "arm64", "v9"}},
      {{"linux", "arm64", "v9.0"}, {"linux", "arm64", "v9"}},
      {{"linux", "armhf", ""}, {"linux", "arm", "v7"}},
      {{"linux", "armel", ""}, {"linux", "arm", "v6"}},
      {{"linux", "arm", ""}, {"linux", "arm", "v7"}},
      {{"linux", "arm", "7"}, {"linux", "arm", "v7"}},
      {{"linux", "arm", "5"}, {"linux", "arm", "v5"}},
      {{"linux", "arm", "6"}, {"linux", "arm", "v6"}},
      {{"linux", "arm", "8"}, {"linux", "arm", "v8"}},
      {{"linux", "i386", "whatever"}, {"linux", "386", ""}},
      {{"Linux", "X86_64", ""}, {"linux", "amd64", ""}},
      {{"macOS", "arm64", ""}, {"darwin", "arm64", ""}},
      {{"linux", "s390x", ""}, {"linux", "s390x", ""}},
      {{"linux", "Aarch64", "V8"}, {"linux", "arm64", ""}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NormalizePlatform(c.in), c.out) << c.in.ToString() << " -> " << NormalizePlatform(c.in).ToString();
  }
}

TEST(Platform, Parse) {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"linux/arm64", "linux/arm64"},    {"linux/arm64/v8", "linux/arm64"}, {"linux/arm", "linux/arm/v7"},
      {"linux/arm/v6", "linux/arm/v6"},  {"linux/arm/v7", "linux/arm/v7"},  {"arm", "linux/arm/v7"},
      {"armel", "linux/arm/v6"},         {"armhf", "linux/arm/v7"},         {"Aarch64", "linux/arm64"},
      {"x86_64", "linux/amd64"},         {"Linux/x86_64", "linux/amd64"},   {"i386", "linux/386"},
      {"s390x", "linux/s390x"},          {"linux/s390x", "linux/s390x"},    {"linux/amd64/v3", "linux/amd64/v3"},
      {"windows/amd64", "windows/amd64"},
  };
  for (const Case& c : cases) EXPECT_EQ(P(c.in).ToString(), c.out) << c.in;

  // A lone OS takes this machine's architecture.
  Platform host = HostPlatform();
  Platform linux_only = P("linux");
  EXPECT_EQ(linux_only.arch, host.arch);
  EXPECT_EQ(P("macOS").os, "darwin");

  for (const std::string bad : {"", "/", "linux/", "/amd64", "linux//amd64", "a/b/c/d", "linux/amd 64",
                                 "windows(10.0.17763)/amd64", "nonsense"}) {
    Result<Platform> p = ParsePlatform(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(p.status().message().find("\"" + bad + "\""), std::string::npos) << p.status().message();
    }
  }
}

TEST(Platform, HostIsLinuxAndNormalised) {
  Platform host = HostPlatform();
  EXPECT_EQ(host.os, "linux");
  EXPECT_FALSE(host.arch.empty());
  EXPECT_EQ(NormalizePlatform(host), host);
  EXPECT_NE(host.arch, "x86_64");
  EXPECT_NE(host.arch, "aarch64");
}

// containerd/platforms compare_test.go TestOnly, minus the Windows OS-version
// spellings, and with one deliberate difference: amd64 does not fall back to
// 386 (linux/386 moves from the "true" to the "false" lists).
TEST(SelectPlatform, ContainerdOnlyTable) {
  struct Case {
    std::string want;
    std::vector<std::string> match, no_match;
  };
  const std::vector<Case> cases = {
      {"linux/amd64",
       {"linux/amd64"},
       {"linux/386", "linux/amd64/v2", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"}},
      {"linux/amd64/v2",
       {"linux/amd64", "linux/amd64/v1", "linux/amd64/v2"},
       {"linux/386", "linux/amd64/v3", "linux/amd64/v4", "linux/arm/v7", "linux/arm64", "windows/amd64",
        "windows/arm"}},
      {"linux/386", {"linux/386"}, {"linux/amd64", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"}},
      {"windows/amd64", {"windows/amd64"}, {"linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"}},
      {"linux/arm/v8",
       {"linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8"},
       {"linux/amd64", "linux/arm/v4", "linux/arm64", "windows/amd64", "windows/arm"}},
      {"linux/arm/v7",
       {"linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7"},
       {"linux/amd64", "linux/arm/v4", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"}},
      {"linux/arm/v6",
       {"linux/arm/v5", "linux/arm/v6"},
       {"linux/amd64", "linux/arm", "linux/arm/v4", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64",
        "windows/arm"}},
      {"linux/arm/v5",
       {"linux/arm/v5"},
       {"linux/amd64", "linux/arm", "linux/arm/v4", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64",
        "windows/amd64", "windows/arm"}},
      {"linux/arm/v4",
       {"linux/arm/v4"},
       {"linux/amd64", "linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64",
        "windows/amd64", "windows/arm"}},
      {"linux/arm64/v9.6",
       {"linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64",
        "linux/arm64/v8", "linux/arm64/v8.1", "linux/arm64/v8.2", "linux/arm64/v8.3", "linux/arm64/v8.4",
        "linux/arm64/v8.5", "linux/arm64/v8.6", "linux/arm64/v8.7", "linux/arm64/v8.8", "linux/arm64/v8.9",
        "linux/arm64/v9", "linux/arm64/v9.0", "linux/arm64/v9.1", "linux/arm64/v9.2", "linux/arm64/v9.3",
        "linux/arm64/v9.4", "linux/arm64/v9.5", "linux/arm64/v9.6"},
       {"linux/amd64", "linux/arm/v4", "windows/amd64", "windows/arm", "linux/arm64/v8.10"}},
      {"linux/arm64/v9",
       {"linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64",
        "linux/arm64/v8", "linux/arm64/v8.1", "linux/arm64/v8.2", "linux/arm64/v8.3", "linux/arm64/v8.4",
        "linux/arm64/v8.5", "linux/arm64/v9", "linux/arm64/v9.0"},
       {"linux/amd64", "linux/arm/v4", "windows/amd64", "windows/arm", "linux/arm64/v8.6"}},
      {"linux/arm64/v8.1",
       {"linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64",
        "linux/arm64/v8", "linux/arm64/v8.1"},
       {"linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "windows/amd64", "windows/arm"}},
      {"linux/arm64",
       {"linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64",
        "linux/arm64/v8"},
       {"linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "windows/amd64", "windows/arm"}},
  };
  for (const Case& c : cases) {
    Platform want = P(c.want);
    for (const std::string& m : c.match) {
      EXPECT_TRUE(SelectPlatform({Entry(m)}, want).ok()) << c.want << " should match " << m;
    }
    for (const std::string& m : c.no_match) {
      Result<size_t> r = SelectPlatform({Entry(m)}, want);
      EXPECT_FALSE(r.ok()) << c.want << " should not match " << m;
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
      }
    }
  }
}

// Preference: the best entry wins whatever its position; among equals, the
// first one ("the first matching entry SHOULD be used").
TEST(SelectPlatform, Preference) {
  struct Case {
    std::string want;
    std::vector<std::string> entries;
    size_t expected;
  };
  const std::vector<Case> cases = {
      {"linux/arm64", {"linux/arm/v7", "linux/arm64/v8", "linux/arm64"}, 1},
      {"linux/arm64", {"linux/arm/v5", "linux/arm/v7", "linux/arm/v6"}, 1},
      {"linux/arm64", {"linux/arm/v7", "linux/arm/v8"}, 1},
      {"linux/arm64/v9", {"linux/arm64", "linux/arm64/v8.5", "linux/arm64/v9.0"}, 2},
      {"linux/arm64/v9", {"linux/arm64", "linux/arm64/v8.5"}, 1},
      {"linux/arm64/v8.2", {"linux/arm64/v8.1", "linux/arm64/v8.2", "linux/arm64/v8.3"}, 1},
      {"linux/amd64/v3", {"linux/amd64", "linux/amd64/v2", "linux/amd64/v4"}, 1},
      {"linux/amd64", {"linux/386", "linux/amd64/v2", "linux/amd64"}, 2},
      {"linux/arm/v7", {"linux/arm/v5", "linux/arm/v6", "linux/arm"}, 2},
      {"linux/arm/v7", {"linux/arm/v5", "linux/arm/v6"}, 1},
      {"linux/amd64", {"linux/amd64", "linux/amd64"}, 0},
      {"linux/arm64", {"linux/arm64/v8", "linux/arm64"}, 0},
      {"linux/amd64", {"windows/amd64", "linux/amd64"}, 1},
      {"linux/arm64", {"linux/aarch64", "linux/arm64"}, 0},
  };
  for (const Case& c : cases) {
    std::vector<IndexEntry> entries;
    for (const std::string& e : c.entries) entries.push_back(Entry(e));
    Result<size_t> r = SelectPlatform(entries, P(c.want));
    ASSERT_TRUE(r.ok()) << c.want << ": " << r.status().ToString();
    EXPECT_EQ(*r, c.expected) << c.want;
  }
}

TEST(SelectPlatform, WantIsNormalisedToo) {
  std::vector<IndexEntry> entries = {Entry("linux/amd64"), Entry("linux/arm64")};
  EXPECT_EQ(*SelectPlatform(entries, Platform{"Linux", "aarch64", "v8"}), 1u);
  EXPECT_EQ(*SelectPlatform(entries, Platform{"linux", "x86_64", ""}), 0u);
}

TEST(SelectPlatform, AttestationsAndPlatformlessEntriesNeverMatch) {
  IndexEntry attestation_by_annotation = Entry("linux/amd64", "att");
  attestation_by_annotation.is_attestation = true;
  IndexEntry unknown;
  unknown.digest = "unknown";
  unknown.has_platform = true;
  unknown.platform = {"unknown", "unknown", ""};
  IndexEntry no_platform;
  no_platform.digest = "none";

  std::vector<IndexEntry> entries = {attestation_by_annotation, unknown, no_platform, Entry("linux/amd64", "img")};
  Result<size_t> r = SelectPlatform(entries, P("linux/amd64"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3u);

  // unknown/unknown is not "wanted" even when asked for.
  EXPECT_FALSE(SelectPlatform({unknown}, Platform{"unknown", "unknown", ""}).ok());

  r = SelectPlatform({attestation_by_annotation, unknown, no_platform}, P("linux/amd64"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "no manifest for platform linux/amd64; available: none");
}

TEST(SelectPlatform, NotFoundListsAvailablePlatformsWithoutAttestations) {
  IndexEntry att;
  att.has_platform = true;
  att.platform = {"unknown", "unknown", ""};
  std::vector<IndexEntry> entries = {Entry("linux/amd64"), att, Entry("linux/arm64"), Entry("linux/arm/v7"),
                                     Entry("linux/amd64")};
  Result<size_t> r = SelectPlatform(entries, P("linux/s390x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "no manifest for platform linux/s390x; available: linux/amd64, linux/arm64, linux/arm/v7");
  EXPECT_FALSE(SelectPlatform({}, P("linux/amd64")).ok());
}

}  // namespace
}  // namespace lazyroot
