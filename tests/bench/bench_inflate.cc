// bench_inflate: what the pull's streaming pass and a random read cost for one
// layer blob, next to the raw inflate limits (zlib, ISA-L). Run by hand:
//   build/tests/bench_inflate usr.tar.gz [span_MiB ...]
// Prints output MB/s (median of 3, blob held in memory) by wall clock and by
// this thread's CPU time (robust on a loaded machine), the checkpoint table
// size as % of the blob, and random 4 KiB read latency (500 reads, seed 1,
// blob read through a file ByteSource, i.e. the page cache) per inflate engine.
#include <zlib.h>
#include <zstd.h>
#ifdef LAZYROOT_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "index/gzip_index.h"
#include "index/gzip_isal_stream.h"
#include "index/layer_decoder.h"

namespace {

using lazyroot::Compression;
using Clock = std::chrono::steady_clock;
std::vector<uint8_t> g_out(256 << 10);

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }
double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double wall, cpu;
};

// Median of 3 runs, by wall time and by CPU time separately.
template <typename F>
Timing Median3(F f) {
  std::vector<double> w, c;
  for (int i = 0; i < 3; ++i) {
    auto a = Clock::now();
    double c0 = CpuNow();
    f();
    c.push_back(CpuNow() - c0);
    w.push_back(Seconds(a));
  }
  std::sort(w.begin(), w.end());
  std::sort(c.begin(), c.end());
  return {w[1], c[1]};
}

void PrintRate(const char* what, uint64_t bytes, Timing t) {
  std::printf("%-46s %6.0f MB/s wall  %6.0f MB/s cpu\n", what, bytes / t.wall / 1e6, bytes / t.cpu / 1e6);
}

uint64_t ZlibPlain(const std::vector<uint8_t>& blob) {
  z_stream s{};
  inflateInit2(&s, 31);
  s.next_in = const_cast<Bytef*>(blob.data());
  s.avail_in = static_cast<uInt>(blob.size());
  uint64_t total = 0;
  for (;;) {
    s.next_out = g_out.data();
    s.avail_out = static_cast<uInt>(g_out.size());
    int ret = inflate(&s, Z_NO_FLUSH);
    total += g_out.size() - s.avail_out;
    if (ret == Z_STREAM_END) {
      if (s.avail_in == 0) break;
      inflateReset(&s);
    } else if (ret != Z_OK) {
      std::fprintf(stderr, "zlib error %d\n", ret);
      break;
    }
  }
  inflateEnd(&s);
  return total;
}

#ifdef LAZYROOT_HAVE_ISAL
uint64_t IsalPlain(const std::vector<uint8_t>& blob) {
  auto st = std::make_unique<inflate_state>();
  isal_inflate_init(st.get());
  st->crc_flag = ISAL_GZIP;
  st->next_in = const_cast<uint8_t*>(blob.data());
  st->avail_in = static_cast<uint32_t>(blob.size());
  uint64_t total = 0;
  for (;;) {
    st->next_out = g_out.data();
    st->avail_out = static_cast<uint32_t>(g_out.size());
    int ret = isal_inflate(st.get());
    total += g_out.size() - st->avail_out;
    if (ret != ISAL_DECOMP_OK) {
      std::fprintf(stderr, "isal error %d\n", ret);
      break;
    }
    if (st->block_state == ISAL_BLOCK_FINISH) {
      if (st->avail_in == 0) break;
      uint8_t* next = st->next_in;
      uint32_t left = st->avail_in;
      isal_inflate_reset(st.get());
      st->crc_flag = ISAL_GZIP;
      st->next_in = next;
      st->avail_in = left;
    }
  }
  return total;
}
#endif

