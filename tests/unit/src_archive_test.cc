// Archives: member names, docker save's manifest.json, the image a ref
// picks, and TarWriter's output read back by TarArchive.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "src/image/docker_archive.h"
#include "src/image/tar_archive.h"
#include "src/image/tar_writer.h"

namespace lazyroot {
namespace {

TEST(CleanMemberName, NormalisesAndRefusesEscapes) {
  EXPECT_EQ(*CleanMemberName("./a//b/./c"), "a/b/c");
  EXPECT_EQ(*CleanMemberName("manifest.json"), "manifest.json");
  EXPECT_FALSE(CleanMemberName("/etc/passwd").ok());
  EXPECT_FALSE(CleanMemberName("a/../../b").ok());
  EXPECT_FALSE(CleanMemberName("a/..").ok());
  EXPECT_FALSE(CleanMemberName("./").ok());
  EXPECT_FALSE(CleanMemberName("").ok());
}

TEST(DockerArchiveManifest, ParsesAndSelects) {
  auto images = ParseDockerArchiveManifest(
      R"([{"Config":"c1.json","RepoTags":["busybox:latest","example.com/a/b:2"],"Layers":["l1/layer.tar"]},)"
      R"({"Config":"c2.json","RepoTags":null,"Layers":[],"LayerSources":{}}])",
      "m");
  ASSERT_TRUE(images.ok()) << images.status().ToString();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].layers.size(), 1u);
  EXPECT_TRUE((*images)[1].repo_tags.empty());
  EXPECT_EQ(*SelectDockerArchiveImage(*images, "docker.io/library/busybox", "a"), 0u);
  EXPECT_EQ(*SelectDockerArchiveImage(*images, "busybox:latest", "a"), 0u);
  EXPECT_EQ(*SelectDockerArchiveImage(*images, "example.com/a/b:2", "a"), 0u);
  EXPECT_EQ(*SelectDockerArchiveImage(*images, "@1", "a"), 1u);
  EXPECT_EQ(SelectDockerArchiveImage(*images, "@2", "a").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(SelectDockerArchiveImage(*images, "busybox:1", "a").status().code(), ErrorCode::kNotFound);
  auto several = SelectDockerArchiveImage(*images, "", "a");
  EXPECT_EQ(several.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(several.status().message().find("busybox:latest"), std::string::npos);
}

TEST(DockerArchiveManifest, RefusesMalformed) {
  for (const char* bad :
       {R"({})", R"([])", R"([1])", R"([{"Layers":[]}])", R"([{"Config":"","Layers":[]}])", R"([{"Config":"c"}])",
        R"([{"Config":"c","Layers":[1]}])", R"([{"Config":"c","Layers":[],"RepoTags":"x"}])", "[", ""}) {
    SCOPED_TRACE(bad);
    auto r = ParseDockerArchiveManifest(bad, "m");
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
    EXPECT_EQ(r.status().message().rfind("m", 0), 0u);
  }
}

TEST(DockerArchiveManifest, SynthesizedManifestIsCompactGoOrder) {
  EXPECT_EQ(SynthesizeOciManifest("sha256:c", 5, {{"application/vnd.oci.image.layer.v1.tar", "sha256:l", 7}}),
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
            R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":5},)"
            R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:l","size":7}]})");
}

TEST(TarArchive, ReadsWhatTarWriterWrote) {
  char path[] = "/tmp/lazyroot-archive-test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  TarWriter w(fd, "test");
  ASSERT_TRUE(w.AddDirectory("blobs/").ok());
  ASSERT_TRUE(w.AddFile("blobs/a", std::string(1000, 'a')).ok());
  ASSERT_TRUE(w.AddFile("empty", "").ok());
  ASSERT_TRUE(w.AddFile("x", "xyz").ok());
  ASSERT_TRUE(w.Finish().ok());
  ::close(fd);
  auto archive = TarArchive::Open(path, "t");
  ASSERT_TRUE(archive.ok()) << archive.status().ToString();
  EXPECT_EQ(*(*archive)->Read("./blobs//a", 4096), std::string(1000, 'a'));
  EXPECT_EQ(*(*archive)->Read("empty", 10), "");
  EXPECT_EQ(*(*archive)->Read("x", 10), "xyz");
  EXPECT_EQ((*archive)->Read("x", 2).status().code(), ErrorCode::kCorruption);
  EXPECT_EQ((*archive)->Read("y", 2).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ((*archive)->Read("blobs", 2).status().code(), ErrorCode::kNotFound);  // directories are not members
  ::unlink(path);
}

}  // namespace
}  // namespace lazyroot
