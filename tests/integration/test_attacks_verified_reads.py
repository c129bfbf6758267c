#!/usr/bin/env python3
"""The verified read path (one pread over the chunks a read spans, the cache
of small verified reads) through a real FUSE mount, with one byte of a layer
blob flipped on disk (same size, same inode) at a chunk edge, inside a chunk
and at the start of a chunk run. The layer is uncompressed, so a file's byte
k is the blob's byte offset_data + k (Python tarfile says where) and a read
can be aimed at 32 KiB chunk edges exactly. Each flip gets a fresh mount;
reads of 1, 2, 1024, 1025, 4096, 32 KiB + 1 and 300 KiB at every alignment
around the flipped chunk's edges give tarfile's bytes or EIO, never other
bytes; every read that covers the flipped byte is EIO; a read far from it
succeeds. Then the byte is put back: a fresh mount reads the whole file
right. Skipped when /dev/fuse is missing."""

import errno
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import random
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import unmount_below, LAZYROOT_BIN, isolated_env  # noqa: E402

HAVE_FUSE = os.path.exists("/dev/fuse")
CHUNK = 32 << 10  # kDefaultChunkBytes: the pull records one digest per 32 KiB of blob
SIZES = [1, 2, 1024, 1025, 4096, CHUNK + 1, 300 << 10]


