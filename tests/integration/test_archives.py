#!/usr/bin/env python3
"""Archives in and out (issue 17 item 7): `lazyroot pull docker-archive:FILE[:ref]`
and `oci-archive:FILE[:tag]`, `lazyroot save IMAGE oci:DIR[:tag] | oci-archive:FILE[:tag]
| docker-archive:FILE[:ref]`.

Oracles, none of them lazyroot's code: skopeo writes the archives from a real
registry (tests/tools/registry.py) and reads what save wrote; umoci unpacks a
saved layout; a `docker save` archive in both of docker's forms (legacy
<id>/layer.tar with a symlink for a repeated layer, and docker 25's OCI layout
plus manifest.json) is built here with Python's tarfile; GNU tar extracts its
layers for the expected tree; sha256sum-style hashing in Python checks digests.
Hostile archives each fail with a message naming the archive and the member,
and leave the store as it was.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import tree_listing  # noqa: E402
from pull_harness import PullTestCase, store_listing  # noqa: E402

HAVE_SKOPEO = bool(shutil.which("skopeo"))
HAVE_UMOCI = bool(shutil.which("umoci"))
ROOT = os.geteuid() == 0


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def make_tar(path, members):
    """members: (name, bytes) for a file, (name, None, target) for a symlink,
    (name, b"", None, size) for a header whose size is a lie."""
    with open(path, "wb") as out:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for m in members:
                ti = tarfile.TarInfo(m[0])
                ti.mtime = 0
                if len(m) >= 3 and m[1] is None:
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = m[2]
                    tf.addfile(ti)
                else:
                    ti.size = len(m[1])
                    tf.addfile(ti, io.BytesIO(m[1]))
    return path


FILES_A = [{"path": "etc", "type": "dir"}, {"path": "etc/hostname", "content": "alpha\n"},
           {"path": "bin", "type": "dir"}, {"path": "bin/tool", "content": "#!/bin/sh\necho hi\n", "mode": 0o755},
           {"path": "bin/link", "type": "symlink", "target": "tool"},
           {"path": "data", "type": "dir", "uid": 1000, "gid": 1000},
           {"path": "data/owned", "content": "x" * 5000, "uid": 1000, "gid": 100}]
FILES_B = [{"path": "etc/motd", "content": "second layer\n"},
           {"path": "bin/hard", "type": "hardlink", "target": "bin/tool"}]


def docker_config(layers):
    cfg = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
           "config": {"Cmd": ["/bin/tool"], "Env": ["PATH=/bin"]},
           "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
           "history": [{"created_by": "layer %d" % i} for i in range(len(layers))]}
    return json.dumps(cfg, separators=(",", ":")).encode()


def legacy_docker_save(path, images):
    """docker save before 25: <id>/layer.tar (uncompressed), <id>/json,
    <id>/VERSION, <config hex>.json, manifest.json, repositories; a layer
    repeated within an image is a symlink to the first copy, as docker
    writes it. images: [(repo_tags, [Layer])]."""
    members, manifest, written = [], [], {}
    for tags, layers in images:
        config = docker_config(layers)
        cfg_name = sha(config)[7:] + ".json"
        members.append((cfg_name, config))
        names = []
        for i, l in enumerate(layers):
            lid = hashlib.sha256((sha(config) + str(i)).encode()).hexdigest()
            name = lid + "/layer.tar"
            if l.diff_id in written:
                members.append((name, None, "../" + written[l.diff_id]))
            else:
                members.append((name, l.tar))
                written[l.diff_id] = name
            members.append((lid + "/VERSION", b"1.0"))
            members.append((lid + "/json", json.dumps({"id": lid}).encode()))
            names.append(name)
        manifest.append({"Config": cfg_name, "RepoTags": tags, "Layers": names})
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return make_tar(path, members)


def docker25_save(path, tags, layers, compress=False):
    """docker save 25+: an OCI layout (blobs/sha256, index.json, oci-layout)
    plus manifest.json naming the blobs; layers uncompressed (or gzip)."""
    config = docker_config(layers)
    blobs = {sha(config): config}
    names = []
    for l in layers:
        data = l.compressed if compress else l.tar
        blobs[sha(data)] = data
        names.append("blobs/sha256/" + sha(data)[7:])
    m = {"schemaVersion": 2, "mediaType": mi.OCI_MANIFEST,
         "config": {"mediaType": mi.OCI_CONFIG, "digest": sha(config), "size": len(config)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
                     "digest": sha(blobs_key), "size": len(blobs[sha(blobs_key)])}
                    for blobs_key in [(l.compressed if compress else l.tar) for l in layers]]}
    mb = json.dumps(m).encode()
    blobs[sha(mb)] = mb
    members = [("blobs/sha256/" + d[7:], b) for d, b in blobs.items()]
    members.append(("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    members.append(("index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": mi.OCI_MANIFEST, "digest": sha(mb), "size": len(mb)}]}).encode()))
    members.append(("manifest.json", json.dumps([{"Config": "blobs/sha256/" + sha(config)[7:],
                                                   "RepoTags": tags, "Layers": names}]).encode()))
    return make_tar(path, members)


def expected_manifest(config, layer_blobs):
    """The manifest lazyroot synthesizes for a docker archive, written here
    independently: compact JSON, Go's OCI field order."""
    def desc(mt, data):
        return '{"mediaType":"%s","digest":"%s","size":%d}' % (mt, sha(data), len(data))
    layers = ",".join(desc("application/vnd.oci.image.layer.v1.tar" +
                           ("+gzip" if b[:2] == b"\x1f\x8b" else ""), b) for b in layer_blobs)
    return ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            '"config":%s,"layers":[%s]}' % (desc("application/vnd.oci.image.config.v1+json", config),
                                             layers)).encode()


