#!/usr/bin/env python3
"""`lazyroot which`, `ls` and `cat` against independent oracles. An image of
three layers (gzip, zstd, gzip; written by Python tarfile) is pushed to a real
registry and pulled. Its layers replace a file twice, white out a file, make
a directory opaque and write through a symlinked parent directory
(`lib -> usr/lib`). Then

- `which --format json` equals a small Python walk over the layer tars
  (tarfile): every layer that touched the path or a parent, what it did, and
  which one wins;
- `ls -R` lists the paths of a GNU tar extraction of the layers, one after
  the other, with whiteouts and opaque directories applied;
- `cat` gives the bytes of the tar member the merged tree keeps."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import LAZYROOT_BIN, isolated_env  # noqa: E402


def _tar(entries):
    """entries: [(name, kind, payload)]: kind "dir", "file" (payload bytes) or
    "symlink" (payload target)."""
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
            else:
                ti.size, ti.mode = len(payload), 0o644
                tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


LAYERS = [
    [("./", "dir", None), ("etc/", "dir", None), ("etc/app.conf", "file", b"app v1\n"),
     ("etc/old.conf", "file", b"old\n"), ("usr/", "dir", None), ("usr/lib/", "dir", None),
     ("usr/lib/libfoo.so", "file", b"foo v1\n" * 100), ("lib", "symlink", "usr/lib"), ("opt/", "dir", None),
     ("opt/data/", "dir", None), ("opt/data/a.txt", "file", b"a\n"), ("opt/data/b.txt", "file", b"b\n"),
     ("var/", "dir", None), ("var/keep.txt", "file", b"keep\n")],
    [("etc/", "dir", None), ("etc/app.conf", "file", b"app v2\n"), ("etc/.wh.old.conf", "file", b""),
     ("opt/", "dir", None), ("opt/data/", "dir", None), ("opt/data/.wh..wh..opq", "file", b""),
     ("opt/data/c.txt", "file", b"c, after the opaque marker\n"), ("lib/libbar.so", "file", b"bar\n")],
    [("etc/", "dir", None), ("etc/app.conf", "file", b"app v3, the one that wins\n"),
     ("lib/libfoo.so", "file", b"foo v3\n" * 1000), ("var/new.txt", "file", b"new\n")],
]
QUERIES = ["etc/app.conf", "etc/old.conf", "opt/data/a.txt", "opt/data/c.txt", "lib/libfoo.so", "lib/libbar.so",
           "/usr/lib/libfoo.so", "var/keep.txt", "lib", "nowhere/at/all"]


def _clean(name):
    return "/".join(c for c in name.split("/") if c not in ("", "."))


def _under(a, b):
    """a is b or a directory above it."""
    return a == b or b.startswith(a + "/")


def oracle_which(tars, query):
    """Walks the layer tars with tarfile: (resolved, touches, winner) where a
    touch is (layer, action, path, type), layers from 1."""
    symlinks = {}
    for t in tars:
        with tarfile.open(fileobj=io.BytesIO(t)) as tf:
            for m in tf.getmembers():
                if m.issym():
                    symlinks[_clean(m.name)] = m.linkname

    def resolve_parents(path):
        parts = _clean(path).split("/")
        out = []
        for p in parts[:-1]:
            cur = "/".join(out + [p])
            if cur in symlinks:  # relative targets without "..", as this image has
                cur = "/".join(out + [_clean(symlinks[cur])])
            out = cur.split("/")
        return "/".join(out + [parts[-1]])

    q = _clean(query)
    resolved = resolve_parents(q)
    live = {}  # path -> layer whose entry is live there
    touches = []
    for i, t in enumerate(tars, 1):
        with tarfile.open(fileobj=io.BytesIO(t)) as tf:
            for m in tf.getmembers():
                name = _clean(m.name)
                if not name:
                    continue
                base = name.split("/")[-1]
                parent = name.rsplit("/", 1)[0] if "/" in name else ""
                if base == ".wh..wh..opq":
                    path = resolve_parents(parent + "/x").rsplit("/", 1)[0] if parent else ""
                    if not (path and (_under(path, q) or _under(path, resolved))):
                        continue
                    for p in list(live):
                        if live[p] < i and p != path and _under(path, p):
                            del live[p]
                    touches.append((i, "opaque", path, ""))
                elif base.startswith(".wh."):
                    path = resolve_parents((parent + "/" if parent else "") + base[4:])
                    if not (_under(path, q) or _under(path, resolved)):
                        continue
                    for p in list(live):
                        if live[p] < i and _under(path, p):
                            del live[p]
                    touches.append((i, "whiteout", path, ""))
                else:
                    path = resolve_parents(name)
                    if not (_under(path, q) or _under(path, resolved)):
                        continue
                    kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
                    touches.append((i, "replaced" if path in live else "created", path, kind))
                    live[path] = i
    # The winner: the last layer with a live entry at the resolved path, if
    # no parent of it was deleted after it (live keeps exactly that).
    return resolved, touches, live.get(resolved)


def extract_with_gnu_tar(tars, dest):
    """Extracts the layers bottom first with GNU tar, applying each layer's
    whiteouts and opaque markers to what the layers below left."""
    os.makedirs(dest)
    for i, t in enumerate(tars):
        path = os.path.join(os.path.dirname(dest), "layer%d.tar" % i)
        with open(path, "wb") as f:
            f.write(t)
        names = subprocess.run(["tar", "-tf", path], check=True, capture_output=True, text=True).stdout.split("\n")
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
        cls.tmp = tempfile.mkdtemp(prefix="lazyroot-which-test-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.env = isolated_env(os.path.join(cls.tmp, "home"))
        cls.reg = registry.start_registry("plain", os.path.join(cls.tmp, "registry"))
        cls.addClassCleanup(cls.reg.stop)
        cls.tars = [_tar(entries) for entries in LAYERS]
        comps = ["gzip", "zstd", "gzip"]
        layers = [mi.Layer(t, mi._compress(t, c, 6), c) for t, c in zip(cls.tars, comps)]
        cls.digests = [l.digest for l in layers]
        image = mi.build_image(layers, fmt="oci", config={"Cmd": ["/bin/sh"]})
        mi.push(mi.RegistryClient(cls.reg.host), "demo/which", "v1", image)
        cls.ref = "http://%s/demo/which:v1" % cls.reg.host
        cls.root = os.path.join(cls.tmp, "store")
        r = cls.run_lazyroot("pull", "-q", cls.ref)
        assert r.returncode == 0, r.stderr

    @classmethod
    def run_lazyroot(cls, *args):
        return subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env, capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    def lazyroot_ok(self, *args):
        r = self.run_lazyroot(*args)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout

    def test_which_equals_a_walk_over_the_layer_tars(self):
        for q in QUERIES:
            with self.subTest(path=q):
                got = json.loads(self.lazyroot_ok("which", "--format", "json", self.ref, q))
                resolved, touches, winner = oracle_which(self.tars, q)
                self.assertEqual(got["resolved"], "/" + resolved)
                self.assertEqual([(t["layer"], t["action"], t["path"].lstrip("/"), t["type"]) for t in got["touches"]],
                                 touches)
                for t in got["touches"]:
                    self.assertEqual(t["digest"], self.digests[t["layer"] - 1])
                if winner is None:
                    self.assertIsNone(got["winner"])
                else:
                    self.assertEqual(got["winner"], {"layer": winner, "digest": self.digests[winner - 1]})

    def test_which_tells_the_story_of_this_image(self):
        # What the oracle says, spelt out, so that both cannot be wrong together.
        self.assertEqual(oracle_which(self.tars, "lib/libfoo.so")[2], 3)
        self.assertEqual(oracle_which(self.tars, "lib/libbar.so")[0], "usr/lib/libbar.so")
        self.assertIsNone(oracle_which(self.tars, "etc/old.conf")[2])
        self.assertIsNone(oracle_which(self.tars, "opt/data/a.txt")[2])
        self.assertEqual(oracle_which(self.tars, "etc/app.conf")[2], 3)
        table = self.lazyroot_ok("which", self.ref, "lib/libfoo.so").decode()
        self.assertIn("resolved: /usr/lib/libfoo.so", table)
        self.assertIn("wins: layer 3 " + self.digests[2], table)
        table = self.lazyroot_ok("which", self.ref, "opt/data/a.txt").decode()
        self.assertIn("opaque", table)
        self.assertIn("wins: none", table)


if __name__ == "__main__":
    unittest.main()
