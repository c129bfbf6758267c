#!/usr/bin/env python3
"""Edge-case layer tars for the extract tests (tests/integration/test_extract_*.py),
built at test time with Python tarfile or GNU tar. Each builder documents its
recipe in one line; the row numbers are those of
shared/reference/correctness.md §1.

    tar = tar_bytes([ent("etc/x", "hi"), ent("bin", kind="dir")], fmt="pax")
    layer = as_layer(tar, "gzip")              # a make_image.Layer
    tar = gnu_tar(staging_dir, ["sp"], "--sparse", "--format=posix")
    CASES["whiteouts"]                         # [(tar bytes, compression), ...]

Entry dicts (ent()): path, kind (file|dir|symlink|hardlink|fifo|char|block),
content, mode, uid, gid, mtime, target, major/minor, xattrs {name: bytes},
pax {key: str} (extra PAX records, PAX format only).
"""

import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_image as mi  # noqa: E402

MTIME = 1700000000
# VFS_CAP_REVISION_2 with cap_net_raw (bit 13) permitted + effective.
CAP_NET_RAW = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")

_KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE,
          "block": tarfile.BLKTYPE}


def ent(path, content=None, kind=None, **kw):
    """One entry; kind defaults to file (or symlink/hardlink when target= is
    given with kind)."""
    e = {"path": path, "kind": kind or "file"}
    if content is not None:
        e["content"] = content
    e.update(kw)
    return e


def _tarinfo(e):
    kind = e.get("kind", "file")
    ti = tarfile.TarInfo(e["path"])
    ti.type = _KINDS[kind]
    ti.mtime = e.get("mtime", MTIME)
    ti.uid, ti.gid = e.get("uid", 0), e.get("gid", 0)
    ti.uname, ti.gname = e.get("uname", ""), e.get("gname", "")
    default_mode = {"dir": 0o755, "symlink": 0o777}.get(kind, 0o644)
    ti.mode = e.get("mode", default_mode)
    ti.linkname = e.get("target", "")
    ti.devmajor, ti.devminor = e.get("major", 0), e.get("minor", 0)
    pax = dict(e.get("pax", {}))
    for name, value in e.get("xattrs", {}).items():
        # tarfile writes str values; surrogateescape round-trips any byte.
        pax["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    ti.pax_headers = pax
    data = None
    if kind == "file":
        data = e.get("content", b"")
        if isinstance(data, str):
            data = data.encode()
        ti.size = len(data)
    return ti, data


def tar_bytes(entries, fmt="pax", global_pax=None):
    """Tar bytes written by Python tarfile in format pax|gnu|ustar. global_pax
    adds a PAX global header ('g') first (row 54)."""
    fmts = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}
    buf = io.BytesIO()
    kw = {"pax_headers": global_pax} if global_pax else {}
    with tarfile.open(fileobj=buf, mode="w", format=fmts[fmt], encoding="utf-8", errors="surrogateescape",
                      **kw) as tf:
        for e in entries:
            ti, data = _tarinfo(e)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gnu_tar(staging, names, *opts):
    """GNU tar of `names` (relative to `staging`, in that order, no
    recursion), owned 0:0, numeric, deterministic mtimes unless the files
    already carry their own."""
    cmd = ["tar", "-C", staging, "-cf", "-", "--numeric-owner", "--owner=0", "--group=0",
           "--no-recursion"] + list(opts) + ["--"] + list(names)
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def as_layer(tar, compression="gzip"):
    return mi.Layer(tar, mi._compress(tar, compression, 6), compression)


def image(layers, fmt="oci"):
    """layers: [(tar bytes, compression)] -> make_image.Image."""
    return mi.build_image([as_layer(t, c) for t, c in layers], fmt=fmt)


