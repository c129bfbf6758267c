#!/usr/bin/env python3
"""The store's own files as hostile input, and the merge's work bounded
(issue 13): `lazyroot extract` and `lazyroot mount` against

 (a) a layer index file replaced by a crafted 4 KB one with a valid CRC and
     an inflated entry count (the deflated entry section inflates to ~4 MB of
     zeros, the count claims 4 million entries: the old reader allocated
     ~1 GB before decoding one);
 (b) a tree file whose directories all claim one large dirent range, with a
     valid CRC-32C (quadratic validation before);
 (c) a pushed image with a chain of 210 symlinks, each a 4 KB './'-padded
     target, and files and directories below the last one (the merge
     re-expanded the chain for every entry below it).

Each must be rebuilt (the message names the file) or refused with a clear
error, with a small peak RSS (tests/tools/peak_rss.py); the result equals a
normal extract, and for (c) umoci unpack's result where umoci is installed
and we are root. Work bounds are asserted through the symlink-steps budget
(a budget just above the chain's own size must suffice, a smaller one must
fail naming the limit), when the binary has --limit. Each case prints its
peak RSS and wall time.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import edge_images as ei  # noqa: E402
import make_image as mi  # noqa: E402
import tree_file  # noqa: E402
import tree_listing  # noqa: E402
from peak_rss import daemon_pids, run_measured, vm_hwm_mib  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

ent, tar_bytes = ei.ent, ei.tar_bytes
IS_ROOT = os.geteuid() == 0
HAVE_FUSE = os.path.exists("/dev/fuse")
HAVE_UMOCI = bool(shutil.which("umoci") and shutil.which("skopeo"))
# The documented bound for pull/extract is 256 MiB; these images are tiny, so
# anything near it means a count or range was trusted.
RSS_BOUND_MIB = 128

# ---------------------------------------------------------------- checksums

def fix_tree_crc(b):
    """The image tree checksums (index/FORMAT.md, version 4)."""
    tree_file.reseal(b)


def fix_index_crc(b):
    """The layer index checksum: zlib CRC-32 of the file with bytes 136..140 zero."""
    b[136:140] = b"\0\0\0\0"
    b[136:140] = struct.pack("<I", zlib.crc32(bytes(b)) & 0xFFFFFFFF)


def crafted_index(real):
    """A ~4 KB layer index for the same blob as `real`: its header and
    checkpoint section, but an entry section that inflates to 4,000,000 zero
    bytes and an entry count of 4,000,000."""
    hdr = bytearray(real[:144])
    c_off = struct.unpack_from("<Q", real, 120)[0]
    checkpoints = real[c_off:]
    raw_len = 4000000
    packed = zlib.compress(b"\0" * raw_len, 9)
    struct.pack_into("<I", hdr, 12, 1)                       # flags: deflated
    struct.pack_into("<Q", hdr, 96, raw_len)                 # entry count
    struct.pack_into("<Q", hdr, 104, 144)
    struct.pack_into("<Q", hdr, 112, len(packed))
    struct.pack_into("<Q", hdr, 120, 144 + len(packed))
    struct.pack_into("<Q", hdr, 128, len(checkpoints))
    struct.pack_into("<I", hdr, 140, raw_len)
    out = bytearray(hdr) + packed + checkpoints
    fix_index_crc(out)
    return bytes(out)


def overlapping_tree(real):
    """The tree file with every directory's dirent range rewritten to the
    whole dirent table (first 0, count dirent_count), CRC fixed."""
    b = bytearray(real)
    node_count, dirent_count = struct.unpack_from("<II", b, 24)
    nodes_offset = struct.unpack_from("<Q", b, 48)[0]
    dirs = 0
    for i in range(node_count):
        r = nodes_offset + 80 * i
        if b[r] == 2:  # directory
            struct.pack_into("<II", b, r + 72, 0, dirent_count)
            dirs += 1
    fix_tree_crc(b)
    return bytes(b), dirs


def chain_entries(links, files, dirs):
    """links symlinks l0..l{links-1}, each a './'-padded 4095-byte target
    naming the previous one (l0 names the directory d), then files and
    directories (each with a file) below the last link."""
    out = [ent("d", kind="dir")]
    for i in range(links):
        name = "d" if i == 0 else "l%d" % (i - 1)
        pad = (4095 - len(name)) // 2
        target = "./" * pad + name
        assert len(target) <= 4095
        out.append(ent("l%d" % i, kind="symlink", target=target))
    last = "l%d" % (links - 1)
    out += [ent("%s/f%d" % (last, i), "file %d\n" % i) for i in range(files)]
    out += [ent("%s/s%d/x/f" % (last, i), "deep %d\n" % i) for i in range(dirs)]
    return out


def chain_components(links):
    """Path components the chain's targets hold (what one walk of it costs)."""
    total = 0
    for i in range(links):
        name = "d" if i == 0 else "l%d" % (i - 1)
        total += (4095 - len(name)) // 2 + 1
    return total


