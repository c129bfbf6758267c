#!/usr/bin/env python3
"""Builds OCI / Docker v2s2 test images and pushes them with the distribution API.

Building (pure, in memory):
    layer = build_layer([{"path": "etc/hello", "content": "hi\\n", "mode": 0o644},
                         {"path": "bin", "type": "dir"},
                         {"path": "bin/sh", "type": "symlink", "target": "busybox"}],
                        compression="gzip")          # gzip | none | zstd
    big = build_layer(random_mib=64, compression="none", seed=1)
    tar = gnu_tar(tree_dir, {"data/big.bin": mixed_bytes(20 << 20, seed=1)})
    want = gnu_untar(tar, oracle_dir, ["data/big.bin"])  # {name: bytes}
    at = data_offsets(tar)["data/big.bin"]    # its data's offset in the tar
    img = build_image([layer, big], fmt="oci",          # oci | docker
                      config={"Entrypoint": ["/bin/sh"], "Env": ["A=1"]},
                      platform="linux/amd64")
    idx = build_index([img_amd64, img_arm64], fmt="oci", attestation=True)

File entries: path, type (file|dir|symlink|hardlink|fifo; default file),
content (str|bytes), mode, uid, gid, target (symlink / hardlink), mtime.

Pushing:
    client = RegistryClient("127.0.0.1:5000", scheme="http",
                            username=None, password=None, ca_file=None)
    digests = push(client, "demo/hello", "v1", img_or_idx)
    # {"manifest": sha256:…, "config": …, "layers": […], "blobs": [all blob
    #  digests], "media_type": …} ; for an index additionally
    #  "index": sha256:…, "images": {"linux/amd64": {…per image…}},
    #  "attestations": [manifest digests]
The client answers Basic and Bearer (token) challenges itself and uploads each
blob with one POST + one PUT (monolithic), skipping blobs the registry has.

    write_oci_layout(dir, img_or_idx, tag="latest")  # oci-layout, index.json, blobs/

CLI (demo / bench):
    python3 make_image.py --registry HOST --repo demo/hello --tag v1 [--layers N] [--size-mib M]
prints the pushed digests as JSON.
"""

import argparse
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import re
import ssl
import subprocess
import sys
import tarfile
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

LAYER_TYPES = {
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
    ("docker", "zstd"): "application/vnd.docker.image.rootfs.diff.tar.zstd",
}


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Blob:
    """Bytes plus their descriptor fields."""

    def __init__(self, data, media_type):
        self.data = data
        self.media_type = media_type
        self.digest = sha256(data)
        self.size = len(data)
        self.diff_id = None  # set for layer blobs

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class Layer:
    """A layer before it is placed in an image: uncompressed tar + compression.
    The media type depends on the image format, so it is fixed by build_image."""

    def __init__(self, tar, compressed, compression):
        self.tar = tar
        self.compressed = compressed
        self.compression = compression
        self.diff_id = sha256(tar)
        self.digest = sha256(compressed)
        self.size = len(compressed)


class Image:
    """One manifest with its config and layer blobs."""

    def __init__(self, manifest, media_type, config, layers, platform):
        self.manifest = manifest          # bytes, exactly what is pushed
        self.media_type = media_type
        self.digest = sha256(manifest)
        self.config = config              # Blob
        self.layers = layers              # [Blob] with .diff_id
        self.platform = platform          # dict os/architecture[/variant]
        self.annotations = None

    def blobs(self):
        return [self.config] + self.layers

    def platform_str(self):
        p = self.platform
        return "/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)


class Index:
    """An OCI index or a Docker manifest list over several Images."""

    def __init__(self, manifest, media_type, images, attestations):
        self.manifest = manifest
        self.media_type = media_type
        self.digest = sha256(manifest)
        self.images = images              # [Image]
        self.attestations = attestations  # [Image] (platform unknown/unknown)


# ---------------------------------------------------------------- layers

def _compress(tar, compression, level):
    if compression == "none":
        return tar
    if compression == "gzip":
        return gzip.compress(tar, compresslevel=level, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-%d" % min(max(level, 1), 19)], input=tar,
                              check=True, capture_output=True).stdout
    raise ValueError("unknown compression %r" % compression)


