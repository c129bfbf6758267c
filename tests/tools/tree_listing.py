#!/usr/bin/env python3
"""Canonical one-line-per-entry listing of a directory tree: the oracle format
the extract and mount tests diff (lazyroot's extract, its FUSE mount,
`umoci unpack`, GNU `tar -xpf`). Pure Python stdlib, independent of lazyroot.

The walk never follows a symlink (os.lstat, os.scandir; xattrs are read with
follow_symlinks=False). One line per entry, sorted by the path's bytes:

    PATH TYPE MODE UID:GID SIZE SHA256 TARGET LINKGROUP XATTRS [MTIME]

  PATH      "/" for the root, else "/a/b"; bytes outside printable ASCII,
            space, "\\" and "=" are written as \\xHH (raw names survive).
  TYPE      d (dir), f (regular), l (symlink), p (fifo), s (socket),
            c:MAJOR:MINOR / b:MAJOR:MINOR (devices; c:?:? for a rootless
            device placeholder read with --override-stat).
  MODE      4 octal digits of the permission bits incl. suid/sgid/sticky.
  UID:GID   numeric owner.
  SIZE      st_size of regular files, "-" otherwise (dir sizes depend on
            the file system; a symlink's size is its target's length).
  SHA256    hex digest of a regular file's bytes, "-" otherwise.
  TARGET    a symlink's target (escaped like PATH), "-" otherwise.
  LINKGROUP for a non-directory with st_nlink > 1: the smallest PATH among
            the entries of the walk sharing its (st_dev, st_ino); "-" otherwise.
  XATTRS    "-" or name=hexvalue pairs sorted by name, joined by ",".
  MTIME     "mtime=SEC.NNNNNNNNN" unless mtimes are dropped (--no-mtime) or
            the entry is a directory and --ignore-dir-mtime is given.

Options (CLI flags / keyword arguments of listing()):
  --no-mtime              mtime=False
  --ignore-dir-mtime      dir_mtime=False
  --ignore-xattr PREFIX   ignore_xattrs=[...]  (repeatable; e.g. security.selinux)
  --root-attrs / --no-root-attrs   root_attrs (default on: the "/" line)
  --exclude PATH          exclude=[...]  (repeatable; skip the subtree "/a/b")
  --override-stat         override_stat=True: rootless extraction; uid, gid,
                          mode (and the file type, for device placeholders)
                          come from the xattr user.containers.override_stat
                          ("UID:GID:0MODE", st_mode in octal with type bits)
                          when present, and that xattr is not listed.

Module use:
    lines = listing(path, dir_mtime=False, ignore_xattrs=["security.selinux"])
    text = diff(lines_a, lines_b, "lazyroot", "umoci")   # "" when equal
    paths, eio = paths_or_eio(mountpoint)   # a damaged mount: EIO counted
    runs = data_map(file)                    # [(data, hole), ...] by SEEK_DATA
CLI:
    python3 tree_listing.py [options] DIR [DIR2]
prints the listing of DIR, or with DIR2 a unified diff (exit 1 if they differ).
"""

import argparse
import difflib
import errno
import hashlib
import os
import stat
import sys

OVERRIDE_STAT = "user.containers.override_stat"

_SAFE = set(range(0x21, 0x7F)) - {ord("\\"), ord("=")}


def escape(b):
    """Bytes (or str) -> printable, unambiguous text."""
    if isinstance(b, str):
        b = os.fsencode(b)
    return "".join(chr(c) if c in _SAFE else "\\x%02x" % c for c in b)


def _sha256(path):
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        return "unreadable(%s)" % (e.strerror or e.errno)
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            out[n] = None
    return out


def _type_char(mode, rdev):
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISLNK(mode):
        return "l"
    if stat.S_ISFIFO(mode):
        return "p"
    if stat.S_ISSOCK(mode):
        return "s"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "c" if stat.S_ISCHR(mode) else "b"
        if rdev is None:
            return kind + ":?:?"
        return "%s:%d:%d" % (kind, os.major(rdev), os.minor(rdev))
    return "?"


def _walk(top, exclude=()):
    """Yields (relative path bytes, absolute path bytes, lstat) for top and
    everything below it, never following symlinks; `exclude` holds listing
    paths ("/a/b") whose subtrees are skipped entirely."""
    top = os.fsencode(top)
    exclude = {os.fsencode(x) for x in exclude}
    yield b"", top, os.lstat(top)
    stack = [(b"", top)]
    while stack:
        rel, absp = stack.pop()
        with os.scandir(absp) as it:
            entries = list(it)
        for e in entries:
            r = rel + b"/" + e.name
            if r in exclude:
                continue
            st = e.stat(follow_symlinks=False)
            yield r, e.path, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((r, e.path))


