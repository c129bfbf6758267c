// The depth limit and size cap of every JSON entry point: ParseJsonDocument
// itself, and each reader of a registry answer or a store file that goes
// through it (credentials and token answers have their own tests).
#include "src/image/json_document.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "index/sha256.h"
#include "src/image/manifest.h"
#include "src/image/oci_layout.h"
#include "src/registry/registry_client.h"
#include "src/store/store.h"

namespace lazyroot {
namespace {

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// An object (depth 1) holding `arrays` nested arrays: depth 1 + arrays.
std::string NestedArrays(size_t arrays) {
  return R"({"a":)" + std::string(arrays, '[') + std::string(arrays, ']') + "}";
}
// `objects` nested objects {"a":{"a":…{}…}}: depth = objects.
std::string NestedObjects(size_t objects) {
  return Repeat(R"({"a":)", objects - 1) + "{}" + std::string(objects - 1, '}');
}

constexpr uint64_t kCap = uint64_t{4} << 20;

TEST(ParseJsonDocument, SixtyFourLevelsAreAcceptedSixtyFiveAreNot) {
  EXPECT_TRUE(ParseJsonDocument("{}", "doc", kCap).ok());
  for (size_t depth : {2, 63, 64}) {
    SCOPED_TRACE(depth);
    EXPECT_TRUE(ParseJsonDocument(NestedArrays(depth - 1), "doc", kCap).ok());
    EXPECT_TRUE(ParseJsonDocument(NestedObjects(depth), "doc", kCap).ok());
  }
  for (size_t depth : {65, 66, 1000}) {
    SCOPED_TRACE(depth);
    auto a = ParseJsonDocument(NestedArrays(depth - 1), "doc", kCap);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.status().code(), ErrorCode::kCorruption);
    // The parser stops at the 65th opening bracket: after {"a": and 63 arrays.
    EXPECT_EQ(a.status().message(), "doc: JSON nested deeper than 64 levels at offset 68");
    auto o = ParseJsonDocument(NestedObjects(depth), "doc", kCap);
    ASSERT_FALSE(o.ok());
    EXPECT_NE(o.status().message().find("JSON nested deeper than 64 levels"), std::string::npos);
  }
}

TEST(ParseJsonDocument, TwoHundredThousandLevelsAreRefusedWithoutCrashing) {
  const std::vector<std::string> bombs = {
      NestedArrays(200000),
      NestedObjects(200000),
      std::string(200000, '['),                      // unterminated
      Repeat(R"([{"a":)", 100000),                   // alternating, unterminated
      R"({"a":)" + std::string(4u << 20, '[') + "}",  // as deep as a 4 MiB manifest can be
  };
  for (const std::string& bomb : bombs) {
    auto r = ParseJsonDocument(bomb, "manifest", uint64_t{8} << 20);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("manifest: JSON nested deeper than 64 levels"), std::string::npos)
        << r.status().message();
  }
}

TEST(ParseJsonDocument, BracketsInsideStringsAreNotNesting) {
  std::string text = R"({"a":")" + std::string(100000, '[') + R"(\"{{{"})";
  auto r = ParseJsonDocument(text, "doc", kCap);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["a"].GetStringLength(), 100000u + 4);
}

TEST(ParseJsonDocument, SizeCapIsCheckedBeforeParsing) {
  std::string text = R"({"a":")" + std::string(1000, 'x') + R"("})";
  EXPECT_TRUE(ParseJsonDocument(text, "doc", text.size()).ok());
  auto r = ParseJsonDocument(text, "token response", text.size() - 1, ErrorCode::kUnauthorized);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(r.status().message(), "token response: larger than " + std::to_string(text.size() - 1) + " bytes");
}

TEST(ParseJsonDocument, ErrorsCarryTheCallersCodeAndNeverTheText) {
  struct Case {
    std::string text, message;
  };
  const std::vector<Case> cases = {
      {"", "config.json is not valid JSON: The document is empty. at offset 0"},
      {R"({"secret":"s3cret")", "config.json is not valid JSON: Missing a comma or '}' after an object member. at offset 18"},
      {R"({} s3cret)", "config.json is not valid JSON: The document root must not be followed by other values. at offset 3"},
      {R"(["s3cret"])", "config.json is not a JSON object"},
      {"\"s3cret\"", "config.json is not a JSON object"},
  };
  for (const Case& c : cases) {
    auto r = ParseJsonDocument(c.text, "config.json", kCap, ErrorCode::kInvalidArgument);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(ParseJsonDocument, ValuesSurvive) {
  auto r = ParseJsonDocument(R"({"s":"x\u00e9","n":-3,"u":18446744073709551615,"d":1.5,"b":true,"z":null,"a":[1,{}]})",
                             "doc", kCap);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const JsonDocument& d = *r;
  EXPECT_STREQ(d["s"].GetString(), "x\xc3\xa9");
  EXPECT_EQ(d["n"].GetInt(), -3);
  EXPECT_EQ(d["u"].GetUint64(), UINT64_MAX);
  EXPECT_EQ(d["d"].GetDouble(), 1.5);
  EXPECT_TRUE(d["b"].GetBool());
  EXPECT_TRUE(d["z"].IsNull());
  EXPECT_EQ(d["a"].Size(), 2u);
}

// "[0,0,…]" with n values in all (the object and its array included).
std::string FlatArray(size_t n) {
  std::string out = R"({"a":[)";
  for (size_t i = 0; i + 2 < n; ++i) out += i ? ",0" : "0";
  return out + "]}";
}

TEST(ParseJsonDocument, ValueBudget) {
  EXPECT_TRUE(ParseJsonDocument(FlatArray(kMaxJsonValues), "doc", kCap).ok());
  auto r = ParseJsonDocument(FlatArray(kMaxJsonValues + 1), "doc", kCap);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  EXPECT_TRUE(r.status().message().starts_with("doc: more than 1048576 JSON values at offset 2097"))
      << r.status().message();
}

uint64_t VmSizeBytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmSize:")) return std::stoull(line.substr(7)) * 1024;
  }
  return 0;
}

