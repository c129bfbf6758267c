#!/usr/bin/env python3
"""Hostile gzip layers for fine point policy 3 (index/fine_points.h: a random
read inside a stored deflate block reads the blob's bytes straight), end to
end: a real registry on 127.0.0.1, a real pull (which writes policy 3), a
real FUSE mount, every read compared with the layer tar as Python's tarfile
reads it.

Streams (tests/tools/hostile_gzip.py writes the hand-made ones, zlib
checks each):
- hand-made: stored blocks of 0 (flush markers), 1, 2, 65534 and 65535
  bytes, runs of them, each run after a fixed-Huffman block cut so that the
  next header starts at every bit 0..7 of its byte; the last block a final
  stored block right before the trailer;
- the same in members cut at odd tar offsets, with empty members between;
- zlib level 0; level 6 with a sync flush every 4099 bytes (empty stored
  markers, stored blocks of random data); level 1 with full flushes;
  GNU gzip -1.

For each: the index records stored blocks (the hand-made streams at several
bit alignments; the flushed ones past their flush markers), every recorded block of a file is read at and around both
its edges with 1 B..300 KiB reads, exactly whole, and at random; files
read whole; fsck then finds nothing to rebuild (the pull's index and the
rebuild's are the same bytes).

The store attacked (hand-made stream): an index whose stored length or flags
lie in a way the format refuses (section hashes and CRC recomputed) reads
right; a level 0 layer's index rewritten as a policy 2 one (an older store)
reads right and fsck keeps it; the blob flipped, truncated and grown under a live
mount inside stored blocks gives the true bytes or EIO, never other bytes.

Skipped only when /dev/fuse is missing."""

import errno
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import hostile_gzip as hg  # noqa: E402
import make_image as mi  # noqa: E402
import store_files  # noqa: E402
from store_files import read_bytes as _read, tar_file_members as _members  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

HAVE_FUSE = os.path.exists("/dev/fuse")
SIZES = [1, 2, 4095, 4096, 65536, 300 << 10]


def files():
    rng = random.Random(9)
    text = b"".join(b"line %d of a text file\n" % i for i in range(40000))
    return {"data/random.bin": rng.randbytes(3 * 1024 * 1024 + 7),
            "data/edge.bin": rng.randbytes(1024 * 1024 + 1),
            "data/mixed.bin": mi.mixed_bytes(2 * 1024 * 1024 + 333, seed=4),
            "data/text.txt": text,
            "data/one": b"x"}


STORED_LENS = [65535, 1, 0, 40000, 2, 65535, 0, 0, 12345, 65534, 3000, 65535, 65535]


def hand_deflate(data, seed=0):
    """A raw deflate stream of data: runs of stored blocks (lengths cycling
    through STORED_LENS, so also flush markers), each run after a fixed block
    whose end puts the next header at bit k % 8; a final stored block."""
    bw = hg.BitWriter()
    at, k, li = 0, seed, seed
    while len(data) - at > 65535:
        target = k % 8
        pos = bw.bitpos() + 10  # the fixed block's header and end-of-block code
        # Long enough that a point often falls due inside it (its end, the
        # stored run's start, is then a point), then cut at the alignment.
        n, least = 0, 20000 + 7919 * k % 30000
        while at + n < len(data) and (n < least or pos % 8 != target) and n < least + 3000:
            pos += hg.fixed_lit_bits(data[at + n])
            n += 1
        hg.fixed_block(bw, data[at:at + n])
        at += n
        for _ in range(1 + k % 3):
            m = min(STORED_LENS[li % len(STORED_LENS)], len(data) - at - 1)
            li += 1
            hg.stored_block(bw, data[at:at + m])
            at += m
        k += 1
    if seed % 2:
        # A flush marker that is the last block (the trailer after it).
        hg.stored_block(bw, data[at:])
        hg.stored_block(bw, b"", final=True)
    else:
        hg.stored_block(bw, data[at:], final=True)
    return bw.finish()


def hand(tar):
    return hg.gzip_wrap(hand_deflate(tar), tar)


def empty_member():
    bw = hg.BitWriter()
    hg.stored_block(bw, b"", final=True)
    return hg.gzip_wrap(bw.finish(), b"")


