// The kernel limits and the per-layer budgets of index/limits.h, enforced by
// TarReader as it parses: each at the limit is accepted, one byte (or entry)
// over is kLimitExceeded naming the layer, the entry's offset and the limit.
// Fixtures are hand-made with index_tar_test_builder.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "index/limits.h"
#include "index/tar_reader.h"
#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

using namespace tartest;  // NOLINT: test-only builder vocabulary

struct Parsed {
  Status status;
  std::vector<TarEntry> entries;
  uint64_t entries_counted = 0, metadata = 0;
};

Parsed Parse(std::string_view tar, Limits budget = Limits(), size_t chunk = 0) {
  Parsed p;
  TarReader::Limits limits;
  limits.budget = budget;
  TarReader r(
      "layer sha256:ab12", [&](const TarEntry& e) { p.entries.push_back(e); return Status::Ok(); }, limits);
  if (chunk == 0) chunk = std::max<size_t>(tar.size(), 1);
  for (size_t i = 0; i < tar.size() && p.status.ok(); i += chunk) {
    std::string_view piece = tar.substr(i, chunk);
    p.status = r.Feed(std::span(reinterpret_cast<const uint8_t*>(piece.data()), piece.size()));
  }
  if (p.status.ok()) p.status = r.Finish();
  p.entries_counted = r.entries();
  p.metadata = r.metadata_bytes();
  return p;
}

// Asserts a refusal that names the layer, the entry at `offset`, and `what`.
void ExpectOver(const Parsed& p, uint64_t offset, const std::string& what) {
  EXPECT_EQ(p.status.code(), ErrorCode::kLimitExceeded) << p.status.ToString();
  const std::string& m = p.status.message();
  EXPECT_TRUE(m.starts_with("layer sha256:ab12: tar entry at offset " + std::to_string(offset))) << m;
  EXPECT_NE(m.find(what), std::string::npos) << m;
}

std::string Entry(const std::string& path, char type = '0', const std::string& link = "") {
  Hdr h;
  h.name = path.substr(0, 100);
  h.type = type;
  h.linkname = link.substr(0, 100);
  std::vector<std::pair<std::string, std::string>> pax;
  if (path.size() > 100) pax.emplace_back("path", path);
  if (link.size() > 100) pax.emplace_back("linkpath", link);
  return (pax.empty() ? "" : Pax(pax)) + Header(h);
}

// "a/" repeated up to n bytes, ending in a component of `last` bytes.
std::string PathOf(size_t n) {
  std::string p;
  while (p.size() + 10 < n) p += "component/";
  p += std::string(n - p.size(), 'x');
  return p;
}

TEST(TarLimits, XattrValue) {
  // The largest value an entry can carry (its name counts against the
  // entry's 64 KiB too), then a value of 65537 (over XATTR_SIZE_MAX).
  std::string at = Pax({{"SCHILY.xattr.user.v", std::string(65536 - 6, 'v')}}) + File("f", "") + Zeros(2);
  Parsed ok = Parse(at);
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.entries[0].xattrs[0].second.size(), 65536u - 6);
  Parsed over = Parse(Pax({{"SCHILY.xattr.user.v", std::string(65537, 'v')}}) + File("f", "") + Zeros(2));
  ExpectOver(over, 0, "xattr user.v is 65537 bytes, over the kernel's 65536");
  // The metadata bomb's entry: a 1,000,000-byte value, refused before any entry is emitted.
  Parsed bomb = Parse(File("a", "") + Pax({{"path", "etc/x"}, {"SCHILY.xattr.user.big", std::string(1000000, 'b')}}) +
                      File("x", "") + Zeros(2));
  ExpectOver(bomb, 512, "(etc/x): xattr user.big is 1000000 bytes, over the kernel's 65536");
  // The path comes from the header after the PAX records: the error still names it.
  Parsed named = Parse(Pax({{"SCHILY.xattr.user.big", std::string(100000, 'b')}}) + File("etc/y", "") + Zeros(2));
  ExpectOver(named, 0, "(etc/y): xattr user.big is 100000 bytes");
  // And a layer that ends right after such a PAX header still reports the limit.
  ExpectOver(Parse(Pax({{"SCHILY.xattr.user.big", std::string(100000, 'b')}})), 0, "xattr user.big is 100000");
  ExpectOver(Parse(Pax({{"SCHILY.xattr.user.big", std::string(100000, 'b')}}) + Zeros(2)), 0,
             "xattr user.big is 100000");
  EXPECT_EQ(bomb.entries.size(), 1u);
  // bsdtar's base64 form is refused before it is decoded.
  Parsed b64 = Parse(Pax({{"LIBARCHIVE.xattr.user.v", std::string(87384, 'A')}}) + File("f", "") + Zeros(2));
  ExpectOver(b64, 0, "xattr user.v is 65538 bytes");
}

