// LayerIndex serialisation and LayerIndexer over real gzip/zstd/plain tars
// built in memory.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <functional>
#include <random>

#include "index/layer_index.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "tests/unit/compressed_fixtures.h"

namespace lazyroot {
namespace {

// A minimal ustar writer for fixtures: regular files and directories.
class TarBuilder {
 public:
  void File(const std::string& name, const std::string& data, uint32_t mode = 0644) { Header(name, '0', data.size(), mode); Data(data); }
  void Dir(const std::string& name) { Header(name, '5', 0, 0755); }
  std::string Finish() {
    out_.append(1024, '\0');
    return out_;
  }

 private:
  void Octal(char* field, size_t len, uint64_t v) {
    std::string s(len - 1, '0');
    for (size_t i = len - 1; i-- > 0; v >>= 3) s[i] = static_cast<char>('0' + (v & 7));
    std::memcpy(field, s.data(), len - 1);
  }
  void Header(const std::string& name, char type, uint64_t size, uint32_t mode) {
    char h[512] = {};
    std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
    Octal(h + 100, 8, mode);
    Octal(h + 108, 8, 0);
    Octal(h + 116, 8, 0);
    Octal(h + 124, 12, size);
    Octal(h + 136, 12, 1700000000);
    h[156] = type;
    std::memcpy(h + 257, "ustar\0" "00", 8);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    Octal(h + 148, 7, sum);
    out_.append(h, 512);
  }
  void Data(const std::string& d) {
    out_ += d;
    out_.append((512 - d.size() % 512) % 512, '\0');
  }
  std::string out_;
};

using fixtures::Gzip;
using fixtures::Zstd;

std::string SampleTar() {
  std::mt19937 rng(7);
  std::string big(3 << 20, '\0');
  for (auto& c : big) c = static_cast<char>(rng() % 16 + 'a');  // compressible but not trivially
  TarBuilder t;
  t.Dir("etc/");
  t.File("etc/hostname", "demo\n");
  t.File("usr/bin/tool", big, 0755);
  t.File("empty", "");
  return t.Finish();
}

using fixtures::Bytes;

Result<LayerIndex> IndexInChunks(const std::string& blob, Compression c, const std::string& diff_id, size_t chunk) {
  LayerIndexer ix("sha256:" + Sha256::HexOf(std::string_view(blob)), c, diff_id, 1 << 20);
  for (size_t off = 0; off < blob.size(); off += chunk) {
    LAZYROOT_RETURN_IF_ERROR(ix.Consume(Bytes(blob).subspan(off, std::min(chunk, blob.size() - off))));
  }
  return ix.Finish(ChunkDigestsOf(Bytes(blob)));
}

class LayerIndexerTest : public ::testing::TestWithParam<Compression> {};

TEST_P(LayerIndexerTest, IndexesEntriesAndVerifiesDiffId) {
  const std::string tar = SampleTar();
  const std::string diff_id = "sha256:" + Sha256::HexOf(std::string_view(tar));
  std::string blob = GetParam() == Compression::kGzip ? Gzip(tar) : GetParam() == Compression::kZstd ? Zstd(tar) : tar;
  auto idx = IndexInChunks(blob, GetParam(), diff_id, 65536 + 17);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  ASSERT_EQ(idx->entries.size(), 4u);
  EXPECT_EQ(idx->entries[1].path, "etc/hostname");
  EXPECT_EQ(idx->entries[2].size, 3u << 20);
  EXPECT_EQ(idx->entries[2].mode, 0755u);
  EXPECT_EQ(tar.substr(idx->entries[1].data_offset, 5), "demo\n");
  EXPECT_EQ(idx->diff_id, diff_id);
  EXPECT_EQ(idx->uncompressed_size, tar.size());
  EXPECT_EQ(idx->blob_size, blob.size());

  // A wrong DiffID fails, naming both digests.
  auto wrong = IndexInChunks(blob, GetParam(), "sha256:" + std::string(64, '0'), 1 << 20);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("DiffID mismatch"), std::string::npos);
  EXPECT_NE(wrong.status().message().find(diff_id), std::string::npos);
}

// The file digests: sha256sum of each regular file (the empty string's for
// a zero-length one), keyed by data offset, whatever the chunking.
TEST_P(LayerIndexerTest, RecordsEachRegularFilesSha256) {
  const std::string tar = SampleTar();
  std::string blob = GetParam() == Compression::kGzip ? Gzip(tar) : GetParam() == Compression::kZstd ? Zstd(tar) : tar;
  for (size_t chunk : {size_t{1000}, size_t{65536 + 17}, blob.size()}) {
    auto idx = IndexInChunks(blob, GetParam(), "", chunk);
    ASSERT_TRUE(idx.ok()) << idx.status().message();
    ASSERT_EQ(idx->file_digests.size(), 3u) << "etc/hostname, usr/bin/tool, empty; not the directory";
    for (const TarEntry& e : idx->entries) {
      const FileDigest* d = FindFileDigest(idx->file_digests, e.data_offset);
      if (e.type != EntryType::kRegular) {
        EXPECT_EQ(d, nullptr);
        continue;
      }
      ASSERT_NE(d, nullptr) << e.path;
      EXPECT_EQ(d->digest, Sha256::Of(Bytes(tar).subspan(e.data_offset, e.size))) << e.path;
    }
    EXPECT_EQ(FindFileDigest(idx->file_digests, idx->entries[3].data_offset)->digest, Sha256::Of({}));
    // Round trip, and the digests-only parser agrees.
    const std::string bytes = idx->Serialize();
    auto back = LayerIndex::Parse(Bytes(bytes), "t.index", "");
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->Serialize(), bytes);
    auto only = LayerIndex::ParseFileDigests(Bytes(bytes), "t.index", "", nullptr);
    ASSERT_TRUE(only.ok()) << only.status().message();
    ASSERT_EQ(only->size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ((*only)[i].data_offset, idx->file_digests[i].data_offset);
      EXPECT_EQ((*only)[i].digest, idx->file_digests[i].digest);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllCompressions, LayerIndexerTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip, Compression::kZstd));

TEST(LayerIndex, RoundTripAndCorruption) {
  const std::string tar = SampleTar();
  const std::string blob = Gzip(tar);
  auto idx = IndexInChunks(blob, Compression::kGzip, "", 4096);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  idx->entries[1].xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}, {"user.x", "y"}};
  idx->entries[1].mtime_sec = -12345;
  idx->entries[1].sparse = {{0, 10}, {4096, 20}};
  const std::string bytes = idx->Serialize();
  auto back = LayerIndex::Parse(Bytes(bytes), "test.index", idx->blob_digest);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->entries.size(), idx->entries.size());
  EXPECT_EQ(back->entries[1].xattrs, idx->entries[1].xattrs);
  EXPECT_EQ(back->entries[1].mtime_sec, -12345);
  EXPECT_EQ(back->entries[1].sparse.size(), 2u);
  EXPECT_EQ(back->checkpoints, idx->checkpoints);
  EXPECT_EQ(back->diff_id, idx->diff_id);

  // Bound to its blob.
  auto foreign = LayerIndex::Parse(Bytes(bytes), "test.index", "sha256:" + std::string(64, 'a'));
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("test.index"), std::string::npos);

  // Every single flipped byte and every truncation is rejected, naming the file.
  for (size_t i = 0; i < bytes.size(); i += std::max<size_t>(1, bytes.size() / 4000)) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    auto r = LayerIndex::Parse(Bytes(bad), "test.index", "");
    ASSERT_FALSE(r.ok()) << "flip at " << i;
    EXPECT_NE(r.status().message().find("test.index"), std::string::npos);
  }
  for (size_t len : {size_t{0}, size_t{10}, size_t{191}, size_t{192}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(LayerIndex::Parse(Bytes(bytes).subspan(0, len), "test.index", "").ok()) << len;
  }
}