def hand_members(tar):
    rng = random.Random(5)
    out, at, k = [], 0, 0
    while at < len(tar):
        n = rng.randrange(70000, 1500000) | 1
        out.append(hg.gzip_wrap(hand_deflate(tar[at:at + n], k), tar[at:at + n]))
        if k % 2:
            out.append(empty_member())
        at, k = at + n, k + 1
    return b"".join(out) + empty_member()


def zlib_member(data, level, flush_every=0, flush=zlib.Z_SYNC_FLUSH):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = []
    for at in range(0, len(data), flush_every or len(data) or 1):
        out.append(c.compress(data[at:at + (flush_every or len(data))]))
        if flush_every:
            out.append(c.flush(flush))
    out.append(c.flush(zlib.Z_FINISH))
    return hg.gzip_wrap(b"".join(out), data)


def gnu_gzip_1(tar):
    return subprocess.run(["gzip", "-1", "-n", "-c"], input=tar, check=True, capture_output=True).stdout


STREAMS = {
    "hand": hand,
    "hand-members": hand_members,
    "level0": lambda t: zlib_member(t, 0),
    "sync-flushes": lambda t: zlib_member(t, 6, 4099),
    "full-flushes": lambda t: zlib_member(t, 1, 65537, zlib.Z_FULL_FLUSH),
    "gzip-1": gnu_gzip_1,
}
# Those whose index must record stored blocks at several bit alignments.
ALIGNED = ("hand", "hand-members")


class Point:
    """A point of the table (store_files.checkpoint_table's dict as
    attributes); stored_len: its first stored block's length (0 if none)."""

    def __init__(self, d):
        self.at, self.in_off, self.out_off, self.bits, self.flags = (
            d["at"], d["in_offset"], d["out_offset"], d["bits"], d["flags"])
        self.stored_blocks, self.blocks_at = d["stored_blocks"], d["blocks_at"]
        self.stored_len = self.stored_blocks[0] if self.stored_blocks else 0


def checkpoint_table(index_bytes):
    """(section offset, fine_policy, [Point]) of a layer index."""
    off, policy, points = store_files.checkpoint_table(index_bytes)
    return off, policy, [Point(p) for p in points]


def reseal(index_bytes, table):
    """The index with its checkpoint section replaced by table (same length
    or not), the table's CRC-32 and every hash that covers it recomputed:
    what a writer who can rewrite the store can do (index/FORMAT.md)."""
    h = bytearray(index_bytes[:304])
    c_off, c_len = struct.unpack_from("<QQ", h, 120)
    d_off, = struct.unpack_from("<Q", h, 152)
    f_off, = struct.unpack_from("<Q", h, 200)
    table = bytes(table[:-4]) + struct.pack("<I", zlib.crc32(table[:-4]))
    delta = len(table) - c_len
    struct.pack_into("<Q", h, 128, len(table))
    struct.pack_into("<Q", h, 152, d_off + delta)
    struct.pack_into("<Q", h, 200, f_off + delta)
    body = index_bytes[304:c_off] + table + index_bytes[d_off:]
    sections = table + index_bytes[d_off:f_off]
    h[240:272] = hashlib.sha256(sections).digest()
    h[160:192] = bytes(32)
    h[160:192] = hashlib.sha256(bytes(h)).digest()
    return bytes(h) + body


