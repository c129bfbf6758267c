"""The image tree file's checksums (index/FORMAT.md, "Image tree file",
version 4), for tests that rewrite tree bytes and need them to read back:

  crc32c(data, crc=0)   CRC-32C (Castagnoli), as the tree's blocks and header use
  body_offset(b)        where the body starts: after the header and block table
  reseal_header(b)      the header's CRC-32C over [0,124) + [128, body)
  reseal(b)             every body block's CRC-32C in the block table, then the header's

b is a bytearray, changed in place.
"""

import struct

CRC_AT = 124  # the header's checksum field


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def body_offset(b):
    block_count, = struct.unpack_from("<I", b, 116)
    return (struct.unpack_from("<I", b, 12)[0] + 4 * block_count + 7) & ~7


def reseal_header(b):
    struct.pack_into("<I", b, CRC_AT, crc32c(bytes(b[0:CRC_AT]) + bytes(b[CRC_AT + 4:body_offset(b)])))


def reseal(b):
    table, = struct.unpack_from("<I", b, 12)  # header_size: the block table follows the header
    block_size, block_count = struct.unpack_from("<II", b, 112)
    body = body_offset(b)
    for k in range(block_count):
        at = body + k * block_size
        struct.pack_into("<I", b, table + 4 * k, crc32c(b[at:at + block_size]))
    reseal_header(b)