def make_sparse_staging(staging, all_hole=False):
    """Recipe: truncate -s 3M sp; write 'head' at 0, 4 KiB of 'x' at 1 MiB,
    'tail' at the last 4 bytes; tailhole: 8 KiB of data then a hole to
    2 MiB; many: 40 small data runs 64 KiB apart; a plain file beside them. With all_hole, only `truncate -s 2M
    allhole` (a sparse map with no data at all)."""
    if all_hole:
        os.makedirs(staging, exist_ok=True)
        with open(os.path.join(staging, "allhole"), "wb") as f:
            f.truncate(2 << 20)
        os.utime(os.path.join(staging, "allhole"), (MTIME, MTIME))
        return ["allhole"]
    os.makedirs(staging, exist_ok=True)
    p = os.path.join(staging, "sp")
    with open(p, "wb") as f:
        f.truncate(3 << 20)
        f.seek(0)
        f.write(b"head")
        f.seek(1 << 20)
        f.write(b"x" * 4096)
        f.seek((3 << 20) - 4)
        f.write(b"tail")
    with open(os.path.join(staging, "tailhole"), "wb") as f:  # data, then a hole to the end
        f.write(b"y" * 8192)
        f.truncate(2 << 20)
    with open(os.path.join(staging, "many"), "wb") as f:      # 40 extents: old-GNU extension headers
        for i in range(40):
            f.seek(i * (64 << 10) + 100)
            f.write(b"%03d" % i * 100)
        f.truncate(40 * (64 << 10))
    with open(os.path.join(staging, "plain"), "wb") as f:
        f.write(b"not sparse\n")
    os.link(p, os.path.join(staging, "sp-link"))             # a hardlink to the sparse file
    names = ["sp", "sp-link", "tailhole", "many", "plain"]
    for n in names:
        os.chmod(os.path.join(staging, n), 0o640)
        os.utime(os.path.join(staging, n), (MTIME, MTIME))
    return names


def sparse_tar(staging, fmt, version=None, all_hole=False):
    """GNU tar --sparse --format=posix [--sparse-version=0.0|0.1|1.0] (PAX
    sparse, row 55) or --format=gnu (old-GNU 'S' entries)."""
    names = make_sparse_staging(staging, all_hole)
    opts = ["--sparse", "--format=" + fmt]
    if version:
        opts.append("--sparse-version=" + version)
    if fmt == "posix":
        opts.append("--pax-option=delete=atime,delete=ctime")
    return gnu_tar(staging, names, *opts)


def _long(prefix, n):
    s = prefix
    i = 0
    while len(s) < n:
        s += "/seg%02d-%s" % (i, "x" * 20)
        i += 1
    return s


def format_entries(fmt):
    """The same content for every format; long names only where the format
    can hold them (ustar: <= 256 in prefix+name, link target <= 100)."""
    long_name = _long("deep", 140)           # > 100, splits into ustar prefix + name
    very_long = _long("deeper", 300)          # only PAX / GNU
    es = [ent("etc", kind="dir"),
          ent("etc/hostname", "lazyroot\n"),
          ent("etc/shadow", "root:*:1::::::\n", mode=0o640, gid=42),
          ent("bin", kind="dir"),
          ent("bin/su", "#!/bin/true\n", mode=0o4755),
          ent("bin/wall", "#!/bin/true\n", mode=0o2755, gid=5),
          ent("bin/sh", kind="symlink", target="dash"),
          ent("bin/dash", "#!dash\n", mode=0o755),
          ent("bin/rbash", kind="hardlink", target="bin/dash"),
          ent("tmp", kind="dir", mode=0o1777),
          ent("srv", kind="dir", mode=0o2775, uid=1000, gid=1000),
          ent("srv/caf\u00e9-\u65e5\u672c.txt", "utf-8 name\n", uid=1000, gid=1000),
          ent("srv/empty", ""),
          ent("srv/mtime-old", "1970\n", mtime=1),
          ent("srv/new\nline", "nl\n"), ent("srv/back\\slash", "bs\n"), ent("srv/eq=name", "eq\n"),
          ent("srv/ lead space", "sp\n"), ent("srv/tab\there", "tab\n"),
          ent(long_name, kind="dir"),
          ent(long_name + "/file", "long path\n")]
    if fmt != "ustar":
        es += [ent(very_long, kind="dir"),
               ent(very_long + "/f", "very long\n"),
               ent("srv/longlink", kind="symlink", target="/" + very_long + "/f"),
               ent("srv/longhard", kind="hardlink", target=very_long + "/f"),
               ent("srv/bigid", "big ids\n", uid=3000000, gid=3000001),
               ent("srv/" + "n" * 255, "NAME_MAX\n")]
    if fmt == "gnu":
        es.append(ent("srv/raw-\udce9\udcff", "non-utf8 name\n"))   # bytes caf\xe9 in the header
    if fmt == "pax":
        es.append(ent("srv/frac", "fractional mtime\n", pax={"mtime": "1234567890.5"}))
    return es


