// Field decoders under TarReader: numeric fields, decimals, PAX times.
#include <gtest/gtest.h>

#include <string>

#include "index/pax_records.h"
#include "index/tar_header.h"

namespace lazyroot::tar {
namespace {

int64_t Num(std::string_view field) {
  Result<int64_t> r = ParseNumericField(field, "f");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : -999;
}

TEST(TarHeaderFields, Octal) {
  EXPECT_EQ(Num(std::string("0000644\0", 8)), 0644);
  EXPECT_EQ(Num("   644 \0"), 0644);
  EXPECT_EQ(Num(std::string("\0\0\0\0\0\0\0\0", 8)), 0);
  EXPECT_EQ(Num("        "), 0);
  EXPECT_EQ(Num(std::string("17\0garbage", 10)), 017);  // what follows the terminator is ignored
  EXPECT_EQ(Num("77777777777"), 077777777777);
  EXPECT_FALSE(ParseNumericField("0008", "f").ok());
  EXPECT_EQ(Num("12 3x"), 012);
  EXPECT_FALSE(ParseNumericField("-1", "f").ok());
}

TEST(TarHeaderFields, Base256) {
  EXPECT_EQ(Num(std::string("\x80\0\0\0\0\x2d\xc6\xc0", 8)), 3000000);
  EXPECT_EQ(Num(std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8)), -1);
  EXPECT_EQ(Num(std::string("\xff\xff\xff\xff\xff\xff\xfc\x18", 8)), -1000);
  EXPECT_EQ(Num(std::string("\x80\0\0\0\0\0\0\x02\0\0\0\0", 12)), int64_t{1} << 33);
  // 2^63 does not fit in int64.
  EXPECT_FALSE(ParseNumericField(std::string("\x80\0\0\x80\0\0\0\0\0\0\0\0", 12), "f").ok());
  EXPECT_FALSE(ParseNumericField(std::string("\x81\0\0\0\0\0\0\0\0\0\0\0", 12), "f").ok());
}

TEST(TarHeaderFields, Decimal) {
  EXPECT_EQ(*ParseDecimal("0", "d"), 0u);
  EXPECT_EQ(*ParseDecimal("9223372036854775807", "d"), uint64_t{INT64_MAX});
  EXPECT_FALSE(ParseDecimal("9223372036854775808", "d").ok());
  EXPECT_EQ(*ParseDecimal("4294967295", "d", UINT32_MAX), uint64_t{UINT32_MAX});
  EXPECT_FALSE(ParseDecimal("4294967296", "d", UINT32_MAX).ok());
  EXPECT_FALSE(ParseDecimal("", "d").ok());
  EXPECT_FALSE(ParseDecimal("+1", "d").ok());
  EXPECT_FALSE(ParseDecimal(" 1", "d").ok());
}

TEST(TarHeaderFields, ZeroBlockAndChecksum) {
  std::string b(kBlockSize, '\0');
  EXPECT_TRUE(IsZeroBlock(reinterpret_cast<const uint8_t*>(b.data())));
  b[511] = 1;
  EXPECT_FALSE(IsZeroBlock(reinterpret_cast<const uint8_t*>(b.data())));
  // A block of NULs except a correct checksum of 8 spaces: 256 = 0400.
  std::string c(kBlockSize, '\0');
  c.replace(148, 8, std::string("000400\0 ", 8));
  EXPECT_TRUE(VerifyChecksum(reinterpret_cast<const uint8_t*>(c.data())).ok());
  c.replace(148, 8, std::string("000401\0 ", 8));
  EXPECT_FALSE(VerifyChecksum(reinterpret_cast<const uint8_t*>(c.data())).ok());
}

TEST(PaxTimeTest, Parses) {
  EXPECT_EQ(*ParsePaxTime("1234567890.5"), (PaxTime{1234567890, 500000000}));
  EXPECT_EQ(*ParsePaxTime("-1.5"), (PaxTime{-2, 500000000}));
  EXPECT_EQ(*ParsePaxTime("-0.25"), (PaxTime{-1, 750000000}));
  EXPECT_EQ(*ParsePaxTime("5.0000000019"), (PaxTime{5, 1}));
  EXPECT_EQ(*ParsePaxTime("-3"), (PaxTime{-3, 0}));
  EXPECT_FALSE(ParsePaxTime("").ok());
  EXPECT_FALSE(ParsePaxTime("-").ok());
  EXPECT_FALSE(ParsePaxTime(".5").ok());
  EXPECT_FALSE(ParsePaxTime("1.").ok());
  EXPECT_FALSE(ParsePaxTime("1.-5").ok());
}

TEST(PaxRecordsTest, MergesAcrossHeadersAndClears) {
  PaxRecords r;
  ASSERT_TRUE(ParsePaxRecords("12 path=abc\n", 16, &r).ok());
  ASSERT_TRUE(ParsePaxRecords("15 uid=4000000\n", 16, &r).ok());
  EXPECT_EQ(*r.path, "abc");
  EXPECT_EQ(*r.uid, 4000000u);
  EXPECT_FALSE(r.empty());
  r.Clear();
  EXPECT_TRUE(r.empty());
  // Unknown keywords are ignored; a repeated keyword: the last wins.
  ASSERT_TRUE(ParsePaxRecords("16 SCHILY.ino=1\n10 path=a\n10 path=b\n", 16, &r).ok());
  EXPECT_EQ(*r.path, "b");
}

}  // namespace
}  // namespace lazyroot::tar
