#!/usr/bin/env python3
"""lazyroot layers: per-layer counts and byte figures of an image pulled from
a real registry (gzip, zstd and uncompressed layers; adds, modifications,
whiteouts, an opaque directory, hardlinks, a path written twice in one
layer), checked against figures computed here from Python tarfile listings
of the layer tars (never from lazyroot's output), plus a hand-worked
expectation of the totals; the config history matched to layers the way
docker does (empty_layer entries skipped); inspect's layer list and history."""

import io
import json
import os
import posixpath
import sys
import tarfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402


def f(path, size, ch="x"):
    return {"path": path, "content": ch * size}


L1 = [{"path": "etc", "type": "dir"}, f("etc/a", 100), f("etc/b", 200),
      {"path": "usr/share/doc", "type": "dir"}, f("usr/share/doc/x", 400), f("usr/share/doc/y", 50),
      {"path": "usr/share/doc/sub", "type": "dir"}, f("usr/share/doc/sub/old", 3),
      {"path": "opt/d", "type": "dir"}, f("opt/d/old", 4),
      f("usr/bin/tool", 300), f("big/keep", 1000), f("hl/orig", 500),
      {"path": "hl/link", "type": "hardlink", "target": "hl/orig"},
      {"path": "gone", "type": "dir"}, f("gone/f", 70), {"path": "bin/sh", "type": "symlink", "target": "busybox"}]
L2 = [f("usr/share/doc/sub/new", 6), f("opt/.wh.d", 0), f("opt/d/new", 8), f("etc/a", 150, "y"), f("etc/.wh.b", 0), f("usr/share/doc/.wh..wh..opq", 0), f("usr/share/doc/z", 60),
      f("hl/.wh.orig", 0), f(".wh.gone", 0), f("new/file", 80), {"path": "new/link", "type": "hardlink",
                                                                   "target": "new/file"},
      {"path": "etc", "type": "dir", "mode": 0o700}]
L3 = [f("new/file", 90, "z"), f("etc/a", 10, "z"), f("hl/.wh.link", 0), f("same/x", 5), f("same/.wh.x", 0),
      f("dup", 20), f("dup", 30, "w"), f("./usr//bin/../bin/tool", 7),
      f("usr/share/doc/sub", 9), f("opt/d", 11)]
# Hand-worked: shadowed L1 = etc/a 100 + etc/b 200 + doc/x 400 + doc/y 50 + doc/sub/old 3 + opt/d/old 4 +
# gone/f 70 + hl/orig 500 (its last name goes in L3) + usr/bin/tool 300 = 1627; L2 = etc/a 150 + doc/sub/new 6
# + opt/d/new 8 (new/file's bytes live on in new/link) = 164; L3 = dup's first 20 = 20. The directories
# doc/sub (opaque parent) and opt/d (whited out) survive L2 because L2 writes into them, so L3's files at
# their paths are modifications, not additions.
HAND_SHADOWED = [1627, 164, 20]
HAND_ADDED_MODIFIED = [(12, 0), (5, 1), (2, 5)]

HISTORY = [{"created_by": "/bin/sh -c #(nop) ADD file:base in /"},
           {"created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": True},
           {"created_by": "RUN modify things"},
           {"created_by": "LABEL x=y", "empty_layer": True},
           {"created_by": "COPY . /"},
           {"created_by": "CMD [\"sh\"]", "empty_layer": True}]


def clean(path):
    parts = []
    for c in path.split("/"):
        if c == "..":
            if parts:
                parts.pop()
        elif c not in ("", "."):
            parts.append(c)
    return "/".join(parts)


