"""Shared pieces of the crash, fault and concurrency tests
(tests/integration/test_crash_kill9.py, test_store_full.py,
test_store_concurrency.py). Independent of lazyroot's code: the checks use
sha256sum, GNU tar and tests/tools/tree_listing.py.

  SEED, rng(name)          the run's random seed (printed; replay a failure with
                           LAZYROOT_FAULT_SEED=N) and a per-test Random from it
  env_int(name, default)   an iteration count or duration from the environment
  has_fsck()               whether the binary under test has `fsck`
  fsck_problems(out)       fsck's report lines other than resumable partials
  store_invariants(root)   what must hold in a store at any moment, even right
                           after a kill -9 (see its docstring)
  gnu_tar_tree(tars, dir)  GNU tar -xpf of uncompressed layer tars in order
  same_tree(a, b)          a tree_listing diff ('' when equal)
  fault_image(seed, mib)   a several-layer image with two large random blobs
"""

import os
import random
import subprocess
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import make_image as mi  # noqa: E402
import tree_listing  # noqa: E402
from pull_harness import LAZYROOT_BIN  # noqa: E402

SEED = int(os.environ.get("LAZYROOT_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
_announced = False


def announce_seed(stream=sys.stderr):
    global _announced
    if not _announced:
        stream.write("[random seed %d: replay with LAZYROOT_FAULT_SEED=%d]\n" % (SEED, SEED))
        stream.flush()
        _announced = True


def rng(name):
    """A Random for one test, derived from the run's seed and the test's name."""
    announce_seed()
    return random.Random("%d/%s" % (SEED, name))


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def env_float(name, default):
    v = os.environ.get(name)
    return float(v) if v else default


_fsck = None


def has_fsck():
    """True when `lazyroot fsck --help` works (h1's command has landed)."""
    global _fsck
    if _fsck is None:
        r = subprocess.run([LAZYROOT_BIN, "fsck", "--help"], capture_output=True, text=True)
        _fsck = r.returncode == 0 and "fsck" in r.stdout
    return _fsck


def fsck_problems(stdout):
    """fsck prints one `<object>: <what is wrong>` line per problem, and
    `note: ...` lines for what an interrupted command leaves (a resumable
    partial download, a temp file): every other line is a problem."""
    return [l for l in stdout.splitlines() if l.strip() and not l.startswith("note: ") and "partial" not in l]


def fsck_notes(stdout):
    return [l[len("note: "):] for l in stdout.splitlines() if l.startswith("note: ")]


def _walk_files(top, skip_dirs=()):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip_dirs]
        for n in filenames + [d for d in dirnames]:
            yield os.path.join(dirpath, n)


def store_invariants(root, expect_blobs=None):
    """What holds in a store at every moment (a kill -9 included). Returns a
    list of problems (empty: fine):
      - every blobs/sha256/<hex> hashes to <hex> (sha256sum);
      - no `.tmp.` file outside tmp/ (a publish is temp + rename; a temp
        name left beside the published name is a half-written object) --
        only while the binary has no fsck: fsck calls such leftovers of a
        killed command notes (exit 0), and its verdict is the one that counts;
      - every rootfs/<hex>.done names a directory rootfs/<hex> (gc removes
        the markers before the trees, so a killed gc leaves none behind);
      - every images/*.json record is complete JSON naming a manifest whose
        blob is present (a record is published after everything it needs).
    expect_blobs: digests that must be present."""
    import json
    problems = []
    bdir = os.path.join(root, "blobs", "sha256")
    names = sorted(os.listdir(bdir)) if os.path.isdir(bdir) else []
    files = [n for n in names if os.path.isfile(os.path.join(bdir, n)) and len(n) == 64
             and all(c in "0123456789abcdef" for c in n)]
    for n in sorted(set(names) - set(files)):
        if ".tmp." not in n:  # temp names are reported below
            problems.append("blobs/sha256/%s: not a digest name" % n)
    if files:
        out = subprocess.run(["sha256sum", "--"] + files, cwd=bdir, capture_output=True, text=True)
        if out.returncode != 0:
            problems.append("sha256sum over blobs failed: %s" % out.stderr[-500:])
        for line in out.stdout.splitlines():
            h, name = line.split(None, 1)
            name = name.lstrip("*")
            if h != name:
                problems.append("blob %s hashes to sha256:%s" % (name, h))
    have = {"sha256:" + n for n in files}
    for d in expect_blobs or ():
        if d not in have:
            problems.append("blob %s missing" % d)
    rootfs = os.path.join(root, "rootfs")
    skip = set()
    if os.path.isdir(rootfs):
        for n in os.listdir(rootfs):
            p = os.path.join(rootfs, n)
            if os.path.isdir(p):
                skip.add(p)  # an extracted tree: image content, not store files
            if n.endswith(".done") and not os.path.isdir(os.path.join(rootfs, n[:-5])):
                problems.append("rootfs/%s exists but rootfs/%s does not" % (n, n[:-5]))
    for p in [] if has_fsck() else _walk_files(root, skip_dirs=skip | {os.path.join(root, "tmp")}):
        if ".tmp." in os.path.basename(p):
            problems.append("temp file outside tmp/: %s" % os.path.relpath(p, root))
    idir = os.path.join(root, "images")
    if os.path.isdir(idir):
        for dirpath, _, filenames in os.walk(idir):
            for n in filenames:
                if not n.endswith(".json"):
                    continue
                p = os.path.join(dirpath, n)
                try:
                    with open(p) as f:
                        rec = json.load(f)
                except (OSError, ValueError) as e:
                    problems.append("image record %s unreadable: %s" % (os.path.relpath(p, root), e))
                    continue
                digests = [v for v in _strings(rec) if v.startswith("sha256:") and len(v) == 71]
                if digests and not any(d in have for d in digests):
                    problems.append("image record %s names %s, none stored" % (os.path.relpath(p, root), digests))
    return problems


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def stale_extract_temps(root):
    """Temp dirs an extract leaves beside rootfs/<hex> when it is killed."""
    d = os.path.join(root, "rootfs")
    return sorted(n for n in os.listdir(d) if ".lazyroot-tmp-" in n) if os.path.isdir(d) else []


def gnu_tar_tree(tars, d, scratch):
    """GNU tar -xpf of each uncompressed layer tar in order into d (images
    without whiteouts), keeping owners (as root) and xattrs."""
    os.makedirs(d)
    for i, t in enumerate(tars):
        p = os.path.join(scratch, "layer-%d.tar" % i)
        with open(p, "wb") as f:
            f.write(t)
        args = ["tar", "-xpf", p, "-C", d, "--xattrs", "--xattrs-include=*"]
        if os.geteuid() == 0:
            args += ["--numeric-owner", "--same-owner"]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("GNU tar -xpf %s: %s" % (p, r.stderr[-2000:]))
        os.unlink(p)
    return d


LISTING = dict(dir_mtime=False, ignore_xattrs=["security.selinux"])


def listing(d):
    return tree_listing.listing(d, **LISTING)


def same_tree(ours, want_listing, label="GNU tar"):
    """'' when the tree at `ours` lists like want_listing, else the diff."""
    return tree_listing.diff(listing(ours), want_listing, "lazyroot", label)


def many_files(tag, n):
    files = [{"path": "usr", "type": "dir"}, {"path": "usr/share", "type": "dir"},
             {"path": "usr/share/%s" % tag, "type": "dir"}]
    r = random.Random(tag)
    for i in range(n):
        files.append({"path": "usr/share/%s/f%04d.txt" % (tag, i),
                      "content": ("%s %d " % (tag, i)).encode() * r.randrange(1, 400),
                      "mode": r.choice([0o644, 0o600, 0o755])})
    return files


def fault_image(tag="fault", big_mib=12, cmd="sh"):
    """Five layers: small files (gzip), big random (gzip), many small files
    plus a little random data (zstd), big random (uncompressed), a few files
    (gzip). Returns (Image, [Layer]); each Layer's .tar is its uncompressed tar."""
    layers = [
        mi.build_layer(mi.default_files(tag)),
        mi.build_layer(random_mib=big_mib, seed=101),
        mi.build_layer(many_files(tag + "-z", 300), random_mib=2, compression="zstd", seed=102),
        mi.build_layer(random_mib=big_mib, compression="none", seed=103),
        mi.build_layer([{"path": "etc/%s.conf" % tag, "content": "%s\n" % tag}]),
    ]
    img = mi.build_image(layers, config={"Cmd": [cmd]})
    return img, layers
