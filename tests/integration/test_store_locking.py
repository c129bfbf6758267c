#!/usr/bin/env python3
"""The store's locking protocol (src/store/STORE.md), one deterministic
interleaving per rule, with real processes against a real registry.

A process under test is stopped at a named point with the test-only hook
LAZYROOT_TEST_PAUSE=<point>:<dir> (it creates <dir>/<point>.reached and waits
for <dir>/<point>.go). While it is stopped, the test starts a `gc` and waits
for gc to say it is waiting for the store lock, i.e. to have found the lock
taken; then it lets the first process go. The assertions are about the
outcome (the mount serves the right bytes, the extract is complete, gc ran
afterwards and removed what it should), never about time.

- gc while a mount opens (the record already removed): gc waits for the
  mount, then keeps the image for the mount's in-use marker.
- a mount while gc runs: the mount waits, then pulls what gc removed.
- gc while an extract runs: gc waits from before the extract's pull to its end.
- gc while a pull runs: gc waits; the downloads it would remove survive.
- rm + gc while mounted: the mount keeps serving, nothing it needs is removed.
- the in-use sweep race: a stale marker the mount is about to lock is not
  swept under it; the mount's marker is on the file gc sees.
- umount refuses a tmpfs (and a directory that is no mount point), unmounts
  a lazyroot mount (also one whose path has a space, and one whose daemon died).

Skipped without /dev/fuse; the tmpfs case needs root. Every mount is
unmounted in a cleanup."""

import os
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from peak_rss import daemon_pids  # noqa: E402
from pull_harness import LAZYROOT_BIN, class_store, verify_blobs  # noqa: E402

WAITING = "waiting for the store lock"
FILES0 = mi.default_files("locking") + [{"path": "data", "type": "dir"},
                                        {"path": "data/big.bin", "content": mi.random_bytes(3 << 20, 7)}]
FILES1 = [{"path": "etc", "type": "dir"}, {"path": "etc/hello.txt", "content": "upper layer wins\n"},
          {"path": "etc/more.txt", "content": "zstd layer\n" * 5000}]


def expected_files():
    """path -> bytes of every regular file of the merged image."""
    out = {}
    for files in (FILES0, FILES1):
        for e in files:
            if e.get("type", "file") == "file":
                c = e.get("content", b"")
                out[e["path"]] = c.encode() if isinstance(c, str) else c
    out["etc/hello-link.txt"] = b"hello locking\n"  # a hardlink of the lower layer's etc/hello.txt
    return out


def read_files(top):
    out = {}
    for dirpath, _, filenames in os.walk(top):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, top)] = f.read()
    return out


def locked_inodes():
    """(major, minor, inode) of every file with a granted flock (/proc/locks)."""
    out = set()
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
                continue
            major, minor, ino = fields[5].split(":")
            out.add((int(major, 16), int(minor, 16), int(ino)))
    return out


