"""Small helpers of the tests that damage store files by hand and check what
a mount reads against the layer tars (test_mount_lazy_tables.py,
test_attacks_lazy_tables.py). Independent of lazyroot's code: Python's
tarfile reads the tars, and the index layout is index/FORMAT.md's.

  tar_file_members(tar)      {name: bytes} of every regular file in a tar
  read_bytes(path)           the whole file
  flip_byte(path, offset)    one byte XOR 0x20, the file's size unchanged
  checkpoint_section(index)  (offset, length) of a layer index's checkpoint section
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
