// replay_reads: where a mount's cold random reads go, without FUSE. Replays
// reads (from `scripts/bench_reads.py plan DIR N`: "PATH OFFSET" a line, 4 KiB
// each) through a StreamCache over a stored layer, as a mount serves them:
// the blob verified against the index's chunk digests, fine pieces, the span
// cache. Run by hand on a store with one single-layer image pulled:
//   build/tests/replay_reads INDEX BLOB PLAN [chunk_bytes]
// Drops the blob from the page cache first (posix_fadvise DONTNEED), reads
// on this thread only (no read-ahead workers: their decoding would land in
// another thread's CPU time), and prints per read, for the reads in a file's
// first and second half (the bench's `large` files: text, then random
// bytes): this thread's CPU time, wall time, blob bytes read and verified,
// how many reads of the blob those took (each one a disk read on a cold page
// cache), bytes decoded. chunk_bytes: verify against chunk digests of that size,
// computed here, instead of the index's (what a smaller chunk would save).
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "fs/stream_cache.h"
#include "index/byte_source.h"
#include "index/layer_index.h"
#include "index/verified_source.h"

namespace {

using namespace lazyroot;

std::atomic<uint64_t> g_blob_bytes{0};
std::atomic<uint64_t> g_blob_reads{0};  // preads of the blob: on a cold page cache, disk reads

class Counting final : public ByteSource {
 public:
  explicit Counting(std::unique_ptr<ByteSource> inner) : inner_(std::move(inner)) {}
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    g_blob_bytes += out.size();
    ++g_blob_reads;
    return inner_->ReadAt(offset, out, n);
  }
  uint64_t Size() const override { return inner_->Size(); }
  const std::string& Name() const override { return inner_->Name(); }

 private:
  std::unique_ptr<ByteSource> inner_;
};

std::vector<uint8_t> ReadAll(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

double ThreadCpu() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: replay_reads INDEX BLOB PLAN [chunk_bytes]\n");
    return 2;
  }
  const std::vector<uint8_t> index = ReadAll(argv[1]);
  auto li = LayerIndex::Parse(index, argv[1], "");
  if (!li.ok()) {
    std::fprintf(stderr, "%s\n", li.status().ToString().c_str());
    return 1;
  }
  std::map<std::string, std::pair<uint64_t, uint64_t>> files;  // path -> (data offset, size)
  for (const TarEntry& e : li->entries) files[e.path] = {e.data_offset, e.size};
  ChunkDigests chunks = li->chunks;
  if (argc > 4) chunks = ChunkDigestsOf(ReadAll(argv[2]), static_cast<uint32_t>(std::stoul(argv[4])));
  if (int fd = ::open(argv[2], O_RDONLY); fd >= 0) {
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  auto blob = OpenFileByteSource(argv[2], "blob");
  if (!blob.ok()) {
    std::fprintf(stderr, "%s\n", blob.status().ToString().c_str());
    return 1;
  }
  std::vector<LayerBlob> layers;
  layers.push_back(LayerBlob{"layer",
                             NewVerifiedByteSource(std::make_unique<Counting>(std::move(*blob)),
                                                   std::make_shared<const ChunkDigests>(std::move(chunks))),
                             std::make_shared<const CheckpointTable>(li->checkpoints)});
  StreamCacheOptions o;
  o.prefetch_workers = 0;
  StreamCache cache(std::make_shared<const ImageContent>(std::move(layers)), o);
  std::ifstream plan(argv[3]);
  std::string path;
  uint64_t off = 0;
  std::vector<uint8_t> buf(4096);
  double cpu[2] = {0, 0}, wall[2] = {0, 0};
  uint64_t blob_bytes[2] = {0, 0}, blob_reads[2] = {0, 0}, decoded[2] = {0, 0}, count[2] = {0, 0};
  while (plan >> path >> off) {
    auto it = files.find(path);
    if (it == files.end()) {
      std::fprintf(stderr, "%s: not in the layer\n", path.c_str());
      return 1;
    }
    const int half = off >= it->second.second / 2 ? 1 : 0;
    const uint64_t b0 = g_blob_bytes, r0 = g_blob_reads, d0 = cache.stats().decoded_bytes;
    const double c0 = ThreadCpu();
    const auto t0 = std::chrono::steady_clock::now();
    size_t n = 0;
    Status st = cache.Read(0, it->second.first + off, buf, &n);
    wall[half] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu[half] += ThreadCpu() - c0;
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    blob_bytes[half] += g_blob_bytes - b0;
    blob_reads[half] += g_blob_reads - r0;
    decoded[half] += cache.stats().decoded_bytes - d0;
    ++count[half];
  }
  for (int h = 0; h < 2; ++h) {
    if (count[h] == 0) continue;
    const double k = static_cast<double>(count[h]);
    std::printf("%s half of files: %llu reads, per read: cpu %.0f us, wall %.0f us, blob %.0f B in %.2f reads, decoded %.0f B\n",
                h == 0 ? "first" : "second", static_cast<unsigned long long>(count[h]), cpu[h] / k * 1e6,
                wall[h] / k * 1e6, static_cast<double>(blob_bytes[h]) / k, static_cast<double>(blob_reads[h]) / k,
                static_cast<double>(decoded[h]) / k);
  }
  return 0;
}
