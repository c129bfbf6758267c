#include "src/store/index_consumer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <utility>
#include <map>
#include <mutex>

#include "index/byte_source.h"
#include "index/layer_indexer.h"

namespace lazyroot {
namespace {

// The entries and metadata bytes of each layer of one pull, by position in
// the manifest, updated as the layers stream in (a layer indexed again after
// a restarted download replaces its earlier count). Because layers being
// indexed in parallel count too, the image-wide budget also bounds what the
// pull's indexers hold together. Shared by the pull's layer threads.
class ImageTotals {
 public:
  explicit ImageTotals(const Limits& limits) : limits_(limits) {}
  Status Update(size_t position, uint64_t entries, uint64_t metadata) {
    std::lock_guard<std::mutex> lock(mu_);
    layers_[position] = {entries, metadata};
    uint64_t all_entries = 0, all_metadata = 0;
    for (const auto& [pos, t] : layers_) {
      all_entries += t.first;
      all_metadata += t.second;
    }
    return CheckBudget(limits_, "image", all_entries, all_metadata);
  }
  const Limits& limits() const { return limits_; }

 private:
  const Limits limits_;
  std::mutex mu_;
  std::map<size_t, std::pair<uint64_t, uint64_t>> layers_;
};

class IndexingConsumer final : public LayerConsumer {
 public:
  IndexingConsumer(Store& store, const Layer& layer, size_t position, std::string diff_id,
                   std::shared_ptr<ImageTotals> totals)
      : store_(store), layer_(layer), position_(position), diff_id_(std::move(diff_id)), totals_(std::move(totals)) {}

  Status Consume(std::span<const uint8_t> bytes) override {
    if (!indexer_) {
      // Trust the bytes over the media type (containerd sniffs too).
      Compression c = bytes.size() >= 4 ? SniffCompression(bytes) : layer_.compression;
      indexer_ = std::make_unique<LayerIndexer>(layer_.descriptor.digest, c, diff_id_, kDefaultSpanBytes,
                                                totals_->limits(), InflateEngine::kIsal, kDefaultFinePolicy,
                                                DeclaredSize());
    }
    LAZYROOT_RETURN_IF_ERROR(indexer_->Consume(bytes));
    return CountAgainstImage();
  }

  Status Finish(ChunkDigests chunks) override {
    if (!indexer_) {
      indexer_ = std::make_unique<LayerIndexer>(layer_.descriptor.digest, layer_.compression, diff_id_,
                                                kDefaultSpanBytes, totals_->limits(), InflateEngine::kIsal,
                                                kDefaultFinePolicy, DeclaredSize());
    }
    LAZYROOT_ASSIGN_OR_RETURN(std::string file, indexer_->FinishFile(std::move(chunks)));
    LAZYROOT_RETURN_IF_ERROR(CountAgainstImage());
    // tmp/ is not fsynced: the staged name matters only until this pull's
    // publish renames it into index/ (a crash before leaves it stale, and an
    // index that is lost or damaged is rebuilt from its blob, FORMAT.md).
    return WriteFileAtomic(StagedIndexPath(store_, layer_.descriptor.digest), file, 0644, DirSync::kCaller);
  }

 private:
  Status CountAgainstImage() {
    Status st = totals_->Update(position_, indexer_->entries(), indexer_->metadata_bytes());
    return st.ok() ? st : st.WithContext("layer " + layer_.descriptor.digest);
  }