def build_tar(files):
    """Uncompressed tar bytes for a list of file entries (see module doc)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in files:
            kind = e.get("type", "file")
            ti = tarfile.TarInfo(e["path"].lstrip("/"))
            ti.mtime = e.get("mtime", 1700000000)
            ti.uid, ti.gid = e.get("uid", 0), e.get("gid", 0)
            data = None
            if kind == "file":
                data = e.get("content", b"")
                if isinstance(data, str):
                    data = data.encode()
                ti.size = len(data)
                ti.mode = e.get("mode", 0o644)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = e.get("mode", 0o755)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e["target"]
                ti.mode = e.get("mode", 0o777)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e["target"].lstrip("/")
                ti.mode = e.get("mode", 0o644)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                ti.mode = e.get("mode", 0o644)
            else:
                raise ValueError("unknown entry type %r for %s" % (kind, e["path"]))
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def random_bytes(n, seed=0):
    """n incompressible bytes, reproducible from seed."""
    return random.Random(seed).randbytes(n)


def mixed_bytes(n, seed=0, line=b"line %08d of a compressible file\n"):
    """n bytes, reproducible from seed: 300 kB runs of numbered text lines
    (compressible) between 200 kB runs of random bytes (not)."""
    rng = random.Random(seed)
    text = b"".join(line % i for i in range(n // 30))
    out = bytearray()
    while len(out) < n:
        out += text[len(out) % len(text):][:300000] + rng.randbytes(200000)
    return bytes(out[:n])


def gnu_tar(tree, files):
    """The tar GNU tar writes of files ({"data/name": bytes}), each written
    first below the directory tree (made here); numeric owners, names sorted:
    a layer as build tools make it, not by Python's tarfile."""
    for name, body in files.items():
        path = os.path.join(tree, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
    tops = sorted({name.split("/")[0] for name in files})
    return subprocess.run(["tar", "-C", tree, "--numeric-owner", "--sort=name", "-cf", "-"] + tops,
                          check=True, capture_output=True).stdout


def gnu_untar(tar, dest, names):
    """{name: bytes} of names as GNU tar extracts tar into the directory dest
    (made here): the oracle a mount's reads are compared with."""
    os.makedirs(dest)
    subprocess.run(["tar", "-C", dest, "-xf", "-"], input=tar, check=True)
    out = {}
    for name in names:
        with open(os.path.join(dest, name), "rb") as f:
            out[name] = f.read()
    return out


def data_offsets(tar):
    """{member name: where its data starts in the tar stream}."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return {m.name: m.offset_data for m in tf.getmembers()}


def build_layer(files=None, random_mib=0, compression="gzip", seed=0, level=None):
    """A Layer from file entries and/or one random file of random_mib MiB
    (named random-<seed>.bin). Random data is gzipped at level 1 unless
    level says otherwise: it does not shrink anyway."""
    files = list(files or [])
    if random_mib:
        files.append({"path": "random-%d.bin" % seed,
                      "content": random_bytes(int(random_mib * 1024 * 1024), seed)})
    if level is None:
        level = 1 if random_mib else 6
    tar = build_tar(files)
    return Layer(tar, _compress(tar, compression, level), compression)


class StreamingLayer:
    """A write-only file for tarfile's stream mode ("w|"): hashes the tar
    (the DiffID) and gzips it into memory as it is written, so a layer of
    millions of entries or gigabytes of zeros never exists uncompressed.
    layer() closes it and returns a gzip Layer."""

    def __init__(self, level=6):
        self.sha = hashlib.sha256()
        self.out = io.BytesIO()
        self.gz = gzip.GzipFile(fileobj=self.out, mode="wb", compresslevel=level, mtime=0)

    def write(self, b):
        self.sha.update(b)
        self.gz.write(b)
        return len(b)

    def layer(self):
        self.gz.close()
        layer = Layer.__new__(Layer)
        layer.tar = None
        layer.compressed = self.out.getvalue()
        layer.compression = "gzip"
        layer.diff_id = "sha256:" + self.sha.hexdigest()
        layer.digest = sha256(layer.compressed)
        layer.size = len(layer.compressed)
        return layer


def default_files(tag="hello"):
    """A small but varied root file system."""
    return [
        {"path": "bin", "type": "dir"},
        {"path": "bin/hello", "content": "#!/bin/sh\necho hello from %s\n" % tag, "mode": 0o755},
        {"path": "bin/hi", "type": "symlink", "target": "hello"},
        {"path": "etc", "type": "dir"},
        {"path": "etc/hello.txt", "content": "hello %s\n" % tag},
        {"path": "etc/hello-link.txt", "type": "hardlink", "target": "etc/hello.txt"},
        {"path": "etc/secret", "content": "s3cret\n", "mode": 0o600, "uid": 1000, "gid": 1000},
        {"path": "tmp", "type": "dir", "mode": 0o1777},
    ]


# ---------------------------------------------------------------- images

def parse_platform(p):
    if isinstance(p, dict):
        return dict(p)
    parts = p.split("/")
    d = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        d["variant"] = parts[2]
    return d


def _canon(obj):
    return json.dumps(obj, indent=2, sort_keys=False).encode()


def build_image(layers, fmt="oci", config=None, platform="linux/amd64", created="2024-01-01T00:00:00Z",
                annotations=None, history=None):
    """An Image. config holds the container config keys (Entrypoint, Cmd, Env,
    WorkingDir, User, ExposedPorts, Labels, StopSignal); history, when given,
    is the config's history array as is (else one entry per layer)."""
    if fmt not in ("oci", "docker"):
        raise ValueError("fmt must be oci or docker")
    plat = parse_platform(platform)
    cfg = {"created": created, "architecture": plat["architecture"], "os": plat["os"]}
    if "variant" in plat:
        cfg["variant"] = plat["variant"]
    cfg["config"] = dict(config or {})
    cfg["rootfs"] = {"type": "layers", "diff_ids": [l.diff_id for l in layers]}
    cfg["history"] = history if history is not None else [
        {"created": created, "created_by": "make_image.py layer %d" % i} for i in range(len(layers))]
    config_blob = Blob(_canon(cfg), OCI_CONFIG if fmt == "oci" else DOCKER_CONFIG)
    layer_blobs = []
    for l in layers:
        b = Blob(l.compressed, LAYER_TYPES[(fmt, l.compression)])
        b.diff_id = l.diff_id
        layer_blobs.append(b)
    m = {"schemaVersion": 2,
         "mediaType": OCI_MANIFEST if fmt == "oci" else DOCKER_MANIFEST,
         "config": config_blob.descriptor(),
         "layers": [b.descriptor() for b in layer_blobs]}
    if annotations:
        m["annotations"] = annotations
    return Image(_canon(m), m["mediaType"], config_blob, layer_blobs, plat)


def _attestation_for(img):
    """A BuildKit-style attestation manifest (in-toto layer) for img."""
    statement = {"_type": "https://in-toto.io/Statement/v0.1",
                 "predicateType": "https://spdx.dev/Document",
                 "subject": [{"name": "pkg:docker/test", "digest": {"sha256": img.digest[7:]}}],
                 "predicate": {"spdxVersion": "SPDX-2.3"}}
    layer = Blob(_canon(statement), "application/vnd.in-toto+json")
    cfg = Blob(_canon({"architecture": "unknown", "os": "unknown", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}), OCI_CONFIG)
    d = layer.descriptor()
    d["annotations"] = {"in-toto.io/predicate-type": "https://spdx.dev/Document"}
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg.descriptor(), "layers": [d]}
    att = Image(_canon(m), OCI_MANIFEST, cfg, [layer], {"os": "unknown", "architecture": "unknown"})
    att.annotations = {"vnd.docker.reference.digest": img.digest,
                       "vnd.docker.reference.type": "attestation-manifest"}
    return att


