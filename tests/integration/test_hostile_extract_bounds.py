#!/usr/bin/env python3
"""Disk, memory and permission bounds of `lazyroot extract` against hostile
images (issue 13):

- a gzip layer of a few MB holding one file of gigabytes of zeros (the
  "zeros bomb") extracts to a file of the right size that takes no disk:
  zero runs become holes; the content read back (cmp against /dev/zero, an
  independent reader) is identical; peak RSS stays bounded;
- --max-size below the tree's file data, or a target file system with less
  free space than that data, fails before anything is written: exit 1, a
  message naming both sizes and the flag, no DIR, no temp dir;
- rootless (--rootless as root, and a real unprivileged user via setpriv):
  no setuid/setgid/sticky and no group/other write on disk, while
  user.containers.override_stat (read back with getfattr) keeps the image's
  uid:gid:mode.

Every case prints its wall time and the peak RSS of extract (wait4).
LAZYROOT_BOMB_GIB sets the bomb size (default 10).
"""

import os
import shutil
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import edge_images as ei  # noqa: E402
import make_image as mi  # noqa: E402
import peak_rss  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

ent, tar_bytes = ei.ent, ei.tar_bytes
IS_ROOT = os.geteuid() == 0
OVERRIDE_STAT = "user.containers.override_stat"
# extract holds the tree, one 1 MiB buffer and one decoder per worker: far
# below this whatever the image.
EXTRACT_RSS_BOUND_MIB = 64


def measured(argv, env, timeout=1800):
    """(returncode, stderr, peak RSS MiB) of argv (tests/tools/peak_rss.py)."""
    rc, _, err, rss = peak_rss.run_measured(argv, timeout=timeout, env=env)
    return rc, err, rss


def allocated(path):
    return os.lstat(path).st_blocks * 512


def getfattr(path, name=OVERRIDE_STAT):
    r = subprocess.run(["getfattr", "-h", "--only-values", "-n", name, path], capture_output=True)
    return r.stdout.decode() if r.returncode == 0 else None