TEST(TarLimits, XattrName) {
  std::string name255 = "user." + std::string(250, 'n');
  ASSERT_TRUE(Parse(Pax({{"SCHILY.xattr." + name255, "v"}}) + File("f", "") + Zeros(2)).status.ok());
  ExpectOver(Parse(Pax({{"SCHILY.xattr." + name255 + "n", "v"}}) + File("f", "") + Zeros(2)), 0,
             "is 256 bytes, over the kernel's 255");
}

TEST(TarLimits, XattrsOfOneEntry) {
  // Two xattrs whose names and values add up to exactly 65536, then 65537.
  auto two = [](size_t second) {
    return Pax({{"SCHILY.xattr.user.a", std::string(40000 - 6, 'a')},
                {"SCHILY.xattr.user.b", std::string(second - 6, 'b')}}) +
           File("f", "") + Zeros(2);
  };
  Parsed ok = Parse(two(25536));
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.metadata, 65536u + 1 + 4 + 5);  // plus the path "f", "user" and "group"
  ExpectOver(Parse(two(25537)), 0, "xattrs add up to 65537 bytes (names and values), over the kernel's 65536");
  // Overriding a value or deleting it (an empty record) gives its bytes back.
  std::string replaced = Pax({{"SCHILY.xattr.user.a", std::string(60000, 'a')}}) +
                         Pax({{"SCHILY.xattr.user.a", ""}, {"SCHILY.xattr.user.b", std::string(60000, 'b')}}) +
                         File("f", "") + Zeros(2);
  Parsed r = Parse(replaced);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.entries[0].xattrs.size(), 1u);
  // The budget is per entry: the next entry starts from zero.
  std::string two_entries = Pax({{"SCHILY.xattr.user.a", std::string(60000, 'a')}}) + File("f", "") +
                            Pax({{"SCHILY.xattr.user.a", std::string(60000, 'a')}}) + File("g", "") + Zeros(2);
  EXPECT_TRUE(Parse(two_entries).status.ok());
}

TEST(TarLimits, SymlinkTarget) {
  std::string t4095 = PathOf(4095);
  Parsed ok = Parse(Entry("l", '2', t4095) + Zeros(2));
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.entries[0].link_target, t4095);
  ExpectOver(Parse(File("a", "") + Entry("l", '2', PathOf(4096)) + Zeros(2)), 512,
             "(l): symlink target is 4096 bytes, over the kernel's 4095");
  // A linkpath over PATH_MAX is refused while the PAX records are parsed.
  ExpectOver(Parse(Entry("l", '2', PathOf(4097)) + Zeros(2)), 0, "linkpath is 4097 bytes, over the kernel's 4096");
}

TEST(TarLimits, HardlinkTarget) {
  ASSERT_TRUE(Parse(Entry(PathOf(4096)) + Entry("h", '1', PathOf(4096)) + Zeros(2)).status.ok());
  Parsed comp = Parse(Entry("h", '1', "d/" + std::string(256, 'c')) + Zeros(2));
  ExpectOver(comp, 0, "(h): a hardlink target component is 256 bytes, over the kernel's 255");
}

TEST(TarLimits, Path) {
  Parsed ok = Parse(Entry(PathOf(4096)) + Zeros(2));
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.entries[0].path.size(), 4096u);
  Parsed over = Parse(Entry(PathOf(4097)) + Zeros(2));
  ExpectOver(over, 0, "path is 4097 bytes, over the kernel's 4096");
  // GNU long names: exactly 4096 (plus GNU tar's NUL) passes; 4097 is
  // refused with the entry; a data area far over is refused before it is read.
  Hdr h;
  h.name = "short";
  ASSERT_TRUE(Parse(GnuLong('L', PathOf(4096) + std::string(1, '\0')) + Header(h) + Zeros(2)).status.ok());
  Parsed l = Parse(GnuLong('L', PathOf(4097) + std::string(1, '\0')) + Header(h) + Zeros(2));
  ExpectOver(l, 0, "): path is 4097 bytes, over the kernel's 4096");
  EXPECT_NE(l.status.message().find("… 4097 bytes)"), std::string::npos) << l.status.message();  // the path is cut
  ExpectOver(Parse(GnuLong('L', std::string(5000, 'n')) + Header(h) + Zeros(2)), 0,
             "GNU long name is 5000 bytes, over the kernel's 4096");
}

