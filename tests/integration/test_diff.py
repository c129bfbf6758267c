#!/usr/bin/env python3
"""`lazyroot diff IMAGE_A IMAGE_B [PATH]` against an independent oracle.

Two images share a base layer (Python tarfile); A adds a layer of its own, B
one that changes every kind of thing: a file added, one removed, content
changed at the same size and at another size, mode only, owner only, file ->
symlink, directory -> file, a symlink's target, an xattr, a whiteout of a
whole directory, an opaque directory, a hard link broken, and files
rewritten with the same bytes (in another layer blob: equal only by the
per-file digest) or only a new mtime.

The oracle: `umoci unpack` of both images (OCI, gzip, from an oci: layout),
then `diff -r --no-dereference` for presence and contents, and a walk of the
two trees comparing lstat type, mode, uid/gid, size, link count, symlink
target and xattrs. The paths lazyroot reports and the kinds of each change
must equal what they find. The same pair as Docker media types and
gzip/zstd/uncompressed layers from a registry, and crossed (A of one kind,
B of another), must give the same answer. Also: PATH restricts the diff,
identical images (also the same layers recompressed: nothing in common but
the contents) exit 0, the table and --mtime, hostile names escaped, and the
index's per-file digest equals sha256sum of the umoci-extracted file."""

import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tarfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import LAZYROOT_BIN, class_store  # noqa: E402

HAVE_UMOCI = bool(shutil.which("umoci"))
IS_ROOT = os.geteuid() == 0
EVIL = "evil\x1b[31m\x07.txt"


