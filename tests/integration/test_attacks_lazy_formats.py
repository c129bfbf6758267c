#!/usr/bin/env python3
"""Attacks on the formats a mount reads lazily (image tree format 4, read a
64 KiB block at a time on first use): a tree damaged where the mount has not
read it yet, behind a live mount.

A damaged block must cost the requests that need it (EIO, one log line), not
the daemon, and not the requests that do not: statfs (df, a package
manager's free-space check on /) answers, the rest of the tree is served,
reads racing the first use of one block from many threads all get the same
right bytes, and `fsck --repair` rebuilds the tree.
"""

import errno
import os
import struct
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402
from tree_file import reseal  # noqa: E402
from tree_listing import paths_or_eio  # noqa: E402

HAVE_FUSE = os.path.exists("/dev/fuse") and os.geteuid() == 0
FILES = 3000  # 240 kB of node records: the tree spans several 64 KiB blocks


def content(i):
    return ("file %d of the lazily read tree\n" % i).encode()


@unittest.skipUnless(HAVE_FUSE, "needs /dev/fuse and root")
class LazyTreeAttacks(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        files = [{"path": "d", "type": "dir"}]
        files += [{"path": "d/f%05d" % i, "content": content(i).decode()} for i in range(FILES)]
        cls.img = mi.build_image([mi.build_layer(files)])
        mi.push(mi.RegistryClient(cls.reg.host, "http"), "lazy/many", "v1", cls.img)
        cls.ref = "%s/lazy/many:v1" % cls.reg.host

    def mount(self, mnt):
        r = self.lazyroot("mount", "--no-pull", self.ref, mnt, timeout=60)
        self.assertOk(r, "lazyroot mount")
        self.addCleanup(lambda: self.lazyroot("umount", mnt).returncode == 0 or
                        subprocess.run(["umount", "-l", mnt], capture_output=True))

    def pulled_tree(self):
        """Pulls, mounts once (the mount writes the tree) and unmounts: the
        mount point and the tree file's path."""
        self.pull_ok("http://" + self.ref)
        mnt = self.workdir("mnt")
        self.mount(mnt)
        self.assertOk(self.lazyroot("umount", mnt), "umount")
        return mnt, self.tree_file()

    def tree_file(self):
        d = os.path.join(self.root, "trees")
        found = [os.path.join(dp, n) for dp, _, ns in os.walk(d) for n in ns]
        self.assertEqual(len(found), 1, found)
        return found[0]

    def test_a_damaged_node_block_under_a_live_mount(self):
        mnt, path = self.pulled_tree()
        with open(path, "rb") as f:
            head = f.read(128)
        nodes_offset, = struct.unpack_from("<Q", head, 48)
        node_count, = struct.unpack_from("<I", head, 24)
        self.assertEqual(node_count, FILES + 2)
        # Node 1500's mtime, in a block of node records only (the root, /d,
        # their dirents and names are elsewhere): its block checksum fails.
        at = nodes_offset + 1500 * 80 + 16
        with open(path, "r+b") as f:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0xFF]))

        self.mount(mnt)
        # statfs answers, whatever else is damaged.
        st = os.statvfs(mnt)
        self.assertEqual(st.f_files, node_count)
        paths, eio = paths_or_eio(mnt)
        self.assertGreater(eio, 0)  # the nodes of the damaged block
        self.assertLess(eio, FILES)
        # Every file served reads its own bytes; damaged ones are EIO.
        served = 0
        for p in paths:
            if not p.startswith("d/f"):
                continue
            try:
                with open(os.path.join(mnt, p), "rb") as f:
                    self.assertEqual(f.read(), content(int(p[3:])), p)
                served += 1
            except OSError as err:
                self.assertEqual(err.errno, errno.EIO, p)
        self.assertGreater(served, FILES // 2)
        self.assertTrue(os.path.isdir(os.path.join(mnt, "d")))  # the daemon still serves
        self.assertOk(self.lazyroot("umount", mnt), "umount")

        r = self.lazyroot("fsck")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("tree", (r.stdout + r.stderr).lower())
        self.assertOk(self.lazyroot("fsck", "--repair"), "fsck --repair")
        self.assertOk(self.lazyroot("fsck"), "fsck after --repair")

        # Repaired: a fresh mount, many threads racing the first use of
        # every block (lookups, readdir, reads), all get the right bytes.
        self.mount(mnt)
        errors = []

        def reader(k):
            try:
                for i in range(k, FILES, 8):
                    with open(os.path.join(mnt, "d", "f%05d" % i), "rb") as f:
                        if f.read() != content(i):
                            errors.append("f%05d: other bytes" % i)
                if k % 2 == 0:
                    self.assertEqual(len(os.listdir(os.path.join(mnt, "d"))), FILES)
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append("thread %d: %r" % (k, e))

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(paths_or_eio(mnt), (sorted(["d"] + ["d/f%05d" % i for i in range(FILES)]), 0))


    def test_b_tree_file_truncated_holed_grown_while_mounted(self):
        """The mount keeps the tree's descriptor and reads unread blocks with
        pread: the file cut short, holed (fallocate punch: zeros) or grown
        under it gives EIO where a block no longer reads back, never other
        names or bytes, and the daemon serves on."""
        mnt, path = self.pulled_tree()
        with open(path, "rb") as f:
            good = f.read()
        nodes_offset, = struct.unpack_from("<Q", good, 48)
        want = sorted(["d"] + ["d/f%05d" % i for i in range(FILES)])
        for how in ("truncate", "punch", "grow"):
            with self.subTest(how=how):
                self.mount(mnt)
                self.assertTrue(os.path.isdir(os.path.join(mnt, "d")))  # root and /d read at open
                with open(path, "r+b") as f:
                    if how == "truncate":
                        f.truncate(nodes_offset + 1000 * 80)
                    elif how == "punch":
                        r = subprocess.run(["fallocate", "--punch-hole", "--offset", str(65536 * 2),
                                            "--length", str(65536), path], capture_output=True, text=True)
                        if r.returncode != 0:
                            self.skipTest("fallocate --punch-hole: " + r.stderr)
                    else:
                        f.seek(0, 2)
                        f.write(b"\0" * 100000)
                paths, eio = paths_or_eio(mnt)
                self.assertTrue(set(paths) <= set(want), set(paths) - set(want))
                if how != "grow":
                    self.assertGreater(eio, 0)
                else:
                    self.assertEqual((paths, eio), (want, 0))
                for p in paths:
                    if p.startswith("d/f"):
                        try:
                            with open(os.path.join(mnt, p), "rb") as f:
                                self.assertEqual(f.read(), content(int(p[3:])), p)
                        except OSError as err:
                            self.assertEqual(err.errno, errno.EIO, p)
                os.statvfs(mnt)
                self.assertTrue(os.path.isdir(os.path.join(mnt, "d")))  # still serving
                self.assertOk(self.lazyroot("umount", mnt), "umount")
                with open(path, "wb") as f:
                    f.write(good)


    def test_c_hostile_records_with_valid_checksums(self):
        """Records rewritten and resealed (valid checksums): a dirent naming
        its own directory (a cycle), one naming the root's child from deep
        down, a directory claiming more dirents than there are, two
        directories claiming one range. Walks end, answers are names of the
        tree or EIO (or ELOOP from the kernel for a directory seen twice),
        and the daemon serves on."""
        mnt, path = self.pulled_tree()
        with open(path, "rb") as f:
            good = f.read()
        nodes_offset, dirents_offset = struct.unpack_from("<QQ", good, 48)
        dirent_count, = struct.unpack_from("<I", good, 28)
        d = 1  # /d: the root's only child, node 1
        self.assertEqual(good[nodes_offset + 80 * d], 2)
        d_first, d_count = struct.unpack_from("<II", good, nodes_offset + 80 * d + 72)

        def dirent(k):
            return dirents_offset + 12 * (d_first + k)

        def cycle(buf):  # d/f01000 names d itself
            struct.pack_into("<I", buf, dirent(1000) + 8, d)

        def huge(buf):  # d claims every dirent and one more
            struct.pack_into("<II", buf, nodes_offset + 80 * d + 72, 0, dirent_count + 1)

        def overlap(buf):  # the root claims d's range too
            struct.pack_into("<II", buf, nodes_offset + 72, d_first, d_count)

        def to_root(buf):  # a dirent names node 0
            struct.pack_into("<I", buf, dirent(5) + 8, 0)

        mounted = []
        for name, edit in (("cycle", cycle), ("huge", huge), ("overlap", overlap), ("to-root", to_root)):
            with self.subTest(edit=name):
                bad = bytearray(good)
                edit(bad)
                reseal(bad)
                with open(path, "wb") as f:
                    f.write(bad)
                r = self.lazyroot("mount", "--no-pull", self.ref, mnt, timeout=60)
                mounted.append(r.returncode == 0)
                if r.returncode == 0:
                    try:
                        seen = 0
                        for dp, dns, fns in os.walk(mnt, onerror=lambda e: None):
                            seen += 1
                            self.assertLess(seen, 10, "a walk that does not end: %s" % dp)
                            for n in fns:
                                try:
                                    with open(os.path.join(dp, n), "rb") as f:
                                        data = f.read()
                                    self.assertTrue(n.startswith("f"), n)
                                    self.assertEqual(data, content(int(n[1:])), n)
                                except OSError as err:
                                    self.assertIn(err.errno, (errno.EIO, errno.ELOOP, errno.EISDIR), n)
                        os.statvfs(mnt)
                        os.stat(mnt)  # still serving
                    finally:
                        if self.lazyroot("umount", mnt).returncode != 0:
                            subprocess.run(["umount", "-l", mnt], capture_output=True)
                else:
                    self.assertEqual(r.returncode, 1, r.stderr)
                    self.assertIn("tree", r.stderr)
                r = self.lazyroot("fsck")
                self.assertNotEqual(r.returncode, 0, name)
                with open(path, "wb") as f:
                    f.write(good)
        # The damage is past what a mount checks at open (the root and its
        # names; with "overlap" the root's range is d's, sorted and sound):
        # every resealed file opens, and the damage is found on first use.
        self.assertEqual(mounted, [True, True, True, True])


if __name__ == "__main__":
    unittest.main()
