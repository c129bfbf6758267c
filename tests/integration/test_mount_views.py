#!/usr/bin/env python3
"""`lazyroot mount --layer N | --upto N | --layers` against independent
oracles. Three layers (Python tarfile) make three images: OCI (gzip, zstd,
gzip) and Docker (none, gzip, zstd) media types pushed to a real registry, and
OCI (zstd, none, gzip) in an oci: layout; all are pulled. The layers replace
a file twice, white out a file and a directory, make a directory opaque,
repeat a name within one layer, hardlink, omit parent directories, write
through a symlinked parent, carry names like the --layers view's own
(merged/, layers/, upto/) and an image xattr user.lazyroot.layer of their own.

- `--layer N` equals GNU tar: `tar -tvf` of the layer's uncompressed blob
  (names, types, modes, owners, sizes; a hardlink is the inode of its
  target) and `tar -xpf` of that blob alone (a tree_listing.py walk: types,
  modes, owners, sizes, contents, targets, hardlink groups, xattrs, mtimes;
  the whiteout files included, so `find -name '.wh.*'` lists them);
- `--upto N` equals `umoci unpack` of an OCI layout cut to the first N layers
  (its config's rootfs.diff_ids cut too), written by this test;
- `--layers`: merged/ equals the normal mount, layers/<N>-<12 hex>/ and
  upto/<N>/ equal the single views; its own directories are 0555 root-owned
  with the config's `created` as mtime;
- user.lazyroot.layer of every regular file and directory of the views is
  "<N> sha256:<digest>" of the layer that wrote it, computed here from the
  tar listings (symlinks and fifos list none: the kernel serves user.*
  xattrs of regular files and directories alone); the normal mount adds no
  such xattr (the only one is the image's own).
- Budgets: a layer of 100,000 entries mounts with --layer within the default
  budgets and is refused, naming image-entries, under a lower one; --layers
  over the budget is refused naming it.
Every mount is unmounted (also when a check fails)."""

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import unittest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path.insert(0, TOOLS)
import make_image as mi  # noqa: E402
import tree_listing  # noqa: E402
from pull_harness import LAZYROOT_BIN, class_store  # noqa: E402

XATTR = "user.lazyroot.layer"
CREATED = "2024-01-01T00:00:00Z"
CREATED_SEC = 1704067200
MTIME = 1700000000


