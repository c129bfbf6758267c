#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "src/image/json_document.h"
#include "src/registry/credential_store.h"

namespace lazyroot {
namespace {

// A temp dir for the auth file; no helper is configured (docker_config_dir
// points at an empty dir), so every destination is the file.
class CredentialStore : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-credstore-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.docker_config_dir = dir_;
    options_.authfile = dir_ + "/sub/auth.json";
    dest_.auth_file = options_.authfile;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& text) {
    std::filesystem::create_directories(dir_ + "/sub");
    std::ofstream(options_.authfile) << text;
  }
  std::string Read() {
    std::ifstream f(options_.authfile);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  JsonDocument Doc() {
    auto doc = ParseJsonDocument(Read(), "auth.json", 1 << 20);
    EXPECT_TRUE(doc.ok()) << doc.status().message();
    return doc.ok() ? std::move(*doc) : JsonDocument();
  }
  std::string dir_;
  CredentialOptions options_;
  CredentialDestination dest_;
};

TEST_F(CredentialStore, DestinationIsTheNamedFile) {
  auto d = LoginDestination("h:5000", options_);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->auth_file, options_.authfile);
  EXPECT_EQ(d->helper, "");
  EXPECT_EQ(LoginKeyHost("quay.io/team/app"), "quay.io");
}

TEST_F(CredentialStore, StoreCreatesPrivateFileAndKeepsTheRest) {
  Write(
      R"({"auths": {"other:1": {"auth": "b3RoZXI6eA=="}}, "credHelpers": {"x.io": "pass"}, "unknown": [1, {"a": null}]})");
  ASSERT_TRUE(StoreCredential(dest_, "h:5000", "user", "pa:ss", options_).ok());
  struct stat st {};
  ASSERT_EQ(stat(options_.authfile.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  JsonDocument doc = Doc();
  EXPECT_STREQ(doc["auths"]["h:5000"]["auth"].GetString(), "dXNlcjpwYTpzcw==");  // user:pa:ss
  EXPECT_STREQ(doc["auths"]["other:1"]["auth"].GetString(), "b3RoZXI6eA==");
  EXPECT_STREQ(doc["credHelpers"]["x.io"].GetString(), "pass");
  EXPECT_TRUE(doc["unknown"][1]["a"].IsNull());
  // A second login replaces the entry (an identity token with it).
  Write(R"({"auths": {"h:5000": {"auth": "eDp5", "identitytoken": "tok"}}})");
  ASSERT_TRUE(StoreCredential(dest_, "h:5000", "u2", "p2", options_).ok());
  doc = Doc();
  EXPECT_FALSE(doc["auths"]["h:5000"].HasMember("identitytoken"));
  // And pull's lookup reads back what login wrote.
  auto c = LookupCredential("h:5000", options_);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "u2");
  EXPECT_EQ((*c)->secret, "p2");
}

TEST_F(CredentialStore, NewFileAndDirectory) {
  ASSERT_TRUE(StoreCredential(dest_, "h:5000", "user", "pw", options_).ok());
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_ + "/sub"), {}), 1);  // no temp file left
}

TEST_F(CredentialStore, MalformedFileIsNotOverwritten) {
  Write("{\"auths\": [");
  Status st = StoreCredential(dest_, "h:5000", "user", "s3cret", options_);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find(options_.authfile), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("s3cret"), std::string::npos);
  EXPECT_EQ(Read(), "{\"auths\": [");
  Write(R"({"auths": "nope"})");
  EXPECT_FALSE(StoreCredential(dest_, "h:5000", "user", "pw", options_).ok());
  EXPECT_EQ(Read(), R"({"auths": "nope"})");
}

TEST_F(CredentialStore, EraseTakesTheKeyAndItsUrlFormsOnly) {
  Write(R"({"auths": {"h:5000": {"auth": "eDp5"}, "https://h:5000/v1/": {"auth": "eDp5"},
            "h:5000/team": {"auth": "eDp5"}, "h:50001": {"auth": "eDp5"}}, "keep": true})");
  auto removed = EraseCredential(dest_, "h:5000", options_);
  ASSERT_TRUE(removed.ok() && *removed);
  JsonDocument doc = Doc();
  EXPECT_EQ(doc["auths"].MemberCount(), 2u);
  EXPECT_TRUE(doc["auths"].HasMember("h:5000/team"));
  EXPECT_TRUE(doc["auths"].HasMember("h:50001"));
  EXPECT_TRUE(doc["keep"].GetBool());
  // The namespaced key by its name; nothing left for a second erase.
  ASSERT_TRUE(*EraseCredential(dest_, "h:5000/team", options_));
  const std::string before = Read();
  auto again = EraseCredential(dest_, "h:5000", options_);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(Read(), before);
}

TEST_F(CredentialStore, EraseAll) {
  Write(R"({"auths": {"a": {"auth": "eDp5"}, "b": {"auth": "eDp5"}}, "credHelpers": {"c": "d"}})");
  auto n = EraseAllCredentials(options_.authfile);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  JsonDocument doc = Doc();
  EXPECT_EQ(doc["auths"].MemberCount(), 0u);
  EXPECT_STREQ(doc["credHelpers"]["c"].GetString(), "d");
  auto none = EraseAllCredentials(dir_ + "/absent.json");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
}

TEST_F(CredentialStore, MissingRuntimeDirIsRefused) {
  options_.authfile.clear();
  const char* old = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved = old ? old : "";
  unsetenv("REGISTRY_AUTH_FILE");
  setenv("XDG_RUNTIME_DIR", (dir_ + "/no-such-dir").c_str(), 1);
  auto d = LoginDestination("h:5000", options_);
  EXPECT_EQ(d.status().code(), ErrorCode::kInvalidArgument);
  setenv("XDG_RUNTIME_DIR", dir_.c_str(), 1);
  d = LoginDestination("h:5000", options_);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->auth_file, dir_ + "/containers/auth.json");
  if (old) {
    setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
  } else {
    unsetenv("XDG_RUNTIME_DIR");
  }
}

}  // namespace
}  // namespace lazyroot
