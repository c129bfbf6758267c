// StreamCache over lazily opened layers (a mount's): nothing is loaded when
// the cache is made, StartWarmUp loads every layer without a read, a read
// loads its own layer if it comes first, and a layer that cannot load fails
// its reads with the load's error while the others read on.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fs/stream_cache.h"

namespace lazyroot {
namespace {

const std::string kBytes = "bytes of a plain layer that is loaded lazily by the mount";

LayerBlob Plain() {
  auto table = std::make_shared<CheckpointTable>();
  table->compression = Compression::kNone;
  table->compressed_size = table->uncompressed_size = kBytes.size();
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(kBytes.data()), kBytes.size());
  return LayerBlob{"", MemoryByteSource(bytes, "plain"), table};
}

struct Counted {
  std::shared_ptr<const ImageContent> content;
  std::shared_ptr<std::vector<std::atomic<int>>> calls;
};

// n lazy layers; layer `bad` (if < n) fails to load.
Counted LazyContent(size_t n, size_t bad = SIZE_MAX) {
  auto calls = std::make_shared<std::vector<std::atomic<int>>>(n);
  std::vector<LayerBlob> layers;
  std::vector<LayerLoader> loaders;
  for (size_t i = 0; i < n; ++i) {
    layers.push_back(LayerBlob{"sha256:layer" + std::to_string(i), nullptr, nullptr, kBytes.size()});
    loaders.push_back([calls, i, bad](const std::atomic<bool>*) -> Result<LayerBlob> {
      ++(*calls)[i];
      if (i == bad) return Status::Corruption("layer index of layer " + std::to_string(i) + " is damaged");
      return Plain();
    });
  }
  return {std::make_shared<const ImageContent>(std::move(layers), std::move(loaders)), calls};
}

Status ReadAll(StreamCache& cache, uint32_t layer, std::string* out) {
  out->assign(kBytes.size(), '\0');
  size_t n = 0;
  Status st = cache.Read(layer, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out->data()), out->size()), &n);
  out->resize(n);
  return st;
}

TEST(StreamCacheLazy, NothingLoadsUntilAReadOrTheWarmUp) {
  Counted c = LazyContent(3);
  StreamCache cache(c.content, StreamCacheOptions{});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*c.calls)[i].load(), 0) << "layer " << i << " loaded at construction";
  std::string got;
  ASSERT_TRUE(ReadAll(cache, 1, &got).ok());
  EXPECT_EQ(got, kBytes);
  EXPECT_EQ((*c.calls)[0].load(), 0);
  EXPECT_EQ((*c.calls)[1].load(), 1);
  cache.StartWarmUp();
  cache.StartWarmUp();  // once
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (((*c.calls)[0].load() == 0 || (*c.calls)[2].load() == 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*c.calls)[i].load(), 1) << "layer " << i;
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(ReadAll(cache, i, &got).ok());
    EXPECT_EQ(got, kBytes);
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*c.calls)[i].load(), 1) << "layer " << i << " loaded twice";
}

TEST(StreamCacheLazy, ALayerThatCannotLoadFailsItsReadsOnly) {
  Counted c = LazyContent(2, /*bad=*/0);
  StreamCache cache(c.content, StreamCacheOptions{});
  cache.StartWarmUp();
  std::string got;
  for (int i = 0; i < 3; ++i) {
    Status st = ReadAll(cache, 0, &got);
    EXPECT_EQ(st.code(), ErrorCode::kCorruption);
    EXPECT_NE(st.message().find("layer index of layer 0 is damaged"), std::string::npos) << st.message();
  }
  ASSERT_TRUE(ReadAll(cache, 1, &got).ok());
  EXPECT_EQ(got, kBytes);
  EXPECT_EQ((*c.calls)[0].load(), 1);
}

TEST(StreamCacheLazy, DestroyedWhileWarmingUp) {
  // The warm-up thread is joined by the destructor, whatever it was doing.
  for (int i = 0; i < 20; ++i) {
    Counted c = LazyContent(8);
    StreamCache cache(c.content, StreamCacheOptions{});
    cache.StartWarmUp();
  }
}

TEST(StreamCacheLazy, DestroyedWhileALayerLoadsTellsTheLoadToStop) {
  // umount waits for the mount's daemon, which joins the warm-up thread:
  // a load that indexes a large blob again in memory (its index damaged)
  // must be told to stop, not waited for to the end.
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"sha256:slow", nullptr, nullptr, kBytes.size()});
  std::vector<LayerLoader> loaders;
  loaders.push_back([started, cancelled](const std::atomic<bool>* cancel) -> Result<LayerBlob> {
    started->store(true);
    // Polls the way the indexer's blob reads do; gives up on its own only
    // after a long while, so that a cache that does not cancel fails the
    // test instead of hanging it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (cancel != nullptr && cancel->load()) {
        cancelled->store(true);
        return Status::Error(ErrorCode::kAborted, "cancelled");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status::Corruption("the load was never told to stop");
  });
  auto content = std::make_shared<const ImageContent>(std::move(layers), std::move(loaders));
  {
    StreamCache cache(content, StreamCacheOptions{});
    cache.StartWarmUp();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!started->load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(started->load()) << "the warm-up did not start the load";
  }
  EXPECT_TRUE(cancelled->load()) << "the destructor waited for the load instead of cancelling it";
}

}  // namespace
}  // namespace lazyroot
