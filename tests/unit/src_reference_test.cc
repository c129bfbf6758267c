#include "src/image/reference.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "src/store/store.h"

namespace lazyroot {
namespace {

const std::string kHex64(64, 'f');
const std::string kDigest = "sha256:" + kHex64;

struct Case {
  std::string input;
  std::string registry;  // empty: expect an error
  std::string repository;
  std::string tag;
  std::string digest;
};

void ExpectParses(const Case& c) {
  SCOPED_TRACE(c.input);
  Result<Reference> r = ParseReference(c.input);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->transport, Reference::Transport::kRegistry);
  EXPECT_EQ(r->registry, c.registry);
  EXPECT_EQ(r->repository, c.repository);
  EXPECT_EQ(r->tag, c.tag);
  EXPECT_EQ(r->digest, c.digest);
}

void ExpectInvalid(const std::string& input) {
  SCOPED_TRACE(input);
  Result<Reference> r = ParseReference(input);
  ASSERT_FALSE(r.ok()) << r->ToString();
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("invalid reference \""), std::string::npos) << r.status().message();
}

// distribution/reference reference_test.go TestReferenceParse, read through
// ParseNormalizedNamed semantics (what docker pull does): names without a
// domain land on docker.io/library, hosts are lower-cased, a missing tag is
// "latest" unless a digest is given.
TEST(ParseReference, DistributionReferenceParseVectors) {
  const std::vector<Case> ok = {
      {"test_com", "docker.io", "library/test_com", "latest", ""},
      {"test.com:tag", "docker.io", "library/test.com", "tag", ""},
      {"test.com:5000", "docker.io", "library/test.com", "5000", ""},
      {"test.com/repo:tag", "test.com", "repo", "tag", ""},
      {"test:5000/repo", "test:5000", "repo", "latest", ""},
      {"test:5000/repo:tag", "test:5000", "repo", "tag", ""},
      {"test:5000/repo@" + kDigest, "test:5000", "repo", "", kDigest},
      {"test:5000/repo:tag@" + kDigest, "test:5000", "repo", "tag", kDigest},
      {"lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", ""},
      {"a/b", "docker.io", "a/b", "latest", ""},
      {"sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "latest", ""},
      {"sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", ""},
      {"b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
       "test.example.com", ""},
      {"xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", ""},
      {"xn--7o8h.com/myimage:xn--7o8h.com@" + kDigest, "xn--7o8h.com", "myimage", "xn--7o8h.com", kDigest},
      {"foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", ""},
      {"foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", ""},
      {"192.168.1.1", "docker.io", "library/192.168.1.1", "latest", ""},
      {"192.168.1.1:tag", "docker.io", "library/192.168.1.1", "tag", ""},
      {"192.168.1.1:5000", "docker.io", "library/192.168.1.1", "5000", ""},
      {"192.168.1.1/repo", "192.168.1.1", "repo", "latest", ""},
      {"192.168.1.1:5000/repo", "192.168.1.1:5000", "repo", "latest", ""},
      {"192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", ""},
      {"[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", ""},
      {"[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", ""},
      {"[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", "latest", ""},
      {"[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000", "repo", "tag", ""},
      {"[2001:db8::1]:5000/repo@" + kDigest, "[2001:db8::1]:5000", "repo", "", kDigest},
      {"[2001:db8::1]:5000/repo:tag@" + kDigest, "[2001:db8::1]:5000", "repo", "tag", kDigest},
      {"[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", "latest", ""},
      {"[::1]:5000/repo", "[::1]:5000", "repo", "latest", ""},
      {"example.com/" + std::string(255, 'a') + ":tag", "example.com", std::string(255, 'a'), "tag", ""},
  };
  for (const Case& c : ok) ExpectParses(c);

  // 127 "a/" components plus "a": the path is exactly 255 characters, with
  // "a" as the (dot-less) first component, so it stays on docker.io.
  std::string long_path;
  for (int i = 0; i < 127; ++i) long_path += "a/";
  long_path += "a";
  ExpectParses({long_path + ":tag-puts-this-over-max", "docker.io", long_path, "tag-puts-this-over-max", ""});

  const std::vector<std::string> bad = {
      "",
      ":justtag",
      "@" + kDigest,
      "repo@sha256:ffffffffffffffffffffffffffffffffff",
      "validname@invaliddigest:" + kHex64,
      "validname@sha512:" + std::string(128, 'f'),
      "Uppercase:tag",
      "test:5000/Uppercase/lowercase:tag",
      "domain/" + std::string(256, 'a') + ":tag",
      "aa/asdf$$^/aa",
      "[2001:db8::1]",
      "[2001:db8::1]:5000",
      "[2001:db8::1]:tag",
      "[fe80::1%eth0]:5000/repo",
      "[fe80::1%@invalidzone]:5000/repo",
  };
  for (const std::string& b : bad) ExpectInvalid(b);
}

// distribution/reference normalize_test.go TestValidateReferenceName and
// TestValidateRemoteName.
TEST(ParseReference, DistributionNormalizeValidity) {
  const std::vector<std::string> valid = {
      "docker/docker",
      "library/debian",
      "debian",
      "localhost/library/debian",
      "localhost/debian",
      "LOCALDOMAIN/library/debian",
      "LOCALDOMAIN/debian",
      "docker.io/docker/docker",
      "docker.io/library/debian",
      "docker.io/debian",
      "index.docker.io/docker/docker",
      "index.docker.io/library/debian",
      "index.docker.io/debian",
      "127.0.0.1:5000/docker/docker",
      "127.0.0.1:5000/library/debian",
      "127.0.0.1:5000/debian",
      "192.168.0.1",
      "192.168.0.1:80",
      "192.168.0.1:8/debian",
      "192.168.0.2:25000/debian",
      "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
      "[fc00::1]:5000/docker",
      "[fc00::1]:5000/docker/docker",
      "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
      "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
      "Docker/docker",
      "DOCKER/docker",
      "docker-rules/docker",
      "docker---rules/docker",
      "doc/docker",
      "d/docker",
      "jess/t",
      "dock__er/docker",
  };
  for (const std::string& v : valid) {
    Result<Reference> r = ParseReference(v);
    EXPECT_TRUE(r.ok()) << v << ": " << r.status().ToString();
  }
  const std::vector<std::string> invalid = {
      "docker/Docker",
      "-docker",
      "-docker/docker",
      "-docker.io/docker/docker",
      "docker///docker",
      "docker.io/docker/Docker",
      "docker.io/docker///docker",
      "[fc00::1]",
      "[fc00::1]:5000",
      "fc00::1:5000/debian",
      "[fe80::1%eth0]:5000/debian",
      "[2001:db8:3:4::192.0.2.33]:5000/debian",
      "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
      "docker-/docker",
      "-docker-/docker",
      "____/____",
      "_docker/_docker",
      "dock..er/docker",
      "dock_.er/docker",
      "dock-.er/docker",
      "docker/",
      "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_"
      "its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_"
      "not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
  };
  for (const std::string& v : invalid) ExpectInvalid(v);
}

// normalize_test.go TestParseRepositoryInfo: familiar, full and ambiguous
// spellings all resolve to one (registry, repository).
TEST(ParseReference, DistributionRepositoryInfo) {
  struct Info {
    std::vector<std::string> spellings;
    std::string registry, repository;
  };
  const std::vector<Info> infos = {
      {{"localhost/fooo"}, "localhost", "fooo"},
      {{"localhost/fooo/bar"}, "localhost", "fooo/bar"},
      // A host only by its upper case keeps it: "localdomain/fooo" is docker.io's.
      {{"LOCALDOMAIN/fooo"}, "LOCALDOMAIN", "fooo"},
      {{"LOCALDOMAIN/fooo/bar"}, "LOCALDOMAIN", "fooo/bar"},
      {{"fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"}, "docker.io", "fooo/bar"},
      {{"ubuntu", "docker.io/library/ubuntu", "library/ubuntu"}, "docker.io", "library/ubuntu"},
      {{"nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"}, "docker.io", "nonlibrary/ubuntu"},
      {{"other/library", "docker.io/other/library"}, "docker.io", "other/library"},
      {{"127.0.0.1:8000/private/moonbase"}, "127.0.0.1:8000", "private/moonbase"},
      {{"127.0.0.1:8000/privatebase"}, "127.0.0.1:8000", "privatebase"},
      {{"example.com/private/moonbase"}, "example.com", "private/moonbase"},
      {{"example.com/privatebase"}, "example.com", "privatebase"},
      {{"example.com:8000/private/moonbase"}, "example.com:8000", "private/moonbase"},
      {{"example.com:8000/privatebasee"}, "example.com:8000", "privatebasee"},
      {{"ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base", "index.docker.io/library/ubuntu-12.04-base"},
       "docker.io",
       "library/ubuntu-12.04-base"},
      {{"foo", "docker.io/library/foo", "docker.io/foo"}, "docker.io", "library/foo"},
      {{"library/foo/bar", "docker.io/library/foo/bar"}, "docker.io", "library/foo/bar"},
      {{"store/foo/bar", "docker.io/store/foo/bar"}, "docker.io", "store/foo/bar"},
      {{"Foo/bar"}, "Foo", "bar"},
      {{"FOO/bar"}, "FOO", "bar"},
      {{"LocalHost/bar", "localhost/bar"}, "localhost", "bar"},
      {{"Example.COM/bar", "example.com/bar"}, "example.com", "bar"},
  };
  for (const Info& info : infos) {
    for (const std::string& s : info.spellings) ExpectParses({s, info.registry, info.repository, "latest", ""});
  }
}

TEST(ParseReference, TagAndDigestKeepsTagButFetchesByDigest) {
  const std::string digest = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
  Result<Reference> r = ParseReference("busybox:latest@" + digest);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->digest, digest);
  EXPECT_EQ(r->ManifestSelector(), digest);
  EXPECT_EQ(r->ToString(), "docker.io/library/busybox:latest@" + digest);

  r = ParseReference("ghcr.io/o/app@" + digest);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->ManifestSelector(), digest);
  EXPECT_EQ(r->ToString(), "ghcr.io/o/app@" + digest);

  r = ParseReference("alpine");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ManifestSelector(), "latest");
  EXPECT_EQ(r->ToString(), "docker.io/library/alpine:latest");
}

