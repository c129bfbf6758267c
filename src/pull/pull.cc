// The pull pipeline.
//
// One pass per layer: bytes arrive from the source and go, in the same
// callback, to SHA-256, to tmp/<hex>.partial and to the layer consumer (the
// indexer; on a thread of its own behind a bounded queue of a few MiB once a
// core is free, src/pull/threaded_consumer.h). So a slow disk or a slow
// indexer slows the download instead of growing memory. Layers run on `jobs`
// threads; the first error stops the others at their next chunk.
//
// Nothing reaches blobs/ until every layer is verified: each verified
// download waits in tmp/ and all are renamed in at the end, followed by the
// config, the manifest(s) and the image record. So a failed pull leaves the
// store as it was, and a retried one finds its complete downloads in tmp/
// (re-hashed from disk, never trusted blindly). A per-blob flock makes two
// processes pulling the same image download each blob once: the second waits,
// then finds the first one's verified partial and re-hashes it.
#include "src/pull/pull.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "index/blob_hasher.h"
#include "index/byte_source.h"
#include "index/exception_status.h"
#include "index/sha256.h"
#include "index/worker_threads.h"
#include "src/store/index_consumer.h"
#include "src/image/manifest.h"
#include "src/image/docker_archive.h"
#include "src/image/oci_layout.h"
#include "src/registry/mirrored_source.h"
#include "src/store/test_pause.h"
#include "src/pull/threaded_consumer.h"

namespace lazyroot {
namespace {

constexpr int kMaxResumes = 5;
// A download asks the kernel to start writing back every this many bytes.
constexpr uint64_t kWritebackBytes = 8 << 20;

std::string Short(const std::string& digest) { return digest.substr(0, 7 + 12); }

// Writes all of bytes to fd.
Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// fsync(fd) on a thread of its own, so that the wait for the disk overlaps
// the CPU work that follows; inline if no thread can be started. Joined by
// Wait and by the destructor, on every path (declare it after what closes fd).
class BackgroundFsync {
 public:
  BackgroundFsync(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
    try {
      thread_ = std::thread([this] { Sync(); });
    } catch (const std::exception&) {  // EAGAIN, out of memory: slower, not an error
      Sync();
    }
  }
  ~BackgroundFsync() {
    if (thread_.joinable()) thread_.join();
  }
  BackgroundFsync(const BackgroundFsync&) = delete;
  BackgroundFsync& operator=(const BackgroundFsync&) = delete;

  Status Wait() {
    if (thread_.joinable()) thread_.join();
    return err_ == 0 ? Status::Ok() : Status::FromErrno("fsync " + path_, err_);
  }

 private:
  void Sync() { err_ = ::fsync(fd_) == 0 ? 0 : errno; }

  const int fd_;
  const std::string path_;
  int err_ = 0;  // the thread's until joined
  std::thread thread_;
};

struct LayerJob {
  const Layer* layer;
  size_t position;
  std::string diff_id;
};

class LayerDownloader {
 public:
  // running: how many layers the pull's threads are on now.
  LayerDownloader(Store& store, ImageSource& source, const PullOptions& options, std::atomic<bool>& abort,
                  std::atomic<int>& running)
      : store_(store), source_(source), options_(options), abort_(abort), running_(running) {}

  // Downloads and verifies one layer into tmp/ (or finds it in the store).
  Status Run(const LayerJob& job, uint64_t* fetched_bytes, bool* fetched) {
    const Descriptor& d = job.layer->descriptor;
    LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, store_.LockBlob(d.digest));
    if (store_.HasBlob(d.digest)) {
      if (options_.progress) options_.progress->BlobDone(d.digest, static_cast<uint64_t>(d.size), true);
      return Status::Ok();
    }
    Status st = Download(job, fetched_bytes, fetched, /*allow_partial=*/true);
    if (st.code() == ErrorCode::kCorruption && resumed_) {
      // A resumed download that fails its digest may have a bad prefix on
      // disk: start over once from zero (moby does the same).
      if (options_.progress) options_.progress->Note("layer " + Short(d.digest) + ": digest mismatch after resume; downloading again");
      ::unlink(store_.PartialPath(d.digest).c_str());
      st = Download(job, fetched_bytes, fetched, /*allow_partial=*/false);
    }
    return st;
  }

