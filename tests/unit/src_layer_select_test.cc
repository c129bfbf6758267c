// ResolveLayerArg: `--layer N` / `--upto N` of mount, ls and cat, by number
// or by digest prefix.

#include <gtest/gtest.h>

#include <string>

#include "src/inspect/layer_query.h"

namespace lazyroot {
namespace {

ImageRecord Record() {
  ImageRecord r;
  r.reference = "example.com/app:1";
  r.layer_digests = {
      "sha256:aaaa1111" + std::string(56, '0'),
      "sha256:aaaa2222" + std::string(56, '0'),
      "sha256:1234abcd" + std::string(56, '0'),
  };
  return r;
}

TEST(ResolveLayerArg, Numbers) {
  EXPECT_EQ(ResolveLayerArg(Record(), "1").value(), 0u);
  EXPECT_EQ(ResolveLayerArg(Record(), "3").value(), 2u);
  auto zero = ResolveLayerArg(Record(), "0");
  ASSERT_EQ(zero.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(zero.status().message().find("has 3 layers"), std::string::npos) << zero.status().message();
  auto over = ResolveLayerArg(Record(), "4");
  ASSERT_EQ(over.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(over.status().message().find("\"4\""), std::string::npos) << over.status().message();
  EXPECT_NE(over.status().message().find("has 3 layers"), std::string::npos);
  // Digits alone are a number even when they would be a digest prefix.
  EXPECT_EQ(ResolveLayerArg(Record(), "1234").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ResolveLayerArg(Record(), "99999999999999").status().code(), ErrorCode::kInvalidArgument);
}

TEST(ResolveLayerArg, DigestPrefixes) {
  EXPECT_EQ(ResolveLayerArg(Record(), "aaaa1").value(), 0u);
  EXPECT_EQ(ResolveLayerArg(Record(), "sha256:aaaa2").value(), 1u);
  EXPECT_EQ(ResolveLayerArg(Record(), "AAAA2").value(), 1u);
  EXPECT_EQ(ResolveLayerArg(Record(), "sha256:1234").value(), 2u);  // an all-digit prefix, spelled as a digest
  EXPECT_EQ(ResolveLayerArg(Record(), Record().layer_digests[2]).value(), 2u);  // the exact full digest
  EXPECT_EQ(ResolveLayerArg(Record(), Record().layer_digests[1].substr(7)).value(), 1u);
}

TEST(ResolveLayerArg, BadPrefixes) {
  auto ambiguous = ResolveLayerArg(Record(), "aaaa");
  ASSERT_EQ(ambiguous.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ambiguous.status().message().find("ambiguous"), std::string::npos);
  EXPECT_NE(ambiguous.status().message().find("1 (sha256:aaaa1111"), std::string::npos) << ambiguous.status().message();
  EXPECT_NE(ambiguous.status().message().find("2 (sha256:aaaa2222"), std::string::npos);
  auto short_prefix = ResolveLayerArg(Record(), "aaa");
  ASSERT_EQ(short_prefix.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(short_prefix.status().message().find("at least 4"), std::string::npos);
  auto not_hex = ResolveLayerArg(Record(), "zzzz");
  ASSERT_EQ(not_hex.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(not_hex.status().message().find("\"zzzz\""), std::string::npos);
  EXPECT_EQ(ResolveLayerArg(Record(), "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ResolveLayerArg(Record(), "sha256:").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ResolveLayerArg(Record(), "-1").status().code(), ErrorCode::kInvalidArgument);
  auto none = ResolveLayerArg(Record(), "beef");
  ASSERT_EQ(none.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("has 3 layers"), std::string::npos);
  EXPECT_EQ(ResolveLayerArg(Record(), Record().layer_digests[0] + "0").status().code(),
            ErrorCode::kInvalidArgument);  // longer than a digest
}

TEST(ResolveLayerArg, TheSameBlobTwiceIsAmbiguous) {
  ImageRecord r = Record();
  r.layer_digests.push_back(r.layer_digests[2]);
  auto twice = ResolveLayerArg(r, "1234abcd");
  ASSERT_EQ(twice.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ResolveLayerArg(r, "4").value(), 3u);  // a number still picks one
}

}  // namespace
}  // namespace lazyroot
