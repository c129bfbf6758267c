#!/usr/bin/env python3
"""Attacks on the unit copies of single-frame zstd layers
(src/store/unit_copy_store.h) by someone who can write into the store but
not change the code, and by the machine (a killed daemon, a full disk,
processes racing). A layer compressed by the `zstd` CLI (one frame) holding a
12 MiB file is pushed to a real registry and pulled; every read through a
mount is compared with GNU tar's extraction of the same tar.

- units/<layer hex> a symlink to a directory outside the store: a mount
  reads the right bytes and neither writes a copy there nor removes the
  file there that has a unit copy's name; fsck reports the symlink and
  reads nothing through it; `fsck --repair` and gc remove the link, not one
  file it points to.
- A mount daemon SIGKILLed while it writes copies: every copy a reader can
  see validates (fsck reports no unit copy), and gc removes the temp files
  the dead daemon left beside the copies of a layer that is still in use
  (a live writer's temp file stays).
- A FIFO, a directory and a hard link to a file outside the store where
  copies belong, and a FIFO as the layer's directory: no hang, right bytes,
  the outside file unchanged, fsck names each, --repair cleans up.
- A full store (a small tmpfs) while copies are written: right bytes, no
  temp file left, fsck clean; copies are made once there is room.
- The bound of a layer's copies (twice the blob, plus 16 MiB) holds for
  a layer whose 1 MiB blob decodes to 40 MiB of units that copies cannot
  compress, with three writers at once: the image lists the layer twice,
  mounted with --layers (a reader in each layer's view) and mounted again
  beside it. A later mount writes no more.
- Reads from three threads racing with `umount --lazy`: right bytes until
  the file is closed, then the daemon exits, leaving no temp file.
- Two mounts of the image writing the same units while `fsck --repair`
  and `gc` run: right bytes, and afterwards fsck finds nothing.

Skipped when /dev/fuse or the zstd CLI is missing; the full-disk test also
needs root (a tmpfs mount)."""

import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from peak_rss import daemon_pids  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

BIG_SIZE = 12 * 1024 * 1024 + 333
UNIT = 2 << 20
REP_COUNT = 40


