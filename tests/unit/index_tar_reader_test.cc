// TarReader on hand-made archives. Every fixture is built in the test from
// index_tar_test_builder.h; the comment above it is its recipe.
#include "index/tar_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>

#include "tests/unit/index_tar_test_builder.h"

namespace lazyroot {
namespace {

using namespace tartest;  // NOLINT: test-only builder vocabulary

struct Parsed {
  Status status;  // the first error from Feed or Finish
  std::vector<TarEntry> entries;
  bool end_of_archive = false;
  uint64_t offset = 0;
};

// Feeds `tar` in chunks of `chunk` bytes (0 = all at once), then Finish().
Parsed Parse(std::string_view tar, size_t chunk = 0, TarReader::Limits limits = {}) {
  Parsed p;
  TarReader r(
      "layer sha256:ab12", [&](const TarEntry& e) { p.entries.push_back(e); return Status::Ok(); }, limits);
  if (chunk == 0) chunk = std::max<size_t>(tar.size(), 1);
  for (size_t i = 0; i < tar.size() && p.status.ok(); i += chunk) {
    std::string_view piece = tar.substr(i, chunk);
    p.status = r.Feed(std::span(reinterpret_cast<const uint8_t*>(piece.data()), piece.size()));
  }
  if (p.status.ok()) p.status = r.Finish();
  p.end_of_archive = r.end_of_archive();
  p.offset = r.offset();
  return p;
}

const char* TypeName(EntryType t) {
  switch (t) {
    case EntryType::kRegular: return "reg";
    case EntryType::kHardlink: return "link";
    case EntryType::kSymlink: return "sym";
    case EntryType::kCharDevice: return "chr";
    case EntryType::kBlockDevice: return "blk";
    case EntryType::kDirectory: return "dir";
    case EntryType::kFifo: return "fifo";
  }
  return "?";
}

// One line per entry with every field, to compare entries as a whole.
std::string Dump(const TarEntry& e) {
  std::ostringstream o;
  o << TypeName(e.type) << " " << e.path << " -> " << e.link_target << " mode=" << std::oct << e.mode << std::dec
    << " " << e.uid << ":" << e.gid << " " << e.uname << ":" << e.gname << " mtime=" << e.mtime_sec << "."
    << e.mtime_nsec << " dev=" << e.dev_major << "," << e.dev_minor << " size=" << e.size
    << " hdr=" << e.header_offset << " data=" << e.data_offset << " stored=" << e.stored_size << " sparse=[";
  for (const SparseExtent& s : e.sparse) o << s.logical_offset << "+" << s.length << " ";
  o << "] xattrs={";
  for (const auto& [k, v] : e.xattrs) o << k << "=" << v.size() << "B ";
  o << "}";
  return o.str();
}

std::string DumpAll(const std::vector<TarEntry>& es) {
  std::string s;
  for (const TarEntry& e : es) s += Dump(e) + "\n";
  return s;
}

#define EXPECT_CORRUPTION(p, text)                                 \
  do {                                                             \
    EXPECT_EQ((p).status.code(), ErrorCode::kCorruption) << (p).status.ToString(); \
    EXPECT_NE((p).status.message().find(text), std::string::npos) << (p).status.ToString(); \
  } while (0)

TEST(TarReader, UstarRegularFileFields) {
  // ustar file "etc/hosts" (mode 0644, 1000:1000 user:group, mtime 1700000000, 5 bytes) + a 2nd file + 2 zero blocks.
  std::string tar = File("etc/hosts", "hello") + File("b", "") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 2u);
  const TarEntry& e = p.entries[0];
  EXPECT_EQ(e.path, "etc/hosts");
  EXPECT_EQ(e.type, EntryType::kRegular);
  EXPECT_EQ(e.mode, 0644u);
  EXPECT_EQ(e.uid, 1000u);
  EXPECT_EQ(e.gid, 1000u);
  EXPECT_EQ(e.uname, "user");
  EXPECT_EQ(e.gname, "group");
  EXPECT_EQ(e.mtime_sec, 1700000000);
  EXPECT_EQ(e.size, 5u);
  EXPECT_EQ(e.stored_size, 5u);
  EXPECT_EQ(e.header_offset, 0u);
  EXPECT_EQ(e.data_offset, 512u);
  EXPECT_EQ(tar.substr(e.data_offset, e.size), "hello");
  EXPECT_EQ(p.entries[1].header_offset, 1024u);
  EXPECT_EQ(p.entries[1].data_offset, 1536u);
  EXPECT_TRUE(p.end_of_archive);
  EXPECT_EQ(p.offset, tar.size());
}

TEST(TarReader, UstarPrefixJoinsName) {
  // ustar header: prefix "usr/share/doc", name "README".
  Hdr h;
  h.name = "README";
  h.prefix = "usr/share/doc";
  Parsed p = Parse(Header(h) + Zeros(2));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, "usr/share/doc/README");
}

TEST(TarReader, GnuHeaderPrefixFieldIsNotAPrefix) {
  // Row 57: old-GNU header "file" whose bytes 345.. hold atime/ctime octal fields (moby broken.tar).
  Hdr h;
  h.name = "file";
  h.magic = Magic::kGnu;
  std::string b = Header(h);
  PutOctal(b, 345, 12, 1700000001);  // atime
  PutOctal(b, 357, 12, 1700000002);  // ctime
  FixChecksum(b);
  Parsed p = Parse(b + Zeros(2));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, "file");
}

