#!/usr/bin/env python3
"""Unit copies of single-frame zstd layers (src/store/unit_copy_store.h).

A layer compressed by the `zstd` CLI (one frame, as buildkit and containerd
write) holding a 20 MiB file is pushed to a real registry and pulled. Then:

- random 4 KiB reads through a mount equal GNU tar's extraction of the same
  tar, and the mount leaves copies of the units it decoded under
  units/<layer hex>/; a second mount reads the same bytes (from the copies);
- damaged copies (truncated, a flipped byte, another unit's file under this
  unit's name, a consistent file naming another layer, one claiming a 1 TiB
  unit, a directory where a file belongs) are found by fsck and removed by
  fsck --repair; a mount over them reads the right bytes anyway and replaces
  them with good copies;
- gc removes a layer's copies with the layer; df counts them.

Skipped only when /dev/fuse or the zstd CLI is missing."""

import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

BIG_SIZE = 20 * 1024 * 1024 + 777
UNIT = 2 << 20


def reseal(b):
    """The header checksum recomputed, as a writer of a consistent lie would."""
    return b[:99] + struct.pack("<I", zlib.crc32(b[:99])) + b[103:]


@unittest.skipUnless(os.path.exists("/dev/fuse") and shutil.which("zstd"), "needs /dev/fuse and the zstd CLI")
class ZstdUnitCopies(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.src = tempfile.mkdtemp(prefix="lazyroot-zstd-src-")
        cls.addClassCleanup(shutil.rmtree, cls.src, ignore_errors=True)
        files = {"data/big.bin": mi.mixed_bytes(BIG_SIZE, seed=11), "data/small.txt": b"small\n"}
        tar = mi.gnu_tar(os.path.join(cls.src, "tree"), files)
        cls.data_at = mi.data_offsets(tar)["data/big.bin"]  # big.bin's offset in the tar stream
        zst = subprocess.run(["zstd", "-3", "-q", "-c"], input=tar, check=True, capture_output=True).stdout
        # One frame: the frame header's content size is the whole tar.
        cls.want = mi.gnu_untar(tar, os.path.join(cls.src, "oracle"), ["data/big.bin"])["data/big.bin"]
        image = mi.build_image([mi.Layer(tar, zst, "zstd")])
        mi.push(mi.RegistryClient(cls.reg.host), "zstd/one-frame", "v1", image)
        cls.ref = "%s/zstd/one-frame:v1" % cls.reg.host

    def setUp(self):
        super().setUp()
        self.pull_ok("http://" + self.ref, "-q")
        layers = self.inspect(self.ref)["Layers"]
        self.assertEqual(len(layers), 1)
        self.layer_hex = layers[0]["digest"][len("sha256:"):]
        self.units = os.path.join(self.root, "units", self.layer_hex)

    def mount(self):
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref, d), "mount")
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot("umount", d))
        return d

    def umount(self, d):
        self.assertOk(self.lazyroot("umount", d), "umount")

    def check_reads(self, d, seed, n=60):
        rng = random.Random(seed)
        with open(os.path.join(d, "data", "big.bin"), "rb", buffering=0) as f:
            for _ in range(n):
                off = rng.randrange(0, BIG_SIZE - 4096)
                self.assertEqual(os.pread(f.fileno(), 4096, off), self.want[off:off + 4096], "offset %d" % off)

    def make_copies(self):
        d = self.mount()
        # The end first: a cold read there passes every unit before it.
        with open(os.path.join(d, "data", "big.bin"), "rb", buffering=0) as f:
            self.assertEqual(os.pread(f.fileno(), 4096, BIG_SIZE - 5000), self.want[BIG_SIZE - 5000:BIG_SIZE - 904])
        self.check_reads(d, 1)
        self.umount(d)
        names = sorted(os.listdir(self.units))
        self.assertGreaterEqual(len(names), 9, names)
        return names

    def test_random_reads_equal_gnu_tar_and_leave_copies_a_second_mount_reads(self):
        names = self.make_copies()
        self.assertTrue(all(len(n.split("-")[0]) == 16 and int(n.split("-")[0], 16) % UNIT == 0 for n in names), names)
        d = self.mount()
        self.check_reads(d, 2, n=150)
        with open(os.path.join(d, "data", "big.bin"), "rb") as f:
            self.assertEqual(f.read(), self.want)
        with open(os.path.join(d, "data", "small.txt"), "rb") as f:
            self.assertEqual(f.read(), b"small\n")
        self.umount(d)
        self.assertEqual(self.lazyroot("fsck").returncode, 0, self.lazyroot("fsck").stdout)

    def test_damaged_copies_are_found_repaired_and_never_read(self):
        names = self.make_copies()
        p = lambda n: os.path.join(self.units, n)  # noqa: E731
        with open(p(names[1]), "rb") as f:
            good = f.read()
        with open(p(names[1]), "r+b") as f:
            f.truncate(len(good) // 2)                      # truncated
        with open(p(names[2]), "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 1]))                      # a flipped byte
        shutil.copyfile(p(names[4]), p(names[3]))           # another unit's copy under this unit's name
        other = good[:8] + b"sha256:" + b"c" * 64 + good[79:]
        with open(p(names[5]), "wb") as f:
            f.write(reseal(other))                          # a consistent copy of another layer
        huge = good[:87] + struct.pack("<Q", 1 << 40) + good[95:]
        with open(p(names[6]), "wb") as f:
            f.write(reseal(huge))                           # claims a 1 TiB unit
        os.remove(p(names[7]))
        os.mkdir(p(names[7]))                               # not even a file
        r = self.lazyroot("fsck")
        self.assertNotEqual(r.returncode, 0)
        for n in names[1:4] + names[5:8]:
            self.assertIn("units/%s/%s" % (self.layer_hex, n), r.stdout)
        # A mount over the damage reads the right bytes: cold reads inside
        # each damaged unit (last first, so none continues another) find the
        # copy bad, decode the unit and write a good copy.
        d = self.mount()
        tar_data = self.data_at
        with open(os.path.join(d, "data", "big.bin"), "rb", buffering=0) as f:
            for n in reversed(names[1:8]):
                off = int(n.split("-")[0], 16) + 1000 - tar_data
                if 0 <= off < BIG_SIZE - 4096:
                    self.assertEqual(os.pread(f.fileno(), 4096, off), self.want[off:off + 4096], n)
            self.check_reads(d, 3)
            f.seek(0)
            self.assertEqual(f.read(), self.want)
        self.umount(d)
        # The mount replaced every bad file with a good copy; a directory it
        # leaves alone, and fsck --repair removes it.
        r = self.lazyroot("fsck")
        found = [line for line in r.stdout.splitlines() if line.startswith("units/")]
        self.assertEqual(len(found), 1, r.stdout)
        self.assertIn(names[7], found[0])
        r = self.lazyroot("fsck", "--repair")
        self.assertIn("units/%s/%s" % (self.layer_hex, names[7]), r.stdout)
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        d = self.mount()
        self.check_reads(d, 4)
        self.umount(d)

    def test_gc_removes_copies_with_their_layer_and_df_counts_them(self):
        self.make_copies()
        size = sum(os.path.getsize(os.path.join(self.units, n)) for n in os.listdir(self.units))
        df = self.lazyroot("df")
        self.assertOk(df, "df")
        self.assertOk(self.lazyroot("gc"), "gc")
        self.assertTrue(os.path.isdir(self.units), "gc removed the copies of a live layer")
        self.assertOk(self.lazyroot("rm", self.ref), "rm")
        r = self.lazyroot("gc")
        self.assertOk(r, "gc")
        self.assertFalse(os.path.exists(self.units))
        self.assertGreater(size, 0)


if __name__ == "__main__":
    unittest.main()