uint64_t GetLe64At(const std::string& b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}

TEST(LayerIndex, ParseCheckpointsOnlyValidatesTheSameWay) {
  const std::string blob = Gzip(SampleTar());
  auto idx = IndexInChunks(blob, Compression::kGzip, "", 1 << 20);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  const std::string bytes = idx->Serialize();
  std::string diff_id;
  auto table = LayerIndex::ParseCheckpoints(Bytes(bytes), "t.index", idx->blob_digest, &diff_id);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(*table, idx->checkpoints);
  EXPECT_EQ(diff_id, idx->diff_id);
  EXPECT_FALSE(LayerIndex::ParseCheckpoints(Bytes(bytes), "t.index", "sha256:" + std::string(64, 'b'), nullptr).ok());
  // Format v4: the header's SHA-256 and the checkpoint and chunk digest
  // sections' cover every byte it reads; the entries and the file digests it
  // does not read (their own SHA-256s are Parse's and ParseFileDigests').
  const uint64_t c_off = GetLe64At(bytes, 120), f_off = GetLe64At(bytes, 200);
  for (size_t i = 0; i < bytes.size(); i += 97) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 1);
    const bool read = i < 304 || (i >= c_off && i < f_off);
    EXPECT_EQ(LayerIndex::ParseCheckpoints(Bytes(bad), "t.index", "", nullptr).ok(), !read) << i;
    EXPECT_FALSE(LayerIndex::Parse(Bytes(bad), "t.index", "").ok()) << i;
  }
}