class ExtractBounds(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        cls.client = mi.RegistryClient(cls.reg.host)
        cls.n = 0

    def setUp(self):
        super().setUp()
        self.parent = self.workdir("x")
        self.out = os.path.join(self.parent, "out")

    def push_image(self, img):
        type(self).n += 1
        repo = "bounds/img%d" % self.n
        mi.push(self.client, repo, "v1", img)
        return "http://%s/%s:v1" % (self.reg.host, repo)

    def extract(self, url, *opts, out=None):
        """Runs extract; returns (rc, stderr, peak RSS MiB) and prints the numbers."""
        argv = [LAZYROOT_BIN, "--root", self.root, "extract"] + list(opts) + [url, out or self.out]
        t0 = time.monotonic()
        rc, err, rss = measured(argv, self.env)
        print("\n  %s: extract %s -> exit %d, %.1f s, peak RSS %.1f MiB"
              % (self.id().split(".")[-1], " ".join(opts), rc, time.monotonic() - t0, rss), file=sys.stderr)
        if rc != 0:
            print("    " + err.strip().splitlines()[-1], file=sys.stderr)
        self.assertGreaterEqual(rc, 0, "extract died of signal %d: %s" % (-rc, err[-2000:]))
        return rc, err, rss

    def assertNothingLeft(self):
        self.assertFalse(os.path.exists(self.out), "DIR was created")
        left = [n for n in os.listdir(self.parent) if "lazyroot-tmp" in n]
        self.assertEqual(left, [], "extract left a temp dir beside DIR")

    # ------------------------------------------------------------ zeros bomb

    def bomb_url(self):
        gib = int(os.environ.get("LAZYROOT_BOMB_GIB", "10"))
        size = gib << 30
        t0 = time.monotonic()
        gz, diff_id = ei.gzip_bomb(size)
        print("\n  zeros bomb: %d GiB of zeros in a %.1f MB gzip layer, built in %.1f s"
              % (gib, len(gz) / 1e6, time.monotonic() - t0), file=sys.stderr)
        layer = mi.Layer(b"", gz, "gzip")
        layer.diff_id = diff_id
        url = self.push_image(mi.build_image([layer]))
        t0 = time.monotonic()
        self.pull_ok(url, "-q", timeout=1800)
        print("  pull: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
        return url, size

    def test_zeros_bomb_costs_no_disk(self):
        url, size = self.bomb_url()
        rc, err, rss = self.extract(url)
        self.assertEqual(rc, 0, err[-3000:])
        p = os.path.join(self.out, "zeros")
        self.assertEqual(os.lstat(p).st_size, size)
        self.assertLess(allocated(p), 1 << 20, "the zeros were written: %d bytes allocated" % allocated(p))
        self.assertIn("left as holes", err)
        # An independent reader: every byte equals /dev/zero's.
        t0 = time.monotonic()
        r = subprocess.run(["cmp", "-n", str(size), p, "/dev/zero"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "content differs from zeros: %s %s" % (r.stdout, r.stderr))
        print("  cmp against /dev/zero: %.1f s" % (time.monotonic() - t0), file=sys.stderr)
        self.assertLess(rss, EXTRACT_RSS_BOUND_MIB)
        # Zero runs are found only while writing: a --max-size below the
        # apparent size refuses early (documented), one above it succeeds
        # with the disk still untouched.
        shutil.rmtree(self.out)
        rc, err, _ = self.extract(url, "--max-size", "1G")
        self.assertEqual(rc, 1, err)
        self.assertIn("--max-size", err)
        self.assertNothingLeft()
        rc, err, _ = self.extract(url, "--max-size", "%dG" % ((size >> 30) + 1))
        self.assertEqual(rc, 0, err[-3000:])
        self.assertLess(allocated(p), 1 << 20)

    # ------------------------------------------------------------ --max-size and free space

    def data_image(self, mib=8):
        data = os.urandom(mib << 20)  # incompressible: the layer is as large as the data
        return self.push_image(ei.image([(tar_bytes([ent("etc", kind="dir"), ent("etc/data", data),
                                                      ent("etc/small", "x\n")]), "gzip")]))

    def test_max_size_refuses_before_writing(self):
        url = self.data_image()
        self.pull_ok(url, "-q")
        rc, err, _ = self.extract(url, "--max-size", "4M")
        self.assertEqual(rc, 1, err)
        self.assertIn("--max-size", err)
        self.assertIn("8.0 MiB", err, "the message does not name the data size")
        self.assertIn("4.0 MiB", err, "the message does not name the bound")
        self.assertNothingLeft()
        rc, err, _ = self.extract(url, "--max-size", "bogus")
        self.assertEqual(rc, 2, "a bad size is a usage error: " + err)
        self.assertNothingLeft()
        rc, err, _ = self.extract(url, "--max-size", "9M")
        self.assertEqual(rc, 0, err)
        self.assertEqual(os.path.getsize(os.path.join(self.out, "etc/data")), 8 << 20)

    def test_too_little_free_space_fails_before_writing(self):
        """DIR on a 16 MiB tmpfs, 24 MiB of file data: the default bound (free
        space less a margin) refuses before creating anything."""
        if not IS_ROOT:
            self.skipTest("needs root to mount a small tmpfs")
        url = self.data_image(24)
        self.pull_ok(url, "-q")
        small = self.workdir("small")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", small], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: " + r.stderr)
        self.addCleanup(subprocess.run, ["umount", small])
        self.parent, self.out = small, os.path.join(small, "out")
        rc, err, _ = self.extract(url)
        self.assertEqual(rc, 1, err)
        self.assertIn("free", err)
        self.assertIn("24.0 MiB", err)
        self.assertIn("--max-size", err)
        self.assertNothingLeft()
        self.assertEqual(os.listdir(small), [])

    # ------------------------------------------------------------ rootless

    ROOTLESS_ENTRIES = [
        ("bin", dict(kind="dir")),
        ("bin/sh", dict(content="#!/bin/true\n", mode=0o4755)),
        ("bin/sg", dict(content="sg\n", mode=0o2711, gid=42)),
        ("shared", dict(kind="dir", mode=0o2775, gid=100)),
        ("open", dict(content="anyone\n", mode=0o777)),
        ("tmp", dict(kind="dir", mode=0o1777)),
        ("tmp/f", dict(content="f\n", mode=0o666, uid=1000, gid=1000)),
    ]
    # What override_stat must say (the image's uid:gid:0<st_mode>).
    WANT_STAT = {"bin/sh": "0:0:0104755", "bin/sg": "0:42:0102711", "shared": "0:100:042775",
                 "open": "0:0:0100777", "tmp": "0:0:041777", "tmp/f": "1000:1000:0100666"}

    def rootless_url(self):
        entries = [ent(p, kw.pop("content", None), **kw) for p, kw in
                   ((p, dict(kw)) for p, kw in self.ROOTLESS_ENTRIES)]
        return self.push_image(ei.image([(tar_bytes(entries), "gzip")]))

    def check_rootless(self, out):
        for path, want in self.WANT_STAT.items():
            p = os.path.join(out, path)
            mode = stat.S_IMODE(os.lstat(p).st_mode)
            with self.subTest(path=path):
                self.assertEqual(mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), 0, "%s: %o" % (path, mode))
                self.assertEqual(mode & (stat.S_IWGRP | stat.S_IWOTH), 0, "%s: %o" % (path, mode))
                self.assertEqual(mode, int(want.rsplit(":", 1)[1], 8) & 0o755, path)
                self.assertEqual(getfattr(p), want, path)

    def test_rootless_has_no_setuid_or_shared_write_on_disk(self):
        if not shutil.which("getfattr"):
            self.skipTest("needs getfattr (attr)")
        url = self.rootless_url()
        self.pull_ok(url, "-q")
        rc, err, _ = self.extract(url, "--rootless")
        self.assertEqual(rc, 0, err)
        self.check_rootless(self.out)
        if IS_ROOT:  # the privileged extract keeps every bit
            priv = os.path.join(self.parent, "priv")
            rc, err, _ = self.extract(url, out=priv)
            self.assertEqual(rc, 0, err)
            self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(priv, "bin/sh")).st_mode), 0o4755)
            self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(priv, "tmp")).st_mode), 0o1777)

    def test_unprivileged_user_gets_no_setuid(self):
        if not IS_ROOT or not shutil.which("setpriv") or not shutil.which("getfattr"):
            self.skipTest("needs root, setpriv and getfattr to run lazyroot as uid 65534")
        url = self.rootless_url()
        base, env, cmd = self.nobody_lazyroot()
        r = subprocess.run(cmd + ["pull", "-q", url], env=env, capture_output=True, text=True, timeout=120)
        self.assertOk(r, "pull as uid 65534")
        out = os.path.join(base, "out")
        t0 = time.monotonic()
        rc, err, rss = measured(cmd + ["extract", url, out], env, timeout=120)
        print("\n  extract as uid 65534: exit %d, %.1f s, peak RSS %.1f MiB" % (rc, time.monotonic() - t0, rss),
              file=sys.stderr)
        self.assertEqual(rc, 0, err)
        self.assertIn("rootless", err)
        self.assertEqual(os.lstat(os.path.join(out, "bin/sh")).st_uid, 65534)
        self.check_rootless(out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
