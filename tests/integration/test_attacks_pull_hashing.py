#!/usr/bin/env python3
"""Attacks on the pull's hashing (Sha256Pair, ChunkHasher, BlobHasher,
StreamHasher, the index writer's SerialWorker, the indexer's ThreadedConsumer), with Python's hashlib and
sha256sum as the oracle:

- Layer blobs of exact sizes around SHA-256's padding cases (55, 56, 63, 64,
  65 bytes), whole chunks (32 and 64 KiB) and 1 MiB batches, and BlobHasher's 8 MiB
  threshold +/- 1: a good one is stored with its true digest (sha256sum) and
  fscks clean; the same blob with one byte flipped (the last byte, the last
  partial 64-byte block, the middle of the hashing thread's 2nd batch, the
  first byte past the threshold, the gzip header's padding that no decoder
  looks at) is refused with "digest mismatch" naming it, the store as it was.
  Exact sizes come from a gzip FEXTRA field of the right length.
- A config whose DiffID differs from the layer's in its last hex digit.
- A tar header with a bad checksum 10 MiB into a layer, where the indexer
  runs on its own thread (ThreadedConsumer): the layer's error, named.
- Sparse files (GNU tar's old GNU format and PAX 1.0) and hard links, whose
  file digests are hashed out of step with the DiffID: `lazyroot diff` shows
  each file's digest, compared with hashlib over its bytes.
- A pull cut midway by the registry and resumed from the partial file; the
  partial file tampered before the resume must not be accepted.
- SIGINT, SIGTERM and SIGKILL during a single-layer pull past the threshold
  (the hashing thread running): no hang, the store as it was, the next pull
  succeeds.
- Concurrent pulls of the same and different images into one store.
- fsck --repair's rebuild of a deleted layer index gives the bytes the pull
  wrote."""

import gzip
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase, blob_files, store_listing, verify_blobs  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
THRESHOLD = 8 * MiB  # BlobHasher::kDefaultThreshold


