#!/usr/bin/env python3
"""Attacks on a mount that loads each layer's checkpoints and chunk digests at
its first read (OpenImageOptions::lazy_tables): the store's files are
changed AFTER the mount is ready (its index headers checked) and BEFORE any
layer loaded, which LAZYROOT_TEST_PAUSE=mount-layer-load:<dir> holds open.
Real registry, real FUSE; every file read is compared with the layer tars as
Python's tarfile reads them. Whatever is done to the store, a read returns
the bytes the registry's digest vouched for or fails (EIO), the daemon stays
up, umount works, and the daemon writes nothing to index/ (it holds no store
lock):

- an index swapped for another blob's, for a FIFO, a directory, a symlink to
  /dev/zero, a 17 GiB sparse file or nothing at all;
- the blob renamed over by other bytes, flipped in place, truncated in place,
  grown in place;
- the same layer twice in an image, with its index damaged;
- `rm` + gc, and fsck --repair, while the mount waits to load its layers."""

import errno
import hashlib
import os
import struct
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


def _write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def _peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def _replace(path, make):
    """Puts what make(tmp) creates at path in one rename (an attacker's atomic swap)."""
    tmp = path + ".attack"
    make(tmp)
    os.replace(tmp, path)


WORDS = b"".join(b"line %d of a text file that compresses well\n" % i for i in range(60000))