TEST(TarReader, V7HeaderHasNoUstarFields) {
  // V7 header (no magic) with bytes in the uname area: ignored.
  Hdr h;
  h.name = "old";
  h.magic = Magic::kV7;
  std::string b = Header(h);
  PutStr(b, 265, "junk");
  FixChecksum(b);
  Parsed p = Parse(b + Zeros(2));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].uname, "");
}

TEST(TarReader, TypeflagsAndHeaderOnlyTypesIgnoreSize) {
  // One header of each type 1-6, each with size 700 but no data (row 58), then '\0' file, '\0' dir/, '7' file.
  std::string tar;
  const char types[] = {'1', '2', '3', '4', '5', '6'};
  for (char t : types) {
    Hdr h;
    h.name = std::string("n") + t;
    h.type = t;
    h.size = 700;
    h.linkname = "target";
    h.devmajor = 8;
    h.devminor = 1;
    tar += Header(h);
  }
  Hdr a;
  a.name = "rega";
  a.type = '\0';
  a.size = 3;
  tar += Header(a) + Pad("abc");
  a.name = "olddir/";
  a.size = 0;
  tar += Header(a);
  a.name = "contig";
  a.type = '7';
  a.size = 2;
  tar += Header(a) + Pad("xy") + Zeros(2);

  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 9u) << DumpAll(p.entries);
  const EntryType want[] = {EntryType::kHardlink,    EntryType::kSymlink,   EntryType::kCharDevice,
                            EntryType::kBlockDevice, EntryType::kDirectory, EntryType::kFifo,
                            EntryType::kRegular,     EntryType::kDirectory, EntryType::kRegular};
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(p.entries[i].type, want[i]) << i;
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(p.entries[i].size, 0u);
    EXPECT_EQ(p.entries[i].stored_size, 0u);
    EXPECT_EQ(p.entries[i].header_offset, i * 512);
    EXPECT_EQ(p.entries[i].link_target, "target");
  }
  EXPECT_EQ(p.entries[2].dev_major, 8u);
  EXPECT_EQ(p.entries[2].dev_minor, 1u);
  EXPECT_EQ(p.entries[3].dev_major, 8u);
  EXPECT_EQ(p.entries[0].dev_major, 0u);  // only devices carry device numbers
  EXPECT_EQ(p.entries[6].size, 3u);
  EXPECT_EQ(p.entries[8].size, 2u);
  EXPECT_EQ(p.entries[8].path, "contig");
}

TEST(TarReader, ModeKeepsOnlyPermissionBits) {
  // Header mode 0104755 (S_IFREG|setuid|0755), a dir with 01777 (sticky), 02755 setgid.
  Hdr h;
  h.name = "su";
  h.mode = 0104755;
  std::string tar = Header(h);
  h.name = "tmp/";
  h.type = '5';
  h.mode = 041777;
  tar += Header(h);
  h.name = "sg";
  h.type = '0';
  h.mode = 02755;
  tar += Header(h) + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 3u);
  EXPECT_EQ(p.entries[0].mode, 04755u);
  EXPECT_EQ(p.entries[1].mode, 01777u);
  EXPECT_EQ(p.entries[2].mode, 02755u);
}

TEST(TarReader, Base256Fields) {
  // GNU header: uid 3000000, gid 0x7fffffff... as base-256 (0x80 marker), mtime -1000 (0xff), size 2^33 in base-256.
  Hdr h;
  h.name = "big";
  h.magic = Magic::kGnu;
  std::string b = Header(h);
  PutBase256(b, 108, 8, 3000000);
  PutBase256(b, 116, 8, 4294967295);  // the largest uid/gid that fits
  PutBase256(b, 136, 12, -1000);
  const uint64_t size = uint64_t{1} << 33;
  PutBase256(b, 124, 12, static_cast<int64_t>(size));
  FixChecksum(b);

  std::vector<TarEntry> got;
  TarReader r("t", [&](const TarEntry& e) { got.push_back(e); return Status::Ok(); });
  auto feed = [&](std::string_view s) {
    return r.Feed(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  ASSERT_TRUE(feed(b).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].uid, 3000000u);
  EXPECT_EQ(got[0].gid, 4294967295u);
  EXPECT_EQ(got[0].mtime_sec, -1000);
  EXPECT_EQ(got[0].size, size);
  // 8 GiB of data pass by counting only: feed it in 1 MiB chunks.
  std::string chunk(1 << 20, 'z');
  for (uint64_t done = 0; done < size; done += chunk.size()) ASSERT_TRUE(feed(chunk).ok());
  ASSERT_TRUE(feed(File("after", "x") + Zeros(2)).ok());
  EXPECT_TRUE(r.Finish().ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].path, "after");
  EXPECT_EQ(got[1].header_offset, 512 + size);
}

TEST(TarReader, SignedChecksumAndNonUtf8Name) {
  // Name "caf\xe9-\xff" (row 59) whose checksum is the historic signed-char sum.
  Hdr h;
  h.name = "caf\xe9-\xff";
  std::string b = Header(h);
  FixChecksum(b, /*signed_sum=*/true);
  Parsed p = Parse(b + Zeros(2));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, "caf\xe9-\xff");
}

TEST(TarReader, BadChecksumNamesLayerAndOffset) {
  // Two files; one byte of the 2nd header's name flipped after the checksum was computed.
  std::string tar = File("a", "1") + File("b", "2") + Zeros(2);
  tar[1024] = 'c';
  Parsed p = Parse(tar);
  EXPECT_EQ(p.status.code(), ErrorCode::kCorruption);
  EXPECT_EQ(p.status.message(), "layer sha256:ab12: tar header at offset 1024: bad checksum");
  EXPECT_EQ(p.entries.size(), 1u);
}