uint64_t ZstdPlain(const std::vector<uint8_t>& blob) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZSTD_inBuffer in{blob.data(), blob.size(), 0};
  uint64_t total = 0;
  while (in.pos < in.size) {
    ZSTD_outBuffer o{g_out.data(), g_out.size(), 0};
    size_t r = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(r)) break;
    total += o.pos;
  }
  ZSTD_freeDCtx(d);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BLOB [span_MiB ...]\n", argv[0]);
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  std::vector<uint8_t> blob((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Compression c = lazyroot::SniffCompression(blob);
  std::vector<uint64_t> spans;
  for (int i = 2; i < argc; ++i) spans.push_back(std::stoull(argv[i]) << 20);
  if (spans.empty()) spans = {1 << 20, 4 << 20};

  uint64_t size = 0;
  if (c == Compression::kGzip) {
    Timing t = Median3([&] { size = ZlibPlain(blob); });
    PrintRate("zlib inflate (plain, no checkpoints)", size, t);
#ifdef LAZYROOT_HAVE_ISAL
    t = Median3([&] { size = IsalPlain(blob); });
    PrintRate("ISA-L isal_inflate (plain)", size, t);
#endif
  } else if (c == Compression::kZstd) {
    Timing t = Median3([&] { size = ZstdPlain(blob); });
    PrintRate("zstd DStream (plain)", size, t);
  }
  auto src = lazyroot::OpenFileByteSource(argv[1], "blob");
  if (!src.ok()) {
    std::fprintf(stderr, "%s\n", src.status().ToString().c_str());
    return 1;
  }
  for (uint64_t span : spans) {
    double zlib_cpu_rate = 0;  // bytes of output per CPU second of the zlib pass
    if (c == Compression::kGzip) {
      // The pull's pass on the zlib fallback, for comparison with the default below.
      uint64_t out = 0;
      size_t zlib_table_bytes = 0;
      Timing tz = Median3([&] {
        auto d = lazyroot::NewGzipStreamDecoder("layer", span, lazyroot::InflateEngine::kZlib);
        lazyroot::OutputFn sink = [](std::span<const uint8_t>) { return lazyroot::Status::Ok(); };
        for (size_t off = 0; off < blob.size(); off += 1 << 20) {
          (void)d->Feed(std::span<const uint8_t>(blob).subspan(off, std::min<size_t>(1 << 20, blob.size() - off)), sink);
        }
        (void)d->Finish(sink);
        out = d->total_out();
        zlib_table_bytes = d->TakeCheckpoints().Serialize().size();
      });
      std::string zlabel = "StreamDecoder zlib, span " + std::to_string(span >> 20) + " MiB";
      PrintRate(zlabel.c_str(), out, tz);
      zlib_cpu_rate = static_cast<double>(out) / tz.cpu;
      std::printf("  table %zu B = %.2f %% of blob\n", zlib_table_bytes, 100.0 * zlib_table_bytes / blob.size());
    }
    lazyroot::CheckpointTable table;
    Timing t = Median3([&] {
      auto d = lazyroot::StreamDecoder::Create(c, "layer", span);
      lazyroot::OutputFn sink = [](std::span<const uint8_t>) { return lazyroot::Status::Ok(); };
      for (size_t off = 0; off < blob.size(); off += 1 << 20) {
        lazyroot::Status st = d->Feed(std::span<const uint8_t>(blob).subspan(off, std::min<size_t>(1 << 20, blob.size() - off)), sink);
        if (!st.ok()) std::fprintf(stderr, "%s\n", st.ToString().c_str());
      }
      if (!d->Finish(sink).ok()) std::fprintf(stderr, "finish failed\n");
      table = d->TakeCheckpoints();
    });
    size_t table_bytes = table.Serialize().size();
    std::string label = std::string("StreamDecoder") +
                        (c == Compression::kGzip && lazyroot::IsalCheckpointsWork() ? " (ISA-L)" : "") + ", span " +
                        std::to_string(span >> 20) + " MiB";
    PrintRate(label.c_str(), table.uncompressed_size, t);
    if (zlib_cpu_rate > 0) {
      std::printf("  ratio of this pass to the zlib pass (output per CPU second): %.2fx\n",
                  static_cast<double>(table.uncompressed_size) / t.cpu / zlib_cpu_rate);
    }
    std::printf("  %zu points, table %zu B = %.2f %% of blob\n", table.points.size(), table_bytes,
                100.0 * table_bytes / blob.size());
    auto shared = std::make_shared<const lazyroot::CheckpointTable>(std::move(table));
    std::vector<std::pair<const char*, lazyroot::InflateEngine>> engines = {{"zlib", lazyroot::InflateEngine::kZlib}};
    if (c == Compression::kGzip && lazyroot::HaveIsal()) engines.push_back({"isal", lazyroot::InflateEngine::kIsal});
    for (auto [engine_name, engine] : engines) {
      auto reader = c == Compression::kGzip
                        ? lazyroot::RandomReader::Create(shared, lazyroot::NewGzipPointDecoder(shared.get(), src->get(), "layer", engine))
                        : lazyroot::RandomReader::Create(shared, src->get(), "layer");
      std::mt19937_64 rng(1);
      std::vector<double> ms, cpu_ms;
      std::vector<uint8_t> buf(4096);
      for (int i = 0; i < 500; ++i) {
        uint64_t off = rng() % (shared->uncompressed_size - buf.size());
        size_t n = 0;
        auto a = Clock::now();
        double c0 = CpuNow();
        lazyroot::Status st = reader->Read(off, buf, &n);
        cpu_ms.push_back((CpuNow() - c0) * 1e3);
        ms.push_back(Seconds(a) * 1e3);
        if (!st.ok()) std::fprintf(stderr, "%s\n", st.ToString().c_str());
      }
      std::sort(ms.begin(), ms.end());
      std::sort(cpu_ms.begin(), cpu_ms.end());
      std::printf("  random 4 KiB read (%s): wall median %.2f ms p90 %.2f p99 %.2f | cpu median %.2f ms p90 %.2f p99 %.2f\n",
                  c == Compression::kGzip ? engine_name : "zstd", ms[250], ms[450], ms[495], cpu_ms[250], cpu_ms[450],
                  cpu_ms[495]);
    }
  }
  return 0;
}
