#include "src/image/manifest.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lazyroot {
namespace {

// Digests used by the fixtures: "sha256:" + 64 copies of one hex digit.
std::string D(char c) { return "sha256:" + std::string(64, c); }

// Replaces every "@X" in a fixture by D('X') to keep the JSON readable.
std::string Fix(std::string json) {
  std::string out;
  for (size_t i = 0; i < json.size(); ++i) {
    if (json[i] == '@' && i + 1 < json.size()) {
      out += D(json[++i]);
    } else {
      out += json[i];
    }
  }
  return out;
}

const std::string kOciManifest = Fix(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@c", "size": 1234},
  "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "@1", "size": 100},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": "@2", "size": 200,
     "annotations": {"org.opencontainers.image.title": "two"}},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "@3", "size": 0},
    {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": "@4", "size": 5,
     "urls": ["https://example.com/layer4"]}
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
})");

const std::string kDockerV2S2 = Fix(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": "@a"},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": "@b"},
    {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 16724, "digest": "@d",
     "urls": ["https://mcr.microsoft.com/v2/windows/blobs/x"]},
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": 73109, "digest": "@e"},
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.zstd", "size": 1, "digest": "@f"}
  ]
})");

// An OCI index as BuildKit pushes it: two images and their attestations.
const std::string kOciIndexWithAttestation = Fix(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@1", "size": 480,
     "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@2", "size": 480,
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@3", "size": 566,
     "annotations": {"vnd.docker.reference.digest": "@1", "vnd.docker.reference.type": "attestation-manifest"},
     "platform": {"architecture": "unknown", "os": "unknown"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@4", "size": 566,
     "annotations": {"vnd.docker.reference.digest": "@2", "vnd.docker.reference.type": "attestation-manifest"}}
  ]
})");

const std::string kDockerList = Fix(R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 7143, "digest": "@5",
     "platform": {"architecture": "ppc64le", "os": "linux"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 7682, "digest": "@6",
     "platform": {"architecture": "arm", "os": "linux", "variant": "v5"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 7682, "digest": "@7",
     "platform": {"architecture": "x86_64", "os": "Linux", "os.version": "x", "os.features": ["sse4"]}}
  ]
})");

// containers/image fixtures/v2s1.manifest.json, shortened.
const std::string kSchema1Signed = R"({
   "schemaVersion": 1,
   "name": "library/busybox",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [{"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
   "history": [{"v1Compatibility": "{}"}],
   "signatures": [{"header": {"alg": "ES256"}, "signature": "abc", "protected": "def"}]
})";

const std::string kConfig = Fix(R"({
  "architecture": "arm",
  "variant": "v7",
  "os": "linux",
  "created": "2024-05-01T12:00:00Z",
  "config": {
    "User": "1000:1000",
    "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "80/tcp": {}},
    "Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"],
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "WorkingDir": "/srv",
    "Labels": {"maintainer": "someone", "org.opencontainers.image.version": "1.2"},
    "StopSignal": "SIGQUIT"
  },
  "rootfs": {"type": "layers", "diff_ids": ["@1", "@2"]},
  "history": [{"created_by": "x"}]
})");