 private:
  Status Download(const LayerJob& job, uint64_t* fetched_bytes, bool* fetched, bool allow_partial) {
    const Descriptor& d = job.layer->descriptor;
    const uint64_t size = static_cast<uint64_t>(d.size);
    const std::string path = store_.PartialPath(d.digest);
    resumed_ = false;
    // Never through a symlink: a partial that is one (it is no download of
    // ours) would have the pull truncate and write a file outside the store.
    // It is replaced; we hold the blob's lock, so nobody else writes it.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP && ::unlink(path.c_str()) == 0) {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    if (fd < 0) return Status::FromErrno("open " + path, errno);
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};

    std::optional<BlobHasher> hash;  // the blob's digest, and its chunk table for the consumer
    std::unique_ptr<LayerConsumer> consumer;
    // A consumer error (say, gzip garbage) is held until the digest is
    // known: on tampered bytes "digest mismatch" is the true diagnosis.
    Status consumer_status;
    auto feed = [&](std::span<const uint8_t> chunk) {
      if (consumer && consumer_status.ok()) consumer_status = consumer->Consume(chunk);
    };
    auto core_free = [this] {
      static const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      return running_.load(std::memory_order_relaxed) < cores;
    };
    auto reset = [&]() -> Status {
      consumer.reset();
      consumer_status = Status::Ok();
      if (options_.consumer_factory) {
        LAZYROOT_ASSIGN_OR_RETURN(consumer, options_.consumer_factory(*job.layer, job.position, job.diff_id));
      }
      // Once a core has no layer of its own, the consumer (the inflate) gets
      // a thread, and this one keeps receiving, writing and hashing the blob;
      // with no consumer the blob's hashing gets the thread instead. Both
      // threads at once cost the blob hasher's copies for no gain (measured on
      // `debian`: 0.66 s against 0.64 s, CPU 0.99 s against 0.95 s).
      if (consumer) {
        consumer = std::make_unique<ThreadedConsumer>(std::move(consumer), ThreadedConsumer::kDefaultThreshold, core_free);
        hash.emplace(UINT64_MAX);
      } else {
        hash.emplace(BlobHasher::kDefaultThreshold, core_free);
      }
      return Status::Ok();
    };
    LAZYROOT_RETURN_IF_ERROR(reset());

