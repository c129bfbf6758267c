// refine_index: what finer gzip access points inside large regular files
// would cost and give, measured on a real store before the pull records them.
// Run by hand:
//   build/tests/refine_index INDEX BLOB OUT [fine_KiB [min_file_MiB [budget_pct]]]
// Re-runs the checkpoint pass over BLOB (zlib, deterministic) at the default
// 2 MiB span and at fine_KiB (default 256), keeps the fine points that fall
// inside the data of regular files of at least min_file_MiB (default 1),
// replaces each window no decode needs by zeros (CheckpointNeedsWindow), drops
// the fine points with the largest stored windows until the table is within
// budget_pct of the blob (default 2), and writes INDEX with that table to OUT
// (a valid layer index: copy it over the store's index/sha256/<hex> to measure
// a mount with it). Prints the table sizes as % of the blob.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/checkpoint_window.h"
#include "index/gzip_index.h"
#include "index/layer_index.h"

namespace {

using namespace lazyroot;

std::vector<uint8_t> ReadAll(const char* path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

CheckpointTable Pass(const std::vector<uint8_t>& blob, uint64_t span) {
  auto d = NewGzipStreamDecoder("blob", span, InflateEngine::kZlib);
  const size_t step = 1 << 20;
  for (size_t at = 0; at < blob.size(); at += step) {
    Status st = d->Feed(std::span<const uint8_t>(blob.data() + at, std::min(step, blob.size() - at)),
                        [](std::span<const uint8_t>) { return Status::Ok(); });
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      std::exit(1);
    }
  }
  if (!d->Finish([](std::span<const uint8_t>) { return Status::Ok(); }).ok()) std::exit(1);
  return d->TakeCheckpoints();
}

uint64_t TableBytes(const CheckpointTable& t) { return t.Serialize().size(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: refine_index INDEX BLOB OUT [fine_KiB [min_file_MiB [budget_pct]]]\n");
    return 2;
  }
  const uint64_t fine = (argc > 4 ? std::stoull(argv[4]) : 256) << 10;
  const uint64_t min_file = (argc > 5 ? std::stoull(argv[5]) : 1) << 20;
  const double budget_pct = argc > 6 ? std::stod(argv[6]) : 2.0;
  std::vector<uint8_t> index_bytes = ReadAll(argv[1]);
  std::vector<uint8_t> blob = ReadAll(argv[2]);
  Result<LayerIndex> index = LayerIndex::Parse(index_bytes, argv[1], "");
  if (!index.ok()) {
    std::fprintf(stderr, "%s\n", index.status().ToString().c_str());
    return 1;
  }
  const CheckpointTable coarse = Pass(blob, 2 << 20);
  const CheckpointTable fine_table = Pass(blob, fine);
  // Data ranges of large regular files, in stream order.
  std::vector<std::pair<uint64_t, uint64_t>> large;
  for (const TarEntry& e : index->entries) {
    if (e.type == EntryType::kRegular && e.stored_size >= min_file) large.emplace_back(e.data_offset, e.data_offset + e.stored_size);
  }
  std::sort(large.begin(), large.end());
  auto inside = [&](uint64_t off) {
    auto it = std::upper_bound(large.begin(), large.end(), std::make_pair(off, ~uint64_t{0}));
    return it != large.begin() && off < std::prev(it)->second;
  };
  CheckpointTable merged = coarse;
  merged.points.clear();
  std::vector<bool> is_fine;
  size_t a = 0, b = 0;
  while (a < coarse.points.size() || b < fine_table.points.size()) {
    const bool take_coarse = b == fine_table.points.size() ||
                             (a < coarse.points.size() && coarse.points[a].out_offset <= fine_table.points[b].out_offset);
    if (take_coarse) {
      if (b < fine_table.points.size() && fine_table.points[b].out_offset == coarse.points[a].out_offset) ++b;
      merged.points.push_back(coarse.points[a++]);
      is_fine.push_back(false);
    } else {
      const Checkpoint& p = fine_table.points[b++];
      if (!inside(p.out_offset)) continue;
      merged.points.push_back(p);
      is_fine.push_back(true);
    }
  }
  auto source = MemoryByteSource(blob, "blob");
  size_t zeroed = 0;
  for (size_t i = 0; i < merged.points.size(); ++i) {
    Result<bool> need = CheckpointNeedsWindow(merged, i, *source, "blob");
    if (!need.ok()) {
      std::fprintf(stderr, "%s\n", need.status().ToString().c_str());
      return 1;
    }
    if (!*need) {
      merged.points[i] = WithoutWindow(merged.points[i]);
      ++zeroed;
    }
  }
  const double blob_size = static_cast<double>(blob.size());
  std::printf("blob %zu B; 2 MiB table: %zu points, %.2f %%; with %llu KiB points in files >= %llu MiB: %zu points "
              "(%zu windows zeroed), %.2f %%\n",
              blob.size(), coarse.points.size(), 100.0 * TableBytes(coarse) / blob_size,
              static_cast<unsigned long long>(fine >> 10), static_cast<unsigned long long>(min_file >> 20),
              merged.points.size(), zeroed, 100.0 * TableBytes(merged) / blob_size);
  // Over budget: drop the fine points with the largest stored windows first.
  const uint64_t budget = static_cast<uint64_t>(blob_size * budget_pct / 100.0);
  uint64_t bytes = TableBytes(merged);
  if (bytes > budget) {
    std::vector<size_t> order;
    for (size_t i = 0; i < merged.points.size(); ++i) {
      if (is_fine[i]) order.push_back(i);
    }
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return merged.points[x].window.size() > merged.points[y].window.size(); });
    std::vector<bool> drop(merged.points.size(), false);
    for (size_t i : order) {
      if (bytes <= budget) break;
      drop[i] = true;
      bytes -= merged.points[i].window.size() + 32;
    }
    std::vector<Checkpoint> kept;
    for (size_t i = 0; i < merged.points.size(); ++i) {
      if (!drop[i]) kept.push_back(merged.points[i]);
    }
    merged.points = std::move(kept);
    std::printf("within %.1f %%: %zu points, %.2f %%\n", budget_pct, merged.points.size(),
                100.0 * TableBytes(merged) / blob_size);
  }
  LayerIndex out = std::move(*index);
  out.checkpoints = std::move(merged);
  std::ofstream f(argv[3], std::ios::binary);
  const std::string s = out.Serialize();
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
  std::printf("index %zu B -> %zu B (%.2f %% of the blob)\n", index_bytes.size(), s.size(), 100.0 * s.size() / blob_size);
  return f ? 0 : 1;
}
