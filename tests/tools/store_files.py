"""Small helpers of the tests that damage store files by hand and check what
a mount reads against the layer tars (test_mount_lazy_tables.py,
test_attacks_lazy_tables.py). Independent of lazyroot's code: Python's
tarfile reads the tars, and the index layout is index/FORMAT.md's.
Also used by the tests of the checkpoint table (test_fine_points.py,
test_attacks_midblock.py).

  tar_file_members(tar)      {name: bytes} of every regular file in a tar
  read_bytes(path)           the whole file
  flip_byte(path, offset)    one byte XOR 0x20, the file's size unchanged
  checkpoint_section(index)  (offset, length) of a layer index's checkpoint section
  checkpoint_points(index)   (fine policy, points) of a layer index's checkpoint table
  checkpoint_table(bytes)    (section offset, fine policy, points) of an index's bytes
"""

import io
import struct
import tarfile


def tar_file_members(tar):
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def checkpoint_section(index):
    """index/FORMAT.md, "Layer index file": u64 offset and length at 120 and 128."""
    with open(index, "rb") as f:
        head = f.read(136)
    return struct.unpack_from("<QQ", head, 120)


def checkpoint_points(index):
    """(fine policy, points) of a layer index file's checkpoint table; see
    checkpoint_table."""
    with open(index, "rb") as f:
        _, policy, points = checkpoint_table(f.read())
    return policy, points


def checkpoint_table(index_bytes):
    """index/FORMAT.md, "Checkpoint section", of a layer index's bytes:
    (section offset, fine policy, points), each point a dict of out_offset,
    in_offset, bits, flags, fine, mid_block, window_size, stored_blocks
    (policy 3: the lengths of the stored deflate blocks from the point on;
    empty if none) with their blob offsets, stored_at, and where the point's
    record and its block count start in the section (at, blocks_at)."""
    off, length = struct.unpack_from("<QQ", index_bytes, 120)
    t = index_bytes[off:off + length]
    assert t[:6] == b"LZCKPT", t[:8]
    count = struct.unpack_from("<Q", t, 32)[0]
    pos, points = 40, []
    for _ in range(count):
        record = pos
        in_off, out_off, bits, flags, wsize, stored = struct.unpack_from("<QQBB2xII", t, pos)
        pos += 28 + stored
        if flags & 2:
            pos += 8  # a mid-block point's header offset
        blocks, at, blocks_at = [], [], None
        if flags & 4:
            blocks_at = pos
            n = struct.unpack_from("<H", t, pos)[0]
            blocks = list(struct.unpack_from("<%dH" % n, t, pos + 2))
            pos += 2 + 2 * n
            # The first block's data after its header (3 bits padded to a
            # byte, LEN, NLEN), each next one 5 bytes after the one before.
            data = (in_off * 8 - bits + 3 + 7) // 8 + 4
            for length in blocks:
                at.append(data)
                data += length + 5
        points.append({"out_offset": out_off, "in_offset": in_off, "bits": bits, "flags": flags,
                       "fine": bool(flags & 1), "mid_block": bool(flags & 2), "window_size": wsize,
                       "stored_blocks": blocks, "stored_at": at, "at": record, "blocks_at": blocks_at})
    assert pos + 4 == len(t), "the table parsed to %d of %d bytes" % (pos + 4, len(t))
    return off, t[10], points
