#include "src/store/open_image.h"
#include "index/worker_threads.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <system_error>
#include <thread>

#include "index/exception_status.h"
#include "index/merge.h"
#include "index/sha256.h"
#include "index/verified_source.h"
#include "src/store/index_consumer.h"
#include "src/store/test_pause.h"
#include "src/image/manifest.h"

namespace lazyroot {
namespace {

Result<ImageTree> BuildTree(Store& store, const ImageRecord& record, const std::vector<std::string>& diff_ids,
                            const Limits& limits, std::vector<std::shared_ptr<const CheckpointTable>>* tables,
                            std::vector<std::shared_ptr<const ChunkDigests>>* chunks) {
  const size_t n = record.layer_digests.size();
  // Each layer's entries go straight from its index file into the builder,
  // never all held at once. A layer index found corrupt only after some of
  // its entries were applied has been rebuilt from its blob: the merge starts
  // over (once per such layer at most, since a rebuilt index is sound).
  for (size_t attempt = 0;; ++attempt) {
    TreeBuilder builder(limits);  // keeps to the image-wide budgets as it applies the entries
    builder.SetImageDigest(record.manifest_digest);
    bool restart = false;
    Status st = Status::Ok();
    for (size_t i = 0; i < n && st.ok(); ++i) {
      const std::string& digest = record.layer_digests[i];
      st = builder.BeginLayer(static_cast<uint32_t>(i), digest);
      if (!st.ok()) break;
      ChunkDigests layer_chunks;
      auto table = ForEachStoredLayerEntry(
          store, digest, diff_ids[i], limits, [&](TarEntry& e) { return builder.Apply(e); }, &restart, &layer_chunks);
      if (!table.ok()) {
        st = table.status();
        break;
      }
      st = builder.EndLayer();
      (*tables)[i] = std::make_shared<const CheckpointTable>(std::move(*table));
      (*chunks)[i] = std::make_shared<const ChunkDigests>(std::move(layer_chunks));
    }
    if (restart && attempt < n) continue;
    LAZYROOT_RETURN_IF_ERROR(st);
    return std::move(builder).Finish("image " + record.reference);
  }
}

}  // namespace

Status VerifyStoredBlob(const Store& store, const std::string& digest) {
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> blob,
                            OpenFileByteSource(store.BlobPath(digest), "blob " + digest));
  Sha256 hash;
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0;;) {
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(blob->ReadAt(off, buf, &n));
    if (n == 0) break;
    hash.Update(std::span<const uint8_t>(buf.data(), n));
    off += n;
  }
  std::string got = "sha256:" + hash.FinishHex();
  if (got != digest) {
    return Status::Corruption("blob " + digest + ": the stored bytes hash to " + got +
                              " (changed on disk); run `lazyroot rm` on the image, `lazyroot gc`, and pull again");
  }
  return Status::Ok();
}

Status VerifyLayerBlobs(const Store& store, const std::vector<std::string>& digests) {
  std::vector<Status> results(digests.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < digests.size();) {
      // No exception may leave a thread (std::terminate): it fails this blob.
      try {
        results[i] = VerifyStoredBlob(store, digests[i]);
      } catch (...) {
        results[i] = CurrentExceptionStatus("blob " + digests[i]);
      }
    }
  };
  RunOnThreads(
      std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), static_cast<unsigned>(digests.size()))),
      worker);
  for (const Status& st : results) LAZYROOT_RETURN_IF_ERROR(st);
  return Status::Ok();
}

void PrefetchImageFiles(const Store& store, const ImageRecord& record) {
  // Not the tree: a mount reads it lazily, a few blocks at the start. Of
  // each layer index, what a mount of a merged tree reads.
  std::vector<std::string> read = {store.BlobPath(record.config_digest)};
  std::vector<std::string> look_up, indexes;
  for (const std::string& digest : record.layer_digests) {
    indexes.push_back(store.IndexPath(digest));
    look_up.push_back(store.BlobPath(digest));
  }
  // Only the indexes' headers: a mount loads a layer's checkpoints at its
  // first read (OpenImageOptions::lazy_tables).
  PrefetchFiles(read, look_up, indexes, /*index_headers_only=*/true);
}