    // Replay what an earlier, interrupted pull left on disk.
    uint64_t offset = 0;
    struct stat stt {};
    if (::fstat(fd, &stt) != 0) return Status::FromErrno("stat " + path, errno);
    if (!S_ISREG(stt.st_mode)) return Status::IoError(path + ": not a regular file; remove it (or run lazyroot gc)");
    uint64_t existing = static_cast<uint64_t>(stt.st_size);
    if (!allow_partial || existing > size) existing = 0;
    if (::ftruncate(fd, static_cast<off_t>(existing)) != 0) return Status::FromErrno("truncate " + path, errno);
    if (existing > 0) {
      std::vector<uint8_t> buf(1 << 20);
      while (offset < existing) {
        ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), existing - offset), static_cast<off_t>(offset));
        if (n <= 0) return Status::FromErrno("read " + path, n < 0 ? errno : EIO);
        std::span<const uint8_t> chunk(buf.data(), static_cast<size_t>(n));
        hash->Update(chunk);
        feed(chunk);
        offset += static_cast<uint64_t>(n);
      }
      resumed_ = true;
      if (options_.progress && offset < size) {
        options_.progress->Note("layer " + Short(d.digest) + ": resuming at byte " + std::to_string(offset));
      }
    }
    if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return Status::FromErrno("seek " + path, errno);
    uint64_t flushed = offset;  // writeback started up to here
    if (options_.progress) options_.progress->BlobStarted(d.digest, offset, size);

    for (int attempt = 0; offset < size; ++attempt) {
      uint64_t before = offset;
      uint64_t received = 0;  // this attempt's bytes (a restart from 0 may leave offset below before)
      auto on_start = [&](uint64_t actual) -> Status {
        if (actual == offset) return Status::Ok();
        // The source ignored our Range: drop what we had and take it from 0.
        if (options_.progress) options_.progress->Note("layer " + Short(d.digest) + ": server cannot resume; restarting");
        if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) return Status::FromErrno("truncate " + path, errno);
        offset = 0;
        resumed_ = false;
        return reset();
      };
      auto sink = [&](std::span<const uint8_t> bytes) -> Status {
        if (abort_.load(std::memory_order_relaxed) ||
            (options_.cancel != nullptr && options_.cancel->load(std::memory_order_relaxed))) {
          return Status::Aborted("cancelled");
        }
        if (offset + bytes.size() > size) {
          return Status::Corruption("size mismatch: more than the " + std::to_string(size) + " bytes the manifest declares");
        }
        LAZYROOT_RETURN_IF_ERROR(WriteAll(fd, bytes, path));
        if (offset + bytes.size() - flushed >= kWritebackBytes) {
          // Start the writeback of what is written (a hint: it does not
          // wait), so that the fsync before the publish finds little dirty.
          (void)::sync_file_range(fd, static_cast<off_t>(flushed), static_cast<off_t>(offset + bytes.size() - flushed),
                                  SYNC_FILE_RANGE_WRITE);
          flushed = offset + bytes.size();
        }
        hash->Update(bytes);
        feed(bytes);
        offset += bytes.size();
        received += bytes.size();
        *fetched_bytes += bytes.size();
        *fetched = true;
        if (options_.progress) options_.progress->BlobProgress(d.digest, offset, size);
        return Status::Ok();
      };
      Status st = source_.FetchBlob(d.digest, offset, on_start, sink);
      if (st.ok()) {
        if (offset < size) {
          return Status::Corruption("size mismatch: got " + std::to_string(offset) + " of " + std::to_string(size) + " bytes");
        }
        break;
      }
      if (st.code() != ErrorCode::kNetwork || attempt >= kMaxResumes || abort_.load()) return st;
      // No byte came: the HTTP client has already retried this failure (with
      // backoff, or as long as a 503's Retry-After asks); another round of
      // its retries would multiply that wait (6 x 4 x 30 s for a 503 with
      // Retry-After: 30). Resumes are for transfers cut short.
      if (received == 0) return st;
      if (options_.progress) {
        options_.progress->Note("layer " + Short(d.digest) + ": " + st.message() + "; resuming at byte " +
                                std::to_string(offset) + (offset > before ? "" : " (after a restart from 0)"));
      }
      resumed_ = resumed_ || offset > 0;
    }

    // The bytes reach the disk here, for each layer beside the others' work
    // (the writeback began during the download), rather than at the
    // publish, which renames the file without another fsync (the store's
    // rule, a complete fsynced file, holds: nothing writes it after this).
    // It waits for the disk while the digests and the index finish on the
    // CPU (the last layer's tail).
    BackgroundFsync sync(fd, path);
    BlobHasher::Digests blob = hash->Finish();
    const std::string& got = blob.digest;
    if (got != d.digest) {
      (void)sync.Wait();
      ::ftruncate(fd, 0);  // worthless: never resume from these bytes
      return Status::Corruption("digest mismatch (got " + got + ")");
    }
    LAZYROOT_RETURN_IF_ERROR(consumer_status);
    if (consumer) LAZYROOT_RETURN_IF_ERROR(consumer->Finish(std::move(blob.chunks)));
    LAZYROOT_RETURN_IF_ERROR(sync.Wait());
    if (options_.progress) options_.progress->BlobDone(d.digest, size, false);
    return Status::Ok();
  }

  Store& store_;
  ImageSource& source_;
  const PullOptions& options_;
  std::atomic<bool>& abort_;
  std::atomic<int>& running_;
  bool resumed_ = false;
};