TEST(TarReader, GnuLongNameAndLongLink) {
  // 'L' with a 150-char name + NUL, 'K' with a 120-char target + NUL, then a symlink header with truncated fields.
  std::string name(150, 'n'), target(120, 't');
  Hdr h;
  h.name = name.substr(0, 100);
  h.type = '2';
  h.linkname = target.substr(0, 100);
  h.magic = Magic::kGnu;
  std::string tar = GnuLong('L', name + '\0') + GnuLong('K', target + '\0') + Header(h) + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, name);
  EXPECT_EQ(p.entries[0].link_target, target);
  EXPECT_EQ(p.entries[0].type, EntryType::kSymlink);
  EXPECT_EQ(p.entries[0].header_offset, 0u);  // the first 'L' header
}

TEST(TarReader, GnuLongNameLastWinsAndTruncatesAtNul) {
  // Row 51: 'L' "first", then 'L' "second\0junk" (gnu-multi-hdrs, gnu-long-nul), then file "short".
  std::string tar = GnuLong('L', std::string("first\0", 6)) + GnuLong('L', std::string("second\0junk", 11)) +
                    File("short", "") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, "second");
  // The long name applies to one entry only.
  Parsed q = Parse(GnuLong('L', "long") + File("x", "") + File("y", "") + Zeros(2));
  ASSERT_TRUE(q.status.ok());
  ASSERT_EQ(q.entries.size(), 2u);
  EXPECT_EQ(q.entries[0].path, "long");
  EXPECT_EQ(q.entries[1].path, "y");
}

TEST(TarReader, PaxOverridesHeaderFields) {
  // 'x' with path (200 chars), linkpath (200 chars), size, uid 4000000, gid, uname, gname, mtime fraction,
  // then a ustar symlink... here a hardlink header with short names, then a file using the PAX size.
  std::string path(200, 'p'), link(200, 'l');
  Hdr h;
  h.name = "short";
  h.type = '1';
  h.linkname = "shortlink";
  std::string tar = Pax({{"path", path},
                         {"linkpath", link},
                         {"uid", "4000000"},
                         {"gid", "4000001"},
                         {"uname", "bob"},
                         {"gname", "staff"},
                         {"mtime", "1234567890.5"}}) +
                    Header(h);
  // PAX size overrides the header's size field (here 0): 600 bytes of data follow.
  Hdr f;
  f.name = "f";
  tar += Pax({{"size", "600"}}) + Header(f) + Pad(std::string(600, 'd')) + File("next", "") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 3u) << DumpAll(p.entries);
  const TarEntry& e = p.entries[0];
  EXPECT_EQ(e.path, path);
  EXPECT_EQ(e.link_target, link);
  EXPECT_EQ(e.type, EntryType::kHardlink);
  EXPECT_EQ(e.uid, 4000000u);
  EXPECT_EQ(e.gid, 4000001u);
  EXPECT_EQ(e.uname, "bob");
  EXPECT_EQ(e.gname, "staff");
  EXPECT_EQ(e.mtime_sec, 1234567890);
  EXPECT_EQ(e.mtime_nsec, 500000000u);
  EXPECT_EQ(e.header_offset, 0u);
  EXPECT_EQ(e.data_offset, 1024u + 512);
  const TarEntry& f2 = p.entries[1];
  EXPECT_EQ(f2.path, "f");
  EXPECT_EQ(f2.size, 600u);
  EXPECT_EQ(f2.header_offset, 1536u);
  EXPECT_EQ(f2.data_offset, 1536u + 1024 + 512);
  EXPECT_EQ(f2.uid, 1000u);  // records of the previous 'x' do not leak
  EXPECT_EQ(p.entries[2].path, "next");
  EXPECT_EQ(p.entries[2].header_offset, f2.data_offset + 1024);
}

TEST(TarReader, PaxTimes) {
  // mtime records: "-1.5" (negative fraction), "1.1234567891" (truncated to ns), "0.000000001", "-7"; atime validated.
  struct Case {
    const char* v;
    int64_t sec;
    uint32_t nsec;
  } cases[] = {{"-1.5", -2, 500000000}, {"1.1234567891", 1, 123456789}, {"0.000000001", 0, 1}, {"-7", -7, 0},
               {"1700000000", 1700000000, 0}};
  for (const Case& c : cases) {
    Parsed p = Parse(Pax({{"mtime", c.v}, {"atime", "5.25"}}) + File("f", "") + Zeros(2));
    ASSERT_TRUE(p.status.ok()) << c.v << ": " << p.status.ToString();
    ASSERT_EQ(p.entries.size(), 1u);
    EXPECT_EQ(p.entries[0].mtime_sec, c.sec) << c.v;
    EXPECT_EQ(p.entries[0].mtime_nsec, c.nsec) << c.v;
  }
  for (const char* bad : {"1.", "1.x", "abc", "--1", "1e5", " 1"}) {
    Parsed p = Parse(Pax({{"mtime", bad}}) + File("f", "") + Zeros(2));
    EXPECT_CORRUPTION(p, "bad time");
  }
  Parsed a = Parse(Pax({{"atime", "x"}}) + File("f", "") + Zeros(2));
  EXPECT_CORRUPTION(a, "atime");
}

