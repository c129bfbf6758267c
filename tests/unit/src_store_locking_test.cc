// The store's locking rules (src/store/STORE.md) that one process can check on its
// own: temp names unique per thread, WriteFileAtomic always publishing one
// complete version, an in-use marker swept between its open and its lock
// being taken again on the file its path names (interleaved deterministically
// with the LAZYROOT_TEST_PAUSE hook), gc keeping what an in-use image needs,
// refusing to guess when it cannot tell, and clearing every temp file.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "index/sha256.h"
#include "src/store/store.h"

namespace lazyroot {
namespace {

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

std::string Digest(const std::string& bytes) { return "sha256:" + Sha256::HexOf(std::string_view(bytes)); }

// Version v of the file: a header naming it, then bytes that depend on it,
// so a reader can tell a complete version from a mixture of two.
std::string Version(int writer, int n) {
  std::string head = "writer " + std::to_string(writer) + " version " + std::to_string(n) + "\n";
  std::string body(64 * 1024 + writer * 100 + n, static_cast<char>('a' + (writer * 7 + n) % 26));
  return head + body;
}

class StoreLockingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-store-locking-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = Store::Open(dir_ + "/store");
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
  }
  void TearDown() override {
    unsetenv("LAZYROOT_TEST_PAUSE");
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  // A one-layer image with a record; returns its manifest digest.
  std::string AddImage(const std::string& reference, const std::string& layer_bytes) {
    const std::string layer = Digest(layer_bytes);
    const std::string config = R"({"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[")" +
                               layer + R"("]}})";
    const std::string manifest =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
        R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        Digest(config) + R"(","size":)" + std::to_string(config.size()) +
        R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + layer +
        R"(","size":)" + std::to_string(layer_bytes.size()) + "}]}";
    for (const std::string* b : {&layer_bytes, &config, &manifest}) {
      EXPECT_TRUE(store_->WriteBlob(Digest(*b), *b).ok());
    }
    ImageRecord r;
    r.reference = reference;
    r.manifest_digest = Digest(manifest);
    r.config_digest = Digest(config);
    r.layer_digests = {layer};
    EXPECT_TRUE(store_->PutImage(r).ok());
    return r.manifest_digest;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreLockingTest, TempSuffixesDifferAcrossThreadsAndCalls) {
  std::vector<std::vector<std::string>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&got, t] {
      for (int i = 0; i < 500; ++i) got[t].push_back(UniqueTempSuffix());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : got) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 2000u);
  const std::string prefix = ".tmp." + std::to_string(getpid()) + ".";
  for (const std::string& s : all) ASSERT_EQ(s.rfind(prefix, 0), 0u) << s;
}

// Many threads of one process publish versions of one path while another
// reads it: every write succeeds, every read is one whole version, and no
// temp file is left behind.
TEST_F(StoreLockingTest, ManyThreadsWriteOnePathAtomically) {
  const std::string path = dir_ + "/store/images/shared.json";
  ASSERT_TRUE(WriteFileAtomic(path, Version(0, 0)).ok());
  constexpr int kWriters = 8, kVersions = 40;
  std::atomic<int> failures{0}, writers_left{kWriters}, reads{0};
  std::vector<std::string> bad_reads;
  std::thread reader([&] {
    while (writers_left.load() > 0) {
      std::ifstream f(path, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      int w = -1, n = -1;
      if (std::sscanf(text.c_str(), "writer %d version %d", &w, &n) != 2 || text != Version(w, n)) {
        bad_reads.push_back(text.substr(0, 40));
      }
      ++reads;
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int n = 0; n < kVersions; ++n) {
        Status st = WriteFileAtomic(path, Version(w, n));
        if (!st.ok()) {
          ++failures;
          ADD_FAILURE() << st.message();
        }
      }
      --writers_left;
    });
  }
  for (auto& t : writers) t.join();
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(bad_reads.empty()) << bad_reads.size() << " torn reads, first: " << bad_reads.front();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(Names(dir_ + "/store/images"), std::vector<std::string>{"shared.json"});
}

