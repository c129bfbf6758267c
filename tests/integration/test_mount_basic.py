#!/usr/bin/env python3
"""lazyroot mount: a three-layer image (gzip, zstd, uncompressed) pushed to a
real registry, pulled, mounted with FUSE, and compared file by file with the
layer tars read by Python tarfile (the oracle applies the layers itself:
replacement, whiteouts, hardlinks). Random-offset reads of a multi-checkpoint
random file, reads past EOF, xattrs, negative lookups, read-only refusals,
statvfs, readiness on return, and umount ending the daemon (and waiting for it). Every mount is
unmounted in a cleanup; no process is killed.

Skipped (with the reason in the summary) only when /dev/fuse is missing."""

import errno
import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from peak_rss import daemon_pids  # noqa: E402
from pull_harness import LAZYROOT_BIN, class_store, isolated_env  # noqa: E402

MTIME = 1700000000.5  # a fraction a float holds exactly: checks nanosecond mtimes
BIG = random.Random(5).randbytes(9 * 1024 * 1024 + 123)  # several 2-4 MiB checkpoint spans


def _tar(entries):
    """entries: (name, kind, extra dict). Written by tarfile in PAX format."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, x in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = x.get("mtime", MTIME)
            ti.uid, ti.gid = x.get("uid", 0), x.get("gid", 0)
            ti.mode = x.get("mode", 0o755 if kind == "dir" else 0o644)
            data = None
            if kind == "file":
                data = x["data"]
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, x["target"], 0o777
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, x["target"]
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            for k, v in x.get("xattrs", {}).items():
                ti.pax_headers["SCHILY.xattr." + k] = v
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


LAYER0 = [
    ("bin", "dir", {}),
    ("bin/busybox", "file", {"data": b"#!/bin/sh\necho busybox\n", "mode": 0o755}),
    ("bin/sh", "symlink", {"target": "busybox"}),
    ("bin/ash", "hardlink", {"target": "bin/busybox"}),
    ("bin/su", "file", {"data": b"setuid\n", "mode": 0o4755}),
    ("etc", "dir", {}),
    ("etc/hostname", "file", {"data": b"lower\n"}),
    ("etc/passwd", "file", {"data": b"root:x:0:0::/root:/bin/sh\n" * 40}),
    ("etc/shadow", "file", {"data": b"root:*:19000::::::\n", "mode": 0o640, "uid": 0, "gid": 42}),
    ("etc/caps", "file", {"data": b"cap\n", "xattrs": {"user.lazyroot.test": "hello xattr"}}),
    ("home", "dir", {}),
    ("home/user", "dir", {"mode": 0o700, "uid": 1000, "gid": 1000}),
    ("home/user/notes.txt", "file", {"data": b"notes\n", "uid": 1000, "gid": 1000, "mode": 0o600}),
    ("tmp", "dir", {"mode": 0o1777}),
    ("run", "dir", {}),
    ("run/fifo", "fifo", {}),
    ("old", "dir", {}),
    ("old/gone.txt", "file", {"data": b"whited out\n"}),
    ("data", "dir", {}),
    ("data/big.bin", "file", {"data": BIG}),
    ("data/empty", "file", {"data": b""}),
]
LAYER1 = [
    ("etc", "dir", {"mtime": MTIME + 10}),
    ("etc/hostname", "file", {"data": b"upper\n", "mtime": MTIME + 10}),
    (".wh.old", "file", {"data": b""}),
    ("usr", "dir", {}),
    ("usr/share", "dir", {}),
    ("usr/share/doc.txt", "file", {"data": b"shared documentation\n" * 4000}),
]
LAYER2 = [
    ("data", "dir", {}),
    ("data/plain.txt", "file", {"data": b"from an uncompressed layer\n"}),
]


def bdi_file(mnt):
    st = os.stat(mnt)
    return "/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(st.st_dev), os.minor(st.st_dev))


def oracle(tars):
    """Applies the layer tars (tarfile's reading of them) the OCI way and
    returns {path: record} for the merged tree, with hardlinks resolved."""
    tree = {}  # path -> dict
    for blob in tars:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
            for m in tf.getmembers():
                path = m.name.strip("/")
                if path.startswith("./"):
                    path = path[2:]
                base = os.path.basename(path)
                parent = os.path.dirname(path)
                if base.startswith(".wh."):
                    victim = os.path.join(parent, base[4:]) if parent else base[4:]
                    for p in [p for p in tree if p == victim or p.startswith(victim + "/")]:
                        del tree[p]
                    continue
                old = tree.get(path)
                if old and not (old["type"] == "dir" and m.isdir()):
                    for p in [p for p in tree if p.startswith(path + "/")]:
                        del tree[p]
                rec = {"type": "dir" if m.isdir() else "symlink" if m.issym() else "fifo" if m.isfifo()
                       else "file", "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid,
                       "mtime_ns": round(m.mtime * 1e9),
                       "xattrs": sorted((k[len("SCHILY.xattr."):], v) for k, v in m.pax_headers.items()
                                        if k.startswith("SCHILY.xattr."))}
                if m.islnk():
                    target = tree[m.linkname.strip("/")]
                    target.setdefault("group", [m.linkname.strip("/")])
                    target["group"].append(path)
                    tree[path] = target  # the same object: one inode
                    continue
                if m.issym():
                    rec["target"] = m.linkname
                if m.isfile():
                    data = tf.extractfile(m).read()
                    rec["sha256"] = hashlib.sha256(data).hexdigest()
                    rec["size"] = len(data)
                tree[path] = rec
    out = {}
    for path, r in tree.items():
        row = (r["type"], r["mode"], r["uid"], r["gid"], r.get("size"), r.get("sha256"), r.get("target"),
               r["mtime_ns"], tuple(r["xattrs"]), len(r.get("group", [path])) if r["type"] == "file" else None)
        out[path] = row
    groups = sorted(sorted(r["group"]) for r in {id(r): r for r in tree.values() if "group" in r}.values())
    return out, groups


def listing(top):
    """The same rows, read from a mounted tree with lstat/readlink/xattrs."""
    out, by_ino = {}, {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            kind = ("dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode)
                    else "fifo" if stat.S_ISFIFO(st.st_mode) else "file")
            size = sha = target = nlink = None
            if kind == "file":
                with open(p, "rb") as f:
                    data = f.read()
                sha, size, nlink = hashlib.sha256(data).hexdigest(), st.st_size, st.st_nlink
                if len(data) != st.st_size:
                    raise AssertionError("%s: read %d bytes, st_size %d" % (rel, len(data), st.st_size))
                by_ino.setdefault(st.st_ino, []).append(rel)
            if kind == "symlink":
                target = os.readlink(p)
            xattrs = () if kind == "symlink" else tuple(sorted(
                (k, os.getxattr(p, k).decode()) for k in os.listxattr(p)))
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, sha, target,
                        st.st_mtime_ns, xattrs, nlink)
    groups = sorted(sorted(g) for g in by_ino.values() if len(g) > 1)
    return out, groups


def daemon_alive(pid):
    """True while pid runs (a zombie waiting for its reaper has an empty cmdline)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return bool(f.read())
    except OSError:
        return False


def mount_options(mountpoint):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountpoint:
                sep = fields.index("-")
                return fields[5].split(","), fields[sep + 1], fields[sep + 2]
    return None


@unittest.skipUnless(os.path.exists("/dev/fuse"), "/dev/fuse is missing: FUSE mounts cannot run here")
class MountBasic(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        class_store(cls, "lazyroot-mount-test-")
        cls.tars = [_tar(LAYER0), _tar(LAYER1), _tar(LAYER2)]
        layers = [mi.Layer(cls.tars[0], mi._compress(cls.tars[0], "gzip", 6), "gzip"),
                  mi.Layer(cls.tars[1], mi._compress(cls.tars[1], "zstd", 3), "zstd"),
                  mi.Layer(cls.tars[2], cls.tars[2], "none")]
        image = mi.build_image(layers, fmt="oci", config={"Cmd": ["/bin/sh"]})
        mi.push(mi.RegistryClient(cls.reg.host), "demo/mount", "v1", image)
        cls.ref = "http://%s/demo/mount:v1" % cls.reg.host
        r = cls.run_lazyroot("pull", "-q", cls.ref)
        if r.returncode != 0:
            raise AssertionError("pull failed: %s" % r.stderr)
        cls.mnt = os.path.join(cls.tmp, "mnt")
        os.makedirs(cls.mnt)
        start = time.monotonic()
        r = cls.run_lazyroot("mount", cls.ref, cls.mnt)
        cls.mount_seconds = time.monotonic() - start
        if r.returncode != 0:
            raise AssertionError("mount failed (%d): %s" % (r.returncode, r.stderr))
        cls.addClassCleanup(cls.unmount, cls.mnt)
        cls.mount_stdout, cls.mount_stderr = r.stdout, r.stderr
        cls.mounted_right_after = os.path.ismount(cls.mnt)

    @classmethod
    def run_lazyroot(cls, *args, timeout=120):
        return subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    @classmethod
    def unmount(cls, mountpoint):
        if os.path.ismount(mountpoint):
            cls.run_lazyroot("umount", mountpoint)

    def test_ready_when_mount_returns_and_silent(self):
        self.assertTrue(self.mounted_right_after, "not a mountpoint right after `lazyroot mount` returned")
        self.assertEqual(self.mount_stdout, "")
        self.assertEqual(self.mount_stderr, "")
        opts, fstype, source = mount_options(self.mnt)
        self.assertEqual(fstype, "fuse.lazyroot")
        self.assertEqual(source, self.ref.split("://", 1)[-1])  # the image, as findmnt shows it
        for o in ("ro", "nosuid", "nodev"):
            self.assertIn(o, opts)
        sys.stderr.write("\n[mount ready in %.3f s] " % self.mount_seconds)

    @unittest.skipUnless(os.geteuid() == 0, "the read-ahead is set through /sys, as root")
    def test_read_ahead_is_raised_for_this_mount_only(self):
        # The first request after INIT sets it; any stat is such a request.
        os.stat(os.path.join(self.mnt, "etc/hostname"))
        with open(bdi_file(self.mnt)) as f:
            self.assertEqual(f.read().strip(), "1024")
        mnt = os.path.join(self.tmp, "mnt-ra")
        os.makedirs(mnt, exist_ok=True)
        r = self.run_lazyroot("mount", "--read-ahead", "0", self.ref, mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            os.stat(os.path.join(mnt, "etc/hostname"))
            with open(bdi_file(mnt)) as f:
                self.assertNotEqual(f.read().strip(), "1024", "--read-ahead 0 must leave the kernel's value")
        finally:
            self.unmount(mnt)

    def test_tree_matches_the_layer_tars(self):
        want, want_groups = oracle(self.tars)
        got, got_groups = listing(self.mnt)
        self.assertEqual(sorted(got), sorted(want), "path sets differ")
        for path in sorted(want):
            self.assertEqual(got[path], want[path], path)
        self.assertEqual(got_groups, want_groups)
        self.assertNotIn("old", got)  # whited out by layer 1
        with open(os.path.join(self.mnt, "etc/hostname"), "rb") as f:
            self.assertEqual(f.read(), b"upper\n")

    def test_random_reads_and_reads_past_eof(self):
        p = os.path.join(self.mnt, "data/big.bin")
        rng = random.Random(11)
        fd = os.open(p, os.O_RDONLY)
        try:
            for _ in range(300):
                off = rng.randrange(0, len(BIG) + 4096)
                n = rng.choice([1, 100, 4096, 65536, 300000, 1 << 20])
                self.assertEqual(os.pread(fd, n, off), BIG[off:off + n], "pread(%d, %d)" % (n, off))
            self.assertEqual(os.pread(fd, 4096, len(BIG)), b"")
            self.assertEqual(os.pread(fd, 4096, len(BIG) + (1 << 30)), b"")
            self.assertEqual(os.pread(fd, 4096, len(BIG) - 10), BIG[-10:])
        finally:
            os.close(fd)
        # A second descriptor reading backwards (each read behind the last one).
        fd = os.open(p, os.O_RDONLY)
        try:
            for off in range(len(BIG) - 65536, 0, -1500000):
                self.assertEqual(os.pread(fd, 65536, off), BIG[off:off + 65536])
        finally:
            os.close(fd)

    def test_xattrs(self):
        p = os.path.join(self.mnt, "etc/caps")
        self.assertEqual(os.listxattr(p), ["user.lazyroot.test"])
        self.assertEqual(os.getxattr(p, "user.lazyroot.test"), b"hello xattr")
        with self.assertRaises(OSError) as cm:
            os.getxattr(p, "user.absent")
        self.assertEqual(cm.exception.errno, errno.ENODATA)
        self.assertEqual(os.listxattr(os.path.join(self.mnt, "etc/hostname")), [])

    def test_missing_names_and_read_only(self):
        for _ in range(2):  # the second one is answered from the kernel's negative cache
            self.assertFalse(os.path.exists(os.path.join(self.mnt, "etc/nope")))
        with self.assertRaises(FileNotFoundError):
            open(os.path.join(self.mnt, "nope/deeper"), "rb")
        with self.assertRaises(NotADirectoryError):
            os.listdir(os.path.join(self.mnt, "etc/hostname"))
        for action in (lambda: open(os.path.join(self.mnt, "etc/hostname"), "wb"),
                       lambda: os.mkdir(os.path.join(self.mnt, "newdir")),
                       lambda: os.unlink(os.path.join(self.mnt, "etc/hostname"))):
            with self.assertRaises(OSError) as cm:
                action()
            self.assertEqual(cm.exception.errno, errno.EROFS)

    def test_statvfs_counts_nodes(self):
        want, groups = oracle(self.tars)
        nodes = 1 + len(want) - sum(len(g) - 1 for g in groups)  # root + names - extra hardlink names
        st = os.statvfs(self.mnt)
        self.assertEqual(st.f_files, nodes)
        self.assertGreaterEqual(st.f_blocks * st.f_frsize, len(BIG))

    def test_unknown_image_and_bad_mountpoint(self):
        d = os.path.join(self.tmp, "unused")
        os.makedirs(d, exist_ok=True)
        absent = "http://%s/demo/absent:v1" % self.reg.host
        r = self.run_lazyroot("mount", "--no-pull", absent, d)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pull it first", r.stderr)
        self.assertFalse(os.path.ismount(d))
        r = self.run_lazyroot("mount", absent, d)  # pulled first: the registry has no such tag
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("demo/absent:v1: not found", r.stderr)
        self.assertFalse(os.path.ismount(d))
        r = self.run_lazyroot("mount", self.ref, os.path.join(self.tmp, "does-not-exist"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does-not-exist", r.stderr)
        for bad in (["--cache-size", "4"], ["--threads", "0"]):
            r = self.run_lazyroot("mount", *bad, self.ref, d)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(bad[0], r.stderr)
            self.assertFalse(os.path.ismount(d))

    def test_umount_ends_the_daemon(self):
        d = os.path.join(self.tmp, "mnt2")
        os.makedirs(d, exist_ok=True)
        r = self.run_lazyroot("mount", "--threads", "2", "--cache-size", "16", self.ref, d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.unmount, d)
        self.assertTrue(os.path.ismount(d))
        daemons = daemon_pids(d)
        self.assertEqual(len(daemons), 1, "expected one daemon for %s" % d)
        with open(os.path.join(d, "data/plain.txt"), "rb") as f:
            self.assertEqual(f.read(), b"from an uncompressed layer\n")
        r = self.run_lazyroot("umount", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.ismount(d))
        deadline = time.monotonic() + 2  # umount waited for the daemon; it exits right after its token goes
        while daemon_alive(daemons[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertFalse(daemon_alive(daemons[0]), "the mount daemon still runs after umount")

    def mount_held_after_serving(self, name):
        """Mounts the image with its daemon to be held at the test pause point
        "mount-served" (after its session ends, before it exits); returns the
        mountpoint and the pause directory. The daemon is let go in cleanup."""
        d = os.path.join(self.tmp, "mnt-" + name)
        pause = os.path.join(self.tmp, "pause-" + name)
        os.makedirs(d, exist_ok=True)
        os.makedirs(pause, exist_ok=True)
        env = dict(self.env, LAZYROOT_TEST_PAUSE="mount-served:" + pause)
        r = subprocess.run([LAZYROOT_BIN, "--root", self.root, "mount", self.ref, d], env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(lambda: open(os.path.join(pause, "mount-served.go"), "w").close())
        self.addCleanup(self.unmount, d)
        return d, pause

    def test_umount_waits_for_the_daemon_to_finish(self):
        """umount returns once the daemon has finished (its last reads, unit
        copies, prefetch workers), not when the kernel detaches the mount: a
        daemon held after its session ended (test pause point
        "mount-served") keeps umount waiting until it is let go."""
        d, pause = self.mount_held_after_serving("wait")
        daemons = daemon_pids(d)
        self.assertEqual(len(daemons), 1)
        with open(os.path.join(d, "data/big.bin"), "rb") as f:
            self.assertEqual(f.read(), BIG)
        umount = subprocess.Popen([LAZYROOT_BIN, "--root", self.root, "umount", d], env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(pause, "mount-served.reached")) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(os.path.exists(os.path.join(pause, "mount-served.reached")), "the session never ended")
            time.sleep(0.5)
            self.assertFalse(os.path.ismount(d))  # detached at once...
            self.assertIsNone(umount.poll(), "umount returned while the daemon was still finishing")  # ...but waited
            self.assertTrue(daemon_alive(daemons[0]))
            open(os.path.join(pause, "mount-served.go"), "w").close()
            _, err = umount.communicate(timeout=30)
        finally:
            if umount.poll() is None:
                umount.kill()
                umount.wait()
        self.assertEqual(umount.returncode, 0, err)
        deadline = time.monotonic() + 2  # from releasing its token to exiting: a few instructions
        while daemon_alive(daemons[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertFalse(daemon_alive(daemons[0]), "the daemon outlived umount")

    def test_umount_says_when_the_daemon_has_not_finished_in_time(self):
        """A daemon held past the wait (test pause point "mount-served"; or a
        process squatting its token's name): umount still returns 0 with the
        mount gone, after the bounded wait, and says the daemon had not
        finished, since `umount && fsck` may then race its last writes."""
        d, pause = self.mount_held_after_serving("late")
        r = self.run_lazyroot("umount", d)
        self.assertTrue(os.path.exists(os.path.join(pause, "mount-served.reached")))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.ismount(d))
        self.assertIn("umount %s: unmounted, but its mount daemon had not finished after 10 s" % d, r.stderr)
        # A new mount while the old daemon still runs, likely on the device
        # number just freed (the kernel hands out the lowest free one): its
        # token must be its own, so its umount neither waits on the old
        # daemon nor says it had not finished (with tokens named by device
        # it did both, and the new daemon had none).
        d2 = os.path.join(self.tmp, "mnt-late-2")
        os.makedirs(d2, exist_ok=True)
        r = subprocess.run([LAZYROOT_BIN, "--root", self.root, "mount", self.ref, d2], env=self.env,
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.unmount, d2)
        self.assertTrue(daemon_pids(d), "the held daemon exited early")
        r = self.run_lazyroot("umount", d2)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        # Once it has finished, nothing is said.
        open(os.path.join(pause, "mount-served.go"), "w").close()
        r = subprocess.run([LAZYROOT_BIN, "--root", self.root, "mount", self.ref, d], env=self.env,
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_lazyroot("umount", d)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_busy_mount_and_lazy_umount(self):
        """A file open in the mount: umount refuses and says why (and what to
        do); umount --lazy detaches at once, the open file still reads, and
        the daemon exits when it is closed."""
        d = os.path.join(self.tmp, "mnt-busy")
        os.makedirs(d, exist_ok=True)
        r = self.run_lazyroot("mount", self.ref, d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.unmount, d)
        daemons = daemon_pids(d)
        self.assertEqual(len(daemons), 1)
        f = open(os.path.join(d, "data/big.bin"), "rb")
        try:
            r = self.run_lazyroot("umount", d)
            self.assertEqual(r.returncode, 1)
            self.assertIn("in use", r.stderr)
            self.assertIn("--lazy", r.stderr)
            self.assertTrue(os.path.ismount(d))
            r = self.run_lazyroot("umount", "--lazy", d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertFalse(os.path.ismount(d))
            self.assertEqual(f.read(1 << 20), BIG[:1 << 20])  # still served after the detach
            self.assertTrue(daemon_alive(daemons[0]))
        finally:
            f.close()
        deadline = time.monotonic() + 10
        while daemon_alive(daemons[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(daemon_alive(daemons[0]), "the daemon outlived the last open file")

    def test_mount_pulls_and_keeps_its_blobs_from_gc(self):
        """mount pulls an image missing from the store; while it is mounted,
        `rm` + `gc` keep its blobs (reads still work); after umount gc frees them."""
        root = os.path.join(self.tmp, "store-gc")
        run = lambda *a: subprocess.run([LAZYROOT_BIN, "--root", root] + list(a), env=self.env,
                                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        d = os.path.join(self.tmp, "mnt-gc")
        os.makedirs(d, exist_ok=True)
        r = run("mount", self.ref, d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(lambda: os.path.ismount(d) and run("umount", d))
        self.assertIn("pulling it", r.stderr)
        blobs = os.path.join(root, "blobs", "sha256")
        before = sorted(os.listdir(blobs))
        self.assertTrue(before)
        self.assertEqual(run("rm", self.ref).returncode, 0)
        r = run("gc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(blobs)), before, "gc removed blobs of a mounted image")
        with open(os.path.join(d, "data/plain.txt"), "rb") as f:
            self.assertEqual(f.read(), b"from an uncompressed layer\n")
        self.assertEqual(run("umount", d).returncode, 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = run("gc")
            self.assertEqual(r.returncode, 0, r.stderr)
            if not os.listdir(blobs):
                break
            time.sleep(0.1)  # the daemon drops its in-use lock when it exits
        self.assertEqual(os.listdir(blobs), [], "gc kept the blobs after umount")

    @unittest.skipUnless(os.geteuid() == 0, "switches to the user nobody")
    def test_mount_as_an_unprivileged_user(self):
        """As nobody (through fusermount3): the mount works and unmounts, or,
        where /dev/fuse is closed to other users (this CI's containers make it
        0600), it fails at once with a message naming /dev/fuse."""
        import pwd
        nobody = pwd.getpwnam("nobody")
        base = tempfile.mkdtemp(prefix="lazyroot-nobody-")
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        os.chmod(base, 0o755)
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        mnt = os.path.join(base, "mnt")
        env = isolated_env(base)  # nobody's own HOME, config and credentials

        def run(*a):
            return subprocess.run([LAZYROOT_BIN, "--root", os.path.join(base, "store")] + list(a), env=env,
                                  capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                                  user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
        os.makedirs(mnt)
        os.chown(mnt, nobody.pw_uid, nobody.pw_gid)
        # Root cannot even stat another user's FUSE mount (no allow_other), so
        # os.path.ismount says False there: mountinfo is the witness.
        self.addCleanup(lambda: mount_options(mnt) and subprocess.run(["umount", "-l", mnt]))
        r = run("mount", self.ref, mnt)  # pulls as nobody first
        if (os.stat("/dev/fuse").st_mode & 0o006) == 0o006:  # open to other users
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIsNotNone(mount_options(mnt))
            # Only the mounting user may enter a mount without allow_other.
            cat = subprocess.run(["cat", os.path.join(mnt, "etc/hostname")], capture_output=True, timeout=30,
                                 user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
            self.assertEqual(cat.stdout, b"upper\n", cat.stderr)
            r = run("umount", mnt)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIsNone(mount_options(mnt))
        else:
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("cannot open /dev/fuse as uid %d" % nobody.pw_uid, r.stderr)
            self.assertIsNone(mount_options(mnt))

    @unittest.skipUnless(os.geteuid() == 0, "switches to the user nobody")
    def test_root_umount_of_a_users_mount_waits_for_its_daemon(self):
        """Root unmounting nobody's mount (fusermount3, no allow_other): the
        kernel refuses root's statx of it, so root cannot name the daemon's
        token by the unique mount ID and names it by the device. The daemon
        held at the test pause point "mount-served" must still be waited for
        (umount says it had not finished); with the token under the unique ID
        only, root's umount returned at once."""
        import pwd
        if (os.stat("/dev/fuse").st_mode & 0o006) != 0o006:
            self.skipTest("/dev/fuse is closed to other users here")
        nobody = pwd.getpwnam("nobody")
        base = tempfile.mkdtemp(prefix="lazyroot-nobody-umount-")
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        os.chmod(base, 0o755)
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        mnt, pause = os.path.join(base, "mnt"), os.path.join(base, "pause")
        for d in (mnt, pause):
            os.makedirs(d)
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        env = dict(isolated_env(base), LAZYROOT_TEST_PAUSE="mount-served:" + pause)
        store = os.path.join(base, "store")
        self.addCleanup(lambda: mount_options(mnt) and subprocess.run(["umount", "-l", mnt]))
        self.addCleanup(lambda: open(os.path.join(pause, "mount-served.go"), "w").close())
        r = subprocess.run([LAZYROOT_BIN, "--root", store, "mount", self.ref, mnt], env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL, user=nobody.pw_uid,
                           group=nobody.pw_gid, extra_groups=[])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNotNone(mount_options(mnt))
        with self.assertRaises(PermissionError):  # what root's statx gets too
            os.stat(mnt)
        r = subprocess.run([LAZYROOT_BIN, "--root", store, "umount", mnt], env=self.env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(mount_options(mnt))
        self.assertTrue(os.path.exists(os.path.join(pause, "mount-served.reached")))
        self.assertIn("umount %s: unmounted, but its mount daemon had not finished after 10 s" % mnt, r.stderr)

    def test_corrupt_tree_and_indexes_are_rebuilt_at_mount(self):
        """A flipped byte in the stored tree and in every layer index: mount
        names each file it rebuilds and then serves the right tree. (This
        tree is one 64 KiB block, all of which a mount reads and checks when
        it opens the tree: damage there is rebuilt at mount, as in the
        tree's header and block table. Damage in a block read later is
        test_a_damaged_tree_block_gives_eio_until_fsck_repairs_it.)"""
        root = os.path.join(self.tmp, "store-corrupt")
        run = lambda *a: subprocess.run([LAZYROOT_BIN, "--root", root] + list(a), env=self.env,
                                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(run("pull", "-q", self.ref).returncode, 0)
        d = os.path.join(self.tmp, "mnt-corrupt")
        os.makedirs(d, exist_ok=True)
        r = run("mount", "--no-pull", self.ref, d)  # builds and stores the tree
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(run("umount", d).returncode, 0)
        damaged = []
        for sub in ("trees", "index/sha256"):
            for name in os.listdir(os.path.join(root, sub)):
                path = os.path.join(root, sub, name)
                with open(path, "r+b") as f:
                    f.seek(os.path.getsize(path) // 2)
                    byte = f.read(1)
                    f.seek(-1, os.SEEK_CUR)
                    f.write(bytes([byte[0] ^ 0x55]))
                damaged.append(name)
        self.assertGreaterEqual(len(damaged), 4)  # the tree + 3 layer indexes
        r = run("mount", "--no-pull", self.ref, d)
        self.addCleanup(lambda: os.path.ismount(d) and run("umount", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in damaged:
            self.assertIn(name, r.stderr, "the rebuild of %s was not reported" % name)
        want, want_groups = oracle(self.tars)
        got, got_groups = listing(d)
        self.assertEqual(got, want)
        self.assertEqual(got_groups, want_groups)
        self.assertEqual(run("umount", d).returncode, 0)

    def test_a_damaged_tree_block_gives_eio_until_fsck_repairs_it(self):
        """A mount reads its tree lazily: a flipped byte in a block it has not
        read yet (here among the node records of 4,000 files) does not stop
        the mount. The files whose records are in that block fail with EIO,
        the daemon logs one line naming the tree file and the image, every
        other file reads; fsck reports the tree, fsck --repair rebuilds it,
        and the next mount serves every file."""
        root = os.path.join(self.tmp, "store-block")
        run = lambda *a: subprocess.run([LAZYROOT_BIN, "--root", root] + list(a), env=self.env,
                                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        dirs, per_dir = 40, 100
        entries = []
        for i in range(dirs):
            entries.append(("d%03d" % i, "dir", {}))
            entries += [("d%03d/f%03d" % (i, j), "file", {"data": b"%d/%d\n" % (i, j)}) for j in range(per_dir)]
        tar = _tar(entries)
        image = mi.build_image([mi.Layer(tar, mi._compress(tar, "gzip", 6), "gzip")], fmt="oci",
                               config={"Cmd": ["/bin/sh"]})
        mi.push(mi.RegistryClient(self.reg.host), "demo/blocks", "v1", image)
        ref = "http://%s/demo/blocks:v1" % self.reg.host
        self.assertEqual(run("pull", "-q", ref).returncode, 0)
        d = os.path.join(self.tmp, "mnt-block")
        os.makedirs(d, exist_ok=True)
        r = run("mount", "--no-pull", ref, d)  # builds and stores the tree
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(run("umount", d).returncode, 0)
        (tree_name,) = os.listdir(os.path.join(root, "trees"))
        tree = os.path.join(root, "trees", tree_name)
        with open(tree, "rb") as f:
            header = f.read(136)
        self.assertEqual(header[:8], b"LZRTREE1")
        self.assertEqual(int.from_bytes(header[8:12], "little"), 4)
        block_size = int.from_bytes(header[112:116], "little")
        blocks = int.from_bytes(header[116:120], "little")
        body = (136 + 4 * blocks + 7) & ~7
        nodes_offset = int.from_bytes(header[48:56], "little")
        self.assertGreaterEqual(blocks, 5)
        # The middle of block 2: a regular file's record (nodes are breadth
        # first: the root, the directories, then each directory's files).
        at = body + 2 * block_size + block_size // 2
        node = (at - nodes_offset) // 80
        self.assertGreater(node, dirs)
        lost = "d%03d/f%03d" % divmod(node - dirs - 1, per_dir)
        with open(tree, "r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x55]))
        log = open(os.path.join(self.tmp, "block.log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen([LAZYROOT_BIN, "--root", root, "mount", "--foreground", "--no-pull", ref, d],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.wait(timeout=30))
        self.addCleanup(lambda: os.path.ismount(d) and run("umount", d))
        deadline = time.monotonic() + 20
        while not os.path.ismount(d) and time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "the foreground mount exited early")
            time.sleep(0.05)
        self.assertTrue(os.path.ismount(d))
        for _ in range(2):  # asked twice: EIO twice, logged once
            with self.assertRaises(OSError) as ctx:
                os.stat(os.path.join(d, lost))
            self.assertEqual(ctx.exception.errno, errno.EIO)
        failed = 0
        for i in range(dirs):
            for j in range(per_dir):
                try:
                    with open(os.path.join(d, "d%03d/f%03d" % (i, j)), "rb") as f:
                        self.assertEqual(f.read(), b"%d/%d\n" % (i, j))
                except OSError as e:
                    self.assertEqual(e.errno, errno.EIO)
                    failed += 1
        # The block holds ~820 of the 80-byte node records; no other file fails.
        self.assertGreater(failed, 700)
        self.assertLess(failed, 900)
        self.assertEqual(run("umount", d).returncode, 0)
        proc.wait(timeout=30)
        self.assertEqual(proc.returncode, 0)
        log.seek(0)
        lines = [line for line in log.read().splitlines() if "image tree" in line]
        self.assertEqual(len(lines), 1, "not one log line for the damaged block:\n" + "\n".join(lines))
        self.assertIn(tree, lines[0])
        self.assertIn("sha256:" + tree_name, lines[0])  # the image (its manifest digest)
        self.assertIn("checksum mismatch", lines[0])
        r = run("fsck")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(tree_name, r.stdout + r.stderr)
        r = run("fsck", "--repair")
        self.assertIn(tree_name, r.stdout + r.stderr)
        r = run("fsck")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("mount", "--no-pull", ref, d)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(d, lost), "rb") as f:
            self.assertEqual(f.read(), b"%d/%d\n" % divmod(node - dirs - 1, per_dir))
        self.assertEqual(run("umount", d).returncode, 0)

    def test_a_layer_listed_twice_with_a_corrupt_index(self):
        """An image listing one blob twice (L2, L1, L2: as a rebuilt base
        layer can come back), whose index is damaged: the mount, which loads
        the tree and the layer indexes in parallel, rebuilds that index once,
        says so once, and serves the right tree and bytes."""
        root = os.path.join(self.tmp, "store-twice")
        run = lambda *a: subprocess.run([LAZYROOT_BIN, "--root", root] + list(a), env=self.env,
                                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        tars = [self.tars[2], self.tars[1], self.tars[2]]
        layers = [mi.Layer(tars[0], mi._compress(tars[0], "gzip", 6), "gzip"),
                  mi.Layer(tars[1], mi._compress(tars[1], "zstd", 3), "zstd")]
        image = mi.build_image([layers[0], layers[1], layers[0]], fmt="oci", config={"Cmd": ["/bin/sh"]})
        mi.push(mi.RegistryClient(self.reg.host), "demo/twice", "v1", image)
        ref = "http://%s/demo/twice:v1" % self.reg.host
        r = run("pull", "-q", ref)
        self.assertEqual(r.returncode, 0, r.stderr)
        d = os.path.join(self.tmp, "mnt-twice")
        os.makedirs(d, exist_ok=True)
        digest = hashlib.sha256(layers[0].compressed).hexdigest()
        index = os.path.join(root, "index", "sha256", digest)
        with open(index, "r+b") as f:
            f.seek(os.path.getsize(index) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x55]))
        r = run("mount", "--no-pull", ref, d)
        self.addCleanup(lambda: os.path.ismount(d) and run("umount", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.count(digest), 1, "the rebuild was not reported exactly once:\n" + r.stderr)
        want, want_groups = oracle(tars)
        got, got_groups = listing(d)
        self.assertEqual(got, want)
        self.assertEqual(got_groups, want_groups)
        self.assertEqual(run("umount", d).returncode, 0)

    def test_a_relative_store_root(self):
        """--root given relative to the working directory: the daemon, which
        reopens the store after chdir("/"), finds the same store."""
        d = os.path.join(self.tmp, "mnt-relative")
        os.makedirs(d, exist_ok=True)
        r = subprocess.run([LAZYROOT_BIN, "--root", os.path.relpath(self.root, self.tmp), "mount", "--no-pull",
                            self.ref, d], env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: os.path.ismount(d) and self.run_lazyroot("umount", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(d, "etc", "hostname"), "rb") as f:
            self.assertEqual(f.read(), b"upper\n")
        self.assertEqual(self.run_lazyroot("umount", d).returncode, 0)

    def test_truncated_blob_gives_eio_and_one_log_line(self):
        """A layer blob truncated under a live --foreground mount: reads of
        files in it fail with EIO, the daemon logs one line naming the blob,
        never crashes and never replies twice; other layers keep working."""
        root = os.path.join(self.tmp, "store-eio")
        env = dict(self.env)
        run = lambda *a: subprocess.run([LAZYROOT_BIN, "--root", root] + list(a), env=env, capture_output=True,
                                        text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(run("pull", "-q", self.ref).returncode, 0)
        d = os.path.join(self.tmp, "mnt-eio")
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(self.tmp, "eio.log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen([LAZYROOT_BIN, "--root", root, "mount", "--foreground", self.ref, d], env=env,
                                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.wait(timeout=30))
        self.addCleanup(lambda: os.path.ismount(d) and run("umount", d))
        deadline = time.monotonic() + 20
        while not os.path.ismount(d) and time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "the foreground mount exited early")
            time.sleep(0.05)
        self.assertTrue(os.path.ismount(d))
        # The gzip layer (layer 0) holds big.bin; cut its blob to a third.
        record = json.loads(run("inspect", self.ref).stdout)
        blob = os.path.join(root, "blobs", "sha256", record["Layers"][0]["digest"][7:])
        os.truncate(blob, os.path.getsize(blob) // 3)
        with self.assertRaises(OSError) as ctx:
            with open(os.path.join(d, "data/big.bin"), "rb") as f:
                f.seek(len(BIG) - 4096)
                f.read(4096)
        self.assertEqual(ctx.exception.errno, errno.EIO)
        with open(os.path.join(d, "data/plain.txt"), "rb") as f:  # an uncompressed layer still reads
            self.assertEqual(f.read(), b"from an uncompressed layer\n")
        self.assertEqual(run("umount", d).returncode, 0)
        proc.wait(timeout=30)
        self.assertGreaterEqual(proc.returncode, 0, "the daemon died of a signal")
        log.seek(0)
        text = log.read()
        self.assertIn(record["Layers"][0]["digest"], text, "no log line names the blob:\n" + text)
        self.assertNotIn("multiple replies", text)
        self.assertNotIn("double reply", text.lower())

    def test_umount_cleans_up_after_a_killed_daemon(self):
        """kill -9 of the daemon (a --foreground mount this test started, so
        the PID is ours) leaves a dead mount; `lazyroot umount` removes it."""
        d = os.path.join(self.tmp, "mnt-killed")
        os.makedirs(d, exist_ok=True)
        proc = subprocess.Popen([LAZYROOT_BIN, "--root", self.root, "mount", "--foreground", self.ref, d],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        self.addCleanup(lambda: os.path.ismount(d) and subprocess.run(["fusermount3", "-u", "-z", d]))
        deadline = time.monotonic() + 20
        while not os.path.ismount(d) and time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "the foreground mount exited early")
            time.sleep(0.05)
        self.assertTrue(os.path.ismount(d))
        proc.kill()
        proc.wait(timeout=30)
        with self.assertRaises(OSError) as ctx:
            os.listdir(d)
        self.assertEqual(ctx.exception.errno, errno.ENOTCONN)
        r = self.run_lazyroot("umount", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.ismount(d))
        self.assertEqual(os.listdir(d), [])

    def test_concurrent_readers(self):
        """Eight threads for two seconds: random ranges of files in the gzip,
        zstd and plain layers, each compared with the source bytes (the
        daemon runs under ThreadSanitizer in scripts/test-tsan.sh)."""
        import threading
        sources = {"data/big.bin": BIG, "usr/share/doc.txt": b"shared documentation\n" * 4000,
                   "etc/passwd": b"root:x:0:0::/root:/bin/sh\n" * 40,
                   "data/plain.txt": b"from an uncompressed layer\n"}
        errors, reads = [], [0]
        stop = time.monotonic() + 2.0

        def reader(seed):
            rng = random.Random(seed)
            fds = {p: os.open(os.path.join(self.mnt, p), os.O_RDONLY) for p in sources}
            try:
                while time.monotonic() < stop and not errors:
                    p = rng.choice(list(sources))
                    data = sources[p]
                    off = rng.randrange(0, len(data) + 10)
                    n = rng.choice([1, 512, 4096, 70000, 1 << 20])
                    got = os.pread(fds[p], n, off)
                    if got != data[off:off + n]:
                        errors.append("%s: pread(%d, %d) returned wrong bytes" % (p, n, off))
                    reads[0] += 1
            except OSError as e:
                errors.append("%s" % e)
            finally:
                for fd in fds.values():
                    os.close(fd)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertGreater(reads[0], 100)

if __name__ == "__main__":
    unittest.main(verbosity=2)