// Reads a small blob into memory, verified against its descriptor (size
// first, against cap; then the bytes' size and digest). Nothing is stored.
Result<std::string> FetchBlobToMemory(ImageSource& source, const Descriptor& d, uint64_t cap) {
  if (d.size < 0 || static_cast<uint64_t>(d.size) > cap) {
    return Status::Corruption("size " + std::to_string(d.size) + " exceeds the limit of " + std::to_string(cap));
  }
  std::string body;
  Status st = source.FetchBlob(
      d.digest, 0,
      [&](uint64_t) {
        body.clear();
        return Status::Ok();
      },
      [&](std::span<const uint8_t> b) {
        if (body.size() + b.size() > static_cast<uint64_t>(d.size)) return Status::Corruption("larger than its declared size");
        body.append(reinterpret_cast<const char*>(b.data()), b.size());
        return Status::Ok();
      });
  LAZYROOT_RETURN_IF_ERROR(st);
  if (body.size() != static_cast<uint64_t>(d.size)) return Status::Corruption("size mismatch: got " + std::to_string(body.size()) + " bytes");
  std::string got = "sha256:" + Sha256::HexOf(std::string_view(body));
  if (got != d.digest) return Status::Corruption("digest mismatch (got " + got + ")");
  return body;
}

// The image manifest a reference names: the manifest itself, or the entry of
// an index for `platform`. Checked against the image-layers budget.
struct ResolvedManifest {
  FetchedManifest top, chosen;
  ManifestKind kind = ManifestKind::kManifest;
  std::vector<IndexEntry> index;  // the index's entries, when top is one
  ImageManifest manifest;
};

Result<ResolvedManifest> ResolveManifest(ImageSource& source, const Reference& ref, const PullOptions& options) {
  ResolvedManifest r;
  LAZYROOT_ASSIGN_OR_RETURN(r.top, source.GetManifest(ref.ManifestSelector()));
  const std::string from = " from " + source.Describe();
  auto top_kind = ClassifyManifest(r.top.content_type, r.top.body);
  if (!top_kind.ok()) return top_kind.status().WithContext("manifest " + r.top.digest + from);
  r.kind = *top_kind;
  r.chosen = r.top;
  if (r.kind == ManifestKind::kIndex) {
    auto entries = ParseIndex(r.top.body);
    if (!entries.ok()) return entries.status().WithContext("index " + r.top.digest + from);
    r.index = std::move(*entries);
    auto pick = SelectPlatform(r.index, options.platform);
    if (!pick.ok()) return pick.status();
    const IndexEntry& e = r.index[*pick];
    LAZYROOT_ASSIGN_OR_RETURN(r.chosen, source.GetManifest(e.digest));
    auto inner = ClassifyManifest(r.chosen.content_type.empty() ? e.media_type : r.chosen.content_type, r.chosen.body);
    if (!inner.ok()) return inner.status().WithContext("manifest " + r.chosen.digest + from);
    if (*inner != ManifestKind::kManifest) {
      return Status::Unsupported("manifest " + e.digest + ": nested index for platform " + e.platform.ToString() + " is not supported");
    }
  }
  auto manifest = ParseImageManifest(r.chosen.body);
  if (!manifest.ok()) return manifest.status().WithContext("manifest " + r.chosen.digest + from);
  r.manifest = std::move(*manifest);
  if (r.manifest.layers.size() > options.limits.image_layers) {
    return Status::LimitExceeded("manifest " + r.chosen.digest + from + ": " + std::to_string(r.manifest.layers.size()) +
                                 " layers, more than " + std::to_string(options.limits.image_layers) +
                                 " (limit image-layers; raise with --limit image-layers=N or LAZYROOT_LIMITS)");
  }
  return r;
}

// Fetches a small blob (the config) into memory, verified. Like layers, it
// is staged in tmp/ under the blob's lock, so a concurrent pull of the same
// image finds it there instead of downloading it again.
Result<std::string> FetchSmallBlob(Store& store, ImageSource& source, const Descriptor& d, uint64_t cap) {
  if (d.size < 0 || static_cast<uint64_t>(d.size) > cap) {
    return Status::Corruption("size " + std::to_string(d.size) + " exceeds the limit of " + std::to_string(cap));
  }
  LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, store.LockBlob(d.digest));
  if (store.HasBlob(d.digest)) {
    auto cached = store.ReadBlob(d.digest, cap);
    if (cached.ok()) return cached;
  }
  const std::string partial = store.PartialPath(d.digest);
  if (auto src = OpenFileByteSource(partial, "staged " + d.digest); src.ok() && (*src)->Size() == static_cast<uint64_t>(d.size)) {
    std::string staged(static_cast<size_t>(d.size), '\0');
    size_t n = 0;
    if ((*src)->ReadAt(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(staged.data()), staged.size()), &n).ok() &&
        n == staged.size() && "sha256:" + Sha256::HexOf(std::string_view(staged)) == d.digest) {
      return staged;
    }
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::string body, FetchBlobToMemory(source, d, cap));
  LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(partial, body));
  return body;
}