TEST(ClassifyManifest, ByContentTypeAndBody) {
  struct Case {
    std::string name, content_type, body;
    ManifestKind kind;
    std::string media_type;
  };
  const std::vector<Case> cases = {
      {"oci manifest", "application/vnd.oci.image.manifest.v1+json", kOciManifest, ManifestKind::kManifest,
       std::string(media_type::kOciManifest)},
      {"docker v2s2", "application/vnd.docker.distribution.manifest.v2+json", kDockerV2S2, ManifestKind::kManifest,
       std::string(media_type::kDockerManifest)},
      {"oci index", "application/vnd.oci.image.index.v1+json", kOciIndexWithAttestation, ManifestKind::kIndex,
       std::string(media_type::kOciIndex)},
      {"docker list", "application/vnd.docker.distribution.manifest.list.v2+json", kDockerList, ManifestKind::kIndex,
       std::string(media_type::kDockerList)},
      {"parameters stripped", "application/vnd.oci.image.manifest.v1+json; charset=utf-8", kOciManifest,
       ManifestKind::kManifest, std::string(media_type::kOciManifest)},
      {"content type case", "Application/VND.oci.image.manifest.v1+JSON", kOciManifest, ManifestKind::kManifest,
       std::string(media_type::kOciManifest)},
      {"generic type, body mediaType", "application/json", kDockerList, ManifestKind::kIndex,
       std::string(media_type::kDockerList)},
      {"no type, body mediaType", "", kDockerV2S2, ManifestKind::kManifest, std::string(media_type::kDockerManifest)},
      {"sniff index", "application/octet-stream", R"({"schemaVersion":2,"manifests":[]})", ManifestKind::kIndex,
       std::string(media_type::kOciIndex)},
      {"sniff manifest", "text/plain",
       Fix(R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@1","size":1},"layers":[]})"),
       ManifestKind::kManifest, std::string(media_type::kOciManifest)},
      {"specific type, no body mediaType", "application/vnd.oci.image.index.v1+json", R"({"manifests":[]})",
       ManifestKind::kIndex, std::string(media_type::kOciIndex)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Result<ManifestKind> k = ClassifyManifest(c.content_type, c.body);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_EQ(*k, c.kind);
    Result<std::string> mt = ManifestMediaType(c.content_type, c.body);
    ASSERT_TRUE(mt.ok());
    EXPECT_EQ(*mt, c.media_type);
  }
}

TEST(ClassifyManifest, Rejections) {
  struct Case {
    std::string name, content_type, body;
    ErrorCode code;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"schema1 signed by type", "application/vnd.docker.distribution.manifest.v1+prettyjws", kSchema1Signed,
       ErrorCode::kUnsupported, "schema 1 manifests are not supported"},
      {"schema1 by type", "application/vnd.docker.distribution.manifest.v1+json", kSchema1Signed,
       ErrorCode::kUnsupported, "schema 1 manifests are not supported"},
      {"schema1 by body, text/plain", "text/plain", kSchema1Signed, ErrorCode::kUnsupported,
       "schema 1 manifests are not supported"},
      {"schema1 by fsLayers only", "application/json", R"({"fsLayers":[]})", ErrorCode::kUnsupported,
       "schema 1 manifests are not supported"},
      {"schema1 body under a v2 type", "application/vnd.docker.distribution.manifest.v2+json", kSchema1Signed,
       ErrorCode::kUnsupported, "schema 1"},
      {"mediaType disagrees with Content-Type", "application/vnd.oci.image.manifest.v1+json", kOciIndexWithAttestation,
       ErrorCode::kCorruption,
       "manifest mediaType \"application/vnd.oci.image.index.v1+json\" does not match Content-Type "
       "\"application/vnd.oci.image.manifest.v1+json\""},
      {"docker vs oci", "application/vnd.oci.image.manifest.v1+json", kDockerV2S2, ErrorCode::kCorruption,
       "does not match"},
      {"unknown content type", "application/vnd.oci.artifact.manifest.v1+json", "{}", ErrorCode::kUnsupported,
       "unsupported manifest media type \"application/vnd.oci.artifact.manifest.v1+json\""},
      {"unknown body type", "", R"({"mediaType":"application/x-foo"})", ErrorCode::kUnsupported,
       "\"application/x-foo\""},
      {"unrecognisable shape", "application/json", R"({"schemaVersion":2})", ErrorCode::kUnsupported,
       "cannot tell the manifest kind"},
      {"not json", "application/vnd.oci.image.manifest.v1+json", "{", ErrorCode::kCorruption, "not valid JSON"},
      {"trailing garbage", "", R"({"manifests":[]} x)", ErrorCode::kCorruption, "not valid JSON"},
      {"not an object", "", "[1,2]", ErrorCode::kCorruption, "not a JSON object"},
      {"duplicate mediaType", "",
       R"({"mediaType":"application/vnd.oci.image.index.v1+json","mediaType":"application/vnd.oci.image.manifest.v1+json"})",
       ErrorCode::kCorruption, "duplicate key \"mediaType\""},
      {"mediaType not a string", "", R"({"mediaType":1})", ErrorCode::kCorruption, "manifest.mediaType: want a string"},
      {"schemaVersion 3", "", R"({"schemaVersion":3,"manifests":[]})", ErrorCode::kUnsupported, "schemaVersion 3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Result<ManifestKind> k = ClassifyManifest(c.content_type, c.body);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), c.code) << k.status().ToString();
    EXPECT_NE(k.status().message().find(c.message_part), std::string::npos) << k.status().message();
  }
}

TEST(LayerCompression, MediaTypes) {
  struct Case {
    std::string media_type;
    Compression compression;
  };
  const std::vector<Case> ok = {
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip},
  };
  for (const Case& c : ok) {
    Result<Compression> r = LayerCompression(c.media_type);
    ASSERT_TRUE(r.ok()) << c.media_type;
    EXPECT_EQ(*r, c.compression) << c.media_type;
  }
  Result<Compression> enc = LayerCompression("application/vnd.oci.image.layer.v1.tar+gzip+encrypted");
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(enc.status().message(),
            "encrypted layer media type \"application/vnd.oci.image.layer.v1.tar+gzip+encrypted\" is not supported");
  for (const std::string bad : {"application/vnd.oci.image.layer.v1.tar+bzip2", "application/octet-stream",
                                "application/vnd.oci.image.layer.v1.tar+gzip; x=y", ""}) {
    Result<Compression> r = LayerCompression(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.status().message().find("\"" + bad + "\""), std::string::npos);
  }
}

