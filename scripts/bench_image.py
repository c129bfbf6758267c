#!/usr/bin/env python3
"""Builds a distribution-like benchmark image from this machine's /usr and
pushes it to a registry: several gzip -6 layers of real binaries, libraries,
Python sources and docs (tar made by GNU tar, so it is an ordinary layer).
The layers are cached in CACHE_DIR (keyed by the source list) because gzip -6
of ~300 MiB takes a while.

Other kinds: --kind small (100,000 files of 1 KiB in 100 directories, one
layer), --kind small-changed (the same with every 100th file's bytes changed:
another blob, for `diff` against small) and --kind large (three 256 MiB files, half compressible text and half
random, one layer); --kind large-zstd is the same layer as one zstd frame.

usage: bench_image.py --registry HOST --repo bench/usr --tag v1 [--kind usr|small|large|debian] [--cache DIR]
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
import make_image  # noqa: E402

LAYER_SOURCES = [
    ["usr/lib/python3.11"],
    ["usr/bin", "usr/sbin"],
    ["usr/lib/x86_64-linux-gnu"],
    ["usr/share/doc", "usr/include"],
]


def layer_tar(paths, max_bytes):
    # GNU tar, numeric owners, fixed mtime order by name: reproducible input.
    existing = [p for p in paths if os.path.exists("/" + p)]
    out = subprocess.run(["tar", "-C", "/", "--numeric-owner", "--sort=name", "--format=posix",
                          "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                          "-cf", "-"] + existing, check=True, capture_output=True).stdout
    if len(out) > max_bytes:
        # Keep whole entries: re-run with fewer members is overkill; truncate
        # at a header boundary GNU tar wrote, then add the end-of-archive.
        import io
        import tarfile
        buf = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(out)) as src, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst:
            total = 0
            for m in src:
                if total > max_bytes:
                    break
                f = src.extractfile(m) if m.isreg() else None
                dst.addfile(m, f)
                total += 512 + m.size
        out = buf.getvalue()
    return out


def small_files_tar(path, changed=False):
    import tarfile
    rng = __import__("random").Random(1)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(100):
            ti = tarfile.TarInfo("data/d%03d" % d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tf.addfile(ti)
            for f in range(1000):
                body = rng.randbytes(512) + (b"b" if changed and f % 100 == 0 else b"a") * 512
                ti = tarfile.TarInfo("data/d%03d/f%04d" % (d, f))
                ti.size, ti.mode, ti.mtime = len(body), 0o644, 1700000000
                tf.addfile(ti, __import__("io").BytesIO(body))


def large_files_tar(path):
    import tarfile
    rng = __import__("random").Random(2)
    half = 128 << 20
    text = (b"".join(b"line %08d of a compressible log file\n" % i for i in range(4 << 20)))[:half]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for n in range(3):
            body = text + rng.randbytes(half)
            ti = tarfile.TarInfo("big/file%d.bin" % n)
            ti.size, ti.mode, ti.mtime = len(body), 0o644, 1700000000
            tf.addfile(ti, __import__("io").BytesIO(body))


def cached_layer(cache, key, make_tar):
    tar_path = os.path.join(cache, key + ".tar")
    gz_path = tar_path + ".gz"
    if not os.path.exists(gz_path):
        make_tar(tar_path + ".tmp")
        os.rename(tar_path + ".tmp", tar_path)
        subprocess.run(["gzip", "-6", "-n", "-k", "-f", tar_path], check=True)
    with open(tar_path, "rb") as f:
        tar = f.read()
    with open(gz_path, "rb") as f:
        gz = f.read()
    return make_image.Layer(tar, gz, "gzip")


def cached_zstd_layer(cache, key, make_tar):
    # `zstd -3` writes ONE frame (as buildkit and containerd do by default):
    # a lazy reader can only restart at the start of the layer.
    layer = cached_layer(cache, key, make_tar)
    zst_path = os.path.join(cache, key + ".tar.zst")
    if not os.path.exists(zst_path):
        subprocess.run(["zstd", "-3", "-q", "-f", "-o", zst_path + ".tmp", os.path.join(cache, key + ".tar")], check=True)
        os.rename(zst_path + ".tmp", zst_path)
    with open(zst_path, "rb") as f:
        return make_image.Layer(layer.tar, f.read(), "zstd")


# ---------------------------------------------------------------- debian
DEBIAN_SUITE = "bookworm"
DEBIAN_EXTRA = "python3-minimal,ca-certificates,curl,less,procps,openssl"
# Children of these are device nodes or mount points in a debootstrap tree:
# an image has only the directories.
DEBIAN_EMPTY_DIRS = ("dev", "proc", "sys")
# What layer 2 removes, as `RUN rm -rf …` in a Dockerfile would (whiteouts).
DEBIAN_REMOVED = ("usr/share/doc", "usr/share/man", "var/lib/apt/lists", "var/cache/apt")


class Unavailable(Exception):
    pass


def debootstrap_tree(cache, name, include=None):
    """A debootstrap minbase tree under cache/name, made once."""
    tree = os.path.join(cache, name)
    if os.path.exists(os.path.join(cache, name + ".complete")):
        return tree
    if shutil.which("debootstrap") is None:
        raise Unavailable("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise Unavailable("debootstrap needs root")
    tmp = tree + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    cmd = ["debootstrap", "--variant=minbase"] + (["--include=" + include] if include else []) + \
        [DEBIAN_SUITE, tmp, os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")]
    print("bench_image: " + " ".join(cmd) + " (once; cached in %s)" % cache, file=sys.stderr)
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise Unavailable("debootstrap failed: " + r.stderr.strip()[-500:])
    os.rename(tmp, tree)
    open(os.path.join(cache, name + ".complete"), "w").close()
    return tree


def tree_paths(root):
    """Relative paths of root's entries, sorted, parents first (no '.')."""
    out = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel in DEBIAN_EMPTY_DIRS:
            dirs[:] = []
            continue
        dirs.sort()
        for n in sorted(dirs + files):
            out.append(n if rel == "." else rel + "/" + n)
    return sorted(out)