def build_index(images, fmt="oci", attestation=False):
    """An OCI index (fmt=oci) or Docker manifest list (fmt=docker). With
    attestation=True, one attestation manifest (platform unknown/unknown) per
    image is added after the images, as BuildKit does."""
    entries = []
    for img in images:
        d = {"mediaType": img.media_type, "digest": img.digest, "size": len(img.manifest),
             "platform": img.platform}
        entries.append(d)
    atts = [_attestation_for(img) for img in images] if attestation else []
    for att in atts:
        entries.append({"mediaType": att.media_type, "digest": att.digest, "size": len(att.manifest),
                        "annotations": att.annotations, "platform": att.platform})
    m = {"schemaVersion": 2, "mediaType": OCI_INDEX if fmt == "oci" else DOCKER_LIST,
         "manifests": entries}
    return Index(_canon(m), m["mediaType"], list(images), atts)


# ---------------------------------------------------------------- registry client

class PushError(RuntimeError):
    pass


def _parse_challenge(header):
    """'Bearer realm="x",service="y"' -> ("bearer", {realm, service, ...})."""
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    """Minimal distribution API client: Basic, Bearer, TLS with a CA file."""

    def __init__(self, host, scheme="http", username=None, password=None, ca_file=None):
        self.host = host
        self.scheme = scheme
        self.username = username
        self.password = password
        self.ca_file = ca_file
        self._auth = {}  # scope -> Authorization header value

    def _conn(self, host=None):
        host = host or self.host
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(host, timeout=120, context=ctx)
        return http.client.HTTPConnection(host, timeout=120)

    def _basic(self):
        return "Basic " + base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()

    def _fetch_token(self, params, scope):
        q = {"service": params.get("service", "")}
        if scope:
            q["scope"] = scope
        url = urllib.parse.urlsplit(params["realm"])
        conn = (http.client.HTTPSConnection(url.netloc, timeout=30,
                                            context=ssl.create_default_context(cafile=self.ca_file))
                if url.scheme == "https" else http.client.HTTPConnection(url.netloc, timeout=30))
        headers = {"Authorization": self._basic()} if self.username else {}
        conn.request("GET", url.path + "?" + urllib.parse.urlencode(q), headers=headers)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        if r.status != 200:
            raise PushError("token endpoint %s: HTTP %d %s" % (params["realm"], r.status, body[:200]))
        j = json.loads(body)
        return "Bearer " + (j.get("token") or j["access_token"])

    def request(self, method, path, body=None, headers=None, scope=None):
        """Returns (status, headers, body). Answers one auth challenge."""
        for attempt in range(2):
            h = dict(headers or {})
            if scope in self._auth:
                h["Authorization"] = self._auth[scope]
            conn = self._conn()
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            conn.close()
            if r.status == 401 and attempt == 0:
                scheme, params = _parse_challenge(r.getheader("WWW-Authenticate", ""))
                if scheme == "basic":
                    if not self.username:
                        raise PushError("%s %s: registry wants credentials" % (method, path))
                    self._auth[scope] = self._basic()
                elif scheme == "bearer":
                    self._auth[scope] = self._fetch_token(params, params.get("scope", scope))
                else:
                    raise PushError("%s %s: unsupported challenge %r" % (method, path, scheme))
                continue
            return r.status, r, data
        return r.status, r, data

    def has_blob(self, repo, digest):
        st, _, _ = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest),
                                scope="repository:%s:pull,push" % repo)
        return st == 200

    def push_blob(self, repo, data, digest=None):
        """Monolithic upload: POST then PUT ?digest=. Returns the digest."""
        digest = digest or sha256(data)
        scope = "repository:%s:pull,push" % repo
        if self.has_blob(repo, digest):
            return digest
        st, r, body = self.request("POST", "/v2/%s/blobs/uploads/" % repo, body=b"",
                                   headers={"Content-Length": "0"}, scope=scope)
        if st != 202:
            raise PushError("POST upload %s: HTTP %d %s" % (repo, st, body[:300]))
        loc = urllib.parse.urlsplit(r.getheader("Location"))
        q = urllib.parse.parse_qsl(loc.query) + [("digest", digest)]
        st, _, body = self.request("PUT", loc.path + "?" + urllib.parse.urlencode(q), body=data,
                                   headers={"Content-Type": "application/octet-stream",
                                            "Content-Length": str(len(data))}, scope=scope)
        if st != 201:
            raise PushError("PUT blob %s %s: HTTP %d %s" % (repo, digest, st, body[:300]))
        return digest

    def push_manifest(self, repo, ref, data, media_type):
        st, r, body = self.request("PUT", "/v2/%s/manifests/%s" % (repo, ref), body=data,
                                   headers={"Content-Type": media_type},
                                   scope="repository:%s:pull,push" % repo)
        if st != 201:
            raise PushError("PUT manifest %s:%s: HTTP %d %s" % (repo, ref, st, body[:300]))
        return r.getheader("Docker-Content-Digest") or sha256(data)