TEST(TarReader, PaxXattrsSchilyAndLibarchiveSorted) {
  // SCHILY.xattr.user.zeta, security.capability (binary with NUL), LIBARCHIVE.xattr.user.%41lpha=base64("hi")
  // (unpadded "aGk"), LIBARCHIVE.xattr.user.pad=base64("abcd") padded "YWJjZA==".
  std::string cap("\x01\x00\x00\x02\x00\x20\x00\x00", 8);
  std::string tar = Pax({{"SCHILY.xattr.user.zeta", "z"},
                         {"SCHILY.xattr.security.capability", cap},
                         {"LIBARCHIVE.xattr.user.%41lpha", "aGk"},
                         {"LIBARCHIVE.xattr.user.pad", "YWJjZA=="},
                         {"SCHILY.xattr.user.empty", ""}}) +
                    File("bin/ping", "") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  const auto& x = p.entries[0].xattrs;
  // An empty value deletes the keyword (POSIX; Go's mergePAX): no user.empty.
  ASSERT_EQ(x.size(), 4u);
  EXPECT_EQ(x[0], std::make_pair(std::string("security.capability"), cap));
  EXPECT_EQ(x[1], std::make_pair(std::string("user.Alpha"), std::string("hi")));
  EXPECT_EQ(x[2], std::make_pair(std::string("user.pad"), std::string("abcd")));
  EXPECT_EQ(x[3], std::make_pair(std::string("user.zeta"), std::string("z")));
  EXPECT_TRUE(std::is_sorted(x.begin(), x.end()));

  Parsed bad64 = Parse(Pax({{"LIBARCHIVE.xattr.user.a", "!!"}}) + File("f", "") + Zeros(2));
  EXPECT_CORRUPTION(bad64, "base64");
  Parsed badpct = Parse(Pax({{"LIBARCHIVE.xattr.user.%4", "aGk"}}) + File("f", "") + Zeros(2));
  EXPECT_CORRUPTION(badpct, "escape");
  Parsed nulname = Parse(Pax({{"LIBARCHIVE.xattr.user.%00", "aGk"}}) + File("f", "") + Zeros(2));
  EXPECT_CORRUPTION(nulname, "xattr name");
}

TEST(TarReader, PaxGlobalHeaderIsIgnored) {
  // Row 54: 'g' (git archive's pax_global_header with comment= and path=, uid=), then file "a".
  std::string tar = Pax({{"comment", "abc123"}, {"path", "global"}, {"uid", "7"}}, 'g') + File("a", "data") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, "a");
  EXPECT_EQ(p.entries[0].uid, 1000u);
  EXPECT_EQ(p.entries[0].header_offset, 1024u);
}

TEST(TarReader, PaxEmptyValueDeletesRecord) {
  // 'x' path=long, then a second 'x' with "path=" (empty): the header name stays.
  std::string tar = Pax({{"path", "long"}}) + Pax({{"path", ""}}) + File("hdr", "") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].path, "hdr");
}

TEST(TarReader, PaxMalformedRecords) {
  struct Case {
    std::string data;
    const char* what;
  } cases[] = {
      {"11 path=abc\n", "newline"},               // length one short: the record does not end in '\n'
      {"30 path=abc\n", "length"},                // length past the end of the data
      {"12 path=abc\n\n", "malformed"},           // a trailing byte that is no record
      {"x path=abc\n", "length"},                 // non-decimal length
      {"3 a=\n", "length"},                       // shorter than any record can be
      {"12 path=abcX", "newline"},                // no newline at the end
      {"11 pathabc\n", "no key"},                 // no '='
      {"9 =value\n", "no key"},                   // empty key
      {std::string("12 pa\0h=abc\n", 12), "NUL"},  // NUL in key (pax-nul-xattrs)
      {std::string("12 path=a\0c\n", 12), "NUL"},  // NUL in path (pax-nul-path)
      {PaxRecord("uid", "-1"), "uid"},
      {PaxRecord("size", "12a"), "size"},
  };
  for (const Case& c : cases) {
    Parsed p = Parse(PaxRaw(c.data) + File("f", "") + Zeros(2));
    EXPECT_CORRUPTION(p, c.what);
    EXPECT_NE(p.status.message().find("tar header at offset 0:"), std::string::npos) << p.status.ToString();
  }
}

TEST(TarReader, UidGidDevThatDoNotFitUint32AreRejected) {
  // Row 56: base-256 uid 2^32; PAX gid 2^32; device major 2^32 in base-256; negative uid.
  Hdr h;
  h.name = "u";
  h.magic = Magic::kGnu;
  std::string b = Header(h);
  PutBase256(b, 108, 8, int64_t{1} << 32);
  FixChecksum(b);
  EXPECT_CORRUPTION(Parse(b + Zeros(2)), "uid 4294967296 does not fit in 32 bits");

  EXPECT_CORRUPTION(Parse(Pax({{"gid", "4294967296"}}) + File("g", "") + Zeros(2)), "gid");

  Hdr d;
  d.name = "dev";
  d.type = '3';
  d.magic = Magic::kGnu;
  std::string db = Header(d);
  PutBase256(db, 329, 8, int64_t{1} << 32);
  FixChecksum(db);
  EXPECT_CORRUPTION(Parse(db + Zeros(2)), "device major");

  std::string nb = Header(h);
  PutBase256(nb, 108, 8, -1);
  FixChecksum(nb);
  EXPECT_CORRUPTION(Parse(nb + Zeros(2)), "uid -1");
}