def _tar(entries):
    """entries: (name, kind, payload, extra): kind dir/file/symlink/hardlink/
    whiteout; extra: mode, uid, gid, mtime, xattrs (dict)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, kind, payload = e[:3]
            extra = e[3] if len(e) > 3 else {}
            ti = tarfile.TarInfo(name)
            ti.mtime = extra.get("mtime", 1700000000)
            ti.uid, ti.gid = extra.get("uid", 0), extra.get("gid", 0)
            if extra.get("xattrs"):
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in extra["xattrs"].items()}
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, extra.get("mode", 0o755)
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, payload, 0o777
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, payload, 0o644
                tf.addfile(ti)
            else:
                payload = payload or b""
                ti.size, ti.mode = len(payload), extra.get("mode", 0o644)
                tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


BASE = [
    ("./", "dir", None), ("etc/", "dir", None),
    ("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/same.conf", "file", b"unchanged\n"),
    ("etc/samesize", "file", b"aaaa\n"),
    ("etc/mode", "file", b"mode\n"),
    ("etc/owner", "file", b"owner\n"),
    ("etc/xattr", "file", b"x\n", {"xattrs": {"user.test": "one"}}),
    ("etc/link", "symlink", "passwd"),
    ("etc/tochange", "file", b"becomes a link\n"),
    ("etc/rewritten", "file", b"the same bytes again, in another layer\n" * 50),
    ("etc/touched", "file", b"only a new mtime\n"),
    ("dirfile/", "dir", None), ("dirfile/child", "file", b"child\n"),
    ("gone.txt", "file", b"removed in B\n"),
    ("wdir/", "dir", None), ("wdir/sub/", "dir", None), ("wdir/sub/a", "file", b"a\n"), ("wdir/b", "file", b"b\n"),
    ("opq/", "dir", None), ("opq/old1", "file", b"old1\n"), ("opq/keep", "file", b"keep\n"),
    ("hl/", "dir", None), ("hl/a", "file", b"linked\n"), ("hl/b", "hardlink", "hl/a"),
    ("usr/", "dir", None), ("usr/bin/", "dir", None), ("usr/bin/tool", "file", b"\x7fELF tool v1\n" * 30,
                                                        {"mode": 0o755}),
    ("usr/lib/", "dir", None), ("usr/lib/big.bin", "file", random.Random(1).randbytes(300 * 1024 + 7)),
    ("usr/lib/same.bin", "file", random.Random(3).randbytes(200 * 1024)),
]
A_TOP = [("a-only.txt", "file", b"only in A\n")]
B_TOP = [
    ("etc/", "dir", None),
    ("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
    ("etc/samesize", "file", b"bbbb\n"),
    ("etc/mode", "file", b"mode\n", {"mode": 0o600}),
    ("etc/owner", "file", b"owner\n", {"uid": 1000, "gid": 1000}),
    ("etc/xattr", "file", b"x\n", {"xattrs": {"user.test": "two"}}),
    ("etc/link", "symlink", "same.conf"),
    ("etc/tochange", "symlink", "passwd"),
    ("etc/rewritten", "file", b"the same bytes again, in another layer\n" * 50),
    ("etc/touched", "file", b"only a new mtime\n", {"mtime": 1800000000}),
    ("dirfile", "file", b"now a file\n"),
    (".wh.gone.txt", "file", b""),
    (".wh.wdir", "file", b""),
    ("opq/", "dir", None), ("opq/.wh..wh..opq", "file", b""), ("opq/keep", "file", b"keep\n"),
    ("opq/new", "file", b"new\n"),
    ("hl/", "dir", None), ("hl/a", "file", b"linked, rewritten\n"),
    ("new/", "dir", None), ("new/deep/", "dir", None), ("new/deep/file", "file", b"added\n"),
    ("added.txt", "file", b"added\n"),
    (EVIL, "file", b"a name that would recolour a terminal\n"),
    # Same sizes, other bytes: compared by digest (a large one spans many
    # decoder buffers), and a large one rewritten with the same bytes.
    ("usr/", "dir", None), ("usr/bin/", "dir", None),
    ("usr/bin/tool", "file", b"\x7fELF tool v2\0" * 30, {"mode": 0o755}),
    ("usr/lib/", "dir", None), ("usr/lib/big.bin", "file", random.Random(2).randbytes(300 * 1024 + 7)),
    ("usr/lib/same.bin", "file", random.Random(3).randbytes(200 * 1024)),
]

# What the oracle must find, spelt out so that it and lazyroot cannot be
# wrong together: path -> "A", "D" or the sorted change kinds.
EXPECTED = {
    "a-only.txt": "D", "added.txt": "A", "new": "A", "gone.txt": "D", "wdir": "D", EVIL: "A",
    "opq/old1": "D", "opq/new": "A",
    "etc/passwd": ["content", "size"], "etc/samesize": ["content"], "etc/mode": ["mode"],
    "etc/owner": ["owner"], "etc/xattr": ["xattrs"], "etc/link": ["link target"],
    "etc/tochange": ["type"], "dirfile": ["type"],
    "hl/a": ["content", "links", "size"], "hl/b": ["links"],
    "usr/bin/tool": ["content"], "usr/lib/big.bin": ["content"],
}


def displayable(s):
    return "".join("\\x%02x" % ord(c) if ord(c) < 0x20 or ord(c) == 0x7f else c for c in s)


def lxattrs(p):
    try:
        return {n: os.getxattr(p, n, follow_symlinks=False) for n in os.listxattr(p, follow_symlinks=False)
                if not n.startswith("security.selinux")}
    except OSError:
        return {}


def oracle(a, b):
    """{path: "A" | "D" | sorted kinds} between two unpacked trees."""
    out = {}
    # Presence and contents: diff -r (symlinks compared as links).
    r = subprocess.run(["diff", "-r", "-q", "--no-dereference", a, b], capture_output=True)
    assert r.returncode in (0, 1), r.stderr
    content = set()
    for line in r.stdout.decode("utf-8", "surrogateescape").splitlines():
        if line.startswith("Only in "):
            where, name = line[len("Only in "):].split(": ", 1)
            side, root = ("D", a) if where == a or where.startswith(a + "/") else ("A", b)
            out[os.path.relpath(os.path.join(where, name), root)] = side
        elif line.startswith("Files ") and line.endswith(" differ"):
            content.add(os.path.relpath(line[len("Files "):].split(" and " + b)[0], a))
    # Metadata: a walk over the paths both trees hold.
    for d, dirs, files in os.walk(a):
        for n in dirs + files:
            pa = os.path.join(d, n)
            rel = os.path.relpath(pa, a)
            pb = os.path.join(b, rel)
            if not os.path.lexists(pb):
                continue
            sa, sb = os.lstat(pa), os.lstat(pb)
            kinds = []
            if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
                kinds = ["type"]
                if stat.S_ISDIR(sa.st_mode):
                    dirs.remove(n)  # not descended into, as lazyroot
            else:
                if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode) and not stat.S_ISLNK(sa.st_mode):
                    kinds.append("mode")
                if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
                    kinds.append("owner")
                if stat.S_ISREG(sa.st_mode):
                    if sa.st_size != sb.st_size:
                        kinds.append("size")
                    if rel in content:
                        kinds.append("content")
                if stat.S_ISLNK(sa.st_mode) and os.readlink(pa) != os.readlink(pb):
                    kinds.append("link target")
                if not stat.S_ISDIR(sa.st_mode) and sa.st_nlink != sb.st_nlink:
                    kinds.append("links")
                if lxattrs(pa) != lxattrs(pb):
                    kinds.append("xattrs")
            if kinds:
                out[rel] = sorted(kinds)
    return out


class Diff(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        class_store(cls, "lazyroot-diff-test-")
        base, a_top, b_top = _tar(BASE), _tar(A_TOP), _tar(B_TOP)
        cls.tars = {"a": [base, a_top], "b": [base, b_top]}
        cls.refs = {}  # (variant, side) -> reference
        cls.layouts = {}  # side -> OCI gzip layout, what umoci unpacks
        variants = {"oci-gzip-layout": ("oci", ["gzip", "gzip"], "layout"),
                    "docker-mixed": ("docker", ["none", "zstd"], "registry"),
                    "oci-zstd": ("oci", ["zstd", "none"], "registry")}
        for variant, (fmt, comps, where) in variants.items():
            for side in ("a", "b"):
                layers = [mi.Layer(t, mi._compress(t, c, 6), c) for t, c in zip(cls.tars[side], comps)]
                image = mi.build_image(layers, fmt=fmt, config={"Cmd": ["/bin/sh"]})
                if where == "layout":
                    path = mi.write_oci_layout(os.path.join(cls.tmp, "layout-" + side), image, tag="v1")
                    cls.layouts[side] = path
                    ref = "oci:%s:v1" % path
                else:
                    mi.push(mi.RegistryClient(cls.reg.host), "demo/diff-%s-%s" % (variant, side), "v1", image)
                    ref = "http://%s/demo/diff-%s-%s:v1" % (cls.reg.host, variant, side)
                r = cls.run_lazyroot("pull", "-q", ref)
                assert r.returncode == 0, r.stderr
                cls.refs[variant, side] = ref
        cls.a, cls.b = cls.refs["oci-gzip-layout", "a"], cls.refs["oci-gzip-layout", "b"]

    @classmethod
    def run_lazyroot(cls, *args):
        return subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env, capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    def diff_json(self, *args, status=1):
        r = self.run_lazyroot("diff", "--format", "json", *args)
        self.assertEqual(r.returncode, status, r.stderr.decode(errors="replace"))
        return json.loads(r.stdout)

    @staticmethod
    def kinds(got):
        out = {}
        for c in got["changes"]:
            p = c["path"].lstrip("/")
            out[p] = {"added": "A", "removed": "D"}.get(c["change"]) or sorted(c["what"])
        return out

    def unpack(self, side):
        if not (HAVE_UMOCI and IS_ROOT):
            self.skipTest("umoci unpack needs umoci and root (owners, xattrs)")
        bundle = os.path.join(self.tmp, "bundle-" + side)
        if not os.path.isdir(bundle):
            r = subprocess.run(["umoci", "unpack", "--image", self.layouts[side] + ":v1", bundle],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
        return os.path.join(bundle, "rootfs")

    def test_diff_equals_umoci_trees_compared_by_diff_r_and_lstat(self):
        want = oracle(self.unpack("a"), self.unpack("b"))
        self.assertEqual(want, EXPECTED, "the oracle itself (the story of these images)")
        got = self.kinds(self.diff_json(self.a, self.b))
        self.assertEqual(got, {displayable(p): k for p, k in want.items()})

    def test_every_media_type_and_compression_gives_the_same_answer(self):
        want = {displayable(p): k for p, k in EXPECTED.items()}
        variants = sorted({v for v, _ in self.refs})
        for va in variants:
            for vb in variants:
                with self.subTest(a=va, b=vb):
                    self.assertEqual(self.kinds(self.diff_json(self.refs[va, "a"], self.refs[vb, "b"])), want)

    def test_identical_images_exit_zero(self):
        for variant in sorted({v for v, _ in self.refs}):
            with self.subTest(variant=variant):
                got = self.diff_json(self.refs[variant, "b"], self.refs["oci-gzip-layout", "b"], status=0)
                self.assertEqual(got["changes"], [])
                self.assertEqual(got["summary"], {"added": 0, "removed": 0, "modified": 0})
        r = self.run_lazyroot("diff", self.a, self.a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().splitlines()[-1], "0 added, 0 removed, 0 changed (mtimes not compared: --mtime)")

    def test_unchanged_files_in_another_layer_blob_are_equal_by_digest(self):
        got = self.diff_json(self.a, self.b)
        paths = {c["path"] for c in got["changes"]}
        self.assertNotIn("/etc/rewritten", paths)
        self.assertNotIn("/etc/touched", paths)
        # Compared by digest: the JSON shows the two (different) digests of a changed file.
        passwd = [c for c in got["changes"] if c["path"] == "/etc/samesize"][0]
        self.assertEqual(passwd["a"]["digest"], "sha256:" + hashlib.sha256(b"aaaa\n").hexdigest())
        self.assertEqual(passwd["b"]["digest"], "sha256:" + hashlib.sha256(b"bbbb\n").hexdigest())
        self.assertEqual((passwd["a"]["layer"], passwd["b"]["layer"]), (1, 2))
        # --mtime: the rewritten files (new tar entries with the same mtime) stay
        # equal, the touched one is reported, and so is nothing else new.
        with_mtime = self.kinds(self.diff_json("--mtime", self.a, self.b))
        self.assertEqual(with_mtime.pop("etc/touched"), ["mtime"])
        self.assertEqual(with_mtime, {displayable(p): k for p, k in EXPECTED.items()})

    def test_path_restricts_the_diff(self):
        got = self.kinds(self.diff_json(self.a, self.b, "/etc"))
        self.assertEqual(got, {p: k for p, k in EXPECTED.items() if p.startswith("etc/")})
        self.assertEqual(self.kinds(self.diff_json(self.a, self.b, "wdir")), {"wdir": "D"})
        self.assertEqual(self.diff_json(self.a, self.b, "etc/same.conf", status=0)["changes"], [])
        self.assertEqual(self.kinds(self.diff_json(self.a, self.b, "usr")),
                         {"usr/bin/tool": ["content"], "usr/lib/big.bin": ["content"]})
        r = self.run_lazyroot("diff", self.a, self.b, "/no/such/path")
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith(b"lazyroot: "), r.stderr)
        r = self.run_lazyroot("diff", self.a, "oci:/nonexistent:v1")
        self.assertEqual(r.returncode, 2)

    def test_table_for_people(self):
        r = self.run_lazyroot("diff", self.a, self.b)
        self.assertEqual(r.returncode, 1, r.stderr)
        out = r.stdout.decode()
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        lines = out.splitlines()
        self.assertIn("M /etc/passwd  size 30 -> 67, content", lines)
        self.assertIn("M /etc/mode  mode 0644 -> 0600", lines)
        self.assertIn("M /etc/owner  owner 0:0 -> 1000:1000", lines)
        self.assertIn("M /etc/link  link target passwd -> same.conf", lines)
        self.assertIn("M /etc/tochange  type file, 15 bytes -> symlink -> passwd", lines)
        self.assertIn("M /etc/xattr  xattrs (user.test)", lines)
        self.assertIn("D /wdir/  dir, 3 entries", lines)
        self.assertIn("A /new/  dir, 2 entries", lines)
        self.assertIn("A /" + displayable(EVIL) + "  file, 38 bytes", lines)
        self.assertIn("M /dirfile  type dir, 1 entry -> file, 11 bytes", lines)
        self.assertIn("M /hl/a  size 7 -> 18, content, links 2 -> 1", lines)
        self.assertEqual(lines[-1], "4 added, 4 removed, 12 changed (mtimes not compared: --mtime)")
        self.assertEqual(len(lines), 4 + 4 + 12 + 1)
        # In path order.
        self.assertEqual(lines[:-1], sorted(lines[:-1], key=lambda l: l[2:].split("  ")[0]))

    def test_index_digest_equals_sha256sum_of_the_unpacked_file(self):
        trees = {"a": self.unpack("a"), "b": self.unpack("b")}
        got = self.diff_json(self.a, self.b)
        seen = 0
        for c in got["changes"]:
            for side, tree in trees.items():
                s = c.get(side)
                if s and "digest" in s:
                    path = os.path.join(tree, c["path"].lstrip("/"))
                    out = subprocess.run(["sha256sum", path], check=True, capture_output=True, text=True).stdout
                    self.assertEqual(s["digest"], "sha256:" + out.split()[0], c["path"])
                    seen += 1
        # Both images' digests of etc/samesize, usr/bin/tool, usr/lib/big.bin
        # (content changed) and etc/mode, etc/owner, etc/xattr (content equal,
        # compared because B's layer rewrote them).
        self.assertEqual(seen, 12)

    def test_help_tells_the_exit_status(self):
        r = self.run_lazyroot("diff", "--help")
        self.assertEqual(r.returncode, 0)
        text = r.stdout.decode()
        for word in ("IMAGE_A", "IMAGE_B", "PATH", "--mtime", "--format", "0 no differences", "1 differences",
                     "2 trouble"):
            self.assertIn(word, text)


if __name__ == "__main__":
    unittest.main()
