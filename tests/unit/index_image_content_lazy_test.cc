// ImageContent's lazily loaded layers (a mount's): each loads once, whatever
// the number of threads asking, its failure sticks, and readers of a layer
// that could not load fail with that error instead of crashing.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "index/image_content.h"

namespace lazyroot {
namespace {

const std::string kBytes = "plain layer bytes, read through a lazily loaded layer";

std::span<const uint8_t> Bytes() { return {reinterpret_cast<const uint8_t*>(kBytes.data()), kBytes.size()}; }

LayerBlob Loaded(const std::string& digest) {
  auto table = std::make_shared<CheckpointTable>();
  table->compression = Compression::kNone;
  table->compressed_size = table->uncompressed_size = kBytes.size();
  return LayerBlob{digest, MemoryByteSource(Bytes(), digest), table};
}

TEST(ImageContentLazy, LoadsOnceForManyThreadsAndReadsThenWork) {
  std::atomic<int> calls{0};
  std::vector<LayerBlob> layers;
  layers.push_back(Loaded("sha256:eager"));
  layers.push_back(LayerBlob{"sha256:lazy", nullptr, nullptr, kBytes.size()});
  std::vector<LayerLoader> loaders(2);
  loaders[1] = [&](const std::atomic<bool>*) -> Result<LayerBlob> {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // others arrive while it loads
    return Loaded("");
  };
  ImageContent content(std::move(layers), std::move(loaders));
  EXPECT_TRUE(content.layer(0).checkpoints);
  EXPECT_FALSE(content.layer(1).checkpoints) << "loaded before its first use";
  EXPECT_EQ(content.layer(1).digest, "sha256:lazy");
  EXPECT_EQ(content.layer(1).blob_size, kBytes.size());

  std::vector<std::thread> threads;
  std::atomic<int> right{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto reader = content.NewReader(1);
      std::string out(kBytes.size(), '\0');
      size_t n = 0;
      Status st = reader->Read(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()), &n);
      if (st.ok() && n == kBytes.size() && out == kBytes) ++right;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(right.load(), 8);
  EXPECT_TRUE(content.Load(1).ok());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(content.layer(1).digest, "sha256:lazy") << "the loader's empty digest must not replace the layer's";
  EXPECT_TRUE(content.Load(0).ok());
}

TEST(ImageContentLazy, AFailedLoadSticksAndItsReadersReturnIt) {
  int calls = 0;
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:bad", nullptr, nullptr, 1});
  layers.push_back(Loaded("sha256:good"));
  std::vector<LayerLoader> loaders(2);
  loaders[0] = [&](const std::atomic<bool>*) -> Result<LayerBlob> {
    ++calls;
    return Status::Corruption("blob sha256:bad does not match its digest");
  };
  ImageContent content(std::move(layers), std::move(loaders));
  for (int i = 0; i < 3; ++i) {
    Status st = content.Load(0);
    EXPECT_EQ(st.code(), ErrorCode::kCorruption);
    EXPECT_NE(st.message().find("does not match its digest"), std::string::npos) << st.message();
    auto reader = content.NewReader(0);
    uint8_t buf[8];
    size_t n = 99;
    st = reader->Read(0, buf, &n);
    EXPECT_EQ(st.code(), ErrorCode::kCorruption);
    EXPECT_EQ(n, 0u);
  }
  EXPECT_EQ(calls, 1) << "a failed load is not tried again per read";
  EXPECT_FALSE(content.layer(0).checkpoints);
  // The other layer reads on.
  auto reader = content.NewReader(1);
  std::string out(4, '\0');
  size_t n = 0;
  ASSERT_TRUE(reader->Read(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), 4), &n).ok());
  EXPECT_EQ(out, kBytes.substr(0, 4));
}

TEST(ImageContentLazy, ALoaderThatThrowsOrReturnsNothingFailsTheLayer) {
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:throws", nullptr, nullptr, 1});
  layers.push_back(LayerBlob{"sha256:empty", nullptr, nullptr, 1});
  std::vector<LayerLoader> loaders(2);
  loaders[0] = [](const std::atomic<bool>*) -> Result<LayerBlob> { throw std::bad_alloc(); };
  loaders[1] = [](const std::atomic<bool>*) -> Result<LayerBlob> { return LayerBlob{}; };
  ImageContent content(std::move(layers), std::move(loaders));
  Status a = content.Load(0);
  EXPECT_FALSE(a.ok());
  EXPECT_NE(a.message().find("sha256:throws"), std::string::npos) << a.message();
  Status b = content.Load(1);
  EXPECT_EQ(b.code(), ErrorCode::kCorruption);
  EXPECT_NE(b.message().find("sha256:empty"), std::string::npos) << b.message();
  EXPECT_FALSE(content.layer(1).checkpoints);
}

TEST(ImageContentLazy, ALoadGivenUpWhenCancelledIsNotKept) {
  // A mount stopping cancels a load (an index built again in memory); that
  // is not the layer's failure, and a later Load runs the loader again.
  std::atomic<int> calls{0};
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:lazy", nullptr, nullptr, kBytes.size()});
  std::vector<LayerLoader> loaders(1);
  loaders[0] = [&](const std::atomic<bool>* cancel) -> Result<LayerBlob> {
    ++calls;
    if (cancel != nullptr && cancel->load()) return Status::Error(ErrorCode::kAborted, "cancelled");
    return Loaded("");
  };
  ImageContent content(std::move(layers), std::move(loaders));
  std::atomic<bool> cancel{true};
  EXPECT_EQ(content.Load(0, &cancel).code(), ErrorCode::kAborted);
  EXPECT_FALSE(content.layer(0).checkpoints);
  EXPECT_TRUE(content.Load(0).ok());
  EXPECT_EQ(calls.load(), 2);
  EXPECT_TRUE(content.layer(0).checkpoints);
  EXPECT_TRUE(content.Load(0, &cancel).ok()) << "a loaded layer stays loaded";
  EXPECT_EQ(calls.load(), 2);
}

TEST(ImageContentLazy, EagerLayersKnowTheirBlobSize) {
  std::vector<LayerBlob> layers;
  layers.push_back(Loaded("sha256:eager"));
  ImageContent content(std::move(layers));
  EXPECT_EQ(content.layer(0).blob_size, kBytes.size());
}

}  // namespace
}  // namespace lazyroot