TEST(ParseImageManifest, Oci) {
  Result<ImageManifest> m = ParseImageManifest(kOciManifest);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->media_type, media_type::kOciManifest);
  EXPECT_EQ(m->config.media_type, media_type::kOciConfig);
  EXPECT_EQ(m->config.digest, D('c'));
  EXPECT_EQ(m->config.size, 1234);
  ASSERT_EQ(m->layers.size(), 4u);
  EXPECT_EQ(m->layers[0].compression, Compression::kGzip);
  EXPECT_EQ(m->layers[0].descriptor.digest, D('1'));
  EXPECT_EQ(m->layers[0].descriptor.size, 100);
  EXPECT_EQ(m->layers[1].compression, Compression::kZstd);
  EXPECT_EQ(m->layers[1].descriptor.annotations.at("org.opencontainers.image.title"), "two");
  EXPECT_EQ(m->layers[2].compression, Compression::kNone);
  EXPECT_EQ(m->layers[2].descriptor.size, 0);
  EXPECT_EQ(m->layers[3].compression, Compression::kGzip);
  EXPECT_EQ(m->layers[3].descriptor.urls, std::vector<std::string>{"https://example.com/layer4"});
}

TEST(ParseImageManifest, DockerV2S2) {
  Result<ImageManifest> m = ParseImageManifest(kDockerV2S2);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->media_type, media_type::kDockerManifest);
  EXPECT_EQ(m->config.media_type, media_type::kDockerConfig);
  ASSERT_EQ(m->layers.size(), 4u);
  EXPECT_EQ(m->layers[0].compression, Compression::kGzip);
  EXPECT_EQ(m->layers[1].compression, Compression::kGzip);
  EXPECT_EQ(m->layers[1].descriptor.urls.size(), 1u);
  EXPECT_EQ(m->layers[2].compression, Compression::kNone);
  EXPECT_EQ(m->layers[3].compression, Compression::kZstd);
}