namespace {

// Loads a layer whose index only had its header read at open: its checkpoints
// and chunk digests (built from the blob in memory if the index is damaged
// now), then the blob opened at open, verified by those digests.
LayerLoader LazyLayerLoader(std::shared_ptr<const Store> store, std::string digest, std::string diff_id, Limits limits,
                            uint64_t blob_size, std::unique_ptr<ByteSource> blob) {
  auto held = std::make_shared<std::unique_ptr<ByteSource>>(std::move(blob));
  return [store = std::move(store), digest = std::move(digest), diff_id = std::move(diff_id), limits, blob_size,
          held](const std::atomic<bool>* cancel) -> Result<LayerBlob> {
    if (!*held) return Status::Corruption("layer " + digest + ": loaded twice");  // ImageContent loads once
    TestPause("mount-layer-load");  // the mount is ready, its index headers checked; nothing else read yet
    ChunkDigests chunks;
    LAZYROOT_ASSIGN_OR_RETURN(CheckpointTable table,
                              LoadLayerCheckpointsUnlocked(*store, digest, diff_id, limits, blob_size, &chunks, cancel));
    if ((*held)->Size() < table.compressed_size) {
      return Status::Corruption("blob " + digest + " is " + std::to_string((*held)->Size()) +
                                " bytes, its layer index describes " + std::to_string(table.compressed_size) +
                                " (truncated in the store?); pull the image again");
    }
    const uint64_t size = chunks.blob_size;
    return LayerBlob{digest, NewVerifiedByteSource(std::move(*held), std::make_shared<const ChunkDigests>(std::move(chunks))),
                     std::make_shared<const CheckpointTable>(std::move(table)), size};
  };
}

}  // namespace

