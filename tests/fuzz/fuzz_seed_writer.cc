// fuzz_seed_writer: writes the store files of the fuzz seed corpora with the
// project's own writers, from layer blobs made by GNU tar (scripts/fuzz_seeds.py):
//   fuzz_seed_writer index OUT BLOB [SPAN]  layer index file of one blob, its
//                                           entry section stored raw (see
//                                           layer_index_file_fuzzer.cc); a small
//                                           SPAN gives many checkpoints
//   fuzz_seed_writer tree OUT BLOB...       image tree file of the blobs merged
//                                           as layers, bottom first
// Blobs may be plain, gzip or zstd (sniffed). Exit status 1 with a message
// if a blob does not index or the layers do not merge.
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "index/byte_source.h"
#include "index/layer_indexer.h"
#include "index/merge.h"
#include "index/sha256.h"
#include "tests/fuzz/fuzz_util.h"

namespace lazyroot::fuzz {
namespace {

Result<LayerIndex> IndexFile(const std::string& path, uint64_t span = kDefaultSpanBytes) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Status::IoError(path + ": cannot read");
  auto source = MemoryByteSource(bytes, path);
  Compression c = SniffCompression(std::span<const uint8_t>(bytes).first(std::min<size_t>(bytes.size(), 16)));
  LayerIndexer indexer("sha256:" + std::string(64, '0'), c, "", span);
  LAZYROOT_RETURN_IF_ERROR(indexer.Consume(bytes));
  return indexer.Finish(ChunkDigestsOf(bytes));
}

// LayerIndex::Serialize deflates the entry section when that is smaller;
// the fuzz target wants it raw, so undo that and fix offsets and CRC.
std::string RawEntries(std::string file) {
  constexpr size_t kHeader = 304;  // index/FORMAT.md, version 4
  auto* p = reinterpret_cast<uint8_t*>(file.data());
  if ((GetLe32(p + 12) & 1) == 0) return file;
  uint64_t e_len = GetLe64(p + 112);
  uLongf raw_len = GetLe32(p + 136);
  std::string raw(raw_len, '\0');
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_len, p + kHeader, e_len) != Z_OK) return file;
  std::string out = file.substr(0, kHeader) + raw + file.substr(kHeader + e_len);
  p = reinterpret_cast<uint8_t*>(out.data());
  const int64_t grew = static_cast<int64_t>(raw.size()) - static_cast<int64_t>(e_len);
  PutLe32(p + 12, 0);
  PutLe32(p + 136, 0);
  PutLe64(p + 112, raw.size());
  PutLe64(p + 120, kHeader + raw.size());
  PutLe64(p + 152, static_cast<uint64_t>(static_cast<int64_t>(GetLe64(p + 152)) + grew));
  PutLe64(p + 200, static_cast<uint64_t>(static_cast<int64_t>(GetLe64(p + 200)) + grew));
  ResealLayerIndexFile(std::span<uint8_t>(p, out.size()));  // every section's SHA-256, then the header's
  return out;
}

bool Write(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return out.good();
}

int Fail(const Status& s) {
  std::fprintf(stderr, "fuzz_seed_writer: %s\n", s.ToString().c_str());
  return 1;
}

#define LAZYROOT_RETURN_IF_ERROR_INT(expr)  \
  do {                                     \
    ::lazyroot::Status _st = (expr);       \
    if (!_st.ok()) return Fail(_st);       \
  } while (0)

int Main(int argc, char** argv) {
  if (argc < 4 || (std::strcmp(argv[1], "index") != 0 && std::strcmp(argv[1], "tree") != 0) ||
      (std::strcmp(argv[1], "index") == 0 && argc > 5)) {
    std::fprintf(stderr, "usage: fuzz_seed_writer index OUT BLOB [SPAN] | tree OUT BLOB...\n");
    return 2;
  }
  const std::string out = argv[2];
  if (std::strcmp(argv[1], "index") == 0) {
    uint64_t span = argc == 5 ? std::strtoull(argv[4], nullptr, 10) : 0;
    Result<LayerIndex> idx = IndexFile(argv[3], span > 0 ? span : kDefaultSpanBytes);
    if (!idx.ok()) return Fail(idx.status());
    std::string file = RawEntries(idx->Serialize());
    return Write(out, file.data(), file.size()) ? 0 : Fail(Status::IoError(out + ": cannot write"));
  }
  TreeBuilder builder;
  for (int i = 3; i < argc; ++i) {
    Result<LayerIndex> idx = IndexFile(argv[i]);
    if (!idx.ok()) return Fail(idx.status());
    LAZYROOT_RETURN_IF_ERROR_INT(builder.BeginLayer(static_cast<uint32_t>(i - 3), idx->blob_digest));
    for (const TarEntry& e : idx->entries) LAZYROOT_RETURN_IF_ERROR_INT(builder.Apply(e));
    LAZYROOT_RETURN_IF_ERROR_INT(builder.EndLayer());
  }
  Result<ImageTree> tree = std::move(builder).Finish(out);
  if (!tree.ok()) return Fail(tree.status());
  return Write(out, tree->bytes().data(), tree->bytes().size()) ? 0 : Fail(Status::IoError(out + ": cannot write"));
}

}  // namespace
}  // namespace lazyroot::fuzz

int main(int argc, char** argv) { return lazyroot::fuzz::Main(argc, argv); }
