// PrefetchFiles' layer index ranges, on a real file and the real page cache:
// of an index a mount will read, only the header and the checkpoint and
// chunk digest sections are asked for, not the entries and file digests
// (most of a many-file image's index). The file's pages are evicted with
// POSIX_FADV_DONTNEED (this file only), then counted with mincore.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "index/chunk_digests.h"
#include "index/layer_index.h"
#include "index/layer_indexer.h"
#include "index/sha256.h"
#include "src/store/store.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

// An uncompressed layer of `files` small files and its index file.
std::string ManyFileIndex(int files) {
  std::string tar;
  for (int i = 0; i < files; ++i) {
    tar += tartest::File("d" + std::to_string(i % 97) + "/file-" + std::to_string(i * 7919), std::to_string(i) + "\n");
  }
  tar += tartest::Zeros(2);
  const std::span<const uint8_t> blob(reinterpret_cast<const uint8_t*>(tar.data()), tar.size());
  LayerIndexer ix("sha256:" + Sha256::HexOf(std::string_view(tar)), Compression::kNone,
                  "sha256:" + Sha256::HexOf(std::string_view(tar)));
  EXPECT_TRUE(ix.Consume(blob).ok());
  auto file = ix.FinishFile(ChunkDigestsOf(blob));
  EXPECT_TRUE(file.ok()) << file.status().message();
  return file.ok() ? *file : std::string();
}

// Which pages of the file at fd are in the page cache.
std::vector<bool> Resident(int fd, size_t size) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  EXPECT_NE(map, MAP_FAILED);
  std::vector<unsigned char> vec((size + page - 1) / page);
  EXPECT_EQ(mincore(map, size, vec.data()), 0);
  munmap(map, size);
  std::vector<bool> out(vec.size());
  for (size_t i = 0; i < vec.size(); ++i) out[i] = (vec[i] & 1) != 0;
  return out;
}

TEST(PrefetchFiles, OfALayerIndexOnlyWhatAMountReads) {
  const std::string bytes = ManyFileIndex(20000);
  ASSERT_FALSE(bytes.empty());
  auto range = LayerIndex::MountRange(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), LayerIndex::kHeaderBytes), bytes.size());
  ASSERT_TRUE(range);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // Sections of many pages each, or the test says nothing.
  ASSERT_GT(range->first, 32 * page);                  // the entries
  ASSERT_GT(bytes.size() - range->second, 32 * page);  // the file digests

  std::string dir = testing::TempDir() + "lazyroot-prefetch-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/index";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  std::vector<bool> before = Resident(fd, bytes.size());
  size_t still = 0;
  for (bool r : before) still += r;
  if (still > before.size() / 10) {
    close(fd);
    unlink(path.c_str());
    rmdir(dir.c_str());
    GTEST_SKIP() << "this file system keeps the file in memory (tmpfs?): " << still << " of " << before.size()
                 << " pages resident after DONTNEED";
  }

  PrefetchFiles({}, {}, {path});
  // WILLNEED reads in the background: wait for the range (10 s at most).
  const size_t first = range->first / page, last = (range->second - 1) / page;
  std::vector<bool> now;
  for (int tries = 0; tries < 1000; ++tries) {
    now = Resident(fd, bytes.size());
    size_t missing = 0;
    for (size_t p = first; p <= last; ++p) missing += !now[p];
    if (missing == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (size_t p = first; p <= last; ++p) ASSERT_TRUE(now[p]) << "page " << p << " of the mount's range";
  EXPECT_TRUE(now[0]);  // the header
  // The entries and the file digests were not asked for (a few pages next
  // to what was read may come with it).
  size_t entries = 0, digests = 0;
  const size_t entry_pages = first - 1, digest_pages = now.size() - last - 1;
  for (size_t p = 1; p < first; ++p) entries += now[p];
  for (size_t p = last + 1; p < now.size(); ++p) digests += now[p];
  EXPECT_LT(entries, entry_pages / 2) << entries << " of " << entry_pages << " pages of entries read";
  EXPECT_LT(digests, digest_pages / 2) << digests << " of " << digest_pages << " pages of file digests read";

  // A file whose header is not a current index header is asked for whole.
  ASSERT_EQ(pwrite(fd, "XXXXXXXX", 8, 0), 8);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  PrefetchFiles({}, {}, {path});
  size_t resident = 0;
  for (int tries = 0; tries < 1000; ++tries) {
    now = Resident(fd, bytes.size());
    resident = 0;
    for (bool r : now) resident += r;
    if (resident == now.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(resident, now.size());
  close(fd);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace lazyroot
