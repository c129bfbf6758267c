"""A deflate writer for hostile gzip layers: stored and fixed-Huffman blocks
written by hand, so that a test places stored blocks of any length (0 to
65535) at any bit alignment, flush markers, final stored blocks and member
edges exactly where it wants them (zlib decides those itself). Independent of
lazyroot's code; zlib checks every stream it writes (gunzip_all).

  BitWriter                      LSB-first bit packing (RFC 1951 3.1.1)
  stored_block(bw, data, final)  BTYPE 00: header, padding, LEN, NLEN, data
  fixed_block(bw, data, final)   BTYPE 01: every byte a literal, then EOB
  gzip_wrap(deflated, data)      a gzip member around a raw deflate stream
  gunzip_all(blob)               zlib's decode of every member
"""

import struct
import zlib


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def bitpos(self):
        return len(self.out) * 8 + self.nbits

    def put(self, v, n):
        self.acc |= v << self.nbits
        self.nbits += n
        while self.nbits >= 8:
            self.out.append(self.acc & 0xff)
            self.acc >>= 8
            self.nbits -= 8

    def align(self):
        if self.nbits:
            self.put(0, 8 - self.nbits)

    def raw(self, data):
        assert self.nbits == 0
        self.out += data

    def finish(self):
        self.align()
        return bytes(self.out)


def _rev(code, n):
    # Huffman codes go out from their top bit (RFC 1951 3.1.1).
    return int(format(code, "0%db" % n)[::-1], 2)


_FIXED = [(_rev(0x30 + b, 8), 8) if b < 144 else (_rev(0x190 + b - 144, 9), 9) for b in range(256)]


def stored_block(bw, data, final=False):
    assert len(data) <= 65535
    bw.put(1 if final else 0, 1)
    bw.put(0, 2)
    bw.align()
    bw.raw(struct.pack("<HH", len(data), len(data) ^ 0xffff))
    bw.raw(data)


def fixed_block(bw, data, final=False):
    bw.put(1 if final else 0, 1)
    bw.put(1, 2)
    for b in data:
        bw.put(*_FIXED[b])
    bw.put(0, 7)  # end of block: code 0000000


def fixed_bits(data):
    """The bits fixed_block(data) writes."""
    return 3 + sum(_FIXED[b][1] for b in data) + 7


def gzip_wrap(deflated, data):
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated +
            struct.pack("<II", zlib.crc32(data), len(data) & 0xffffffff))


def gunzip_all(blob):
    out = []
    while blob:
        d = zlib.decompressobj(31)
        out.append(d.decompress(blob))
        assert d.eof, "a member does not end"
        blob = d.unused_data
    return b"".join(out)