// With RapidJSON's own allocator a failed malloc is written through (a
// crash); ours throws std::bad_alloc, which the callers' boundaries report.
// The parse runs in a fresh copy of this test binary (fork + exec of
// /proc/self/exe, told by LAZYROOT_OOM_CHILD), under an address-space limit
// 16 MiB above its size, on a document that needs about 30 MiB (a 16 MiB
// parse stack, then a 15 MiB array). Not in a plain fork: there the heap the
// earlier tests of this process freed is reused without new address space,
// and the parse fitted when every test ran in one process.
TEST(ParseJsonDocument, OutOfMemoryThrowsBadAlloc) {
  const std::string text = FlatArray(kMaxJsonValues - 100000);
  if (std::getenv("LAZYROOT_OOM_CHILD") != nullptr) {
    // Big blocks from fresh mappings rather than from what is left of the heap.
    malloc_trim(0);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    rlimit lim{};
    lim.rlim_cur = lim.rlim_max = VmSizeBytes() + (16u << 20);
    if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(3);
    try {
      auto r = ParseJsonDocument(text, "doc", kCap);
      _exit(r.ok() ? 0 : 1);
    } catch (const std::bad_alloc&) {
      _exit(42);
    } catch (...) {
      _exit(2);
    }
  }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("LAZYROOT_OOM_CHILD", "1", 1);
    if (int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);  // the child's own gtest report
    execl("/proc/self/exe", "src_tests", "--gtest_filter=ParseJsonDocument.OutOfMemoryThrowsBadAlloc", nullptr);
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 42) << "0: the parse fitted; 3: setrlimit failed; 4: exec failed";
}

// Each manifest-side entry point refuses a deep document with a message that
// names the document kind.
TEST(JsonEntryPoints, ManifestsIndexesAndConfigs) {
  const std::string deep = NestedArrays(200000);
  struct Case {
    std::string name;
    Status status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"ClassifyManifest", ClassifyManifest("application/vnd.oci.image.manifest.v1+json", deep).status(),
       "manifest: JSON nested deeper than 64 levels"},
      {"ManifestMediaType", ManifestMediaType("", deep).status(), "manifest: JSON nested deeper than 64 levels"},
      {"ParseIndex", ParseIndex(deep).status(), "index: JSON nested deeper than 64 levels"},
      {"ParseImageManifest", ParseImageManifest(deep).status(), "manifest: JSON nested deeper than 64 levels"},
      {"ParseImageConfig", ParseImageConfig(deep).status(), "image config: JSON nested deeper than 64 levels"},
      {"ParseImageManifest over the cap", ParseImageManifest(std::string(kMaxManifestBytes + 1, ' ')).status(),
       "manifest: larger than 4194304 bytes"},
      {"ParseImageConfig over the cap", ParseImageConfig(std::string(kMaxConfigBytes + 1, ' ')).status(),
       "image config: larger than 8388608 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.status.code(), ErrorCode::kCorruption);
    EXPECT_NE(c.status.message().find(c.message), std::string::npos) << c.status.message();
  }
}

TEST(JsonEntryPoints, RegistryErrorBodyThatIsDeepIsNoDetail) {
  EXPECT_EQ(RegistryErrorText(R"({"errors":)" + std::string(200000, '[') + "}"), "");
  EXPECT_EQ(RegistryErrorText(R"({"errors":[{"code":"X","message":"y"}]})"), "X: y");
}

// A temp directory removed at the end.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-json-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf '" + dir_ + "'").c_str()), 0); }
  void Write(const std::string& rel, const std::string& text) { std::ofstream(dir_ + "/" + rel) << text; }
  std::string dir_;
};

using OciLayoutJson = TempDir;

TEST_F(OciLayoutJson, DeepOciLayoutAndIndexAreRefused) {
  ASSERT_EQ(mkdir((dir_ + "/blobs").c_str(), 0755), 0);
  Write("oci-layout", R"({"imageLayoutVersion":"1.0.0","x":)" + std::string(60000, '[') + "}");
  Write("index.json", R"({"manifests":[]})");
  auto r = OpenOciLayout(dir_, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  EXPECT_EQ(r.status().message(), "oci:" + dir_ + ": oci-layout: JSON nested deeper than 64 levels at offset 97");

  Write("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  Write("index.json", R"({"manifests":)" + std::string(200000, '[') + "}");
  r = OpenOciLayout(dir_, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.status().message().find("oci:" + dir_ + ": index.json: JSON nested deeper than 64 levels"),
            std::string::npos)
      << r.status().message();
}

using StoreRecordJson = TempDir;

TEST_F(StoreRecordJson, DeepImageRecordIsCorruptionNamingTheFile) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const std::string reference = "example.com/a:1";
  const std::string path = dir_ + "/images/" + Sha256::HexOf(std::string_view(reference)) + ".json";
  Write("images/" + Sha256::HexOf(std::string_view(reference)) + ".json",
        R"({"reference":"example.com/a:1","layers":)" + std::string(500000, '[') + "}");
  auto got = (*store)->GetImage(reference);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(got.status().message().find("image record " + path + ": JSON nested deeper than 64 levels"),
            std::string::npos)
      << got.status().message();
  auto listed = (*store)->ListImages();
  ASSERT_FALSE(listed.ok());
  EXPECT_NE(listed.status().message().find("JSON nested deeper than 64 levels"), std::string::npos);
}

}  // namespace
}  // namespace lazyroot
