"""Shared pieces of the pull integration tests (tests/integration/test_pull_*.py).

PullTestCase gives each test a private temp dir (self.tmp), a store root
(self.root) and an environment in which HOME, DOCKER_CONFIG, XDG_* and
LAZYROOT_HOME point into that dir, so no test reads the user's credentials or
store. self.lazyroot(*args) runs the binary ($LAZYROOT_BIN, else
build/src/lazyroot of this checkout) with --root self.root. The independent checks
use only the file system and `sha256sum`:

  blob_files(root)        {digest: size} of ROOT/blobs/sha256/*
  store_listing(root)     sorted (path, size) of ROOT/blobs and ROOT/images
  verify_blobs(root)      runs sha256sum over every blob; fails on a mismatch

A test class whose tests share one store calls class_store(cls, prefix) in
its setUpClass instead (cls.tmp, cls.root, cls.env, cls.reg).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

LAZYROOT_BIN = os.environ.get("LAZYROOT_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "src", "lazyroot")
SOURCE_DIR = os.environ.get("LAZYROOT_SOURCE_DIR", os.path.dirname(os.path.dirname(TOOLS)))


def blob_files(root):
    d = os.path.join(root, "blobs", "sha256")
    if not os.path.isdir(d):
        return {}
    return {"sha256:" + n: os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)}


def store_listing(root):
    out = []
    for sub in ("blobs", "images"):
        base = os.path.join(root, sub)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for n in sorted(filenames):
                p = os.path.join(dirpath, n)
                out.append((os.path.relpath(p, root), os.path.getsize(p)))
    return out


def verify_blobs(root):
    """Every ROOT/blobs/sha256/<hex> must hash to <hex> (checked by sha256sum).
    Returns the set of digests; raises AssertionError naming a bad blob."""
    d = os.path.join(root, "blobs", "sha256")
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    if not names:
        return set()
    out = subprocess.run(["sha256sum", "--"] + names, cwd=d, check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        h, name = line.split(None, 1)
        name = name.lstrip("*")
        if h != name:
            raise AssertionError("stored blob %s hashes to sha256:%s" % (name, h))
    return {"sha256:" + n for n in names}


def isolated_env(home):
    """The environment for a lazyroot under test: HOME (created), XDG dirs and
    DOCKER_CONFIG inside it, no store, credential or proxy settings of the
    machine running the tests. LAZYROOT_SYSCONFDIR (HOME/etc, created empty)
    stands for /etc: no registries.conf, hosts.toml or certs.d of the machine
    is read."""
    os.makedirs(os.path.join(home, "etc"), exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "LAZYROOT_HOME", "HTTP_PROXY",
                        "CONTAINERS_REGISTRIES_CONF", "REGISTRIES_CONFIG_PATH",
                        "LAZYROOT_CREDENTIAL_HELPER_TIMEOUT",
                        "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")}
    env.update(HOME=home, XDG_DATA_HOME=os.path.join(home, ".local/share"),
               XDG_CONFIG_HOME=os.path.join(home, ".config"), DOCKER_CONFIG=os.path.join(home, ".docker"),
               LAZYROOT_SYSCONFDIR=os.path.join(home, "etc"),
               NO_PROXY="*")
    return env


def class_store(cls, prefix):
    """For a test class whose tests share one store: cls.tmp (a temp dir
    named by prefix), cls.root (the store in it), cls.env (isolated_env with
    its HOME in it) and cls.reg (a plain registry); the registry is stopped,
    then the dir removed, after the class's tests."""
    import registry  # noqa: E402 (tests/tools is on the path of every test)
    cls.tmp = tempfile.mkdtemp(prefix=prefix)
    cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
    cls.root = os.path.join(cls.tmp, "store")
    cls.env = isolated_env(os.path.join(cls.tmp, "home"))
    cls.reg = registry.start_registry("plain", os.path.join(cls.tmp, "registry"))
    cls.addClassCleanup(cls.reg.stop)