def gzip_exact(tar, target, level=1):
    """tar gzipped into exactly `target` bytes: the header's FEXTRA field
    pads (a subfield 'LR' of the right length). None if target is too small."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    deflate = c.compress(tar) + c.flush()
    trailer = struct.pack("<II", zlib.crc32(tar) & 0xFFFFFFFF, len(tar) & 0xFFFFFFFF)
    base = 10 + len(deflate) + len(trailer)
    if target == base:
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflate + trailer
    extra = target - base - 2
    if extra < 4 or extra > 65535:
        return None
    sub = b"LR" + struct.pack("<H", extra - 4) + b"\0" * (extra - 4)
    head = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", extra) + sub
    out = head + deflate + trailer
    assert len(out) == target
    return out


RANDOM = mi.random_bytes(12 * MiB, seed=5)


def layer_of_size(target):
    """A gzip Layer of exactly `target` bytes: an empty tar for small ones,
    else one incompressible file (stored deflate blocks) padded to size."""
    if target < 2048:
        tar = b"\0" * 1024  # an empty tar: its end-of-archive blocks only
        gz = gzip_exact(tar, target, level=9)
        assert gz is not None, target
        return mi.Layer(tar, gz, "gzip")
    n = max(0, target - 4096)
    for _ in range(8):
        tar = mi.build_tar([{"path": "f.bin", "content": RANDOM[:n]}])
        gz = gzip_exact(tar, target, level=0)
        if gz is not None:
            return mi.Layer(tar, gz, "gzip")
        c = zlib.compressobj(0, zlib.DEFLATED, -15)
        base = 18 + len(c.compress(tar) + c.flush())
        n += target - 1200 - base
    raise AssertionError("no layer of %d bytes" % target)


def flip(data, off):
    b = bytearray(data)
    b[off] ^= 0x01
    return bytes(b)


SIZES = [55, 56, 63, 64, 65, 119, 120, 128, 3 * 64 * KiB, 2 * MiB, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1,
         THRESHOLD + 64, 10 * MiB + 63]


def tamper_offsets(size):
    """Where to flip a byte of a blob of `size` bytes (gzip-neutral ones
    first: the FEXTRA padding at offset 16)."""
    offs = {size - 1}
    if size % 64:
        offs.add(size - 1 - (size % 64) // 2)  # inside the last partial block
    if size > 20:
        offs.add(16)
    if size > THRESHOLD + 1:
        offs.add(THRESHOLD)  # the first byte the thread may hash
    if size > THRESHOLD + 2 * MiB:
        offs.add(THRESHOLD + MiB + MiB // 2)  # the middle of the thread's 2nd batch
    return sorted(o for o in offs if 0 <= o < size)


class ExactSizes(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.client = mi.RegistryClient(cls.reg.host)

    def push(self, repo, img):
        mi.push(self.client, repo, "v1", img)
        return "http://%s/%s:v1" % (self.reg.host, repo)

    def fresh_root(self, name):
        self.root = os.path.join(self.tmp, name)
        return self.root

    def test_sizes_good_and_tampered(self):
        for size in SIZES:
            layer = layer_of_size(size)
            self.assertEqual(layer.size, size)
            img = mi.build_image([layer], config={"Cmd": ["/bin/true"]})
            ref = self.push("sizes/s%d" % size, img)
            blob = img.layers[0]
            with self.subTest(size=size, what="good"):
                self.fresh_root("good%d" % size)
                self.pull_ok(ref)
                got = verify_blobs(self.root)
                self.assertIn(blob.digest, got)
                self.assertIn(img.config.digest, got)
                self.assertOk(self.lazyroot("fsck"), "fsck")
            path = self.reg.blob_path(blob.digest)
            for off in tamper_offsets(size):
                with self.subTest(size=size, flipped=off):
                    with open(path, "wb") as f:
                        f.write(flip(blob.data, off))
                    try:
                        self.fresh_root("bad%d-%d" % (size, off))
                        r = self.pull(ref)
                    finally:
                        with open(path, "wb") as f:
                            f.write(blob.data)
                    self.assertFails(r)
                    self.assertIn("digest mismatch", r.stderr)
                    self.assertIn(blob.digest[7:19], r.stderr)
                    self.assertEqual(store_listing(self.root), [])

    def test_tamper_into_a_store_with_an_image(self):
        # A store that holds the good image keeps it byte for byte.
        layer = layer_of_size(THRESHOLD + 3 * MiB + 5)
        img = mi.build_image([layer])
        ref = self.push("sizes/big", img)
        self.pull_ok(ref)
        before = store_listing(self.root)
        other = mi.build_image([layer_of_size(THRESHOLD + 2 * MiB + 7)], config={"Cmd": ["x"]})
        ref2 = self.push("sizes/other", other)
        path = self.reg.blob_path(other.layers[0].digest)
        with open(path, "wb") as f:
            f.write(flip(other.layers[0].data, THRESHOLD + MiB + 17))
        r = self.pull(ref2)
        self.assertFails(r)
        self.assertIn("digest mismatch", r.stderr)
        self.assertEqual(store_listing(self.root), before)
        with open(path, "wb") as f:
            f.write(other.layers[0].data)
        self.pull_ok(ref2)
        verify_blobs(self.root)
        self.assertOk(self.lazyroot("fsck"), "fsck")

    def test_other_compressions_past_the_threshold(self):
        # Uncompressed (the blob digest is the DiffID: two pairs over the same
        # bytes) and zstd, each past BlobHasher's threshold, with a byte
        # flipped in the thread's part refused.
        for compression in ("none", "zstd"):
            with self.subTest(compression=compression):
                layer = mi.build_layer([{"path": "big.bin", "content": RANDOM[:THRESHOLD + 2 * MiB + 3]}],
                                       compression=compression)
                img = mi.build_image([layer])
                ref = self.push("comp/" + compression, img)
                self.fresh_root("comp-" + compression)
                self.pull_ok(ref)
                self.assertIn(img.layers[0].digest, verify_blobs(self.root))
                self.assertOk(self.lazyroot("fsck"), "fsck")
                path = self.reg.blob_path(img.layers[0].digest)
                with open(path, "wb") as f:
                    f.write(flip(img.layers[0].data, THRESHOLD + MiB + 1))
                try:
                    self.fresh_root("comp-bad-" + compression)
                    r = self.pull(ref)
                finally:
                    with open(path, "wb") as f:
                        f.write(img.layers[0].data)
                self.assertFails(r)
                self.assertIn("digest mismatch", r.stderr)
                self.assertEqual(store_listing(self.root), [])

    def test_corrupt_tar_past_the_threshold(self):
        # Past THRESHOLD the layer's indexer may run on a thread of its own
        # (src/pull/threaded_consumer.h): a tar header with a bad checksum
        # 10 MiB in fails the pull there, naming the layer; the store as it was.
        tar = mi.build_tar([{"path": "a.bin", "content": RANDOM[:10 * MiB]}, {"path": "b.txt", "content": b"x" * 100}])
        off = tar.find(b"b.txt\0", 10 * MiB)
        self.assertEqual(off % 512, 0)
        bad = bytearray(tar)
        bad[off + 148] ^= 0x01  # an octal digit of the header's checksum
        layer = mi.Layer(bytes(bad), gzip.compress(bytes(bad), compresslevel=1, mtime=0), "gzip")
        self.assertGreater(layer.size, THRESHOLD + MiB)
        img = mi.build_image([layer])
        ref = self.push("corrupt/tar", img)
        self.fresh_root("corrupt-tar")
        r = self.pull(ref)
        self.assertFails(r)
        self.assertIn(img.layers[0].digest[7:19], r.stderr)
        self.assertIn("checksum", r.stderr)
        self.assertEqual(store_listing(self.root), [])

    def test_diff_id_off_by_one_digit(self):
        for size in (65, THRESHOLD - 1, THRESHOLD + 1 + 64 * KiB):
            with self.subTest(size=size):
                layer = layer_of_size(size)
                good = layer.diff_id
                last = good[-1]
                layer.diff_id = good[:-1] + ("0" if last != "0" else "1")
                img = mi.build_image([layer])
                ref = self.push("diffid/s%d" % size, img)
                self.fresh_root("diffid%d" % size)
                r = self.pull(ref)
                self.assertFails(r)
                self.assertIn("diff", r.stderr.lower())
                self.assertEqual(store_listing(self.root), [])


def sparse_tar(workdir, fmt):
    """GNU tar --sparse of: a sparse file with data at odd offsets, a file
    that is one hole, a dense file, and hard links to each. Returns
    (tar bytes, {path: sha256 hex of the file's bytes}, {path: size})."""
    d = os.path.join(workdir, "src-" + fmt.replace(".", ""))
    os.makedirs(d, exist_ok=True)
    want, sizes = {}, {}
    specs = {
        "sparse1": [(0, b"head" * 17), (200 * KiB + 3, RANDOM[:70000]), (3 * MiB + 1, b"tail!")],
        "sparse2": [(1 * MiB, RANDOM[100:100 + 513])],
        "sparse3": [(5, RANDOM[:63]), (4096 * 3, RANDOM[64:64 + 4096 * 5 + 1])],
        "hole": [],
    }
    for name, pieces in specs.items():
        p = os.path.join(d, name)
        size = 2 * MiB + 17 if name == "hole" else max(o + len(b) for o, b in pieces) + 1000
        with open(p, "wb") as f:
            f.truncate(size)
            for o, b in pieces:
                f.seek(o)
                f.write(b)
        with open(p, "rb") as f:
            want[name] = hashlib.sha256(f.read()).hexdigest()
        sizes[name] = size
    with open(os.path.join(d, "dense"), "wb") as f:
        f.write(RANDOM[7:7 + 300001])
    want["dense"] = hashlib.sha256(RANDOM[7:7 + 300001]).hexdigest()
    sizes["dense"] = 300001
    for name in list(want):
        os.link(os.path.join(d, name), os.path.join(d, "link-" + name))
        want["link-" + name] = want[name]
        sizes["link-" + name] = sizes[name]
    args = ["tar", "--sparse", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@1700000000", "-C", d, "-cf", "-"]
    if fmt == "gnu":
        args[1:1] = ["--format=gnu"]
    else:
        args[1:1] = ["--format=posix", "--sparse-version=" + fmt, "--pax-option=delete=atime,delete=ctime"]
    tar = subprocess.run(args + sorted(os.listdir(d)), check=True, capture_output=True).stdout
    return tar, want, sizes


class SparseAndLinks(PullTestCase):
    """A sparse file's digest is SHA-256 over SparseContentPrefix and its
    stored bytes (not shown by diff: not the file's sha256), hashed out of
    step with the DiffID. Checked: the DiffID (the pull verifies it against
    hashlib's), the dense files' and hard links' digests against hashlib, the
    same sparse content equal across tar formats and offsets (inline and on
    the hashing thread), and one changed byte seen."""

    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.client = mi.RegistryClient(cls.reg.host)

    def push_tar(self, name, tar, pad):
        if pad:  # past the threshold: the tar continues with a big file
            extra = mi.build_tar([{"path": "zz.bin", "content": RANDOM[:pad]}])
            with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
                tf.getmembers()
                end = tf.offset  # past the last member: the end-of-archive blocks start here
            tar = tar[:end] + extra
        layer = mi.Layer(tar, zlib_gzip(tar), "gzip")
        mi.push(self.client, "sparse/" + name, "v1", mi.build_image([layer]))
        ref = "http://%s/sparse/%s:v1" % (self.reg.host, name)
        self.pull_ok(ref)  # the DiffID is checked by the pull
        return ref

    def changes(self, a, b):
        r = self.lazyroot("diff", "--format", "json", a, b)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return {c["path"].lstrip("/"): c for c in json.loads(r.stdout)["changes"]}

    def test_file_digests_and_diff_id(self):
        # The other side of the diff: the same names and sizes, other bytes,
        # so that diff compares the digests.
        _, want, sizes = sparse_tar(os.path.join(self.tmp, "sizes"), "gnu")
        other = mi.build_layer([{"path": n, "content": b"\x01" * sizes[n]} for n in sorted(sizes)])
        mi.push(self.client, "sparse/other", "v1", mi.build_image([other]))
        other_ref = "http://%s/sparse/other:v1" % self.reg.host
        self.pull_ok(other_ref)
        refs = []
        for fmt in ("gnu", "0.1", "1.0"):
            tar, want, _ = sparse_tar(os.path.join(self.tmp, "t"), fmt)
            for pad in (0, THRESHOLD + 1):
                with self.subTest(fmt=fmt, pad=pad):
                    ref = self.push_tar("%s-%d" % (fmt.replace(".", ""), pad), tar, pad)
                    refs.append(ref)
                    got = self.changes(ref, other_ref)
                    for name in sorted(want):
                        self.assertIn("content", got[name]["what"], name)
                        if "sparse" in name or "hole" in name:
                            continue
                        self.assertEqual(got[name]["a"].get("digest"), "sha256:" + want[name], (fmt, pad, name))
        # The same files in every format and offset: equal content.
        for ref in refs[1:]:
            with self.subTest(against=ref):
                got = self.changes(refs[0], ref)
                for name in sorted(want):
                    self.assertNotIn("content", got.get(name, {}).get("what", []), (ref, name))
        # One byte of sparse1's data changed: seen.
        d = os.path.join(self.tmp, "t", "src-10")
        with open(os.path.join(d, "sparse1"), "r+b") as f:
            f.seek(200 * KiB + 3 + 40000)
            f.write(b"\xff")
        tar = subprocess.run(["tar", "--format=posix", "--sparse", "--sparse-version=1.0", "--numeric-owner",
                              "--owner=0", "--group=0", "--mtime=@1700000000", "-C", d, "-cf", "-", "sparse1"],
                             check=True, capture_output=True).stdout
        ref = self.push_tar("changed", tar, THRESHOLD + 1)
        got = self.changes(refs[0], ref)
        self.assertIn("content", got["sparse1"]["what"])
        self.assertOk(self.lazyroot("fsck"), "fsck")


def zlib_gzip(data):
    import gzip
    return gzip.compress(data, compresslevel=1, mtime=0)


class ResumeAndSignals(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.big = mi.build_layer(random_mib=20, seed=31)
        cls.img = mi.build_image([cls.big], config={"Cmd": ["/bin/true"]})

    def test_resume_after_cut_in_each_region(self):
        for cut in (THRESHOLD - 1, THRESHOLD + 1, THRESHOLD + MiB + 63, 13 * MiB + 1):
            with self.subTest(cut=cut):
                self.root = os.path.join(self.tmp, "cut%d" % cut)
                with fault_server.FaultServer(self.img, mode="drop", drop_after=cut) as fs:
                    self.pull_ok(fs.url_ref())
                    gets = [r for r in fs.requests(kind="blob", digest=self.img.layers[0].digest)
                            if r["method"] == "GET"]
                    self.assertTrue(any(r["range"] for r in gets), gets)
                self.assertIn(self.img.layers[0].digest, verify_blobs(self.root))
                self.assertOk(self.lazyroot("fsck"), "fsck")

    def partial_files(self):
        """The big layer's partial download, if there is one (the config has its own)."""
        p = os.path.join(self.root, "tmp", self.img.layers[0].digest[7:] + ".partial")
        return [p] if os.path.exists(p) else []

    def interrupted_pull(self, fs, how):
        """Starts a throttled pull, waits until the partial file passes the
        threshold (the hashing thread runs), then signals it."""
        fs.rate = 4 * MiB
        p = self.popen("pull", fs.url_ref())
        deadline = time.time() + 60
        while time.time() < deadline:
            parts = self.partial_files()
            if parts and os.path.getsize(parts[0]) > THRESHOLD + 2 * MiB:
                break
            if p.poll() is not None:
                break
            time.sleep(0.05)
        else:
            self.fail("the pull never got past the threshold")
        p.send_signal(how)
        code, out, err = self.finish(p, timeout=30)
        fs.rate = None
        return code, err

    def test_signals_midway_then_pull_again(self):
        for how in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            with self.subTest(signal=how):
                self.root = os.path.join(self.tmp, "sig%d" % how)
                with fault_server.FaultServer(self.img) as fs:
                    code, err = self.interrupted_pull(fs, how)
                    self.assertNotEqual(code, 0, err)
                    if how != signal.SIGKILL:
                        self.assertNotIn(code, (-signal.SIGABRT, -signal.SIGSEGV), err)
                    self.assertEqual([p for p, _ in store_listing(self.root) if p.startswith("images")], [])
                    self.assertNotIn(self.img.layers[0].digest, blob_files(self.root))
                    self.pull_ok(fs.url_ref())
                self.assertIn(self.img.layers[0].digest, verify_blobs(self.root))
                self.assertOk(self.lazyroot("fsck"), "fsck")

    def test_partial_file_tampered_before_resume(self):
        with fault_server.FaultServer(self.img) as fs:
            code, err = self.interrupted_pull(fs, signal.SIGKILL)
            parts = self.partial_files()
            self.assertTrue(parts, "no partial file to resume from")
            size = os.path.getsize(parts[0])
            with open(parts[0], "r+b") as f:
                for off in (size - 1, THRESHOLD + 5, 100):
                    f.seek(off)
                    b = f.read(1)
                    f.seek(off)
                    f.write(bytes([b[0] ^ 0x80]))
            r = self.pull(fs.url_ref())
            # The resumed bytes fail the digest: the pull starts over from
            # zero once (pull.cc), and stores the true bytes only.
            self.assertOk(r, "pull after a tampered partial")
            self.assertIn("digest mismatch after resume", r.stderr)
            self.assertIn(self.img.layers[0].digest, verify_blobs(self.root))
            self.assertOk(self.lazyroot("fsck"), "fsck")


class ConcurrentAndRebuild(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        cls.refs = []
        for i in range(3):
            img = mi.build_image([mi.build_layer(random_mib=9 + i, seed=40 + i),
                                  mi.build_layer(mi.default_files("c%d" % i))], config={"Cmd": ["c%d" % i]})
            mi.push(client, "conc/i%d" % i, "v1", img)
            cls.refs.append("http://%s/conc/i%d:v1" % (cls.reg.host, i))
        # Many entries: the index writer's records go through its worker in
        # several 64 KiB batches.
        many = mi.build_layer([{"path": "d%d/f-%05d" % (i % 50, i), "content": b"%d" % i} for i in range(6000)])
        mi.push(client, "conc/many", "v1", mi.build_image([many, mi.build_layer(random_mib=9, seed=49)]))
        cls.refs.append("http://%s/conc/many:v1" % cls.reg.host)

    def test_concurrent_pulls_one_store(self):
        procs = []
        for n, ref in enumerate(self.refs + self.refs + [self.refs[0]]):
            procs.append(self.popen("pull", "--jobs", str(1 + n % 3), ref))
        for p in procs:
            code, out, err = self.finish(p, timeout=180)
            self.assertEqual(code, 0, err)
        verify_blobs(self.root)
        r = self.lazyroot("fsck")
        self.assertOk(r, "fsck")

    def test_fsck_repair_rebuild_is_byte_identical(self):
        for ref in self.refs:
            self.pull_ok(ref, "--jobs", "1")
        d = os.path.join(self.root, "index", "sha256")
        before = {}
        for n in sorted(os.listdir(d)):
            with open(os.path.join(d, n), "rb") as f:
                before[n] = f.read()
        self.assertTrue(before)
        for n in before:
            os.unlink(os.path.join(d, n))
        r = self.lazyroot("fsck", "--repair")
        self.assertIn(r.returncode, (0, 1), r.stderr)
        self.assertOk(self.lazyroot("fsck"), "fsck after repair")
        for n, data in before.items():
            p = os.path.join(d, n)
            self.assertTrue(os.path.exists(p), "index %s not rebuilt" % n)
            with open(p, "rb") as f:
                got = f.read()
            self.assertEqual(len(got), len(data), n)
            self.assertTrue(got == data, "rebuilt index %s differs from the pull's" % n)


if __name__ == "__main__":
    unittest.main()
