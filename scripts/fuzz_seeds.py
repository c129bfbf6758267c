#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz) into OUT/<target>/.

Seeds are generated, never committed: layers by GNU tar in every format it
writes (gnu, oldgnu, posix, ustar, v7), its sparse kinds (old GNU, PAX 0.0,
0.1, 1.0), xattrs, long names and links, hardlinks, fifos, devices (as root),
plus Python tarfile layers for what GNU tar does not write (whiteouts, PAX
globals, binary xattrs); those as gzip (also multi-member) and zstd (also
multi-frame, skippable frames) blobs; layer index and image tree files
written by the project's own writers (tests/fuzz/fuzz_seed_writer); and the
references, WWW-Authenticate headers, manifests, indexes, configs and
config.json samples of tests/unit/src_*_test.cc plus tests/tools/make_image.py
output (manifests, indexes, configs, OCI layouts). Takes a few seconds.

Usage: fuzz_seeds.py --out DIR --writer PATH/fuzz_seed_writer
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SOURCE, "tests", "tools"))
import make_image  # noqa: E402

LAYER_SEP = b"\n==LAYER==\n"  # merge_fuzzer.cc: layers of one input


class Corpus:
    def __init__(self, out):
        self.out = out
        self.count = {}

    def add(self, target, name, data):
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        self.count[target] = self.count.get(target, 0) + 1


def run(*cmd, **kw):
    return subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


# ---------------------------------------------------------------- layers by GNU tar

