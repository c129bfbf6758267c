#!/usr/bin/env python3
"""statfs of a mount answers from the image tree's header (format 4's
regular_bytes and node_count), not from a walk of every node: a mount reads
its tree lazily, and df or a package manager's free-space check on / used to
read every block of it.

Through a real FUSE mount of an image built with make_image: statvfs gives
what a full walk of the mount gives (unique inodes, the regular files' sizes
with a hardlinked file once); with every tree block the open does not read
damaged, statvfs still answers the same, with nothing logged (it read none
of them) while a stat of a damaged node is EIO and logged; a version-3 tree
(no total) is noted by fsck and rebuilt by the next mount; a tampered total
with a resealed header is reported by fsck and rebuilt by fsck --repair.
"""

import errno
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402
from tree_file import body_offset, reseal_header  # noqa: E402

HAVE_FUSE = os.path.exists("/dev/fuse") and os.geteuid() == 0
FILES = 3000  # 240 kB of node records: the tree spans several 64 KiB blocks
HEADER = 136  # format 4's header; the block table follows it
TOTAL_AT, CRC_AT = 128, 124


def content(i):
    return ("file %d of the tree whose totals statfs reports\n" % i).encode() * (1 + i % 7)


def as_version_3(b):
    """The same tree in format 3's layout: the 128-byte header without the
    total, the block table and every section 8 bytes earlier (the body's
    bytes, and so its block checksums, unchanged)."""
    b = bytearray(b[:128] + b[136:])
    struct.pack_into("<II", b, 8, 3, 128)
    for at in (16, 48, 56, 64, 72, 80, 88):
        v, = struct.unpack_from("<Q", b, at)
        struct.pack_into("<Q", b, at, v - 8)
    reseal_header(b)
    return bytes(b)