TEST(ParseReference, ApiHost) {
  EXPECT_EQ(ParseReference("alpine")->ApiHost(), "registry-1.docker.io");
  EXPECT_EQ(ParseReference("index.docker.io/library/alpine")->ApiHost(), "registry-1.docker.io");
  EXPECT_EQ(ParseReference("ghcr.io/o/app")->ApiHost(), "ghcr.io");
  EXPECT_EQ(ParseReference("localhost:5000/a/b/c:tag")->ApiHost(), "localhost:5000");
  EXPECT_EQ(ParseReference("GHCR.IO/o/app")->registry, "ghcr.io");
}

TEST(ParseReference, TransportPrefixes) {
  Result<Reference> r = ParseReference("docker://alpine:3.19");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ToString(), "docker.io/library/alpine:3.19");
  EXPECT_FALSE(r->plain_http);

  r = ParseReference("https://ghcr.io/o/app:1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->registry, "ghcr.io");
  EXPECT_FALSE(r->plain_http);

  r = ParseReference("http://127.0.0.1:5000/x/y:t");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "x/y");
  EXPECT_TRUE(r->plain_http);

  r = ParseReference("http://[::1]:5000/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->registry, "[::1]:5000");
  EXPECT_TRUE(r->plain_http);

  ExpectInvalid("docker://");
  ExpectInvalid("http://");
}

