#!/usr/bin/env python3
"""The cached rootfs (`lazyroot extract IMAGE`, no DIR) is never handed out
after it changed, and `extract --copy DIR [--reflink]` gives a private copy.

An image made with Python tarfile is pushed to a real registry on 127.0.0.1
and pulled. The oracle is `skopeo copy` + `umoci unpack` of the same image
(as root), compared with tests/tools/tree_listing.py, never our own output.

 - unchanged cache: the second extract reuses it (same inode numbers, no
   fresh tree beside it);
 - edit, chmod, chown, touch, add, delete, replace with a symlink, a
   same-size edit with its mtime put back (found by its ctime) inside the
   cached tree (what a VM given it read-write can do): the next extract
   names the changed path, returns a tree equal to umoci's, and leaves the
   changed tree aside (a VM still on it keeps it) until `gc` removes it;
 - rootless cache: chmod and an override_stat rewrite are noticed;
 - --copy: equal to umoci's tree, holes and hardlinks kept, writes to the
   copy leave the cache alone; a non-empty DIR is refused and untouched;
 - --reflink: a clear error naming the file system on this (ext4/tmpfs)
   test dir; as root with mkfs.xfs, a reflink=1 XFS on a loop device in the
   test's tmp dir gets a copy whose extents are shared.
"""

import os
import shutil
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import tree_listing  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

IS_ROOT = os.geteuid() == 0
HAVE_ORACLE = bool(shutil.which("umoci") and shutil.which("skopeo"))
IGNORE_XATTRS = ["security.selinux"]
ZEROS = b"head" + b"\0" * (1 << 20) + b"tail"  # extract leaves the zero run as a hole


def image_files():
    return [
        {"path": "etc", "type": "dir"},
        {"path": "etc/passwd", "content": "root:x:0:0::/root:/bin/sh\n"},
        {"path": "etc/hostname", "content": "box\n"},
        {"path": "usr", "type": "dir"},
        {"path": "usr/bin", "type": "dir"},
        {"path": "usr/bin/tool", "content": "#!/bin/sh\necho tool\n", "mode": 0o755},
        {"path": "usr/bin/tool2", "type": "hardlink", "target": "usr/bin/tool"},
        {"path": "usr/bin/suid", "content": "suid", "mode": 0o4755},
        {"path": "usr/bin/link", "type": "symlink", "target": "tool"},
        {"path": "home", "type": "dir"},
        {"path": "home/user", "type": "dir", "mode": 0o700, "uid": 1000, "gid": 1000},
        {"path": "home/user/notes", "content": "mine", "mode": 0o600, "uid": 1000, "gid": 1000},
        {"path": "var", "type": "dir"},
        {"path": "var/zeros", "content": ZEROS},
    ]