Result<PullResult> PullLocked(Store& store, ImageSource& source, const Reference& ref, const PullOptions& options) {
  PullResult result;
  ImageRecord& rec = result.record;
  rec.reference = ref.ToString();

  LAZYROOT_ASSIGN_OR_RETURN(ResolvedManifest resolved, ResolveManifest(source, ref, options));
  const std::string from = " from " + source.Describe();
  const ManifestKind kind = resolved.kind;
  if (kind == ManifestKind::kIndex) rec.index_digest = resolved.top.digest;
  rec.manifest_digest = resolved.chosen.digest;
  ImageManifest* manifest = &resolved.manifest;
  auto config_bytes = FetchSmallBlob(store, source, manifest->config, kMaxConfigBytes);
  if (!config_bytes.ok()) return config_bytes.status().WithContext("config " + manifest->config.digest + from);
  auto config = ParseImageConfig(*config_bytes);
  if (!config.ok()) return config.status().WithContext("config " + manifest->config.digest + from);
  if (config->diff_ids.size() != manifest->layers.size()) {
    return Status::Corruption("config " + manifest->config.digest + ": " + std::to_string(config->diff_ids.size()) +
                              " diff_ids for " + std::to_string(manifest->layers.size()) + " layers");
  }
  Platform got = NormalizePlatform(Platform{config->os, config->architecture, config->variant});
  rec.platform = got.ToString();
  if (kind == ManifestKind::kManifest && (got.os != options.platform.os || got.arch != options.platform.arch)) {
    if (options.platform_explicit) {
      return Status::NotFound("image is for " + got.ToString() + ", not the requested " + options.platform.ToString());
    }
    if (options.progress) options.progress->Note("image platform " + got.ToString() + " differs from this host's " + options.platform.ToString());
  }
  rec.config_digest = manifest->config.digest;
  rec.size = static_cast<uint64_t>(manifest->config.size);
  for (const Layer& l : manifest->layers) {
    rec.layer_digests.push_back(l.descriptor.digest);
    rec.size += static_cast<uint64_t>(l.descriptor.size);
  }
  if (options.progress) {
    options.progress->Resolved(rec.reference, rec.manifest_digest, rec.platform, static_cast<int>(manifest->layers.size()), rec.size);
  }

  // Layers: a bounded set of workers takes the next layer from a counter,
  // the largest first. The pull ends when its longest layer does, so that
  // one must not wait for a worker behind smaller ones (in manifest order
  // the biggest layer of the bench image started last and ran alone at the
  // end); the small ones fill in beside it. Publishing keeps manifest order.
  std::vector<LayerJob> jobs;
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    jobs.push_back(LayerJob{&manifest->layers[i], i, config->diff_ids[i]});
  }
  std::vector<size_t> order(jobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return jobs[a].layer->descriptor.size > jobs[b].layer->descriptor.size;
  });
  std::atomic<size_t> next{0};
  std::atomic<bool> abort{false};
  std::atomic<int> running{0};
  std::mutex mu;
  Status first_error;
  std::atomic<uint64_t> bytes_total{0};
  std::atomic<int> fetched_total{0};
  auto worker = [&] {
    // Named for perf and top; the main thread keeps the program's name.
    if (::gettid() != ::getpid()) pthread_setname_np(pthread_self(), "lz-layer");
    LayerDownloader dl(store, source, options, abort, running);
    for (size_t n; (n = next.fetch_add(1)) < jobs.size() && !abort.load();) {
      const size_t i = order[n];
      uint64_t bytes = 0;
      bool fetched = false;
      Status st;
      // An exception (bad_alloc in a consumer fed a hostile layer) must not
      // leave the thread: it fails this layer like any error.
      ++running;
      try {
        st = dl.Run(jobs[i], &bytes, &fetched);
      } catch (...) {
        st = CurrentExceptionStatus("layer " + jobs[i].layer->descriptor.digest);
      }
      --running;
      bytes_total += bytes;
      if (fetched) ++fetched_total;
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok() || first_error.code() == ErrorCode::kAborted) {
          const std::string ctx = "layer " + jobs[i].layer->descriptor.digest;
          first_error = st.message().starts_with(ctx) ? st : st.WithContext(ctx);
        }
        abort = true;
      }
    }
  };
  RunOnThreads(static_cast<unsigned>(std::max(1, std::min<int>(options.jobs, static_cast<int>(jobs.size())))),
               worker);
  if (!first_error.ok()) return first_error;
  result.bytes_fetched = bytes_total;
  result.blobs_fetched = fetched_total;
  TestPause("pull-downloaded");  // every layer verified in tmp/, nothing published yet

  // Publish: layers, then config and manifests, then the record. The blobs
  // are renamed into blobs/ in that order and their directory is fsynced
  // once, before the record (each fsync of it was a journal commit, ~3-8 ms,
  // on the tail of every pull); the record then names only durable blobs,
  // including any another pull renamed in before our HasBlob saw them.
  for (const LayerJob& j : jobs) {
    const std::string& digest = j.layer->descriptor.digest;
    LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, store.LockBlob(digest));
    // Its download fsynced it at its end (LayerDownloader::Download), and a
    // verified partial is not written again (another pull only re-reads it).
    Status st = store.CommitPartial(digest, DirSync::kCaller, /*fsynced=*/true);
    if (st.ok()) st = CommitStagedIndex(store, digest);
    if (!st.ok()) return st.WithContext("layer " + digest);
    // A layer that was already stored without an index (older lazyroot, a
    // failed index write) gets one now, from the blob on disk.
    if (options.consumer_factory && ::access(store.IndexPath(digest).c_str(), F_OK) != 0) {
      auto idx = LoadOrBuildLayerIndex(store, digest, j.diff_id, nullptr, options.limits);
      if (!idx.ok()) return idx.status();
    }
  }
  {
    // The config waits in tmp/, fsynced (FetchSmallBlob): moved in like a
    // layer rather than written and fsynced again, if it still holds the
    // verified bytes (else they are written from memory).
    const std::string& digest = manifest->config.digest;
    LAZYROOT_ASSIGN_OR_RETURN(FileLock lock, store.LockBlob(digest));
    const std::string partial = store.PartialPath(digest);
    if (store.HasBlob(digest)) {
      // A stored copy that does not verify (damaged on disk) is what made
      // FetchSmallBlob download it again: it is replaced, and the staged
      // copy goes (WriteBlob keeps a stored copy that holds these bytes).
      if (!store.ReadBlob(digest, kMaxConfigBytes).ok()) {
        Status st = store.WriteBlob(digest, *config_bytes, DirSync::kCaller);
        if (!st.ok()) return st.WithContext("config " + digest);
        ::unlink(partial.c_str());
      }
    } else {
      // Not followed: a symlink there is not the staged copy (CommitPartial refuses it).
      auto staged = ReadWholeFileAt(AT_FDCWD, partial, partial, kMaxConfigBytes);
      Status st;
      if (staged.ok() && *staged == *config_bytes) {
        // Staged by WriteFileAtomic (ours or another pull's): fsynced.
        st = store.CommitPartial(digest, DirSync::kCaller, /*fsynced=*/true);
      } else {
        st = store.WriteBlob(digest, *config_bytes, DirSync::kCaller);
        ::unlink(partial.c_str());
      }
      if (!st.ok()) return st.WithContext("config " + digest);
    }
  }
  LAZYROOT_RETURN_IF_ERROR(store.WriteBlob(resolved.chosen.digest, resolved.chosen.body, DirSync::kCaller));
  if (!rec.index_digest.empty()) {
    LAZYROOT_RETURN_IF_ERROR(store.WriteBlob(resolved.top.digest, resolved.top.body, DirSync::kCaller));
  }
  LAZYROOT_RETURN_IF_ERROR(store.SyncBlobDir());
  rec.pulled_at = static_cast<int64_t>(std::time(nullptr));
  LAZYROOT_RETURN_IF_ERROR(store.PutImage(rec));
  if (options.progress) options.progress->Finished(rec.manifest_digest);
  return result;
}

}  // namespace

