#!/usr/bin/env python3
"""Hostile images against `lazyroot pull` + `lazyroot extract`: names with
`../` and `/`, symlinks pointing out of the tree followed by writes through
them, hardlinks to /etc/passwd, devices in --rootless mode, truncated and
bomb gzip blobs, a bad tar header checksum, a wrong DiffID.

The pattern is moby's testBreakout: a canary file and dir beside the
extraction DIR and a canary dir at /tmp/lazyroot-canary-XXXX (the path the
hostile entries aim at) must be unchanged whatever happens. Escapes are
clamped into the tree, as umoci does (correctness.md §1 rows 28, 38, 44, 45,
49); malformed input is a clear error, and a failed pull leaves the store's
blobs/, index/ and images/ exactly as they were. Listings come from
tests/tools/tree_listing.py.
"""

import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import edge_images as ei  # noqa: E402
import make_image as mi  # noqa: E402
import tree_listing  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

ent, tar_bytes = ei.ent, ei.tar_bytes
IS_ROOT = os.geteuid() == 0


def require_extract():
    r = subprocess.run([LAZYROOT_BIN, "extract", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        raise unittest.SkipTest("%s has no extract subcommand" % LAZYROOT_BIN)


def du_bytes(path):
    """Allocated bytes below path (st_blocks), never following symlinks."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class DuSampler(threading.Thread):
    """Samples du_bytes(path) every 50 ms until stop(); .peak is the max."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.peak, self.done = path, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            if os.path.isdir(self.path):
                self.peak = max(self.peak, du_bytes(self.path))
            self.done.wait(0.05)

    def stop(self):
        self.done.set()
        self.join()
        if os.path.isdir(self.path):
            self.peak = max(self.peak, du_bytes(self.path))
        return self.peak


class ExtractHostile(PullTestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        require_extract()
        cls.class_registry()
        cls.client = mi.RegistryClient(cls.reg.host)
        # The host path hostile entries aim at; never written by the tests.
        cls.canary = tempfile.mkdtemp(prefix="lazyroot-canary-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.canary, ignore_errors=True)
        with open(os.path.join(cls.canary, "victim"), "w") as f:
            f.write("canary\n")
        cls.n = 0

    def setUp(self):
        super().setUp()
        # DIR is self.tmp/x/out; the canaries sit beside it and one level up.
        self.parent = self.workdir("x")
        self.out = os.path.join(self.parent, "out")
        with open(os.path.join(self.parent, "canary-file"), "w") as f:
            f.write("beside DIR\n")
        os.makedirs(os.path.join(self.parent, "canary-dir"))
        with open(os.path.join(self.parent, "canary-dir", "inside"), "w") as f:
            f.write("beside DIR\n")
        self.before = self.canaries()
        self.passwd_before = os.lstat("/etc/passwd")
        self.addCleanup(self.check_canaries)

    def canaries(self):
        # Everything of self.tmp but the store, HOME and DIR, plus /tmp's canary.
        mine = [l for l in tree_listing.listing(self.tmp, dir_mtime=False, exclude=["/x/out", "/root", "/home"])
                if "lazyroot-tmp" not in l and not re.match(r"/bg\d+\.(out|err) ", l)]  # popen() logs
        return mine + ["/tmp-canary" + l for l in tree_listing.listing(self.canary)]

    def check_canaries(self):
        d = tree_listing.diff(self.before, self.canaries(), "canaries before", "after")
        self.assertFalse(d, "something outside DIR changed:\n" + d)
        st = os.lstat("/etc/passwd")
        self.assertEqual((st.st_ino, st.st_nlink, st.st_mtime_ns),
                         (self.passwd_before.st_ino, self.passwd_before.st_nlink, self.passwd_before.st_mtime_ns),
                         "/etc/passwd of the host changed")
        left = [n for n in os.listdir(self.parent) if "lazyroot-tmp" in n]
        self.assertEqual(left, [], "extract left a temp dir beside DIR")

    def store_state(self):
        out = []
        for sub in ("blobs", "index", "images"):
            base = os.path.join(self.root, sub)
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                for n in sorted(filenames):
                    p = os.path.join(dirpath, n)
                    with open(p, "rb") as f:
                        h = hashlib.sha256(f.read()).hexdigest()
                    out.append("%s %d %s" % (os.path.relpath(p, self.root), os.path.getsize(p), h))
        return out

    def push_image(self, img):
        type(self).n += 1
        repo = "hostile/img%d" % self.n
        mi.push(self.client, repo, "v1", img)
        return "http://%s/%s:v1" % (self.reg.host, repo)

    def push_layers(self, layers, fmt="oci"):
        return self.push_image(ei.image(layers, fmt=fmt))

    def extract_ok(self, url, *opts):
        self.pull_ok(url, "-q")
        r = self.lazyroot("extract", *opts, url, self.out, timeout=300)
        self.assertOk(r, "lazyroot extract %s" % url)
        return self.out

    def assertPullFails(self, url, *words):
        """A pull that must fail with a message containing one of `words`,
        leaving blobs/, index/ and images/ as they were. A good image is
        pulled first so the store is not empty."""
        good = self.push_layers([(tar_bytes([ent("good", "good\n")]), "gzip")])
        self.pull_ok(good, "-q")
        before = self.store_state()
        r = self.pull(url, "-q", timeout=300)
        self.assertFails(r)
        low = r.stderr.lower()
        self.assertTrue(any(w.lower() in low for w in words),
                        "pull failed, but the message names none of %s: %s" % (words, r.stderr[-2000:]))
        d = tree_listing.diff(before, self.store_state(), "store before", "after the failed pull")
        self.assertFalse(d, "a failed pull changed the store:\n" + d)
        r2 = self.lazyroot("extract", url, self.out)
        self.assertNotEqual(r2.returncode, 0, "extract of an image whose pull failed succeeded")
        self.assertFalse(os.path.exists(self.out) and os.listdir(self.out), "files left in DIR")
        return r

    # ------------------------------------------------------------ paths out of the tree

    def test_dotdot_and_absolute_names_are_clamped(self):
        """Row 28: `../../x` and `/abs/x` land inside DIR (lexical clamp)."""
        c = self.canary.lstrip("/")
        url = self.push_layers([(tar_bytes([
            ent("../../evil-dotdot", "x\n"), ent("/abs/file", "abs\n"),
            ent("../../../../../../" + c + "/pwned", "through ..\n"),
            ent("/" + c + "/victim", "overwritten?\n"),
            ent("../canary-file", "overwritten?\n")]), "gzip")])
        out = self.extract_ok(url)
        want = {"/evil-dotdot", "/abs/file", "/%s/pwned" % c, "/%s/victim" % c, "/canary-file"}
        got = {l.split(" ")[0] for l in tree_listing.listing(out) if l.split(" ")[1] == "f"}
        self.assertEqual(got, want, "clamped names")
        with open(os.path.join(out, c, "victim")) as f:
            self.assertEqual(f.read(), "overwritten?\n")

    def test_symlinks_out_then_write_through(self):
        """Rows 44, 45: `evil -> /tmp/canary` and `evil2 -> ../../..` stay
        verbatim; files written through them land inside DIR."""
        c = self.canary.lstrip("/")
        url = self.push_layers([
            (tar_bytes([ent("evil", kind="symlink", target=self.canary),
                        ent("evil2", kind="symlink", target="../../.."),
                        ent("evil/pwned", "same layer\n"),
                        ent("evil2/" + c + "/pwned2", "via ..\n")]), "gzip"),
            (tar_bytes([ent("evil/victim", "next layer\n"),
                        ent("evil2/x/canary-file", "up and out\n"),
                        ent("evil3", kind="symlink", target="/"),
                        ent("evil3/../../x/canary-dir/inside", "dotdot after a symlink\n")]), "none")])
        out = self.extract_ok(url)
        self.assertEqual(os.readlink(os.path.join(out, "evil")), self.canary)
        self.assertEqual(os.readlink(os.path.join(out, "evil2")), "../../..")
        for rel, text in ((c + "/pwned", "same layer\n"), (c + "/pwned2", "via ..\n"),
                          (c + "/victim", "next layer\n"), ("x/canary-file", "up and out\n"),
                          ("x/canary-dir/inside", "dotdot after a symlink\n")):
            p = os.path.join(out, rel)
            self.assertTrue(os.path.isfile(p) and not os.path.islink(p), "%s not inside DIR" % rel)
            with open(p) as f:
                self.assertEqual(f.read(), text, rel)

    def test_hardlinks_to_etc_passwd_stay_inside(self):
        """Rows 38, 49: `h1 -> /etc/passwd`, `h2 -> ../../etc/passwd` and a
        link through `d1 -> ../../etc` all bind to the image's etc/passwd."""
        url = self.push_layers([
            (tar_bytes([ent("etc", kind="dir"), ent("etc/passwd", "root:x:0:0::/:/bin/sh\n"),
                        ent("d1", kind="symlink", target="../../etc")]), "gzip"),
            (tar_bytes([ent("h1", kind="hardlink", target="/etc/passwd"),
                        ent("h2", kind="hardlink", target="../../etc/passwd"),
                        ent("h3", kind="hardlink", target="d1/passwd")]), "gzip")])
        out = self.extract_ok(url)
        ino = os.lstat(os.path.join(out, "etc/passwd")).st_ino
        for h in ("h1", "h2", "h3"):
            st = os.lstat(os.path.join(out, h))
            self.assertEqual(st.st_ino, ino, "%s is not the image's etc/passwd" % h)
        self.assertEqual(os.lstat(os.path.join(out, "h1")).st_nlink, 4)

    def test_hardlink_to_missing_target_is_an_error(self):
        """Row 36: with no etc/passwd in the image, `h -> /etc/passwd` is an
        error, never a link to the host's file."""
        url = self.push_layers([(tar_bytes([ent("h", kind="hardlink", target="/etc/passwd")]), "gzip")])
        r = self.pull(url, "-q")
        if r.returncode == 0:
            r = self.lazyroot("extract", url, self.out)
        self.assertNotEqual(r.returncode, 0, "a hardlink to a missing target was accepted")
        self.assertIn("etc/passwd", r.stderr, "the error does not name the target: %s" % r.stderr)
        self.assertFalse(os.path.exists(self.out) and os.listdir(self.out), "files left in DIR")

    def test_root_as_symlink_and_loops_are_errors(self):
        """Row 27 (`.` as a symlink, CVE-2021-29136) and row 47 (ELOOP)."""
        for name, entries, word in (
                ("dot-symlink", [ent(".", kind="symlink", target=self.canary), ent("f", "x\n")], "root"),
                ("loop", [ent("p", kind="symlink", target="q"), ent("q", kind="symlink", target="p"),
                          ent("p/x", "x\n")], "symbolic link")):
            with self.subTest(name):
                url = self.push_layers([(tar_bytes(entries), "gzip")])
                r = self.pull(url, "-q")
                if r.returncode == 0:
                    r = self.lazyroot("extract", url, self.out)
                self.assertNotEqual(r.returncode, 0, "%s accepted" % name)
                self.assertIn(word, r.stderr.lower(), "unclear error for %s: %s" % (name, r.stderr))
                self.assertFalse(os.path.lexists(self.out) and os.listdir(self.out))

    def test_invalid_entries_are_errors(self):
        """Rows 11 (`.wh.` names nothing), 35 (forward hardlink), 37 (link to
        a directory), 56 (uid beyond uint32 would truncate to root): each a
        clear error from pull or extract, naming the entry; nothing in DIR."""
        table = (
            ("empty-whiteout", [ent("d", kind="dir"), ent("d/.wh.", "")], ".wh."),
            ("forward-hardlink", [ent("h", kind="hardlink", target="f"), ent("f", "f\n")], "\"h\""),
            ("hardlink-to-dir", [ent("d", kind="dir"), ent("h", kind="hardlink", target="d")], "\"h\""),
            ("uid-2^32", [ent("u", "u\n", pax={"uid": str(1 << 32)})], "uid"),
            # umoci 0.4.7 fails on these three as well
            ("empty-symlink-target", [ent("el", kind="symlink", target="")], "el"),
            ("name-over-NAME_MAX", [ent("n" * 256, "256\n")], "over the kernel's 255"),
            ("path-over-PATH_MAX", [ent("/".join("d%03d-%s" % (i, "x" * 40) for i in range(110)) + "/f", "f\n")],
             "over the kernel's 4096"),
        )
        for name, entries, word in table:
            with self.subTest(name):
                url = self.push_layers([(tar_bytes(entries), "gzip")])
                r = self.pull(url, "-q")
                if r.returncode == 0:
                    r = self.lazyroot("extract", url, self.out)
                self.assertNotEqual(r.returncode, 0, "%s accepted" % name)
                self.assertIn(word, r.stderr, "unclear error for %s: %s" % (name, r.stderr))
                self.assertFalse(os.path.lexists(self.out) and os.listdir(self.out))

    def test_merge_error_names_the_image_once(self):
        url = self.push_layers([(tar_bytes([ent("h", kind="hardlink", target="f")]), "gzip")])
        self.pull_ok(url, "-q")
        r = self.lazyroot("extract", url, self.out)
        self.assertFails(r)
        ref = url.split("://", 1)[1]
        self.assertEqual(r.stderr.count("image " + ref), 1, r.stderr)

    def test_dir_that_is_a_symlink_or_not_empty_is_refused(self):
        """DIR must be absent or an empty directory, never a symlink to one."""
        url = self.push_layers([(tar_bytes([ent("f", "x\n")]), "gzip")])
        self.pull_ok(url, "-q")
        link = os.path.join(self.parent, "link-out")
        os.symlink(self.canary, link)
        self.addCleanup(os.unlink, link)
        empty = os.path.join(self.parent, "empty-dir")
        os.mkdir(empty)
        self.addCleanup(os.rmdir, empty)
        os.symlink(empty, os.path.join(self.parent, "link-empty"))
        self.addCleanup(os.unlink, os.path.join(self.parent, "link-empty"))
        for d in (link, os.path.join(self.parent, "link-empty"), os.path.join(self.parent, "canary-dir")):
            with self.subTest(d):
                r = self.lazyroot("extract", url, d)
                self.assertNotEqual(r.returncode, 0, "extract into %s succeeded" % d)
                self.assertIn(os.path.basename(d), r.stderr, "the error does not name DIR: %s" % r.stderr)
        self.assertEqual(os.listdir(empty), [])

    # ------------------------------------------------------------ rootless

    def test_rootless_devices_are_placeholders(self):
        """Row 60: --rootless writes a device as an empty 0000 regular file
        whose user.containers.override_stat keeps type, owner and mode; the
        --override-stat listing equals the privileged extract but for the
        device numbers, which are not recorded."""
        layers = [(tar_bytes([ent("dev", kind="dir"),
                              ent("dev/null", kind="char", major=1, minor=3, mode=0o666),
                              ent("dev/sda", kind="block", major=8, minor=0, mode=0o660, gid=6),
                              ent("dev/fifo", kind="fifo", mode=0o600, uid=3),
                              ent("bin", kind="dir", mode=0o750, uid=2, gid=2),
                              ent("bin/su", "su\n", mode=0o4755, uid=0, gid=0),
                              ent("bin/mine", "mine\n", mode=0o640, uid=1000, gid=1000),
                              ent("bin/link", kind="hardlink", target="bin/mine")]), "gzip")]
        url = self.push_layers(layers)
        self.pull_ok(url, "-q")
        r = self.lazyroot("extract", "--rootless", url, self.out)
        self.assertOk(r, "lazyroot extract --rootless")
        out = self.out
        for name in ("dev/null", "dev/sda", "dev/fifo"):
            self.assertIn(name, r.stdout + r.stderr, "no warning names %s (lost device number / owner)" % name)
        st = os.lstat(os.path.join(out, "dev/null"))
        self.assertTrue(stat.S_ISREG(st.st_mode), "rootless device is not a placeholder file")
        self.assertEqual((st.st_size, stat.S_IMODE(st.st_mode)), (0, 0))
        self.assertEqual(os.getxattr(os.path.join(out, "dev/null"), tree_listing.OVERRIDE_STAT,
                                     follow_symlinks=False), b"0:0:020666")
        if not IS_ROOT:
            return
        ours = tree_listing.listing(out, dir_mtime=False, override_stat=True)
        priv = os.path.join(self.parent, "priv")
        self.addCleanup(shutil.rmtree, priv, ignore_errors=True)
        r = self.lazyroot("extract", url, priv)
        self.assertOk(r, "privileged extract")
        # Linux refuses user.* xattrs on fifos, so a fifo's image owner cannot
        # be recorded: extract.cc makes that a warning and keeps the caller's
        # owner (a documented limitation, see the report).
        want = [l.replace("c:1:3", "c:?:?").replace("b:8:0", "b:?:?").replace(" p 0600 3:0 ", " p 0600 0:0 ")
                for l in tree_listing.listing(priv, dir_mtime=False)]
        shutil.rmtree(priv)
        d = tree_listing.diff(ours, want, "--rootless (override_stat)", "privileged")
        self.assertFalse(d, "rootless extract does not record the image's metadata:\n" + d)

    # ------------------------------------------------------------ a real unprivileged user

    def nobody_extract(self, layers):
        """Pulls and extracts `layers` as uid/gid 65534 (setpriv) into a store
        and DIR owned by that user; returns (privileged listing, the
        unprivileged one read through override_stat, extract's stderr).
        Symlinks cannot carry user.* xattrs, so their owner is the caller's
        in both readings (extract.cc, documented)."""
        if not IS_ROOT or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to run lazyroot as an unprivileged user")
        url = self.push_layers(layers)
        priv = self.extract_ok(url)
        base, env, cmd = self.nobody_lazyroot()
        r = subprocess.run(cmd + ["pull", "-q", url], env=env, capture_output=True, text=True, timeout=120)
        self.assertOk(r, "lazyroot pull as uid 65534")
        out = os.path.join(base, "out")
        r = subprocess.run(cmd + ["extract", url, out], env=env, capture_output=True, text=True, timeout=120)
        self.assertOk(r, "lazyroot extract as uid 65534")
        want = [re.sub(r"^(\S+ l \d+) \d+:\d+ ", r"\1 65534:65534 ", l)
                for l in tree_listing.listing(priv, dir_mtime=False)]
        got = tree_listing.listing(out, dir_mtime=False, override_stat=True)
        return want, got, r.stderr

    def test_unprivileged_extract_records_image_metadata(self):
        """As uid 65534: everything is owned by that user on disk, and
        user.containers.override_stat holds the image's owner and mode."""
        want, got, err = self.nobody_extract([
            (tar_bytes([ent("etc", kind="dir"), ent("etc/shadow", "x\n", mode=0o640, gid=42),
                        ent("bin", kind="dir"), ent("bin/su", "su\n", mode=0o4755),
                        ent("bin/sh", kind="symlink", target="su"),
                        ent("home", kind="dir", mode=0o750, uid=1000, gid=1000),
                        ent("home/f", "f\n", mode=0o600, uid=1000, gid=1000),
                        ent("home/h", kind="hardlink", target="home/f"),
                        ent("tmp", kind="dir", mode=0o1777), ent("fifo", kind="fifo", mode=0o644)]), "gzip"),
            (tar_bytes([ent("var", kind="dir"), ent("var/log", "l\n", mode=0o640, uid=4)]), "none")])
        # Linux refuses user.* xattrs on fifos too: a fifo keeps the caller as owner.
        want = [re.sub(r"^(\S+ p \d+) \d+:\d+ ", r"\1 65534:65534 ", l) for l in want]
        d = tree_listing.diff(want, got, "privileged extract", "uid 65534 extract (override_stat)")
        self.assertFalse(d, "the unprivileged extract lost image metadata:\n%s\nstderr: %s" % (d, err))

    def test_unprivileged_extract_of_read_only_modes(self):
        """As a real unprivileged user, entries whose image mode has no
        owner-write bit (files 0444/0555/0000, dirs 0555/0000) and device
        placeholders (0000) keep their override_stat record: extract.cc sets
        xattrs before chmod, since Linux needs write permission for user.*."""
        want, got, err = self.nobody_extract([
            (tar_bytes([ent("usr", kind="dir"), ent("usr/bin", kind="dir", mode=0o555),
                        ent("usr/bin/tool", "t\n", mode=0o555), ent("readme", "r\n", mode=0o444),
                        ent("proc", kind="dir", mode=0o555), ent("locked", kind="dir", mode=0o000),
                        ent("locked/f", "f\n", mode=0o000), ent("dev", kind="dir"),
                        ent("dev/null", kind="char", major=1, minor=3, mode=0o666)]), "gzip")])
        want = [re.sub(r"^(\S+ [cb]):\d+:\d+ ", r"\1:?:? ", l) for l in want]
        d = tree_listing.diff(want, got, "privileged extract", "uid 65534 extract (override_stat)")
        self.assertFalse(d, "the unprivileged extract lost image metadata:\n%s\nstderr: %s" % (d, err))

    # ------------------------------------------------------------ broken blobs

    def test_truncated_gzip_blob(self):
        """Row 65: a layer blob cut in half, pushed under the digest of the
        cut bytes (the registry verifies uploads), DiffID of the full tar."""
        tar = tar_bytes([ent("big", ei.mi.random_bytes(256 << 10, seed=3)), ent("after", "x\n")])
        full = mi._compress(tar, "gzip", 6)
        url = self.push_image(mi.build_image([mi.Layer(tar, full[:len(full) // 2], "gzip")]))
        self.assertPullFails(url, "unexpected end", "truncated", "eof", "gzip")

    def test_bad_tar_header_checksum(self):
        tar = bytearray(tar_bytes([ent("a", "a\n"), ent("b", "b\n")], fmt="ustar"))
        tar[1024 + 148] ^= 0x01   # second header's checksum field
        url = self.push_layers([(bytes(tar), "gzip")])
        self.assertPullFails(url, "checksum")

    def test_diffid_mismatch(self):
        layer = ei.as_layer(tar_bytes([ent("a", "a\n")]), "gzip")
        layer.diff_id = mi.sha256(b"something else")
        url = self.push_image(mi.build_image([layer]))
        self.assertPullFails(url, "diffid", "diff_id", "diff id")

    def test_bytes_after_the_compressed_stream(self):
        """Row 66: NULs or junk after the last gzip member (or zstd frame) are
        an error, as in Go's multistream reader; the blob digest covers them."""
        tar = tar_bytes([ent("a", "a\n")])
        gz, zs = mi._compress(tar, "gzip", 6), mi._compress(tar, "zstd", 3)
        for name, blob, comp in (("gzip+NULs", gz + bytes(1024), "gzip"), ("gzip+junk", gz + b"junkjunk", "gzip"),
                                 ("zstd+junk", zs + b"junkjunk", "zstd")):
            with self.subTest(name):
                url = self.push_image(mi.build_image([mi.Layer(tar, blob, comp)]))
                self.assertPullFails(url, "header", "frame")

    def test_compression_is_sniffed(self):
        """Row 69: the magic bytes decide, not the media type (containerd);
        a mislabelled layer still extracts to the right tree."""
        tar = tar_bytes([ent("etc", kind="dir"), ent("etc/a", "a\n", mode=0o600, uid=3)])
        want = tree_listing.listing(self.extract_ok(self.push_layers([(tar, "gzip")])))
        shutil.rmtree(self.out)
        gz, zs = mi._compress(tar, "gzip", 6), mi._compress(tar, "zstd", 3)
        for name, blob, label in (("plain labelled gzip", tar, "gzip"), ("gzip labelled plain", gz, "none"),
                                  ("zstd labelled gzip", zs, "gzip"), ("gzip labelled zstd", gz, "zstd")):
            with self.subTest(name):
                url = self.push_image(mi.build_image([mi.Layer(tar, blob, label)]))
                got = tree_listing.listing(self.extract_ok(url))
                shutil.rmtree(self.out)
                self.assertEqual(tree_listing.diff(want, got, "correctly labelled", name), "")

    def flip_and_extract(self, path, offsets, url, ref):
        """Flips one byte of `path` at each offset in turn and extracts; returns
        [(offset, outcome, stderr)] with outcome "same" | "DIFFERENT" | "error",
        restoring the file each time."""
        with open(path, "rb") as f:
            orig = f.read()
        mode = os.lstat(path).st_mode
        results = []
        try:
            for off in offsets:
                data = bytearray(orig)
                data[off] ^= 0x40
                os.chmod(path, 0o644)
                with open(path, "wb") as f:
                    f.write(data)
                r = self.lazyroot("extract", url, self.out)
                if r.returncode != 0:
                    outcome = "error"
                else:
                    outcome = "same" if tree_listing.listing(self.out) == ref else "DIFFERENT"
                    shutil.rmtree(self.out)
                self.assertFalse(os.path.exists(self.out) and os.listdir(self.out), "files left after an error")
                results.append((off, outcome, r.stderr.strip()))
        finally:
            with open(path, "wb") as f:
                f.write(orig)
            os.chmod(path, stat.S_IMODE(mode))
        return results

    def corruption_fixture(self):
        files = [ent("d/%03d" % i, mi.random_bytes(3000, seed=i)) for i in range(100)]
        img = ei.image([(tar_bytes(files), "gzip"), (tar_bytes(files[:10]), "none")])
        url = self.push_image(img)
        ref = tree_listing.listing(self.extract_ok(url))
        shutil.rmtree(self.out)
        return img, url, ref

    def test_corrupt_index_and_tree_files_are_detected(self):
        """A flipped byte in ROOT/index/sha256/* or ROOT/trees/* (the layer
        indexes and the merged tree, FORMAT.md) is caught by their checksums:
        extract names the file and either fails or rebuilds the same tree."""
        img, url, ref = self.corruption_fixture()
        files = sorted(glob.glob(os.path.join(self.root, "index", "sha256", "*")) +
                       glob.glob(os.path.join(self.root, "trees", "*")))
        self.assertTrue(files, "no index or tree files in the store")
        for path in files:
            size = os.path.getsize(path)
            unread = lambda off: False
            if "/index/" in path:
                # Layer index format 4: with the tree built, extract reads the
                # header and the checkpoint and chunk digest sections only;
                # the entries and the file digests (their own SHA-256s) are
                # for the merge, diff and fsck.
                with open(path, "rb") as f:
                    head = f.read(304)
                c_off, f_off = (int.from_bytes(head[at:at + 8], "little") for at in (120, 200))
                unread = lambda off, c_off=c_off, f_off=f_off: 304 <= off < c_off or off >= f_off
            for off, outcome, err in self.flip_and_extract(path, sorted({0, 8, 20, 64, size // 2, size - 1}), url, ref):
                with self.subTest(file=os.path.relpath(path, self.root), offset=off):
                    self.assertNotEqual(outcome, "DIFFERENT", "a corrupt %s gave a different tree" % path)
                    if unread(off):
                        self.assertEqual(outcome, "same", err)
                    else:
                        self.assertIn(os.path.basename(path), err, "the corruption was not reported")

    def test_corrupt_layer_blob_is_detected(self):
        img, url, ref = self.corruption_fixture()
        bad = []
        for layer in img.layers:
            path = os.path.join(self.root, "blobs", "sha256", layer.digest[7:])
            size = os.path.getsize(path)
            for off, outcome, err in self.flip_and_extract(path, [size // 3, size // 2], url, ref):
                if outcome == "DIFFERENT":
                    bad.append("%s @%d" % (layer.media_type, off))
        self.assertEqual(bad, [], "extract wrote different files from a corrupted stored blob")

    def test_concurrent_extracts_agree(self):
        """Six extracts of one freshly pulled image at once (the first ones
        race to build and publish ROOT/trees/<digest>): all succeed with the
        same tree."""
        files = [ent("d/%03d" % i, "file %d\n" % i * 40) for i in range(300)]
        url = self.push_layers([(tar_bytes(files), "gzip"), (tar_bytes(files[:10] + [ent("z", "z")]), "none")])
        self.pull_ok(url, "-q")
        outs = [os.path.join(self.tmp, "c%d" % i) for i in range(6)]
        self.addCleanup(lambda: [shutil.rmtree(o, ignore_errors=True) for o in outs])
        procs = [self.popen("extract", url, o) for o in outs]
        listings = []
        for p, o in zip(procs, outs):
            code, out, err = self.finish(p)
            self.assertEqual(code, 0, "concurrent extract into %s: %s" % (o, err))
            listings.append(tree_listing.listing(o))
        for o, l in zip(outs[1:], listings[1:]):
            self.assertEqual(tree_listing.diff(listings[0], l, outs[0], o), "")

    def test_gzip_bomb_is_bounded(self):
        """2 GiB of zeros in a ~2 MB gzip member: the pull must keep the store
        near the compressed size (no inflated temp file), and extract must
        either fail fast or write exactly the file, without filling the disk
        beyond its real size."""
        size = 2 << 30
        gz, diff_id = ei.gzip_bomb(size)
        self.assertLess(len(gz), 4 << 20)
        layer = mi.Layer(b"", gz, "gzip")
        layer.diff_id = diff_id
        url = self.push_image(mi.build_image([layer]))
        sampler = DuSampler(self.root)
        sampler.start()
        t0 = time.monotonic()
        r = self.pull(url, "-q", timeout=300)
        peak = sampler.stop()
        self.assertLess(peak, 64 << 20, "the store grew to %d bytes while pulling a %d-byte blob"
                        % (peak, len(gz)))
        if r.returncode != 0:
            self.assertLess(time.monotonic() - t0, 60, "the refusal was not fast")
            self.assertTrue(r.stderr.strip())
            return
        sampler = DuSampler(self.parent)
        sampler.start()
        r = self.lazyroot("extract", url, self.out, timeout=300)
        peak = sampler.stop()
        self.assertLess(peak, size + (64 << 20), "extract used %d bytes of disk for a %d-byte file" % (peak, size))
        if r.returncode != 0:
            self.assertTrue(r.stderr.strip())
            return
        p = os.path.join(self.out, "zeros")
        self.assertEqual(os.lstat(p).st_size, size)
        zero = bytes(8 << 20)
        with open(p, "rb") as f:
            while True:
                chunk = f.read(len(zero))
                if not chunk:
                    break
                self.assertEqual(chunk, zero[:len(chunk)], "the extracted file is not all zeros")
        self.assertEqual(sorted(os.listdir(self.out)), ["zeros"])
        shutil.rmtree(self.out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
