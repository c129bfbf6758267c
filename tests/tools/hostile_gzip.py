"""Hostile gzip blobs aimed at the ISA-L gzip pass (index/gzip_isal_stream.cc),
which hands ISA-L its input in slices ending at multiples of 256 KiB of the
compressed stream: members, headers and trailers placed across those
boundaries, storms of empty members, stored blocks, garbage after the last
member, and deflate streams built bit by bit where inflaters may disagree.
Everything here is built with Python's zlib and by hand, never by lazyroot.
"""

import struct
import zlib

SLICE = 256 << 10


def deflate_raw(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def header(name=None, comment=None, extra=None, fhcrc=False, bad_hcrc=False, flags_extra=0):
    flg = flags_extra
    tail = b""
    if extra is not None:
        flg |= 4
        tail += struct.pack("<H", len(extra)) + extra
    if name is not None:
        flg |= 8
        tail += name + b"\0"
    if comment is not None:
        flg |= 16
        tail += comment + b"\0"
    if fhcrc:
        flg |= 2
    h = bytes([0x1F, 0x8B, 8, flg, 0, 0, 0, 0, 0, 3]) + tail
    if fhcrc:
        crc = zlib.crc32(h) & 0xFFFF
        if bad_hcrc:
            crc ^= 0x5A5A
        h += struct.pack("<H", crc)
    return h


def trailer(data, bad_crc=False, bad_size=False):
    crc = zlib.crc32(data)
    if bad_crc:
        crc ^= 1
    size = len(data) + (1 if bad_size else 0)
    return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def member(data, level=6, body=None, **hdr):
    return header(**hdr) + (deflate_raw(data, level) if body is None else body) + trailer(data)


EMPTY = member(b"")  # 20 bytes


def pad_members(n):
    """Empty members adding up to exactly n bytes (n == 20 or n >= 22)."""
    out = b""
    while n > 0:
        if n == 20:
            return out + EMPTY
        take = min(n, 22 + 65535)
        if n - take in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21):
            take = n - 40  # leave a tail that one more member can make
        out += member(b"", extra=b"p" * (take - 22))
        n -= take
    assert n == 0
    return out


def pad_to(prefix_len, target):
    """Empty members taking a stream of prefix_len bytes to exactly target."""
    n = target - prefix_len
    while n < 22 and n != 20:
        n += SLICE
    return pad_members(n)