Result<std::unique_ptr<ImageSource>> OpenImageSource(const Reference& ref, const RegistryOptions& options) {
  if (ref.transport == Reference::Transport::kOciLayout) return OpenOciLayout(ref.layout_dir, ref.tag);
  if (ref.transport == Reference::Transport::kOciArchive) return OpenOciArchive(ref.layout_dir, ref.tag);
  if (ref.transport == Reference::Transport::kDockerArchive) return OpenDockerArchive(ref.layout_dir, ref.archive_ref, options.policy.cancel);
  // Mirrors and rewrites from registries.conf / hosts.toml (src/registry/endpoints.h).
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<Endpoint> endpoints,
                            SelectEndpoints(ref, options.insecure || ref.plain_http, options.endpoints));
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<MirroredSource> source, MirroredSource::Open(std::move(endpoints), options));
  return std::unique_ptr<ImageSource>(std::move(source));
}

Result<PullResult> Pull(Store& store, const Reference& ref, const PullOptions& options) {
  const std::string what = "pull " + ref.ToString();
  FileLock lock;
  if (!options.store_locked) {
    auto locked = store.LockStore(false, [&] {
      if (options.progress) options.progress->Note("waiting for the store lock (gc or fsck --repair is running)");
    });
    if (!locked.ok()) return locked.status().WithContext(what);
    lock = std::move(*locked);
  }
  RegistryOptions registry = options.registry;
  // A cancel also ends a request that is waiting on a silent server.
  if (options.cancel != nullptr) registry.policy.cancel = options.cancel;
  if (!registry.warn && options.progress != nullptr) {
    // A library caller hears of a mirror passed over through its progress.
    registry.warn = [progress = options.progress](const std::string& text) { progress->Note("warning: " + text); };
  }
  auto source = OpenImageSource(ref, registry);
  if (!source.ok()) return source.status().WithContext(what);
  // Nothing is published before every layer is verified, so an exception
  // (out of memory) on the way leaves the store as it was.
  auto result = [&]() -> Result<PullResult> {
    try {
      return PullLocked(store, **source, ref, options);
    } catch (...) {
      return CurrentExceptionStatus("");
    }
  }();
  if (!result.ok()) return result.status().WithContext(what);
  return result;
}

