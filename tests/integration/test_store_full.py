#!/usr/bin/env python3
"""A full file system (issue 14, item 7): a small tmpfs (`mount -t tmpfs -o
size=...`, as root; unmounted in a cleanup) as

  - the store during `pull`, at a sweep of sizes from a quarter of the
    image's blobs to just over all of them (so the blobs, the layer indexes
    and the merged tree each meet the full disk at some size);
  - the target file system of `extract IMAGE DIR` (refused before writing, and
    with --max-size over the free space, a real ENOSPC mid-write);
  - the store during `extract IMAGE` (the cached rootfs does not fit).

Each time: exit 1 and an error that says the disk is full and names what
could not be written; nothing half-published (no record, no blob whose
digest is not its name, no temp file outside tmp/, no index or tree
without its blob, the target DIR and its temp dir absent, no .done);
`fsck` clean (resumable partials aside) when the binary has it; and the
same command succeeds once there is space (`mount -o remount,size=`), its
result checked by sha256sum / GNU tar.

Skipped unless root (tmpfs mounts)."""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
import store_faults as sf  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

MiB = 1024 * 1024
IS_ROOT = os.geteuid() == 0
NOSPACE = re.compile(r"no space left|ENOSPC|disk is full|not enough (free )?space|free space", re.I)