def unmount_below(root):
    """Lazily unmounts whatever is still mounted below root (deepest first):
    a mount a test left behind (its command timed out after the daemon had
    mounted, or an assertion failed first) must not outlive the test."""
    root = os.path.realpath(root) + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp.startswith(root):
                    found.append(mp)
    except OSError:
        return
    for mp in sorted(found, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


class PullTestCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def class_registry(cls, mode="plain", **kw):
        """A registry (registry.py) for the whole class, on 127.0.0.1, stopped
        and its storage removed after the class's tests; also cls.reg."""
        import registry  # noqa: E402 (tests/tools is on the path of every test)
        regdir = tempfile.mkdtemp(prefix="lazyroot-reg-")
        cls.addClassCleanup(shutil.rmtree, regdir, ignore_errors=True)
        cls.reg = registry.start_registry(mode, regdir, **kw)
        cls.addClassCleanup(cls.reg.stop)
        return cls.reg

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lazyroot-pull-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(unmount_below, self.tmp)  # runs first: nothing mounted survives the test
        self.root = os.path.join(self.tmp, "root")
        self.env = isolated_env(os.path.join(self.tmp, "home"))
        if not os.access(LAZYROOT_BIN, os.X_OK):
            self.fail("lazyroot binary not found at %s (set LAZYROOT_BIN)" % LAZYROOT_BIN)

    def workdir(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return d

    def nobody_lazyroot(self):
        """lazyroot as uid/gid 65534 (setpriv; the caller checks it is root
        and setpriv exists): (its own dir, removed after the test; the
        environment, HOME and the like in that dir; the command line up to
        the subcommand, with a store in that dir)."""
        base = tempfile.mkdtemp(prefix="lazyroot-nobody-")
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        os.chmod(base, 0o755)
        os.chown(base, 65534, 65534)
        env = {"HOME": base, "XDG_DATA_HOME": base + "/share", "XDG_CONFIG_HOME": base + "/config",
               "DOCKER_CONFIG": base + "/docker", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_PROXY": "*"}
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LAZYROOT_BIN, "--root", base + "/store"]
        return base, env, cmd

    def lazyroot(self, *args, root=True, input=None, env=None, timeout=120):
        cmd = [LAZYROOT_BIN] + (["--root", self.root] if root else []) + list(args)
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run(cmd, input=input, env=e, capture_output=True, text=True, timeout=timeout)

    def popen(self, *args, env=None):
        """Starts lazyroot in the background; its stdout/stderr go to files
        (no pipe can fill up and stall it). finish(p) waits and returns
        (exit code, stdout, stderr)."""
        e = dict(self.env)
        e.update(env or {})
        n = len(os.listdir(self.tmp))
        out = open(os.path.join(self.tmp, "bg%d.out" % n), "w+")
        err = open(os.path.join(self.tmp, "bg%d.err" % n), "w+")
        self.addCleanup(out.close)
        self.addCleanup(err.close)
        p = subprocess.Popen([LAZYROOT_BIN, "--root", self.root] + list(args), env=e,
                             stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        p.out_file, p.err_file = out, err
        self.addCleanup(self._reap, p)
        return p

    @staticmethod
    def _reap(p):
        if p.poll() is None:
            p.kill()
            p.wait()

    def finish(self, p, timeout=120):
        code = p.wait(timeout=timeout)
        p.out_file.seek(0)
        p.err_file.seek(0)
        return code, p.out_file.read(), p.err_file.read()

    def assertOk(self, r, what="lazyroot"):
        if r.returncode != 0:
            self.fail("%s exited %d\nstdout: %s\nstderr: %s" % (what, r.returncode, r.stdout[-2000:],
                                                                  r.stderr[-3000:]))

    def assertFails(self, r, code=1):
        self.assertEqual(r.returncode, code, "expected exit %d\nstdout: %s\nstderr: %s"
                         % (code, r.stdout[-2000:], r.stderr[-3000:]))
        self.assertTrue(r.stderr.strip(), "failure without a message on stderr")

    def pull(self, image, *opts, **kw):
        return self.lazyroot("pull", *opts, image, **kw)

    def pull_ok(self, image, *opts, **kw):
        r = self.pull(image, *opts, **kw)
        self.assertOk(r, "lazyroot pull %s" % image)
        return r

    def inspect(self, image, *opts):
        r = self.lazyroot("inspect", *opts, image)
        self.assertOk(r, "lazyroot inspect %s" % image)
        if opts:
            return r.stdout
        try:
            return json.loads(r.stdout)
        except ValueError:
            self.fail("lazyroot inspect %s printed no JSON: %r" % (image, r.stdout[:500]))

    def images(self):
        r = self.lazyroot("images", "--format", "json")
        self.assertOk(r, "lazyroot images")
        try:
            return json.loads(r.stdout)
        except ValueError:
            self.fail("lazyroot images --format json printed no JSON: %r" % r.stdout[:500])

    def assertStored(self, digests):
        """Every digest is in the store and every stored blob verifies."""
        have = verify_blobs(self.root)
        missing = sorted(set(digests) - have)
        self.assertFalse(missing, "blobs missing from the store: %s" % missing)
        return have