Result<RemoteImage> InspectRemote(const Reference& ref, const PullOptions& options) {
  const std::string what = "inspect " + ref.ToString();
  auto source = OpenImageSource(ref, options.registry);
  if (!source.ok()) return source.status().WithContext(what);
  auto result = [&]() -> Result<RemoteImage> {
    LAZYROOT_ASSIGN_OR_RETURN(ResolvedManifest resolved, ResolveManifest(**source, ref, options));
    RemoteImage r;
    r.reference = ref.ToString();
    r.manifest_digest = resolved.chosen.digest;
    if (resolved.kind == ManifestKind::kIndex) r.index_digest = resolved.top.digest;
    for (const IndexEntry& e : resolved.index) r.platforms.push_back(e.platform);
    r.manifest = std::move(resolved.manifest);
    r.media_type = r.manifest.media_type;
    const std::string from = " from " + (*source)->Describe();
    auto config = FetchBlobToMemory(**source, r.manifest.config, kMaxConfigBytes);
    if (!config.ok()) return config.status().WithContext("config " + r.manifest.config.digest + from);
    r.config_bytes = std::move(*config);
    auto parsed = ParseImageConfig(r.config_bytes);
    if (!parsed.ok()) return parsed.status().WithContext("config " + r.manifest.config.digest + from);
    r.config = std::move(*parsed);
    return r;
  }();
  if (!result.ok()) return result.status().WithContext(what);
  return result;
}

}  // namespace lazyroot