def daemon_alive(pid):
    """False once pid is gone or a zombie. (Not an empty cmdline: a process
    loses its memory, and so its cmdline, before its files, and with them
    its in-use marker, are closed.)"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@unittest.skipUnless(os.path.exists("/dev/fuse"), "/dev/fuse is missing: FUSE mounts cannot run here")
class StoreLocking(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        class_store(cls, "lazyroot-locking-test-")
        image = mi.build_image([mi.build_layer(FILES0, compression="gzip"),
                                mi.build_layer(FILES1, compression="zstd")], fmt="oci")
        mi.push(mi.RegistryClient(cls.reg.host), "demo/locking", "v1", image)
        cls.ref = "http://%s/demo/locking:v1" % cls.reg.host
        cls.config_digest = image.config.digest
        cls.expected = expected_files()

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp)
        self.root = os.path.join(self.dir, "store")
        self.pause = os.path.join(self.dir, "pause")
        os.makedirs(self.pause)
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for p in self.procs:
            if p.poll() is None:  # a process we started, left at a pause point by a failed test
                p.kill()
            p.communicate()

    # -- running lazyroot
    def run_lazyroot(self, *args):
        r = subprocess.run([LAZYROOT_BIN, "--root", self.root] + list(args), env=self.env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        return r

    def ok(self, *args):
        r = self.run_lazyroot(*args)
        self.assertEqual(r.returncode, 0, "lazyroot %s: %s" % (" ".join(args), r.stderr))
        return r

    def start(self, *args, pause=None):
        env = dict(self.env)
        if pause:
            env["LAZYROOT_TEST_PAUSE"] = "%s:%s" % (pause, self.pause)
        p = subprocess.Popen([LAZYROOT_BIN, "--root", self.root] + list(args), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def finish(self, p):
        out, err = p.communicate(timeout=120)
        return p.returncode, out.decode(), err.decode()

    def wait_paused(self, p, point):
        path = os.path.join(self.pause, point + ".reached")
        deadline = time.monotonic() + 60
        while not os.path.exists(path):
            if p.poll() is not None:
                rc, out, err = self.finish(p)
                self.fail("exited (%d) before reaching %s: %s" % (rc, point, err))
            self.assertLess(time.monotonic(), deadline, "never reached " + point)
            time.sleep(0.01)

    def go(self, point):
        open(os.path.join(self.pause, point + ".go"), "w").close()

    def start_gc_and_see_it_wait(self):
        """Starts `gc` and returns once gc has found the store lock taken (it
        says so before it blocks): from then on it can only run after the
        lock's holders let go."""
        gc = self.start("gc")
        self.read_until(gc, WAITING)
        return gc

    def read_until(self, p, text):
        """p's stderr up to text (p must still be running), returned."""
        seen = b""
        deadline = time.monotonic() + 60
        while text.encode() not in seen:
            ready, _, _ = select.select([p.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    rc, out, err = self.finish(p)
                    self.fail("%s ended (%d) without saying %r: %s %s" % (p.args[3], rc, text, out,
                                                                          seen.decode() + err))
                seen += chunk
            self.assertLess(time.monotonic(), deadline, "%s never said %r" % (p.args[3], text))
        return seen.decode()

    def gc_removed_blobs(self, stdout):
        self.assertTrue(stdout.startswith("Removed "), stdout)
        return int(stdout.split()[1])

    # -- store and mount helpers
    def store_files(self, sub):
        d = os.path.join(self.root, sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def manifest_hex(self):
        r = self.ok("pull", "-q", self.ref)  # already there: resolves the digest only
        return r.stdout.strip().split(":", 1)[1]

    def mountpoint(self, name="mnt"):
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        self.addCleanup(self.unmount, d)
        return d

    def unmount(self, d):
        if os.path.ismount(d):
            daemons = daemon_pids(d)
            self.run_lazyroot("umount", d)
            deadline = time.monotonic() + 10
            while any(daemon_alive(p) for p in daemons) and time.monotonic() < deadline:
                time.sleep(0.05)  # the session ends asynchronously after the kernel detaches

    def check_serves_the_image(self, top):
        got = read_files(top)
        self.assertEqual(sorted(got), sorted(self.expected))
        for path, data in self.expected.items():
            self.assertEqual(got[path], data, path)

    def assert_store_empty(self):
        for sub in ("blobs/sha256", "index/sha256", "trees", "inuse", "tmp"):
            self.assertEqual(self.store_files(sub), [], sub)

    # -- the rules
    def test_gc_waits_for_a_mount_opening_then_keeps_its_image(self):
        self.ok("pull", self.ref)
        blobs = self.store_files("blobs/sha256")
        hexd = self.manifest_hex()
        d = self.mountpoint()
        mount = self.start("mount", self.ref, d, pause="mount-opening")
        self.wait_paused(mount, "mount-opening")
        self.ok("rm", self.ref)  # only the mount's marker keeps the image now
        self.assertEqual(self.store_files("inuse"), [hexd + ".lock"])
        gc = self.start_gc_and_see_it_wait()
        self.go("mount-opening")
        rc, _, err = self.finish(mount)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.finish(gc)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.gc_removed_blobs(out), 0, out)
        self.assertEqual(self.store_files("blobs/sha256"), blobs)
        self.assertEqual(self.store_files("trees"), [hexd])
        self.assertEqual(len(self.store_files("index/sha256")), 2)
        self.check_serves_the_image(d)
        self.unmount(d)
        r = self.ok("gc")
        self.assertEqual(self.gc_removed_blobs(r.stdout), len(blobs), r.stdout)
        self.assert_store_empty()

    def test_gc_waits_for_an_extract_from_before_its_pull_to_its_end(self):
        target = os.path.join(self.dir, "rootfs")
        extract = self.start("extract", self.ref, target, pause="extract-pulled")
        self.wait_paused(extract, "extract-pulled")  # pulled, nothing extracted yet
        self.assertEqual(len(self.store_files("blobs/sha256")), 4)  # 2 layers, config, manifest
        self.ok("rm", self.ref)  # gc, once it runs, removes the whole image
        gc = self.start_gc_and_see_it_wait()
        self.go("extract-pulled")
        rc, out, err = self.finish(extract)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), target)
        rc, out, err = self.finish(gc)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.gc_removed_blobs(out), 4, out)  # it did run, after the extract
        self.check_serves_the_image(target)
        self.assert_store_empty()

    def test_gc_waits_for_a_pull(self):
        pull = self.start("pull", "-q", self.ref, pause="pull-downloaded")
        self.wait_paused(pull, "pull-downloaded")
        tmp = self.store_files("tmp")
        self.assertEqual(len([n for n in tmp if n.endswith(".partial")]), 3, tmp)  # what gc would remove
        self.assertEqual(self.store_files("images"), [])
        gc = self.start_gc_and_see_it_wait()
        self.go("pull-downloaded")
        rc, out, err = self.finish(pull)
        self.assertEqual(rc, 0, err)
        rc, gc_out, err = self.finish(gc)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.gc_removed_blobs(gc_out), 0, gc_out)
        self.assertEqual(len(verify_blobs(self.root)), 4)
        self.assertEqual(self.store_files("tmp"), [])  # gc ran after the pull published everything
        target = os.path.join(self.dir, "rootfs")
        self.ok("extract", "--no-pull", self.ref, target)
        self.check_serves_the_image(target)

    def test_the_publish_takes_the_staged_config_only_with_the_verified_bytes(self):
        # The publish moves the config's staged copy in (no second write and
        # fsync) if it still holds the bytes the pull verified; gone or
        # changed, or a symlink to a file holding them (never renamed into
        # blobs/: fsck would call the image corrupt), the verified bytes are
        # written from memory instead.
        for how in ("kept", "removed", "changed", "symlinked"):
            with self.subTest(how=how):
                self.root = os.path.join(self.dir, "store-" + how)
                for n in os.listdir(self.pause):
                    os.unlink(os.path.join(self.pause, n))
                pull = self.start("pull", "-q", self.ref, pause="pull-downloaded")
                self.wait_paused(pull, "pull-downloaded")
                staged = os.path.join(self.root, "tmp", self.config_digest[7:] + ".partial")
                self.assertTrue(os.path.exists(staged))
                if how == "removed":
                    os.unlink(staged)
                elif how == "changed":
                    with open(staged, "wb") as f:
                        f.write(b'{"architecture":"amd64","os":"linux"}')
                elif how == "symlinked":
                    outside = os.path.join(self.dir, "outside-config")
                    shutil.copy(staged, outside)
                    os.unlink(staged)
                    os.symlink(outside, staged)
                self.go("pull-downloaded")
                rc, _, err = self.finish(pull)
                self.assertEqual(rc, 0, err)
                self.assertIn(self.config_digest, verify_blobs(self.root))
                self.assertTrue(stat.S_ISREG(os.lstat(os.path.join(self.root, "blobs", "sha256",
                                                                   self.config_digest[7:])).st_mode))
                self.assertFalse(os.path.lexists(staged))
                self.ok("fsck")

    def test_a_mount_started_during_gc_waits_then_pulls_again(self):
        """gc has decided to remove the (rm'd) image; a mount of it waits for
        gc, finds no record, pulls it again and serves it."""
        self.ok("pull", self.ref)
        self.ok("rm", self.ref)
        gc = self.start("gc", pause="gc-collecting")
        self.wait_paused(gc, "gc-collecting")
        d = self.mountpoint()
        mount = self.start("mount", self.ref, d)
        seen = self.read_until(mount, WAITING)
        self.assertNotIn("pulling", seen)  # it has not read the store yet
        self.go("gc-collecting")
        rc, out, err = self.finish(gc)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.gc_removed_blobs(out), 4, out)
        rc, _, err = self.finish(mount)
        self.assertEqual(rc, 0, err)
        self.assertIn("pulling it", err)
        self.check_serves_the_image(d)

    def test_rm_and_gc_while_mounted_keep_the_mount_serving(self):
        d = self.mountpoint()
        self.ok("mount", self.ref, d)  # pulls it
        hexd = self.manifest_hex()
        blobs, indexes = self.store_files("blobs/sha256"), self.store_files("index/sha256")
        self.ok("rm", self.ref)
        self.assertEqual(self.ok("images", "--format", "json").stdout.strip(), "[]")
        r = self.ok("gc")
        self.assertEqual(self.gc_removed_blobs(r.stdout), 0, r.stdout)
        self.assertEqual(self.store_files("blobs/sha256"), blobs)
        self.assertEqual(self.store_files("index/sha256"), indexes)
        self.assertEqual(self.store_files("trees"), [hexd])
        marker = os.stat(os.path.join(self.root, "inuse", hexd + ".lock"))
        self.assertIn((os.major(marker.st_dev), os.minor(marker.st_dev), marker.st_ino), locked_inodes())
        self.check_serves_the_image(d)
        self.unmount(d)
        self.ok("gc")
        self.assert_store_empty()

    def test_a_stale_marker_is_not_swept_under_a_mount_taking_it(self):
        """A killed mount left inuse/<hex>.lock behind, unlocked. A new mount
        opens it and stops before locking it; gc must not sweep it then (it
        would, and the mount would lock an unlinked file no gc sees again)."""
        self.ok("pull", self.ref)
        hexd = self.manifest_hex()
        marker = os.path.join(self.root, "inuse", hexd + ".lock")
        open(marker, "w").close()
        stale = os.stat(marker).st_ino
        d = self.mountpoint()
        mount = self.start("mount", self.ref, d, pause="inuse-opened")
        self.wait_paused(mount, "inuse-opened")
        gc = self.start_gc_and_see_it_wait()
        self.go("inuse-opened")
        rc, _, err = self.finish(mount)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.finish(gc)
        self.assertEqual(rc, 0, err)
        st = os.stat(marker)
        self.assertEqual(st.st_ino, stale)  # the same file: not swept and re-created
        self.assertIn((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino), locked_inodes())
        self.ok("rm", self.ref)
        r = self.ok("gc")
        self.assertEqual(self.gc_removed_blobs(r.stdout), 0, r.stdout)
        self.check_serves_the_image(d)
        self.unmount(d)
        r = self.ok("gc")
        self.assertEqual(self.gc_removed_blobs(r.stdout), 4, r.stdout)
        self.assert_store_empty()

    # -- umount
    def test_umount_unmounts_lazyroot_mounts_only(self):
        d = self.mountpoint("mnt with space")
        self.ok("mount", self.ref, d)
        plain = os.path.join(self.dir, "plain")
        os.makedirs(plain)
        r = self.run_lazyroot("umount", plain)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("%s is not a mount point" % plain, r.stderr)
        r = self.run_lazyroot("umount", os.path.join(d, "etc"))  # inside the mount, not its root
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("is not a mount point", r.stderr)
        self.assertTrue(os.path.ismount(d))
        daemons = daemon_pids(d)
        self.assertEqual(len(daemons), 1)
        self.ok("umount", d)
        self.assertFalse(os.path.ismount(d))
        deadline = time.monotonic() + 10
        while daemon_alive(daemons[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(daemon_alive(daemons[0]))

    @unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
    def test_umount_refuses_a_tmpfs(self):
        d = os.path.join(self.dir, "tmpfs")
        os.makedirs(d)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lazyroot-test-tmpfs", d], check=True)
        self.addCleanup(lambda: os.path.ismount(d) and subprocess.run(["umount", d], check=True))
        r = self.run_lazyroot("umount", d)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("%s is not a lazyroot mount (it is tmpfs from lazyroot-test-tmpfs)" % d, r.stderr)
        self.assertTrue(os.path.ismount(d))
        r = self.run_lazyroot("umount", "--lazy", d + "/")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(os.path.ismount(d))

    def test_umount_of_a_mount_whose_daemon_died(self):
        """Every stat of a dead FUSE mount fails (ENOTCONN), realpath too:
        umount finds it through its parent and still checks the fstype."""
        d = self.mountpoint()
        self.ok("mount", self.ref, d)
        daemons = daemon_pids(d)
        self.assertEqual(len(daemons), 1)
        os.kill(daemons[0], 9)  # the daemon our `lazyroot mount` started
        deadline = time.monotonic() + 10
        while daemon_alive(daemons[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.assertRaises(OSError):
            os.stat(d)
        self.ok("umount", d)
        self.assertFalse(os.path.ismount(d))
        os.stat(d)  # the plain directory again


if __name__ == "__main__":
    unittest.main(verbosity=2)