def snapshot(d):
    """Every path below d with its type and content (files), symlink target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(d):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, d)] = ("file", hashlib.sha256(f.read()).hexdigest()[:16])
            elif stat.S_ISLNK(st.st_mode):
                out[os.path.relpath(p, d)] = ("link", os.readlink(p))
            else:
                out[os.path.relpath(p, d)] = (stat.S_IFMT(st.st_mode), None)
    return out


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@unittest.skipUnless(os.path.exists("/dev/fuse") and shutil.which("zstd"), "needs /dev/fuse and the zstd CLI")
class MountUnitAttacks(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.src = tempfile.mkdtemp(prefix="lazyroot-units-attack-")
        cls.addClassCleanup(shutil.rmtree, cls.src, ignore_errors=True)
        big = mi.mixed_bytes(BIG_SIZE, seed=5, line=b"row %08d of a compressible file\n")
        tar = mi.gnu_tar(os.path.join(cls.src, "tree"), {"data/big.bin": big})
        zst = subprocess.run(["zstd", "-3", "-q", "-c"], input=tar, check=True, capture_output=True).stdout
        cls.want = mi.gnu_untar(tar, os.path.join(cls.src, "oracle"), ["data/big.bin"])["data/big.bin"]
        assert len(cls.want) == BIG_SIZE
        cls.data_at = mi.data_offsets(tar)["data/big.bin"]  # big.bin's offset in the tar stream
        image = mi.build_image([mi.Layer(tar, zst, "zstd")])
        mi.push(mi.RegistryClient(cls.reg.host), "zstd/units-attack", "v1", image)
        cls.ref = "%s/zstd/units-attack:v1" % cls.reg.host
        # A layer whose blob is tiny next to its copies: one random MiB 40
        # times over, which `zstd --long` finds and a copy's level 1 cannot;
        # the image lists it twice.
        cls.rep_block = random.Random(9).randbytes(1 << 20)
        rtar = mi.gnu_tar(os.path.join(cls.src, "rep"), {"data/rep.bin": cls.rep_block * REP_COUNT})
        rzst = subprocess.run(["zstd", "--long=27", "-3", "-q", "-c"], input=rtar, check=True,
                              capture_output=True).stdout
        cls.rep_blob_size = len(rzst)
        rl = mi.Layer(rtar, rzst, "zstd")
        mi.push(mi.RegistryClient(cls.reg.host), "zstd/units-rep", "v1", mi.build_image([rl, rl]))
        cls.rep_ref = "%s/zstd/units-rep:v1" % cls.reg.host
        cls.rep_hex = rl.digest[len("sha256:"):]

    def setUp(self):
        super().setUp()

    def pull_image(self):
        self.pull_ok("http://" + self.ref, "-q")
        layers = self.inspect(self.ref)["Layers"]
        self.assertEqual(len(layers), 1)
        self.layer_hex = layers[0]["digest"][len("sha256:"):]
        self.units = os.path.join(self.root, "units", self.layer_hex)

    def mount(self, name="mnt", ref=None):
        d = self.workdir(name)
        self.assertOk(self.lazyroot("mount", ref or self.ref, d), "mount")
        self.addCleanup(lambda: os.path.ismount(d) and subprocess.run(["umount", "-l", d], capture_output=True))
        return d

    def umount(self, d):
        self.assertOk(self.lazyroot("umount", d), "umount")

    def big(self, d):
        return os.path.join(d, "data", "big.bin")

    def read_at(self, f, off, n=4096):
        self.assertEqual(os.pread(f.fileno(), n, off), self.want[off:off + n], "offset %d" % off)

    def check_reads(self, d, seed, n=40):
        rng = random.Random(seed)
        with open(self.big(d), "rb", buffering=0) as f:
            # The end first: a cold read there passes (and copies) every unit before it.
            self.read_at(f, BIG_SIZE - 5000)
            for _ in range(n):
                self.read_at(f, rng.randrange(0, BIG_SIZE - 4096))

    def unit_name(self, k):
        return "%016x-%x" % (k * UNIT, UNIT)

    def file_offset(self, k):
        """An offset in big.bin inside unit k of the layer's stream."""
        return k * UNIT + 1000 - self.data_at

    def assertNoUnitFindings(self):
        r = self.lazyroot("fsck")
        bad = [line for line in r.stdout.splitlines() if line.startswith("units/")]
        self.assertEqual(bad, [], r.stdout + r.stderr)

    def test_layer_dir_symlinked_out_of_the_store_is_neither_written_nor_emptied(self):
        self.pull_image()
        victim = self.workdir("victim")
        os.makedirs(os.path.join(victim, "sub"))
        for rel, body in ((self.unit_name(1), b"precious 1\n"), (self.unit_name(3), b"precious 3\n"),
                          ("notes.txt", b"notes\n"), ("sub/deep.txt", b"deep\n")):
            with open(os.path.join(victim, rel), "wb") as f:
                f.write(body)
        before = snapshot(victim)
        os.makedirs(os.path.dirname(self.units), exist_ok=True)
        os.symlink(victim, self.units)
        d = self.mount()
        with open(self.big(d), "rb", buffering=0) as f:
            # Cold reads inside units 3 and 1 (where the outside directory has
            # files of their names), then the end and some random ones.
            self.read_at(f, self.file_offset(3))
            self.read_at(f, self.file_offset(1))
        self.check_reads(d, 1)
        self.umount(d)
        self.assertEqual(snapshot(victim), before, "a mount wrote or removed files through units/<hex>")
        r = self.lazyroot("fsck")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("units/" + self.layer_hex, r.stdout)
        self.assertNotIn("notes.txt", r.stdout, "fsck looked through the symlink")
        r = self.lazyroot("fsck", "--repair")
        self.assertEqual(snapshot(victim), before, "fsck --repair removed files through units/<hex>")
        self.assertFalse(os.path.islink(self.units), r.stdout)
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # gc (the layer in use or not) removes such a link, never what it points to.
        shutil.rmtree(self.units, ignore_errors=True)
        os.symlink(victim, self.units)
        self.assertOk(self.lazyroot("gc"), "gc")
        self.assertEqual(snapshot(victim), before, "gc removed files through units/<hex>")
        self.assertFalse(os.path.lexists(self.units))
        os.symlink(victim, self.units)
        self.assertOk(self.lazyroot("rm", self.ref), "rm")
        self.assertOk(self.lazyroot("gc"), "gc")
        self.assertEqual(snapshot(victim), before, "gc removed files through units/<hex>")
        self.assertFalse(os.path.lexists(self.units))

    def test_a_killed_daemon_leaves_no_bad_copy_and_gc_collects_its_temp_files(self):
        self.pull_image()
        rng = random.Random(7)
        for round_ in range(3):
            d = self.mount("mnt%d" % round_)
            pids = daemon_pids(d)
            self.assertEqual(len(pids), 1, pids)
            errors = []

            def reader():
                try:
                    with open(self.big(d), "rb", buffering=0) as f:
                        os.pread(f.fileno(), 4096, BIG_SIZE - 5000)
                except OSError as e:
                    errors.append(e)

            t = threading.Thread(target=reader)
            t.start()
            time.sleep(rng.uniform(0.05, 0.6))
            os.kill(pids[0], signal.SIGKILL)
            t.join(30)
            self.assertFalse(t.is_alive())
            subprocess.run(["umount", "-l", d], capture_output=True)
            # Whatever is visible under its final name is a whole, valid copy.
            self.assertNoUnitFindings()
        # Temp files of a writer that is gone, beside the copies of a layer
        # still in use: gc removes them; a live writer's temp file stays.
        os.makedirs(self.units, exist_ok=True)
        gone = dead_pid()
        dead = os.path.join(self.units, "%s.tmp.%d.%d.0" % (self.unit_name(2), gone, gone))
        live = os.path.join(self.units, "%s.tmp.%d.%d.0" % (self.unit_name(4), os.getpid(), os.getpid()))
        for p in (dead, live):
            with open(p, "wb") as f:
                f.write(b"LZUNIT\0\1" + b"\0" * 5000)
        copies = sorted(n for n in os.listdir(self.units) if ".tmp." not in n)
        self.assertOk(self.lazyroot("gc"), "gc")
        left = sorted(os.listdir(self.units))
        self.assertNotIn(os.path.basename(dead), left)
        self.assertIn(os.path.basename(live), left)
        self.assertFalse([n for n in left if ".tmp." in n and n != os.path.basename(live)], left)
        self.assertEqual(sorted(n for n in left if ".tmp." not in n), copies)
        os.unlink(live)
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        d = self.mount("mnt-after")
        self.check_reads(d, 2)
        self.umount(d)

    def test_fifos_dirs_and_hard_links_where_copies_belong(self):
        self.pull_image()
        d = self.mount()
        self.check_reads(d, 3)
        self.umount(d)
        names = sorted(n for n in os.listdir(self.units) if ".tmp." not in n)
        self.assertGreaterEqual(len(names), 5, names)
        outside = os.path.join(self.workdir("outside"), "keep.txt")
        with open(outside, "wb") as f:
            f.write(b"outside the store\n")
        p = lambda k: os.path.join(self.units, self.unit_name(k))  # noqa: E731
        os.unlink(p(1))
        os.mkfifo(p(1))                                     # a FIFO
        os.unlink(p(2))
        os.mkdir(p(2))                                      # a directory
        with open(os.path.join(p(2), "inner"), "wb") as f:
            f.write(b"x")
        os.unlink(p(3))
        os.link(outside, p(3))                              # a hard link to a file outside the store
        moved = os.path.join(self.workdir("outside"), "moved-copy")
        os.rename(p(4), moved)
        os.symlink(moved, p(4))                             # a symlink to a valid copy outside the store
        d = self.mount()
        with open(self.big(d), "rb", buffering=0) as f:
            for k in (4, 3, 2, 1):
                self.read_at(f, self.file_offset(k))
        self.check_reads(d, 4)
        self.umount(d)
        with open(outside, "rb") as f:
            self.assertEqual(f.read(), b"outside the store\n")
        r = self.lazyroot("fsck", timeout=60)
        self.assertIn(self.unit_name(2), r.stdout)
        if os.path.islink(p(4)):
            self.assertIn(self.unit_name(4), r.stdout, "fsck followed a symlink out of the store")
        self.lazyroot("fsck", "--repair", timeout=60)
        with open(outside, "rb") as f:
            self.assertEqual(f.read(), b"outside the store\n")
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The layer's directory a FIFO: no copies, no hang, right bytes.
        shutil.rmtree(self.units)
        os.mkfifo(self.units)
        d = self.mount()
        self.check_reads(d, 5)
        self.umount(d)
        r = self.lazyroot("fsck", timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("units/" + self.layer_hex, r.stdout)
        self.lazyroot("fsck", "--repair", timeout=60)
        self.assertFalse(os.path.lexists(self.units))

    @unittest.skipUnless(os.geteuid() == 0, "needs root for a tmpfs store")
    def test_a_full_store_while_copies_are_written(self):
        store = self.workdir("store")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", store], check=True)
        self.addCleanup(lambda: subprocess.run(["umount", "-l", store], capture_output=True))
        self.root = os.path.join(store, "root")
        self.pull_image()
        d = self.mount()  # the first mount writes the tree
        self.umount(d)
        shutil.rmtree(self.units, ignore_errors=True)
        # Fill the store, leaving less than one copy's room.
        filler = os.path.join(store, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\xff" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        with open(filler, "r+b") as f:
            f.truncate(max(0, os.path.getsize(filler) - (200 << 10)))
        d = self.mount()
        self.check_reads(d, 6)
        self.umount(d)
        if os.path.isdir(self.units):
            left = os.listdir(self.units)
            self.assertFalse([n for n in left if ".tmp." in n], left)
        self.assertNoUnitFindings()
        os.unlink(filler)
        d = self.mount()
        self.check_reads(d, 7)
        self.umount(d)
        self.assertGreaterEqual(len(os.listdir(self.units)), 5)
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_copies_stay_within_twice_the_blob_with_many_units_and_a_layer_listed_twice(self):
        self.pull_ok("http://" + self.rep_ref, "-q")
        size = REP_COUNT << 20
        views = self.workdir("views")
        self.assertOk(self.lazyroot("mount", "--layers", self.rep_ref, views), "mount --layers")
        self.addCleanup(lambda: os.path.ismount(views) and subprocess.run(["umount", "-l", views], capture_output=True))
        plain = self.mount("plain", self.rep_ref)
        layer_dirs = sorted(os.listdir(os.path.join(views, "layers")))
        self.assertEqual(len(layer_dirs), 2, layer_dirs)
        files = [os.path.join(views, "layers", n, "data", "rep.bin") for n in layer_dirs]
        files.append(os.path.join(plain, "data", "rep.bin"))
        failures = []

        def reader(path, seed):
            rng = random.Random(seed)
            try:
                with open(path, "rb", buffering=0) as f:
                    for off in [size - 5000] + [rng.randrange(0, size - 4096) for _ in range(20)]:
                        want = (self.rep_block * 2)[off % (1 << 20):][:4096]
                        if os.pread(f.fileno(), 4096, off) != want:
                            failures.append("%s at %d" % (path, off))
            except OSError as e:
                failures.append("%s: %s" % (path, e))

        threads = [threading.Thread(target=reader, args=(p, i)) for i, p in enumerate(files)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(failures, [])
        self.umount(plain)
        self.umount(views)
        units = os.path.join(self.root, "units", self.rep_hex)
        names = os.listdir(units)
        total = sum(os.path.getsize(os.path.join(units, n)) for n in names)
        budget = 2 * self.rep_blob_size + (16 << 20)
        self.assertLessEqual(total, budget, "%d bytes of copies in %d files, %d-byte blob" %
                             (total, len(names), self.rep_blob_size))
        # A later mount counts what is there: it keeps every copy and adds
        # only what the budget still allows. (Not "nothing more": two of the
        # concurrent writers above can save the same unit, each counting it,
        # and then stop short of the budget on disk.)
        d = self.mount("again", self.rep_ref)
        with open(os.path.join(d, "data", "rep.bin"), "rb", buffering=0) as f:
            off = size - 3 * UNIT - 77
            self.assertEqual(os.pread(f.fileno(), 4096, off), (self.rep_block * 2)[off % (1 << 20):][:4096])
        self.umount(d)
        after = os.listdir(units)
        self.assertTrue(set(names) <= set(after), sorted(set(names) - set(after)))
        total_after = sum(os.path.getsize(os.path.join(units, n)) for n in after)
        self.assertLessEqual(total_after, budget, "%d bytes of copies in %d files after a later mount" %
                             (total_after, len(after)))

    def test_reads_racing_with_a_lazy_unmount(self):
        self.pull_image()
        for round_ in range(3):
            d = self.mount("race%d" % round_)
            pids = daemon_pids(d)
            self.assertEqual(len(pids), 1, pids)
            failures = []
            f = open(self.big(d), "rb", buffering=0)
            self.addCleanup(f.close)

            def reader(seed):
                rng = random.Random(seed)
                try:
                    for _ in range(60):
                        off = rng.randrange(0, BIG_SIZE - 4096)
                        if os.pread(f.fileno(), 4096, off) != self.want[off:off + 4096]:
                            failures.append("wrong bytes at %d" % off)
                            return
                except OSError as e:
                    failures.append(str(e))

            threads = [threading.Thread(target=reader, args=(round_ * 10 + i,)) for i in range(3)]
            for t in threads:
                t.start()
            # Detached while the reads (and the copies they write) go on: the
            # open file keeps reading right bytes until it is closed.
            self.assertOk(self.lazyroot("umount", "--lazy", d), "umount --lazy")
            for t in threads:
                t.join(120)
            self.assertEqual(failures, [])
            f.close()
            deadline = time.time() + 30
            while time.time() < deadline and any(os.path.exists("/proc/%d" % p) for p in pids):
                time.sleep(0.05)
            self.assertFalse([p for p in pids if os.path.exists("/proc/%d" % p)], "the daemon did not exit")
        self.assertFalse([n for n in os.listdir(self.units) if ".tmp." in n])
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_two_mounts_write_the_same_units_while_fsck_repair_and_gc_run(self):
        self.pull_image()
        mounts = [self.mount("a"), self.mount("b")]
        stop = threading.Event()
        failures = []

        def reader(d, seed):
            rng = random.Random(seed)
            try:
                with open(self.big(d), "rb", buffering=0) as f:
                    while not stop.is_set():
                        off = rng.choice([BIG_SIZE - 5000, rng.randrange(0, BIG_SIZE - 4096)])
                        got = os.pread(f.fileno(), 4096, off)
                        if got != self.want[off:off + 4096]:
                            failures.append("wrong bytes at %d through %s" % (off, d))
                            return
            except OSError as e:
                failures.append("%s: %s" % (d, e))

        threads = [threading.Thread(target=reader, args=(d, i)) for i, d in enumerate(mounts)]
        for t in threads:
            t.start()
        try:
            for i in range(4):
                r = self.lazyroot("fsck", "--repair", timeout=60)
                self.assertNotIn("units/", "\n".join(line for line in r.stdout.splitlines()
                                                      if "temp file" not in line), r.stdout)
                self.assertOk(self.lazyroot("gc"), "gc")
                # Drop the copies now and then, so that the mounts write them again.
                if i % 2 == 1:
                    for n in os.listdir(self.units) if os.path.isdir(self.units) else []:
                        if ".tmp." not in n:
                            os.unlink(os.path.join(self.units, n))
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(failures, [])
        for d in mounts:
            self.umount(d)
        r = self.lazyroot("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