TEST(TarReader, NegativeSizeIsRejected) {
  // neg-size.tar: size field base-256 -1.
  Hdr h;
  h.name = "neg";
  h.magic = Magic::kGnu;
  std::string b = Header(h);
  PutBase256(b, 124, 12, -1);
  FixChecksum(b);
  Parsed p = Parse(b + Zeros(2));
  EXPECT_CORRUPTION(p, "negative size");
}

TEST(TarReader, BadOctalIsRejected) {
  // mode field "07a4444\0".
  Hdr h;
  h.name = "m";
  std::string b = Header(h);
  PutStr(b, 100, "07a4444");
  FixChecksum(b);
  EXPECT_CORRUPTION(Parse(b + Zeros(2)), "bad octal digit in mode field");
}

TEST(TarReader, OctalFieldsWithSpacesAndNuls) {
  // Old writers: mode "   644 \0", uid "  1750\0 ", size "     2 " + data "ok".
  Hdr h;
  h.name = "s";
  std::string b = Header(h);
  PutStr(b, 100, std::string("   644 \0", 8));
  PutStr(b, 108, std::string("  1750\0 ", 8));
  PutStr(b, 124, std::string("          2 ", 12));
  FixChecksum(b);
  Parsed p = Parse(b + Pad("ok") + Zeros(2));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].mode, 0644u);
  EXPECT_EQ(p.entries[0].uid, 01750u);
  EXPECT_EQ(p.entries[0].size, 2u);
}

TEST(TarReader, OldGnuSparseWithExtensionHeader) {
  // 'S' "sparse" realsize 10000: header runs (0,100)(1000,100)(2000,100)(3000,100), isextended;
  // one extension block with (4000,100)(9000,1000)(10000,0); 1500 stored bytes; then file "after".
  std::string data(1500, 's');
  std::string tar = GnuSparseHeader("sparse", 1500, 10000, {{0, 100}, {1000, 100}, {2000, 100}, {3000, 100}}, true) +
                    GnuSparseExtension({{4000, 100}, {9000, 1000}, {10000, 0}}, false) + Pad(data) +
                    File("after", "a") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 2u) << DumpAll(p.entries);
  const TarEntry& e = p.entries[0];
  EXPECT_EQ(e.type, EntryType::kRegular);
  EXPECT_EQ(e.path, "sparse");
  EXPECT_EQ(e.size, 10000u);
  EXPECT_EQ(e.stored_size, 1500u);
  EXPECT_EQ(e.header_offset, 0u);
  EXPECT_EQ(e.data_offset, 1024u);
  ASSERT_EQ(e.sparse.size(), 6u);  // the zero-length terminator is dropped
  EXPECT_EQ(e.sparse[0].logical_offset, 0u);
  EXPECT_EQ(e.sparse[4].logical_offset, 4000u);
  EXPECT_EQ(e.sparse[5].logical_offset, 9000u);
  EXPECT_EQ(e.sparse[5].length, 1000u);
  EXPECT_EQ(p.entries[1].path, "after");
  EXPECT_EQ(p.entries[1].header_offset, 1024u + 1536);
}

TEST(TarReader, OldGnuSparseWithoutExtension) {
  // 'S' "s2" realsize 4096 with one run (1024,10) and nothing else.
  std::string tar = GnuSparseHeader("s2", 10, 4096, {{1024, 10}}, false) + Pad("0123456789") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].size, 4096u);
  EXPECT_EQ(p.entries[0].data_offset, 512u);
  ASSERT_EQ(p.entries[0].sparse.size(), 1u);
  EXPECT_EQ(p.entries[0].sparse[0].logical_offset, 1024u);
}

TEST(TarReader, PaxSparse00) {
  // 'x' GNU.sparse.size=8192 numblocks=2 offset=0 numbytes=5 offset=4096 numbytes=3, then "s00" with 8 bytes.
  std::string tar = Pax({{"GNU.sparse.size", "8192"},
                         {"GNU.sparse.numblocks", "2"},
                         {"GNU.sparse.offset", "0"},
                         {"GNU.sparse.numbytes", "5"},
                         {"GNU.sparse.offset", "4096"},
                         {"GNU.sparse.numbytes", "3"}}) +
                    File("s00", "abcdeXYZ") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  const TarEntry& e = p.entries[0];
  EXPECT_EQ(e.path, "s00");
  EXPECT_EQ(e.size, 8192u);
  EXPECT_EQ(e.stored_size, 8u);
  EXPECT_EQ(e.data_offset, 1536u);
  ASSERT_EQ(e.sparse.size(), 2u);
  EXPECT_EQ(e.sparse[1].logical_offset, 4096u);
  EXPECT_EQ(e.sparse[1].length, 3u);
  // offset without numbytes is malformed.
  EXPECT_CORRUPTION(Parse(Pax({{"GNU.sparse.offset", "0"}}) + File("x", "") + Zeros(2)), "numbytes");
}