TEST(ParseReference, OciLayout) {
  struct Layout {
    std::string input, dir, tag, str;
  };
  const std::vector<Layout> cases = {
      {"oci:/tmp/img", "/tmp/img", "", "oci:/tmp/img"},
      {"oci:/tmp/img:v1", "/tmp/img", "v1", "oci:/tmp/img:v1"},
      {"oci:img:latest", "img", "latest", "oci:img:latest"},
      {"oci:./a:b/c", "./a:b/c", "", "oci:./a:b/c"},
      {"oci:./a:b/c:1.0", "./a:b/c", "1.0", "oci:./a:b/c:1.0"},
  };
  for (const Layout& c : cases) {
    SCOPED_TRACE(c.input);
    Result<Reference> r = ParseReference(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->transport, Reference::Transport::kOciLayout);
    EXPECT_EQ(r->layout_dir, c.dir);
    EXPECT_EQ(r->tag, c.tag);
    EXPECT_EQ(r->ToString(), c.str);
  }
  ExpectInvalid("oci:");
  ExpectInvalid("oci::tag");
  ExpectInvalid("oci:dir:");  // "oci:a:b:" would print as "oci:a:b", tag b
}

TEST(ParseReference, Archives) {
  Result<Reference> r = ParseReference("oci-archive:/tmp/a:b/img.tar:v1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->transport, Reference::Transport::kOciArchive);
  EXPECT_EQ(r->layout_dir, "/tmp/a:b/img.tar");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_EQ(r->ToString(), "oci-archive:/tmp/a:b/img.tar:v1");
  ExpectInvalid("oci-archive:");
  ExpectInvalid("oci-archive:x.tar:");

  struct Docker {
    std::string input, file, ref, str;
  };
  const std::vector<Docker> cases = {
      {"docker-archive:/tmp/x.tar", "/tmp/x.tar", "", "docker-archive:/tmp/x.tar"},
      // As skopeo: FILE ends at the first ':'; the ref is normalised.
      {"docker-archive:x.tar:busybox", "x.tar", "docker.io/library/busybox:latest",
       "docker-archive:x.tar:docker.io/library/busybox:latest"},
      {"docker-archive:x.tar:localhost:5000/a/b:v2", "x.tar", "localhost:5000/a/b:v2",
       "docker-archive:x.tar:localhost:5000/a/b:v2"},
      {"docker-archive:x.tar:@3", "x.tar", "@3", "docker-archive:x.tar:@3"},
      // A registry named "oci" with a port prints with "docker://" (it would
      // read as an OCI layout), and reads back (found by the fuzzer).
      {"docker-archive:x.tar:OCI:7/debian", "x.tar", "docker://oci:7/debian:latest",
       "docker-archive:x.tar:docker://oci:7/debian:latest"},
  };
  for (const Docker& c : cases) {
    SCOPED_TRACE(c.input);
    Result<Reference> d = ParseReference(c.input);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->transport, Reference::Transport::kDockerArchive);
    EXPECT_EQ(d->layout_dir, c.file);
    EXPECT_EQ(d->archive_ref, c.ref);
    EXPECT_EQ(d->ToString(), c.str);
    Result<Reference> again = ParseReference(d->ToString());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->ToString(), c.str);
  }
  ExpectInvalid("docker-archive:");
  ExpectInvalid("docker-archive::x");
  ExpectInvalid("docker-archive:x.tar:");
  ExpectInvalid("docker-archive:x.tar:@");
  ExpectInvalid("docker-archive:x.tar:@01");
  ExpectInvalid("docker-archive:x.tar:@-1");
  ExpectInvalid("docker-archive:x.tar:Busybox");
  ExpectInvalid("docker-archive:x.tar:busybox@sha256:" + std::string(64, 'a'));
  // A registry whose name reads as a transport prints with docker://.
  Result<Reference> reg = ParseReference("docker://docker-archive:5000/x:1");
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(reg->ToString(), "docker://docker-archive:5000/x:1");
}