def _push_image(client, repo, ref, img):
    for b in img.blobs():
        client.push_blob(repo, b.data, b.digest)
    client.push_manifest(repo, ref or img.digest, img.manifest, img.media_type)
    return {"manifest": img.digest, "media_type": img.media_type, "config": img.config.digest,
            "layers": [l.digest for l in img.layers], "diff_ids": [l.diff_id for l in img.layers],
            "blobs": [b.digest for b in img.blobs()], "platform": img.platform_str()}


def push(client, repo, tag, thing):
    """Pushes an Image or Index under repo:tag; returns the digests (module doc)."""
    if isinstance(thing, Image):
        return _push_image(client, repo, tag, thing)
    res = {"index": thing.digest, "manifest": thing.digest, "media_type": thing.media_type,
           "images": {}, "attestations": [], "blobs": []}
    for img in thing.images:
        d = _push_image(client, repo, None, img)
        res["images"][img.platform_str()] = d
        res["blobs"] += [b for b in d["blobs"] if b not in res["blobs"]]
    for att in thing.attestations:
        d = _push_image(client, repo, None, att)
        res["attestations"].append(d["manifest"])
        res["blobs"] += [b for b in d["blobs"] if b not in res["blobs"]]
    client.push_manifest(repo, tag, thing.manifest, thing.media_type)
    return res


