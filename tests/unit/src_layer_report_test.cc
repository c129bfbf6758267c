#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/inspect/layer_report.h"

namespace lazyroot {
namespace {

TEST(ConfigHistory, AbsentOrNullIsEmpty) {
  auto a = ParseConfigHistory(R"({"rootfs":{}})");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE(a->empty());
  auto b = ParseConfigHistory(R"({"history":null})");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_TRUE(b->empty());
}

TEST(ConfigHistory, ReadsEveryField) {
  auto h = ParseConfigHistory(
      R"({"history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD x /","author":"me","comment":"c"},
                     {"created_by":"ENV A=1","empty_layer":true},{}]})");
  ASSERT_TRUE(h.ok()) << h.status().message();
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0].created, "2024-01-01T00:00:00Z");
  EXPECT_EQ((*h)[0].created_by, "ADD x /");
  EXPECT_EQ((*h)[0].author, "me");
  EXPECT_EQ((*h)[0].comment, "c");
  EXPECT_FALSE((*h)[0].empty_layer);
  EXPECT_TRUE((*h)[1].empty_layer);
  EXPECT_EQ((*h)[2].created_by, "");
}

TEST(ConfigHistory, WrongTypesNameTheField) {
  auto a = ParseConfigHistory(R"({"history":{}})");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(a.status().message().find("config.history"), std::string::npos);
  auto b = ParseConfigHistory(R"({"history":[{"created_by":"x"},{"created_by":5}]})");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("config.history[1].created_by"), std::string::npos) << b.status().message();
  auto c = ParseConfigHistory(R"({"history":[{"empty_layer":"yes"}]})");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("empty_layer"), std::string::npos);
}

TEST(ConfigHistory, MatchesLayersSkippingEmptyOnes) {
  std::vector<HistoryEntry> h(6);
  h[1].empty_layer = true;
  h[3].empty_layer = true;
  h[5].empty_layer = true;
  EXPECT_EQ(MatchHistoryToLayers(h, 3), (std::vector<int>{0, 2, 4}));
  // Too few entries: the remaining layers have none; too many: ignored.
  EXPECT_EQ(MatchHistoryToLayers(h, 4), (std::vector<int>{0, 2, 4, -1}));
  EXPECT_EQ(MatchHistoryToLayers(h, 1), (std::vector<int>{0}));
  EXPECT_EQ(MatchHistoryToLayers({}, 2), (std::vector<int>{-1, -1}));
}

}  // namespace
}  // namespace lazyroot