// The race of issue 14: gc sweeps a marker after the holder opened it and
// before it locked it. The holder must end up holding the file the path
// names, so the next gc sees the image in use. Interleaved deterministically:
// the holder thread stops at "inuse-opened" until gc has run.
TEST_F(StoreLockingTest, MarkerSweptBetweenOpenAndLockIsTakenAgain) {
  const std::string manifest = AddImage("example.test/app:1", "layer bytes of app 1");
  const std::string marker = dir_ + "/store/inuse/" + manifest.substr(7) + ".lock";
  const std::string pause = dir_ + "/pause";
  ASSERT_EQ(mkdir(pause.c_str(), 0755), 0);
  ASSERT_EQ(setenv("LAZYROOT_TEST_PAUSE", ("inuse-opened:" + pause).c_str(), 1), 0);

  Result<FileLock> held = Status::IoError("not run");
  std::thread holder([&] { held = store_->HoldImageInUse(manifest); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!Exists(pause + "/inuse-opened.reached") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(Exists(pause + "/inuse-opened.reached"));
  ASSERT_TRUE(Exists(marker));  // opened (created), not locked yet
  auto swept = store_->Gc();
  ASSERT_TRUE(swept.ok()) << swept.status().message();
  EXPECT_FALSE(Exists(marker)) << "gc did not sweep the unlocked marker: the race was not provoked";
  std::ofstream(pause + "/inuse-opened.go").put('\n');
  holder.join();
  ASSERT_TRUE(held.ok()) << held.status().message();
  unsetenv("LAZYROOT_TEST_PAUSE");

  struct stat named {}, locked {};
  ASSERT_EQ(stat(marker.c_str(), &named), 0) << "the marker is held on an unlinked file";
  ASSERT_EQ(fstat(held->fd(), &locked), 0);
  EXPECT_EQ(named.st_ino, locked.st_ino);

  // With the record gone, only the marker keeps the image.
  ASSERT_TRUE(store_->RemoveImage("example.test/app:1").ok());
  auto kept = store_->Gc();
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_EQ(kept->blobs_removed, 0u);
  EXPECT_TRUE(store_->HasBlob(manifest));
  EXPECT_TRUE(store_->HasBlob(Digest("layer bytes of app 1")));

  *held = FileLock();
  auto freed = store_->Gc();
  ASSERT_TRUE(freed.ok()) << freed.status().message();
  EXPECT_EQ(freed->blobs_removed, 3u);  // layer, config, manifest
  EXPECT_FALSE(Exists(marker));
}

TEST_F(StoreLockingTest, GcRemovesNothingWhenAnInUseImageCannotBeRead) {
  const std::string orphan = "orphan blob";
  ASSERT_TRUE(store_->WriteBlob(Digest(orphan), orphan).ok());
  const std::string unknown = Digest("a manifest this store never had");
  auto held = store_->HoldImageInUse(unknown);
  ASSERT_TRUE(held.ok());
  auto gc = store_->Gc();
  ASSERT_FALSE(gc.ok());
  EXPECT_EQ(gc.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(gc.status().message().find("in-use image " + unknown), std::string::npos) << gc.status().message();
  EXPECT_TRUE(store_->HasBlob(Digest(orphan)));
  *held = FileLock();
  ASSERT_TRUE(store_->Gc().ok());
  EXPECT_FALSE(store_->HasBlob(Digest(orphan)));
}

// Under the exclusive lock no writer runs, so every temp file is stale:
// gc removes them wherever they are, and keeps the live image's objects.
// CommitPartial moves only a regular staged file into blobs/: a symlink (to
// a file holding the very bytes) or a FIFO put at tmp/<hex>.partial is
// refused, naming it, and blobs/ is left without the blob.
TEST_F(StoreLockingTest, CommitPartialRefusesASymlinkOrFifoStagedInPlace) {
  const std::string bytes = "a staged blob\n";
  const std::string digest = Digest(bytes);
  const std::string partial = store_->PartialPath(digest);
  const std::string outside = dir_ + "/outside";
  std::ofstream(outside) << bytes;
  ASSERT_EQ(symlink(outside.c_str(), partial.c_str()), 0);
  Status st = store_->CommitPartial(digest);
  EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.message();
  EXPECT_NE(st.message().find(partial + " is a symlink"), std::string::npos) << st.message();
  EXPECT_FALSE(store_->HasBlob(digest));
  EXPECT_FALSE(Exists(store_->BlobPath(digest)));
  ASSERT_EQ(unlink(partial.c_str()), 0);

  ASSERT_EQ(mkfifo(partial.c_str(), 0644), 0);
  st = store_->CommitPartial(digest);
  EXPECT_EQ(st.code(), ErrorCode::kCorruption) << st.message();
  EXPECT_NE(st.message().find(partial + " is not a regular file"), std::string::npos) << st.message();
  EXPECT_FALSE(Exists(store_->BlobPath(digest)));
  ASSERT_EQ(unlink(partial.c_str()), 0);

  std::ofstream(partial) << bytes;
  ASSERT_TRUE(store_->CommitPartial(digest).ok());
  struct stat sb {};
  ASSERT_EQ(lstat(store_->BlobPath(digest).c_str(), &sb), 0);
  EXPECT_TRUE(S_ISREG(sb.st_mode));
}

TEST_F(StoreLockingTest, GcRemovesTempFilesEverywhere) {
  const std::string manifest = AddImage("example.test/app:2", "layer bytes of app 2");
  const std::string hex = manifest.substr(7);
  const std::string s = dir_ + "/store";
  const std::string suffix = ".tmp.1.2.3";
  const std::vector<std::string> temps = {s + "/blobs/sha256/" + hex + suffix, s + "/index/sha256/" + hex + suffix,
                                          s + "/trees/" + hex + suffix,        s + "/images/x.json" + suffix,
                                          s + "/rootfs/" + hex + ".done" + suffix, s + "/tmp/" + hex + ".partial",
                                          s + "/tmp/" + hex + ".index" + suffix,   s + "/tmp/" + hex + ".lock"};
  for (const std::string& t : temps) std::ofstream(t) << "stale";
  ASSERT_EQ(mkdir((s + "/rootfs/" + hex).c_str(), 0755), 0);
  ASSERT_EQ(mkdir((s + "/rootfs/" + hex + ".lazyroot-tmp-AbCdEf").c_str(), 0755), 0);
  std::ofstream(s + "/rootfs/" + hex + ".done") << "root\n";
  auto gc = store_->Gc();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  for (const std::string& t : temps) EXPECT_FALSE(Exists(t)) << t;
  EXPECT_FALSE(Exists(s + "/rootfs/" + hex + ".lazyroot-tmp-AbCdEf"));
  EXPECT_TRUE(Exists(s + "/rootfs/" + hex));
  EXPECT_TRUE(Exists(s + "/rootfs/" + hex + ".done"));
  EXPECT_TRUE(store_->HasBlob(manifest));
  EXPECT_EQ(gc->blobs_removed, 0u);
  EXPECT_EQ(gc->partials_removed, 1u);
}

TEST_F(StoreLockingTest, ABusyStoreLockCallsOnWaitThenWaits) {
  auto exclusive = store_->LockStore(true);
  ASSERT_TRUE(exclusive.ok());
  std::atomic<bool> waited{false}, got{false};
  std::thread t([&] {
    auto shared = store_->LockStore(false, [&] { waited = true; });
    got = shared.ok();
  });
  while (!waited.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(got.load());  // still waiting: we hold it exclusively
  *exclusive = FileLock();
  t.join();
  EXPECT_TRUE(got.load());
  // Free: on_wait is not called.
  bool called = false;
  auto again = store_->LockStore(true, [&] { called = true; });
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace lazyroot
