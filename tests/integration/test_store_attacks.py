#!/usr/bin/env python3
"""Attacks on issue 14's promises that once worked (found by an attacker's review):

- gc, removing the cached extract of an image no record names, walked into a
  bind mount inside it and deleted (and chmod'ed 0700) what was mounted there:
  files outside the store. It must leave a mount alone.
- The cached extract's reuse check did not see a directory bind-mounted over
  one of the tree's (same mode, owner, mtime, an older ctime): extract said
  "already extracted" and handed out a root with a host directory in it.
- Names a VM writes into the cached extract went raw to the terminal in
  extract's and fsck's messages: escape sequences, and newlines forging lines.
- A file where a store directory belongs (rootfs/, inuse/): fsck said clean
  while extract or mount failed.
- A tmp/<hex>.partial that is a symlink: pull truncated and wrote the file it
  points to.
- A FIFO where a store file belongs (tree, index, record, blob, lock): extract,
  fsck and gc blocked in open(2) forever.
- A layer index or tree that is a multi-GiB sparse file: fsck and extract read
  it whole (8 GiB resident for a 6 GiB hole) before finding it invalid.

The image is imported from an OCI layout (oci:DIR), no registry needed. The
bind-mount cases need root (and mount(8)); they are skipped otherwise."""

import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402

LAZYROOT = os.environ.get("LAZYROOT_BIN", "lazyroot")
MTIME = 1700000000


def mount_points():
    """Mount points of this mount namespace (os.path.ismount misses a bind mount within one file system)."""
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            field = line.split()[4]
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
    return points


def layer_hex(layout):
    """The hex digest of the (only) layer of the image in an OCI layout."""
    def blob(digest):
        with open(os.path.join(layout, "blobs", "sha256", digest[7:])) as f:
            return json.load(f)
    with open(os.path.join(layout, "index.json")) as f:
        manifest = blob(json.load(f)["manifests"][0]["digest"])
    return manifest["layers"][0]["digest"][7:]


def can_bind_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None and shutil.which("umount") is not None