def _tar(entries):
    """entries: (name, kind, payload, meta) with kind dir, file, symlink,
    hardlink; meta: optional dict of mode, uid, gid, mtime, xattrs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload, *rest in entries:
            meta = rest[0] if rest else {}
            ti = tarfile.TarInfo(name)
            ti.mtime = meta.get("mtime", MTIME)
            ti.uid, ti.gid = meta.get("uid", 0), meta.get("gid", 0)
            if meta.get("xattrs"):
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in meta["xattrs"].items()}
            data = None
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, meta.get("mode", 0o755)
            elif kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, payload, 0o777
            elif kind == "hardlink":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, payload, 0o644
            else:
                ti.size, ti.mode, data = len(payload), meta.get("mode", 0o644), io.BytesIO(payload)
            tf.addfile(ti, data)
    return buf.getvalue()


LAYERS = [
    [("./", "dir", None, {"mode": 0o755}), ("etc/", "dir", None), ("etc/app.conf", "file", b"app v1\n"),
     ("etc/old.conf", "file", b"old\n"), ("usr/", "dir", None), ("usr/lib/", "dir", None),
     ("usr/lib/libfoo.so", "file", b"foo v1\n" * 100), ("lib", "symlink", "usr/lib"),
     ("opt/data/a.txt", "file", b"a\n"),  # opt/ and opt/data/ implied
     ("opt/data/b.txt", "file", b"b\n"), ("var/", "dir", None, {"mode": 0o750, "uid": 5, "gid": 6}),
     ("var/secret", "file", b"s\n", {"mode": 0o600, "uid": 1000, "gid": 1000}),
     ("bin/", "dir", None), ("bin/tool", "file", b"tool\n", {"mode": 0o4755}),
     ("merged/", "dir", None), ("merged/x", "file", b"not the view's merged/\n"),
     ("layers", "file", b"not the view's layers/\n")],
    [("etc/", "dir", None, {"mode": 0o700}), ("etc/app.conf", "file", b"app v2\n"),
     ("etc/.wh.old.conf", "file", b"", {"mode": 0o600, "mtime": MTIME + 5}),
     ("opt/data/.wh..wh..opq", "file", b""), ("opt/data/c.txt", "file", b"c, after the opaque marker\n"),
     ("dup.txt", "file", b"first\n"), ("dup.txt", "file", b"second, the one tar leaves\n", {"mode": 0o640}),
     ("var/new.txt", "file", b"new\n"), ("var/hard.txt", "hardlink", "var/new.txt"),
     ("lib/libbar.so", "file", b"bar, through the link lib -> usr/lib\n"),
     ("spoof", "file", b"x\n", {"xattrs": {XATTR: "9 sha256:spoofed", "user.note": "kept"}}),
     ("upto/1", "file", b"not the view's upto/1\n")],
    [("etc/app.conf", "file", b"app v3, the one that wins\n"), (".wh.bin", "file", b""),
     ("deep/a/b/c/file", "file", b"deep\n"), ("var/.wh.secret", "file", b""),
     ("lib/libfoo.so", "file", b"foo v3\n" * 1000), ("fifo", "fifo", None)],
]


def _fix_fifo(layers):
    # tarfile has no "fifo" kind in _tar: add one by hand.
    out = []
    for entries in layers:
        plain = [e for e in entries if e[1] != "fifo"]
        data = _tar(plain)
        fifos = [e for e in entries if e[1] == "fifo"]
        if fifos:
            buf = io.BytesIO()
            with tarfile.open(fileobj=io.BytesIO(data)) as src, \
                    tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst:
                for m in src.getmembers():
                    dst.addfile(m, src.extractfile(m) if m.isfile() else None)
                for name, *_ in fifos:
                    ti = tarfile.TarInfo(name)
                    ti.type, ti.mode, ti.mtime = tarfile.FIFOTYPE, 0o644, MTIME
                    dst.addfile(ti)
            data = buf.getvalue()
        out.append(data)
    return out


def prefix(digest, n):
    """A digest prefix of n hex digits as a user types it: bare, unless it is
    all digits (then it would be a layer number: "sha256:" says it is not)."""
    hexpart = digest.split(":", 1)[1][:n]
    return hexpart if not hexpart.isdigit() else "sha256:" + hexpart


def _clean(name):
    return "/".join(c for c in name.split("/") if c not in ("", "."))


def writers(tars, upto):
    """{image path: layer (from 1) whose entry last defined it} after the
    layers 1..upto, from the tar listings: whiteouts and opaque markers
    delete what lower layers wrote, a directory entry re-defines the
    directory, an implied parent belongs to the layer that implied it, an
    entry through the symlink lib -> usr/lib lands below usr/lib."""
    out = {"": None}
    for i, t in enumerate(tars[:upto], 1):
        with tarfile.open(fileobj=io.BytesIO(t)) as tf:
            for m in tf.getmembers():
                name = _clean(m.name)
                if not name:
                    out[""] = i
                    continue
                if name.startswith("lib/"):
                    name = "usr/" + name
                base = name.split("/")[-1]
                parent = name.rsplit("/", 1)[0] if "/" in name else ""
                if base == ".wh..wh..opq":
                    for p in [p for p in out if p.startswith(parent + "/") and out[p] < i]:
                        del out[p]
                elif base.startswith(".wh."):
                    victim = (parent + "/" if parent else "") + base[4:]
                    for p in [p for p in out if (p == victim or p.startswith(victim + "/")) and out[p] < i]:
                        del out[p]
                else:
                    parts = name.split("/")
                    for k in range(1, len(parts)):
                        out.setdefault("/".join(parts[:k]), i)
                    if m.islnk():
                        out[name] = out[_clean(m.linkname)]
                    else:
                        out[name] = i
    return out


def literal_writers(tar, layer):
    """{path: layer} of one layer as tar -x unpacks it: everything is its."""
    out = {"": layer}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            parts = _clean(m.name).split("/")
            for k in range(1, len(parts) + 1):
                out["/".join(parts[:k])] = layer
    return out


class MountViews(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists("/dev/fuse"):
            raise unittest.SkipTest("no /dev/fuse")
        class_store(cls, "lazyroot-views-test-")
        cls.tars = _fix_fifo(LAYERS)
        cls.mounts = []
        cls.addClassCleanup(cls.unmount_all)
        # {reference: layer digests}
        cls.images = mi.image_variants(cls.tars, cls.reg.host, os.path.join(cls.tmp, "layout"), "demo/views",
                                       created=CREATED)
        for ref in cls.images:
            r = cls.run_lazyroot("pull", "-q", ref)
            assert r.returncode == 0, r.stderr
        cls.ref = next(iter(cls.images))
        cls.digests = cls.images[cls.ref]

    @classmethod
    def run_lazyroot(cls, *args, timeout=180):
        return subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    @classmethod
    def unmount_all(cls):
        for m in reversed(cls.mounts):
            cls.run_lazyroot("umount", m, timeout=60)

    def mount(self, ref, *opts):
        d = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)
        r = self.run_lazyroot("mount", *opts, ref, d)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.mounts.append(d)
        return d

    def umount(self, d):
        r = self.run_lazyroot("umount", d, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.mounts.remove(d)

    def listing(self, top, **kw):
        return tree_listing.listing(top, dir_mtime=False, ignore_xattrs=[XATTR], **kw)

    def assertSameListing(self, ours, theirs, label, **kw):
        a, b = self.listing(ours, **kw), self.listing(theirs, **kw)
        d = tree_listing.diff(a, b, "lazyroot " + label, "oracle")
        if d:
            self.fail("%s differs (%d vs %d entries):\n%s" % (label, len(a), len(b), d))
        return a

    def layer_tar_path(self, i):
        p = os.path.join(self.tmp, "layer%d.tar" % i)
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(self.tars[i - 1])
        return p

    def gnu_tar_extract(self, i):
        d = os.path.join(self.tmp, "gnu-tar-layer%d" % i)
        if not os.path.isdir(d):
            os.makedirs(d)
            subprocess.run(["tar", "-xpf", self.layer_tar_path(i), "-C", d, "--numeric-owner", "--same-owner",
                            "--xattrs", "--xattrs-include=*"], check=True)
        return d

    def umoci_cut(self, n):
        """umoci unpack of an OCI layout (gzip) holding the first n layers."""
        if shutil.which("umoci") is None or os.geteuid() != 0:
            self.skipTest("umoci unpack as root is the --upto oracle")
        bundle = os.path.join(self.tmp, "umoci-%d" % n)
        if not os.path.isdir(bundle):
            layers = [mi.Layer(t, mi._compress(t, "gzip", 6), "gzip") for t in self.tars[:n]]
            layout = mi.write_oci_layout(os.path.join(self.tmp, "cut-%d" % n),
                                         mi.build_image(layers, fmt="oci", created=CREATED), tag="v1")
            r = subprocess.run(["umoci", "unpack", "--image", layout + ":v1", bundle], capture_output=True, text=True,
                               timeout=180)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        return os.path.join(bundle, "rootfs")

    def assertLayerXattrs(self, top, expected, digests, label):
        """Every regular file and directory below top has XATTR naming the
        layer expected[path] (paths relative to top)."""
        got, want = {}, {}
        for path in expected:
            p = os.path.join(top, path) if path else top
            st = os.lstat(p)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                # The kernel serves user.* xattrs of these two only: not even listed on the others.
                self.assertNotIn(XATTR, os.listxattr(p, follow_symlinks=False), path)
                continue
            got[path] = os.getxattr(p, XATTR, follow_symlinks=False).decode()
            want[path] = "%d %s" % (expected[path], digests[expected[path] - 1])
        self.assertEqual(got, want, label)
        # Nothing is in the view that the oracle does not know of.
        seen = {""}
        for d, dirs, files in os.walk(top):
            for n in dirs + files:
                seen.add(os.path.relpath(os.path.join(d, n), top))
        self.assertEqual(seen, set(expected), label)

    # ------------------------------------------------------------ --layer N

    def tar_tv(self, i):
        """{name: (type char, perms, uid/gid, size, link target)} of GNU tar -tvf, the last entry of a name."""
        out = {}
        lines = subprocess.run(["tar", "--numeric-owner", "--quoting-style=literal", "-tvf", self.layer_tar_path(i)],
                               check=True, capture_output=True, text=True).stdout.splitlines()
        for line in lines:
            perms, owner, size, _date, _time, rest = line.split(None, 5)
            target = None
            if perms[0] == "l":
                rest, target = rest.split(" -> ", 1)
            elif perms[0] == "h":
                rest, target = rest.split(" link to ", 1)
            out[_clean(rest)] = (perms[0], perms[1:], owner, int(size), target)
        return out

    def check_layer_view(self, mnt, i, digests):
        # GNU tar's listing: names, types, modes, owners, sizes.
        for name, (kind, perms, owner, size, target) in self.tar_tv(i).items():
            p = os.path.join(mnt, name) if name else mnt
            st = os.lstat(p)
            if kind == "h":
                self.assertEqual(st.st_ino, os.lstat(os.path.join(mnt, _clean(target))).st_ino, name)
                continue
            self.assertEqual(stat.filemode(st.st_mode), kind + perms, name)
            self.assertEqual("%d/%d" % (st.st_uid, st.st_gid), owner, name)
            if kind == "-":
                self.assertEqual(st.st_size, size, name)
            if kind == "l":
                self.assertEqual(os.readlink(p), target, name)
        # GNU tar's extraction of the blob alone: contents, whiteout files, xattrs, mtimes.
        self.assertSameListing(mnt, self.gnu_tar_extract(i), "--layer %d" % i, root_attrs=False)
        self.assertLayerXattrs(mnt, literal_writers(self.tars[i - 1], i), digests, "--layer %d" % i)

    def test_layer_views_equal_gnu_tar(self):
        for i in (1, 2, 3):
            with self.subTest(layer=i):
                # By number, and by digest prefix for the last one.
                arg = str(i) if i < 3 else prefix(self.digests[i - 1], 12)
                mnt = self.mount(self.ref, "--layer", arg)
                try:
                    self.check_layer_view(mnt, i, self.digests)
                    found = subprocess.run(["find", mnt, "-name", ".wh.*"], check=True, capture_output=True,
                                           text=True).stdout.split()
                    want = {"1": [], "2": ["etc/.wh.old.conf", "opt/data/.wh..wh..opq"],
                            "3": [".wh.bin", "var/.wh.secret"]}[str(i)]
                    self.assertEqual(sorted(os.path.relpath(f, mnt) for f in found), want)
                finally:
                    self.umount(mnt)

    def test_layer_view_details(self):
        mnt = self.mount(self.ref, "--layer", "sha256:" + self.digests[1][7:15])
        try:
            wh = os.lstat(os.path.join(mnt, "etc/.wh.old.conf"))
            self.assertTrue(stat.S_ISREG(wh.st_mode))
            self.assertEqual((wh.st_size, stat.S_IMODE(wh.st_mode), wh.st_mtime), (0, 0o600, MTIME + 5))
            with open(os.path.join(mnt, "dup.txt"), "rb") as f:
                self.assertEqual(f.read(), b"second, the one tar leaves\n")
            self.assertEqual(os.lstat(os.path.join(mnt, "var/hard.txt")).st_ino,
                             os.lstat(os.path.join(mnt, "var/new.txt")).st_ino)
            self.assertEqual(os.lstat(os.path.join(mnt, "var/new.txt")).st_nlink, 2)
            self.assertTrue(os.path.isdir(os.path.join(mnt, "lib")))  # no symlink in this layer alone
            # The image's own xattr of that name is replaced in a view, the others kept.
            self.assertEqual(os.getxattr(os.path.join(mnt, "spoof"), XATTR).decode(), "2 " + self.digests[1])
            self.assertEqual(os.getxattr(os.path.join(mnt, "spoof"), "user.note"), b"kept")
        finally:
            self.umount(mnt)

    # ------------------------------------------------------------ --upto N

    def test_upto_views_equal_umoci_of_the_cut_image(self):
        for n in (1, 2, 3):
            with self.subTest(upto=n):
                # The last by digest prefix: up to and including that layer.
                mnt = self.mount(self.ref, "--upto", str(n) if n != 2 else prefix(self.digests[1], 6))
                try:
                    self.assertSameListing(mnt, self.umoci_cut(n), "--upto %d" % n)
                    self.assertLayerXattrs(mnt, writers(self.tars, n), self.digests, "--upto %d" % n)
                finally:
                    self.umount(mnt)

    # ------------------------------------------------------------ --layers

    def test_layers_view_of_every_image(self):
        normal = self.mount(self.ref)
        singles = {}
        try:
            for i in (1, 2, 3):
                singles["layers", i] = self.listing(self.mount(self.ref, "--layer", str(i)))
                singles["upto", i] = self.listing(self.mount(self.ref, "--upto", str(i)))
            normal_listing = self.listing(normal)
            # The normal mount adds no xattr: the only one of that name is the image's.
            having = []
            for d, dirs, files in os.walk(normal):
                for n in dirs + files + ["."]:
                    p = os.path.join(d, n)
                    if any(x.startswith("user.lazyroot") for x in os.listxattr(p, follow_symlinks=False)):
                        having.append(os.path.relpath(p, normal))
            self.assertEqual(having, ["spoof"])
            self.assertEqual(os.getxattr(os.path.join(normal, "spoof"), XATTR), b"9 sha256:spoofed")
            self.assertEqual(sorted(os.listdir(normal)),
                             sorted(["dup.txt", "deep", "etc", "fifo", "layers", "lib", "merged", "opt", "spoof",
                                     "upto", "usr", "var"]))
        finally:
            for m in list(self.mounts):
                self.umount(m)

        for ref, digests in self.images.items():
            with self.subTest(image=ref):
                mnt = self.mount(ref, "--layers")
                try:
                    names = ["%d-%s" % (i, digests[i - 1][7:19]) for i in (1, 2, 3)]
                    self.assertEqual(sorted(os.listdir(mnt)), ["layers", "merged", "upto"])
                    self.assertEqual(sorted(os.listdir(os.path.join(mnt, "layers"))), names)
                    self.assertEqual(sorted(os.listdir(os.path.join(mnt, "upto"))), ["1", "2", "3"])
                    for d in ("", "layers", "upto"):
                        st = os.lstat(os.path.join(mnt, d))
                        self.assertEqual((oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime),
                                         (oct(stat.S_IFDIR | 0o555), 0, 0, CREATED_SEC), d)
                        self.assertNotIn(XATTR, os.listxattr(os.path.join(mnt, d)))
                    self.assertEqual(self.listing(os.path.join(mnt, "merged")), normal_listing)
                    for i in (1, 2, 3):
                        self.assertEqual(self.listing(os.path.join(mnt, "layers", names[i - 1])),
                                         singles["layers", i], "layers/%s" % names[i - 1])
                        self.assertEqual(self.listing(os.path.join(mnt, "upto", str(i))), singles["upto", i],
                                         "upto/%d" % i)
                        self.assertLayerXattrs(os.path.join(mnt, "layers", names[i - 1]),
                                               literal_writers(self.tars[i - 1], i), digests, names[i - 1])
                        self.assertLayerXattrs(os.path.join(mnt, "upto", str(i)), writers(self.tars, i), digests,
                                               "upto/%d" % i)
                    self.assertLayerXattrs(os.path.join(mnt, "merged"), writers(self.tars, 3), digests, "merged")
                    # Names like the view's own live below their layer.
                    with open(os.path.join(mnt, "layers", names[0], "merged", "x"), "rb") as f:
                        self.assertEqual(f.read(), b"not the view's merged/\n")
                finally:
                    self.umount(mnt)

    # ------------------------------------------------------------ selector and errors

    def test_bad_selectors_are_refused_before_mounting(self):
        d = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)
        for opts, says in ((["--layer", "0"], "has 3 layers"), (["--layer", "4"], "has 3 layers"),
                           (["--upto", "abc"], "at least 4 hex digits"), (["--layer", "xyzw"], "hex"),
                           (["--layer", "beefbeef"], "no layer")):
            r = self.run_lazyroot("mount", *opts, self.ref, d)
            self.assertEqual(r.returncode, 2, (opts, r.stderr))  # a usage error
            self.assertIn(says, r.stderr.decode(), opts)
        r = self.run_lazyroot("mount", "--layer", "1", "--upto", "2", self.ref, d)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(os.listdir(d), [])  # nothing was mounted there

    def test_ls_and_cat_take_digest_prefixes(self):
        r = self.run_lazyroot("cat", "--layer", prefix(self.digests[1], 10), self.ref, "dup.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"second, the one tar leaves\n")
        r = self.run_lazyroot("cat", "--upto", "sha256:" + self.digests[1][7:17], self.ref, "etc/app.conf")
        self.assertEqual((r.returncode, r.stdout), (0, b"app v2\n"), r.stderr)
        r = self.run_lazyroot("ls", "--layer", prefix(self.digests[2], 4), self.ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(".wh.bin", r.stdout.decode().split())
        r = self.run_lazyroot("ls", "--upto", "0", self.ref)
        self.assertEqual(r.returncode, 2)
        self.assertIn("has 3 layers", r.stderr.decode())

    # ------------------------------------------------------------ budgets

    def test_a_layer_of_100k_entries(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for k in range(100000):
                ti = tarfile.TarInfo("d%03d/f%05d" % (k // 1000, k))
                ti.mtime = MTIME
                tf.addfile(ti, io.BytesIO(b""))
        t = buf.getvalue()
        layer = mi.Layer(t, mi._compress(t, "gzip", 1), "gzip")
        image = mi.build_image([layer], fmt="oci", created=CREATED)
        ref = "oci:%s:v1" % mi.write_oci_layout(os.path.join(self.tmp, "layout-100k"), image, tag="v1")
        r = self.run_lazyroot("pull", "-q", ref, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        d = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)
        r = self.run_lazyroot("mount", "--limit", "image-entries=50000", "--layer", "1", ref, d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("image-entries", r.stderr.decode())
        # merged 100,100 + layer 100,100 + upto/1 100,100 nodes: over 250,000.
        r = self.run_lazyroot("mount", "--limit", "image-entries=250000", "--layers", ref, d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("image-entries", r.stderr.decode())
        self.assertEqual(os.listdir(d), [])
        mnt = self.mount(ref, "--layer", "1")
        try:
            self.assertEqual(len(os.listdir(mnt)), 100)
            self.assertEqual(len(os.listdir(os.path.join(mnt, "d042"))), 1000)
        finally:
            self.umount(mnt)


if __name__ == "__main__":
    unittest.main()