  Store& store_;
  const Layer& layer_;
  size_t position_;
  std::string diff_id_;
  std::shared_ptr<ImageTotals> totals_;
  // The manifest's size for the blob (the pull refuses any other); 0 if it has none.
  uint64_t DeclaredSize() const { return layer_.descriptor.size > 0 ? static_cast<uint64_t>(layer_.descriptor.size) : 0; }
  std::unique_ptr<LayerIndexer> indexer_;
};

}  // namespace

LayerConsumerFactory MakeIndexingConsumerFactory(Store& store, const Limits& limits) {
  auto totals = std::make_shared<ImageTotals>(limits);
  return [&store, totals](const Layer& layer, size_t position,
                          const std::string& diff_id) -> Result<std::unique_ptr<LayerConsumer>> {
    return std::unique_ptr<LayerConsumer>(new IndexingConsumer(store, layer, position, diff_id, totals));
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

namespace {

// An index file past this is not one lazyroot wrote (the entry section's
// 4 GiB and a 1 TiB blob's chunk digests are far below it).
constexpr uint64_t kMaxIndexBytes = uint64_t{1} << 34;

uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// index/FORMAT.md "Layer index file": the file digest section (offset at
// 200, count at 192, 40 bytes each) ends the file.
uint64_t DeclaredIndexSize(const uint8_t* h) {
  const uint64_t off = LoadLe64(h + 200), count = LoadLe64(h + 192);
  if (count > (UINT64_MAX - off) / 40) return UINT64_MAX;
  return off + count * 40;
}

}  // namespace

Result<std::string> ReadLayerIndexFile(const std::string& path) {
  return ReadSelfSizedFile(path, kMaxIndexBytes, std::string_view("LZRLIDX\0", 8), 4, 304, DeclaredIndexSize);
}

namespace {

// pread of the stored index at path, for LayerIndex::ReadCheckpoints and
// ReadFileDigests: they read the header, then only the sections they use.
// The file is opened once, so every range comes from the same inode even if
// the path is replaced meanwhile (an atomic rewrite); one truncated under us
// reads short and is refused.
class IndexFileRanges {
 public:
  static Result<IndexFileRanges> Open(const std::string& path) {
    IndexFileRanges r;
    r.path_ = path;
    r.fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not hang us
    if (r.fd_ < 0) {
      const int err = errno;
      if (err == ENOENT) return Status::NotFound(path + " does not exist");
      return Status::FromErrno("open " + path, err);
    }
    struct stat st {};
    if (::fstat(r.fd_, &st) != 0) return Status::FromErrno("stat " + path, errno);
    if (!S_ISREG(st.st_mode)) return Status::Corruption(path + ": not a regular file");
    r.size_ = static_cast<uint64_t>(st.st_size);
    if (r.size_ > kMaxIndexBytes) return Status::Corruption(path + ": " + std::to_string(r.size_) + " bytes; not read");
    return r;
  }
  IndexFileRanges(IndexFileRanges&& o) noexcept
      : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)), size_(o.size_), bufs_(std::move(o.bufs_)) {}
  IndexFileRanges& operator=(IndexFileRanges&&) = delete;
  ~IndexFileRanges() {
    if (fd_ >= 0) ::close(fd_);
  }
  uint64_t size() const { return size_; }
  LayerIndexRangeReader Reader() {
    return [this](uint64_t offset, uint64_t length) -> Result<std::span<const uint8_t>> {
      // Only ranges ParseHeader bounded by size_ are asked for.
      if (offset > size_ || length > size_ - offset) return Status::Corruption(path_ + ": range beyond the file");
      std::string& buf = bufs_.emplace_back(static_cast<size_t>(length), '\0');
      for (size_t got = 0; got < buf.size();) {
        const ssize_t n = ::pread(fd_, buf.data() + got, buf.size() - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Status::FromErrno("read " + path_, errno);
        if (n == 0) return Status::Corruption(path_ + ": shorter than when opened; not read");
        got += static_cast<size_t>(n);
      }
      return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
    };
  }

 private:
  IndexFileRanges() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::deque<std::string> bufs_;  // a deque: spans into earlier reads stay valid
};

}  // namespace

namespace {

// The gzip pass, fine point policy and chunk size that made the stored
// index, if it is sound: zlib's and ISA-L's passes place different (equally
// valid) checkpoints, an index made before fine points has none and whole
// windows, one made before 32 KiB chunks has 64 KiB chunk digests, and a
// rebuild made to check the stored file (fsck) must be made the same way.
// Otherwise the pull's defaults.
struct StoredPass {
  InflateEngine engine = InflateEngine::kIsal;
  uint8_t fine_policy = kDefaultFinePolicy;
  uint32_t chunk_bytes = kDefaultChunkBytes;
};
StoredPass StoredIndexPass(const Store& store, const std::string& blob_digest, Compression compression) {
  const std::string path = store.IndexPath(blob_digest);
  auto file = IndexFileRanges::Open(path);
  if (!file.ok()) return {};
  ChunkDigests chunks;  // its size checked by ReadCheckpoints: a power of two in [4 KiB, 1 MiB]
  auto table = LayerIndex::ReadCheckpoints(file->size(), file->Reader(), path, blob_digest, nullptr, &chunks);
  if (!table.ok()) return {};
  StoredPass pass;
  pass.chunk_bytes = chunks.chunk_size;
  if (compression == Compression::kGzip) {
    pass.engine = table->made_by;
    pass.fine_policy = table->fine_policy;
  }
  return pass;
}

}  // namespace

namespace {

// A blob whose reads fail once *cancel is set: what stops an indexing pass
// between two reads.
class CancellableByteSource final : public ByteSource {
 public:
  CancellableByteSource(std::unique_ptr<ByteSource> inner, const std::atomic<bool>* cancel)
      : inner_(std::move(inner)), cancel_(cancel) {}
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    if (cancel_->load(std::memory_order_relaxed)) {
      *n = 0;
      return Status::Error(ErrorCode::kAborted, inner_->Name() + ": indexing it again was cancelled");
    }
    return inner_->ReadAt(offset, out, n);
  }
  uint64_t Size() const override { return inner_->Size(); }
  const std::string& Name() const override { return inner_->Name(); }

 private:
  std::unique_ptr<ByteSource> inner_;
  const std::atomic<bool>* cancel_;
};

}  // namespace

Result<std::string> BuildLayerIndexFile(const Store& store, const std::string& blob_digest, const std::string& diff_id,
                                        const Limits& limits, const std::atomic<bool>* cancel) {
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> blob,
                            OpenFileByteSource(store.BlobPath(blob_digest), "blob " + blob_digest));
  if (cancel != nullptr) blob = std::make_unique<CancellableByteSource>(std::move(blob), cancel);
  uint8_t head[4] = {};
  size_t n = 0;
  LAZYROOT_RETURN_IF_ERROR(blob->ReadAt(0, head, &n));
  const Compression compression = SniffCompression(std::span<const uint8_t>(head, n));
  const StoredPass pass = StoredIndexPass(store, blob_digest, compression);
  return IndexBlobFile(*blob, blob_digest, compression, diff_id, limits, pass.engine, pass.fine_policy,
                       pass.chunk_bytes);
}