LayerIndex SampleIndex();

// What a mount reads of a v4 index: the header, then the checkpoint and
// chunk digest sections as one range; never the entries or file digests.
TEST(LayerIndexV4, ReadCheckpointsReadsOnlyTheHeaderAndItsSections) {
  auto idx = IndexInChunks(Gzip(SampleTar()), Compression::kGzip, "", 1 << 20);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  const std::string bytes = idx->Serialize();
  const uint64_t c_off = GetLe64At(bytes, 120), f_off = GetLe64At(bytes, 200);
  ASSERT_EQ(GetLe64At(bytes, 104), 304u);
  std::vector<std::pair<uint64_t, uint64_t>> asked;
  auto reader = [&](uint64_t offset, uint64_t length) -> Result<std::span<const uint8_t>> {
    asked.emplace_back(offset, length);
    return Bytes(bytes).subspan(offset, length);
  };
  ChunkDigests chunks;
  std::string diff_id;
  auto table = LayerIndex::ReadCheckpoints(bytes.size(), reader, "t.index", idx->blob_digest, &diff_id, &chunks);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(*table, idx->checkpoints);
  EXPECT_EQ(diff_id, idx->diff_id);
  EXPECT_EQ(chunks.digests, idx->chunks.digests);
  EXPECT_EQ(asked, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 304}, {c_off, f_off - c_off}}));
  asked.clear();
  auto files = LayerIndex::ReadFileDigests(bytes.size(), reader, "t.index", idx->blob_digest, nullptr);
  ASSERT_TRUE(files.ok()) << files.status().message();
  EXPECT_EQ(files->size(), idx->file_digests.size());
  EXPECT_EQ(asked, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 304}, {f_off, bytes.size() - f_off}}));
  // A reader that comes back short (a file truncated after it was sized)
  // is refused, never read past.
  auto short_reader = [&](uint64_t offset, uint64_t length) -> Result<std::span<const uint8_t>> {
    return Bytes(bytes).subspan(offset, offset == 0 ? length : length / 2);
  };
  EXPECT_FALSE(LayerIndex::ReadCheckpoints(bytes.size(), short_reader, "t.index", "", nullptr).ok());
  EXPECT_FALSE(LayerIndex::ReadFileDigests(bytes.size(), short_reader, "t.index", "", nullptr).ok());
  // A size other than the file's: the header's bounds no longer hold.
  EXPECT_FALSE(LayerIndex::ReadCheckpoints(bytes.size() - 40, reader, "t.index", "", nullptr).ok());
  EXPECT_FALSE(LayerIndex::ReadCheckpoints(bytes.size() + 40, reader, "t.index", "", nullptr).ok());
}