def replace(path, data):
    tmp = path + ".attack"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def pread_random(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        # No read-ahead: the daemon sees the reads as asked (random, small).
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


@unittest.skipUnless(HAVE_FUSE, "needs /dev/fuse")
class HostileStoredBlocks(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.src = tempfile.mkdtemp(prefix="lazyroot-stored-src-")
        cls.addClassCleanup(shutil.rmtree, cls.src, ignore_errors=True)
        f = files()
        cls.tar = mi.gnu_tar(os.path.join(cls.src, "tree"), f)
        cls.want = _members(cls.tar)  # Python's tarfile: the oracle
        cls.offsets = mi.data_offsets(cls.tar)
        cls.client = mi.RegistryClient(cls.reg.host)
        cls.blobs = {}
        for name, make in STREAMS.items():
            blob = make(cls.tar)
            assert hg.gunzip_all(blob) == cls.tar, name + ": zlib does not decode it to the tar"
            cls.blobs[name] = blob
            mi.push(cls.client, "stored/" + name, "v1", mi.build_image([mi.Layer(cls.tar, blob, "gzip")]))

    def ref(self, name):
        return "http://%s/stored/%s:v1" % (self.reg.host, name)

    def index_path(self, name):
        return os.path.join(self.root, "index", "sha256", mi.sha256(self.blobs[name])[len("sha256:"):])

    def blob_path(self, name):
        return os.path.join(self.root, "blobs", "sha256", mi.sha256(self.blobs[name])[len("sha256:"):])

    def file_of(self, out_off):
        """(name, offset in it) of the file whose data holds stream offset out_off, or None."""
        for name, start in self.offsets.items():
            if name in self.want and start <= out_off < start + len(self.want[name]):
                return name, out_off - start
        return None

    def stored_reads(self, points, rng, limit=40):
        """(file, offset, size) reads at and around the edges of recorded stored blocks."""
        out = []
        stored = [p for p in points if p.stored_blocks]
        rng.shuffle(stored)
        for p in stored[:limit]:
            f = self.file_of(p.out_off)
            if f is None:
                continue
            name, o = f
            n = len(self.want[name])
            L = sum(p.stored_blocks)
            out.append((name, o, L))  # the run exactly
            out.append((name, o + L - 1, 1))  # its last byte
            edges, at = [], 0
            for length in p.stored_blocks:  # and every block's edges inside it
                at += length
                edges += [at - 1, at, at + 1]
            for d in [-1, 0, 1, L // 2] + edges:
                if 0 <= o + d < n:
                    out.append((name, o + d, rng.choice(SIZES)))
        return out

    def check(self, d, reads, eio_ok=False):
        """Every read gives tarfile's bytes (or, with eio_ok, fails with EIO,
        or is short: the kernel returns the pages before a failed one).
        Returns how many failed or were short."""
        failed = 0
        for name, off, n in reads:
            want = self.want[name][off:off + n]
            try:
                got = pread_random(os.path.join(d, name), off, n)
            except OSError as e:
                if not eio_ok or e.errno != errno.EIO:
                    raise
                failed += 1
                continue
            if eio_ok and len(got) < len(want):
                self.assertTrue(got == want[:len(got)], "%s offset %d size %d: a short read of other bytes" % (
                    name, off, n))
                failed += 1
                continue
            self.assertTrue(got == want, "%s offset %d size %d: %d bytes differ from tarfile's (%d read)" % (
                name, off, n, sum(1 for a, b in zip(got, want) if a != b) + abs(len(got) - len(want)), len(got)))
        return failed

    def test_every_stored_block_reads_like_tarfile_and_fsck_keeps_the_index(self):
        found = {}
        for name in STREAMS:
            with self.subTest(name):
                ref = self.ref(name)
                self.pull_ok(ref, "-q")
                _, policy, points = checkpoint_table(_read(self.index_path(name)))
                self.assertEqual(policy, 3, name + ": the pull writes policy 3")
                stored = [p for p in points if p.stored_blocks]
                found[name] = (len(stored), sorted({p.bits for p in stored}))
                for p in stored:
                    # What the index says is the blob's bytes are the tar's bytes
                    # there: each block of the run, the next 5 bytes after the
                    # one before (flush markers are blocks of 0 bytes).
                    data, out = p.in_off + (1 if p.bits <= 2 else 0) + 4, p.out_off
                    for length in p.stored_blocks:
                        self.assertEqual(self.blobs[name][data:data + length], self.tar[out:out + length],
                                         "%s: point at %d, block at %d" % (name, p.out_off, out))
                        data += length + 5
                        out += length
                self.assertGreater(len(stored), 20, name)
                if name in ALIGNED:
                    self.assertGreaterEqual(len(found[name][1]), 4, name + ": stored blocks at few alignments")
                d = self.workdir("mnt-" + name)
                self.assertOk(self.lazyroot("mount", ref, d), "mount " + name)
                try:
                    rng = random.Random(name)
                    reads = self.stored_reads(points, rng)
                    for path, body in self.want.items():
                        for _ in range(15):
                            reads.append((path, rng.randrange(len(body)), rng.choice(SIZES)))
                    rng.shuffle(reads)
                    self.check(d, reads)
                    for path, body in self.want.items():
                        self.assertTrue(_read(os.path.join(d, path)) == body, "%s: %s read whole" % (name, path))
                finally:
                    self.assertOk(self.lazyroot("umount", d), "umount " + name)
        print("stored points (count, bits):", found, file=sys.stderr)
        r = self.lazyroot("fsck", timeout=600)
        self.assertOk(r, "fsck")
        self.assertIn(" 0 problems", r.stderr)

    def test_racing_readers_of_stored_blocks_coded_pieces_and_whole_files(self):
        name = "hand-members"
        self.pull_ok(self.ref(name), "-q")
        _, _, points = checkpoint_table(_read(self.index_path(name)))
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref(name), d), "mount")
        errors = []

        def random_reader(seed):
            rng = random.Random(seed)
            reads = self.stored_reads(points, rng, limit=25)
            for path, body in self.want.items():
                reads += [(path, rng.randrange(len(body)), rng.choice(SIZES)) for _ in range(10)]
            rng.shuffle(reads)
            try:
                self.check(d, reads)
            except Exception as e:  # noqa: BLE001 (reported by the main thread)
                errors.append("reader %d: %s" % (seed, e))

        def whole_reader(path):
            try:
                if _read(os.path.join(d, path)) != self.want[path]:
                    errors.append(path + " read whole differs")
            except OSError as e:
                errors.append("%s: %s" % (path, e))

        try:
            threads = [threading.Thread(target=random_reader, args=(i,)) for i in range(6)]
            threads += [threading.Thread(target=whole_reader, args=(p,)) for p in self.want]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            self.assertOk(self.lazyroot("umount", d), "umount")
        self.assertEqual(errors, [])

    def test_umount_while_readers_hold_files_open_inside_stored_blocks(self):
        """Readers loop over stored-block reads on files they hold open while
        umount --lazy detaches the mount: each read gives tarfile's bytes or
        fails, umount succeeds, every reader ends, and nothing stays mounted
        (a plain umount refuses a mount in use)."""
        name = "hand"
        self.pull_ok(self.ref(name), "-q")
        _, _, points = checkpoint_table(_read(self.index_path(name)))
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref(name), d), "mount")
        wrong, done = [], []
        started = threading.Barrier(5)

        def reader(seed):
            rng = random.Random(seed)
            reads = self.stored_reads(points, rng, limit=60)
            fds = {}
            try:
                for path in self.want:
                    fds[path] = os.open(os.path.join(d, path), os.O_RDONLY)
                    os.posix_fadvise(fds[path], 0, 0, os.POSIX_FADV_RANDOM)
                started.wait()
                for k in range(2000):
                    path, off, n = reads[k % len(reads)]
                    try:
                        got = os.pread(fds[path], n, off)
                    except OSError:
                        break  # the mount went away under the read
                    want = self.want[path][off:off + n]
                    if got != want[:len(got)] or not got:
                        wrong.append("%s offset %d size %d" % (path, off, n))
                        break
            finally:
                for fd in fds.values():
                    os.close(fd)
                done.append(seed)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        started.wait()
        busy = self.lazyroot("umount", d)
        r = self.lazyroot("umount", "--lazy", d)
        for t in threads:
            t.join(timeout=300)
        self.assertOk(r, "umount --lazy during reads")
        if busy.returncode != 0:
            self.assertIn("in use", busy.stderr)
        self.assertEqual(sorted(done), [0, 1, 2, 3], "a reader never ended")
        self.assertEqual(wrong, [])
        self.assertFalse(os.path.ismount(d))

    def test_an_index_that_lies_in_ways_the_format_refuses_reads_right(self):
        self.pull_ok(self.ref("hand"), "-q")
        good = _read(self.index_path("hand"))
        off, _, points = checkpoint_table(good)
        c_len, = struct.unpack_from("<Q", good, 128)
        table = bytearray(good[off:off + c_len])
        p = next(p for p in points if p.stored_len)
        lies = {}
        t = bytearray(table)
        struct.pack_into("<H", t, p.blocks_at, 65)  # more blocks than a point records (and than follow)
        lies["65 blocks"] = bytes(t)
        t = bytearray(table)
        struct.pack_into("<H", t, p.blocks_at, 0)  # the flag without a block
        lies["zero"] = bytes(t)
        t = bytearray(table)
        struct.pack_into("<H", t, p.blocks_at + 2 * len(p.stored_blocks), 0)  # a run ending on an empty block
        lies["ends empty"] = bytes(t)
        t = bytearray(table)
        t[p.at + 17] |= 2  # a mid-block point cannot start a stored block
        lies["mid-block"] = bytes(t)
        t = bytearray(table)
        t[10] = 2  # a policy 2 table with stored lengths
        lies["policy-2"] = bytes(t)
        reads = self.stored_reads(points, random.Random(3), limit=10)
        for label, bad in lies.items():
            with self.subTest(label):
                replace(self.index_path("hand"), reseal(good, bad))
                d = self.workdir("mnt-" + label)
                self.assertOk(self.lazyroot("mount", self.ref("hand"), d), "mount " + label)
                try:
                    self.check(d, reads)
                    self.assertTrue(_read(os.path.join(d, "data/random.bin")) == self.want["data/random.bin"])
                finally:
                    self.assertOk(self.lazyroot("umount", d), "umount " + label)
        replace(self.index_path("hand"), good)

    def test_a_declared_size_that_disagrees_with_the_blob_is_refused(self):
        """Policy 3 places points for the manifest's size (the mid-block
        budget is a share of it): a descriptor whose size is not the blob's
        fails the pull, from a registry and from an oci: layout, and leaves
        no index; the true image then pulls and fsck finds nothing."""
        blob = self.blobs["hand"]
        good = mi.build_image([mi.Layer(self.tar, blob, "gzip")])
        index = self.index_path("hand")
        for delta in (-1, 1, 65536, -(len(blob) - 1)):
            m = json.loads(good.manifest)
            m["layers"][0]["size"] = len(blob) + delta
            bad = mi.Image(json.dumps(m, indent=2).encode(), good.media_type, good.config, good.layers, good.platform)
            for where in ("registry", "layout"):
                with self.subTest(delta=delta, where=where):
                    if where == "registry":
                        mi.push(self.client, "stored/declared", "d%d" % delta, bad)
                        ref = "http://%s/stored/declared:d%d" % (self.reg.host, delta)
                    else:
                        layout = self.workdir("layout%d" % delta)
                        mi.write_oci_layout(layout, bad, tag="v1")
                        ref = "oci:%s:v1" % layout
                    r = self.pull(ref, "-q")
                    self.assertNotEqual(r.returncode, 0, "%s: a pull of a blob of another size than declared" % ref)
                    # Each registry pull after the first resumes from the
                    # partial the one before left; a partial as long as the
                    # blob asks the registry for bytes past its end (416, whose
                    # body Go cuts short of its Content-Length): that restarts
                    # from byte 0 at once, with no retries of a "partial file".
                    self.assertIn("size mismatch", r.stderr, r.stderr[-2000:])
                    self.assertNotIn("attempts", r.stderr, r.stderr[-2000:])
                    self.assertFalse(os.path.exists(index), "an index of the blob was kept")
        self.pull_ok(self.ref("hand"), "-q")
        r = self.lazyroot("fsck", timeout=600)
        self.assertOk(r, "fsck")
        self.assertIn(" 0 problems", r.stderr)

    def test_the_mounts_random_reads_reach_the_stored_path(self):
        """A witness that the reads of these tests are served from the blob
        (not decoded): an index resealed with a stored block stretched over
        the blocks after it reads the blob's raw bytes there. That writer is
        outside what verified reads defend against (it can rewrite the chunk
        digests as well, index/FORMAT.md); should a reader come to check the
        block's LEN in the blob, this test changes to expect tarfile's bytes."""
        self.pull_ok(self.ref("hand"), "-q")
        good = _read(self.index_path("hand"))
        off, _, points = checkpoint_table(good)
        c_len, = struct.unpack_from("<Q", good, 128)
        table = bytearray(good[off:off + c_len])
        p = next(p for p in points if 0 < p.stored_len < 30000 and self.file_of(p.out_off))
        struct.pack_into("<H", table, p.blocks_at + 2, p.stored_len + 20000)  # the first block's length
        replace(self.index_path("hand"), reseal(good, bytes(table)))
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref("hand"), d), "mount")
        try:
            name, o = self.file_of(p.out_off)
            x = o + p.stored_len + 5000
            got = pread_random(os.path.join(d, name), x, 100)
            data = p.in_off + (1 if p.bits <= 2 else 0) + 4 + p.stored_len + 5000
            self.assertEqual(got, self.blobs["hand"][data:data + 100])
            self.assertNotEqual(got, self.want[name][x:x + 100])
        finally:
            self.assertOk(self.lazyroot("umount", d), "umount")
        replace(self.index_path("hand"), good)

    def test_a_policy_2_index_of_the_same_stream_reads_right_and_fsck_keeps_it(self):
        """An older store: the pull's index rewritten as policy 2 (no stored
        lengths; zlib's level 0 stream has no long coded block, so no mid-block
        point, and no flush marker, so policy 2 places the same points)."""
        self.pull_ok(self.ref("level0"), "-q")
        good = _read(self.index_path("level0"))
        off, _, points = checkpoint_table(good)
        c_len, = struct.unpack_from("<Q", good, 128)
        table = bytearray(good[off:off + c_len])
        self.assertFalse([p for p in points if p.flags & 2], "a mid-block point in a level 0 stream")
        out = bytearray(table[:40])
        out[10] = 2
        for i, p in enumerate(points):
            end = points[i + 1].at if i + 1 < len(points) else len(table) - 4
            rec = bytearray(table[p.at:p.blocks_at if p.stored_blocks else end])
            rec[17] &= ~4 & 0xff
            out += rec
        out += b"\0\0\0\0"
        old = reseal(good, bytes(out))
        replace(self.index_path("level0"), old)
        d = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", self.ref("level0"), d), "mount")
        try:
            self.check(d, self.stored_reads(points, random.Random(4), limit=15))
        finally:
            self.assertOk(self.lazyroot("umount", d), "umount")
        r = self.lazyroot("fsck", timeout=600)
        self.assertOk(r, "fsck")
        self.assertIn(" 0 problems", r.stderr)
        self.assertTrue(_read(self.index_path("level0")) == old, "fsck rewrote a sound policy 2 index")

    def test_the_blob_changed_under_a_live_mount_inside_stored_blocks(self):
        self.pull_ok(self.ref("hand"), "-q")
        blob = self.blob_path("hand")
        saved = _read(blob)
        _, _, points = checkpoint_table(_read(self.index_path("hand")))
        stored = [p for p in points if p.stored_len >= 30000 and self.file_of(p.out_off)]
        self.assertGreater(len(stored), 6)
        for label in ("flipped", "truncated", "grown"):
            with self.subTest(label):
                d = self.workdir("mnt-" + label)
                self.assertOk(self.lazyroot("mount", self.ref("hand"), d), "mount " + label)
                try:
                    hit = stored[len(stored) // 2]
                    data = hit.in_off + (1 if hit.bits <= 2 else 0) + 4
                    name, o = self.file_of(hit.out_off)
                    mid = o + hit.stored_len // 2
                    if label == "flipped":
                        with open(blob, "r+b") as f:
                            f.seek(data + hit.stored_len // 2)
                            b = f.read(1)
                            f.seek(data + hit.stored_len // 2)
                            f.write(bytes([b[0] ^ 0x20]))
                    elif label == "truncated":
                        os.truncate(blob, data + hit.stored_len // 2)
                    else:
                        with open(blob, "ab") as f:
                            f.write(b"\0garbage" * 5000)
                    # The first read of the mount: random, inside the stored block, over the change.
                    first = self.check(d, [(name, mid, 1)], eio_ok=True)
                    self.assertEqual(first, 0 if label == "grown" else 1, label + ": the first read over the change")
                    # Reads the daemon may serve from what it decoded or verified meanwhile.
                    failed = self.check(d, [(name, mid - 100, 4096), (name, o, hit.stored_len)], eio_ok=True)
                    if label == "grown":
                        self.assertEqual(failed, 0, "grown: bytes past the stream were read")
                    # Everywhere else: the true bytes or EIO.
                    self.check(d, self.stored_reads(points, random.Random(label), limit=20), eio_ok=True)
                    if label == "flipped":
                        # Far from the flip (another chunk), the stored blocks read.
                        far = [p for p in stored if abs(p.in_off - hit.in_off) > 200000][:3]
                        for p in far:
                            n2, o2 = self.file_of(p.out_off)
                            self.check(d, [(n2, o2 + 10, 4096)])
                finally:
                    self.assertOk(self.lazyroot("umount", d), "umount " + label)
                    replace(blob, saved)


if __name__ == "__main__":
    unittest.main()
