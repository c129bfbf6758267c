#!/usr/bin/env python3
"""Fine access points inside large files (index/fine_points.h), end to end.

A gzip -6 layer (GNU gzip) holding a 24 MiB file of log lines and random
bytes, a 900 KiB file (under the 1 MiB threshold) and a small one is pushed
to a real registry and pulled. Then:

- the stored index has fine points, only inside the large file's data, and
  points without a window (in the random bytes);
- random reads through a FUSE mount (4 KiB and odd sizes, at and across fine
  points, backwards) equal GNU tar's extraction of the same tar; so does a
  whole read of each file;
- fsck rebuilds every index and finds it byte for byte the same.

Skipped only when /dev/fuse is missing."""

import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

BIG_SIZE = 24 * 1024 * 1024 + 333


def big_bytes():
    rng = random.Random(5)
    out = bytearray()
    n = 0
    while len(out) < BIG_SIZE:
        chunk = bytearray()
        while len(chunk) < 700000:
            chunk += b"line %08d of a compressible log file\n" % n
            n += 1
        out += chunk + rng.randbytes(900000)
    return bytes(out[:BIG_SIZE])


def checkpoints(index_path):
    """(out_offset, fine, window_size) of every point of a layer index file."""
    with open(index_path, "rb") as f:
        b = f.read()
    off, length = struct.unpack_from("<QQ", b, 120)
    t = b[off:off + length]
    assert t[:6] == b"LZCKPT", t[:8]
    count = struct.unpack_from("<Q", t, 32)[0]
    pos, points = 40, []
    for _ in range(count):
        _, out_off, _, flags, wsize, stored = struct.unpack_from("<QQBB2xII", t, pos)
        pos += 28 + stored
        points.append((out_off, bool(flags & 1), wsize))
    return t[10], points


@unittest.skipUnless(os.path.exists("/dev/fuse"), "needs /dev/fuse")
class FinePoints(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.src = tempfile.mkdtemp(prefix="lazyroot-fine-src-")
        cls.addClassCleanup(shutil.rmtree, cls.src, ignore_errors=True)
        rng = random.Random(9)
        files = {"data/big.bin": big_bytes(), "data/mid.bin": rng.randbytes(900 * 1024), "data/small.txt": b"small\n"}
        tar = mi.gnu_tar(os.path.join(cls.src, "tree"), files)
        gz = subprocess.run(["gzip", "-6", "-n", "-c"], input=tar, check=True, capture_output=True).stdout
        cls.want = mi.gnu_untar(tar, os.path.join(cls.src, "oracle"), files)
        offsets = mi.data_offsets(tar)
        cls.data = {name: (offsets[name], len(body)) for name, body in files.items()}
        image = mi.build_image([mi.Layer(tar, gz, "gzip")])
        mi.push(mi.RegistryClient(cls.reg.host), "fine/points", "v1", image)
        cls.ref = "%s/fine/points:v1" % cls.reg.host

    def setUp(self):
        super().setUp()
        self.pull_ok("http://" + self.ref, "-q")
        layers = self.inspect(self.ref)["Layers"]
        self.assertEqual(len(layers), 1)
        self.index = os.path.join(self.root, "index", "sha256", layers[0]["digest"][len("sha256:"):])

    def test_fine_points_lie_inside_the_large_file_only(self):
        policy, points = checkpoints(self.index)
        self.assertEqual(policy, 1)
        fine = [p for p in points if p[1]]
        start, size = self.data["data/big.bin"]
        # 32 KiB apart in the random runs: hundreds of them.
        self.assertGreater(len(fine), 200)
        self.assertTrue(all(start <= p[0] < start + size for p in fine), fine[:5])
        self.assertTrue(any(p[2] == 0 for p in fine))
        mid_start, mid_size = self.data["data/mid.bin"]
        self.assertFalse([p for p in fine if mid_start <= p[0] < mid_start + mid_size])

    def test_random_reads_through_a_mount_equal_gnu_tar_and_fsck_agrees(self):
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref, d), "mount")
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot("umount", d))
        want = self.want["data/big.bin"]
        _, points = checkpoints(self.index)
        start, _ = self.data["data/big.bin"]
        fine = [p[0] - start for p in points if p[1]]
        rng = random.Random(3)
        with open(os.path.join(d, "data", "big.bin"), "rb", buffering=0) as f:
            offsets = [rng.randrange(0, BIG_SIZE - 4096) for _ in range(300)]
            # At, just before and across fine points, and backwards.
            for p in rng.sample(fine, 40):
                offsets += [p, max(0, p - 100), max(0, p - 4096 + 7)]
            offsets += sorted(rng.sample(range(BIG_SIZE - 70000), 30), reverse=True)
            for off in offsets:
                n = rng.choice([1, 4096, 4096, 5000, 70000])
                self.assertEqual(os.pread(f.fileno(), n, off), want[off:off + n], "offset %d size %d" % (off, n))
        for name, body in self.want.items():
            with open(os.path.join(d, name), "rb") as f:
                self.assertEqual(f.read(), body, name)
        self.assertOk(self.lazyroot("umount", d), "umount")
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