// A damaged file digest section fails `diff`'s reader and the whole parse
// (fsck, the merge), with a message naming the section, but not the mount's.
TEST(LayerIndexV4, DamagedFileDigestsFailOnlyTheirReaders) {
  auto idx = IndexInChunks(Gzip(SampleTar()), Compression::kGzip, "", 1 << 20);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  std::string bad = idx->Serialize();
  const uint64_t f_off = GetLe64At(bad, 200);
  ASSERT_LT(f_off, bad.size());
  bad[f_off + 20] = static_cast<char>(bad[f_off + 20] ^ 0x10);
  auto table = LayerIndex::ParseCheckpoints(Bytes(bad), "t.index", idx->blob_digest, nullptr);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(*table, idx->checkpoints);
  auto files = LayerIndex::ParseFileDigests(Bytes(bad), "t.index", idx->blob_digest, nullptr);
  ASSERT_FALSE(files.ok());
  EXPECT_NE(files.status().message().find("file digest section"), std::string::npos) << files.status().message();
  auto whole = LayerIndex::Parse(Bytes(bad), "t.index", idx->blob_digest);
  ASSERT_FALSE(whole.ok());
  EXPECT_NE(whole.status().message().find("file digest section"), std::string::npos) << whole.status().message();
  // Damaged entries: the same, for the entry section.
  std::string bad_entries = idx->Serialize();
  bad_entries[310] = static_cast<char>(bad_entries[310] ^ 0x10);
  EXPECT_TRUE(LayerIndex::ParseCheckpoints(Bytes(bad_entries), "t.index", "", nullptr).ok());
  EXPECT_TRUE(LayerIndex::ParseFileDigests(Bytes(bad_entries), "t.index", "", nullptr).ok());
  auto r = LayerIndex::Parse(Bytes(bad_entries), "t.index", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("entry section"), std::string::npos) << r.status().message();
}

// Every prefix of a v4 file is refused by every reader (a file truncated
// after it was written, or read at a size its header does not give).
TEST(LayerIndexV4, EveryTruncationIsRefused) {
  const std::string bytes = SampleIndex().Serialize();
  for (size_t len = 0; len < bytes.size(); len += (len < 400 ? 1 : 37)) {
    const auto cut = Bytes(bytes).subspan(0, len);
    EXPECT_FALSE(LayerIndex::ParseCheckpoints(cut, "t.index", "", nullptr).ok()) << len;
    EXPECT_FALSE(LayerIndex::ParseFileDigests(cut, "t.index", "", nullptr).ok()) << len;
    EXPECT_FALSE(LayerIndex::Parse(cut, "t.index", "").ok()) << len;
  }
}

// A version 3 file (one SHA-256 over the whole file) is named as older, to
// be rebuilt (src/store/index_consumer.cc), not read.
TEST(LayerIndexV4, Version3IsRefusedByName) {
  std::string old = SampleIndex().Serialize();
  old[8] = 3;
  auto r = LayerIndex::ParseCheckpoints(Bytes(old), "t.index", "", nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("format version 3"), std::string::npos) << r.status().message();
}