class HostileStore(PullTestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        r = subprocess.run([LAZYROOT_BIN, "extract", "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            raise unittest.SkipTest("%s has no extract subcommand" % LAZYROOT_BIN)
        cls.has_limit_flag = "--limit" in r.stdout + r.stderr
        cls.class_registry()
        cls.client = mi.RegistryClient(cls.reg.host)
        cls.n = 0

    # ------------------------------------------------------------ helpers

    def push_layers(self, name, layers):
        mi.push(self.client, "store/" + name, "v1", ei.image(layers))
        return "http://%s/store/%s:v1" % (self.reg.host, name), "%s/store/%s:v1" % (self.reg.host, name)

    def measured(self, label, *args, timeout=600):
        argv = [LAZYROOT_BIN, "--root", self.root] + list(args)
        start = time.monotonic()
        rc, out, err, peak = run_measured(argv, timeout=timeout, env=self.env)
        wall = time.monotonic() - start
        print("[ hostile-store ] %-42s exit %d, peak RSS %6.1f MiB, wall %6.2f s" % (label, rc, peak, wall),
              flush=True)
        self.assertGreaterEqual(rc, 0, "%s: killed by signal %d\n%s" % (label, -rc, err[-2000:]))
        return rc, out, err, peak

    def extract_measured(self, label, url, out, *opts):
        if os.path.exists(out):
            shutil.rmtree(out)
        return self.measured(label, "extract", *opts, url, out)

    def mount_measured(self, label, url, *opts):
        """mount (the foreground process measured), the daemon's VmHWM read
        while mounted; returns (rc, stderr, listing of the mount, peaks)."""
        if not HAVE_FUSE:
            return None
        mnt = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)
        rc, out, err, peak = self.measured(label, "mount", "--no-pull", *opts, url, mnt)
        if rc != 0:
            return rc, err, None, peak, None
        try:
            daemons = daemon_pids(mnt)
            listing = tree_listing.listing(mnt, dir_mtime=False)
            hwm = max((vm_hwm_mib(p) for p in daemons), default=None)
            if hwm is not None:
                print("[ hostile-store ] %-42s daemon VmHWM %6.1f MiB after listing the tree" % (label, hwm),
                      flush=True)
                self.assertLess(hwm, RSS_BOUND_MIB, "%s: the mount daemon peaked at %.1f MiB" % (label, hwm))
        finally:
            subprocess.run([LAZYROOT_BIN, "--root", self.root, "umount", mnt], env=self.env,
                           capture_output=True, timeout=60)
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        return rc, err, listing, peak, hwm

    def drop_trees(self):
        trees = os.path.join(self.root, "trees")
        for t in os.listdir(trees) if os.path.isdir(trees) else []:
            os.unlink(os.path.join(trees, t))

    def small_image(self, name):
        """A pulled image of 3 layers with a few hundred entries; its extract
        listing (the reference), its layer index and tree paths."""
        layers = []
        for k in range(3):
            entries = [ent("l%d" % k, kind="dir")]
            for d in range(20):
                entries.append(ent("l%d/d%d" % (k, d), kind="dir"))
                entries += [ent("l%d/d%d/f%d" % (k, d, f), "%d-%d-%d\n" % (k, d, f)) for f in range(10)]
            layers.append((tar_bytes(entries), "gzip"))
        url, ref = self.push_layers(name, layers)
        self.pull_ok(url, "-q")
        ref_out = os.path.join(self.tmp, name + "-reference")
        r = self.lazyroot("extract", url, ref_out, timeout=300)
        self.assertOk(r, "reference extract")
        # The index writer and reader agree: nothing is rebuilt on a normal run.
        self.assertNotIn("rebuilding", r.stderr)
        want = tree_listing.listing(ref_out, dir_mtime=False)
        indexes = os.path.join(self.root, "index", "sha256")
        trees = os.path.join(self.root, "trees")
        return url, want, [os.path.join(indexes, n) for n in sorted(os.listdir(indexes))], \
            [os.path.join(trees, n) for n in os.listdir(trees)]

    def assertRebuiltOrRefused(self, label, rc, err, path, out_listing, want):
        """Either rebuilt (exit 0, the message names the file, the result is
        the reference) or refused (exit 1 naming the file)."""
        self.assertIn(os.path.basename(path), err, "%s: the message does not name %s:\n%s" % (label, path, err))
        if rc == 0:
            d = tree_listing.diff(want, out_listing, "reference", label)
            self.assertFalse(d, "%s differs from the reference:\n%s" % (label, d))
        else:
            self.assertEqual(rc, 1, err)

    def assertBombRebuiltOrRefused(self, label, url, victim, bomb, want, out, drop_trees=False):
        """An extract (into out) and a mount of url, each with the store file
        victim replaced by bomb first (and the merged trees dropped, with
        drop_trees), stay under RSS_BOUND_MIB and rebuild or refuse victim
        (assertRebuiltOrRefused); a rebuild leaves no bomb behind."""
        for tool in ("extract", "mount"):
            with open(victim, "wb") as f:
                f.write(bomb)
            if drop_trees:
                self.drop_trees()  # without a tree the entries are read to merge it
            tool_label = label + ": " + tool
            if tool == "extract":
                rc, _, err, peak = self.extract_measured(tool_label, url, out)
                listing = tree_listing.listing(out, dir_mtime=False) if rc == 0 else None
            else:
                res = self.mount_measured(tool_label, url)
                if res is None:
                    continue
                rc, err, listing, peak, _ = res
            self.assertLess(peak, RSS_BOUND_MIB, "%s peaked at %.1f MiB" % (tool_label, peak))
            self.assertRebuiltOrRefused(tool_label, rc, err, victim, listing, want)
            if rc == 0:
                with open(victim, "rb") as f:
                    self.assertNotEqual(f.read(), bomb, "%s was not rebuilt in the store" % victim)

    # ------------------------------------------------------------ (a) layer index

    def test_a_layer_index_with_an_inflated_count(self):
        url, want, indexes, _ = self.small_image("index-bomb")
        self.assertEqual(len(indexes), 3)
        victim = indexes[1]
        with open(victim, "rb") as f:
            real = f.read()
        bomb = crafted_index(real)
        self.assertLess(len(bomb), 16384, "the crafted index should be a few KB")
        print("[ hostile-store ] crafted layer index: %d bytes, claims %d entries" % (len(bomb), 4000000))

        self.assertBombRebuiltOrRefused("(a) index bomb", url, victim, bomb, want, os.path.join(self.tmp, "a-out"),
                                        drop_trees=True)

    # ------------------------------------------------------------ (b) tree file

    def test_b_tree_with_overlapping_dirent_ranges(self):
        # Enough directories that checking each one's claimed range against
        # the whole table would cost (directories x dirents) steps.
        entries = []
        for d in range(1500):
            entries.append(ent("d%04d" % d, kind="dir"))
            entries += [ent("d%04d/f%d" % (d, f), "x") for f in range(8)]
        url, _ = self.push_layers("tree-bomb", [(tar_bytes(entries), "gzip")])
        self.pull_ok(url, "-q")
        ref_out = os.path.join(self.tmp, "b-reference")
        r = self.lazyroot("extract", url, ref_out, timeout=300)
        self.assertOk(r, "reference extract")
        self.assertNotIn("rebuilding", r.stderr)
        want = tree_listing.listing(ref_out, dir_mtime=False)
        trees = os.path.join(self.root, "trees")
        names = os.listdir(trees)
        self.assertEqual(len(names), 1, "extract should have stored the tree")
        tree_path = os.path.join(trees, names[0])
        with open(tree_path, "rb") as f:
            real = f.read()
        bomb, dirs = overlapping_tree(real)
        print("[ hostile-store ] crafted tree: %d bytes, %d directories each claiming all %d dirents"
              % (len(bomb), dirs, struct.unpack_from("<I", bomb, 28)[0]))

        self.assertBombRebuiltOrRefused("(b) overlapping tree", url, tree_path, bomb, want,
                                        os.path.join(self.tmp, "b-out"))

    # ------------------------------------------------------------ (c) symlink chain

    def test_c_chain_of_long_symlinks(self):
        links, files, dirs = 210, 300, 30
        url, ref = self.push_layers("chain", [(tar_bytes(chain_entries(links, files, dirs)), "gzip")])
        start = time.monotonic()
        rc, _, err, peak = self.measured("(c) symlink chain: pull", "pull", "-q", url)
        self.assertEqual(rc, 0, err)
        self.assertLess(peak, RSS_BOUND_MIB, "pull peaked at %.1f MiB" % peak)

        out = os.path.join(self.tmp, "c-out")
        rc, _, err, peak = self.extract_measured("(c) symlink chain: extract", url, out)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("rebuilding", err)
        self.assertLess(peak, RSS_BOUND_MIB, "extract peaked at %.1f MiB" % peak)
        ours = tree_listing.listing(out, dir_mtime=False)
        # Everything below the chain landed in d.
        names = {l.split(" ")[0] for l in ours}
        self.assertIn("/d/f0", names)
        self.assertIn("/d/f%d" % (files - 1), names)
        self.assertIn("/d/s%d/x/f" % (dirs - 1), names)
        self.assertEqual(sum(1 for n in names if n.startswith("/d/f")), files)

        res = self.mount_measured("(c) symlink chain: mount", url)
        if res is not None:
            rc, err, listing, peak, _ = res
            self.assertEqual(rc, 0, err)
            self.assertLess(peak, RSS_BOUND_MIB)
            d = tree_listing.diff(ours, listing, "lazyroot extract", "lazyroot mount")
            self.assertFalse(d, "mount differs from extract:\n" + d)

        # Bounded work, by the budget: one walk of the chain plus a few steps
        # per entry suffices; less than one walk is a clear error.
        if self.has_limit_flag:
            chain = chain_components(links)
            enough = chain + 2 * links + 20 * (1 + links + files + 3 * dirs)
            self.drop_trees()  # so that extract merges again, under the budget
            rc, _, err, _ = self.extract_measured("(c) chain, symlink-steps=%d" % enough, url, out,
                                                  "--limit", "symlink-steps=%d" % enough)
            self.assertEqual(rc, 0, err)
            self.drop_trees()
            rc, _, err, peak = self.extract_measured("(c) chain, symlink-steps=%d" % (chain // 2), url, out,
                                                     "--limit", "symlink-steps=%d" % (chain // 2))
            self.assertEqual(rc, 1, err)
            self.assertIn("symlink-steps", err)
            self.assertIn("--limit symlink-steps=", err)
            self.assertIn("l%d/" % (links - 1), err, "the error does not name the entry")
        else:
            print("[ hostile-store ] (c) no --limit flag in this binary: budget checks skipped")

        if HAVE_UMOCI and IS_ROOT:
            layout = os.path.join(self.tmp, "oci-chain")
            r = subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                                "docker://" + ref, "oci:%s:v1" % layout], capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            bundle = os.path.join(self.tmp, "umoci-chain")
            t0 = time.monotonic()
            r = subprocess.run(["umoci", "unpack", "--image", "%s:v1" % layout, bundle], capture_output=True,
                               text=True, timeout=600)
            print("[ hostile-store ] (c) umoci unpack of the chain: exit %d, %.2f s" %
                  (r.returncode, time.monotonic() - t0), flush=True)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            theirs = tree_listing.listing(os.path.join(bundle, "rootfs"), dir_mtime=False)
            d = tree_listing.diff(ours, theirs, "lazyroot extract", "umoci unpack")
            self.assertFalse(d, "umoci unpack differs:\n" + d)
        else:
            print("[ hostile-store ] (c) umoci/skopeo or root missing: oracle comparison skipped")


if __name__ == "__main__":
    unittest.main(verbosity=2)