TEST(TarReader, PaxSparse01) {
  // 'x' major=0 minor=1 name=dir/real size=1000000 numblocks=2 map="10,4,999990,10", header name
  // "./GNUSparseFile.1/real" with 14 bytes.
  std::string tar = Pax({{"GNU.sparse.major", "0"},
                         {"GNU.sparse.minor", "1"},
                         {"GNU.sparse.name", "dir/real"},
                         {"GNU.sparse.size", "1000000"},
                         {"GNU.sparse.numblocks", "2"},
                         {"GNU.sparse.map", "10,4,999990,10"}}) +
                    File("./GNUSparseFile.1/real", "abcd0123456789") + Zeros(2);
  Parsed p = Parse(tar);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  const TarEntry& e = p.entries[0];
  EXPECT_EQ(e.path, "dir/real");
  EXPECT_EQ(e.size, 1000000u);
  EXPECT_EQ(e.stored_size, 14u);
  ASSERT_EQ(e.sparse.size(), 2u);
  EXPECT_EQ(e.sparse[0].logical_offset, 10u);
  EXPECT_EQ(e.sparse[1].logical_offset, 999990u);
  // numblocks disagreeing with the map, and an odd map.
  EXPECT_CORRUPTION(Parse(Pax({{"GNU.sparse.numblocks", "3"}, {"GNU.sparse.map", "0,1"}}) + File("x", "1") +
                          Zeros(2)),
                    "numblocks");
  EXPECT_CORRUPTION(Parse(Pax({{"GNU.sparse.map", "0,1,5"}}) + File("x", "1") + Zeros(2)), "odd");
}

TEST(TarReader, PaxSparse10MapInDataArea) {
  // 'x' major=1 minor=0 name=real realsize=8192; header "./GNUSparseFile.0/real" size 512+30;
  // data = "3\n0\n10\n4096\n20\n8192\n0\n" padded to 512, then 30 data bytes.
  std::string map = "3\n0\n10\n4096\n20\n8192\n0\n";
  std::string payload(30, 'q');
  Hdr h;
  h.name = "./GNUSparseFile.0/real";
  h.size = 512 + payload.size();
  std::string tar = Pax({{"GNU.sparse.major", "1"},
                         {"GNU.sparse.minor", "0"},
                         {"GNU.sparse.name", "real"},
                         {"GNU.sparse.realsize", "8192"}}) +
                    Header(h) + Pad(map) + Pad(payload) + File("next", "n") + Zeros(2);
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}}) {
    Parsed p = Parse(tar, chunk);
    ASSERT_TRUE(p.status.ok()) << p.status.ToString();
    ASSERT_EQ(p.entries.size(), 2u) << DumpAll(p.entries);
    const TarEntry& e = p.entries[0];
    EXPECT_EQ(e.path, "real");
    EXPECT_EQ(e.size, 8192u);
    EXPECT_EQ(e.stored_size, 30u);
    EXPECT_EQ(e.header_offset, 0u);
    EXPECT_EQ(e.data_offset, 2048u);  // x header + x data + header + map block
    ASSERT_EQ(e.sparse.size(), 2u);
    EXPECT_EQ(e.sparse[1].logical_offset, 4096u);
    EXPECT_EQ(e.sparse[1].length, 20u);
    EXPECT_EQ(tar.substr(e.data_offset, e.stored_size), payload);
    EXPECT_EQ(p.entries[1].path, "next");
    EXPECT_EQ(p.entries[1].header_offset, 2560u);
  }
}

TEST(TarReader, PaxSparse10MapSpanningBlocks) {
  // 1.0 map of 100 runs (i*100, 1) for i < 100: the map text is > 512 bytes and spans two blocks.
  std::string map = "100\n";
  for (int i = 0; i < 100; ++i) map += std::to_string(i * 100) + "\n1\n";
  ASSERT_GT(map.size(), 512u);
  ASSERT_LT(map.size(), 1024u);
  Hdr h;
  h.name = "m";
  h.size = 1024 + 100;
  std::string tar = Pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "20000"}}) +
                    Header(h) + Pad(map) + Pad(std::string(100, 'd')) + Zeros(2);
  Parsed p = Parse(tar, 100);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].sparse.size(), 100u);
  EXPECT_EQ(p.entries[0].data_offset, 1024u + 512 + 1024);
  EXPECT_EQ(p.entries[0].stored_size, 100u);
  EXPECT_EQ(p.entries[0].sparse[99].logical_offset, 9900u);

  // The same map under a 512-byte cap on map bytes is refused (CVE-2025-58183).
  TarReader::Limits small;
  small.max_sparse_map_bytes = 512;
  EXPECT_CORRUPTION(Parse(tar, 0, small), "sparse map too large");
  // And under a 50-run cap.
  TarReader::Limits few;
  few.max_sparse_extents = 50;
  EXPECT_CORRUPTION(Parse(tar, 0, few), "too many extents");
  // A map that claims more runs than its 512-byte data area holds ("200\n" + 254 x "1\n") runs into the next header.
  Hdr t;
  t.name = "t";
  t.size = 512;
  std::string trunc = Pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}}) + Header(t) + "200\n" + [] {
    std::string ones;
    for (int i = 0; i < 254; ++i) ones += "1\n";
    return ones;
  }() +
                      File("next", "") + Zeros(2);
  EXPECT_CORRUPTION(Parse(trunc), "sparse map runs past");
}