class VerifiedReadAttacks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not HAVE_FUSE:
            raise unittest.SkipTest("no /dev/fuse")
        cls.tmp = tempfile.mkdtemp(prefix="lazyroot-verified-reads-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.addClassCleanup(unmount_below, cls.tmp)
        cls.env = isolated_env(os.path.join(cls.tmp, "home"))
        cls.reg = registry.start_registry("plain", os.path.join(cls.tmp, "registry"))
        cls.addClassCleanup(cls.reg.stop)
        client = mi.RegistryClient(cls.reg.host)
        cls.content = mi.random_bytes(3 << 20, 7)
        cls.layer = mi.build_layer([{"path": "data/plain.bin", "content": cls.content}], compression="none")
        with tarfile.open(fileobj=io.BytesIO(cls.layer.tar)) as tf:
            m = tf.getmember("data/plain.bin")
            cls.data_off = m.offset_data
            assert tf.extractfile(m).read() == cls.content
        # A gzip layer too: text and random runs, so ISA-L's first read after a
        # prime is sized from the table's in/out ratio (ExpectOutput).
        rng = random.Random(3)
        parts = []
        while sum(map(len, parts)) < (3 << 20):
            parts.append(rng.randbytes(rng.randrange(1, 20000)) if rng.random() < 0.3 else
                         b"usr lib python3 layer zran\n" * rng.randrange(1, 800))
        cls.gz_content = b"".join(parts)
        cls.gz_layer = mi.build_layer([{"path": "data/mixed.bin", "content": cls.gz_content}], compression="gzip")
        image = mi.build_image([cls.layer, cls.gz_layer])
        mi.push(client, "verified/img", "v1", image)
        cls.ref = "%s/verified/img:v1" % cls.reg.host
        cls.root = os.path.join(cls.tmp, "store")
        cls.run_lazyroot("pull", "-q", "http://" + cls.ref, check=True)
        cls.blob = os.path.join(cls.root, "blobs", "sha256", cls.layer.digest[7:])
        with open(cls.blob, "rb") as f:
            assert f.read() == cls.layer.tar, "an uncompressed layer is stored as its tar"

    @classmethod
    def run_lazyroot(cls, *args, check=False, timeout=120):
        r = subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("lazyroot %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def mount(self):
        mnt = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)
        self.run_lazyroot("mount", "--no-pull", self.ref, mnt, check=True)
        self.addCleanup(self.unmount, mnt)
        return mnt

    def unmount(self, mnt):
        if os.path.ismount(mnt):
            self.run_lazyroot("umount", mnt, timeout=60)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        self.assertFalse(os.path.ismount(mnt))

    def flip(self, blob_off):
        with open(self.blob, "r+b") as f:
            f.seek(blob_off)
            b = f.read(1)
            f.seek(blob_off)
            f.write(bytes([b[0] ^ 0xFF]))

    def pread(self, fd, off, n):
        os.posix_fadvise(fd, off, n, os.POSIX_FADV_DONTNEED)
        try:
            return os.pread(fd, n, off)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            return None

    def attack(self, file_off):
        """Flips the blob byte behind file byte file_off, reads around it."""
        blob_off = self.data_off + file_off
        chunk_first = blob_off // CHUNK * CHUNK - self.data_off  # file offsets of the flipped chunk
        chunk_end = chunk_first + CHUNK
        self.flip(blob_off)
        try:
            mnt = self.mount()
            fd = os.open(os.path.join(mnt, "data/plain.bin"), os.O_RDONLY)
            try:
                # Far away first (before anything near the flip is cached): right bytes.
                far = (file_off + (1 << 20)) % (len(self.content) - (300 << 10))
                self.assertEqual(self.pread(fd, far, 300 << 10), self.content[far:far + (300 << 10)])
                wrong, eio, hit, short = [], 0, 0, 0
                for edge in (chunk_first, chunk_end, file_off):
                    for d in (-1025, -1024, -2, -1, 0, 1, 1023):
                        for n in SIZES:
                            off = edge + d
                            if off < 0 or off >= len(self.content):
                                continue
                            got = self.pread(fd, off, n)
                            covers = off <= file_off < off + n
                            if got is None:
                                eio += 1
                            elif got != self.content[off:off + len(got)]:
                                wrong.append("@%d+%d" % (off, n))
                            elif len(got) < min(n, len(self.content) - off):
                                # The kernel splits a large read into FUSE requests: the
                                # ones before the bad chunk may be served, a short read.
                                short += 1
                            if covers:
                                hit += 1
                                self.assertTrue(got is None or off + len(got) <= file_off,
                                                "a read of the flipped byte @%d+%d was served" % (off, n))
                self.assertEqual(wrong, [], "reads returned other bytes than the layer's")
                self.assertGreater(hit, 0)
                self.assertGreaterEqual(eio + short, hit)
                print("[ verified-reads ] flip @%d: %d reads cover it, %d EIO, %d short" % (file_off, hit, eio, short),
                      flush=True)
            finally:
                os.close(fd)
        finally:
            self.flip(blob_off)  # put right
        # Put right: a fresh mount serves the whole file.
        mnt = self.mount()
        with open(os.path.join(mnt, "data/plain.bin"), "rb") as f:
            self.assertEqual(f.read(), self.content)

    def first_edge(self):
        """The file offset of the first chunk edge inside the file."""
        return (self.data_off + CHUNK - 1) // CHUNK * CHUNK - self.data_off

    def test_flip_in_a_gzip_blob(self):
        """A byte of the compressed blob flipped: random reads of every size
        give the file's bytes or EIO, reading the whole file is EIO, and with
        the byte put back a fresh mount reads it right."""
        blob = os.path.join(self.root, "blobs", "sha256", self.gz_layer.digest[7:])
        size = os.path.getsize(blob)
        for at in (size // 3, size // 3 * 2 + 12345):
            with open(blob, "r+b") as f:
                f.seek(at)
                b = f.read(1)
                f.seek(at)
                f.write(bytes([b[0] ^ 0x10]))
            try:
                mnt = self.mount()
                path = os.path.join(mnt, "data/mixed.bin")
                rng = random.Random(at)
                wrong, eio = [], 0
                fd = os.open(path, os.O_RDONLY)
                try:
                    for _ in range(300):
                        n = rng.choice(SIZES)
                        off = rng.randrange(len(self.gz_content))
                        got = self.pread(fd, off, n)
                        if got is None:
                            eio += 1
                        elif got != self.gz_content[off:off + len(got)]:
                            wrong.append("@%d+%d" % (off, n))
                finally:
                    os.close(fd)
                self.assertEqual(wrong, [], "reads returned other bytes than the layer's")
                with self.assertRaises(OSError) as cm:
                    with open(path, "rb") as f:
                        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                        f.read()
                self.assertEqual(cm.exception.errno, errno.EIO)
                print("[ verified-reads ] gzip flip @%d of %d: %d of 300 random reads EIO" % (at, size, eio), flush=True)
            finally:
                with open(blob, "r+b") as f:
                    f.seek(at)
                    f.write(b)
            mnt = self.mount()
            with open(os.path.join(mnt, "data/mixed.bin"), "rb") as f:
                self.assertEqual(f.read(), self.gz_content)

    def test_flip_last_byte_before_a_chunk_edge(self):
        self.attack(self.first_edge() + 5 * CHUNK - 1)

    def test_flip_first_byte_of_a_chunk(self):
        self.attack(self.first_edge() + 9 * CHUNK)

    def test_flip_inside_a_chunk(self):
        self.attack(self.first_edge() + 20 * CHUNK + 1000)

    def test_flip_in_the_files_last_chunk(self):
        self.attack(len(self.content) - 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