TEST(ParseImageManifest, NoMediaTypeReadsAsOci) {
  Result<ImageManifest> m = ParseImageManifest(Fix(
      R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@1","size":2},"layers":[]})"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->media_type, media_type::kOciManifest);
  EXPECT_TRUE(m->layers.empty());
}

TEST(ParseImageManifest, Rejections) {
  const std::string oci_head =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@c","size":1},)";
  struct Case {
    std::string name, body;
    ErrorCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"encrypted layer",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd+encrypted","digest":"@1","size":1}]})",
       ErrorCode::kUnsupported,
       "manifest.layers[0]: encrypted layer media type \"application/vnd.oci.image.layer.v1.tar+zstd+encrypted\" is "
       "not supported"},
      {"unknown layer type",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@1","size":1},)"
                  R"({"mediaType":"application/x-squashfs","digest":"@2","size":1}]})",
       ErrorCode::kUnsupported, "manifest.layers[1]: unsupported layer media type \"application/x-squashfs\""},
      {"negative size",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@1","size":-1}]})",
       ErrorCode::kCorruption, "manifest.layers[0].size: negative size -1"},
      {"fractional size",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@1","size":1.5}]})",
       ErrorCode::kCorruption, "manifest.layers[0].size: want an integer"},
      {"size as string",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@1","size":"1"}]})",
       ErrorCode::kCorruption, "manifest.layers[0].size: want an integer"},
      {"missing size", oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@1"}]})",
       ErrorCode::kCorruption, "manifest.layers[0].size is missing"},
      {"bad digest",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:abc","size":1}]})",
       ErrorCode::kCorruption, "manifest.layers[0].digest: invalid digest \"sha256:abc\""},
      {"sha512 digest",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha512:)" +
           std::string(128, 'a') + R"(","size":1}]})",
       ErrorCode::kCorruption, "unsupported algorithm \"sha512\""},
      {"digest not a string",
       oci_head + R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":5,"size":1}]})",
       ErrorCode::kCorruption, "manifest.layers[0].digest: want a string"},
      {"layers not an array", oci_head + R"("layers":{}})", ErrorCode::kCorruption, "manifest.layers: want an array"},
      {"layer not an object", oci_head + R"("layers":[1]})", ErrorCode::kCorruption,
       "manifest.layers[0]: want an object"},
      {"missing layers", Fix(oci_head + R"("x":1})"), ErrorCode::kCorruption, "manifest.layers is missing"},
      {"missing config", R"({"schemaVersion":2,"layers":[]})", ErrorCode::kCorruption, "manifest.config is missing"},
      {"artifact config",
       R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"@c","size":1},"layers":[]})",
       ErrorCode::kUnsupported, "not a container image config"},
      {"an index", kOciIndexWithAttestation, ErrorCode::kCorruption, "is an index, not an image manifest"},
      {"schema1", kSchema1Signed, ErrorCode::kUnsupported, "schema 1 manifests are not supported"},
      {"array", "[]", ErrorCode::kCorruption, "manifest is not a JSON object"},
      {"null", "null", ErrorCode::kCorruption, "manifest is not a JSON object"},
      {"empty", "", ErrorCode::kCorruption, "manifest is not valid JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Result<ImageManifest> m = ParseImageManifest(Fix(c.body));
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), c.code) << m.status().ToString();
    EXPECT_NE(m.status().message().find(c.message), std::string::npos) << m.status().message();
  }
}

TEST(ParseIndex, OciIndexWithAttestations) {
  Result<std::vector<IndexEntry>> r = ParseIndex(kOciIndexWithAttestation);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  const std::vector<IndexEntry>& e = *r;
  EXPECT_EQ(e[0].digest, D('1'));
  EXPECT_EQ(e[0].media_type, media_type::kOciManifest);
  EXPECT_EQ(e[0].size, 480);
  EXPECT_TRUE(e[0].has_platform);
  EXPECT_EQ(e[0].platform.ToString(), "linux/amd64");
  EXPECT_FALSE(e[0].is_attestation);
  EXPECT_EQ(e[1].platform.ToString(), "linux/arm64");  // v8 normalised away
  EXPECT_FALSE(e[1].is_attestation);
  EXPECT_TRUE(e[2].is_attestation);
  EXPECT_TRUE(e[2].has_platform);
  EXPECT_EQ(e[2].annotations.at("vnd.docker.reference.digest"), D('1'));
  EXPECT_TRUE(e[3].is_attestation);  // by annotation alone
  EXPECT_FALSE(e[3].has_platform);

  Result<size_t> pick = SelectPlatform(e, Platform{"linux", "arm64", ""});
  ASSERT_TRUE(pick.ok());
  EXPECT_EQ(*pick, 1u);
  pick = SelectPlatform(e, Platform{"linux", "s390x", ""});
  ASSERT_FALSE(pick.ok());
  EXPECT_EQ(pick.status().message(), "no manifest for platform linux/s390x; available: linux/amd64, linux/arm64");
}

