#!/usr/bin/env python3
"""Hostile layers for mid-block access points (fine policy 2,
index/isal_midblock.h), end to end: gzip streams of one GNU tar built to put
ISA-L's pass at its limits, each pushed to a real registry and pulled:

- one Huffman-coded block of megabytes (level 9, memLevel 9, a file of one
  1000-byte record repeated: every symbol a 258-byte match);
- tiny blocks (a sync flush every 97 bytes);
- sync flushes every 128 KiB (where points fall due) and full flushes;
- members cut at odd tar offsets, alternating stored, fixed and dynamic
  blocks, with empty members first, between and last;
- dynamic blocks whose headers are the largest deflate allows (286 + 30
  lengths, each a 7-bit code-length code), written by hand.

For each: every file read whole and at random offsets (at, before and across
mid-block points) through a real FUSE mount, and `lazyroot extract`, equal GNU
tar's extraction; then fsck rebuilds every index byte for byte (clean).

Skipped only when /dev/fuse is missing."""

import os
import random
import shutil
import struct
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402
import store_files  # noqa: E402


def words(n, seed):
    rng = random.Random(seed)
    w = [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"epsilon ", b"zeta ", b"eta ", b"theta "]
    return b"".join(rng.choices(w, k=n // 5 + 10))[:n]


def files():
    rng = random.Random(7)
    unit = rng.randbytes(1000)
    noisy = bytearray(rng.randbytes(1 << 20))
    for i in range(0, len(noisy) - 8, 23):
        noisy[i:i + 4] = bytes([noisy[i]]) * 4
    return {"data/words.txt": words(3 * 1024 * 1024 + 11, 8),
            "data/repeated.bin": unit * 2200,
            "data/noisy.bin": bytes(noisy),
            "data/small.txt": b"small\n"}


def gzip_wrap(deflated, data):
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated +
            struct.pack("<II", zlib.crc32(data), len(data) & 0xffffffff))


def gzip_member(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, flush_every=0, flush=zlib.Z_SYNC_FLUSH,
                mem_level=8):
    c = zlib.compressobj(level, zlib.DEFLATED, -15, mem_level, strategy)
    out = []
    if flush_every:
        for at in range(0, len(data), flush_every):
            out.append(c.compress(data[at:at + flush_every]))
            out.append(c.flush(flush))
    else:
        out.append(c.compress(data))
    out.append(c.flush(zlib.Z_FINISH))
    return gzip_wrap(b"".join(out), data)


def members(tar):
    rng = random.Random(11)
    kinds = [(0, zlib.Z_DEFAULT_STRATEGY), (6, zlib.Z_FIXED), (6, zlib.Z_DEFAULT_STRATEGY)]
    out, at, k = [gzip_member(b"")], 0, 0
    while at < len(tar):
        n = rng.randrange(3000, 1500000)
        level, strategy = kinds[k % 3]
        out.append(gzip_member(tar[at:at + n], level, strategy))
        if k % 2:
            out.append(gzip_member(b""))
        at, k = at + n, k + 1
    out.append(gzip_member(b""))
    return b"".join(out)


def canonical(lengths):
    count = [0] * 16
    for n in lengths:
        count[n] += 1
    count[0] = 0
    code, nxt = 0, [0] * 16
    for b in range(1, 16):
        code = (code + count[b - 1]) << 1
        nxt[b] = code
    codes = []
    for n in lengths:
        if n:
            # Reversed: deflate sends Huffman codes from their top bit.
            codes.append(int(format(nxt[n], "0%db" % n)[::-1], 2))
            nxt[n] += 1
        else:
            codes.append(0)
    return codes


def max_header(tar, block=700 * 1024):
    """Dynamic blocks whose headers are maximal: 286 literal/length and 30
    distance lengths, each sent as a 7-bit code-length code (2286 bits); the
    body literals and length-3 matches at distances 1 to 4."""
    lit = [8 if i < 226 else 9 for i in range(286)]
    dist = [4 if i < 2 else 5 for i in range(30)]
    cl = [2, 2, 3, 3, 7, 7, 4, 4, 7, 7, 5, 7, 7, 7, 7, 7, 7, 7, 7]
    lc, dc, cc = canonical(lit), canonical(dist), canonical(cl)
    order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    acc, nbits, out = 0, 0, bytearray()

    def put(v, n):
        nonlocal acc, nbits
        acc |= v << nbits
        nbits += n
        if nbits >= 4096:
            k = nbits // 8
            out.extend((acc & ((1 << (8 * k)) - 1)).to_bytes(k, "little"))
            acc >>= 8 * k
            nbits -= 8 * k

    lit_sym = [(lc[b], lit[b]) for b in range(256)]
    match = [(lc[257] | (dc[d - 1] << lit[257]), lit[257] + dist[d - 1]) for d in range(1, 5)]
    at = 0
    while True:
        end = min(len(tar), at + block)
        put(1 if end == len(tar) else 0, 1)
        put(2, 2)
        put(286 - 257, 5)
        put(30 - 1, 5)
        put(19 - 4, 4)
        for i in range(19):
            put(cl[order[i]], 3)
        for n in lit + dist:
            put(cc[n], cl[n])
        i = at
        while i < end:
            d = 0
            if i + 3 <= end:
                for k in (1, 2, 3, 4):
                    if i >= k and tar[i:i + 3] == tar[i - k:i - k + 3]:
                        d = k
                        break
            if d:
                put(*match[d - 1])
                i += 3
            else:
                put(*lit_sym[tar[i]])
                i += 1
        put(lc[256], lit[256])
        at = end
        if at >= len(tar):
            break
    put(0, (8 - nbits % 8) % 8)
    out.extend(acc.to_bytes(nbits // 8, "little"))
    return gzip_wrap(bytes(out), tar)


STREAMS = {
    "one-block": lambda t: gzip_member(t, 9, mem_level=9),
    "tiny-blocks": lambda t: gzip_member(t, 6, flush_every=97),
    "sync-at-points": lambda t: gzip_member(t, 6, flush_every=128 * 1024),
    "full-flushes": lambda t: gzip_member(t, 9, flush_every=700 * 1024 + 1, flush=zlib.Z_FULL_FLUSH),
    "members": members,
    "max-header": max_header,
}


def gunzip_all(blob):
    """zlib's decode of every member."""
    out = []
    while blob:
        d = zlib.decompressobj(31)
        out.append(d.decompress(blob))
        assert d.eof
        blob = d.unused_data
    return b"".join(out)


def checkpoints(index_path):
    """(out_offset, mid_block) of every point of a layer index file."""
    return [(p["out_offset"], p["mid_block"]) for p in store_files.checkpoint_points(index_path)[1]]


@unittest.skipUnless(os.path.exists("/dev/fuse"), "needs /dev/fuse")
class HostileMidBlockLayers(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.src = tempfile.mkdtemp(prefix="lazyroot-midblock-src-")
        cls.addClassCleanup(shutil.rmtree, cls.src, ignore_errors=True)
        f = files()
        cls.tar = mi.gnu_tar(os.path.join(cls.src, "tree"), f)
        cls.want = mi.gnu_untar(cls.tar, os.path.join(cls.src, "oracle"), f)
        cls.offsets = mi.data_offsets(cls.tar)
        cls.client = mi.RegistryClient(cls.reg.host)

    def test_every_file_reads_like_gnu_tar_through_a_mount_and_extract_then_fsck_is_clean(self):
        mids = {}
        for name, make in STREAMS.items():
            with self.subTest(name):
                blob = make(self.tar)
                self.assertTrue(gunzip_all(blob) == self.tar, name + ": zlib does not decode it to the tar")
                mi.push(self.client, "midblock/" + name, "v1", mi.build_image([mi.Layer(self.tar, blob, "gzip")]))
                ref = "http://%s/midblock/%s:v1" % (self.reg.host, name)
                self.pull_ok(ref, "-q")
                layers = self.inspect(ref)["Layers"]
                index = os.path.join(self.root, "index", "sha256", layers[0]["digest"][len("sha256:"):])
                points = checkpoints(index)
                mids[name] = sum(1 for p in points if p[1])
                d = self.workdir("mnt-" + name)
                self.assertOk(self.lazyroot("mount", ref, d), "mount " + name)
                try:
                    rng = random.Random(name)
                    for path, body in self.want.items():
                        start = self.offsets[path]
                        mid = [p[0] - start for p in points if p[1] and start <= p[0] < start + len(body)]
                        with open(os.path.join(d, path), "rb", buffering=0) as fh:
                            offs = [rng.randrange(0, len(body)) for _ in range(40)]
                            for p in mid:
                                offs += [p, max(0, p - 1), max(0, p - 4096 + 7)]
                            rng.shuffle(offs)
                            for off in offs:
                                n = rng.choice([1, 4096, 5000, 70000])
                                self.assertEqual(os.pread(fh.fileno(), n, off), body[off:off + n],
                                                 "%s: %s offset %d size %d" % (name, path, off, n))
                        with open(os.path.join(d, path), "rb") as fh:
                            self.assertTrue(fh.read() == body, "%s: %s read whole differs" % (name, path))
                finally:
                    self.assertOk(self.lazyroot("umount", d), "umount " + name)
                dest = os.path.join(self.tmp, "x-" + name)
                self.assertOk(self.lazyroot("extract", ref, dest, timeout=300), "extract " + name)
                for path, body in self.want.items():
                    with open(os.path.join(dest, path), "rb") as fh:
                        self.assertTrue(fh.read() == body, "%s: extracted %s differs" % (name, path))
                shutil.rmtree(dest)
        print("mid-block points:", mids, file=sys.stderr)
        # None in a member's first block (the pass learns a block's header at a
        # stop before it), none in blocks of 128 KiB: one-block and
        # sync-at-points have none; the reads there are the test.
        for name in ("members", "max-header"):
            self.assertGreater(mids.get(name, 0), 0, name)
        r = self.lazyroot("fsck", timeout=600)
        self.assertOk(r, "fsck")
        self.assertIn(" 0 problems", r.stderr)


if __name__ == "__main__":
    unittest.main()