// What a prefetch asks for ahead of a mount: the range ReadCheckpoints reads
// after the header, from a header checked the same way; nothing for a header
// that would be refused (damaged, another version, another file size).
TEST(LayerIndexV4, MountRangeIsWhatReadCheckpointsReads) {
  const std::string bytes = SampleIndex().Serialize();
  const auto header = Bytes(bytes).subspan(0, LayerIndex::kHeaderBytes);
  auto range = LayerIndex::MountRange(header, bytes.size());
  ASSERT_TRUE(range);
  EXPECT_EQ(range->first, GetLe64At(bytes, 120));
  EXPECT_EQ(range->second, GetLe64At(bytes, 200));
  EXPECT_LT(range->first, range->second);
  EXPECT_FALSE(LayerIndex::MountRange(header.subspan(0, 303), bytes.size()));
  EXPECT_FALSE(LayerIndex::MountRange(header, bytes.size() - 1));
  EXPECT_FALSE(LayerIndex::MountRange(header, bytes.size() + 1));
  std::string flipped = bytes;
  flipped[125] = static_cast<char>(flipped[125] ^ 0x01);  // the checkpoint offset, unsealed
  EXPECT_FALSE(LayerIndex::MountRange(Bytes(flipped).subspan(0, 304), bytes.size()));
  std::string old = bytes;
  old[8] = 3;
  EXPECT_FALSE(LayerIndex::MountRange(Bytes(old).subspan(0, 304), bytes.size()));
}

// --- Hostile index files: edited, then given a valid checksum so that the
// edit reaches the parser (the store's files are input like any other).

void PutU64At(std::string* b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*b)[at + i] = static_cast<char>(v >> (8 * i));
}
uint64_t GetU64At(const std::string& b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}
// The layer index checksum: SHA-256 of the file with its own field zeroed.
void FixIndexCrc(std::string* b) {
  ResealLayerIndexFile(std::span<uint8_t>(reinterpret_cast<uint8_t*>(b->data()), b->size()));
}

LayerIndex SampleIndex() {
  auto idx = IndexInChunks(Gzip(SampleTar()), Compression::kGzip, "", 1 << 20);
  EXPECT_TRUE(idx.ok()) << idx.status().message();
  return std::move(idx).value();
}

TEST(LayerIndexHostile, FixIndexCrcMakesAnUneditedFileParse) {
  std::string bytes = SampleIndex().Serialize();
  FixIndexCrc(&bytes);
  EXPECT_TRUE(LayerIndex::Parse(Bytes(bytes), "x.index", "").ok());
}