TEST(ParseReference, ErrorMessagesNameTheProblem) {
  auto message = [](const std::string& s) { return ParseReference(s).status().message(); };
  EXPECT_EQ(message("Alpine"), "invalid reference \"Alpine\": repository name must be lowercase");
  EXPECT_NE(message("alpine:-x").find("invalid tag \"-x\""), std::string::npos);
  EXPECT_NE(message("alpine:" + std::string(129, 'a')).find("invalid tag"), std::string::npos);
  EXPECT_NE(message("alpine@sha256:abc").find("want 64 hex digits"), std::string::npos);
  EXPECT_NE(message("alpine@sha512:" + std::string(128, 'a')).find("unsupported algorithm \"sha512\""),
            std::string::npos);
  EXPECT_NE(message("alpine@sha256:" + std::string(64, 'A')).find("lower-case"), std::string::npos);
  EXPECT_NE(message("a/" + std::string(254, 'b')).find("longer than 255"), std::string::npos);
  EXPECT_NE(message("-bad.io/x").find("invalid registry host \"-bad.io\""), std::string::npos);
}

TEST(ParseReference, TagGrammarEdges) {
  EXPECT_TRUE(ParseReference("a:" + std::string(128, 'b')).ok());
  EXPECT_TRUE(ParseReference("a:_x").ok());
  EXPECT_TRUE(ParseReference("a:X.y-Z_9").ok());
  EXPECT_FALSE(ParseReference("a:.x").ok());
  EXPECT_FALSE(ParseReference("a:").ok());
  EXPECT_FALSE(ParseReference("a:b:c").ok());
  EXPECT_FALSE(ParseReference("a b").ok());
}

