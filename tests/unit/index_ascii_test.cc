// The shared ASCII helpers: lowering that ignores the locale, and base64 in
// both the padded form docker's config.json uses and the unpadded form
// bsdtar writes PAX xattrs in.
#include <gtest/gtest.h>

#include "index/ascii.h"

namespace lazyroot {
namespace {

TEST(Ascii, LowerTouchesOnlyAsciiLetters) {
  EXPECT_EQ(AsciiLower("Registry-1.Docker.IO:5000/ÄB"), "registry-1.docker.io:5000/Äb");
  EXPECT_EQ(AsciiLower(""), "");
}

TEST(Ascii, Base64PaddedAndUnpadded) {
  for (Base64Padding p : {Base64Padding::kRequired, Base64Padding::kOptional}) {
    EXPECT_EQ(DecodeBase64("dTpw", p), "u:p");
    EXPECT_EQ(DecodeBase64("dTpwYQ==", p), "u:pa");
    EXPECT_EQ(DecodeBase64("dTpwYWI=", p), "u:pab");
    EXPECT_EQ(DecodeBase64("", p), "");
    EXPECT_FALSE(DecodeBase64("dTp*", p));      // not the alphabet
    EXPECT_FALSE(DecodeBase64("dT=w", p));      // '=' inside
    EXPECT_FALSE(DecodeBase64("d===", p));      // three '='
    EXPECT_FALSE(DecodeBase64("dTpw\n", p));    // no whitespace
    EXPECT_FALSE(DecodeBase64("dTpwY===", p));  // a lone sextet
  }
  EXPECT_FALSE(DecodeBase64("dTpwYQ", Base64Padding::kRequired));
  EXPECT_EQ(DecodeBase64("dTpwYQ", Base64Padding::kOptional), "u:pa");
  EXPECT_EQ(DecodeBase64(std::string_view("AAEC", 4), Base64Padding::kRequired), std::string("\0\1\2", 3));
}

TEST(ShownText, ControlBytesAndLength) {
  EXPECT_EQ(ShownText("busybox:latest"), "busybox:latest");
  EXPECT_EQ(ShownText("a\x1b]0;x\x07"
                      "b\n\x7f"),
            "a?]0;x?b??");
  EXPECT_EQ(ShownText(std::string_view("a\0b", 3)), "a?b");
  EXPECT_EQ(ShownText("abcdef", 3), "abc…");
  EXPECT_EQ(ShownText("ü"), "ü");  // UTF-8 bytes are not control bytes
}

}  // namespace
}  // namespace lazyroot