Result<OpenedImage> OpenImage(Store& store, const ImageRecord& record, const OpenImageOptions& options) {
  const std::string what = "image " + record.reference;
  OpenedImage out;
  out.record = record;
  auto config_bytes = store.ReadBlob(record.config_digest, 8u << 20);
  if (!config_bytes.ok()) return config_bytes.status().WithContext(what);
  auto config = ParseImageConfig(*config_bytes);
  if (!config.ok()) return config.status().WithContext(what + ": config " + record.config_digest);
  if (config->diff_ids.size() != record.layer_digests.size()) {
    return Status::Corruption(what + ": config has " + std::to_string(config->diff_ids.size()) + " diff_ids for " +
                              std::to_string(record.layer_digests.size()) + " layers");
  }
  // With a cold page cache: look up every file still needed, then ask for
  // the tree and every layer index at once, so they are read in parallel
  // while the first is validated. (After the small config read, which would
  // otherwise queue behind them.)
  const std::string tree_path = store.TreePath(record.manifest_digest);
  const bool tree_exists = ::access(tree_path.c_str(), F_OK) == 0;
  {
    // A lazy tree reads a few blocks now: asking for all of it would queue
    // the blocks it needs behind the rest. With a tree, the layer indexes
    // are read only in part (their checkpoints); without, the merge reads
    // them whole.
    std::vector<std::string> read, indexes;
    if (!options.lazy_tree) read.push_back(tree_path);
    std::vector<std::string> look_up;
    for (const std::string& digest : options.tree_only ? std::vector<std::string>() : record.layer_digests) {
      (tree_exists ? indexes : read).push_back(store.IndexPath(digest));
      look_up.push_back(store.BlobPath(digest));
    }
    PrefetchFiles(read, look_up, indexes, options.lazy_tables);
  }
  const size_t n = record.layer_digests.size();
  std::vector<std::shared_ptr<const CheckpointTable>> tables(n);
  std::vector<std::shared_ptr<const ChunkDigests>> chunks(n);
  // Lazily loaded layers (lazy_tables): the header of each index now, its
  // checkpoints at the layer's first read.
  std::vector<std::optional<LayerIndex>> summaries(n);

  // The persisted tree, if it is valid and made for this image from these
  // layers. It is a cache: anything else about it (an older format, another
  // image's tree, a damaged file) means building it again, never an error.
  // Opened while the layers' checkpoint tables load on the other cores:
  // reading and checking the tree (a 100k-file tree is ~10 MB) and each
  // index (a large layer's windows are several MB, SHA-256 checked) are
  // independent, and a cold mount waited for their sum. The tables are
  // wasted only when the tree must be built again, which loads them itself.
  bool have_tree = false;
  std::optional<Result<ImageTree>> opened_tree;
  // No tree yet (the first mount of a pull): the merge reads every index
  // anyway and keeps their tables, so none is loaded beside it.
  std::vector<std::optional<Status>> table_status(options.tree_only || !tree_exists ? 0 : n);
  std::vector<size_t> first_of(table_status.size());
  for (size_t i = 0; i < first_of.size(); ++i) {
    first_of[i] = i;
    for (size_t j = 0; j < i; ++j) {
      if (record.layer_digests[j] == record.layer_digests[i] && config->diff_ids[j] == config->diff_ids[i]) {
        first_of[i] = j;
        break;
      }
    }
  }
  {
    const size_t tasks = 1 + table_status.size();
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t t; (t = next.fetch_add(1)) < tasks;) {
        // No exception may leave a thread (std::terminate): it fails the task.
        if (t == 0) {
          try {
            if (tree_exists) {
              opened_tree.emplace(options.lazy_tree ? ImageTree::OpenFileLazy(tree_path)
                                                    : ImageTree::OpenFile(tree_path));
            }
          } catch (...) {
            opened_tree.emplace(CurrentExceptionStatus("image tree " + tree_path));
          }
          continue;
        }
        const size_t i = t - 1;
        if (first_of[i] != i) continue;  // the same layer twice: loaded (or rebuilt) once
        try {
          if (options.lazy_tables) {
            // Else (no index, a damaged header, another DiffID) loaded now, and rebuilt if need be.
            auto summary = ReadLayerIndexSummary(store, record.layer_digests[i], config->diff_ids[i]);
            if (summary.ok()) {
              summaries[i] = std::move(*summary);
              table_status[i] = Status::Ok();
              continue;
            }
          }
          ChunkDigests layer_chunks;
          auto table =
              LoadLayerCheckpoints(store, record.layer_digests[i], config->diff_ids[i], options.limits, &layer_chunks);
          if (!table.ok()) {
            table_status[i] = table.status();
            continue;
          }
          tables[i] = std::make_shared<const CheckpointTable>(std::move(*table));
          chunks[i] = std::make_shared<const ChunkDigests>(std::move(layer_chunks));
          table_status[i] = Status::Ok();
        } catch (...) {
          table_status[i] = CurrentExceptionStatus("layer " + record.layer_digests[i]);
        }
      }
    };
    RunOnThreads(std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), static_cast<unsigned>(tasks))),
                 worker);
    for (size_t i = 0; i < first_of.size(); ++i) {
      if (first_of[i] == i) continue;
      tables[i] = tables[first_of[i]];
      chunks[i] = chunks[first_of[i]];
      summaries[i] = summaries[first_of[i]];
      table_status[i] = table_status[first_of[i]];
    }
  }
  if (opened_tree) {
    auto& tree = *opened_tree;
    std::string why;
    if (!tree.ok()) {
      why = tree.status().message();
    } else if (tree->ImageDigest() != record.manifest_digest) {
      why = "made for image " + std::string(tree->ImageDigest()) + ", not " + record.manifest_digest;
    } else if (tree->layer_count() != n) {
      why = "made from other layers";
    } else {
      have_tree = true;
      for (uint32_t i = 0; i < n && have_tree; ++i) have_tree = tree->LayerDigest(i) == record.layer_digests[i];
      if (!have_tree) why = "made from other layers";
    }
    if (have_tree) {
      out.tree = std::make_shared<const ImageTree>(std::move(*tree));
    } else {
      std::fprintf(stderr, "lazyroot: %s: %s; rebuilding it\n", tree_path.c_str(), why.c_str());
    }
  }
  if (have_tree && options.tree_only) return out;
  if (have_tree) {
    for (size_t i = 0; i < n; ++i) {
      if (!table_status[i]->ok()) return table_status[i]->WithContext(what);
    }
  } else {
    auto tree = BuildTree(store, record, config->diff_ids, options.limits, &tables, &chunks);
    if (!tree.ok()) return tree.status().WithContext(what);
    auto bytes = tree->bytes();
    Status st = WriteFileAtomic(tree_path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    if (!st.ok()) {
      // The tree is a cache and this one is in memory: serve it, build it
      // again next time (a full or read-only store must not stop a mount).
      std::fprintf(stderr, "lazyroot: %s; serving the tree from memory\n", st.WithContext(what).message().c_str());
    }
    out.tree = std::make_shared<const ImageTree>(std::move(*tree));
    out.tree_built = true;
    if (options.tree_only) return out;
  }
  std::vector<LayerBlob> layers;
  std::vector<LayerLoader> loaders(n);
  std::shared_ptr<const Store> store_copy;  // for the loaders, which may outlive `store`
  for (size_t i = 0; i < n; ++i) {
    const std::string& digest = record.layer_digests[i];
    auto blob = OpenFileByteSource(store.BlobPath(digest), "blob " + digest);
    if (!blob.ok()) return blob.status().WithContext(what);
    if (!tables[i] && summaries[i]) {  // the tree was valid (a rebuilt tree loaded every table)
      if ((*blob)->Size() < summaries[i]->blob_size) {
        return Status::Corruption(what + ": blob " + digest + " is " + std::to_string((*blob)->Size()) +
                                  " bytes, its layer index says " + std::to_string(summaries[i]->blob_size) +
                                  " (truncated in the store?); pull the image again");
      }
      if (!store_copy) store_copy = std::make_shared<const Store>(store);
      loaders[i] = LazyLayerLoader(store_copy, digest, config->diff_ids[i], options.limits, summaries[i]->blob_size,
                                   std::move(*blob));
      layers.push_back(LayerBlob{digest, nullptr, nullptr, summaries[i]->blob_size});
      continue;
    }
    // Shorter than the stream its index describes: truncated in the store.
    // Said now, naming the blob, rather than as EIO for some reads later.
    if ((*blob)->Size() < tables[i]->compressed_size) {
      return Status::Corruption(what + ": blob " + digest + " is " + std::to_string((*blob)->Size()) +
                                " bytes, its layer index describes " + std::to_string(tables[i]->compressed_size) +
                                " (truncated in the store?); pull the image again");
    }
    // Every byte mount and extract read of the blob is checked against the
    // chunk digests the pull recorded while it verified the blob's digest.
    layers.push_back(
        LayerBlob{digest, NewVerifiedByteSource(std::move(*blob), chunks[i]), tables[i], chunks[i]->blob_size});
  }
  out.content = std::make_shared<const ImageContent>(std::move(layers), std::move(loaders));
  return out;
}

Result<std::vector<std::string>> ImageDiffIds(Store& store, const ImageRecord& record) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string config_bytes, store.ReadBlob(record.config_digest, kMaxConfigBytes));
  LAZYROOT_ASSIGN_OR_RETURN(ImageConfig config, ParseImageConfig(config_bytes));
  if (config.diff_ids.size() != record.layer_digests.size()) {
    return Status::Corruption("image " + record.reference + ": config has " + std::to_string(config.diff_ids.size()) +
                              " diff_ids for " + std::to_string(record.layer_digests.size()) + " layers");
  }
  return std::move(config.diff_ids);
}

}  // namespace lazyroot