TEST(TarReader, SparseMapsMustAccountForStoredBytes) {
  // 0.1 map covering 5 bytes while 8 are stored; overlapping runs; a run past realsize; unknown version 2.0.
  EXPECT_CORRUPTION(Parse(Pax({{"GNU.sparse.size", "100"}, {"GNU.sparse.map", "0,5"}}) + File("a", "12345678") +
                          Zeros(2)),
                    "covers 5 bytes");
  EXPECT_CORRUPTION(Parse(Pax({{"GNU.sparse.size", "100"}, {"GNU.sparse.map", "0,5,3,3"}}) + File("a", "12345678") +
                          Zeros(2)),
                    "overlap");
  EXPECT_CORRUPTION(Parse(Pax({{"GNU.sparse.size", "10"}, {"GNU.sparse.map", "8,8"}}) + File("a", "12345678") +
                          Zeros(2)),
                    "past the file size");
  Parsed v = Parse(Pax({{"GNU.sparse.major", "2"}, {"GNU.sparse.minor", "0"}}) + File("a", "") + Zeros(2));
  EXPECT_EQ(v.status.code(), ErrorCode::kUnsupported) << v.status.ToString();
  // Old GNU: header map of 5 bytes while 6 stored.
  EXPECT_CORRUPTION(Parse(GnuSparseHeader("s", 6, 100, {{0, 5}}, false) + Pad("123456") + Zeros(2)), "covers");
  // Old GNU map over a 4-run cap.
  TarReader::Limits few;
  few.max_sparse_extents = 4;
  EXPECT_CORRUPTION(Parse(GnuSparseHeader("s", 6, 100, {{0, 1}, {2, 1}, {4, 1}, {6, 1}}, true) +
                              GnuSparseExtension({{8, 1}, {10, 1}}, false) + Pad("123456") + Zeros(2),
                          0, few),
                    "too many extents");
}

TEST(TarReader, EndOfArchiveVariants) {
  // Row 63: file + EOF at a header boundary; + one zero block; + two zero blocks; + 10240-byte record padding.
  std::string f = File("a", "x");
  for (const std::string& tar : {f, f + Zeros(1), f + Zeros(2), f + Zeros(20)}) {
    Parsed p = Parse(tar);
    ASSERT_TRUE(p.status.ok()) << tar.size() << ": " << p.status.ToString();
    EXPECT_EQ(p.entries.size(), 1u);
    EXPECT_EQ(p.offset, tar.size());
  }
  EXPECT_FALSE(Parse(f).end_of_archive);
  EXPECT_FALSE(Parse(f + Zeros(1)).end_of_archive);
  EXPECT_TRUE(Parse(f + Zeros(2)).end_of_archive);
  // An empty layer: zero bytes, or 1024 zero bytes.
  EXPECT_TRUE(Parse("").status.ok());
  EXPECT_TRUE(Parse(Zeros(2)).status.ok());
  // A zero block followed by a header is corrupt.
  EXPECT_CORRUPTION(Parse(f + Zeros(1) + File("b", "") + Zeros(2)), "single end-of-archive zero block");
}

TEST(TarReader, TrailingDataAfterEndIsIgnored) {
  // Row 64: file, two zero blocks, then 777 bytes of junk (not a header, no block alignment).
  std::string tar = File("a", "x") + Zeros(2) + std::string(777, '\x5a');
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{100}}) {
    Parsed p = Parse(tar, chunk);
    ASSERT_TRUE(p.status.ok()) << p.status.ToString();
    EXPECT_EQ(p.entries.size(), 1u);
    EXPECT_TRUE(p.end_of_archive);
    EXPECT_EQ(p.offset, tar.size());
  }
}

TEST(TarReader, TruncationIsAnError) {
  // Row 65: cut inside data, inside padding, inside a header, inside 'x' data, and right after an 'x' header block.
  std::string f = File("a", std::string(700, 'd')) + File("b", "");
  Parsed mid_data = Parse(f.substr(0, 512 + 300));
  EXPECT_CORRUPTION(mid_data, "truncated at offset 812");
  EXPECT_NE(mid_data.status.message().find("layer sha256:ab12: tar header at offset 0:"), std::string::npos);
  EXPECT_EQ(mid_data.entries.size(), 1u);  // the entry was announced before its data
  EXPECT_CORRUPTION(Parse(f.substr(0, 512 + 800)), "truncated");
  Parsed mid_header = Parse(f.substr(0, 1536 + 100));
  EXPECT_CORRUPTION(mid_header, "truncated inside a header (100 of 512 bytes)");
  EXPECT_NE(mid_header.status.message().find("offset 1536"), std::string::npos);
  std::string x = Pax({{"path", std::string(600, 'p')}}) + File("c", "");
  EXPECT_CORRUPTION(Parse(x.substr(0, 700)), "extension header data");
  EXPECT_CORRUPTION(Parse(x.substr(0, 1536)), "ends after an extension header");
  EXPECT_CORRUPTION(Parse(x.substr(0, 1536) + Zeros(2)), "after an extension header");
}

TEST(TarReader, CapsOnExtensionHeaders) {
  // 'x' of 600 bytes under a 512-byte PAX cap; two 'x' of 300 bytes each; 'L' of 600 bytes under a 512 cap.
  TarReader::Limits l;
  l.max_pax_bytes = 512;
  l.max_long_name = 512;
  Parsed big = Parse(Pax({{"path", std::string(600, 'p')}}) + File("a", "") + Zeros(2), 0, l);
  EXPECT_CORRUPTION(big, "PAX header too large");
  std::string x300 = Pax({{"comment", std::string(290, 'c')}});
  EXPECT_CORRUPTION(Parse(x300 + x300 + File("a", "") + Zeros(2), 0, l), "PAX header too large");
  EXPECT_TRUE(Parse(x300 + File("a", "") + x300 + File("b", "") + Zeros(2), 0, l).status.ok());
  EXPECT_CORRUPTION(Parse(GnuLong('L', std::string(600, 'n')) + File("a", "") + Zeros(2), 0, l),
                    "GNU long name too large");
  EXPECT_CORRUPTION(Parse(GnuLong('K', std::string(600, 'n')) + File("a", "") + Zeros(2), 0, l),
                    "GNU long link too large");
}