// The fields that make up a reference's identity (plain_http is how to
// connect, not which image).
auto Fields(const Reference& r) {
  return std::make_tuple(r.transport, r.registry, r.repository, r.tag, r.digest, r.layout_dir, r.archive_ref);
}

// parse -> print -> parse gives the same reference and the same text.
// Returns whether text was accepted.
bool ExpectRoundTrip(const std::string& text) {
  Result<Reference> r1 = ParseReference(text);
  if (!r1.ok()) {
    EXPECT_EQ(r1.status().code(), ErrorCode::kInvalidArgument) << text;
    return false;
  }
  const std::string printed = r1->ToString();
  Result<Reference> r2 = ParseReference(printed);
  EXPECT_TRUE(r2.ok()) << "\"" << text << "\" prints as \"" << printed << "\", which does not parse: "
                       << r2.status().ToString();
  if (!r2.ok()) return true;
  EXPECT_EQ(r2->ToString(), printed) << text;
  EXPECT_TRUE(Fields(*r1) == Fields(*r2)) << "\"" << text << "\" prints as \"" << printed
                                          << "\", which reads back as registry \"" << r2->registry
                                          << "\", repository \"" << r2->repository << "\"";
  return true;
}

TEST(ParseReference, HostOnlyByUpperCaseRoundTrips) {
  struct Canonical {
    std::string input, printed;
  };
  const std::vector<Canonical> cases = {
      // The issue's reference: a host by its upper case; lower-cased it
      // would be the Docker Hub repository workingdir5xz/arm64/v8.
      {"WorkingDir5xz/arm64/v8", "WorkingDir5xz/arm64/v8:latest"},
      {"workingdir5xz/arm64/v8", "docker.io/workingdir5xz/arm64/v8:latest"},
      {"LOCALHOST/a", "localhost/a:latest"},
      {"Example.COM:5000/a", "example.com:5000/a:latest"},
      {"[FC00::1]:5000/a", "[fc00::1]:5000/a:latest"},
      {"INDEX.DOCKER.IO/a", "docker.io/library/a:latest"},
      // A registry called "oci" must not read back as an OCI layout.
      {"docker://oci:5000/a", "docker://oci:5000/a:latest"},
      {"http://OCI:1/a", "docker://oci:1/a:latest"},
  };
  for (const Canonical& c : cases) {
    SCOPED_TRACE(c.input);
    Result<Reference> r = ParseReference(c.input);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->ToString(), c.printed);
    EXPECT_TRUE(ExpectRoundTrip(c.input));
  }
}