def add_entry(tf, root, rel):
    ti = tf.gettarinfo(os.path.join(root, rel), arcname=rel)
    ti.uname = ti.gname = ""
    if ti.isreg():
        with open(os.path.join(root, rel), "rb") as f:
            tf.addfile(ti, f)
    else:
        tf.addfile(ti)


def same_entry(a, b):
    sa, sb = os.lstat(a), os.lstat(b)
    if (sa.st_mode, sa.st_uid, sa.st_gid, sa.st_size, int(sa.st_mtime), sa.st_rdev) != \
            (sb.st_mode, sb.st_uid, sb.st_gid, sb.st_size, int(sb.st_mtime), sb.st_rdev):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    return True


def removed(rel):
    return any(rel.startswith(r + "/") for r in DEBIAN_REMOVED)


def debian_tar(path, layer, cache):
    base = debootstrap_tree(cache, "debian-%s-minbase" % DEBIAN_SUITE)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        if layer == 1:
            for rel in tree_paths(base):
                add_entry(tf, base, rel)
        elif layer == 2:
            # The tree with the extra packages, minus DEBIAN_REMOVED's contents:
            # what changed against the base, and a whiteout for each entry gone.
            full = debootstrap_tree(cache, "debian-%s-extra" % DEBIAN_SUITE, DEBIAN_EXTRA)
            upper = [p for p in tree_paths(full) if not removed(p)]
            upper_set = set(upper)
            changes = [(p, None) for p in upper
                       if not os.path.lexists(os.path.join(base, p)) or not same_entry(os.path.join(base, p), os.path.join(full, p))]
            for p in tree_paths(base):
                parent = os.path.dirname(p)
                if p not in upper_set and (parent == "" or parent in upper_set):
                    changes.append((os.path.join(parent, ".wh." + os.path.basename(p)), "whiteout"))
            for p, kind in sorted(changes):
                if kind:
                    ti = tarfile.TarInfo(p)
                    ti.mtime = 1700000000
                    tf.addfile(ti)
                else:
                    add_entry(tf, full, p)
        else:
            # Configuration: changed, new and deleted files, an opaque directory.
            def add(name, data=None, kind=tarfile.REGTYPE, mode=0o644, target=""):
                ti = tarfile.TarInfo(name)
                ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, 1700000000, target
                ti.size = len(data) if data is not None else 0
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
            add("etc", kind=tarfile.DIRTYPE, mode=0o755)
            add("etc/app", kind=tarfile.DIRTYPE, mode=0o755)
            add("etc/app/config.json", json.dumps({"workers": 4, "listen": ":8080"}).encode())
            add("etc/hostname", b"app\n")
            add("etc/motd", b"bench image\n")
            add("etc/.wh.issue.net")
            add("usr/local/bin", kind=tarfile.DIRTYPE, mode=0o755)
            add("usr/local/bin/app", kind=tarfile.SYMTYPE, mode=0o777, target="/usr/bin/python3")
            add("var/cache/debconf", kind=tarfile.DIRTYPE, mode=0o755)
            add("var/cache/debconf/.wh..wh..opq")
            add("var/cache/debconf/config.dat", b"Name: app/configured\nValue: true\n\n")
            add("var/log/.wh.dpkg.log")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--repo", default="bench/usr")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--cache", default="/var/tmp/lazyroot-bench-cache")
    ap.add_argument("--max-mib", type=int, default=120, help="cap per layer (uncompressed MiB)")
    ap.add_argument("--kind", choices=("usr", "small", "small-changed", "large", "large-zstd", "debian"), default="usr")
    ap.add_argument("--uncompressed", action="store_true", help="push the layers as plain tar")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    layers = []
    if args.kind == "small":
        layers.append(cached_layer(args.cache, "small-100k", small_files_tar))
    elif args.kind == "small-changed":
        layers.append(cached_layer(args.cache, "small-100k-changed", lambda p: small_files_tar(p, changed=True)))
    elif args.kind == "large":
        layers.append(cached_layer(args.cache, "large-3x256", large_files_tar))
    elif args.kind == "large-zstd":
        layers.append(cached_zstd_layer(args.cache, "large-3x256", large_files_tar))
    elif args.kind == "debian":
        try:
            for n in (1, 2, 3):
                layers.append(cached_layer(args.cache, "debian-%s-l%d" % (DEBIAN_SUITE, n),
                                           lambda p, n=n: debian_tar(p, n, args.cache)))
        except Unavailable as e:
            print("bench_image: kind debian unavailable: %s" % e, file=sys.stderr)
            sys.exit(3)
    for paths in (LAYER_SOURCES if args.kind == "usr" else []):
        key = hashlib.sha256(json.dumps([paths, args.max_mib]).encode()).hexdigest()[:16]

        def write_usr_tar(path, paths=paths):
            with open(path, "wb") as f:
                f.write(layer_tar(paths, args.max_mib << 20))
        layers.append(cached_layer(args.cache, key, write_usr_tar))
    if args.uncompressed:
        layers = [make_image.Layer(l.tar, l.tar, "none") for l in layers]
    img = make_image.build_image(layers, fmt="oci", config={"Entrypoint": ["/usr/bin/python3"]})
    client = make_image.RegistryClient(args.registry, scheme="http")
    digests = make_image.push(client, args.repo, args.tag, img)
    total = sum(l.size for l in layers)
    print(json.dumps({"manifest": digests["manifest"], "layers": len(layers), "compressed_bytes": total,
                      "uncompressed_bytes": sum(len(l.tar) for l in layers)}))


if __name__ == "__main__":
    main()
