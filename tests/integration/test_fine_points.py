#!/usr/bin/env python3
"""Fine access points inside large files (index/fine_points.h), end to end.

A gzip -6 layer (GNU gzip) holding a 24 MiB file of log lines and random
bytes, a 6 MiB file of words (gzip's blocks there are hundreds of KiB
long), a 900 KiB file (under the 1 MiB threshold) and a small one is pushed
to a real registry and pulled. Then:

- the stored index has fine points, only inside the large files' data, and
  points without a window (in the random bytes), and mid-block points
  (policy 2) in the words;
- random reads through a FUSE mount (4 KiB and odd sizes, at and across fine
  points, backwards) equal GNU tar's extraction of the same tar; so does a
  whole read of each file;
- fsck rebuilds every index and finds it byte for byte the same.

Skipped only when /dev/fuse is missing."""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402
import store_files  # noqa: E402

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


def words_bytes():
    rng = random.Random(6)
    words = [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"epsilon ", b"zeta ", b"eta ", b"theta "]
    return b"".join(rng.choices(words, k=1100000))[:WORDS_SIZE]


WORDS_SIZE = 6 * 1024 * 1024 + 77


def checkpoints(index_path):
    """(out_offset, fine, window_size, mid_block) of every point of a layer index file."""
    policy, points = store_files.checkpoint_points(index_path)
    return policy, [(p["out_offset"], p["fine"], p["window_size"], p["mid_block"]) for p in points]


@unittest.skipUnless(os.path.exists("/dev/fuse"), "needs /dev/fuse")
class FinePoints(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.src = tempfile.mkdtemp(prefix="lazyroot-fine-src-")
        cls.addClassCleanup(shutil.rmtree, cls.src, ignore_errors=True)
        rng = random.Random(9)
        files = {"data/big.bin": big_bytes(), "data/words.txt": words_bytes(), "data/mid.bin": rng.randbytes(900 * 1024), "data/small.txt": b"small\n"}
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
        self.assertEqual(policy, 3)
        fine = [p for p in points if p[1]]
        start, size = self.data["data/big.bin"]
        # 32 KiB apart in the random runs: hundreds of them.
        self.assertGreater(len([p for p in fine if start <= p[0] < start + size]), 200)
        words_start, words_size = self.data["data/words.txt"]
        in_big = [start <= p[0] < start + size for p in fine]
        in_words = [words_start <= p[0] < words_start + words_size for p in fine]
        self.assertTrue(all(a or b for a, b in zip(in_big, in_words)), fine[:5])
        # Mid-block points (ISA-L's pass, the default) in the words' long blocks.
        mid = [p for p in fine if p[3]]
        self.assertGreater(len([p for p in mid if words_start <= p[0] < words_start + words_size]), 3)
        self.assertTrue(any(p[2] == 0 for p in fine))
        mid_start, mid_size = self.data["data/mid.bin"]
        self.assertFalse([p for p in fine if mid_start <= p[0] < mid_start + mid_size])

    def test_recorded_stored_blocks_are_the_files_bytes_in_the_blob(self):
        # Policy 3: the stored blocks after a point, their lengths; the blob
        # holds the stream's bytes there as they are (gzip wrote the random
        # runs so).
        _, points = store_files.checkpoint_points(self.index)
        blob = store_files.read_bytes(self.index.replace("/index/", "/blobs/"))
        start, size = self.data["data/big.bin"]
        want = self.want["data/big.bin"]
        stored = [p for p in points if p["stored_blocks"] and start <= p["out_offset"] < start + size]
        self.assertGreater(len(stored), 100)
        for p in stored:
            at = p["out_offset"] - start
            for length, data_at in zip(p["stored_blocks"], p["stored_at"]):
                if at >= size:
                    break
                n = min(length, size - at)
                self.assertEqual(blob[data_at:data_at + n], want[at:at + n], "stored block at %d" % (at + start))
                at += length
        # The words are coded blocks: none recorded there.
        words_start, words_size = self.data["data/words.txt"]
        self.assertFalse([p for p in points if p["stored_blocks"] and words_start <= p["out_offset"] < words_start + words_size])
        # Through a mount: reads inside, at and across those blocks' edges.
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref, d), "mount")
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot("umount", d))
        rng = random.Random(5)
        with open(os.path.join(d, "data", "big.bin"), "rb", buffering=0) as f:
            offsets = []
            for p in rng.sample(stored, 40):
                at = p["out_offset"] - start
                end = at + sum(p["stored_blocks"])
                offsets += [at, at + 1, end - 4096, end - 4095, end - 1, rng.randrange(at, end)]
            rng.shuffle(offsets)
            for off in offsets:
                off = max(0, min(off, size - 1))
                n = rng.choice([1, 4096, 4096, 5000, 70000])
                self.assertEqual(os.pread(f.fileno(), n, off), want[off:off + n], "offset %d size %d" % (off, n))

    def test_random_reads_through_a_mount_equal_gnu_tar_and_fsck_agrees(self):
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref, d), "mount")
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot("umount", d))
        want = self.want["data/big.bin"]
        _, points = checkpoints(self.index)
        start, _ = self.data["data/big.bin"]
        fine = [p[0] - start for p in points if p[1] and start <= p[0] < start + BIG_SIZE]
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
        # The words: at, before and across mid-block points, and anywhere.
        want = self.want["data/words.txt"]
        start, _ = self.data["data/words.txt"]
        mid = [p[0] - start for p in points if p[3] and start <= p[0] < start + WORDS_SIZE]
        with open(os.path.join(d, "data", "words.txt"), "rb", buffering=0) as f:
            offsets = [rng.randrange(0, WORDS_SIZE - 4096) for _ in range(200)]
            for p in mid:
                offsets += [p, max(0, p - 1), max(0, p - 4096 + 7)]
            rng.shuffle(offsets)
            for off in offsets:
                n = rng.choice([1, 4096, 4096, 5000, 70000])
                self.assertEqual(os.pread(f.fileno(), n, off), want[off:off + n], "words offset %d size %d" % (off, n))
        for name, body in self.want.items():
            with open(os.path.join(d, name), "rb") as f:
                self.assertEqual(f.read(), body, name)
        self.assertOk(self.lazyroot("umount", d), "umount")
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
