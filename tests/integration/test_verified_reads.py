#!/usr/bin/env python3
"""Verified reads: what a mount or an extract returns is what the registry's
digest vouched for, even after the stored blob changed. An image of a gzip, a
zstd and an uncompressed layer is pushed to a real registry and pulled; then
one byte of each stored blob is flipped (same size: the file still looks like
a blob) and

- under a live --foreground mount: reading the file whose bytes lie in the
  changed chunk gives EIO, never different content, and the daemon logs a
  line naming the blob and the chunk's byte range; every other file still
  reads as the layer tars say (read back with Python tarfile, not lazyroot);
  the daemon stays up and unmounts cleanly;
- extract fails naming the blob and the byte range, and leaves no DIR;
- a layer index of the older format (v1) in the store is rebuilt from the
  blob, never an error.

Skipped only when /dev/fuse is missing (the extract tests run anyway)."""

import errno
import hashlib
import io
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import LAZYROOT_BIN, class_store  # noqa: E402
import store_files  # noqa: E402

CHUNK = 32 * 1024  # the chunk size the pull records digests for (index/chunk_digests.h; 64 KiB before)


def _tar(files):
    """files: [(name, bytes)], written by Python tarfile (PAX)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _members(tar):
    """{name: (data offset in the tar, bytes)}, read by Python tarfile."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            if m.isfile():
                out[m.name] = (m.offset_data, tf.extractfile(m).read())
    return out


rng = random.Random(14)
GZ_FILES = [("gz/first.txt", b"gzip layer, first file\n" * 50), ("gz/big.bin", rng.randbytes(6 << 20))]
ZS_FILES = [("zs/first.txt", b"zstd layer, first file\n" * 50), ("zs/big.bin", rng.randbytes(3 << 20))]
PL_FILES = [("pl/first.txt", b"plain layer, first file\n" * 50), ("pl/big.bin", rng.randbytes(1 << 20)),
            ("pl/after.txt", b"after the big one\n" * 20)]


def _chunk_range(offset):
    first = offset // CHUNK * CHUNK
    return first, first + CHUNK - 1