@unittest.skipUnless(IS_ROOT, "tmpfs mounts need root")
class StoreFull(PullTestCase):
    @classmethod
    def setUpClass(cls):
        sf.announce_seed()
        import tempfile
        cls.shared = tempfile.mkdtemp(prefix="lazyroot-full-")
        cls.addClassCleanup(shutil.rmtree, cls.shared, ignore_errors=True)
        cls.reg = registry.start_registry("plain", os.path.join(cls.shared, "registry"))
        cls.addClassCleanup(cls.reg.stop)
        cls.img, layers = sf.fault_image("full", 6)
        mi.push(mi.RegistryClient(cls.reg.host), "full/img", "v1", cls.img)
        cls.ref = "http://%s/full/img:v1" % cls.reg.host
        cls.want = sf.listing(sf.gnu_tar_tree([l.tar for l in layers], os.path.join(cls.shared, "gnutar"),
                                              cls.shared))
        cls.blobs = [cls.img.config.digest] + [l.digest for l in cls.img.layers]
        cls.blob_bytes = sum(b.size for b in cls.img.blobs()) + len(cls.img.manifest)

    def tmpfs(self, name, size):
        d = self.workdir(name)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "lazyroot-test", d],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "mount tmpfs: %s" % r.stderr)
        self.addCleanup(subprocess.run, ["umount", d], capture_output=True)
        return d

    def resize(self, d, size):
        r = subprocess.run(["mount", "-o", "remount,size=%d" % size, d], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "remount tmpfs: %s" % r.stderr)

    def assertFull(self, r, what, names=()):
        """Exit 1, a message saying the disk is full that names one of names."""
        self.assertEqual(r.returncode, 1, "%s: expected exit 1\nstdout: %s\nstderr: %s"
                         % (what, r.stdout[-1000:], r.stderr[-2000:]))
        self.assertRegex(r.stderr, NOSPACE, "%s: the error does not say the disk is full" % what)
        if names:
            self.assertTrue(any(n in r.stderr for n in names),
                            "%s: the error names none of %s: %s" % (what, names, r.stderr[-2000:]))

    def assertNothingPublished(self, what, extra_dirs=()):
        problems = sf.store_invariants(self.root)
        self.assertEqual(problems, [], what)
        have = {n for n in os.listdir(os.path.join(self.root, "blobs/sha256"))} \
            if os.path.isdir(os.path.join(self.root, "blobs/sha256")) else set()
        idir = os.path.join(self.root, "index/sha256")
        for n in os.listdir(idir) if os.path.isdir(idir) else []:
            self.assertIn(n, have, "%s: layer index %s published without its blob" % (what, n))
        self.assertEqual(self.records(), [], "%s: an image record was published" % what)
        if sf.has_fsck():
            r = self.lazyroot("fsck")
            bad = sf.fsck_problems(r.stdout)
            self.assertTrue(r.returncode == 0 or (r.returncode == 1 and not bad),
                            "%s: fsck exited %d: %s %s" % (what, r.returncode, bad[:20], r.stderr[-1000:]))

    def records(self):
        d = os.path.join(self.root, "images")
        out = []
        for dirpath, _, files in os.walk(d):
            out += [os.path.join(dirpath, f) for f in files if f.endswith(".json")]
        return out

    def test_pull_into_a_full_store(self):
        start = time.monotonic()
        total = self.blob_bytes
        # tmpfs charges whole pages per file: the indexes and the tree meet the
        # full disk somewhere in the last few hundred KiB
        sizes = [total // 4, total * 3 // 5, total * 19 // 20] + [total + k * 32 * 1024 for k in range(2, 12)]
        store = self.tmpfs("store", total // 4)
        self.root = os.path.join(store, "root")
        failed = ok = 0
        outcomes = []

        def attempt(size):
            """True when the pull fit; a failure is checked, then healed."""
            nonlocal failed, ok
            for n in os.listdir(store):
                shutil.rmtree(os.path.join(store, n))
            self.resize(store, size)
            r = self.pull(self.ref, "-q")
            what = "pull into a %d-byte store (blobs %d bytes)" % (size, total)
            if r.returncode == 0:
                ok += 1
                self.assertEqual(sf.store_invariants(self.root, self.blobs), [], what)
                # A tight store that held the pull: extract (to a DIR elsewhere)
                # writes the merged tree into it, and may meet the full disk there.
                d = os.path.join(self.tmp, "fit-%d" % size)
                r = self.lazyroot("extract", self.ref, d)
                if r.returncode == 0:
                    outcomes.append("%d: fit, and so did extract's tree" % size)
                else:
                    outcomes.append("%d: fit; extract: %s" % (size, r.stderr.strip().splitlines()[-1][:300]))
                    self.assertFull(r, "extract from " + what, names=[self.root, "tree"])
                    self.assertFalse(os.path.exists(d), "extract from %s: DIR exists" % what)
                    self.assertEqual(sf.store_invariants(self.root, self.blobs), [], "extract from " + what)
                    self.resize(store, total * 3)
                    self.assertOk(self.lazyroot("extract", self.ref, d), "extract once the store grew")
                self.assertEqual(sf.same_tree(d, self.want), "", "extract from " + what)
                shutil.rmtree(d)
                return True
            failed += 1
            outcomes.append("%d: %s" % (size, r.stderr.strip().splitlines()[-1][:300]))
            self.assertFull(r, what, names=[self.root, "sha256:", "index", "tree", "blob"])
            self.assertNothingPublished(what)
            self.resize(store, total * 3)
            r = self.pull(self.ref, "-q")
            self.assertOk(r, "pull after the store grew (%s)" % what)
            self.assertEqual(r.stdout.strip(), self.img.digest)
            self.assertEqual(sf.store_invariants(self.root, self.blobs), [], "pull after " + what)
            d = os.path.join(self.tmp, "out-%d" % size)
            self.assertOk(self.lazyroot("extract", self.ref, d), "extract after " + what)
            diff = sf.same_tree(d, self.want)
            self.assertEqual(diff, "", "extract after %s differs from GNU tar" % what)
            shutil.rmtree(d)
            return False

        last_fail = fits = None
        for size in sizes:
            if attempt(size):
                fits = size
                break
            last_fail = size
        # Page by page between the last size that failed and the first that
        # fit: the writes after the blobs (indexes, tree, record) meet ENOSPC here.
        if fits and last_fail:
            for size in range(last_fail + 4096, fits, 4096):
                attempt(size)
        sys.stderr.write("\n[pull into a full store: %d sizes failed, %d fit, %.1f s]\n  %s\n"
                         % (failed, ok, time.monotonic() - start, "\n  ".join(outcomes)))
        self.assertGreaterEqual(failed, 4)

    def test_extract_into_a_full_dir(self):
        start = time.monotonic()
        self.pull_ok(self.ref, "-q")
        fs = self.tmpfs("target", 4 * MiB)
        d = os.path.join(fs, "rootfs")
        for opts in ([], ["--max-size", str(1 << 40)]):  # refused up front; a real ENOSPC mid-write
            what = "extract %s into a 4 MiB file system" % " ".join(opts)
            r = self.lazyroot("extract", *opts, self.ref, d)
            # the target, or the image file that did not fit
            self.assertFull(r, what, names=[d, fs, "random-", "usr/share"])
            self.assertFalse(os.path.exists(d), "%s: DIR exists" % what)
            self.assertEqual(os.listdir(fs), [], "%s: left %s" % (what, os.listdir(fs)))
            self.assertEqual(sf.store_invariants(self.root, self.blobs), [], what)
            sys.stderr.write("\n[%s: %s]" % (what, r.stderr.strip().splitlines()[-1][:200]))
        self.resize(fs, 3 * self.blob_bytes + 80 * MiB)  # extract keeps 64 MiB free
        self.assertOk(self.lazyroot("extract", self.ref, d), "extract once there is space")
        self.assertEqual(sf.same_tree(d, self.want), "")
        sys.stderr.write("\n[extract into a full DIR: %.1f s] " % (time.monotonic() - start))

    def test_cached_extract_in_a_full_store(self):
        start = time.monotonic()
        store = self.tmpfs("store", self.blob_bytes + 2 * MiB)
        self.root = os.path.join(store, "root")
        self.pull_ok(self.ref, "-q")
        rootfs = os.path.join(self.root, "rootfs", self.img.digest[7:])
        for opts in ([], ["--max-size", str(1 << 40)]):
            what = "extract %s into the cached rootfs of a full store" % " ".join(opts)
            r = self.lazyroot("extract", *opts, self.ref)
            self.assertFull(r, what, names=[rootfs, self.root, "random-", "usr/share"])
            self.assertFalse(os.path.exists(rootfs), "%s: rootfs/<hex> exists" % what)
            self.assertFalse(os.path.exists(rootfs + ".done"), "%s: rootfs/<hex>.done exists" % what)
            self.assertEqual(sf.stale_extract_temps(self.root), [], what)
            self.assertEqual(sf.store_invariants(self.root, self.blobs), [], what)
            if sf.has_fsck():
                f = self.lazyroot("fsck")
                self.assertEqual(f.returncode, 0, "%s: fsck: %s %s" % (what, f.stdout[-2000:], f.stderr[-1000:]))
            sys.stderr.write("\n[%s: %s]" % (what, r.stderr.strip().splitlines()[-1][:200]))
        self.resize(store, 3 * self.blob_bytes + 80 * MiB)
        r = self.lazyroot("extract", self.ref)
        self.assertOk(r, "cached extract once there is space")
        self.assertEqual(r.stdout.strip(), rootfs)
        self.assertEqual(sf.same_tree(rootfs, self.want), "")
        sys.stderr.write("\n[cached extract in a full store: %.1f s] " % (time.monotonic() - start))


if __name__ == "__main__":
    unittest.main(verbosity=2)