def cases():
    """Named images for the umoci oracle: {name: [(tar, compression), ...]}."""
    c = {}
    for fmt in ("pax", "gnu", "ustar"):
        c["format-" + fmt] = [(tar_bytes(format_entries(fmt), fmt), "gzip" if fmt != "gnu" else "none")]
    # rows 1-4, 12-14, 16, 17
    c["whiteouts"] = [
        (tar_bytes([ent("a", "a\n"), ent("b", "lower b\n"), ent("d", kind="dir"), ent("d/x", "x"),
                    ent("d/s", kind="dir"), ent("d/s/y", "y"), ent("keep", "keep\n"),
                    ent("e", kind="dir"), ent("e/f", "f"), ent("s", kind="symlink", target="e"),
                    ent(".wh.etc/somefile", "prefix on a dir component\n"),  # row 13
                    ent("g", kind="dir"), ent("g/foo", "foo")]), "gzip"),
        (tar_bytes([ent(".wh.a", ""), ent(".wh.d", kind="dir"),
                    ent("c", "same layer\n"), ent(".wh.c", ""),          # row 3: c survives
                    ent(".wh.b", ""), ent("b", "upper b\n"),             # row 4
                    ent(".wh.s", kind="symlink", target="x"),            # rows 12, 14
                    ent(".wh.nothing", ""), ent("nd/.wh.x", ""),         # rows 17, 10
                    ent(".wh.g", "")]), "none"),
        (tar_bytes([ent("g", kind="dir", mode=0o700), ent("g/baz", "baz")]), "gzip"),  # row 16
    ]
    # rows 6-9
    c["opaque"] = [
        (tar_bytes([ent("d", kind="dir"), ent("d/x", "x"), ent("d/s", kind="dir"), ent("d/s/y", "y"),
                    ent("o", kind="dir"), ent("o/old", "old"), ent("p", kind="dir"), ent("p/keep", "k")]),
         "gzip"),
        (tar_bytes([ent("d", kind="dir", mode=0o700), ent("d/z", "z"), ent("d/s", kind="dir"),
                    ent("d/.wh..wh..opq", ""),
                    ent("o/.wh..wh..opq", ""), ent("o/.wh.old", ""), ent("o/new", "new")]), "gzip"),
    ]
    c["opaque-root"] = [
        (tar_bytes([ent("a", "a"), ent("d", kind="dir"), ent("d/x", "x")]), "none"),
        (tar_bytes([ent(".wh..wh..opq", ""), ent("n", "n\n")]), "gzip"),
    ]
    # rows 31-34, 39
    c["hardlinks"] = [
        (tar_bytes([ent("f", "v1\n", mode=0o640, uid=7, gid=8), ent("h", kind="hardlink", target="f",
                                                                   mode=0o777, uid=99, gid=99, mtime=222),
                    ent("g", "g1\n"), ent("t", "t\n"), ent("s", kind="symlink", target="t"),
                    ent("hs", kind="hardlink", target="s"),
                    ent("r", "r1\n"), ent("rh", kind="hardlink", target="r"), ent("r", "r2\n"),
                    ent("sub", kind="dir"), ent("sub/w", "w\n")]), "gzip"),
        (tar_bytes([ent("gl", kind="hardlink", target="g"), ent("c1", kind="hardlink", target="gl"),
                    ent("c2", kind="hardlink", target="/c1"), ent("sub/wl", kind="hardlink", target="./sub/w")]),
         "none"),
        (tar_bytes([ent(".wh.g", ""), ent("t", "t2\n")]), "gzip"),
    ]
    # rows 22, 43-46: symlinked parents, resolved in-root
    c["symlink-parents"] = [
        (tar_bytes([ent("usr", kind="dir"), ent("usr/lib", kind="dir"), ent("lib", kind="symlink", target="usr/lib"),
                    ent("etc", kind="dir"), ent("l", kind="symlink", target="/etc"),
                    ent("e", kind="symlink", target="../../../../tmp"),
                    ent("a", kind="symlink", target="b"), ent("b", kind="symlink", target="c"),
                    ent("c", kind="dir"), ent("dl", kind="symlink", target="nonexist/deeper"),
                    ent("s", kind="symlink", target="/etc")]), "gzip"),
        (tar_bytes([ent("lib/systemd/x.service", "[Unit]\n"), ent("l/x", "via abs\n"),
                    ent("e/evil", "clamped\n"), ent("a/x", "chain\n"), ent("dl/y", "dead\n"),
                    ent("s", kind="dir"), ent("s/n", "s is a dir now\n")]), "gzip"),
    ]
    # rows 19-21, 23, 25: type changes, duplicates, dir attrs/xattrs replaced, implicit parents
    c["types-dups"] = [
        (tar_bytes([ent("p", "file p\n"), ent("q", kind="dir"), ent("q/c", "c"),
                    ent("dd", kind="dir", mode=0o750, xattrs={"user.a": b"lower"}),
                    ent("ln", kind="symlink", target="p"), ent("fi", kind="fifo")]), "gzip"),
        (tar_bytes([ent("p", kind="dir"), ent("p/n", "n"), ent("q", "file q\n"),
                    ent("dd", kind="dir", mode=0o711, xattrs={"user.b": b"upper"}),
                    ent("ln", "was a symlink\n"), ent("fi", kind="dir"),
                    ent("f", "first\n"), ent("f", "second\n"),
                    ent("k", kind="dir"), ent("k", "k is a file\n"),
                    ent("dup", kind="dir", mode=0o700), ent("dup", kind="dir", mode=0o751),
                    ent("x/y/z", "implicit parents\n"), ent("./dot/x", "dot\n"), ent("a//b/./c", "c\n")]),
         "none"),
    ]
    # rows 53, 60, 61 (needs root)
    c["special"] = [
        (tar_bytes([ent("dev", kind="dir"), ent("dev/null", kind="char", major=1, minor=3, mode=0o666),
                    ent("dev/sda", kind="block", major=8, minor=0, mode=0o660, gid=6),
                    ent("dev/fifo", kind="fifo", mode=0o600),
                    ent("bin", kind="dir"),
                    ent("bin/ping", "ping\n", mode=0o755, xattrs={"security.capability": CAP_NET_RAW}),
                    ent("bin/sudo", "sudo\n", mode=0o4711),
                    ent("x", "x\n", xattrs={"user.bin": bytes(range(256)),
                                            "trusted.t": b"tee", "security.selinux": b"system_u:object_r:x\0"}),
                    ent("xd", kind="dir", mode=0o3775, xattrs={"user.dir": b"\xff\x00\xfe"}),
                    ent("xh", kind="hardlink", target="x"),
                    # chown clears setuid/setgid: the mode must be applied after it
                    ent("bin/usu", "usu\n", mode=0o6750, uid=1000, gid=1000),
                    ent("bin/ucap", "ucap\n", mode=0o750, uid=1000, gid=1000,
                        xattrs={"security.capability": CAP_NET_RAW}),
                    ent("bin/ulink", kind="hardlink", target="bin/ucap"),
                    # directories whose modes would block their own children
                    ent("ro", kind="dir", mode=0o555), ent("ro/f", "in ro\n", mode=0o444),
                    ent("ro/sub", kind="dir", mode=0o000), ent("ro/sub/g", "in 000\n", mode=0o000),
                    ent("sgid", kind="dir", mode=0o2770, uid=1000, gid=1000),
                    ent("sgid/file", "plain\n", mode=0o640)]), "gzip"),
    ]
    # rows 5, 15, 26, 40, 41, 48: order-dependent whiteouts, whiteout through
    # a symlinked parent, the root entry, opaque after a hardlink, AUFS
    # metadata, one layer rewriting a path through a symlink and back
    c["order-root-aufs"] = [
        (tar_bytes([ent("./", kind="dir", mode=0o750, uid=5, gid=6, mtime=1234, xattrs={"user.root1": b"1"}),
                    ent("s3", kind="symlink", target="e2"), ent("e2", kind="dir"), ent("e2/x", "x"),
                    ent("a", kind="dir", mode=0o700), ent("a/old", "old"),
                    ent("b", kind="dir", mode=0o700), ent("b/old", "old"),
                    ent("d", kind="dir"), ent("d/f", "F\n"), ent("s2", kind="symlink", target="d"),
                    ent("d/g", "G\n"), ent("e", kind="dir"), ent("e/f", "F\n")]), "gzip"),
        (tar_bytes([ent(".", kind="dir", mode=0o711, uid=0, gid=7, xattrs={"user.root2": b"2"}),  # rows 21, 26
                    ent("s3/.wh..wh..opq", ""),                       # opaque through a symlinked parent
                    ent(".wh.a", ""), ent("a/new", "new"),            # row 5: whiteout first
                    ent("b/new", "new"), ent(".wh.b", ""),            # row 5: whiteout after
                    ent("s2/.wh.f", ""),                              # row 15
                    ent("h", kind="hardlink", target="e/f"), ent("e/.wh..wh..opq", ""),  # row 40
                    ent(".wh..wh.plnk", kind="dir", mode=0o700),      # row 41
                    ent(".wh..wh.plnk/123.456", "plnk\n"),
                    ent("x", kind="hardlink", target=".wh..wh.plnk/123.456"),
                    ent(".wh..wh.aufs", ""),
                    ent("foo", kind="dir"), ent("foo/tmp/x", "1\n"),   # row 48
                    ent("foo", kind="symlink", target="/"), ent("foo/tmp/x", "2\n"),
                    ent("foo", kind="dir"), ent("foo/tmp/x", "3\n")]), "gzip"),
    ]
    # rows 58, 63, 64, 67, 70: header-only types with a size, no end-of-archive
    # blocks, trailing junk after it, a multi-member gzip, empty layers
    c["stream-shapes"] = [
        (header_only_with_size(), "gzip"),
        (no_eoa(tar_bytes([ent("noeoa", "no end-of-archive blocks\n")])), "none"),
        (tar_bytes([ent("junk-after", "trailing junk follows\n")]) + b"junk" * 300, "gzip"),
        (b"", "none"),
        (bytes(1024), "gzip"),
    ]
    c["tar-quirks"] = [(tar_quirks(), "gzip")]
    # row 18: moby/go-archive diff_test.go TestApplyLayerWhiteouts, 4 layers
    # (files 0600, dirs 0700, in walk order, as its makeTestLayer tars them)
    c["moby-whiteouts"] = [(tar_bytes(_moby_layer(l)), "gzip") for l in MOBY_WHITEOUT_LAYERS]
    # Empty PAX record values mean "delete the keyword" (POSIX pax; Go's
    # mergePAX skips them, so umoci/containerd/moby do): no empty xattr, and
    # an empty `path` record keeps the ustar name.
    c["pax-empty-values"] = [
        (tar_bytes([ent("pe", kind="dir"),
                    ent("pe/emptyx", "x\n", xattrs={"user.empty": b"", "user.full": b"v"}),
                    ent("pe/emptypath", "p\n", pax={"path": ""}),
                    ent("pe/emptyuid", "u\n", uid=5, pax={"uid": ""})]), "gzip"),
    ]
    return c