class VerifiedReads(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        class_store(cls, "lazyroot-verified-test-")
        cls.tars = [_tar(GZ_FILES), _tar(ZS_FILES), _tar(PL_FILES)]
        cls.blobs = [mi._compress(cls.tars[0], "gzip", 6), mi._compress(cls.tars[1], "zstd", 3), cls.tars[2]]
        layers = [mi.Layer(cls.tars[0], cls.blobs[0], "gzip"), mi.Layer(cls.tars[1], cls.blobs[1], "zstd"),
                  mi.Layer(cls.tars[2], cls.blobs[2], "none")]
        image = mi.build_image(layers, fmt="oci", config={"Cmd": ["/bin/sh"]})
        mi.push(mi.RegistryClient(cls.reg.host), "demo/verified", "v1", image)
        cls.ref = "http://%s/demo/verified:v1" % cls.reg.host
        cls.digests = ["sha256:" + hashlib.sha256(b).hexdigest() for b in cls.blobs]
        cls.members = {}
        for t in cls.tars:
            cls.members.update(_members(t))
        # Where to flip: in the middle of each layer's big file. gzip and
        # zstd: a byte of the compressed blob inside the big file's stretch
        # (random data does not compress: the stretches line up); plain: a
        # byte of the big file's data.
        cls.flips = [len(cls.blobs[0]) - (2 << 20) + 12345, len(cls.blobs[1]) - (1 << 20) + 777,
                     cls.members["pl/big.bin"][0] + 500000]
        cls.affected = ["gz/big.bin", "zs/big.bin", "pl/big.bin"]

    def lazyroot(self, root, *args, timeout=120):
        return subprocess.run([LAZYROOT_BIN, "--root", root] + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def pulled_store(self, name):
        root = os.path.join(self.tmp, name)
        r = self.lazyroot(root, "pull", "-q", self.ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        return root

    def blob_path(self, root, i):
        return os.path.join(root, "blobs", "sha256", self.digests[i][7:])

    def test_the_pull_records_32_kib_chunks_in_every_layer_index(self):
        # The index header's chunk size (index/FORMAT.md: u32 at 140, then
        # the u64 chunk count) for each compression.
        root = self.pulled_store("store-chunks")
        for i, digest in enumerate(self.digests):
            with open(os.path.join(root, "index", "sha256", digest[7:]), "rb") as f:
                head = f.read(152)
            size, count = struct.unpack_from("<IQ", head, 140)
            self.assertEqual(size, CHUNK, digest)
            self.assertEqual(count, -(-len(self.blobs[i]) // CHUNK), digest)

    @unittest.skipUnless(os.path.exists("/dev/fuse"), "/dev/fuse is missing: FUSE mounts cannot run here")
    def test_mount_gives_eio_for_the_changed_chunk_and_the_right_bytes_elsewhere(self):
        root = self.pulled_store("store-mount")
        d = os.path.join(self.tmp, "mnt")
        os.makedirs(d)
        log = open(os.path.join(self.tmp, "mount.log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen([LAZYROOT_BIN, "--root", root, "mount", "--foreground", self.ref, d], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.wait(timeout=30))
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot(root, "umount", d))
        deadline = time.monotonic() + 30
        while not os.path.ismount(d) and time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "the foreground mount exited early")
            time.sleep(0.05)
        self.assertTrue(os.path.ismount(d))
        # Changed under the live mount, before anything was read (the kernel
        # would otherwise serve its page cache, which held verified bytes).
        for i, off in enumerate(self.flips):
            size = os.path.getsize(self.blob_path(root, i))
            store_files.flip_byte(self.blob_path(root, i), off)
            self.assertEqual(os.path.getsize(self.blob_path(root, i)), size)
        for name in self.affected:
            with self.assertRaises(OSError, msg=name) as ctx:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
                    # Never different content: if it read at all, it read right.
                    self.assertEqual(data, self.members[name][1], name + " returned different bytes")
            self.assertEqual(ctx.exception.errno, errno.EIO, name)
        # Everything else reads as the layer tars say.
        for name, (_, want) in sorted(self.members.items()):
            if name in self.affected:
                continue
            with open(os.path.join(d, name), "rb") as f:
                self.assertEqual(f.read(), want, name)
        # The plain layer's big file: the chunks before the changed one read right.
        first, _ = _chunk_range(self.flips[2])
        good = first - self.members["pl/big.bin"][0]
        with open(os.path.join(d, "pl/big.bin"), "rb") as f:
            self.assertEqual(os.pread(f.fileno(), good // 2, 0), self.members["pl/big.bin"][1][:good // 2])
        self.assertIsNone(proc.poll(), "the daemon died")
        self.assertEqual(self.lazyroot(root, "umount", d).returncode, 0)
        proc.wait(timeout=30)
        self.assertGreaterEqual(proc.returncode, 0, "the daemon died of a signal")
        log.seek(0)
        lines = log.read().splitlines()
        for i, off in enumerate(self.flips):
            first, last = _chunk_range(off)
            want = "blob %s: bytes %d–%d do not match the digest recorded at pull" % (self.digests[i], first, last)
            hits = [line for line in lines if want in line]
            self.assertTrue(hits, "no log line says %r:\n%s" % (want, "\n".join(lines)))
            # One line per failed request: the line names the request's file offset too.
            for line in hits:
                self.assertIn("read error: inode ", line)
                self.assertEqual(line.count(self.digests[i] + ": bytes"), 1, line)

    def test_extract_fails_naming_the_blob_and_leaves_no_dir(self):
        for i in range(3):
            with self.subTest(layer=["gzip", "zstd", "none"][i]):
                root = self.pulled_store("store-extract-%d" % i)
                store_files.flip_byte(self.blob_path(root, i), self.flips[i])
                target = os.path.join(self.tmp, "rootfs-%d" % i)
                r = self.lazyroot(root, "extract", "--rootless", self.ref, target)
                self.assertNotEqual(r.returncode, 0, "extract of a changed blob succeeded")
                first, last = _chunk_range(self.flips[i])
                self.assertIn("blob %s: bytes %d–%d do not match the digest recorded at pull" %
                              (self.digests[i], first, last), r.stderr)
                self.assertFalse(os.path.lexists(target), "extract left %s behind" % target)
                leftovers = [n for n in os.listdir(self.tmp) if n.startswith("rootfs-%d" % i)]
                self.assertEqual(leftovers, [], "extract left its temp dir behind")
                # Put back, the same store extracts, and the files are the layer's.
                store_files.flip_byte(self.blob_path(root, i), self.flips[i])
                r = self.lazyroot(root, "extract", "--rootless", self.ref, target)
                self.assertEqual(r.returncode, 0, r.stderr)
                for name, (_, want) in self.members.items():
                    with open(os.path.join(target, name), "rb") as f:
                        self.assertEqual(f.read(), want, name)
                shutil.rmtree(target)

    def test_older_version_index_is_rebuilt_not_an_error(self):
        for old in (1, 2, 3):  # before chunk digests, file digests, section checksums
            with self.subTest(version=old):
                root = self.pulled_store("store-v%d" % old)
                index = os.path.join(root, "index", "sha256", self.digests[0][7:])
                with open(index, "rb") as f:
                    self.assertEqual(f.read(12)[8], 4, "the pull writes format version 4")
                with open(index, "r+b") as f:  # what an older lazyroot left (readers stop at the version)
                    f.seek(8)
                    f.write(bytes([old]))
                target = os.path.join(self.tmp, "rootfs-v%d" % old)
                r = self.lazyroot(root, "extract", "--rootless", self.ref, target)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("rebuilding it from the blob", r.stderr)
                with open(os.path.join(target, "gz/big.bin"), "rb") as f:
                    self.assertEqual(f.read(), self.members["gz/big.bin"][1])
                with open(index, "rb") as f:
                    self.assertEqual(f.read(12)[8], 4, "the index was rebuilt as version 4")

if __name__ == "__main__":
    unittest.main(verbosity=2)
