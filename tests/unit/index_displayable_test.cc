// Displayable: what a message may carry to a terminal (names a VM wrote into
// a cached rootfs, tar entry names of a hostile image).
#include <gtest/gtest.h>

#include <string>

#include "index/status.h"

namespace lazyroot {
namespace {

TEST(Displayable, KeepsPrintableTextAndUtf8) {
  EXPECT_EQ(Displayable("/etc/hello"), "/etc/hello");
  EXPECT_EQ(Displayable("/etc/héllo 日本 😀"), "/etc/héllo 日本 😀");
  EXPECT_EQ(Displayable("bytes 0–65535"), "bytes 0–65535");
  EXPECT_EQ(Displayable("a\\b"), "a\\b");  // kept: applying it twice changes nothing
}

TEST(Displayable, EscapesControlsAndBrokenUtf8) {
  EXPECT_EQ(Displayable("x\x1b]0;PWNED\x07\x1b[2Jy\nforged"), "x\\x1b]0;PWNED\\x07\\x1b[2Jy\\x0aforged");
  EXPECT_EQ(Displayable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(Displayable("\x7f\t\r"), "\\x7f\\x09\\x0d");
  EXPECT_EQ(Displayable("csi\x9b"), "csi\\x9b");          // a lone 8-bit CSI
  EXPECT_EQ(Displayable("c1\xc2\x9b"), "c1\\xc2\\x9b");     // CSI as UTF-8 (U+009B)
  EXPECT_EQ(Displayable("\xc0\xaf"), "\\xc0\\xaf");          // overlong '/'
  EXPECT_EQ(Displayable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(Displayable("cut\xe6\x97"), "cut\\xe6\\x97");     // truncated sequence
  EXPECT_EQ(Displayable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
}

TEST(Displayable, IsIdempotent) {
  const std::string once = Displayable("x\x1b[31m\xff\n日本");
  EXPECT_EQ(Displayable(once), once);
}

}  // namespace
}  // namespace lazyroot
