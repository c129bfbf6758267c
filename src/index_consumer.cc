#include "src/index_consumer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "index/byte_source.h"
#include "index/layer_indexer.h"

namespace lazyroot {
namespace {

class IndexingConsumer final : public LayerConsumer {
 public:
  IndexingConsumer(Store& store, const Layer& layer, std::string diff_id)
      : store_(store), layer_(layer), diff_id_(std::move(diff_id)) {}

  Status Consume(std::span<const uint8_t> bytes) override {
    if (!indexer_) {
      // Trust the bytes over the media type (containerd sniffs too).
      Compression c = bytes.size() >= 4 ? SniffCompression(bytes) : layer_.compression;
      indexer_ = std::make_unique<LayerIndexer>(layer_.descriptor.digest, c, diff_id_);
    }
    return indexer_->Consume(bytes);
  }

  Status Finish() override {
    if (!indexer_) indexer_ = std::make_unique<LayerIndexer>(layer_.descriptor.digest, layer_.compression, diff_id_);
    LAZYROOT_ASSIGN_OR_RETURN(LayerIndex idx, indexer_->Finish());
    return WriteFileAtomic(StagedIndexPath(store_, layer_.descriptor.digest), idx.Serialize());
  }

 private:
  Store& store_;
  const Layer& layer_;
  std::string diff_id_;
  std::unique_ptr<LayerIndexer> indexer_;
};

}  // namespace

LayerConsumerFactory MakeIndexingConsumerFactory(Store& store) {
  return [&store](const Layer& layer, size_t, const std::string& diff_id) -> Result<std::unique_ptr<LayerConsumer>> {
    return std::unique_ptr<LayerConsumer>(new IndexingConsumer(store, layer, diff_id));
  };
}

std::string StagedIndexPath(const Store& store, const std::string& blob_digest) {
  return store.TempDir() + "/" + blob_digest.substr(7) + ".index";
}

Status CommitStagedIndex(Store& store, const std::string& blob_digest) {
  std::string staged = StagedIndexPath(store, blob_digest);
  if (::rename(staged.c_str(), store.IndexPath(blob_digest).c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("layer " + blob_digest + ": publish index", errno);
  }
  return Status::Ok();
}

Result<LayerIndex> LoadOrBuildLayerIndex(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                         bool* rebuilt) {
  if (rebuilt) *rebuilt = false;
  const std::string path = store.IndexPath(blob_digest);
  auto bytes = ReadWholeFile(path, uint64_t{1} << 34);
  if (bytes.ok()) {
    auto idx = LayerIndex::Parse(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()), path, blob_digest);
    if (idx.ok() && (diff_id.empty() || idx->diff_id == diff_id)) return idx;
    if (!idx.ok()) std::fprintf(stderr, "lazyroot: %s; rebuilding it from the blob\n", idx.status().message().c_str());
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> blob,
                            OpenFileByteSource(store.BlobPath(blob_digest), "blob " + blob_digest));
  uint8_t head[4] = {};
  size_t n = 0;
  LAZYROOT_RETURN_IF_ERROR(blob->ReadAt(0, head, &n));
  LAZYROOT_ASSIGN_OR_RETURN(LayerIndex idx,
                            IndexBlob(*blob, blob_digest, SniffCompression(std::span<const uint8_t>(head, n)), diff_id));
  LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(path, idx.Serialize()));
  if (rebuilt) *rebuilt = true;
  return idx;
}

Result<CheckpointTable> LoadLayerCheckpoints(Store& store, const std::string& blob_digest, const std::string& diff_id) {
  const std::string path = store.IndexPath(blob_digest);
  auto bytes = ReadWholeFile(path, uint64_t{1} << 34);
  if (bytes.ok()) {
    std::string got_diff_id;
    auto table = LayerIndex::ParseCheckpoints(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()), path, blob_digest,
        &got_diff_id);
    if (table.ok() && (diff_id.empty() || got_diff_id == diff_id)) return table;
  }
  LAZYROOT_ASSIGN_OR_RETURN(LayerIndex idx, LoadOrBuildLayerIndex(store, blob_digest, diff_id, nullptr));
  return std::move(idx.checkpoints);
}

}  // namespace lazyroot