def blocks_an_open_reads(b):
    """The body blocks a lazy open reads (index/FORMAT.md): the root's node
    record, its dirents and their names, the layer table, the layers' and
    the image's digests."""
    block_size, = struct.unpack_from("<I", b, 112)
    nodes, dirents, xattrs = struct.unpack_from("<QQQ", b, 48)
    layers_offset, strings = struct.unpack_from("<QQ", b, 80)
    layer_count, = struct.unpack_from("<I", b, 40)
    body = body_offset(b)
    ranges = [(nodes, 80), (layers_offset, 8 * layer_count)]
    first, count = struct.unpack_from("<II", b, nodes + 72)
    ranges.append((dirents + 12 * first, 12 * count))
    for k in range(first, first + count):
        off, n, _ = struct.unpack_from("<III", b, dirents + 12 * k)
        ranges.append((strings + off, n))
    for k in range(layer_count):
        off, n = struct.unpack_from("<II", b, layers_offset + 8 * k)
        ranges.append((strings + off, n))
    off, n = struct.unpack_from("<II", b, 104)
    ranges.append((strings + off, n))
    xfirst, xcount = struct.unpack_from("<II", b, nodes + 64)
    ranges.append((xattrs + 16 * xfirst, 16 * xcount))  # the root's (none here)
    read = set()
    for at, n in ranges:
        if n > 0:
            read.update(range((at - body) // block_size, (at + n - 1 - body) // block_size + 1))
    return read


def full_walk(mnt):
    """(inodes, regular bytes) of a walk of the whole mount: each inode once
    (hardlinks share one), the root included."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(mnt):
        for name in [""] + dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name) if name else dirpath)
            seen[st.st_ino] = st.st_size if (st.st_mode & 0o170000) == 0o100000 else 0
    return len(seen), sum(seen.values())


@unittest.skipUnless(HAVE_FUSE, "needs /dev/fuse and root")
class StatfsFromTheHeader(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        base = [{"path": "d", "type": "dir"}, {"path": "etc", "type": "dir"}]
        base += [{"path": "d/f%05d" % i, "content": content(i)} for i in range(FILES)]
        base += [{"path": "etc/big", "content": b"x" * 100001},
                 {"path": "etc/empty", "content": b""},
                 {"path": "etc/link", "type": "symlink", "target": "big"},
                 {"path": "etc/hard", "type": "hardlink", "target": "etc/big"},
                 {"path": "etc/gone", "content": b"removed by the upper layer"}]
        upper = [{"path": "etc", "type": "dir"},
                 {"path": "etc/.wh.gone", "content": b""},
                 {"path": "d/f00001", "content": b"replaced, another size"}]
        cls.img = mi.build_image([mi.build_layer(base), mi.build_layer(upper)])
        mi.push(mi.RegistryClient(cls.reg.host, "http"), "statfs/many", "v1", cls.img)
        cls.ref = "%s/statfs/many:v1" % cls.reg.host

    def setUp(self):
        super().setUp()
        self.pull_ok("http://" + self.ref)
        self.mnt = self.workdir("mnt")

    def mount(self):
        r = self.lazyroot("mount", "--no-pull", self.ref, self.mnt, timeout=60)
        self.assertOk(r, "lazyroot mount")
        return r

    def umount(self):
        self.assertOk(self.lazyroot("umount", self.mnt), "umount")

    def mount_foreground(self):
        """A foreground mount whose log (stderr) the test reads."""
        p = self.popen("mount", "--foreground", "--no-pull", self.ref, self.mnt)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mnt):
            self.assertIsNone(p.poll(), "the foreground mount exited early")
            self.assertLess(time.monotonic(), deadline, "not mounted in 30 s")
            time.sleep(0.05)
        return p

    def tree_file(self):
        d = os.path.join(self.root, "trees")
        (name,) = os.listdir(d)
        return os.path.join(d, name)

    def expected(self):
        """statvfs's (f_files, f_blocks) from a full walk of a healthy mount."""
        self.mount()
        try:
            inodes, regular = full_walk(self.mnt)
        finally:
            self.umount()
        return inodes, (regular + 4095) // 4096

    def assertStatvfs(self, want):
        st = os.statvfs(self.mnt)
        self.assertEqual(st.f_frsize, 4096)
        self.assertEqual((st.f_files, st.f_blocks), want)

    def test_statvfs_is_what_a_full_walk_counts(self):
        want = self.expected()
        self.assertEqual(want[0], 1 + 2 + FILES + 3)  # root, d, etc, the files, big (= hard), empty, link
        regular = sum(len(content(i)) for i in range(FILES) if i != 1) + len(b"replaced, another size") + 100001
        self.assertEqual(want[1], (regular + 4095) // 4096)
        with open(self.tree_file(), "rb") as f:
            header = f.read(HEADER)
        self.assertEqual(struct.unpack_from("<I", header, 8)[0], 4)
        self.assertEqual(struct.unpack_from("<Q", header, TOTAL_AT)[0], regular)
        self.assertEqual(struct.unpack_from("<I", header, 24)[0], want[0])
        self.mount()
        self.assertStatvfs(want)
        self.umount()

    def test_statfs_reads_no_block_of_the_lazily_read_tree(self):
        """Every block the open does not read is damaged (one flipped byte,
        checksums left as they were): statvfs answers the healthy tree's
        totals and logs nothing, because it reads none of them; a stat of a
        file whose record is in one is EIO, logged once."""
        want = self.expected()
        path = self.tree_file()
        with open(path, "rb") as f:
            b = bytearray(f.read())
        block_size, block_count = struct.unpack_from("<II", b, 112)
        body = body_offset(b)
        spared = blocks_an_open_reads(b)
        damaged = [k for k in range(block_count) if k not in spared]
        self.assertGreaterEqual(len(damaged), 2, (block_count, spared))  # the node records of most files
        for k in damaged:
            at = body + k * block_size + min(100, len(b) - body - k * block_size - 1)
            b[at] ^= 0x5A
        with open(path, "wb") as f:
            f.write(b)

        p = self.mount_foreground()
        self.assertStatvfs(want)
        self.assertStatvfs(want)
        self.assertTrue(os.path.isdir(os.path.join(self.mnt, "d")))  # the root's dirents are read at open
        p.err_file.seek(0)
        self.assertNotIn("image tree", p.err_file.read(), "statfs read a damaged block")
        with self.assertRaises(OSError) as ctx:
            os.stat(os.path.join(self.mnt, "d", "f01500"))
        self.assertEqual(ctx.exception.errno, errno.EIO)
        self.umount()
        code, _, err = self.finish(p, timeout=60)
        self.assertEqual(code, 0, err)
        lines = [line for line in err.splitlines() if "image tree" in line]
        self.assertEqual(len(lines), 1, err[-3000:])
        self.assertIn("checksum mismatch", lines[0])

    def test_a_version_3_tree_is_rebuilt_with_its_total(self):
        want = self.expected()
        path = self.tree_file()
        with open(path, "rb") as f:
            v4 = f.read()
        with open(path, "wb") as f:
            f.write(as_version_3(v4))
        r = self.lazyroot("fsck")
        self.assertOk(r, "fsck of a store with a version-3 tree")
        self.assertIn("format version 3 (now 4): the next mount or extract rebuilds it", r.stdout + r.stderr)
        r = self.mount()
        self.assertIn("format version 3 (older lazyroot)", r.stderr)
        self.assertIn("rebuilding it", r.stderr)
        self.assertStatvfs(want)
        self.umount()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), v4)  # rebuilt as it was written first
        self.assertOk(self.lazyroot("fsck"), "fsck after the rebuild")

    def test_a_tampered_total_is_reported_by_fsck_and_repaired(self):
        want = self.expected()
        path = self.tree_file()
        with open(path, "rb") as f:
            good = f.read()
        b = bytearray(good)
        total, = struct.unpack_from("<Q", b, TOTAL_AT)
        struct.pack_into("<Q", b, TOTAL_AT, total + 10 * 4096)
        reseal_header(b)
        with open(path, "wb") as f:
            f.write(b)
        for quick in ([], ["--quick"]):
            r = self.lazyroot("fsck", *quick)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("total of regular file sizes, %d bytes, is not the nodes' %d" % (total + 40960, total),
                          r.stdout + r.stderr)
        self.assertOk(self.lazyroot("fsck", "--repair"), "fsck --repair")
        self.assertOk(self.lazyroot("fsck"), "fsck after --repair")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), good)
        self.mount()
        self.assertStatvfs(want)
        self.umount()


if __name__ == "__main__":
    unittest.main()