def listing(top, mtime=True, dir_mtime=True, ignore_xattrs=(), root_attrs=True, override_stat=False,
            exclude=()):
    """The sorted list of listing lines for the tree at top (module doc)."""
    rows = []
    groups = {}
    for rel, absp, st in _walk(top, exclude):
        if rel == b"" and not root_attrs:
            continue
        rows.append((rel or b"/", absp, st))
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            p = rel or b"/"
            if key not in groups or p < groups[key]:
                groups[key] = p
    rows.sort(key=lambda r: r[0])
    lines = []
    for rel, absp, st in rows:
        mode, uid, gid = st.st_mode, st.st_uid, st.st_gid
        rdev = st.st_rdev
        xattrs = _xattrs(absp)
        if override_stat and OVERRIDE_STAT in xattrs:
            raw = xattrs.pop(OVERRIDE_STAT)
            try:
                u, g, m = (raw or b"").decode().split(":")
                uid, gid, omode = int(u), int(g), int(m, 8)
                if stat.S_IFMT(omode) and stat.S_IFMT(omode) != stat.S_IFMT(mode):
                    rdev = None  # a placeholder: the real device number is not recorded
                    mode = omode
                else:
                    mode = stat.S_IFMT(mode) | stat.S_IMODE(omode)
            except ValueError:
                xattrs[OVERRIDE_STAT] = raw  # malformed: show it, so the diff does
        kept = sorted((n, v) for n, v in xattrs.items()
                      if not any(n.startswith(p) for p in ignore_xattrs))
        xa = ",".join("%s=%s" % (escape(n), "?" if v is None else v.hex()) for n, v in kept) or "-"
        is_reg = stat.S_ISREG(mode)
        real_reg = stat.S_ISREG(st.st_mode)
        size = str(st.st_size) if is_reg and real_reg else "-"
        digest = _sha256(absp) if is_reg and real_reg else "-"
        target = escape(os.readlink(absp)) if stat.S_ISLNK(st.st_mode) else "-"
        group = "-"
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            group = escape(groups[(st.st_dev, st.st_ino)])
        fields = [escape(rel), _type_char(mode, rdev), "%04o" % stat.S_IMODE(mode), "%d:%d" % (uid, gid),
                  size, digest, target, group, xa]
        if mtime and (dir_mtime or not stat.S_ISDIR(st.st_mode)):
            fields.append("mtime=%d.%09d" % divmod(st.st_mtime_ns, 10 ** 9))
        lines.append(" ".join(fields))
    return lines


def data_map(path):
    """[(data start, hole start), ...] of a file, walked with SEEK_DATA and
    SEEK_HOLE (the kernel's answer for a source file, lazyroot's for a mount)."""
    runs = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            runs.append((start, end))
            off = end
    finally:
        os.close(fd)
    return runs


def paths_or_eio(top):
    """(sorted relative paths, EIO count) below top, for a mount whose tree
    may be damaged where it has not been read yet (it is read lazily): a
    directory or entry whose records fail their checks answers EIO, which is
    counted and its path left out. Any other error is raised."""
    out, todo, eio = [], [""], 0
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(os.path.join(top, rel) if rel else top) as it:
                for e in it:
                    p = os.path.join(rel, e.name) if rel else e.name
                    try:
                        if e.is_dir(follow_symlinks=False):
                            todo.append(p)
                        out.append(p)
                    except OSError as err:
                        if err.errno != errno.EIO:
                            raise
                        eio += 1
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            eio += 1
    return sorted(out), eio


def diff(a, b, name_a="a", name_b="b", context=1):
    """Unified diff of two listings; "" when they are equal."""
    if a == b:
        return ""
    return "\n".join(difflib.unified_diff(a, b, name_a, name_b, n=context, lineterm=""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("dir2", nargs="?", help="print a diff of the two listings instead (exit 1 if they differ)")
    ap.add_argument("--no-mtime", action="store_true", help="leave all mtimes out")
    ap.add_argument("--ignore-dir-mtime", action="store_true", help="leave directory mtimes out")
    ap.add_argument("--ignore-xattr", action="append", default=[], metavar="PREFIX",
                    help="leave out xattrs whose name starts with PREFIX (repeatable)")
    ap.add_argument("--exclude", action="append", default=[], metavar="PATH",
                    help="skip the subtree at PATH, written as in the listing (/a/b) (repeatable)")
    ap.add_argument("--root-attrs", dest="root_attrs", action="store_true", default=True,
                    help="list the root directory itself as '/' (default)")
    ap.add_argument("--no-root-attrs", dest="root_attrs", action="store_false")
    ap.add_argument("--override-stat", action="store_true",
                    help="take uid:gid:mode from the xattr %s (rootless trees)" % OVERRIDE_STAT)
    a = ap.parse_args(argv)
    kw = dict(mtime=not a.no_mtime, dir_mtime=not a.ignore_dir_mtime, ignore_xattrs=a.ignore_xattr,
              root_attrs=a.root_attrs, override_stat=a.override_stat, exclude=a.exclude)
    one = listing(a.dir, **kw)
    if a.dir2 is None:
        sys.stdout.write("".join(line + "\n" for line in one))
        return 0
    d = diff(one, listing(a.dir2, **kw), a.dir, a.dir2)
    if d:
        print(d)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