namespace {

std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Indexes the stored blob again (checking diff_id, under `limits`), stores
// the index file and returns its bytes.
Result<std::string> RebuildLayerIndexFile(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                          const Limits& limits) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string file, BuildLayerIndexFile(store, blob_digest, diff_id, limits));
  LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(store.IndexPath(blob_digest), file));
  return file;
}

}  // namespace

Result<LayerIndex> LoadOrBuildLayerIndex(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                         bool* rebuilt, const Limits& limits) {
  if (rebuilt) *rebuilt = false;
  const std::string path = store.IndexPath(blob_digest);
  {
    auto bytes = ReadLayerIndexFile(path);
    if (bytes.ok()) {
      auto idx = LayerIndex::Parse(AsBytes(*bytes), path, blob_digest);
      if (idx.ok() && (diff_id.empty() || idx->diff_id == diff_id)) return idx;
      if (!idx.ok()) std::fprintf(stderr, "lazyroot: %s; rebuilding it from the blob\n", idx.status().message().c_str());
    } else if (bytes.status().code() != ErrorCode::kNotFound) {
      std::fprintf(stderr, "lazyroot: layer index %s; rebuilding it from the blob\n", bytes.status().message().c_str());
    }
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::string file, RebuildLayerIndexFile(store, blob_digest, diff_id, limits));
  if (rebuilt) *rebuilt = true;
  return LayerIndex::Parse(AsBytes(file), path, blob_digest);
}

Result<CheckpointTable> ForEachStoredLayerEntry(Store& store, const std::string& blob_digest,
                                                const std::string& diff_id, const Limits& limits,
                                                const std::function<Status(TarEntry&)>& fn, bool* restart,
                                                ChunkDigests* chunks) {
  *restart = false;
  const std::string path = store.IndexPath(blob_digest);
  {
    auto bytes = ReadLayerIndexFile(path);
    if (bytes.ok()) {
      LayerIndex header;
      uint64_t seen = 0;
      bool fn_failed = false, foreign = false;
      // The header is filled before the first entry: an index made for
      // another DiffID is refused before fn sees any of it.
      auto owned = [&] { return diff_id.empty() || header.diff_id == diff_id; };
      Status st = LayerIndex::ForEachEntry(AsBytes(*bytes), path, blob_digest, &header, [&](TarEntry& e) -> Status {
        if (seen == 0 && !owned()) {
          foreign = true;
          return Status::Corruption("layer index " + path + ": made for DiffID " + header.diff_id);
        }
        ++seen;
        Status s = fn(e);
        fn_failed = !s.ok();
        return s;
      });
      if (st.ok() && owned()) {
        if (chunks) *chunks = std::move(header.chunks);
        return std::move(header.checkpoints);
      }
      if (fn_failed) return st;
      if (!st.ok() && !foreign) {
        std::fprintf(stderr, "lazyroot: %s; rebuilding it from the blob\n", st.message().c_str());
      }
      if (seen > 0) {
        // fn has seen entries of a file that turned out corrupt: what it
        // built from them is not to be trusted, so the caller starts over.
        LAZYROOT_RETURN_IF_ERROR(RebuildLayerIndexFile(store, blob_digest, diff_id, limits).status());
        *restart = true;
        return st;
      }
    } else if (bytes.status().code() != ErrorCode::kNotFound) {
      std::fprintf(stderr, "lazyroot: layer index %s; rebuilding it from the blob\n", bytes.status().message().c_str());
    }
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::string file, RebuildLayerIndexFile(store, blob_digest, diff_id, limits));
  LayerIndex header;
  LAZYROOT_RETURN_IF_ERROR(LayerIndex::ForEachEntry(AsBytes(file), path, blob_digest, &header, fn));
  if (chunks) *chunks = std::move(header.chunks);
  return std::move(header.checkpoints);
}