def _set_header_field(block, off, width, value):
    """Rewrites one octal field of a 512-byte header and its checksum."""
    block = bytearray(block)
    block[off:off + width] = ("%0*o\0" % (width - 1, value)).encode()
    block[148:156] = b"        "
    block[148:156] = ("%06o\0 " % sum(block)).encode()
    return bytes(block)


def _gnu_longname_block(name_bytes):
    """An old-GNU 'L' header plus its data blocks carrying name_bytes."""
    ti = tarfile.TarInfo("././@LongLink")
    ti.type, ti.size, ti.mode, ti.mtime = tarfile.GNUTYPE_LONGNAME, len(name_bytes), 0o644, 0
    pad = (512 - len(name_bytes) % 512) % 512
    return ti.tobuf(tarfile.GNU_FORMAT) + name_bytes + bytes(pad)


def _one(e, fmt=tarfile.GNU_FORMAT):
    ti, data = _tarinfo(e)
    out = ti.tobuf(fmt)
    if data:
        out += data + bytes((512 - len(data) % 512) % 512)
    return out


def tar_quirks():
    """Recipe (rows 51, 52, 56, 57): hand-assembled headers.
    - two GNU 'L' headers before one entry: the last one names it;
    - a GNU 'L' name with bytes after a NUL: cut at the NUL;
    - a GNU-magic header whose ustar `prefix` bytes hold atime/ctime octals;
    - a PAX `size` record overriding a ustar size field of 0;
    - uname/gname present, uid/gid 0: the numbers win;
    - a negative (pre-1970) GNU base-256 mtime."""
    out = _one(ent("q", kind="dir"))
    long_a = ("q/" + "a" * 120).encode()
    long_b = ("q/" + "b" * 130).encode()
    out += _gnu_longname_block(long_a) + _gnu_longname_block(long_b)
    out += _one(ent("q/short-name-overridden", "last L wins\n"))
    out += _gnu_longname_block(("q/" + "n" * 110).encode() + b"\0garbage-after-nul")
    out += _one(ent("q/short-nul", "cut at NUL\n"))
    hdr = bytearray(_one(ent("q/gnu-prefix", "prefix holds times\n")))
    hdr[345:357] = b"%011o\0" % 1600000000   # atime where ustar has its prefix
    hdr[357:369] = b"%011o\0" % 1600000001   # ctime
    hdr[148:156] = b"        "
    hdr[148:156] = b"%06o\0 " % sum(hdr[:512])
    out += bytes(hdr)
    ti, data = _tarinfo(ent("q/pax-size", "12345", pax={"size": "5"}))
    pax_entry = ti.tobuf(tarfile.PAX_FORMAT)
    body = bytearray(pax_entry[-512:])            # the ustar header after the 'x' one
    body[124:136] = b"%011o\0" % 0
    body[148:156] = b"        "
    body[148:156] = b"%06o\0 " % sum(body)
    out += pax_entry[:-512] + bytes(body) + data + bytes(512 - len(data))
    out += _one(ent("q/named-owner", "uname daemon\n", uname="daemon", gname="daemon"))
    out += _one(ent("q/pre-1970", "old\n", mtime=-86400 * 365))
    return out + bytes(1024)


