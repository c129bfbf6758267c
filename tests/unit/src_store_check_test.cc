// CheckStore on stores made by hand (the integration test, test_fsck.py,
// damages real pulls): what is a problem and what a note, what --quick sees,
// what repair removes, and that a record naming a missing blob is dropped.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "index/sha256.h"
#include "src/store/store.h"
#include "src/store/store_check.h"

namespace lazyroot {
namespace {

std::string Digest(const std::string& bytes) { return "sha256:" + Sha256::HexOf(std::string_view(bytes)); }

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

class StoreCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-store-check-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = Store::Open(dir_ + "/root");
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
  }
  void TearDown() override { (void)std::system(("rm -rf '" + dir_ + "'").c_str()); }

  StoreCheckReport Check(bool repair = false, bool quick = false) {
    StoreCheckOptions options;
    options.repair = repair;
    options.quick = quick;
    auto report = CheckStore(*store_, options);
    EXPECT_TRUE(report.ok()) << report.status().message();
    return report.ok() ? std::move(*report) : StoreCheckReport();
  }
  void Put(const std::string& rel, const std::string& bytes) {
    ASSERT_TRUE(WriteFileAtomic(store_->root() + "/" + rel, bytes).ok());
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreCheckTest, EmptyStoreIsClean) {
  StoreCheckReport r = Check();
  EXPECT_TRUE(r.findings.empty());
}

TEST_F(StoreCheckTest, BlobWithOtherBytesIsAProblemQuickDoesNotHash) {
  const std::string d = Digest("right bytes");
  Put("blobs/sha256/" + d.substr(7), "wrong bytes");  // same size
  EXPECT_EQ(Check(false, true).problems(), 0u);
  StoreCheckReport r = Check();
  ASSERT_EQ(r.problems(), 1u);
  EXPECT_EQ(r.findings[0].object, "blob " + d);
  EXPECT_EQ(r.findings[0].what, "the stored bytes hash to " + Digest("wrong bytes"));
  r = Check(true);
  EXPECT_EQ(r.unrepaired(), 0u);
  EXPECT_FALSE(store_->HasBlob(d));
  EXPECT_TRUE(Check().findings.empty());
}

TEST_F(StoreCheckTest, UnusedBlobIsANoteRepairKeepsIt) {
  const std::string d = Digest("orphan");
  ASSERT_TRUE(store_->WriteBlob(d, "orphan").ok());
  StoreCheckReport r = Check(true);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_FALSE(r.findings[0].problem);
  EXPECT_EQ(r.findings[0].object, "blob " + d);
  EXPECT_TRUE(store_->HasBlob(d));
}

TEST_F(StoreCheckTest, TempFilesOfDeadProcessesAreNotesOfLiveOnesNothing) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const std::string dead = "trees/x.tmp." + std::to_string(child);
  const std::string live = "trees/y.tmp." + std::to_string(::getpid()) + ".1.2";
  Put(dead, "a");
  Put(live, "b");
  StoreCheckReport r = Check();
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_FALSE(r.findings[0].problem);
  EXPECT_EQ(r.findings[0].object, dead);
  Check(true);
  EXPECT_FALSE(Exists(store_->root() + "/" + dead));
  EXPECT_TRUE(Exists(store_->root() + "/" + live));
}

TEST_F(StoreCheckTest, StrayFilesAreProblemsRepairRemovesThem) {
  Put("blobs/sha256/not-a-digest", "x");
  Put("images/notes.txt", "x");
  StoreCheckReport r = Check();
  EXPECT_EQ(r.problems(), 2u);
  r = Check(true);
  EXPECT_EQ(r.unrepaired(), 0u);
  EXPECT_TRUE(Check().findings.empty());
}

TEST_F(StoreCheckTest, RecordWithMissingManifestIsDroppedAndNamed) {
  ImageRecord rec;
  rec.reference = "registry.example/app:v1";
  rec.manifest_digest = Digest("manifest");
  rec.config_digest = Digest("config");
  rec.platform = "linux/amd64";
  ASSERT_TRUE(store_->PutImage(rec).ok());
  StoreCheckReport r = Check();
  ASSERT_EQ(r.problems(), 1u);
  EXPECT_EQ(r.findings[0].object, "image registry.example/app:v1");
  EXPECT_EQ(r.findings[0].what, "manifest " + rec.manifest_digest + " is missing");
  r = Check(true);
  ASSERT_EQ(r.pull_again.size(), 1u);
  EXPECT_EQ(r.pull_again[0], "registry.example/app:v1");
  auto left = store_->GetImage(rec.reference);
  ASSERT_TRUE(left.ok());
  EXPECT_FALSE(left->has_value());
  EXPECT_TRUE(Check().findings.empty());
}

TEST_F(StoreCheckTest, UnknownImageIsNotFound) {
  StoreCheckOptions options;
  options.references = {"registry.example/nope:v1"};
  auto r = CheckStore(*store_, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace lazyroot