@unittest.skipUnless(HAVE_FUSE, "/dev/fuse is missing: FUSE mounts cannot run here")
class LazyTablesAttacks(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        big = mi.build_layer([{"path": "data/words.txt", "content": WORDS},
                              {"path": "data/small.txt", "content": "small file in the big layer\n"}])
        top = mi.build_layer([{"path": "etc/top.txt", "content": "the top layer\n" * 100}])
        cls.layers = [big, top]
        cls.image = mi.build_image(cls.layers)
        client = mi.RegistryClient(cls.reg.host)
        mi.push(client, "lazy/attacks", "v1", cls.image)
        cls.members = {}
        for layer in cls.layers:
            cls.members.update(_members(layer.tar))
        # The same layer at positions 0 and 2 (a middle layer in between).
        mid = mi.build_layer([{"path": "etc/mid.txt", "content": "the middle layer\n"}])
        cls.twice = mi.build_image([big, mid, big])
        mi.push(client, "lazy/twice", "v1", cls.twice)
        cls.twice_members = {}
        for layer in (big, mid):
            cls.twice_members.update(_members(layer.tar))

    def setUp(self):
        super().setUp()
        self.ref = "http://%s/lazy/attacks:v1" % self.reg.host
        self.pull_ok(self.ref, "-q")
        # The tree is made by the first mount; later mounts open it lazily.
        d = self.workdir("first")
        self.assertOk(self.lazyroot("mount", self.ref, d), "first mount")
        self.assertOk(self.lazyroot("umount", d), "umount")

    def index(self, i, layers=None):
        return os.path.join(self.root, "index", "sha256", (layers or self.layers)[i].digest.split(":", 1)[1])

    def blob(self, i, layers=None):
        return os.path.join(self.root, "blobs", "sha256", (layers or self.layers)[i].digest.split(":", 1)[1])

    def paused_mount(self, d, ref=None):
        """A --foreground mount, ready, whose layers wait at mount-layer-load
        (the first load reached it). Returns (proc, log, go): go() lets the
        loads on."""
        pause = os.path.join(self.tmp, "pause-" + os.path.basename(d))
        os.makedirs(pause)
        log = open(os.path.join(self.tmp, "fg-%s.log" % os.path.basename(d)), "w+")
        self.addCleanup(log.close)
        env = dict(self.env, LAZYROOT_TEST_PAUSE="mount-layer-load:" + pause)
        proc = subprocess.Popen([LAZYROOT_BIN, "--root", self.root, "mount", "--foreground", ref or self.ref, d],
                                env=env, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        go_file = os.path.join(pause, "mount-layer-load.go")

        def go():
            open(go_file, "w").close()

        self.addCleanup(lambda: proc.poll() is None and proc.wait(timeout=120))
        self.addCleanup(lambda: os.path.ismount(d) and self.lazyroot("umount", d))
        self.addCleanup(go)
        reached = os.path.join(pause, "mount-layer-load.reached")
        deadline = time.monotonic() + 120
        while not (os.path.ismount(d) and os.path.exists(reached)) and time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                self.fail("the foreground mount exited early:\n" + log.read())
            time.sleep(0.02)
        self.assertTrue(os.path.ismount(d))
        self.assertTrue(os.path.exists(reached), "no layer load reached the pause once the mount was ready")
        return proc, log, go

    def stop(self, proc, d, log):
        self.assertIsNone(proc.poll(), "the daemon died")
        self.assertOk(self.lazyroot("umount", d), "umount")
        proc.wait(timeout=120)
        log.seek(0)
        text = log.read()
        self.assertEqual(proc.returncode, 0, "the foreground mount failed:\n" + text)
        return text

    def check_reads(self, d, members, eio=(), maybe=()):
        """Every file reads as the tar says, or (names in eio) fails with EIO,
        or (names in maybe) does one of the two; twice."""
        for attempt in range(2):
            for name, want in sorted(members.items()):
                path = os.path.join(d, name)
                if name in maybe:
                    try:
                        self.assertEqual(_read(path), want, "%s (attempt %d)" % (name, attempt))
                    except OSError as e:
                        self.assertEqual(e.errno, errno.EIO, name)
                elif name in eio:
                    with self.assertRaises(OSError, msg="%s read (attempt %d)" % (name, attempt)) as ctx:
                        _read(path)
                    self.assertEqual(ctx.exception.errno, errno.EIO, name)
                else:
                    self.assertEqual(_read(path), want, "%s (attempt %d)" % (name, attempt))

    def index_attack(self, make, label):
        """The index of layer 0 replaced by make(path) after ready: every file
        reads right (the blob indexed again in memory) and index/ is left as
        the attacker left it."""
        d = self.workdir("mnt-" + label)
        proc, log, go = self.paused_mount(d)
        make(self.index(0))
        go()
        self.check_reads(d, self.members)
        text = self.stop(proc, d, log)
        self.assertIn("indexing the blob again for this mount", text, label)
        return text

    def test_index_of_another_blob_swapped_in(self):
        other = _read(self.index(1))

        def swap(path):
            _replace(path, lambda tmp: _write(tmp, other))
        self.index_attack(swap, "other")
        self.assertEqual(_read(self.index(0)), other, "the daemon wrote index/")

    def test_index_becomes_a_fifo_a_directory_a_symlink_a_huge_file_or_nothing(self):
        good = _read(self.index(0))

        def fifo(path):
            os.unlink(path)
            os.mkfifo(path)

        def directory(path):
            os.unlink(path)
            os.mkdir(path)

        def devzero(path):
            os.unlink(path)
            os.symlink("/dev/zero", path)

        def huge(path):
            # A sound header at the front of 17 GiB (over the 16 GiB cap); the rest a hole.
            def make(tmp):
                with open(tmp, "wb") as f:
                    f.write(good)
                    f.truncate(17 << 30)
            _replace(path, make)

        def gone(path):
            os.unlink(path)

        for make in (fifo, directory, devzero, huge, gone):
            with self.subTest(make.__name__):
                self.index_attack(make, make.__name__)
                # The attacker's file stays as it was: the daemon never writes index/.
                p = self.index(0)
                if make is gone:
                    self.assertFalse(os.path.lexists(p), "the daemon stored an index")
                elif make is huge:
                    self.assertEqual(os.path.getsize(p), 17 << 30)
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)
                elif os.path.lexists(p):
                    os.unlink(p)
                with open(p, "wb") as f:
                    f.write(good)

    # Found in session 8 (h-attack8): ReadCheckpoints read the sections into
    # one buffer of the length a sound header declared, bounded only by the
    # index file's size (16 GiB): a 512 MiB hole in a sparse file cost the
    # daemon 512 MiB for a layer of a few hundred KiB. The header's checkpoint
    # section is now bounded by the blob size it declares, and a lazy load
    # checks that size against the stored blob's before reading the sections.
    def test_a_huge_checkpoint_section_under_a_sound_header_costs_no_memory(self):
        pad = 512 << 20
        good = _read(self.index(0))
        h = bytearray(good[:304])
        c_off, c_len = struct.unpack_from("<QQ", h, 120)
        d_off, = struct.unpack_from("<Q", h, 152)
        f_off, = struct.unpack_from("<Q", h, 200)
        struct.pack_into("<Q", h, 128, c_len + pad)
        struct.pack_into("<Q", h, 152, d_off + pad)
        struct.pack_into("<Q", h, 200, f_off + pad)
        h[160:192] = bytes(32)  # the header's SHA-256 is of the header with this field zero
        h[160:192] = hashlib.sha256(bytes(h)).digest()
        d = self.workdir("mnt")
        proc, log, go = self.paused_mount(d)

        def huge(tmp):
            with open(tmp, "wb") as f:
                f.write(bytes(h) + good[304:c_off + c_len])
                f.seek(c_off + c_len + pad)
                f.write(good[d_off:])
        _replace(self.index(0), huge)
        go()
        self.check_reads(d, self.members)
        peak = _peak_rss_kib(proc.pid)
        self.stop(proc, d, log)
        self.assertLess(peak, 128 << 10, "the daemon's peak RSS (KiB) for a layer of a few hundred KiB")

    def test_blob_renamed_over_by_other_bytes_reads_the_opened_one(self):
        d = self.workdir("mnt")
        proc, log, go = self.paused_mount(d)
        size = os.path.getsize(self.blob(0))
        _replace(self.blob(0), lambda tmp: _write(tmp, mi.random_bytes(size, seed=7)))
        go()
        # The mount holds the blob it opened (and checked): the verified bytes.
        self.check_reads(d, self.members)
        self.stop(proc, d, log)

    def test_blob_changed_in_place_never_reads_other_bytes(self):
        cases = {
            # One flipped byte in the middle of the big file's stream: its reads fail; the
            # small file after it reads right or fails (as its decode starts before or after it).
            "flipped": (lambda p: _flip(p, os.path.getsize(p) // 2), {"data/words.txt"}, {"data/small.txt"}),
            # Cut in half after it was opened (which took its size): what is gone reads as EIO.
            "truncated": (lambda p: os.truncate(p, os.path.getsize(p) // 2), {"data/words.txt", "data/small.txt"},
                          set()),
            # Longer: bytes past the stream are never read.
            "grown": (lambda p: _write(p, b"\0garbage" * 1000, "ab"), set(), set()),
        }
        for label, (change, eio, maybe) in cases.items():
            with self.subTest(label):
                saved = _read(self.blob(0))
                d = self.workdir("mnt-" + label)
                proc, log, go = self.paused_mount(d)
                change(self.blob(0))
                go()
                self.check_reads(d, self.members, eio=eio, maybe=maybe)
                self.assertEqual(_read(os.path.join(d, "etc/top.txt")), self.members["etc/top.txt"])
                self.stop(proc, d, log)
                with open(self.blob(0), "wb") as f:
                    f.write(saved)

    def test_blob_changed_and_index_damaged_fails_the_layer(self):
        d = self.workdir("mnt")
        proc, log, go = self.paused_mount(d)
        off, length = _checkpoint_section(self.index(0))
        _flip(self.index(0), off + length // 2)
        _flip(self.blob(0), os.path.getsize(self.blob(0)) // 2)
        go()
        self.check_reads(d, self.members, eio={"data/words.txt", "data/small.txt"})
        text = self.stop(proc, d, log)
        self.assertIn(self.layers[0].digest, text)

    def test_the_same_layer_twice_with_its_index_damaged(self):
        ref = "http://%s/lazy/twice:v1" % self.reg.host
        self.pull_ok(ref, "-q")
        d = self.workdir("first-twice")
        self.assertOk(self.lazyroot("mount", ref, d), "first mount")
        self.assertOk(self.lazyroot("umount", d), "umount")
        d = self.workdir("mnt")
        proc, log, go = self.paused_mount(d, ref=ref)
        off, length = _checkpoint_section(self.index(0))
        _flip(self.index(0), off + length // 2)
        damaged = _read(self.index(0))
        go()
        self.check_reads(d, self.twice_members)
        self.stop(proc, d, log)
        self.assertEqual(_read(self.index(0)), damaged, "the daemon wrote index/")

    def test_rm_and_gc_before_the_layers_load(self):
        d = self.workdir("mnt")
        proc, log, go = self.paused_mount(d)
        self.assertOk(self.lazyroot("rm", self.ref), "rm")
        r = self.lazyroot("gc")
        self.assertOk(r, "gc")
        # The in-use marker keeps the blobs (and whatever gc keeps with them).
        self.assertTrue(os.path.exists(self.blob(0)), "gc removed a blob of a mounted image")
        go()
        self.check_reads(d, self.members)
        self.stop(proc, d, log)

    def test_fsck_repair_before_the_layers_load(self):
        off, length = _checkpoint_section(self.index(0))
        good = _read(self.index(0))
        _flip(self.index(0), off + length // 2)
        d = self.workdir("mnt")
        proc, log, go = self.paused_mount(d)
        self.assertOk(self.lazyroot("fsck", "--repair"), "fsck --repair while mounted")
        self.assertEqual(_read(self.index(0)), good)
        go()
        self.check_reads(d, self.members)
        text = self.stop(proc, d, log)
        self.assertNotIn("indexing the blob again", text, "the repaired index was not the one loaded")


if __name__ == "__main__":
    unittest.main()