TEST(TarReader, UnknownTypeflagIsUnsupported) {
  // GNU 'D' dumpdir header at offset 512 (after a file with no data).
  Hdr h;
  h.name = "dumpdir/";
  h.type = 'D';
  h.size = 10;
  Parsed p = Parse(File("a", "") + Header(h) + Pad("Yfile\0\0\0\0\0") + Zeros(2));
  EXPECT_EQ(p.status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(p.status.message(), "layer sha256:ab12: tar header at offset 512: unsupported typeflag 'D'");
}

TEST(TarReader, CallbackErrorStopsParsing) {
  // Three files; the callback refuses the second.
  std::string tar = File("a", "") + File("b", "") + File("c", "") + Zeros(2);
  int calls = 0;
  TarReader r("t", [&](const TarEntry& e) {
    ++calls;
    return e.path == "b" ? Status::Aborted("stop at b") : Status::Ok();
  });
  Status st = r.Feed(std::span(reinterpret_cast<const uint8_t*>(tar.data()), tar.size()));
  EXPECT_EQ(st.code(), ErrorCode::kAborted);
  EXPECT_EQ(st.message(), "stop at b");
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r.Finish().code(), ErrorCode::kAborted);  // sticky
}

// Every kind of header in one archive.
std::string KitchenSink() {
  std::string tar;
  tar += Pax({{"comment", "global"}}, 'g');
  tar += File("etc/", "");
  tar += File("etc/hosts", "127.0.0.1 localhost\n");
  tar += GnuLong('L', std::string(130, 'L') + '\0') + GnuLong('K', std::string(110, 'K') + '\0');
  Hdr sym;
  sym.name = "sym";
  sym.type = '2';
  sym.magic = Magic::kGnu;
  tar += Header(sym);
  tar += Pax({{"path", std::string(250, 'P')},
              {"mtime", "1600000000.123456789"},
              {"SCHILY.xattr.user.b", "2"},
              {"SCHILY.xattr.user.a", "1"}}) +
         File("p", std::string(1000, 'x'));
  Hdr dev;
  dev.name = "dev/sda";
  dev.type = '4';
  dev.devmajor = 8;
  dev.size = 10;  // header-only: no data follows
  tar += Header(dev);
  tar += GnuSparseHeader("old-sparse", 30, 5000, {{0, 10}, {1000, 10}, {2000, 5}, {3000, 5}}, true) +
         GnuSparseExtension({{5000, 0}}, false) + Pad(std::string(30, 's'));
  Hdr s10;
  s10.name = "GNUSparseFile.0/s10";
  s10.size = 512 + 7;
  tar += Pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "s10"},
              {"GNU.sparse.realsize", "70000"}}) +
         Header(s10) + Pad("2\n0\n3\n65536\n4\n") + Pad("abcdefg");
  tar += Pax({{"GNU.sparse.size", "300"}, {"GNU.sparse.map", "100,2,200,1"}}) + File("s01", "abc");
  tar += Zeros(2) + "junk";
  return tar;
}

TEST(TarReader, ChunkingDoesNotChangeEntries) {
  // KitchenSink() whole, 1 byte at a time, 511/513-byte chunks, and random chunk sizes.
  std::string tar = KitchenSink();
  Parsed whole = Parse(tar);
  ASSERT_TRUE(whole.status.ok()) << whole.status.ToString();
  ASSERT_EQ(whole.entries.size(), 8u) << DumpAll(whole.entries);
  std::string want = DumpAll(whole.entries);
  for (size_t chunk : {size_t{1}, size_t{511}, size_t{513}, size_t{4096}}) {
    Parsed p = Parse(tar, chunk);
    ASSERT_TRUE(p.status.ok()) << chunk << ": " << p.status.ToString();
    EXPECT_EQ(DumpAll(p.entries), want) << "chunk " << chunk;
    EXPECT_EQ(p.offset, tar.size());
  }
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    Parsed p;
    TarReader r("t", [&](const TarEntry& e) { p.entries.push_back(e); return Status::Ok(); });
    size_t i = 0;
    while (i < tar.size()) {
      size_t n = std::min<size_t>(rng() % 1500, tar.size() - i);
      ASSERT_TRUE(r.Feed(std::span(reinterpret_cast<const uint8_t*>(tar.data()) + i, n)).ok());
      i += n;
    }
    ASSERT_TRUE(r.Finish().ok());
    EXPECT_EQ(DumpAll(p.entries), want);
  }
  // Spot checks on the sink's entries.
  const auto& e = whole.entries;
  EXPECT_EQ(e[2].path, std::string(130, 'L'));
  EXPECT_EQ(e[2].link_target, std::string(110, 'K'));
  EXPECT_EQ(e[3].path, std::string(250, 'P'));
  EXPECT_EQ(e[3].mtime_nsec, 123456789u);
  ASSERT_EQ(e[3].xattrs.size(), 2u);
  EXPECT_EQ(e[3].xattrs[0].first, "user.a");
  EXPECT_EQ(e[4].type, EntryType::kBlockDevice);
  EXPECT_EQ(e[5].path, "old-sparse");
  EXPECT_EQ(e[5].sparse.size(), 4u);
  EXPECT_EQ(e[6].path, "s10");
  EXPECT_EQ(e[6].size, 70000u);
  EXPECT_EQ(tar.substr(e[6].data_offset, e[6].stored_size), "abcdefg");
  EXPECT_EQ(e[7].path, "s01");
  EXPECT_EQ(e[7].size, 300u);
  EXPECT_EQ(e[0].type, EntryType::kRegular);  // "etc/" with typeflag '0' stays a file: only '\0' is promoted
}

}  // namespace
}  // namespace lazyroot