// The bug: entries.resize(count) trusted the count, so a 4 KB file made the
// reader allocate gigabytes before decoding an entry. A count that the
// section could not hold at the smallest encoding is refused up front.
TEST(LayerIndexHostile, InflatedEntryCountIsRefusedBeforeDecoding) {
  const std::string good = SampleIndex().Serialize();
  const uint64_t real = GetU64At(good, 96);
  for (uint64_t count : {uint64_t{1} << 62, uint64_t{1} << 32, uint64_t{1} << 24, real * 1000}) {
    std::string bad = good;
    PutU64At(&bad, 96, count);
    FixIndexCrc(&bad);
    auto r = LayerIndex::Parse(Bytes(bad), "store/indexes/x.index", "");
    ASSERT_FALSE(r.ok()) << count;
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
    EXPECT_NE(r.status().message().find("store/indexes/x.index"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("entry count " + std::to_string(count)), std::string::npos)
        << r.status().message();
  }
  // A count the section could hold but does not: fails at the entry that is
  // not there, having decoded only the real ones.
  std::string bad = good;
  PutU64At(&bad, 96, real + 1);
  FixIndexCrc(&bad);
  auto r = LayerIndex::Parse(Bytes(bad), "x.index", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("entry " + std::to_string(real) + ":"), std::string::npos)
      << r.status().message();
}

// A deflated section claiming more than it inflates to (up to the ~1032x
// deflate can do) is an error after inflating what is really there; the
// claim never sizes a buffer.
TEST(LayerIndexHostile, InflatedSizeClaimIsNotTrusted) {
  const std::string good = SampleIndex().Serialize();
  ASSERT_EQ(static_cast<uint8_t>(good[12]) & 1, 1) << "the sample's entries are expected to be deflated";
  const uint64_t e_len = GetU64At(good, 112);
  for (uint64_t claim : {e_len * 1000, e_len * 1032, uint64_t{1} << 31}) {
    std::string bad = good;
    for (int i = 0; i < 4; ++i) bad[136 + i] = static_cast<char>(claim >> (8 * i));
    FixIndexCrc(&bad);
    auto r = LayerIndex::Parse(Bytes(bad), "x.index", "");
    ASSERT_FALSE(r.ok()) << claim;
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  }
}

// A small file holding many copies of one entry (each costs deflate almost
// nothing) is refused at the second copy: entries must follow each other in
// the tar stream.
TEST(LayerIndexHostile, RepeatedEntriesAreRefusedAtTheFirstRepeat) {
  LayerIndex idx = SampleIndex();
  TarEntry e = idx.entries[0];
  idx.entries.assign(200000, e);
  const std::string bytes = idx.Serialize();
  EXPECT_LT(bytes.size(), 200000u) << "deflate packs the copies into a few bytes each";
  auto r = LayerIndex::Parse(Bytes(bytes), "x.index", "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("entry 1: offsets out of tar order"), std::string::npos) << r.status().message();
}

// An index cannot carry what no layer could: the kernel's limits hold when
// reading too.
TEST(LayerIndexHostile, KernelLimitsHoldWhenReading) {
  const LayerIndex base = SampleIndex();
  ASSERT_GE(base.entries.size(), 2u);
  auto parse_with = [&](const std::function<void(TarEntry&)>& edit) {
    LayerIndex idx = base;
    idx.file_digests.clear();  // the edit may turn a regular entry into another type
    edit(idx.entries[1]);
    return LayerIndex::Parse(Bytes(idx.Serialize()), "x.index", "");
  };
  struct Case {
    const char* name;
    std::function<void(TarEntry&)> edit;
    const char* error;
  };
  const Case cases[] = {
      {"symlink target", [](TarEntry& e) { e.type = EntryType::kSymlink; e.link_target = std::string(4096, 'a'); },
       "symlink target of 4096 bytes"},
      {"path", [](TarEntry& e) { e.path = std::string(5000, 'p'); }, "over a kernel limit"},
      {"xattr value", [](TarEntry& e) { e.xattrs = {{"user.big", std::string(65537, 'v')}}; }, "xattr 0"},
      {"xattr name", [](TarEntry& e) { e.xattrs = {{"user." + std::string(300, 'n'), "v"}}; }, "xattr 0"},
      {"xattrs in total",
       [](TarEntry& e) { e.xattrs = {{"user.a", std::string(40000, 'v')}, {"user.b", std::string(40000, 'v')}}; },
       "xattrs over the kernel's 65536"},
  };
  for (const Case& c : cases) {
    auto r = parse_with(c.edit);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << c.name << ": " << r.status().message();
  }
  // Right at the limits is fine.
  auto ok = parse_with([](TarEntry& e) {
    e.type = EntryType::kSymlink;
    e.link_target = std::string(4095, 'a');
    e.xattrs = {{"user.v", std::string(65536 - 6, 'v')}};
  });
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

// File digests: the count must fill the section exactly, the offsets ascend
// within the stream, and each names a regular entry's data (Parse). A
// hostile count is refused before the section is copied.
TEST(LayerIndexHostile, FileDigestSectionIsChecked) {
  const std::string good = SampleIndex().Serialize();
  const uint64_t count = GetU64At(good, 192), at = GetU64At(good, 200);
  ASSERT_EQ(count, 3u);
  ASSERT_EQ(at + count * 40, good.size());
  auto refused = [](std::string bad, const char* why) {
    FixIndexCrc(&bad);
    auto r = LayerIndex::Parse(Bytes(bad), "x.index", "");
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_NE(r.status().message().find("x.index"), std::string::npos) << r.status().message();
  };
  for (uint64_t c : {count - 1, count + 1, uint64_t{1} << 60, ~uint64_t{0}}) {
    std::string bad = good;
    PutU64At(&bad, 192, c);
    refused(bad, "count");
  }
  {
    std::string bad = good;  // out of order: the second offset below the first
    PutU64At(&bad, at + 40, GetU64At(good, at) - 1);
    refused(bad, "order");
  }
  {
    std::string bad = good;  // ascending, but not where a regular file's data starts
    PutU64At(&bad, at + 40, GetU64At(good, at + 40) + 1);
    refused(bad, "no entry");
  }
  {
    std::string bad = good;  // beyond the stream
    PutU64At(&bad, at + 80, ~uint64_t{0});
    refused(bad, "beyond");
  }
}

// The checkpoint table's point count is bounded by the bytes after it.
TEST(LayerIndexHostile, InflatedCheckpointCountIsRefused) {
  const std::string table = SampleIndex().checkpoints.Serialize();
  const size_t count_at = 8 + 8 + 8 + 8;
  for (uint64_t count : {uint64_t{1} << 60, uint64_t{1} << 30}) {
    std::string bad = table;
    PutU64At(&bad, count_at, count);
    uint32_t crc = static_cast<uint32_t>(crc32_z(0L, reinterpret_cast<const Bytef*>(bad.data()), bad.size() - 4));
    for (int i = 0; i < 4; ++i) bad[bad.size() - 4 + i] = static_cast<char>(crc >> (8 * i));
    auto r = CheckpointTable::Parse(Bytes(bad), "x.index");
    ASSERT_FALSE(r.ok()) << count;
    EXPECT_NE(r.status().message().find("point count"), std::string::npos) << r.status().message();
  }
}

// A file of a megabyte or more is hashed on a second thread while its
// checkpoints are decoded (what a mount waits for). The result must be the
// one of the sequential check: the table when the file is intact, the hash
// mismatch, naming the file, for any flipped byte wherever it lands (the
// header, the checkpoint windows, the chunk or the file digests).
TEST(LayerIndex, ParseCheckpointsOfALargeFileChecksItsHashBesideTheDecode) {
  LayerIndex idx = SampleIndex();
  // 1.3 MB of chunk digests (a 160 MB blob in 4 KiB chunks): the sections a
  // mount reads pass the size from which they are hashed on a second thread.
  idx.chunks.chunk_size = 4096;
  idx.blob_size = idx.chunks.blob_size = uint64_t{40000} * 4096;
  idx.chunks.digests.resize(40000);
  for (size_t i = 0; i < idx.chunks.digests.size(); ++i) idx.chunks.digests[i][0] = static_cast<uint8_t>(i);
  const std::string bytes = idx.Serialize();
  const uint64_t files_at = GetU64At(bytes, 200);
  ASSERT_GE(files_at - GetU64At(bytes, 120), size_t{1} << 20);
  std::string diff_id;
  ChunkDigests chunks;
  auto table = LayerIndex::ParseCheckpoints(Bytes(bytes), "big.index", idx.blob_digest, &diff_id, &chunks);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(*table, idx.checkpoints);
  EXPECT_EQ(diff_id, idx.diff_id);
  EXPECT_EQ(chunks.digests, idx.chunks.digests);
  const size_t checkpoints_at = static_cast<size_t>(GetU64At(bytes, 120));
  for (size_t i : {size_t{20}, size_t{100}, checkpoints_at + 40, checkpoints_at + 70, bytes.size() / 2,
                   static_cast<size_t>(files_at) - 1}) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    auto r = LayerIndex::ParseCheckpoints(Bytes(bad), "big.index", "", nullptr);
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_NE(r.status().message().find(i < 304 ? "big.index: SHA-256 of the header does not match"
                                                 : "big.index: SHA-256 of the checkpoint and chunk digest sections"),
              std::string::npos)
        << i << ": " << r.status().message();
  }
  // Owned by another blob: refused after the hash, as before.
  auto foreign = LayerIndex::ParseCheckpoints(Bytes(bytes), "big.index", "sha256:" + std::string(64, 'b'), nullptr);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("belongs to blob"), std::string::npos);
}

// The checkpoint table's crc32 is skipped only when the caller vouches for
// the bytes (the index file's SHA-256 covers them); every structural check
// is still made, so an edited table whose file hash was recomputed is
// refused for what is wrong with it.
TEST(LayerIndexHostile, CheckpointChecksHoldWithoutTheTableCrc) {
  const std::string table = SampleIndex().checkpoints.Serialize();
  std::string stale_crc = table;
  stale_crc[stale_crc.size() - 1] = static_cast<char>(stale_crc.back() ^ 1);
  EXPECT_FALSE(CheckpointTable::Parse(Bytes(stale_crc), "x.index").ok());
  EXPECT_TRUE(CheckpointTable::Parse(Bytes(stale_crc), "x.index", /*crc_covered_by_caller=*/true).ok());

  // bits > 7 in the first point, in an index file whose SHA-256 is fixed up.
  LayerIndex idx = SampleIndex();
  std::string bytes = idx.Serialize();
  const size_t point0 = static_cast<size_t>(GetU64At(bytes, 120)) + 40;
  bytes[point0 + 16] = 9;
  FixIndexCrc(&bytes);
  auto r = LayerIndex::ParseCheckpoints(Bytes(bytes), "x.index", "", nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bits 9 > 7"), std::string::npos) << r.status().message();
  auto walked = LayerIndex::Parse(Bytes(bytes), "x.index", "");
  ASSERT_FALSE(walked.ok());
  EXPECT_NE(walked.status().message().find("bits 9 > 7"), std::string::npos) << walked.status().message();
}

// ForEachEntry inflates the section a chunk at a time: records that straddle
// chunks, and one record larger than a chunk (a 60 KB xattr and a sparse map
// of thousands of extents), come out exactly as they went in.
TEST(LayerIndexStream, EntriesComeOutAsTheyWentInAcrossChunks) {
  LayerIndex idx = SampleIndex();
  idx.entries.clear();
  idx.file_digests.clear();  // of the entries replaced
  uint64_t at = 0;
  for (int i = 0; i < 30000; ++i) {
    TarEntry e;
    e.type = EntryType::kRegular;
    e.mode = 0644;
    e.path = "dir" + std::to_string(i % 97) + "/file-" + std::to_string(i * 7919);
    e.header_offset = at;
    e.data_offset = at + 512;
    if (i == 12345) {
      e.xattrs = {{"user.big", std::string(60000, 'x')}};
      for (uint64_t k = 0; k < 5000; ++k) e.sparse.push_back(SparseExtent{k * 1000003, k + 1});
    }
    at += 1024;
    idx.entries.push_back(e);
  }
  idx.uncompressed_size = at;
  const std::string bytes = idx.Serialize();
  ASSERT_EQ(static_cast<uint8_t>(bytes[12]) & 1, 1);
  LayerIndex header;
  size_t n = 0;
  Status st = LayerIndex::ForEachEntry(Bytes(bytes), "x.index", idx.blob_digest, &header, [&](TarEntry& e) {
    const TarEntry& want = idx.entries[n++];
    EXPECT_EQ(e.path, want.path);
    EXPECT_EQ(e.header_offset, want.header_offset);
    EXPECT_EQ(e.xattrs, want.xattrs);
    EXPECT_EQ(e.sparse.size(), want.sparse.size());
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(n, idx.entries.size());
  EXPECT_EQ(header.diff_id, idx.diff_id);
  EXPECT_EQ(header.uncompressed_size, at);
  EXPECT_TRUE(header.entries.empty());
  EXPECT_EQ(header.checkpoints, idx.checkpoints);
}

// fn's error ends the walk at once and comes back unchanged.
TEST(LayerIndexStream, AnErrorFromFnStopsTheWalk) {
  const std::string bytes = SampleIndex().Serialize();
  int calls = 0;
  Status st = LayerIndex::ForEachEntry(Bytes(bytes), "x.index", "", nullptr, [&](TarEntry&) {
    return ++calls == 2 ? Status::LimitExceeded("stop here") : Status::Ok();
  });
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(st.message(), "stop here");
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace lazyroot