class ArchiveTest(PullTestCase):
    @classmethod
    def setUpClass(cls):
        reg = cls.class_registry("plain")
        cls.layers = [mi.build_layer(FILES_A), mi.build_layer(FILES_B)]
        cls.image = mi.build_image(cls.layers, config={"Cmd": ["/bin/tool"]})
        mi.push(mi.RegistryClient(reg.host, "http"), "demo/app", "v1", cls.image)
        cls.ref = "http://%s/demo/app:v1" % reg.host

    # ------------------------------------------------------------ helpers

    def skopeo(self, *args):
        if not HAVE_SKOPEO:
            self.skipTest("skopeo not installed")
        r = subprocess.run(["skopeo", "--insecure-policy"] + list(args), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, "skopeo %s failed: %s" % (" ".join(args), r.stderr[-2000:]))
        return r.stdout

    def extract(self, image, name):
        if not ROOT:
            self.skipTest("extract keeps owners only as root")
        out = os.path.join(self.workdir("out"), name)
        self.assertOk(self.lazyroot("extract", image, out, timeout=120), "lazyroot extract %s" % image)
        return out

    def assertSameTree(self, a, b, name_b):
        kw = dict(dir_mtime=False)
        d = tree_listing.diff(tree_listing.listing(a, **kw), tree_listing.listing(b, **kw), "lazyroot", name_b)
        if d:
            self.fail("lazyroot's tree differs from %s:\n%s" % (name_b, d))

    def gnu_tar_tree(self, layers, name):
        """The layers (no whiteouts) unpacked in order by GNU tar."""
        out = os.path.join(self.workdir("gnutar"), name)
        os.makedirs(out)
        for i, l in enumerate(layers):
            p = os.path.join(self.tmp, "%s-%d.tar" % (name, i))
            with open(p, "wb") as f:
                f.write(l.tar)
            r = subprocess.run(["tar", "-xpf", p, "-C", out, "--same-owner", "--numeric-owner"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def pulled_digest(self, image):
        r = self.pull_ok(image, "-q")
        return r.stdout.strip().splitlines()[-1]

    def stored_manifest(self, digest):
        with open(os.path.join(self.root, "blobs", "sha256", digest[7:]), "rb") as f:
            return json.load(f)

    # ------------------------------------------------------------ pull from archives

    def test_skopeo_archives_pull_as_the_registry_image(self):
        d_tar = os.path.join(self.tmp, "d.tar")
        o_tar = os.path.join(self.tmp, "o.tar")
        src = "docker://" + self.ref[len("http://"):]
        self.skopeo("copy", "-q", "--src-tls-verify=false", src, "docker-archive:%s:demo/app:v1" % d_tar)
        self.skopeo("copy", "-q", "--src-tls-verify=false", src, "oci-archive:%s:v1" % o_tar)
        reg_digest = self.pulled_digest(self.ref)
        self.assertEqual(reg_digest, self.image.digest)
        # oci-archive: the registry's manifest, byte for byte.
        self.assertEqual(self.pulled_digest("oci-archive:%s:v1" % o_tar), self.image.digest)
        # docker-archive: skopeo stored the layers uncompressed; the synthesized
        # manifest names them by their sha256, which is each DiffID.
        d_digest = self.pulled_digest("docker-archive:%s:demo/app:v1" % d_tar)
        layers = [l["digest"] for l in self.stored_manifest(d_digest)["layers"]]
        self.assertEqual(layers, [l.diff_id for l in self.layers])
        # Without a ref, the archive's only image; the same manifest.
        self.assertEqual(self.pulled_digest("docker-archive:" + d_tar), d_digest)
        reg_tree = self.extract(self.ref, "registry")
        self.assertSameTree(self.extract("docker-archive:%s:demo/app:v1" % d_tar, "docker"), reg_tree,
                            "the registry image's extract")
        self.assertSameTree(self.extract("oci-archive:%s:v1" % o_tar, "oci"), reg_tree,
                            "the registry image's extract")
        self.assertSameTree(reg_tree, self.gnu_tar_tree(self.layers, "expected"), "GNU tar")

    def test_hand_built_docker_save_both_forms(self):
        base = mi.build_layer(FILES_A, compression="none")
        top = mi.build_layer(FILES_B, compression="none")
        other = mi.build_layer([{"path": "other", "content": "o\n"}], compression="none")
        # Legacy form, two images, the first repeating its base layer (a symlink).
        legacy = legacy_docker_save(os.path.join(self.tmp, "legacy.tar"),
                                    [(["app:1", "example.com/team/app:latest"], [base, top, base]),
                                     (["other:2"], [other])])
        r = self.pull("docker-archive:" + legacy)
        self.assertFails(r, 2)
        self.assertIn("holds 2 images", r.stderr)
        self.assertIn("app:1", r.stderr)
        d1 = self.pulled_digest("docker-archive:%s:app:1" % legacy)  # docker.io/library/app:1
        config = docker_config([base, top, base])
        want = expected_manifest(config, [base.tar, top.tar, base.tar])
        self.assertEqual(d1, sha(want))
        with open(os.path.join(self.root, "blobs", "sha256", d1[7:]), "rb") as f:
            self.assertEqual(f.read(), want)
        self.assertEqual(self.pulled_digest("docker-archive:%s:example.com/team/app" % legacy), d1)
        self.assertEqual(self.pulled_digest("docker-archive:%s:@0" % legacy), d1)
        d2 = self.pulled_digest("docker-archive:%s:@1" % legacy)
        self.assertEqual(self.pulled_digest("docker-archive:%s:docker.io/library/other:2" % legacy), d2)
        r = self.pull("docker-archive:%s:@2" % legacy)
        self.assertFails(r)
        self.assertIn("no image @2", r.stderr)
        r = self.pull("docker-archive:%s:nope:1" % legacy)
        self.assertFails(r)
        self.assertIn("no image tagged", r.stderr)
        self.assertSameTree(self.extract("docker-archive:%s:app:1" % legacy, "legacy"),
                            self.gnu_tar_tree([base, top, base], "legacy-gnutar"), "GNU tar")

        # Docker 25's form, uncompressed and gzip layers.
        for compress in (False, True):
            name = "d25-%s" % ("gz" if compress else "tar")
            path = docker25_save(os.path.join(self.tmp, name + ".tar"), ["app:25"], [base, top], compress)
            d = self.pulled_digest("docker-archive:" + path)
            blobs = [l.compressed if compress else l.tar for l in (base, top)]
            self.assertEqual(d, sha(expected_manifest(docker_config([base, top]), blobs)))
            self.assertSameTree(self.extract("docker-archive:" + path, name),
                                self.gnu_tar_tree([base, top], name + "-gnutar"), "GNU tar")

    # ------------------------------------------------------------ save

    def test_save_oci_layout_read_by_umoci_and_skopeo(self):
        self.pull_ok(self.ref, "-q")
        layout = os.path.join(self.tmp, "layout")
        r = self.lazyroot("save", self.ref, "oci:%s:v1" % layout)
        self.assertOk(r, "lazyroot save")
        self.assertIn(self.image.digest, r.stdout)
        # Every blob byte-exact: its name is its sha256.
        names = os.listdir(os.path.join(layout, "blobs", "sha256"))
        for n in names:
            self.assertEqual(file_sha(os.path.join(layout, "blobs", "sha256", n)), "sha256:" + n)
        self.assertEqual(sorted("sha256:" + n for n in names),
                         sorted([self.image.digest, self.image.config.digest] + [l.digest for l in self.image.layers]))
        raw = self.skopeo("inspect", "--raw", "oci:%s:v1" % layout)
        self.assertEqual(sha(raw.encode()), self.image.digest)
        info = json.loads(self.skopeo("inspect", "oci:%s:v1" % layout))
        self.assertEqual(info["Digest"], self.image.digest)
        self.assertEqual(info["Layers"], [l.digest for l in self.image.layers])
        if HAVE_UMOCI and ROOT:
            bundle = os.path.join(self.tmp, "bundle")
            r = subprocess.run(["umoci", "unpack", "--image", "%s:v1" % layout, bundle], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertSameTree(self.extract(self.ref, "ours"), os.path.join(bundle, "rootfs"), "umoci unpack")

        # Added to: another tag joins, the existing entry stays; saving a tag
        # again replaces its entry.
        other = docker25_save(os.path.join(self.tmp, "other.tar"), ["o:1"],
                              [mi.build_layer([{"path": "o", "content": "o"}], compression="none")])
        od = self.pulled_digest("docker-archive:" + other)
        self.assertOk(self.lazyroot("save", "docker-archive:" + other, "oci:%s:other" % layout))
        self.assertOk(self.lazyroot("save", self.ref, "oci:%s:v1" % layout))
        with open(os.path.join(layout, "index.json")) as f:
            entries = json.load(f)["manifests"]
        self.assertEqual([(e["digest"], e["annotations"]["org.opencontainers.image.ref.name"]) for e in entries],
                         [(od, "other"), (self.image.digest, "v1")])
        self.assertEqual(json.loads(self.skopeo("inspect", "oci:%s:other" % layout))["Digest"], od)
        self.assertEqual(self.pulled_digest("oci:%s:other" % layout), od)

    def test_concurrent_saves_into_one_layout_keep_every_tag(self):
        # Each save reads index.json, adds its tag and writes it back: without
        # the layout's lock, saves running at once lose each other's tags.
        # Both cases: a new layout (all race to create it) and an existing one.
        self.pull_ok(self.ref, "-q")
        for case in ("new", "existing"):
            layout = os.path.join(self.tmp, "race-" + case)
            if case == "existing":
                self.assertOk(self.lazyroot("save", self.ref, "oci:%s:first" % layout))
            tags = ["t%d" % i for i in range(8)]
            procs = [self.popen("save", self.ref, "oci:%s:%s" % (layout, t)) for t in tags]
            for t, p in zip(tags, procs):
                rc, _, err = self.finish(p)
                self.assertEqual(rc, 0, "save %s (%s layout): %s" % (t, case, err))
            with open(os.path.join(layout, "index.json")) as f:
                names = sorted(e["annotations"]["org.opencontainers.image.ref.name"]
                               for e in json.load(f)["manifests"])
            want = sorted(tags + (["first"] if case == "existing" else []))
            self.assertEqual(names, want, "tags in the %s layout after concurrent saves" % case)
            self.assertEqual(json.loads(self.skopeo("inspect", "oci:%s:t7" % layout))["Digest"], self.image.digest)
            leftovers = [n for n in os.listdir(self.tmp) if n.startswith("race-" + case + ".tmp")]
            self.assertEqual(leftovers, [], "temp layouts left behind")

    def test_save_archives_read_back_by_skopeo(self):
        self.pull_ok(self.ref, "-q")
        o_tar = os.path.join(self.tmp, "out-oci.tar")
        self.assertOk(self.lazyroot("save", self.ref, "oci-archive:%s:v1" % o_tar))
        copy = os.path.join(self.tmp, "copy")
        self.skopeo("copy", "-q", "oci-archive:%s:v1" % o_tar, "oci:%s:v1" % copy)
        with open(os.path.join(copy, "index.json")) as f:
            self.assertEqual(json.load(f)["manifests"][0]["digest"], self.image.digest)
        self.assertEqual(sorted(os.listdir(os.path.join(copy, "blobs", "sha256"))),
                         sorted(d[7:] for d in [self.image.digest, self.image.config.digest] +
                                [l.digest for l in self.image.layers]))

        d_tar = os.path.join(self.tmp, "out-docker.tar")
        self.assertOk(self.lazyroot("save", self.ref, "docker-archive:%s:saved/app:v2" % d_tar))
        with tarfile.open(d_tar) as tf:
            manifest = json.load(tf.extractfile("manifest.json"))
            self.assertEqual(manifest[0]["RepoTags"], ["saved/app:v2"])
            config = tf.extractfile(manifest[0]["Config"]).read()
            self.assertEqual(sha(config), self.image.config.digest)
            self.assertEqual([sha(tf.extractfile(n).read()) for n in manifest[0]["Layers"]],
                             [l.digest for l in self.image.layers])  # the gzip blobs as stored
        # skopeo reads it (decompressing the layers: compare by DiffID).
        copy2 = os.path.join(self.tmp, "copy2")
        self.skopeo("copy", "-q", "docker-archive:%s:saved/app:v2" % d_tar, "oci:%s:v2" % copy2)
        info = json.loads(self.skopeo("inspect", "--config", "oci:%s:v2" % copy2))
        self.assertEqual(info["rootfs"]["diff_ids"], [l.diff_id for l in self.layers])
        # And lazyroot reads it back to the same tree.
        if ROOT:
            self.assertSameTree(self.extract("docker-archive:%s:saved/app:v2" % d_tar, "back"),
                                self.extract(self.ref, "orig"), "the registry image's extract")

    def test_save_failure_leaves_nothing(self):
        self.pull_ok(self.ref, "-q")
        # A layer blob gone from the store: every form fails, nothing appears.
        os.unlink(os.path.join(self.root, "blobs", "sha256", self.image.layers[1].digest[7:]))
        out = self.workdir("dest")
        for dest in ("oci:%s/layout:v1" % out, "oci-archive:%s/o.tar" % out, "docker-archive:%s/d.tar" % out):
            r = self.lazyroot("save", self.ref, dest)
            self.assertFails(r)
            self.assertIn(self.image.layers[1].digest, r.stderr)
            self.assertEqual(os.listdir(out), [], "save to %s left files behind" % dest)
        # A corrupt blob (right size, wrong bytes) is found while streaming.
        self.pull_ok(self.ref, "-q")
        p = os.path.join(self.root, "blobs", "sha256", self.image.layers[0].digest[7:])
        with open(p, "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 1]))
        for dest in ("oci:%s/layout:v1" % out, "oci-archive:%s/o.tar" % out):
            r = self.lazyroot("save", self.ref, dest)
            self.assertFails(r)
            self.assertIn("does not match its digest", r.stderr)
            self.assertEqual(os.listdir(out), [], "save to %s left files behind" % dest)

    def test_cli(self):
        r = self.lazyroot("save", "--help", root=False)
        self.assertOk(r)
        for s in ("oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", "docker-archive:FILE[:REF]"):
            self.assertIn(s, r.stdout)
        r = self.lazyroot("pull", "--help", root=False)
        for s in ("oci-archive:FILE", "docker-archive:FILE"):
            self.assertIn(s, r.stdout)
        self.pull_ok(self.ref, "-q")
        r = self.lazyroot("save", self.ref, "example.com/x:1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("pushing to a registry is not supported", r.stderr)

    # ------------------------------------------------------------ hostile archives

    def test_hostile_archives(self):
        layer = mi.build_layer([{"path": "f", "content": "x"}], compression="none")
        config = docker_config([layer])
        cfg_name = sha(config)[7:] + ".json"

        def manifest(layers=("l/layer.tar",), cfg=cfg_name):
            return ("manifest.json", json.dumps([{"Config": cfg, "RepoTags": ["h:1"], "Layers": list(layers)}]).encode())

        ok_members = [(cfg_name, config), ("l/layer.tar", layer.tar)]
        cases = {
            "dotdot-member": ([("../escape", b"x")] + ok_members + [manifest()], ["../escape", "climbs"]),
            "absolute-member": ([("/etc/passwd", b"x")] + ok_members + [manifest()], ["/etc/passwd", "absolute"]),
            "manifest-dotdot": (ok_members + [manifest(["../../etc/passwd"])], ["../../etc/passwd", "climbs"]),
            "symlink-out": ([(cfg_name, config), ("l/layer.tar", None, "../../../etc/passwd"), manifest()],
                            ["l/layer.tar", "outside the archive"]),
            "symlink-absolute": ([(cfg_name, config), ("l/layer.tar", None, "/etc/passwd"), manifest()],
                                 ["l/layer.tar", "outside the archive"]),
            "symlink-loop": ([(cfg_name, config), ("l/layer.tar", None, "b"), ("l/b", None, "layer.tar"),
                              manifest()], ["l/layer.tar", "loop"]),
            "duplicate": (ok_members + [manifest(), manifest()], ["manifest.json", "appears twice"]),
            "missing-member": (ok_members + [manifest(["l/nope.tar"])], ["l/nope.tar", "not in the archive"]),
            "missing-config": ([("l/layer.tar", layer.tar), manifest()], [cfg_name, "not in the archive"]),
            "huge-manifest": (ok_members + [("manifest.json", b"[" + b" " * (5 << 20) + b"]")],
                              ["manifest.json", "bytes"]),
            "bad-manifest": (ok_members + [("manifest.json", b'{"Config": 1}')], ["manifest.json", "array"]),
            "diffid-lie": ([(cfg_name, config), ("l/layer.tar", layer.tar[:-1024] + b"\1" + b"\0" * 1023),
                            manifest()], ["digest"]),
            "layer-count": (ok_members + [manifest(["l/layer.tar", "l/layer.tar"])], ["2 layers", "1 DiffIDs"]),
        }
        self.pull_ok(self.ref, "-q")
        before = store_listing(self.root)
        for name, (members, needles) in cases.items():
            with self.subTest(name):
                path = make_tar(os.path.join(self.tmp, name + ".tar"), members)
                r = self.pull("docker-archive:" + path)
                self.assertNotEqual(r.returncode, 0, "%s was accepted" % name)
                self.assertIn("docker-archive:" + path, r.stderr)
                for n in needles:
                    self.assertIn(n, r.stderr)
                self.assertEqual(store_listing(self.root), before, "%s changed the store" % name)

        # A header whose size runs past the end of the file.
        path = make_tar(os.path.join(self.tmp, "short.tar"), ok_members + [manifest()])
        with open(path, "rb") as f:
            data = f.read()
        at = data.index(b"l/layer.tar")  # the layer's header: cut inside its data
        with open(path, "wb") as f:
            f.write(data[:at + 512 + 600])
        r = self.pull("docker-archive:" + path)
        self.assertFails(r)
        self.assertIn("docker-archive:" + path, r.stderr)
        self.assertEqual(store_listing(self.root), before)
        # Not a tar at all; an oci-archive whose index names a missing blob.
        path = os.path.join(self.tmp, "noise.tar")
        with open(path, "wb") as f:
            f.write(os.urandom(4096))
        self.assertFails(self.pull("oci-archive:" + path))
        digest = "sha256:" + "ab" * 32
        path = make_tar(os.path.join(self.tmp, "oci-missing.tar"), [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps({"schemaVersion": 2, "manifests": [
                {"mediaType": mi.OCI_MANIFEST, "digest": digest, "size": 10}]}).encode())])
        r = self.pull("oci-archive:" + path)
        self.assertFails(r)
        self.assertIn("oci-archive:" + path, r.stderr)
        self.assertIn(digest, r.stderr)
        self.assertEqual(store_listing(self.root), before)

        # Legitimate look-alikes: the same member named twice by Layers (a
        # repeated layer) is one blob, verified each time.
        config2 = docker_config([layer, layer])
        path = make_tar(os.path.join(self.tmp, "twice.tar"), [
            (sha(config2)[7:] + ".json", config2), ("l/layer.tar", layer.tar),
            ("manifest.json", json.dumps([{"Config": sha(config2)[7:] + ".json", "RepoTags": None,
                                           "Layers": ["l/layer.tar", "./l//layer.tar"]}]).encode())])
        self.pull_ok("docker-archive:" + path)


if __name__ == "__main__":
    unittest.main()
