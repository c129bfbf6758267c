#!/usr/bin/env python3
"""The mount as a real root: a Debian-shaped image made at test time from this
machine's own files (usrmerge symlinks bin/lib/lib64 -> usr/… in one layer,
Debian's python3.11 with its shared libraries and standard library in the
next, an app layer with the entrypoint), pulled, mounted, and its Python
entrypoint run with `chroot`: the dynamic loader resolves through the
usrmerge symlinks and Python's import floods hit many negative lookups.
Also the same entrypoint through `lazyroot extract`. Unmounts in a cleanup;
kills nothing. Skipped (with the reason) without /dev/fuse or Debian's
/usr/bin/python3.11."""
import os
import subprocess
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import LAZYROOT_BIN  # noqa: E402

PYTHON = "/usr/bin/python3.11"
APP = b"""#!/usr/bin/python3.11
import hashlib, json, os, sys
data = open('/app/data.txt', 'rb').read()
print(json.dumps({"python": sys.version.split()[0], "cwd": os.getcwd(),
                  "sha256": hashlib.sha256(data).hexdigest()[:16], "n": len(data)}))
"""


def host_layer_tar(paths):
    """GNU tar of host paths (relative to /), numeric owners."""
    return subprocess.run(["tar", "-C", "/", "--numeric-owner", "--format=posix", "-cf", "-"] + paths,
                          check=True, capture_output=True).stdout


def shared_libs(binary):
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            # The soname link as the loader asks for it (under /lib: the
            # merge must resolve it through the image's lib -> usr/lib) and
            # the file it names.
            libs += [path, os.path.realpath(path)]
    return libs


@unittest.skipUnless(os.path.exists("/dev/fuse"), "no /dev/fuse on this machine")
@unittest.skipUnless(os.path.exists(PYTHON), "Debian's python3.11 is not installed")
class MountChroot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lazyroot-chroot-test-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.env = dict(os.environ, HOME=cls.tmp, NO_PROXY="*")
        cls.env.pop("LAZYROOT_HOME", None)
        cls.root = os.path.join(cls.tmp, "store")
        cls.reg = registry.start_registry("plain", os.path.join(cls.tmp, "registry"))
        cls.addClassCleanup(cls.reg.stop)
        usrmerge = mi.build_layer([{"path": "usr/bin", "type": "dir"}, {"path": "usr/lib", "type": "dir"},
                                   {"path": "usr/lib64", "type": "dir"},
                                   {"path": "bin", "type": "symlink", "target": "usr/bin"},
                                   {"path": "lib", "type": "symlink", "target": "usr/lib"},
                                   {"path": "lib64", "type": "symlink", "target": "usr/lib64"},
                                   {"path": "tmp", "type": "dir", "mode": 0o1777}])
        libs = [p.lstrip("/") for p in shared_libs(PYTHON)]
        # The loader is named through /lib64 in the binary: ship it under usr/lib64 as Debian does.
        tar = host_layer_tar([PYTHON.lstrip("/"), "usr/lib/python3.11/encodings", "usr/lib/python3.11/json",
                              "usr/lib/python3.11/collections", "usr/lib/python3.11/importlib"] +
                             ["usr/lib/python3.11/%s.py" % m for m in (
                                 "os", "abc", "stat", "posixpath", "genericpath", "codecs", "io", "_collections_abc",
                                 "_sitebuiltins", "site", "hashlib", "re", "enum", "functools", "operator", "keyword",
                                 "reprlib", "types", "copyreg", "warnings", "weakref", "_weakrefset", "sre_compile",
                                 "sre_parse", "sre_constants", "heapq", "contextlib", "linecache", "tokenize",
                                 "token", "traceback", "struct", "collections/__init__")
                                 if os.path.exists("/usr/lib/python3.11/%s.py" % m)] +
                             ["usr/lib/python3.11/re"] * os.path.isdir("/usr/lib/python3.11/re") +
                             ["usr/lib/python3.11/lib-dynload"] + sorted(set(libs)) +
                             ["usr/lib64/ld-linux-x86-64.so.2"] * os.path.exists("/usr/lib64/ld-linux-x86-64.so.2"))
        python = mi.Layer(tar, mi._compress(tar, "gzip", 6), "gzip")
        cls.data = os.urandom(3 << 20)
        app = mi.build_layer([{"path": "app/main.py", "content": APP, "mode": 0o755},
                              {"path": "app/data.txt", "content": cls.data}], compression="zstd")
        image = mi.build_image([usrmerge, python, app], config={"Entrypoint": ["/usr/bin/python3.11", "/app/main.py"],
                                                               "WorkingDir": "/app"})
        mi.push(mi.RegistryClient(cls.reg.host), "debian/py", "v1", image)
        cls.ref = "http://%s/debian/py:v1" % cls.reg.host
        r = cls.lazyroot("pull", "-q", cls.ref)
        if r.returncode != 0:
            raise AssertionError("pull failed: " + r.stderr)

    @classmethod
    def lazyroot(cls, *args):
        return subprocess.run([LAZYROOT_BIN, "--root", cls.root] + list(args), env=cls.env, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)

    def run_entrypoint(self, rootdir):
        # `chroot` then the image's Entrypoint in its WorkingDir; -I: no host site dirs.
        r = subprocess.run(["chroot", rootdir, "/bin/python3.11", "-I", "-c",
                            "import os; os.chdir('/app'); exec(open('/app/main.py').read())"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, "entrypoint failed: " + r.stderr)
        import hashlib
        import json
        out = json.loads(r.stdout)
        self.assertEqual(out["sha256"], hashlib.sha256(self.data).hexdigest()[:16])
        self.assertEqual(out["n"], len(self.data))
        self.assertEqual(out["cwd"], "/app")
        self.assertTrue(out["python"].startswith("3.11"))

    def test_entrypoint_runs_in_the_mount(self):
        mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(mnt, exist_ok=True)
        r = self.lazyroot("mount", self.ref, mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(lambda: os.path.ismount(mnt) and self.lazyroot("umount", mnt))
        self.assertTrue(os.path.islink(os.path.join(mnt, "lib")))
        self.run_entrypoint(mnt)
        self.run_entrypoint(mnt)  # again, from the kernel's caches
        self.assertEqual(self.lazyroot("umount", mnt).returncode, 0)

    def test_entrypoint_runs_in_the_extracted_tree(self):
        out = os.path.join(self.tmp, "rootfs")
        r = self.lazyroot("extract", self.ref, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.run_entrypoint(out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
