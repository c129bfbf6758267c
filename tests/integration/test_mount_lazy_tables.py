#!/usr/bin/env python3
"""A mount loads each layer's checkpoints and chunk digests at the layer's
first read, not before it is ready (#18 item 4: they grow with the blob, and
the start must not). What a user sees of that, on a real pull from a real
registry and real FUSE mounts, with the contents checked against the layer
tars read by Python's tarfile:

- an index damaged past its header (the checkpoint section) does not stop
  the mount, is not rewritten by it (the daemon holds no store lock: the
  blob is indexed again in memory), and every file reads right; fsck finds
  the damage and --repair restores the index byte for byte;
- when that in-memory indexing fails too (the blob changed as well), reads
  of that layer's files are EIO, each time, while the other layer reads on
  and the daemon stays up;
- a blob shorter than its index's header says is still refused at mount,
  naming the blob;
- an index damaged in its header is rebuilt and stored at mount, as ever."""

import errno
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from store_files import checkpoint_section as _checkpoint_section, flip_byte as _flip  # noqa: E402
from store_files import read_bytes as _read, tar_file_members as _members  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

HAVE_FUSE = os.path.exists("/dev/fuse")


@unittest.skipUnless(HAVE_FUSE, "/dev/fuse is missing: FUSE mounts cannot run here")
class LazyTables(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        words = b"".join(b"line %d of a text file that compresses well\n" % i for i in range(120000))
        big = mi.build_layer([{"path": "data/words.txt", "content": words},
                              {"path": "data/small.txt", "content": "small file in the big layer\n"}])
        top = mi.build_layer([{"path": "etc/top.txt", "content": "the top layer\n" * 100}])
        cls.layers = [big, top]
        cls.image = mi.build_image(cls.layers)
        mi.push(mi.RegistryClient(cls.reg.host), "lazy/tables", "v1", cls.image)
        cls.members = {}
        for layer in cls.layers:
            cls.members.update(_members(layer.tar))

    def setUp(self):
        super().setUp()
        self.ref = "http://%s/lazy/tables:v1" % self.reg.host
        self.pull_ok(self.ref, "-q")
        # The tree is made by the first mount; later mounts open it lazily.
        d = self.workdir("first")
        self.assertOk(self.lazyroot("mount", self.ref, d), "first mount")
        self.assertOk(self.lazyroot("umount", d), "umount")
        self.assertTrue(os.listdir(os.path.join(self.root, "trees")), "the first mount left no tree")

    def index(self, i):
        return os.path.join(self.root, "index", "sha256", self.layers[i].digest.split(":", 1)[1])

    def blob(self, i):
        return os.path.join(self.root, "blobs", "sha256", self.layers[i].digest.split(":", 1)[1])

    def foreground(self, d):
        """A --foreground mount (its stderr in a file, returned) once it is ready."""
        log = open(os.path.join(self.tmp, "fg-%s.log" % os.path.basename(d)), "w+")
        self.addCleanup(log.close)
        e = dict(self.env)
        proc = subprocess.Popen([LAZYROOT_BIN, "--root", self.root, "mount", "--foreground", self.ref, d], env=e,
                                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.wait(timeout=60))
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot("umount", d))
        deadline = time.monotonic() + 60
        while not os.path.ismount(d) and time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "the foreground mount exited early")
            time.sleep(0.05)
        self.assertTrue(os.path.ismount(d))
        return proc, log

    def stop(self, proc, d, log):
        self.assertIsNone(proc.poll(), "the daemon died")
        self.assertOk(self.lazyroot("umount", d), "umount")
        proc.wait(timeout=60)
        self.assertEqual(proc.returncode, 0, "the foreground mount failed")
        log.seek(0)
        return log.read()

    def test_damaged_checkpoints_neither_stop_the_mount_nor_get_written_by_it(self):
        good = _read(self.index(0))
        off, length = _checkpoint_section(self.index(0))
        self.assertGreater(length, 64)
        _flip(self.index(0), off + length // 2)
        damaged = _read(self.index(0))
        # A daemon mount: the parent opens the image; with the checkpoints
        # read there, it would say "rebuilding it from the blob" and store it.
        d = self.workdir("mnt")
        r = self.lazyroot("mount", self.ref, d)
        self.assertOk(r, "mount over a damaged checkpoint section")
        self.assertNotIn("rebuilding it from the blob", r.stderr)
        try:
            for name, want in sorted(self.members.items()):
                self.assertEqual(_read(os.path.join(d, name)), want, name)
        finally:
            self.assertOk(self.lazyroot("umount", d), "umount")
        self.assertEqual(_read(self.index(0)), damaged, "the mount's daemon wrote the index")
        # The foreground mount's stderr says what the daemon did.
        d2 = self.workdir("mnt2")
        proc, log = self.foreground(d2)
        self.assertEqual(_read(os.path.join(d2, "data/words.txt")), self.members["data/words.txt"])
        text = self.stop(proc, d2, log)
        self.assertIn("indexing the blob again for this mount", text)
        self.assertIn(self.index(0), text)
        # fsck names it; --repair stores what the pull made.
        r = self.lazyroot("fsck")
        self.assertNotEqual(r.returncode, 0, "fsck found nothing wrong:\n" + r.stdout)
        self.assertIn(self.layers[0].digest.split(":", 1)[1], r.stdout)
        self.assertOk(self.lazyroot("fsck", "--repair"), "fsck --repair")
        self.assertEqual(_read(self.index(0)), good, "fsck --repair did not restore the index the pull made")

    def test_a_layer_that_cannot_load_gives_eio_and_the_other_reads_on(self):
        off, length = _checkpoint_section(self.index(0))
        _flip(self.index(0), off + length // 2)
        _flip(self.blob(0), os.path.getsize(self.blob(0)) // 2)  # and the blob: indexing it again fails
        d = self.workdir("mnt")
        proc, log = self.foreground(d)
        for attempt in range(3):
            for name in ("data/words.txt", "data/small.txt"):
                with self.assertRaises(OSError, msg="%s (attempt %d)" % (name, attempt)) as ctx:
                    with open(os.path.join(d, name), "rb") as f:
                        f.read()
                self.assertEqual(ctx.exception.errno, errno.EIO, name)
        self.assertEqual(_read(os.path.join(d, "etc/top.txt")), self.members["etc/top.txt"])
        text = self.stop(proc, d, log)
        self.assertIn("read error: inode ", text)
        self.assertIn(self.layers[0].digest, text)

    def test_a_blob_shorter_than_its_index_header_says_is_refused_at_mount(self):
        size = os.path.getsize(self.blob(0))
        os.truncate(self.blob(0), size - 1000)
        d = self.workdir("mnt")
        r = self.lazyroot("mount", self.ref, d)
        self.assertNotEqual(r.returncode, 0, "a truncated blob mounted")
        self.assertFalse(os.path.ismount(d))
        self.assertIn("blob %s is %d bytes" % (self.layers[0].digest, size - 1000), r.stderr)
        self.assertIn("truncated in the store?", r.stderr)

    def test_a_damaged_header_is_rebuilt_and_stored_at_mount(self):
        good = _read(self.index(1))
        _flip(self.index(1), 20)  # inside the blob digest: the header's SHA-256 fails
        d = self.workdir("mnt")
        r = self.lazyroot("mount", self.ref, d)
        self.assertOk(r, "mount over a damaged index header")
        try:
            self.assertIn("rebuilding it from the blob", r.stderr)
            self.assertEqual(_read(os.path.join(d, "etc/top.txt")), self.members["etc/top.txt"])
        finally:
            self.assertOk(self.lazyroot("umount", d), "umount")
        self.assertEqual(_read(self.index(1)), good, "the rebuilt index differs from the pull's")


if __name__ == "__main__":
    unittest.main()