def oracle(layer_tars):
    """The per-layer figures from tarfile listings, by the documented rules:
    entries count at their paths with the parents' symlinks (as the tree
    holds them at that moment) expanded, as the merge applies them."""
    tree = {}   # path -> [layer, is_dir, data id or None, symlink target or None]

    def resolve(path):
        """path with its parents' symlinks expanded; the last component kept."""
        if not path:
            return path
        comps = path.split("/")
        last = comps.pop()
        out, todo, steps = [], comps, 0
        while todo:
            c, todo = todo[0], todo[1:]
            if c in ("", "."):
                continue
            if c == "..":
                out = out[:-1]
                continue
            e = tree.get("/".join(out + [c]))
            if e is not None and e[3] is not None:
                steps += 1
                assert steps < 256, "symlink loop in the test image"
                if e[3].startswith("/"):
                    out = []
                todo = e[3].split("/") + todo
            else:
                out.append(c)
        return "/".join(out + [last])
    data = {}   # data id -> [layer, size, names]
    out = [dict(entries=0, added=0, modified=0, deleted=0, opaque=0, bytes_added=0, bytes_shadowed=0)
           for _ in layer_tars]

    def drop(path):
        d = tree.pop(path)[2]
        if d is not None:
            data[d][2] -= 1
            if data[d][2] == 0:
                out[data[d][0]]["bytes_shadowed"] += data[d][1]

    def holds(path):
        return any(q.startswith(path + "/") for q in tree)

    def below(path, keep_layer=None):
        # deepest first: a directory still holding a path of this layer stays
        pre = path + "/" if path else ""
        for p in sorted((p for p in tree if p.startswith(pre)), key=lambda p: -p.count("/")):
            if keep_layer is None or (tree[p][0] < keep_layer and not (tree[p][1] and holds(p))):
                drop(p)

    for i, raw in enumerate(layer_tars):
        members = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()
        out[i]["entries"] = len(members)
        for m in members:
            p = resolve(clean(m.name))
            if not p or posixpath.basename(p).startswith(".wh."):
                continue
            old = tree.get(p)
            if not m.isdir():
                if old is None:
                    out[i]["added"] += 1
                elif old[0] < i:
                    out[i]["modified"] += 1
            if old is not None and old[1] and m.isdir():
                old[0] = i
                continue
            d = None
            if m.isreg():
                d = len(data)
                data[d] = [i, m.size, 1]
                out[i]["bytes_added"] += m.size
            elif m.islnk():
                t = tree.get(resolve(clean(m.linkname)))
                if t is not None and t[2] is not None:
                    d = t[2]
                    data[d][2] += 1
            if old is not None:
                drop(p)
                if old[1]:
                    below(p)
            tree[p] = [i, m.isdir(), d, m.linkname if m.issym() else None]
        for m in members:
            p = clean(m.name)
            base = posixpath.basename(p)
            if not base.startswith(".wh."):
                continue
            parent = posixpath.dirname(resolve(p))
            if base == ".wh..wh..opq":
                out[i]["opaque"] += 1
                below(parent, i)
                continue
            out[i]["deleted"] += 1
            target = posixpath.join(parent, base[4:])
            below(target, i)
            if target in tree and tree[target][0] < i and not (tree[target][1] and holds(target)):
                drop(target)
    return out


