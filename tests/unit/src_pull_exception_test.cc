// An exception in a pull's worker threads (out of memory in the layer
// consumer fed a hostile layer, say) is an error naming the pull and the
// layer, never std::terminate, and leaves the store as it was. The source is
// a real OCI layout on disk; the seam is the layer consumer.
#include <dirent.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "index/sha256.h"
#include "src/pull/pull.h"
#include "src/image/reference.h"
#include "src/store/store.h"

namespace lazyroot {
namespace {

std::string Digest(const std::string& bytes) { return "sha256:" + Sha256::HexOf(std::string_view(bytes)); }

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

// Throws from its first Consume: std::bad_alloc (kind 0) or a
// std::runtime_error (kind 1).
class ThrowingConsumer final : public LayerConsumer {
 public:
  explicit ThrowingConsumer(int kind) : kind_(kind) {}
  Status Consume(std::span<const uint8_t>) override {
    if (kind_ == 0) throw std::bad_alloc();
    throw std::runtime_error("boom");
  }
  Status Finish(ChunkDigests) override { return Status::Ok(); }

 private:
  int kind_;
};

class PullException : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-pullexc-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    layout_ = dir_ + "/layout";
    ASSERT_EQ(mkdir(layout_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((layout_ + "/blobs").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((layout_ + "/blobs/sha256").c_str(), 0755), 0);

    std::string layers_json, diff_ids;
    for (int i = 0; i < 3; ++i) {
      std::string layer(100000 + i, static_cast<char>('a' + i));
      std::string d = Blob(layer);
      layers_json += std::string(i ? "," : "") + R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                     d + R"(","size":)" + std::to_string(layer.size()) + "}";
      diff_ids += std::string(i ? "," : "") + "\"" + Digest(layer + "diff") + "\"";
    }
    const Platform host = HostPlatform();
    std::string config = R"({"os":")" + host.os + R"(","architecture":")" + host.arch + R"(","variant":")" +
                         host.variant + R"(","rootfs":{"type":"layers","diff_ids":[)" + diff_ids + "]}}";
    std::string config_digest = Blob(config);
    std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                           R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                           config_digest + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" +
                           layers_json + "]}";
    std::string manifest_digest = Blob(manifest);
    std::ofstream(layout_ + "/oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
    std::ofstream(layout_ + "/index.json")
        << R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")"
        << manifest_digest << R"(","size":)" << manifest.size() << "}]}";
    auto store = Store::Open(dir_ + "/store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf '" + dir_ + "'").c_str()), 0); }

  std::string Blob(const std::string& bytes) {
    std::string d = Digest(bytes);
    std::ofstream(layout_ + "/blobs/sha256/" + d.substr(7), std::ios::binary) << bytes;
    return d;
  }

  Result<PullResult> PullWith(LayerConsumerFactory factory, int jobs) {
    auto ref = ParseReference("oci:" + layout_);
    EXPECT_TRUE(ref.ok());
    PullOptions options;
    options.jobs = jobs;
    options.consumer_factory = std::move(factory);
    return Pull(*store_, *ref, options);
  }

  void ExpectStoreUnchanged() {
    EXPECT_TRUE(Names(dir_ + "/store/blobs/sha256").empty());
    EXPECT_TRUE(Names(dir_ + "/store/images").empty());
    auto images = store_->ListImages();
    ASSERT_TRUE(images.ok());
    EXPECT_TRUE(images->empty());
  }

  std::string dir_, layout_;
  std::unique_ptr<Store> store_;
};

TEST_F(PullException, BadAllocInAWorkerIsAnErrorNamingTheLayer) {
  for (int jobs : {1, 3}) {
    SCOPED_TRACE(jobs);
    std::atomic<int> made{0};
    auto r = PullWith(
        [&](const Layer&, size_t position, const std::string&) -> Result<std::unique_ptr<LayerConsumer>> {
          ++made;
          // Only the second layer's consumer throws; the others succeed or are cancelled.
          if (position != 1) return std::unique_ptr<LayerConsumer>();
          return std::unique_ptr<LayerConsumer>(new ThrowingConsumer(0));
        },
        jobs);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kIoError);
    EXPECT_TRUE(r.status().message().starts_with("pull oci:" + layout_ + ": layer sha256:")) << r.status().message();
    EXPECT_TRUE(r.status().message().ends_with(": out of memory")) << r.status().message();
    EXPECT_GE(made.load(), 1);
    ExpectStoreUnchanged();
  }
}

TEST_F(PullException, OtherExceptionsCarryTheirWhat) {
  auto r = PullWith(
      [](const Layer&, size_t, const std::string&) -> Result<std::unique_ptr<LayerConsumer>> {
        return std::unique_ptr<LayerConsumer>(new ThrowingConsumer(1));
      },
      3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIoError);
  EXPECT_NE(r.status().message().find(": internal error: boom"), std::string::npos) << r.status().message();
  ExpectStoreUnchanged();
}

TEST_F(PullException, ThrowingFactoryIsAnErrorToo) {
  auto r = PullWith(
      [](const Layer&, size_t, const std::string&) -> Result<std::unique_ptr<LayerConsumer>> {
        throw std::bad_alloc();
      },
      2);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().message().ends_with(": out of memory")) << r.status().message();
  ExpectStoreUnchanged();
}

TEST_F(PullException, WithoutExceptionsThePullSucceeds) {
  auto r = PullWith(nullptr, 3);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Names(dir_ + "/store/blobs/sha256").size(), 5u);  // 3 layers, config, manifest
}

}  // namespace
}  // namespace lazyroot