def split(data, parts):
    step = max(1, len(data) // parts)
    return [data[i:i + step] for i in range(0, len(data), step)] or [b""]


# ---------------------------------------------------------------- shapes

def empty_storm(tar, count=12000):
    """count empty members, the tar in three members, count more empty."""
    out = EMPTY * count
    for p in split(tar, 3):
        out += member(p) + EMPTY * 7
    return out + EMPTY * count


def boundary_members(tar, delta, level=1):
    """Each member of the tar is padded (with empty members before it) so
    that it ends at a slice boundary + delta: delta 0 ends a trailer exactly
    there, -1..-7 split the trailer, +1..+20 split the next member's header
    (FNAME and FHCRC)."""
    out = b""
    for i, p in enumerate(split(tar, 4)):
        m = member(p, level=level, name=b"part%d" % i, fhcrc=True)
        boundary = (len(out) + len(m) + 22) // SLICE * SLICE + SLICE
        out += pad_to(len(out), boundary + delta - len(m)) + m
        assert (len(out) - delta) % SLICE == 0
    return out


def header_across(tar, at):
    """One member whose long header (FEXTRA, FNAME, FCOMMENT, FHCRC) starts
    `at` bytes before a slice boundary."""
    m = member(tar, level=1, extra=b"e" * 1000, name=b"n" * 300, comment=b"c" * 5000, fhcrc=True)
    return pad_to(0, SLICE - at) + m


def garbage_after(tar, garbage):
    """A valid stream padded to end exactly at a slice boundary, then garbage."""
    m = member(tar, level=1)
    end = (len(m) + 22) // SLICE * SLICE + SLICE
    return pad_to(0, end - len(m)) + m + garbage


def stored(tar):
    return member(tar, level=0)


def bad_hcrc(tar):
    return member(tar, level=1, name=b"x", fhcrc=True, bad_hcrc=True)


def bad_crc(tar):
    return header() + deflate_raw(tar, 1) + trailer(tar, bad_crc=True)


def bad_isize(tar):
    return header() + deflate_raw(tar, 1) + trailer(tar, bad_size=True)


def bad_crc_second_member(tar):
    a, b = tar[: len(tar) // 2], tar[len(tar) // 2:]
    return member(a, level=1) + header() + deflate_raw(b, 1) + trailer(b, bad_crc=True)


def lookback_across_members(tar):
    """Member 2's first block copies from member 1's output (a distance
    reaching before the member start): every inflater must refuse it, each
    member has its own window."""
    a = tar[: len(tar) // 2]
    bw = BitWriter()
    bw.bits(1, 1)  # BFINAL
    bw.bits(1, 2)  # fixed Huffman
    bw.fixed_lit(ord("x"))
    bw.fixed_length_dist(length=3, dist=5)  # 5 back: 4 bytes before this member
    bw.fixed_lit(256)
    body = bw.finish()
    out_b = b"x" + b"?" * 3
    return member(a, level=1) + header() + body + trailer(out_b)


def ten_a_dynamic(lengths, dist_lengths):
    """One member whose only block is dynamic, declares these literal/length
    and distance code lengths, and writes 'A' ten times with them."""
    bw = BitWriter()
    bw.bits(1, 1)  # BFINAL
    bw.bits(2, 2)  # dynamic
    bw.dynamic_header(lengths, dist_lengths)
    codes = canonical(lengths)
    for _ in range(10):
        bw.code(*codes[65])
    bw.code(*codes[256])
    return header() + bw.finish() + trailer(b"A" * 10)


def a_and_eob(count, a_len, eob_len):
    """count literal/length code lengths: a_len for 'A', eob_len for
    end-of-block, none for the others."""
    lengths = [0] * count
    lengths[65] = a_len
    lengths[256] = eob_len
    return lengths


def incomplete_litlen_code(tar):
    """One member whose only block has an incomplete literal/length code
    ('A' length 1, end-of-block length 2): zlib refuses it ("invalid
    literal/lengths set")."""
    return ten_a_dynamic(a_and_eob(257, 1, 2), [1])


def oversubscribed_dist_code(tar):
    """Distance code lengths 1,1,1 (over-subscribed), never used."""
    return ten_a_dynamic(a_and_eob(257, 1, 1), [1, 1, 1])


def hlit_too_many(tar):
    """HLIT 288 (257 + 31 > 286 codes): zlib refuses ("too many length or
    distance symbols")."""
    return ten_a_dynamic(a_and_eob(288, 1, 1), [1])


def fixed_dist_30(tar):
    """A fixed-Huffman block using distance code 30 (invalid)."""
    bw = BitWriter()
    bw.bits(1, 1)
    bw.bits(1, 2)
    bw.fixed_lit(ord("a"))
    bw.fixed_lit(257)  # length 3
    bw.code(rev(30, 5), 5)
    bw.fixed_lit(256)
    return header() + bw.finish() + trailer(b"aaaa")


def stored_len_mismatch(tar):
    body = bytes([1]) + struct.pack("<HH", 5, 5 ^ 0xFFFF ^ 1) + b"hello"
    return header() + body + trailer(b"hello")


def data_after_final_block(tar):
    """The final block of member 1 is followed by another deflate block in
    place of the trailer: the trailer check must fail."""
    body = deflate_raw(b"abc") + deflate_raw(b"def")
    return header() + body + trailer(b"abc")


# ---------------------------------------------------------------- bits

def rev(code, n):
    r = 0
    for _ in range(n):
        r = (r << 1) | (code & 1)
        code >>= 1
    return r


def canonical(lengths):
    """{symbol: (reversed code, length)} for deflate's canonical codes."""
    maxlen = max(lengths) if lengths else 0
    bl_count = [0] * (maxlen + 1)
    for n in lengths:
        if n:
            bl_count[n] += 1
    code = 0
    next_code = [0] * (maxlen + 2)
    for bits in range(1, maxlen + 1):
        code = (code + bl_count[bits - 1]) << 1 if bits > 1 else 0
        next_code[bits] = code
    out = {}
    for sym, n in enumerate(lengths):
        if n:
            out[sym] = (rev(next_code[n], n), n)
            next_code[n] += 1
    return out


class BitWriter:
    def __init__(self):
        self.acc = 0
        self.n = 0
        self.out = bytearray()

    def bitpos(self):
        return len(self.out) * 8 + self.n

    def align(self):
        if self.n:
            self.bits(0, 8 - self.n)

    def raw(self, data):
        assert self.n == 0
        self.out += data

    def bits(self, v, n):
        self.acc |= v << self.n
        self.n += n
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, revcode, n):
        self.bits(revcode, n)

    def fixed_lit(self, sym):
        if sym < 144:
            self.code(rev(0x30 + sym, 8), 8)
        elif sym < 256:
            self.code(rev(0x190 + sym - 144, 9), 9)
        elif sym < 280:
            self.code(rev(sym - 256, 7), 7)
        else:
            self.code(rev(0xC0 + sym - 280, 8), 8)

    def fixed_length_dist(self, length, dist):
        assert 3 <= length <= 10 and 1 <= dist <= 6
        self.fixed_lit(254 + length)
        if dist <= 4:
            self.code(rev(dist - 1, 5), 5)
        else:
            self.code(rev(4, 5), 5)
            self.bits(dist - 5, 1)

    def dynamic_header(self, lit_lengths, dist_lengths):
        """Code length alphabet: symbols 0, 1, 2 with lengths 2, 2, 1
        (complete); every length written one by one."""
        self.bits(len(lit_lengths) - 257, 5)
        self.bits(len(dist_lengths) - 1, 5)
        order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        cl = [0] * 19
        cl[0], cl[1], cl[2] = 2, 2, 1
        hclen = 19
        while hclen > 4 and cl[order[hclen - 1]] == 0:
            hclen -= 1
        self.bits(hclen - 4, 4)
        for i in range(hclen):
            self.bits(cl[order[i]], 3)
        cc = canonical(cl)
        for n in list(lit_lengths) + list(dist_lengths):
            assert n in (0, 1, 2)
            self.code(*cc[n])

    def finish(self):
        if self.n:
            self.out.append(self.acc & 0xFF)
            self.acc = 0
            self.n = 0
        return bytes(self.out)


# Blocks written by hand, so that a test places stored blocks of any length
# (0 to 65535) at any bit alignment, flush markers, final stored blocks and
# member edges exactly where it wants them (zlib decides those itself).

def fixed_lit_bits(sym):
    """How many bits the fixed Huffman code of literal byte sym takes."""
    return 8 if sym < 144 else 9


def stored_block(bw, data, final=False):
    """BTYPE 00: header, padding to a byte, LEN, NLEN, the data."""
    assert len(data) <= 65535
    bw.bits(1 if final else 0, 1)
    bw.bits(0, 2)
    bw.align()
    bw.raw(struct.pack("<HH", len(data), len(data) ^ 0xFFFF))
    bw.raw(data)


def fixed_block(bw, data, final=False):
    """BTYPE 01: every byte a literal, then the end-of-block code."""
    bw.bits(1 if final else 0, 1)
    bw.bits(1, 2)
    for b in data:
        bw.fixed_lit(b)
    bw.fixed_lit(256)


def gzip_wrap(deflated, data):
    """A gzip member around a raw deflate stream of data."""
    return header() + deflated + trailer(data)


def gunzip_all(blob):
    """zlib's decode of every member (each must end)."""
    out = []
    while blob:
        d = zlib.decompressobj(31)
        out.append(d.decompress(blob))
        assert d.eof, "a member does not end"
        blob = d.unused_data
    return b"".join(out)