TEST(ParseIndex, DockerListNormalisesPlatforms) {
  Result<std::vector<IndexEntry>> r = ParseIndex(kDockerList);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].platform.ToString(), "linux/ppc64le");
  EXPECT_EQ((*r)[1].platform.ToString(), "linux/arm/v5");
  EXPECT_EQ((*r)[2].platform.ToString(), "linux/amd64");
  EXPECT_EQ((*r)[2].media_type, media_type::kDockerManifest);
  for (const IndexEntry& e : *r) EXPECT_FALSE(e.is_attestation);
  Result<size_t> pick = SelectPlatform(*r, Platform{"linux", "amd64", ""});
  ASSERT_TRUE(pick.ok());
  EXPECT_EQ(*pick, 2u);
}

TEST(ParseIndex, EmptyAndUnknownChildTypesAreFine) {
  Result<std::vector<IndexEntry>> r = ParseIndex(R"({"schemaVersion":2,"manifests":[]})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  // image-index.md: unknown child media types MUST NOT be an error.
  r = ParseIndex(Fix(R"({"manifests":[{"mediaType":"application/vnd.example.thing","digest":"@1","size":3}]})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].media_type, "application/vnd.example.thing");
}

TEST(ParseIndex, Rejections) {
  struct Case {
    std::string name, body, message;
  };
  const std::vector<Case> cases = {
      {"not json", "{", "index is not valid JSON"},
      {"not object", "\"x\"", "index is not a JSON object"},
      {"missing manifests", R"({"schemaVersion":2})", "index.manifests is missing"},
      {"manifests not array", R"({"manifests":{}})", "index.manifests: want an array"},
      {"a manifest", kOciManifest, "index mediaType \"application/vnd.oci.image.manifest.v1+json\" is not an index"},
      {"bad digest", R"({"manifests":[{"mediaType":"m","digest":"sha256:xyz","size":1}]})",
       "index.manifests[0].digest: invalid digest"},
      {"negative size", R"({"manifests":[{"mediaType":"m","digest":"@1","size":-5}]})",
       "index.manifests[0].size: negative size -5"},
      {"missing mediaType", R"({"manifests":[{"digest":"@1","size":1}]})", "index.manifests[0].mediaType is missing"},
      {"platform not object", R"({"manifests":[{"mediaType":"m","digest":"@1","size":1,"platform":"linux/amd64"}]})",
       "index.manifests[0].platform: want an object"},
      {"platform without os", R"({"manifests":[{"mediaType":"m","digest":"@1","size":1,"platform":{"architecture":"amd64"}}]})",
       "index.manifests[0].platform.os is missing"},
      {"variant wrong type",
       R"({"manifests":[{"mediaType":"m","digest":"@1","size":1,"platform":{"os":"linux","architecture":"arm","variant":7}}]})",
       "index.manifests[0].platform.variant: want a string"},
      {"annotations wrong type", R"({"manifests":[{"mediaType":"m","digest":"@1","size":1,"annotations":{"a":1}}]})",
       "index.manifests[0].annotations[\"a\"]: want a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Result<std::vector<IndexEntry>> r = ParseIndex(Fix(c.body));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption) << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
}

TEST(ParseImageConfig, Full) {
  Result<ImageConfig> c = ParseImageConfig(kConfig);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->architecture, "arm");
  EXPECT_EQ(c->variant, "v7");
  EXPECT_EQ(c->created, "2024-05-01T12:00:00Z");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"53/udp", "80/tcp", "8080/tcp"}));
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"}));
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/docker-entrypoint.sh"});
  EXPECT_EQ(c->cmd, (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  EXPECT_EQ(c->labels.size(), 2u);
  EXPECT_EQ(c->labels.at("org.opencontainers.image.version"), "1.2");
  EXPECT_EQ(c->diff_ids, (std::vector<std::string>{D('1'), D('2')}));
}

TEST(ParseImageConfig, NullsAndAbsences) {
  // What `docker build` writes for an image with no CMD: "Cmd": null.
  Result<ImageConfig> c = ParseImageConfig(Fix(
      R"({"architecture":"amd64","os":"linux","config":{"Cmd":null,"Entrypoint":null,"Env":null,"Labels":null,)"
      R"("ExposedPorts":null,"WorkingDir":"","User":null},"rootfs":{"type":"layers","diff_ids":["@1"]}})"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->cmd.empty());
  EXPECT_TRUE(c->entrypoint.empty());
  EXPECT_TRUE(c->env.empty());
  EXPECT_TRUE(c->labels.empty());
  EXPECT_TRUE(c->exposed_ports.empty());
  EXPECT_EQ(c->user, "");

  c = ParseImageConfig(R"({"rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->diff_ids.empty());
  EXPECT_EQ(c->os, "");

  c = ParseImageConfig(R"({"config":null,"rootfs":{"type":"layers","diff_ids":[]}})");
  EXPECT_TRUE(c.ok());
}

TEST(ParseImageConfig, Rejections) {
  struct Case {
    std::string name, body, message;
  };
  const std::string rootfs = R"("rootfs":{"type":"layers","diff_ids":["@1"]})";
  const std::vector<Case> cases = {
      {"not json", "{,}", "image config is not valid JSON"},
      {"not object", "[]", "image config is not a JSON object"},
      {"no rootfs", R"({"os":"linux"})", "config.rootfs is missing"},
      {"rootfs not object", R"({"rootfs":[]})", "config.rootfs: want an object"},
      {"rootfs type", R"({"rootfs":{"type":"layer","diff_ids":[]}})",
       "config.rootfs.type is \"layer\", want \"layers\""},
      {"rootfs type missing", R"({"rootfs":{"diff_ids":[]}})", "config.rootfs.type is missing"},
      {"diff_ids missing", R"({"rootfs":{"type":"layers"}})", "config.rootfs.diff_ids is missing"},
      {"diff_id invalid", R"({"rootfs":{"type":"layers","diff_ids":["@1","sha256:nothex"]}})",
       "config.rootfs.diff_ids[1]: invalid digest \"sha256:nothex\""},
      {"diff_id not string", R"({"rootfs":{"type":"layers","diff_ids":[1]}})",
       "config.rootfs.diff_ids[0]: want a string"},
      {"Cmd a string", R"({"config":{"Cmd":"sh -c x"},)" + rootfs + "}",
       "config.config.Cmd: want an array of strings"},
      {"Env with a number", R"({"config":{"Env":["A=1",2]},)" + rootfs + "}",
       "config.config.Env: want an array of strings"},
      {"Labels value not string", R"({"config":{"Labels":{"a":true}},)" + rootfs + "}",
       "config.config.Labels[\"a\"]: want a string"},
      {"ExposedPorts array", R"({"config":{"ExposedPorts":["80/tcp"]},)" + rootfs + "}",
       "config.config.ExposedPorts: want an object"},
      {"config not object", R"({"config":"x",)" + rootfs + "}", "config.config: want an object"},
      {"os not string", R"({"os":1,)" + rootfs + "}", "config.os: want a string"},
      {"duplicate Cmd", R"({"config":{"Cmd":["a"],"Cmd":["b"]},)" + rootfs + "}", "duplicate key \"Cmd\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Result<ImageConfig> r = ParseImageConfig(Fix(c.body));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption) << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace lazyroot