class Layers(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        cls.layers = [mi.build_layer(L1, compression="gzip"), mi.build_layer(L2, compression="zstd"),
                      mi.build_layer(L3, compression="none")]
        cls.oci = mi.build_image(cls.layers, fmt="oci", history=HISTORY)
        mi.push(client, "demo/layers", "v1", cls.oci)
        cls.docker = mi.build_image(cls.layers, fmt="docker")
        mi.push(client, "demo/layers", "docker", cls.docker)

    def ref(self, tag):
        return "http://%s/demo/layers:%s" % (self.reg.host, tag)

    def layers_json(self, tag):
        r = self.lazyroot("layers", "--format", "json", self.ref(tag))
        self.assertOk(r, "lazyroot layers")
        return json.loads(r.stdout)

    def check(self, got, image):
        want = oracle([l.tar for l in self.layers])
        self.assertEqual(len(got["layers"]), 3)
        for i, (g, w, l, blob) in enumerate(zip(got["layers"], want, self.layers, image.layers)):
            self.assertEqual(g["index"], i + 1)
            self.assertEqual(g["digest"], blob.digest)
            self.assertEqual(g["diff_id"], l.diff_id)
            self.assertEqual(g["media_type"], blob.media_type)
            self.assertEqual(g["compressed_size"], len(l.compressed))
            self.assertEqual(g["uncompressed_size"], len(l.tar))
            for k, v in w.items():
                self.assertEqual(g[k], v, "layer %d %s" % (i + 1, k))
        self.assertEqual([g["bytes_shadowed"] for g in got["layers"]], HAND_SHADOWED)
        self.assertEqual([(g["added"], g["modified"]) for g in got["layers"]], HAND_ADDED_MODIFIED)
        shipped = sum(w["bytes_added"] for w in want)
        wasted = sum(w["bytes_shadowed"] for w in want)
        self.assertEqual(got["bytes_shipped"], shipped)
        self.assertEqual(got["bytes_wasted"], wasted)
        self.assertEqual(got["bytes_merged"], shipped - wasted)
        self.assertAlmostEqual(got["efficiency"], (shipped - wasted) / shipped, places=9)

    def test_oci_counts_match_tarfile_oracle_and_history(self):
        self.pull_ok(self.ref("v1"))
        got = self.layers_json("v1")
        self.check(got, self.oci)
        # sanity of the oracle itself on the obvious figures
        self.assertEqual([l["deleted"] for l in got["layers"]], [0, 4, 2])
        self.assertEqual([l["opaque"] for l in got["layers"]], [0, 1, 0])
        self.assertEqual([l["created_by"] for l in got["layers"]],
                         ["/bin/sh -c #(nop) ADD file:base in /", "RUN modify things", "COPY . /"])

    def test_docker_media_types(self):
        self.pull_ok(self.ref("docker"))
        got = self.layers_json("docker")
        self.check(got, self.docker)
        self.assertEqual(got["layers"][1]["media_type"], "application/vnd.docker.image.rootfs.diff.tar.zstd")
        self.assertEqual(got["layers"][0]["created_by"], "make_image.py layer 0")

    def test_entries_count_where_the_merge_put_them_through_symlinked_parents(self):
        # lib -> usr/lib and etc/link -> /usr/lib: layer 2 writes lib/a (a
        # modification of usr/lib/a, not a new file "lib/a"), layer 3
        # replaces usr/lib/b through the absolute link, hardlinks to it
        # through lib, whites out lib/a and makes lib/sub opaque.
        s1 = [{"path": "usr/lib", "type": "dir"}, f("usr/lib/a", 10), {"path": "lib", "type": "symlink",
              "target": "usr/lib"}, f("etc/x", 5), f("usr/lib/sub/old", 7)]
        s2 = [f("lib/a", 20), f("lib/b", 30), {"path": "etc/link", "type": "symlink", "target": "/usr/lib"}]
        s3 = [f("etc/link/b", 40), {"path": "lib/h", "type": "hardlink", "target": "lib/b"}, f("lib/.wh.a", 0),
              f("lib/sub/.wh..wh..opq", 0), f("lib/sub/new", 3)]
        layers = [mi.build_layer(s1, compression="gzip"), mi.build_layer(s2, compression="zstd"),
                  mi.build_layer(s3, compression="none")]
        mi.push(mi.RegistryClient(self.reg.host), "demo/layers", "links", mi.build_image(layers, fmt="oci"))
        self.pull_ok(self.ref("links"))
        got = self.layers_json("links")["layers"]
        want = oracle([l.tar for l in layers])
        for i, (g, w) in enumerate(zip(got, want)):
            for k, v in w.items():
                self.assertEqual(g[k], v, "layer %d %s" % (i + 1, k))
        # The oracle agrees with a hand count (usr/lib/a 10 and usr/lib/sub/old 7; lib/a 20 and lib/b 30).
        self.assertEqual([(g["added"], g["modified"]) for g in got], [(4, 0), (2, 1), (2, 1)])
        self.assertEqual([g["bytes_shadowed"] for g in got], [17, 50, 0])
        self.assertEqual([g["deleted"] for g in got], [0, 0, 1])

    def test_oci_layout(self):
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), self.oci, tag="v1")
        self.pull_ok("oci:%s:v1" % layout)
        r = self.lazyroot("layers", "--format", "json", "oci:%s:v1" % layout)
        self.assertOk(r)
        self.check(json.loads(r.stdout), self.oci)

    def test_table_and_help(self):
        self.pull_ok(self.ref("v1"))
        r = self.lazyroot("layers", self.ref("v1"))
        self.assertOk(r)
        self.assertIn("CREATED BY", r.stdout)
        self.assertIn("RUN modify things", r.stdout)
        self.assertIn("Wasted bytes: 1811", r.stdout)
        self.assertIn("efficiency:", r.stdout)
        h = self.lazyroot("layers", "--help")
        self.assertOk(h)
        for word in ("SHADOWED", "empty_layer", "--format", "efficiency"):
            self.assertIn(word, h.stdout)

    def test_missing_image_and_bad_format(self):
        r = self.lazyroot("layers", self.ref("v1"))
        self.assertFails(r, 1)
        self.assertIn("not in the store", r.stderr)
        self.assertFails(self.lazyroot("layers", "--format", "xml", self.ref("v1")), 2)

    def test_image_entries_budget(self):
        self.pull_ok(self.ref("v1"))
        r = self.lazyroot("layers", "--limit", "image-entries=10", self.ref("v1"))
        self.assertFails(r, 1)
        self.assertIn("image-entries", r.stderr)
        self.assertOk(self.lazyroot("layers", "--limit", "image-entries=100", self.ref("v1")))

    def test_rebuilds_a_missing_index(self):
        self.pull_ok(self.ref("v1"))
        before = self.layers_json("v1")
        idx = os.path.join(self.root, "index", "sha256")
        for name in os.listdir(idx):
            os.unlink(os.path.join(idx, name))
        self.assertEqual(self.layers_json("v1"), before)

    def test_rebuilds_a_corrupt_index(self):
        self.pull_ok(self.ref("v1"))
        before = self.layers_json("v1")
        idx = os.path.join(self.root, "index", "sha256")
        for name in os.listdir(idx):
            path = os.path.join(idx, name)
            with open(path, "r+b") as fh:
                size = os.path.getsize(path)
                for off in (size // 2, size - 5):
                    fh.seek(off)
                    b = fh.read(1)
                    fh.seek(off)
                    fh.write(bytes([b[0] ^ 0xFF]))
        r = self.lazyroot("layers", "--format", "json", self.ref("v1"))
        self.assertOk(r)
        self.assertEqual(json.loads(r.stdout), before)
        self.assertIn("rebuilding it from the blob", r.stderr)

    def test_inspect_lists_layers_and_history(self):
        self.pull_ok(self.ref("v1"))
        got = self.inspect(self.ref("v1"))
        self.assertEqual([l["digest"] for l in got["Layers"]], [b.digest for b in self.oci.layers])
        self.assertEqual([l["index"] for l in got["Layers"]], [1, 2, 3])
        self.assertEqual([l["diffID"] for l in got["Layers"]], [l.diff_id for l in self.layers])
        self.assertEqual([l["createdBy"] for l in got["Layers"]],
                         ["/bin/sh -c #(nop) ADD file:base in /", "RUN modify things", "COPY . /"])
        self.assertEqual([h["created_by"] for h in got["History"]], [h["created_by"] for h in HISTORY])
        self.assertEqual([h.get("empty_layer", False) for h in got["History"]],
                         [h.get("empty_layer", False) for h in HISTORY])
        self.assertEqual([h.get("layer") for h in got["History"]], [1, None, 2, None, 3, None])


if __name__ == "__main__":
    unittest.main()