class RootfsReuse(PullTestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        img = mi.build_image([mi.build_layer(image_files()),
                              mi.build_layer([{"path": "etc/motd", "content": "second layer\n"}])])
        mi.push(client, "reuse/img", "v1", img)
        cls.ref = "%s/reuse/img:v1" % cls.reg.host
        cls.url = "http://" + cls.ref
        cls.oracle_dir = None

    # ------------------------------------------------------------ helpers

    def oracle(self):
        """umoci's listing of the image (unpacked once per test)."""
        if not (HAVE_ORACLE and IS_ROOT):
            self.skipTest("needs root, umoci and skopeo for the oracle")
        layout = os.path.join(self.workdir("oci"), "layout")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                            "docker://" + self.ref, "oci:%s:v1" % layout],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, "skopeo copy: " + r.stderr[-2000:])
        bundle = os.path.join(self.workdir("umoci"), "bundle")
        r = subprocess.run(["umoci", "unpack", "--image", "%s:v1" % layout, bundle],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, "umoci unpack: " + r.stderr[-2000:])
        return self.listing(os.path.join(bundle, "rootfs"))

    @staticmethod
    def listing(path, **kw):
        opts = dict(dir_mtime=False, ignore_xattrs=IGNORE_XATTRS)
        opts.update(kw)
        return tree_listing.listing(path, **opts)

    def assertSameTree(self, path, want, label, **kw):
        got = self.listing(path, **kw)
        d = tree_listing.diff(got, want, label, "umoci unpack")
        if d:
            self.fail("%s differs from umoci unpack:\n%s" % (label, d))

    def extract(self, *opts, root_args=None):
        args = list(root_args or [])
        r = subprocess.run([LAZYROOT_BIN] + (args or ["--root", self.root]) + ["extract"] + list(opts) + [self.url],
                           env=self.env, capture_output=True, text=True, timeout=180)
        return r

    def extract_ok(self, *opts, **kw):
        r = self.extract(*opts, **kw)
        self.assertOk(r, "lazyroot extract %s" % " ".join(opts))
        return r

    def cache_dir(self):
        r = self.extract_ok()
        path = r.stdout.strip()
        self.assertTrue(path.startswith(os.path.join(self.root, "rootfs") + "/"), path)
        return path, r

    def rootfs_names(self):
        return sorted(os.listdir(os.path.join(self.root, "rootfs")))

    # ------------------------------------------------------------ reuse

    def test_unchanged_cache_is_reused(self):
        self.pull_ok(self.url, "-q")
        cache, first = self.cache_dir()
        self.assertIn("extracted into", first.stderr)
        inodes = {p: os.lstat(os.path.join(cache, p)).st_ino for p in ("", "etc", "etc/passwd", "usr/bin/tool")}
        names = self.rootfs_names()
        again, r = self.cache_dir()
        self.assertEqual(again, cache)
        self.assertIn("already extracted", r.stderr)
        self.assertNotIn("extracted into", r.stderr)
        self.assertEqual({p: os.lstat(os.path.join(cache, p)).st_ino for p in inodes}, inodes,
                         "the unchanged cache was extracted again")
        self.assertEqual(self.rootfs_names(), names)

    def test_changes_are_noticed_and_undone(self):
        want = self.oracle()
        self.pull_ok(self.url, "-q")
        cache, _ = self.cache_dir()
        self.assertSameTree(cache, want, "fresh cached rootfs")

        def edit(p):
            with open(p, "a") as f:
                f.write("evil\n")

        def touch(p):
            os.utime(p, (0, 0), follow_symlinks=False)

        def add(p):
            with open(p, "w") as f:
                f.write("planted")

        def same_size_same_mtime(p):
            st = os.lstat(p)
            time.sleep(0.02)  # past the file system's timestamp granularity
            with open(p, "r+b") as f:
                f.write(b"X")
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))

        def to_symlink(p):
            os.unlink(p)
            os.symlink("/etc/shadow", p)

        mutations = [
            ("etc/passwd", edit, "size"),
            ("usr/bin/tool", lambda p: os.chmod(p, 0o777), "mode 0777"),
            ("etc/hostname", lambda p: os.chown(p, 1234, 1234), "owner 1234:1234"),
            ("etc/motd", touch, "mtime 0.000000000"),
            ("home/user/planted", add, "not in the image"),
            ("usr/bin/suid", os.unlink, "missing"),
            ("etc/hostname", same_size_same_mtime, "changed after the extract"),
            ("etc/passwd", to_symlink, "is a symlink"),
        ]
        for rel, change, said in mutations:
            with self.subTest(rel=rel, said=said):
                change(os.path.join(cache, rel))
                again, r = self.cache_dir()
                self.assertEqual(again, cache)
                self.assertIn("changed since it was extracted", r.stderr)
                self.assertIn("/%s: %s" % (rel, said), r.stderr)
                self.assertIn("extracted into", r.stderr)
                self.assertSameTree(cache, want, "cached rootfs after %s was changed" % rel)
                # The changed tree was moved aside, not deleted under a VM.
                stale = [n for n in self.rootfs_names() if ".stale-" in n]
                self.assertTrue(stale, self.rootfs_names())
        # ... and the next check finds nothing.
        _, r = self.cache_dir()
        self.assertIn("already extracted", r.stderr)
        self.assertOk(self.lazyroot("gc"), "lazyroot gc")
        self.assertEqual([n for n in self.rootfs_names() if ".stale-" in n], [])
        self.assertSameTree(cache, want, "cached rootfs after gc")

    def test_rootless_cache_changes_are_noticed(self):
        self.pull_ok(self.url, "-q")
        r = self.extract_ok("--rootless")
        cache = r.stdout.strip()
        self.assertIn("already extracted", self.extract_ok("--rootless").stderr)
        os.chmod(os.path.join(cache, "etc/passwd"), 0o755)
        r = self.extract_ok("--rootless")
        self.assertIn("/etc/passwd: mode 0755, image says 0644", r.stderr)
        if shutil.which("setfattr"):
            # What a guest's chown through libkrun's virtio-fs writes.
            subprocess.run(["setfattr", "-n", "user.containers.override_stat", "-v", "0:0:0104755",
                            os.path.join(cache, "etc/hostname")], check=True)
            r = self.extract_ok("--rootless")
            self.assertIn("/etc/hostname: user.containers.override_stat 0:0:0104755, image says 0:0:0100644",
                          r.stderr)
        self.assertIn("already extracted", self.extract_ok("--rootless").stderr)
        if IS_ROOT:
            # The marker keeps the mode: a root extract does not reuse it.
            r = self.extract_ok()
            self.assertIn("was extracted rootless; extracting it again as root", r.stderr)

    # ------------------------------------------------------------ --copy

    def test_copy_is_private_and_equal(self):
        want = self.oracle()
        self.pull_ok(self.url, "-q")
        copy = os.path.join(self.tmp, "vm1")
        r = self.extract_ok("--copy", copy)
        self.assertEqual(r.stdout.strip(), copy)
        self.assertIn("copied", r.stderr)
        self.assertSameTree(copy, want, "extract --copy")
        cache = os.path.join(self.root, "rootfs", self.rootfs_names()[0])
        copied = tree_listing.data_map(os.path.join(copy, "var/zeros"))
        self.assertEqual(copied, tree_listing.data_map(os.path.join(cache, "var/zeros")))
        self.assertEqual(len(copied), 2, "the zero run is not a hole")
        # The VM writes its copy; the cache is not touched.
        with open(os.path.join(copy, "etc/passwd"), "a") as f:
            f.write("vm1\n")
        os.chmod(os.path.join(copy, "usr/bin/tool"), 0o700)
        os.unlink(os.path.join(copy, "usr/bin/suid"))
        r = self.extract_ok("--copy", os.path.join(self.tmp, "vm2"))
        self.assertIn("already extracted", r.stderr)
        self.assertSameTree(os.path.join(self.tmp, "vm2"), want, "second extract --copy")
        # An existing, non-empty DIR is refused and left as it was.
        before = self.listing(copy)
        r = self.extract("--copy", copy)
        self.assertFails(r, code=2)
        self.assertIn("is not empty", r.stderr)
        self.assertEqual(self.listing(copy), before)
        self.assertEqual([n for n in os.listdir(self.tmp) if ".lazyroot-tmp-" in n], [])
        # Usage errors.
        self.assertFails(self.extract("--reflink"), code=2)
        r = subprocess.run([LAZYROOT_BIN, "--root", self.root, "extract", "--copy", copy + "x", self.url, copy + "y"],
                           env=self.env, capture_output=True, text=True, timeout=60)
        self.assertFails(r, code=2)

    def test_reflink_refused_without_support(self):
        self.pull_ok(self.url, "-q")
        out = os.path.join(self.tmp, "reflinked")
        r = self.extract("--copy", out, "--reflink")
        fs = subprocess.run(["stat", "-f", "-c", "%T", self.tmp], capture_output=True, text=True).stdout.strip()
        if fs in ("xfs", "btrfs"):
            self.assertOk(r)
            return
        self.assertFails(r)
        self.assertIn("--reflink", r.stderr)
        self.assertRegex(r.stderr, r"(ext4|tmpfs|overlay|0x[0-9a-f]+) file system")
        self.assertFalse(os.path.exists(out), "a failed --reflink left %s behind" % out)
        self.assertEqual([n for n in os.listdir(self.tmp) if ".lazyroot-tmp-" in n], [])

    def test_reflink_on_xfs(self):
        if not IS_ROOT or not shutil.which("mkfs.xfs") or not os.path.exists("/dev/loop-control"):
            self.skipTest("needs root, mkfs.xfs and loop devices")
        want = self.oracle()
        image = os.path.join(self.tmp, "xfs.img")
        with open(image, "wb") as f:
            f.truncate(320 << 20)  # XFS's minimum is 300 MiB; sparse
        r = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", image], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        mnt = self.workdir("xfs")
        r = subprocess.run(["mount", "-o", "loop", image, mnt], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot loop-mount here: " + r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", mnt], capture_output=True)
        root = os.path.join(mnt, "store")
        copy = os.path.join(mnt, "vm")
        r = self.extract_ok("--copy", copy, "--reflink", root_args=["--root", root])
        self.assertIn("reflinked", r.stderr)
        self.assertSameTree(copy, want, "extract --copy --reflink on xfs")
        frag = subprocess.run(["filefrag", "-v", os.path.join(copy, "etc/passwd")],
                              capture_output=True, text=True)
        if frag.returncode == 0:
            self.assertIn("shared", frag.stdout, "the copy's extents are not shared:\n" + frag.stdout)
        with open(os.path.join(copy, "etc/passwd"), "a") as f:
            f.write("vm\n")
        r = self.extract_ok(root_args=["--root", root])
        self.assertIn("already extracted", r.stderr)


if __name__ == "__main__":
    unittest.main()