class StoreAttacks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.top = tempfile.mkdtemp(prefix="lazyroot-store-attacks-")
        layer = mi.build_layer([
            {"path": "etc", "type": "dir", "mode": 0o755, "mtime": MTIME},
            {"path": "etc/hello", "content": "hello\n", "mode": 0o644, "mtime": MTIME},
            {"path": "mnt", "type": "dir", "mode": 0o755, "mtime": MTIME},
        ], compression="gzip")
        cls.layout = os.path.join(cls.top, "layout")
        mi.write_oci_layout(cls.layout, mi.build_image([layer], fmt="oci"), tag="latest")
        cls.ref = "oci:" + cls.layout

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.top, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=self.top)
        self.store = os.path.join(self.tmp, "store")

    def tearDown(self):
        # Every mount below our tmp dir (a bind mount moves with a swapped-out extract).
        for m in sorted((p for p in mount_points() if p.startswith(self.tmp + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_lr(self, *args, timeout=120):
        env = dict(os.environ, LAZYROOT_HOME=self.store)
        return subprocess.run([LAZYROOT, *args], capture_output=True, env=env, timeout=timeout)

    def extract(self):
        r = self.run_lr("extract", self.ref)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout.decode().strip()

    def bind(self, source, target):
        subprocess.run(["mount", "--bind", source, target], check=True)

    def outside_dir_like_mnt(self, rootfs):
        """An empty dir outside the store with /mnt's mode, owner and mtime (its ctime is older than the extract)."""
        outside = os.path.join(self.tmp, "outside")
        os.mkdir(outside)
        os.chmod(outside, 0o755)
        os.utime(outside, (MTIME, MTIME))
        return outside

    @unittest.skipUnless(can_bind_mount(), "needs root and mount(8)")
    def test_gc_does_not_enter_a_bind_mount(self):
        rootfs = self.extract()
        outside = os.path.join(self.tmp, "outside")
        os.mkdir(outside, 0o751)
        with open(os.path.join(outside, "keep"), "w") as f:
            f.write("not the store's\n")
        os.mkdir(os.path.join(outside, "sub"))
        self.bind(outside, os.path.join(rootfs, "mnt"))
        self.assertEqual(self.run_lr("rm", self.ref).returncode, 0)
        gc = self.run_lr("gc")
        # What is mounted there is left alone, whatever gc's verdict.
        self.assertTrue(os.path.exists(os.path.join(outside, "keep")), gc.stderr)
        self.assertTrue(os.path.isdir(os.path.join(outside, "sub")))
        self.assertEqual(stat.S_IMODE(os.stat(outside).st_mode), 0o751)
        self.assertIn(b"not removed: remove " + os.path.join(rootfs, "mnt").encode() + b": a file system is mounted there",
                      gc.stderr)
        # Once unmounted, gc removes the extract.
        subprocess.run(["umount", os.path.join(rootfs, "mnt")], check=True)
        gc = self.run_lr("gc")
        self.assertEqual(gc.returncode, 0, gc.stderr)
        self.assertFalse(os.path.exists(rootfs))
        self.assertTrue(os.path.exists(os.path.join(outside, "keep")))

    @unittest.skipUnless(can_bind_mount(), "needs root and mount(8)")
    def test_reuse_check_sees_a_bind_mount(self):
        outside = self.outside_dir_like_mnt(None)
        rootfs = self.extract()  # after outside was made: its ctime is older than the extract
        self.bind(outside, os.path.join(rootfs, "mnt"))
        r = self.run_lr("extract", self.ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode()
        self.assertNotIn("already extracted", err)
        self.assertIn("/mnt: a file system is mounted there", err)
        self.assertEqual(r.stdout.decode().strip(), rootfs)
        mounted = mount_points()
        self.assertNotIn(os.path.join(rootfs, "mnt"), mounted)  # the fresh tree has none
        # The swapped-out tree keeps it (tearDown unmounts it).
        self.assertTrue(any(".stale-" in m for m in mounted if m.startswith(self.tmp + "/")), mounted)
        r = self.run_lr("extract", self.ref)
        self.assertIn("already extracted", r.stderr.decode())

    def test_names_from_the_rootfs_are_not_sent_raw_to_the_terminal(self):
        rootfs = self.extract()
        evil = "x\x1b]0;PWNED\x07\x1b[2Jy\nlazyroot: forged line"
        open(os.path.join(rootfs, "etc", evil), "w").close()
        # A lone 0x9b byte: CSI to a terminal in an 8-bit locale.
        os.symlink(b"\x1b[31mred", os.path.join(rootfs.encode(), b"etc", b"link\x9b"))
        fsck = self.run_lr("fsck", "--quick")
        self.assertEqual(fsck.returncode, 1)
        out = fsck.stdout
        self.assertNotIn(b"\x1b", out)
        self.assertNotIn(b"\x07", out)
        self.assertNotIn(b"\x9b", out)
        self.assertIn(b"x\\x1b]0;PWNED\\x07\\x1b[2Jy\\x0alazyroot: forged line: not in the image", out)
        # Each finding is one line: none starts with the forged text.
        self.assertFalse(any(line.startswith(b"lazyroot: forged") for line in out.splitlines()), out)
        r = self.run_lr("extract", self.ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"\x1b", r.stderr)
        self.assertNotIn(b"\x9b", r.stderr)
        self.assertFalse(any(line.startswith(b"lazyroot: forged") for line in r.stderr.splitlines()), r.stderr)
        self.assertIn("/etc/link\\x9b: not in the image", r.stderr.decode())

    def test_a_partial_that_is_a_symlink_is_not_followed(self):
        layer = layer_hex(self.layout)
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("not the store's\n")
        os.makedirs(os.path.join(self.store, "tmp"))
        os.symlink(victim, os.path.join(self.store, "tmp", layer + ".partial"))
        r = self.run_lr("pull", self.ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), "not the store's\n")
        blob = os.path.join(self.store, "blobs", "sha256", layer)
        self.assertTrue(stat.S_ISREG(os.lstat(blob).st_mode))
        self.assertEqual(self.run_lr("fsck").returncode, 0)

    def test_a_fifo_in_the_store_hangs_nothing(self):
        # Each store file a command opens, replaced by a FIFO nobody writes:
        # opening one for reading used to block forever (extract, fsck, gc).
        self.extract()
        pulled = os.path.join(self.tmp, "pulled")
        shutil.copytree(self.store, pulled, symlinks=True)
        layer = layer_hex(self.layout)
        for rel in ("trees", "index/sha256", "images", "blobs/sha256/" + layer, "inuse/%s.lock" % layer,
                    "tmp/%s.lock" % layer):
            shutil.rmtree(self.store)
            shutil.copytree(pulled, self.store, symlinks=True)
            path = os.path.join(self.store, rel)
            if os.path.isdir(path):  # the one file in it
                path = os.path.join(path, [n for n in os.listdir(path) if not n.startswith(".")][0])
            if os.path.exists(path):
                os.unlink(path)
            os.mkfifo(path)
            for args in (("fsck",), ("extract", self.ref, os.path.join(self.tmp, "out-" + rel.replace("/", "-"))),
                         ("gc",)):
                try:
                    r = self.run_lr(*args, timeout=30)
                except subprocess.TimeoutExpired:
                    self.fail("lazyroot %s hangs on a FIFO at %s" % (args[0], rel))
                if args[0] == "fsck" and not rel.endswith(".lock"):
                    self.assertEqual(r.returncode, 1, (rel, r.stdout, r.stderr))

    def test_a_huge_sparse_index_or_tree_is_not_read_into_memory(self):
        # 6 GiB holes where the layer index and the tree are (their headers
        # kept, or zeros): fsck and extract ran out of memory reading them
        # whole; now they are refused after a header read and rebuilt.
        self.extract()
        index_dir = os.path.join(self.store, "index", "sha256")
        index = os.path.join(index_dir, os.listdir(index_dir)[0])
        tree_dir = os.path.join(self.store, "trees")
        tree = os.path.join(tree_dir, os.listdir(tree_dir)[0])
        limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # noqa: E731
        env = dict(os.environ, LAZYROOT_HOME=self.store)
        for zeros in (False, True):
            for path in (index, tree):
                if zeros:
                    os.truncate(path, 0)
                os.truncate(path, 6 << 30)
            fsck = subprocess.run([LAZYROOT, "fsck"], capture_output=True, env=env, timeout=120, preexec_fn=limit)
            self.assertEqual(fsck.returncode, 1, fsck.stderr)
            self.assertIn(b"layer index sha256:", fsck.stdout)
            self.assertIn(b"not read", fsck.stdout)
            out = os.path.join(self.tmp, "out-%s" % zeros)
            ex = subprocess.run([LAZYROOT, "extract", self.ref, out], capture_output=True, env=env, timeout=120,
                                preexec_fn=limit)
            self.assertEqual(ex.returncode, 0, ex.stderr)
            self.assertLess(os.path.getsize(index), 1 << 20)  # rebuilt
            self.assertLess(os.path.getsize(tree), 1 << 20)
            self.assertEqual(self.run_lr("fsck").returncode, 0)

    def test_a_file_where_a_store_directory_belongs(self):
        self.extract()
        for sub in ("rootfs", "inuse"):
            path = os.path.join(self.store, sub)
            moved = path + ".moved"
            os.rename(path, moved)
            with open(path, "w") as f:
                f.write("x")
            fsck = self.run_lr("fsck")
            self.assertNotEqual(fsck.returncode, 0, "fsck said clean with %s a file" % sub)
            self.assertIn("%s is not a directory" % sub, fsck.stderr.decode())
            ex = self.run_lr("extract", self.ref)
            self.assertNotEqual(ex.returncode, 0)
            self.assertIn("%s is not a directory" % sub, ex.stderr.decode())
            os.unlink(path)
            os.rename(moved, path)
        fsck = self.run_lr("fsck")
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