def make_tree(root, is_root):
    """A small directory with one of every kind of entry tar can store."""
    os.makedirs(os.path.join(root, "etc", "deep" + "/d" * 10), exist_ok=True)
    os.makedirs(os.path.join(root, "usr", "lib"), exist_ok=True)
    with open(os.path.join(root, "etc", "hostname"), "w") as f:
        f.write("fuzz\n")
    open(os.path.join(root, "etc", "empty"), "w").close()
    with open(os.path.join(root, "usr", "lib", "libx.so"), "wb") as f:
        f.write(bytes(range(256)) * 3)
    os.symlink("usr/lib", os.path.join(root, "lib"))
    os.symlink("/etc/../etc/hostname", os.path.join(root, "etc", "abs-link"))
    os.link(os.path.join(root, "etc", "hostname"), os.path.join(root, "etc", "hardlink"))
    long_dir = os.path.join(root, "l" * 120, "m" * 120)
    os.makedirs(long_dir, exist_ok=True)
    with open(os.path.join(long_dir, "n" * 200), "w") as f:
        f.write("long\n")
    os.symlink("t" * 300, os.path.join(root, "long-target"))
    os.link(os.path.join(long_dir, "n" * 200), os.path.join(root, "hardlink-to-long"))
    with open(os.path.join(root, "caf\u00e9-\u00fc"), "w") as f:
        f.write("utf-8 name\n")
    suid = os.path.join(root, "suid")
    with open(suid, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(suid, 0o4755)
    os.chmod(os.path.join(root, "etc", "deep"), 0o1777)
    os.mkfifo(os.path.join(root, "fifo"))
    if is_root:
        run("mknod", os.path.join(root, "null"), "c", "1", "3")
        run("mknod", os.path.join(root, "loop9"), "b", "7", "9")
        os.chown(os.path.join(root, "etc", "hostname"), 1000, 2000)
    # xattrs: only where the file system takes user.* attributes.
    run("setfattr", "-n", "user.fuzz", "-v", "value", os.path.join(root, "etc", "hostname"))
    run("setfattr", "-n", "user.bin", "-v", "0x00ff00", os.path.join(root, "etc", "empty"))
    if is_root:
        run("setfattr", "-n", "security.capability", "-v",
            "0x0100000200200000000000000000000000000000", os.path.join(root, "suid"))


def make_sparse(root):
    """Sparse files: many runs (old GNU needs extension blocks past 4), a
    leading hole, a trailing hole, all hole."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "many"), "wb") as f:
        for i in range(30):
            f.seek(i * 16384)
            f.write(b"x%d" % i * 50)
        f.truncate(30 * 16384 + 8192)
    with open(os.path.join(root, "tail-hole"), "wb") as f:
        f.write(b"head" * 1000)
        f.truncate(1 << 20)
    with open(os.path.join(root, "all-hole"), "wb") as f:
        f.truncate(1 << 20)
    with open(os.path.join(root, "lead-hole"), "wb") as f:
        f.seek(1 << 19)
        f.write(b"end")


def trim(tar):
    """Drops the padding to a 10 KiB record: seeds stay small, the archive
    still ends with its two zero blocks."""
    end = len(tar.rstrip(b"\0"))
    return tar[:(end + 511) // 512 * 512] + b"\0" * 1024


def gnu_tar(src, out, *args):
    # Blocking factor 1: no record padding. Some formats cannot store some
    # entries (v7 and ustar: long names); tar skips those and still writes.
    run("tar", "-C", src, "--numeric-owner", "--mtime=@1700000000.5", "-b", "1", "-cf", out, *args, ".")
    if os.path.exists(out) and os.path.getsize(out) > 0:
        with open(out, "rb") as f:
            return f.read()
    return None


def gnu_tar_layers(work, is_root):
    tree = os.path.join(work, "tree")
    sparse = os.path.join(work, "sparse")
    make_tree(tree, is_root)
    make_sparse(sparse)
    layers = {}
    for fmt in ("gnu", "oldgnu", "posix", "ustar", "v7"):
        data = gnu_tar(tree, os.path.join(work, fmt + ".tar"), "--format=" + fmt)
        if data:
            layers["tree-" + fmt] = data
    data = gnu_tar(tree, os.path.join(work, "xattrs.tar"), "--format=posix", "--xattrs",
                   "--xattrs-include=*", "--acls")
    if data:
        layers["tree-posix-xattrs"] = data
    for fmt, version in (("gnu", None), ("oldgnu", None), ("posix", "0.0"), ("posix", "0.1"), ("posix", "1.0")):
        args = ["--format=" + fmt, "--sparse", "--hole-detection=raw"]
        if version:
            args.append("--sparse-version=" + version)
        data = gnu_tar(sparse, os.path.join(work, "sparse.tar"), *args)
        if data:
            layers["sparse-%s-%s" % (fmt, version or "old")] = data
    return layers


# ---------------------------------------------------------------- layers by Python tarfile

def ti(name, type_=tarfile.REGTYPE, data=b"", **kw):
    t = tarfile.TarInfo(name)
    t.type = type_
    t.size = len(data) if type_ == tarfile.REGTYPE else 0
    t.mtime = kw.pop("mtime", 1700000000)
    t.mode = kw.pop("mode", 0o755 if type_ == tarfile.DIRTYPE else 0o644)
    for k, v in kw.items():
        setattr(t, k, v)
    return t, data


def py_tar(entries, fmt=tarfile.PAX_FORMAT, pax_headers=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers or {}) as tf:
        for t, data in entries:
            tf.addfile(t, io.BytesIO(data) if t.type == tarfile.REGTYPE else None)
    return trim(buf.getvalue())


def py_layers():
    base = py_tar([
        ti("./", tarfile.DIRTYPE),
        ti("usr/", tarfile.DIRTYPE), ti("usr/lib/", tarfile.DIRTYPE),
        ti("usr/lib/a.so", data=b"a" * 100),
        ti("lib", tarfile.SYMTYPE, linkname="usr/lib"),
        ti("etc/", tarfile.DIRTYPE), ti("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
        ti("etc/gone", data=b"bye"),
        ti("opq/", tarfile.DIRTYPE), ti("opq/old", data=b"old"),
        ti("loop", tarfile.SYMTYPE, linkname="loop"),
        ti("up", tarfile.SYMTYPE, linkname="../../.."),
        ti("dir-to-file/", tarfile.DIRTYPE), ti("dir-to-file/x", data=b"x"),
    ])
    upper = py_tar([
        ti("etc/.wh.gone"),
        ti("opq/.wh..wh..opq"), ti("opq/new", data=b"new"),
        ti("lib/b.so", data=b"through the symlink"),
        ti("up/escape", data=b"clamped at the root"),
        ti("etc/passwd-link", tarfile.LNKTYPE, linkname="etc/passwd"),
        ti("dir-to-file", data=b"now a file"),
        ti("../../evil", data=b"cleaned"),
        ti("etc/xattrs", data=b"x", pax_headers={
            "SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0",
            "LIBARCHIVE.xattr.user.b": base64.b64encode(b"\x00\x01\x02").decode().rstrip("=")}),
        ti("nsec", data=b"t", pax_headers={"mtime": "1700000000.123456789", "atime": "-1.5"}),
        ti("big-ids", data=b"", pax_headers={"uid": "4294967295", "gid": "65534", "uname": "n", "gname": "g"}),
    ])
    top = py_tar([
        ti(".wh.opq"),
        ti("etc/.wh..wh..opq"),
        ti("usr/lib/.wh.a.so"),
        ti("lib", data=b"symlink replaced by a file"),
        ti("etc/passwd", tarfile.CHRTYPE, devmajor=1, devminor=3),
    ], fmt=tarfile.GNU_FORMAT)
    globals_ = py_tar([ti("g", data=b"g")], pax_headers={"comment": "pax global header", "path": "ignored"})
    return {"py-base": base, "py-upper": upper, "py-top": top, "py-global": globals_}, [
        [base], [base, upper], [base, upper, top]]


# ---------------------------------------------------------------- compression

def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def gz_flushed(data, every, flush):
    """One gzip member with a zlib flush every `every` bytes (stored blocks
    followed by flush markers when the data is random: fine point policy 3's
    stored runs)."""
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = b"".join(c.compress(data[i:i + every]) + c.flush(flush) for i in range(0, len(data), every))
    return out + c.flush(zlib.Z_FINISH)


def zst(data, *args):
    r = subprocess.run(["zstd", "-q", "-c", *args], input=data, stdout=subprocess.PIPE, check=True)
    return r.stdout


def skippable(payload):
    return b"\x50\x2a\x4d\x18" + len(payload).to_bytes(4, "little") + payload


def text_blob():
    # Compressible but not trivially: several deflate blocks, so that a small
    # checkpoint span gives gzip checkpoints with windows.
    words = [b"layer", b"index", b"tar", b"gzip", b"zstd", b"sparse", b"xattr", b"merge"]
    h = hashlib.sha256(b"seed").digest()
    out = bytearray()
    i = 0
    while len(out) < 200000:
        h = hashlib.sha256(h).digest()
        out += words[h[0] % len(words)] + b"%d " % (h[1] * i % 997)
        i += 1
    return bytes(out)


# ---------------------------------------------------------------- C++ test strings

def cxx_strings(path):
    """String literals of a C++ test file: raw strings and ordinary ones."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    out = []
    for m in re.finditer(r'R"([^(]*)\((.*?)\)\1"', src, re.S):
        out.append(m.group(2))
    src_no_raw = re.sub(r'R"([^(]*)\((.*?)\)\1"', '""', src, flags=re.S)
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', src_no_raw):
        try:
            out.append(m.group(1).encode("latin-1", "backslashreplace").decode("unicode_escape"))
        except (UnicodeDecodeError, UnicodeEncodeError):
            continue
    return [s for s in dict.fromkeys(out) if s]


def fake_digest(i):
    return "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--writer", required=True, help="tests/fuzz/fuzz_seed_writer binary")
    args = ap.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    c = Corpus(args.out)
    is_root = os.geteuid() == 0

    with tempfile.TemporaryDirectory(prefix="lazyroot-fuzz-seeds.") as work:
        tars = gnu_tar_layers(work, is_root)
        py, stacks = py_layers()
        tars.update(py)
        tars["empty"] = b"\0" * 1024
        blobs = {}
        for name, data in tars.items():
            c.add("tar_reader", name + ".tar", data)
            c.add("merge", name + ".tar", data)
            blobs[name + ".tar"] = data
        for i, stack in enumerate(stacks):
            c.add("merge", "py-stack-%d" % i, LAYER_SEP.join(stack))
        c.add("merge", "gnu-over-py", LAYER_SEP.join([py["py-base"], tars.get("tree-gnu", b""), py["py-top"]]))

        # Compressed blobs: small layers, multi-member / multi-frame, a text
        # blob large enough for several deflate blocks.
        small = [n for n in ("tree-gnu", "tree-posix", "sparse-posix-1.0", "py-base", "py-upper") if n in tars]
        text = text_blob()
        gzs = {}
        zsts = {}
        for n in small:
            gzs[n + ".tar.gz"] = gz(tars[n])
            zsts[n + ".tar.zst"] = zst(tars[n])
        gzs["multi-member.tar.gz"] = gz(tars[small[0]][:2048], 1) + gz(tars[small[0]][2048:], 9)
        gzs["stored.tar.gz"] = gz(tars["py-upper"], 0)
        gzs["text.gz"] = gz(text)
        gzs["empty.gz"] = gz(b"")
        noise = random.Random(7).randbytes(200000)
        gzs["random.gz"] = gz(noise)
        gzs["random-sync.gz"] = gz_flushed(noise, 5000, zlib.Z_SYNC_FLUSH)
        gzs["random-full.gz"] = gz_flushed(noise, 40000, zlib.Z_FULL_FLUSH)
        zsts["multi-frame.tar.zst"] = zst(tars[small[0]][:2048]) + zst(tars[small[0]][2048:], "-19")
        zsts["skippable.tar.zst"] = skippable(b"zstd:chunked manifest") + zst(tars["py-base"])
        zsts["text.zst"] = zst(text)
        zsts["text-frames.zst"] = b"".join(zst(text[i:i + 50000]) for i in range(0, len(text), 50000))
        zsts["empty.zst"] = zst(b"")
        # Scripts of reads and on-disk changes (the fuzzer's own encoding: 3
        # bytes of chunk size and blob size, then 5-byte steps).
        steps = random.Random(11)
        for i in range(6):
            c.add("verified_source", "script-%d" % i, bytes([i, 40 + 30 * i, 7]) + steps.randbytes(5 * (8 + 6 * i)))
        for name, data in gzs.items():
            c.add("gzip_index", name, data)
            c.add("layer_indexer", name, data)
            blobs[name] = data
        for name, data in zsts.items():
            c.add("zstd_index", name, data)
            c.add("layer_indexer", name, data)
            blobs[name] = data
        for n in small:
            c.add("layer_indexer", n + ".tar", tars[n])

        # Store files by the project's writers.
        for name, data in blobs.items():
            path = os.path.join(work, "blob-" + name)
            with open(path, "wb") as f:
                f.write(data)
            blobs[name] = path
        writer = os.path.abspath(args.writer)
        for name, path in blobs.items():
            if name.startswith("text"):
                continue  # not tar: no index
            span = "1024" if name.endswith((".gz", ".zst")) else "0"
            out = os.path.join(work, "idx")
            if run(writer, "index", out, path, span).returncode == 0:
                with open(out, "rb") as f:
                    c.add("layer_index_file", name + ".idx", f.read())
        trees = [[n + ".tar"] for n in tars] + [
            ["py-base.tar", "py-upper.tar"], ["py-base.tar", "py-upper.tar", "py-top.tar"],
            ["tree-posix-xattrs.tar", "py-top.tar"], ["sparse-posix-1.0.tar.gz", "py-base.tar.zst"]]
        for i, names in enumerate(trees):
            paths = [blobs[n] for n in names if n in blobs]
            if len(paths) != len(names):
                continue
            out = os.path.join(work, "tree.out")
            if run(writer, "tree", out, *paths).returncode == 0:
                with open(out, "rb") as f:
                    c.add("image_tree_file", "%d-%s.tree" % (i, "+".join(names)), f.read())

    # PAX records and sparse maps, as the tar reader hands them over.
    pax = [
        "30 mtime=1700000000.123456789\n",
        "20 path=some/where\n23 linkpath=../target\n",
        "27 SCHILY.xattr.user.a=1\n22 SCHILY.xattr.b=\x00\n",
        "33 LIBARCHIVE.xattr.user.b=AAEC\n",
        "22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n26 GNU.sparse.name=sparse\n30 GNU.sparse.realsize=1048576\n",
        "28 GNU.sparse.numblocks=2\n26 GNU.sparse.offset=0\n28 GNU.sparse.numbytes=10\n"
        "28 GNU.sparse.offset=100\n28 GNU.sparse.numbytes=10\n",
        "24 GNU.sparse.size=2000\n28 GNU.sparse.numblocks=2\n31 GNU.sparse.map=0,10,100,10\n",
        "16 uid=4294967295\n12 gid=0\n11 uname=\n12 size=512\n",
        "12 mtime=-1.5\n",
        "9 path=\n",
    ]
    for i, p in enumerate(pax):
        c.add("pax_records", "pax-%d" % i, p.encode("latin-1"))
    c.add("pax_records", "chain", ("\0\0PAX\0\0".join(pax[:3])).encode("latin-1"))
    old_gnu = b"".join(b"%011o\0%011o\0" % (i * 4096, 512) for i in range(21))
    c.add("tar_sparse", "old-gnu", b"\x01" + old_gnu)
    c.add("tar_sparse", "old-gnu-sizes", b"\x03" + old_gnu)
    c.add("tar_sparse", "pax-1.0", b"\x00" + b"3\n0\n512\n4096\n512\n1048576\n0\n")
    c.add("tar_sparse", "pax-1.0-holes", b"\x02" + b"1\n1048576\n0\n")
    c.add("tar_sparse", "pax-1.0-multiblock", b"\x04" + b"60\n" + b"".join(b"%d\n1\n" % (i * 10) for i in range(60)))

    # src/: references, challenges, registry JSON, config.json.
    unit = os.path.join(SOURCE, "tests", "unit")
    refs = cxx_strings(os.path.join(unit, "src_reference_test.cc")) + [
        "alpine", "docker.io/library/alpine:3.19", "localhost:5000/a/b/c:tag", "ghcr.io/o/app@" + fake_digest(1),
        "name:tag@" + fake_digest(2), "oci:/tmp/layout:v1", "oci:dir", "http://127.0.0.1:5000/r:t",
        "docker://index.docker.io/x/y", "[::1]:5000/r", "WorkingDir5xz/arm64/v8"]
    for i, s in enumerate(dict.fromkeys(refs)):
        c.add("reference", "ref-%d" % i, s.encode("utf-8", "surrogateescape"))
    auths = cxx_strings(os.path.join(unit, "src_www_authenticate_test.cc")) + [
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
        'Basic realm="Registry Realm"', 'Bearer realm="http://127.0.0.1:1/t", Basic realm="x"',
        'Negotiate dXNlcjpwYXNz==', 'Bearer realm="a\\"b\\\\c",empty=""']
    for i, s in enumerate(dict.fromkeys(auths)):
        c.add("www_authenticate", "auth-%d" % i, s.encode("utf-8", "surrogateescape"))

    # sha256_pair: steps of (op, 16-bit length, bytes): both lanes in step,
    # out of step (one lane's own bytes first), finishes at every padding case.
    def step(op, data):
        return bytes([op, len(data) & 255, len(data) >> 8]) + data
    filler = bytes(range(256)) * 8
    c.add("sha256_pair", "in-step", step(2, filler[:1000]) + step(1, b"") + step(2, filler[:64]))
    c.add("sha256_pair", "out-of-step", step(0x80, filler[:7]) + step(3, filler[:300]) + step(0x81, b"") + step(2, filler[:55]))
    c.add("sha256_pair", "padding", b"".join(step(2, filler[:n]) + step(1, b"") + step(0x81, b"") for n in (55, 56, 63, 64, 65, 119, 120)))

    # fs/: mountinfo lines as the kernel writes them (octal escapes for
    # space, tab, newline and backslash), then the mount point asked for.
    mountinfo = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:35 / /tmp/a\\040b rw,nosuid,nodev - tmpfs tmpfs rw\n"
        "41 22 0:36 / /run/vm1 ro,nosuid,nodev shared:7 master:2 - fuse.lazyroot 127.0.0.1:5000/app:v1 ro,user_id=0\n"
        "42 41 0:37 / /run/vm1 rw - tmpfs tmpfs rw\n"
        "43 22 0:38 / /x\\012y\\134z rw - fuse.lazyroot r:1 ro\n")
    for i, point in enumerate(["/", "/tmp/a b", "/run/vm1", "/x\ny\\z", "/nowhere", ""]):
        c.add("mount_table", "mountinfo-%d" % i, (point + "\n" + mountinfo).encode())

    docs = []
    for f in ("src_manifest_test.cc", "src_platform_test.cc"):
        for s in cxx_strings(os.path.join(unit, f)):
            if s.lstrip().startswith(("{", "[")):
                docs.append(re.sub(r"@(\d)", lambda m: fake_digest(m.group(1)), s))
    layer = make_image.build_layer(make_image.default_files(), compression="gzip")
    zlayer = make_image.build_layer(make_image.default_files("z"), compression="zstd")
    cfg = {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo"], "Env": ["A=1"], "WorkingDir": "/w",
           "User": "1000:1000", "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "b"}, "StopSignal": "SIGTERM"}
    oci = make_image.build_image([layer, zlayer], fmt="oci", config=cfg)
    docker = make_image.build_image([layer], fmt="docker", platform="linux/arm64/v8")
    arm = make_image.build_image([layer], fmt="oci", platform="linux/arm/v7")
    for thing in (oci, docker, arm):
        docs += [thing.manifest.decode(), thing.config.data.decode()]
    for fmt in ("oci", "docker"):
        docs.append(make_image.build_index([oci, docker, arm], fmt=fmt, attestation=True).manifest.decode())
    docs.append(json.dumps({"schemaVersion": 1, "fsLayers": [], "name": "x"}))
    for i, s in enumerate(dict.fromkeys(docs)):
        c.add("manifest", "doc-%d.json" % i, s)

    # OCI layouts: index.json, then the manifest blob it names.
    for i, thing in enumerate((oci, docker, make_image.build_index([oci, arm], fmt="oci", attestation=True))):
        with tempfile.TemporaryDirectory(prefix="lazyroot-fuzz-oci.") as d:
            make_image.write_oci_layout(d, thing, tag="latest")
            with open(os.path.join(d, "index.json"), "rb") as f:
                index_json = f.read()
        c.add("oci_layout", "layout-%d" % i, index_json + b"\n==FILE==\n" + thing.manifest)
    c.add("oci_layout", "two-untagged", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": make_image.OCI_MANIFEST, "digest": fake_digest(1), "size": 1},
        {"mediaType": make_image.OCI_MANIFEST, "digest": fake_digest(2), "size": 1}]}))

    # docker save archives: manifest.json documents, and whole archives
    # (legacy with a symlinked repeat, docker 25's layout form) for the member table.
    def tar_of(members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, data, target in members:
                t = tarfile.TarInfo(name)
                if target is not None:
                    t.type, t.linkname = tarfile.SYMTYPE, target
                    tf.addfile(t)
                else:
                    t.size = len(data)
                    tf.addfile(t, io.BytesIO(data))
        return buf.getvalue()
    plain = make_image.build_layer(make_image.default_files(), compression="none")
    dm = [{"Config": "c.json", "RepoTags": ["busybox:latest", "example.com/a/b:2"],
           "Layers": ["a/layer.tar", "b/layer.tar"]},
          {"Config": "blobs/sha256/" + fake_digest(1)[7:], "RepoTags": None, "Layers": []}]
    c.add("docker_archive_manifest", "two", json.dumps(dm))
    c.add("docker_archive_manifest", "one", json.dumps(dm[:1]))
    manifest_json = json.dumps(dm[:1]).encode()
    c.add("tar_archive", "legacy", tar_of([("c.json", oci.config.data, None), ("a/layer.tar", plain.tar, None),
                                           ("b/layer.tar", None, "../a/layer.tar"),
                                           ("manifest.json", manifest_json, None)]))
    c.add("tar_archive", "layout", tar_of([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None),
                                           ("index.json", b'{"manifests":[]}', None),
                                           ("blobs/sha256/" + oci.digest[7:], oci.manifest, None),
                                           ("./b", None, "/etc/passwd"), ("../x", b"x", None)]))

    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    configs = [
        {"auths": {"https://index.docker.io/v1/": {"auth": b64("user:pass")}}},
        {"auths": {"127.0.0.1:5000": {"username": "u", "password": "p"}, "ghcr.io": {"identitytoken": "tok"}}},
        {"auths": {"http://127.0.0.1:5000/v2/": {"auth": b64("u:p\0\0")}, "docker.io": {"registrytoken": "rt"}}},
        {"credsStore": "desktop", "auths": {"ghcr.io": {}}},
        {"credHelpers": {"ghcr.io": "gh", "127.0.0.1:5000": "x"}, "auths": {}},
        {"auths": {"registry-1.docker.io": {"auth": "bm9jb2xvbg=="}}},
        {"auths": None, "credsStore": None, "credHelpers": None},
    ]
    for s in cxx_strings(os.path.join(unit, "src_credentials_test.cc")):
        if s.lstrip().startswith("{"):
            configs.append(s)
    for i, cfg_ in enumerate(configs):
        c.add("credentials", "config-%d.json" % i, cfg_ if isinstance(cfg_, str) else json.dumps(cfg_))

    # registries_conf / hosts_toml: the unit test's files, split by what they
    # look like (hosts.toml has server / [host."…"]), and the man pages' examples.
    confs = ['[[registry]]\nprefix = "example.com/foo"\nlocation = "internal-registry-for-example.com/bar"\n',
             '[[registry]]\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "mirror.gcr.io"\n'
             'pull-from-mirror = "digest-only"\n[[registry.mirror]]\nlocation = "127.0.0.1:5001"\ninsecure = true\n',
             '[[registry]]\nprefix = "*.example.com"\nblocked = true\n',
             '[registries.insecure]\nregistries = ["old.local:5000"]\n[registries.block]\nregistries = ["bad.io"]\n']
    hosts = ['server = "https://registry-1.docker.io"\n[host."https://mirror.local:5000"]\n'
             'capabilities = ["pull"]\nca = "ca.crt"\nclient = [["c.pem", "k.pem"]]\n'
             '[host."https://mirror.local:5000".header]\nX-Dragonfly-Registry = ["https://index.docker.io"]\n',
             '[host."http://127.0.0.1:5001/prefix"]\noverride_path = true\nskip_verify = true\n']
    for s in cxx_strings(os.path.join(unit, "src_endpoints_test.cc")):
        if "server" in s or "[host." in s:
            hosts.append(s)
        elif "registr" in s or "location" in s:
            confs.append(s)
    for i, text in enumerate(confs):
        c.add("registries_conf", "conf-%d" % i, text)
    for i, text in enumerate(hosts):
        c.add("hosts_toml", "hosts-%d" % i, text)

    # user_lookup: SPEC \0 PASSWD \0 GROUP, from the unit test's files and specs.
    strings = cxx_strings(os.path.join(unit, "src_launch_config_test.cc"))
    passwds = [s for s in strings if s.count(":") >= 6] or ["root:x:0:0:root:/root:/bin/sh\n"]
    groups = [s for s in strings if s.count(":") >= 3 and s not in passwds] or ["root:x:0:\n"]
    specs = ["", "app", "1000", "app:staff", "1000:44", "4242", "4242:4343", "nobody", "app:wheel", "dup"]
    for i, spec in enumerate(specs):
        for j, pw in enumerate(passwds):
            c.add("user_lookup", "user-%d-%d" % (i, j), (spec + "\0" + pw + "\0" + groups[j % len(groups)]).encode())
        c.add("user_lookup", "user-%d-nofiles" % i, spec.encode())
    print("fuzz_seeds: " + ", ".join("%s %d" % kv for kv in sorted(c.count.items())))


if __name__ == "__main__":
    main()