def header_only_with_size():
    """Recipe (row 58): ustar symlink, fifo and dir headers whose size field
    says 1000 bytes; no data follows them, then a regular file."""
    out = b""
    for e in (ent("sl", kind="symlink", target="target"), ent("ff", kind="fifo"),
              ent("hd", kind="dir")):
        ti, _ = _tarinfo(e)
        out += _set_header_field(ti.tobuf(tarfile.USTAR_FORMAT), 124, 12, 1000)
    ti, data = _tarinfo(ent("after-header-only", "ok\n"))
    out += ti.tobuf(tarfile.USTAR_FORMAT) + data + bytes(512 - len(data))
    return out + bytes(1024)


def no_eoa(tar):
    """Recipe (row 63): the tar cut right after its last entry's data block."""
    end = len(tar)
    while end >= 512 and tar[end - 512:end] == bytes(512):
        end -= 512
    return tar[:end]


def multi_member_gzip(tar, parts=3):
    """Recipe (row 67): the tar split in `parts` pieces, each its own gzip member."""
    n = max(1, len(tar) // parts)
    return b"".join(gzip.compress(tar[i:i + n], mtime=0) for i in range(0, len(tar), n))


def zstd_frames_with_skippable(tar):
    """Recipe (row 68): a skippable frame, then the tar in two zstd frames."""
    half = len(tar) // 2
    z = [subprocess.run(["zstd", "-q", "-c"], input=p, check=True, capture_output=True).stdout
         for p in (tar[:half], tar[half:])]
    skip = struct.pack("<II", 0x184D2A50, 8) + b"lazyroot"
    return skip + z[0] + z[1]


MOBY_BASE = [".baz", "bar/", "bar/bax", "bar/bay/", "baz", "foo/", "foo/.abc", "foo/.bcd/", "foo/.bcd/a",
             "foo/cde/", "foo/cde/def", "foo/cde/efg", "foo/fgh", "foobar"]
MOBY_WHITEOUT_LAYERS = [
    MOBY_BASE,
    [".bay", ".wh.baz", "foo/", "foo/.bce", "foo/.wh..wh..opq", "foo/cde/", "foo/cde/efg"],
    [".bay", ".wh..baz", ".wh.foobar", "foo/", "foo/.abc", "foo/.wh.cde", "bar/"],
    [".abc", ".wh..wh..opq", "foobar"],
]
# The tree after each layer, as readDirContents lists it (dirs end in "/").
MOBY_WHITEOUT_EXPECTED = [
    MOBY_BASE,
    [".bay", ".baz", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.bce", "foo/cde/", "foo/cde/efg", "foobar"],
    [".bay", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.abc", "foo/.bce"],
    [".abc", "foobar"],
]


def _moby_layer(paths):
    out = []
    for p in sorted(paths):
        if p.endswith("/"):
            out.append(ent(p.rstrip("/"), kind="dir", mode=0o700))
        else:
            out.append(ent(p, "", mode=0o600))
    return out


def _deflate_segment(data):
    """Raw deflate of data ending with a full flush: byte-aligned, no
    back-references, not final, so segments can be concatenated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)


def gzip_bomb(size=2 << 30, name="zeros"):
    """Recipe: one tar entry `name` of `size` zero bytes, as ONE gzip member
    built from a 1 MiB all-zero deflate segment repeated (about 1000:1).
    Returns (gzip bytes, diff_id of the uncompressed tar) without holding
    the tar in memory."""
    assert size % (1 << 20) == 0
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = size, MTIME, 0o644
    header = ti.tobuf(tarfile.GNU_FORMAT)
    zero = bytes(1 << 20)
    seg = _deflate_segment(zero)
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", _deflate_segment(header)]
    h = hashlib.sha256(header)
    crc = zlib.crc32(header)
    for _ in range(size >> 20):
        parts.append(seg)
        h.update(zero)
        crc = zlib.crc32(zero, crc)
    trailer = bytes(1024)
    h.update(trailer)
    crc = zlib.crc32(trailer, crc)
    parts.append(_deflate_segment(trailer))
    parts.append(b"\x03\x00")  # an empty final fixed-Huffman block
    total = len(header) + size + len(trailer)
    parts.append(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return b"".join(parts), "sha256:" + h.hexdigest()


if __name__ == "__main__":
    import json
    print(json.dumps({k: [len(t) for t, _ in v] for k, v in cases().items()}))