TEST(TarLimits, PathComponent) {
  ASSERT_TRUE(Parse(Entry("d/" + std::string(255, 'c') + "/f") + Zeros(2)).status.ok());
  ExpectOver(Parse(Entry("d/" + std::string(256, 'c') + "/f") + Zeros(2)), 0,
             "a path component is 256 bytes, over the kernel's 255");
  // A whiteout of a 255-byte name is 259 bytes long; one byte more is not.
  ASSERT_TRUE(Parse(Entry("d/.wh." + std::string(255, 'c')) + Zeros(2)).status.ok());
  ExpectOver(Parse(Entry("d/.wh." + std::string(256, 'c')) + Zeros(2)), 0,
             "a path component is 260 bytes, over the kernel's 255");
}

TEST(TarLimits, LayerEntries) {
  std::string tar;
  for (int i = 0; i < 5; ++i) tar += File("f" + std::to_string(i), "");
  tar += Zeros(2);
  Limits five;
  five.layer_entries = 5;
  Parsed ok = Parse(tar, five);
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.entries_counted, 5u);
  Limits four;
  four.layer_entries = 4;
  Parsed over = Parse(tar, four, 100);
  ExpectOver(over, 4 * 512, "(f4): the layer holds more than 4 entries (limit layer-entries; raise with --limit layer-entries=N");
  EXPECT_EQ(over.entries.size(), 4u);  // refused before the callback sees it
}

TEST(TarLimits, LayerMetadata) {
  // Three entries of 2 + 4 (user/group names) + 60 (xattr) bytes each: 198 bytes.
  std::string tar;
  for (int i = 0; i < 3; ++i) {
    Hdr h;
    h.name = "f" + std::to_string(i);
    h.uname = "us";
    h.gname = "gr";
    tar += Pax({{"SCHILY.xattr.user.x", std::string(54, 'v')}}) + Header(h);
  }
  tar += Zeros(2);
  Limits at;
  at.layer_metadata = 198;
  Parsed ok = Parse(tar, at);
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_EQ(ok.metadata, 198u);
  Limits under = at;
  under.layer_metadata = 197;
  ExpectOver(Parse(tar, under), 2 * 1536,
             "(f2): the layer holds more than 197 bytes of metadata (paths, link targets, user/group names, xattrs) "
             "(limit layer-metadata; raise with --limit layer-metadata=SIZE");
}

TEST(TarLimits, ErrorsAreSticky) {
  TarReader r("layer sha256:ab12", [&](const TarEntry&) { return Status::Ok(); });
  std::string tar = Entry(PathOf(5000)) + File("next", "") + Zeros(2);
  Status st = r.Feed(std::span(reinterpret_cast<const uint8_t*>(tar.data()), tar.size()));
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(r.Finish().code(), ErrorCode::kLimitExceeded);
}

TEST(ParseLimits, NamesSizesAndErrors) {
  Limits l;
  ASSERT_TRUE(ParseLimits("layer-entries=10,layer-metadata=64K,,image-entries=3M,image-metadata=1G", &l).ok());
  EXPECT_EQ(l.layer_entries, 10u);
  EXPECT_EQ(l.layer_metadata, 64u << 10);
  EXPECT_EQ(l.image_entries, 3u << 20);
  EXPECT_EQ(l.image_metadata, uint64_t{1} << 30);
  EXPECT_EQ(ParseLimits("layer-entries", &l).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseLimits("layer-entries=0", &l).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseLimits("layer-entries=12Q", &l).code(), ErrorCode::kInvalidArgument);
  Status unknown = ParseLimits("xattrs=1", &l);
  EXPECT_EQ(unknown.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("unknown name"), std::string::npos);
}

TEST(CheckBudget, ImageScope) {
  Limits l;
  l.image_entries = 10;
  l.image_metadata = 100;
  EXPECT_TRUE(CheckBudget(l, "image", 10, 100).ok());
  Status e = CheckBudget(l, "image", 11, 0);
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(e.message().find("--limit image-entries=N"), std::string::npos) << e.message();
  EXPECT_NE(CheckBudget(l, "image", 0, 101).message().find("--limit image-metadata=SIZE"), std::string::npos);
}

}  // namespace
}  // namespace lazyroot