Result<CheckpointTable> LoadLayerCheckpoints(Store& store, const std::string& blob_digest, const std::string& diff_id,
                                             const Limits& limits, ChunkDigests* chunks) {
  const std::string path = store.IndexPath(blob_digest);
  // The header and the checkpoint and chunk digest sections only: what the
  // mount of a merged tree needs, whatever the layer's file count.
  if (auto file = IndexFileRanges::Open(path); file.ok()) {
    std::string got_diff_id;
    auto table = LayerIndex::ReadCheckpoints(file->size(), file->Reader(), path, blob_digest, &got_diff_id, chunks);
    if (table.ok() && (diff_id.empty() || got_diff_id == diff_id)) return table;
  }
  LAZYROOT_ASSIGN_OR_RETURN(LayerIndex idx, LoadOrBuildLayerIndex(store, blob_digest, diff_id, nullptr, limits));
  if (chunks) *chunks = std::move(idx.chunks);
  return std::move(idx.checkpoints);
}

Result<LayerIndex> ReadLayerIndexSummary(const Store& store, const std::string& blob_digest,
                                         const std::string& diff_id) {
  const std::string path = store.IndexPath(blob_digest);
  LAZYROOT_ASSIGN_OR_RETURN(IndexFileRanges file, IndexFileRanges::Open(path));
  LAZYROOT_ASSIGN_OR_RETURN(LayerIndex summary, LayerIndex::ReadSummary(file.size(), file.Reader(), path, blob_digest));
  if (!diff_id.empty() && summary.diff_id != diff_id) {
    return Status::Corruption("layer index " + path + ": made for DiffID " + summary.diff_id + ", not " + diff_id);
  }
  return summary;
}

Result<CheckpointTable> LoadLayerCheckpointsUnlocked(const Store& store, const std::string& blob_digest,
                                                     const std::string& diff_id, const Limits& limits,
                                                     uint64_t blob_size, ChunkDigests* chunks,
                                                     const std::atomic<bool>* cancel) {
  const std::string path = store.IndexPath(blob_digest);
  Status why = Status::Ok();
  if (auto file = IndexFileRanges::Open(path); file.ok()) {
    // The header first: the sections it declares are read into memory, and
    // their size follows from the blob size it claims (the chunk digests, the
    // bound on the table), so that must be the stored blob's.
    auto summary = LayerIndex::ReadSummary(file->size(), file->Reader(), path, blob_digest);
    if (summary.ok() && summary->blob_size != blob_size) {
      why = Status::Corruption("layer index " + path + ": made for a blob of " + std::to_string(summary->blob_size) +
                               " bytes, not " + std::to_string(blob_size));
    } else if (!summary.ok()) {
      why = summary.status();
    } else {
      std::string got_diff_id;
      auto table = LayerIndex::ReadCheckpoints(file->size(), file->Reader(), path, blob_digest, &got_diff_id, chunks);
      if (table.ok() && (diff_id.empty() || got_diff_id == diff_id)) return table;
      why = table.ok() ? Status::Corruption("layer index " + path + ": made for DiffID " + got_diff_id) : table.status();
    }
  } else {
    why = file.status();
  }
  // Built in memory only: whoever holds no store lock must not write index/.
  std::fprintf(stderr, "lazyroot: %s; indexing the blob again for this mount (lazyroot fsck --repair stores it)\n",
               why.message().c_str());
  LAZYROOT_ASSIGN_OR_RETURN(std::string bytes, BuildLayerIndexFile(store, blob_digest, diff_id, limits, cancel));
  return LayerIndex::ParseCheckpoints(AsBytes(bytes), path, blob_digest, nullptr, chunks);
}

Result<std::vector<FileDigest>> LoadLayerFileDigests(Store& store, const std::string& blob_digest,
                                                     const std::string& diff_id, const Limits& limits) {
  const std::string path = store.IndexPath(blob_digest);
  if (auto file = IndexFileRanges::Open(path); file.ok()) {  // the header and the file digests only
    std::string got_diff_id;
    auto digests = LayerIndex::ReadFileDigests(file->size(), file->Reader(), path, blob_digest, &got_diff_id);
    if (digests.ok() && (diff_id.empty() || got_diff_id == diff_id)) return digests;
  }
  LAZYROOT_ASSIGN_OR_RETURN(LayerIndex idx, LoadOrBuildLayerIndex(store, blob_digest, diff_id, nullptr, limits));
  return std::move(idx.file_digests);
}

}  // namespace lazyroot