// A round-trip property over references built from pieces that sit on the
// grammar's edges (case, ports, "localhost", Docker Hub aliases, transports,
// tags and digests), and over short random strings.
TEST(ParseReference, ParsePrintParseIsAnIdentity) {
  const std::vector<std::string> prefixes = {"", "", "", "docker://", "http://", "https://", "oci:"};
  const std::vector<std::string> hosts = {
      "", "", "localhost", "LocalHost", "localhost:5000", "Example.COM", "example.com", "127.0.0.1:5000",
      "[::1]:5000", "[FC00::1]", "WorkingDir5xz", "FOO", "Foo", "index.docker.io", "INDEX.docker.io", "docker.io",
      "docker.io:443", "oci:5000", "OCI:1", "oci", "http:80", "a-b", "a", "-a.b", "a..b", "x.y:"};
  const std::vector<std::string> components = {
      "library", "foo", "Foo", "a", "arm64", "v8", "x.y", "a_b", "a__b", "a___b", "a-b", "a--b", "1", "ubuntu-12.04",
      "A", "_x", "x_", "..", "", "oci:x", "a:b", std::string(64, 'f'), std::string(250, 'a')};
  const std::vector<std::string> tags = {"", "", ":latest", ":V1.0", ":_x", ":-bad", ":", ":a/b", ":" + std::string(128, 't'),
                                         ":" + std::string(129, 't'), ":x:y"};
  const std::vector<std::string> digests = {"", "", "@" + kDigest, "@sha256:" + std::string(64, 'A'), "@", "@sha256:ab"};
  std::mt19937 rng(13);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  const std::string alphabet = "aA0.:/@_-[]";
  int accepted = 0, total = 0;
  for (int i = 0; i < 60000; ++i) {
    std::string text;
    if (i % 4 == 3) {
      size_t n = rng() % 24;
      for (size_t j = 0; j < n; ++j) text += alphabet[rng() % alphabet.size()];
      if (rng() % 3 == 0) text = pick(prefixes) + text;
    } else {
      text = pick(prefixes);
      std::string host = pick(hosts);
      if (!host.empty()) text += host + "/";
      size_t n = 1 + rng() % 3;
      for (size_t j = 0; j < n; ++j) text += (j ? "/" : "") + pick(components);
      text += pick(tags) + pick(digests);
    }
    ++total;
    if (ExpectRoundTrip(text)) ++accepted;
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "first failing reference: \"" << text << "\"";
      return;
    }
  }
  // The generator must reach both sides of the grammar.
  EXPECT_GT(accepted, total / 10);
  EXPECT_LT(accepted, total * 9 / 10);
}

// The store key is the printed reference: an image recorded under what the
// user typed is found again under its own printed form.
TEST(ParseReference, StoreKeyRoundTrips) {
  char tmpl[] = "/tmp/lazyroot-refkey-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto store = Store::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const std::vector<std::string> typed_texts = {"WorkingDir5xz/arm64/v8", "workingdir5xz/arm64/v8",
                                                "Example.COM/a:1", "docker://oci:5000/a", "alpine@" + kDigest};
  for (const std::string& text : typed_texts) {
    SCOPED_TRACE(text);
    Result<Reference> typed = ParseReference(text);
    ASSERT_TRUE(typed.ok());
    ImageRecord rec;
    rec.reference = typed->ToString();
    rec.manifest_digest = rec.config_digest = kDigest;
    ASSERT_TRUE((*store)->PutImage(rec).ok());
    Result<Reference> listed = ParseReference(rec.reference);  // what `images` shows, typed back
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    auto got = (*store)->GetImage(listed->ToString());
    ASSERT_TRUE(got.ok() && got->has_value()) << got.status().ToString();
    EXPECT_EQ((*got)->reference, rec.reference);
  }
  // Two different images: the host WorkingDir5xz and the Hub repository.
  auto images = (*store)->ListImages();
  ASSERT_TRUE(images.ok());
  EXPECT_EQ(images->size(), 5u);
  ASSERT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
}

TEST(ValidateDigest, Vectors) {
  EXPECT_TRUE(ValidateDigest(kDigest).ok());
  EXPECT_TRUE(ValidateDigest("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").ok());
  for (const std::string& bad : {std::string(""), std::string("sha256"), std::string(":") + kHex64,
                                 std::string("sha256:"), "sha256:" + std::string(63, 'a'),
                                 "sha256:" + std::string(65, 'a'), "sha256:" + std::string(63, 'a') + "g",
                                 "SHA256:" + kHex64, "sha512:" + std::string(128, 'a'), kHex64}) {
    Status st = ValidateDigest(bad);
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace lazyroot