# ---------------------------------------------------------------- OCI layout

def image_variants(tars, host, layout_dir, repo, **build):
    """{reference: layer digests} of three images of the same layer tars
    (build_image(**build) each): OCI and Docker media types with every
    compression in every position, two pushed to the registry at host
    (http) as REPO-oci:v1 and REPO-docker:v1, one written to an oci: layout
    in layout_dir."""
    images = {}
    for fmt, comps, where in (("oci", ["gzip", "zstd", "gzip"], "registry"),
                              ("docker", ["none", "gzip", "zstd"], "registry"),
                              ("oci", ["zstd", "none", "gzip"], "layout")):
        layers = [Layer(t, _compress(t, c, 6), c) for t, c in zip(tars, comps)]
        image = build_image(layers, fmt=fmt, **build)
        if where == "registry":
            push(RegistryClient(host), "%s-%s" % (repo, fmt), "v1", image)
            ref = "http://%s/%s-%s:v1" % (host, repo, fmt)
        else:
            ref = "oci:%s:v1" % write_oci_layout(layout_dir, image, tag="v1")
        images[ref] = [l.digest for l in layers]
    return images


def write_oci_layout(directory, thing, tag="latest"):
    """Writes an OCI image layout for an Image or Index: oci-layout,
    index.json (one entry, ref.name = tag) and blobs/sha256/*."""
    bdir = os.path.join(directory, "blobs", "sha256")
    os.makedirs(bdir, exist_ok=True)

    def put(data, digest):
        with open(os.path.join(bdir, digest.split(":", 1)[1]), "wb") as f:
            f.write(data)

    images = [thing] if isinstance(thing, Image) else thing.images + thing.attestations
    for img in images:
        for b in img.blobs():
            put(b.data, b.digest)
        put(img.manifest, img.digest)
    if isinstance(thing, Index):
        put(thing.manifest, thing.digest)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    entry = {"mediaType": thing.media_type, "digest": thing.digest, "size": len(thing.manifest),
             "annotations": {"org.opencontainers.image.ref.name": tag}}
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}, f, indent=2)
    return directory


# ---------------------------------------------------------------- CLI

def main():
    ap = argparse.ArgumentParser(description="build a test image and push it to a registry")
    ap.add_argument("--registry", required=True, help="HOST:PORT")
    ap.add_argument("--repo", required=True)
    ap.add_argument("--tag", default="latest")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--size-mib", type=float, default=0, help="random MiB per layer")
    ap.add_argument("--format", choices=("oci", "docker"), default="oci")
    ap.add_argument("--compression", choices=("gzip", "none", "zstd"), default="gzip")
    ap.add_argument("--platforms", default="linux/amd64",
                    help="comma-separated; more than one pushes an index")
    ap.add_argument("--attestation", action="store_true")
    ap.add_argument("--https", action="store_true")
    ap.add_argument("--ca-file")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--oci-layout", metavar="DIR", help="write an OCI layout instead of pushing")
    a = ap.parse_args()

    def one(platform, salt):
        layers = []
        for i in range(a.layers):
            files = default_files(a.tag) if i == 0 else [
                {"path": "layer%d/file.txt" % i, "content": "layer %d of %s\n" % (i, a.tag)}]
            layers.append(build_layer(files, random_mib=a.size_mib, compression=a.compression,
                                      seed=salt * 1000 + i))
        return build_image(layers, fmt=a.format, platform=platform,
                           config={"Entrypoint": ["/bin/hello"], "Env": ["PATH=/bin"],
                                   "WorkingDir": "/", "Labels": {"made-by": "make_image.py"}})

    plats = a.platforms.split(",")
    thing = one(plats[0], 0) if len(plats) == 1 else build_index(
        [one(p, i) for i, p in enumerate(plats)], fmt=a.format, attestation=a.attestation)
    if a.oci_layout:
        write_oci_layout(a.oci_layout, thing, a.tag)
        print(json.dumps({"manifest": thing.digest}))
        return
    client = RegistryClient(a.registry, scheme="https" if a.https else "http",
                            username=a.username, password=a.password, ca_file=a.ca_file)
    print(json.dumps(push(client, a.repo, a.tag, thing), indent=2))


if __name__ == "__main__":
    sys.exit(main())
