#!/usr/bin/env python3
"""`lazyroot which`, `ls` and `cat` against independent oracles. Three layers
(written by Python tarfile) make three images: OCI (gzip, zstd, gzip) and
Docker (none, gzip, zstd) media types pushed to a real registry, and OCI
(zstd, none, gzip) in an oci: layout; all are pulled. Its layers replace a file twice, white out a file, make
a directory opaque and write through a symlinked parent directory
(`lib -> usr/lib`). Then

- `which --format json` equals a small Python walk over the layer tars
  (tarfile): every layer that touched the path or a parent, what it did, and
  which one wins;
- `ls -R` lists the paths of a GNU tar extraction of the layers, one after
  the other, with whiteouts and opaque directories applied;
- `ls -R --upto N` does the same for the first N layers alone;
- `ls -R --layer N` lists what GNU tar lists of layer N's tar (whiteout
  files included), `-l` the modes, owners and sizes tarfile reads;
- `cat` gives the bytes of each regular file of that GNU tar extraction
  (written through the symlinked parent too), `cat
  --layer N` the bytes of layer N's member, `cat --upto N` those the first N
  layers leave."""

import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import LAZYROOT_BIN, class_store  # noqa: E402


def _tar(entries):
    """entries: [(name, kind, payload)]: kind "dir", "file" (payload bytes),
    "symlink" or "hardlink" (payload target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid = 1700000000, 0, 0
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, payload, 0o777
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, payload, 0o644
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(payload), 0o644
                tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


EVIL = "var/evil\x1b[31m\x1b]0;pwned\x07.txt"

LAYERS = [
    [("./", "dir", None), ("etc/", "dir", None), ("etc/app.conf", "file", b"app v1\n"),
     ("etc/old.conf", "file", b"old\n"), ("usr/", "dir", None), ("usr/lib/", "dir", None),
     ("usr/lib/libfoo.so", "file", b"foo v1\n" * 100), ("lib", "symlink", "usr/lib"), ("opt/", "dir", None),
     ("opt/data/", "dir", None), ("opt/data/a.txt", "file", b"a\n"), ("opt/data/b.txt", "file", b"b\n"),
     ("var/", "dir", None), ("var/keep.txt", "file", b"keep\n"), ("sbin/", "dir", None),
     ("sbin/tool", "file", b"tool v1, under the directory /sbin\n"),
     ("srv/", "dir", None), ("data", "symlink", "srv")],
    [("etc/", "dir", None), ("etc/app.conf", "file", b"app v2\n"), ("etc/.wh.old.conf", "file", b""),
     ("opt/", "dir", None), ("opt/data/", "dir", None), ("opt/data/.wh..wh..opq", "file", b""),
     ("opt/data/c.txt", "file", b"c, after the opaque marker\n"), ("lib/libbar.so", "file", b"bar\n"),
     ("data/x", "file", b"x, written through the link /data -> srv\n")],
    [("etc/", "dir", None), ("etc/app.conf", "file", b"app v3, the one that wins\n"),
     ("lib/libfoo.so", "file", b"foo v3\n" * 1000), ("var/new.txt", "file", b"new\n"),
     ("var/hard.txt", "hardlink", "var/new.txt"), ("usr/", "dir", None), ("usr/sbin/", "dir", None),
     ("usr/sbin/tool", "file", b"tool v3, after usrmerge\n"), (".wh.sbin", "file", b""),
     ("sbin", "symlink", "usr/sbin"), ("data/", "dir", None), ("data/y", "file", b"y, in the directory /data\n"), (EVIL, "file", b"a name that would recolour a terminal\n")],
]
QUERIES = ["etc/app.conf", "etc/old.conf", "opt/data/a.txt", "opt/data/c.txt", "lib/libfoo.so", "lib/libbar.so",
           "/usr/lib/libfoo.so", "var/keep.txt", "lib", "nowhere/at/all",
           "var/hard.txt", EVIL, "sbin/tool", "usr/sbin/tool", "sbin",
           "srv/x", "data/x", "data/y"]


def _clean(name):
    return "/".join(c for c in name.split("/") if c not in ("", "."))


def displayable(s):
    """What lazyroot prints of a name (index/status.h Displayable), for the
    ASCII control characters this image has."""
    return "".join("\\x%02x" % ord(c) if ord(c) < 0x20 or ord(c) == 0x7f else c for c in s)


def _under(a, b):
    """a is b or a directory above it."""
    return a == b or b.startswith(a + "/")


def oracle_which(tars, query):
    """Walks the layer tars with tarfile: (resolved, touches, winner) where a
    touch is (layer, action, path, type), layers from 1. Entry names go
    through the symlinks that exist when the entry comes (relative targets
    without "..", as this image has); the query through those at the end."""

    def resolve_parents(path, symlinks):
        parts = _clean(path).split("/")
        out = []
        for p in parts[:-1]:
            cur = "/".join(out + [p])
            if cur in symlinks:
                cur = "/".join(out + [_clean(symlinks[cur])])
            out = cur.split("/")
        return "/".join(out + [parts[-1]])

    def walk(visit):
        symlinks = {}  # image path -> target, as the layers so far leave it
        live = {}  # image path -> layer whose entry is live there
        for i, t in enumerate(tars, 1):
            with tarfile.open(fileobj=io.BytesIO(t)) as tf:
                for m in tf.getmembers():
                    name = _clean(m.name)
                    if not name:
                        continue
                    base = name.split("/")[-1]
                    parent = name.rsplit("/", 1)[0] if "/" in name else ""
                    if base == ".wh..wh..opq":
                        path = resolve_parents(parent + "/x", symlinks).rsplit("/", 1)[0] if parent else ""
                        gone = [p for p in live if live[p] < i and p != path and _under(path, p)]
                        visit(i, "opaque", path, "")
                    elif base.startswith(".wh."):
                        path = resolve_parents((parent + "/" if parent else "") + base[4:], symlinks)
                        gone = [p for p in live if live[p] < i and _under(path, p)]
                        visit(i, "whiteout", path, "")
                    else:
                        path = resolve_parents(name, symlinks)
                        kind = "dir" if m.isdir() else "symlink" if m.issym() else "hardlink" if m.islnk() else "file"
                        visit(i, "replaced" if path in live else "created", path, kind)
                        live[path] = i
                        symlinks.pop(path, None)
                        if m.issym():
                            symlinks[path] = m.linkname
                        continue
                    for p in gone:
                        del live[p]
                        symlinks.pop(p, None)
        return symlinks, live

    q = _clean(query)
    resolved = resolve_parents(q, walk(lambda *touch: None)[0])
    touches = []

    def visit(i, action, path, kind):
        if path and (_under(path, q) or _under(path, resolved)):
            touches.append((i, action, path, kind))

    live = walk(visit)[1]
    # The winner: the last layer with a live entry at the resolved path, if
    # no parent of it was deleted after it (live keeps exactly that).
    return resolved, touches, live.get(resolved)


def extracted_files(dest):
    """{image path: bytes} of the regular files of an extraction."""
    out = {}
    for d, _, files in os.walk(dest):
        for n in files:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, dest)] = f.read()
    return out


def extract_with_gnu_tar(tars, dest):
    """Extracts the layers bottom first with GNU tar, applying each layer's
    whiteouts and opaque markers to what the layers below left."""
    os.makedirs(dest)
    for i, t in enumerate(tars):
        path = os.path.join(os.path.dirname(dest), "layer%d.tar" % i)
        with open(path, "wb") as f:
            f.write(t)
        names = subprocess.run(["tar", "--quoting-style=literal", "-tf", path], check=True, capture_output=True, text=True).stdout.split("\n")
        for name in filter(None, names):
            name = _clean(name)
            base = name.split("/")[-1]
            parent = os.path.join(dest, os.path.dirname(name))
            if base == ".wh..wh..opq":
                for child in os.listdir(parent):
                    c = os.path.join(parent, child)
                    shutil.rmtree(c) if os.path.isdir(c) and not os.path.islink(c) else os.remove(c)
            elif base.startswith(".wh."):
                victim = os.path.join(parent, base[4:])
                if os.path.isdir(victim) and not os.path.islink(victim):
                    shutil.rmtree(victim)
                elif os.path.lexists(victim):
                    os.remove(victim)
        subprocess.run(["tar", "-xf", path, "-C", dest, "--exclude=.wh.*", "--no-same-owner"], check=True)
    out = set()
    for d, dirs, files in os.walk(dest):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), dest))
    return out


class WhichLsCat(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        class_store(cls, "lazyroot-which-test-")
        cls.tars = [_tar(entries) for entries in LAYERS]
        # {reference: layer digests}: OCI and Docker media types, every
        # compression in every position, from a registry and an oci: layout.
        cls.images = mi.image_variants(cls.tars, cls.reg.host, os.path.join(cls.tmp, "layout"), "demo/which",
                                       config={"Cmd": ["/bin/sh"]})
        for ref in cls.images:
            r = cls.run_lazyroot("pull", "-q", ref)
            assert r.returncode == 0, r.stderr
        cls.ref = next(iter(cls.images))
        cls.digests = cls.images[cls.ref]

    @classmethod
    def run_lazyroot(cls, *args):
        return subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env, capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    def lazyroot_ok(self, *args):
        r = self.run_lazyroot(*args)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout

    def test_which_equals_a_walk_over_the_layer_tars(self):
        for (ref, digests), q in itertools.product(self.images.items(), QUERIES):
            with self.subTest(image=ref, path=q):
                got = json.loads(self.lazyroot_ok("which", "--format", "json", ref, q))
                resolved, touches, winner = oracle_which(self.tars, q)
                self.assertEqual(got["resolved"], "/" + displayable(resolved))
                self.assertEqual([(t["layer"], t["action"], t["path"].lstrip("/"), t["type"]) for t in got["touches"]],
                                 [(l, a, displayable(p), k) for l, a, p, k in touches])
                for t in got["touches"]:
                    self.assertEqual(t["digest"], digests[t["layer"] - 1])
                if winner is None:
                    self.assertIsNone(got["winner"])
                else:
                    self.assertEqual(got["winner"], {"layer": winner, "digest": digests[winner - 1]})

    def test_which_tells_the_story_of_this_image(self):
        # What the oracle says, spelt out, so that both cannot be wrong together.
        self.assertEqual(oracle_which(self.tars, "lib/libfoo.so")[2], 3)
        self.assertEqual(oracle_which(self.tars, "lib/libbar.so")[0], "usr/lib/libbar.so")
        self.assertIsNone(oracle_which(self.tars, "etc/old.conf")[2])
        self.assertIsNone(oracle_which(self.tars, "opt/data/a.txt")[2])
        self.assertEqual(oracle_which(self.tars, "etc/app.conf")[2], 3)
        # /sbin/tool of layer 1 was below the directory /sbin, which layer 3 made a link.
        self.assertIn((1, "created", "sbin/tool", "file"), oracle_which(self.tars, "sbin/tool")[1])
        self.assertEqual(oracle_which(self.tars, "sbin/tool")[:3:2], ("usr/sbin/tool", 3))
        # /data/x of layer 2 went through the link /data -> srv that layer 3 made a directory.
        self.assertEqual(oracle_which(self.tars, "srv/x")[1][-1], (2, "created", "srv/x", "file"))
        self.assertEqual(oracle_which(self.tars, "srv/x")[2], 2)
        for ref, digests in self.images.items():
            table = self.lazyroot_ok("which", ref, "lib/libfoo.so").decode()
            self.assertIn("resolved: /usr/lib/libfoo.so", table)
            self.assertIn("wins: layer 3 " + digests[2], table)
        table = self.lazyroot_ok("which", self.ref, "opt/data/a.txt").decode()
        self.assertIn("opaque", table)
        self.assertIn("wins: none", table)


    def ls_paths(self, *args):
        got = json.loads(self.lazyroot_ok("ls", "-R", "--format", "json", *args))
        return {e["path"].lstrip("/") for e in got}

    def test_ls_recursive_equals_gnu_tar_extraction(self):
        for n in (1, 2, 3):
            with self.subTest(upto=n):
                want = extract_with_gnu_tar(self.tars[:n], os.path.join(self.tmp, "gnu-tar-%d" % n, "rootfs"))
                want = {displayable(p) for p in want}
                for ref in self.images:
                    self.assertEqual(self.ls_paths("--upto", str(n), ref), want, ref)
                    if n == 3:
                        self.assertEqual(self.ls_paths(ref), want, ref)
        # The table: one image path per line.
        table = self.lazyroot_ok("ls", "-R", self.ref).decode().split("\n")
        self.assertEqual({l.lstrip("/") for l in table if l}, want)

    def test_ls_layer_equals_gnu_tar_listing(self):
        for i, t in enumerate(self.tars, 1):
            with self.subTest(layer=i):
                path = os.path.join(self.tmp, "list%d.tar" % i)
                with open(path, "wb") as f:
                    f.write(t)
                names = subprocess.run(["tar", "--quoting-style=literal", "-tf", path], check=True, capture_output=True, text=True).stdout
                want = {displayable(_clean(n)) for n in names.split("\n")} - {""}
                got = json.loads(self.lazyroot_ok("ls", "-R", "--format", "json", "--layer", str(i), self.ref))
                self.assertEqual({e["path"].lstrip("/") for e in got}, want)
                with tarfile.open(fileobj=io.BytesIO(t)) as tf:
                    meta = {displayable(_clean(m.name)): (m.mode, m.uid, m.gid, m.size if m.isfile() else 0, m.mtime)
                            for m in tf.getmembers() if _clean(m.name) and not m.issym()}
                self.assertEqual({e["path"].lstrip("/"): (e["mode"], e["uid"], e["gid"], e["size"], e["mtime"])
                                  for e in got if e["type"] != "symlink"},
                                 meta)

    def test_ls_long_shows_mode_owner_size_and_link_target(self):
        lines = self.lazyroot_ok("ls", "-l", self.ref, "/").decode().splitlines()
        link = [l for l in lines if l.endswith(" lib -> usr/lib")]
        self.assertEqual(len(link), 1, lines)
        self.assertTrue(link[0].startswith("lrwxrwxrwx"), link[0])
        line = self.lazyroot_ok("ls", "-l", self.ref, "etc/app.conf").decode().strip()
        self.assertTrue(line.startswith("-rw-r--r--"), line)
        self.assertEqual(line.split()[1:4], ["0", "0", str(len(b"app v3, the one that wins\n"))])
        # Through the symlinked parent, listing the directory it points to.
        self.assertEqual(self.lazyroot_ok("ls", self.ref, "lib").decode().split(), ["libbar.so", "libfoo.so"])

    def test_cat_gives_the_tar_bytes(self):
        for n in (None, 1, 2):
            dest = os.path.join(self.tmp, "cat-%s" % n, "rootfs")
            extract_with_gnu_tar(self.tars[:n], dest)
            files = extracted_files(dest)
            if n != 1:  # written through the symlink lib -> usr/lib by layer 2
                self.assertIn("usr/lib/libbar.so", files)
            for ref, (path, data) in itertools.product(self.images, sorted(files.items())):
                with self.subTest(image=ref, upto=n, path=path):
                    args = ["--upto", str(n)] if n else []
                    self.assertEqual(self.lazyroot_ok("cat", *args, ref, path), data)
            if n is None:
                self.assertIn("var/hard.txt", files)
                self.assertIn(EVIL, files)
        self.assertEqual(self.lazyroot_ok("cat", self.ref, "lib/libfoo.so"), b"foo v3\n" * 1000)
        for i, t in enumerate(self.tars, 1):
            with tarfile.open(fileobj=io.BytesIO(t)) as tf:
                for m in tf.getmembers():
                    if not (m.isfile() or m.islnk()):
                        continue
                    for ref in self.images:
                        with self.subTest(image=ref, layer=i, member=m.name):
                            self.assertEqual(self.lazyroot_ok("cat", "--layer", str(i), ref, m.name),
                                             tf.extractfile(m).read())

    def test_hostile_names_are_escaped_in_every_output(self):
        for args in (("ls", "-R", self.ref), ("ls", "-l", self.ref, "var"), ("ls", "-R", "--layer", "3", self.ref),
                     ("which", self.ref, EVIL), ("which", "--format", "json", self.ref, EVIL),
                     ("ls", "-R", "--format", "json", self.ref)):
            with self.subTest(args=args):
                out = self.lazyroot_ok(*args)
                self.assertNotIn(b"\x1b", out)
                self.assertNotIn(b"\x07", out)
                shown = displayable(EVIL[len("var/"):]).encode()
                if "json" in args:  # JSON escapes the backslashes once more
                    shown = json.dumps(displayable(EVIL[len("var/"):])).encode()[1:-1]
                self.assertIn(shown, out)
        r = self.run_lazyroot("cat", self.ref, "var/evil\x1b[32mnot-there")
        self.assertEqual(r.returncode, 1)
        self.assertNotIn(b"\x1b", r.stderr)

    def test_missing_paths_and_non_files_fail_with_a_message(self):
        for args in (("cat", self.ref, "etc/old.conf"), ("cat", self.ref, "etc"), ("ls", self.ref, "opt/data/a.txt"),
                     ("cat", "--layer", "4", self.ref, "etc/app.conf")):
            with self.subTest(args=args):
                r = self.run_lazyroot(*args)
                self.assertNotEqual(r.returncode, 0)
                self.assertTrue(r.stderr.startswith(b"lazyroot: "), r.stderr)
                self.assertEqual(r.stdout, b"")


if __name__ == "__main__":
    unittest.main()
