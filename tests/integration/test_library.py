#!/usr/bin/env python3
"""The library as a launcher uses it: `cmake --install` of this build into a
temporary prefix, then tests/examples/launch.c built against the *installed*
package with `cc $(pkg-config --cflags --libs lazyroot)` (and once against
liblazyroot.a with `pkg-config --static`), and tests/examples/read_image.cc
built with CMake's find_package(lazyroot). launch pulls an image from a real
registry, mounts it, prints the launch configuration (which must equal
`lazyroot inspect --launch`'s), keeps the mount while its stdin is open (the
test reads files and /.krun_config.json through it) and unmounts when stdin
closes. The shared library exports the lazyroot_* C API alone and has an
SONAME with the major version."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
BUILD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(LAZYROOT_BIN)))

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nvideo:x:44:app\n"


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Library(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="lazyroot-lib-")
        cls.addClassCleanup(shutil.rmtree, cls.work, ignore_errors=True)
        cls.prefix = os.path.join(cls.work, "prefix")
        r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", cls.prefix], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)
        cls.libdir = os.path.join(cls.prefix, "lib")
        cls.pc_env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(cls.libdir, "pkgconfig"))
        cls.class_registry("plain")
        layer = mi.build_layer([{"path": "etc/passwd", "content": PASSWD}, {"path": "etc/group", "content": GROUP},
                                {"path": "etc/hello", "content": "hello through the library\n"},
                                {"path": "bin/app", "content": "#!/bin/sh\n", "mode": 0o755}])
        image = mi.build_image([layer], config={"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "User": "app",
                                                "Env": ["MODE=vm"], "WorkingDir": "/srv"})
        mi.push(mi.RegistryClient(cls.reg.host), "lib/app", "v1", image)
        cls.ref = "http://%s/lib/app:v1" % cls.reg.host

    def pkg_config(self, *args):
        r = subprocess.run(["pkg-config", *args, "lazyroot"], env=self.pc_env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def build_launch(self, static):
        out = os.path.join(self.tmp, "launch-static" if static else "launch")
        flags = self.pkg_config("--cflags") + self.pkg_config("--libs", *(["--static"] if static else []))
        if static:  # the archive, not the .so beside it
            flags = [os.path.join(self.libdir, "liblazyroot.a") if f == "-llazyroot" else f for f in flags]
        r = subprocess.run(["cc", "-Wall", "-Werror", "-o", out, os.path.join(EXAMPLES, "launch.c")] + flags,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def run_launch(self, binary):
        mnt = self.workdir("mnt-" + os.path.basename(binary))
        env = dict(self.env, LD_LIBRARY_PATH=self.libdir, LAZYROOT_HOME=self.root)
        p = subprocess.Popen([binary, self.ref, mnt], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        self.addCleanup(lambda: mounted(mnt) and subprocess.run(["umount", "-l", mnt]))
        line = p.stdout.readline()
        self.assertTrue(line, "launch printed nothing: " + (p.stderr.read() if p.poll() is not None else ""))
        got = json.loads(line)
        self.assertTrue(mounted(mnt))
        with open(os.path.join(mnt, "etc", "hello")) as f:
            self.assertEqual(f.read(), "hello through the library\n")
        with open(os.path.join(mnt, ".krun_config.json")) as f:
            spec = json.load(f)
        p.stdin.close()
        self.assertEqual(p.wait(timeout=60), 0, p.stderr.read())
        self.assertFalse(mounted(mnt), "the mount outlived launch's unmount")
        return got, spec, mnt

    def check_against_cli(self, got, spec, mnt):
        r = self.lazyroot("inspect", "--launch", self.ref)
        self.assertOk(r)
        want = json.loads(r.stdout)
        self.assertEqual(got["root"], mnt)
        self.assertEqual(got["exec"], want["args"])
        self.assertEqual(got["env"], want["env"])
        self.assertEqual(got["workdir"], want["cwd"])
        self.assertEqual((got["uid"], got["gid"], got["additional_gids"]),
                         (want["uid"], want["gid"], want["additional_gids"]))
        self.assertEqual((got["uid"], got["additional_gids"]), (1000, [44]))
        self.assertEqual(spec["process"]["args"], ["/bin/app", "--serve"])

    def test_c_example_against_the_installed_shared_library(self):
        got, spec, mnt = self.run_launch(self.build_launch(static=False))
        self.check_against_cli(got, spec, mnt)

    def test_c_example_against_the_static_archive(self):
        binary = self.build_launch(static=True)
        r = subprocess.run(["ldd", binary], capture_output=True, text=True)
        self.assertNotIn("liblazyroot", r.stdout)
        got, spec, mnt = self.run_launch(binary)
        self.check_against_cli(got, spec, mnt)

    def test_cpp_example_with_find_package(self):
        src = self.workdir("cpp")
        shutil.copy(os.path.join(EXAMPLES, "read_image.cc"), src)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.25)\nproject(read_image CXX)\nset(CMAKE_CXX_STANDARD 17)\n"
                    "find_package(lazyroot 0.2 REQUIRED)\nadd_executable(read_image read_image.cc)\n"
                    "target_link_libraries(read_image PRIVATE lazyroot::lazyroot)\n")
        b = os.path.join(src, "build")
        r = subprocess.run(["cmake", "-S", src, "-B", b, "-G", "Ninja", "-DCMAKE_PREFIX_PATH=" + self.prefix],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run(["cmake", "--build", b], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        mnt = self.workdir("mnt-cpp")
        r = subprocess.run([os.path.join(b, "read_image"), self.ref, mnt, "etc/hello"], capture_output=True, text=True,
                           env=dict(self.env, LAZYROOT_HOME=self.root), timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("file: hello through the library", r.stdout)
        self.assertIn("argv: /bin/app --serve", r.stdout)
        self.assertIn("uid: 1000", r.stdout)
        self.assertIn("override argv: /bin/app --check\n", r.stdout)
        self.assertIn(" MODE=test", r.stdout)
        self.assertFalse(mounted(mnt))
        cached = [l.split(" ", 1)[1] for l in r.stdout.splitlines() if l.startswith("cached: ")][0]
        self.assertTrue(cached.startswith(os.path.join(self.root, "rootfs") + "/"), cached)
        with open(os.path.join(cached, "etc", "hello")) as f:
            self.assertEqual(f.read(), "hello through the library\n")
        # The CLI reuses the library's cached tree: same directory, checked, not extracted again.
        r2 = self.lazyroot("extract", self.ref)
        self.assertOk(r2)
        self.assertEqual(r2.stdout.strip(), cached)
        self.assertIn("already extracted", r2.stderr)
        # An error crosses as lazyroot::Error with the C status and the message.
        r = subprocess.run([os.path.join(b, "read_image"), "http://%s/lib/missing:v1" % self.reg.host, mnt, "x"],
                           capture_output=True, text=True, env=dict(self.env, LAZYROOT_HOME=self.root))
        self.assertEqual(r.returncode, 1)
        self.assertIn("lib/missing", r.stderr)

    def test_pull_progress_and_cancel(self):
        big = mi.build_image([mi.build_layer(random_mib=8, seed=11)], config={"Cmd": ["/x"]})
        mi.push(mi.RegistryClient(self.reg.host), "lib/big", "v1", big)
        ref = "http://%s/lib/big:v1" % self.reg.host
        out = os.path.join(self.tmp, "pull")
        flags = self.pkg_config("--cflags") + self.pkg_config("--libs")
        r = subprocess.run(["cc", "-Wall", "-Werror", "-o", out, os.path.join(EXAMPLES, "pull.c")] + flags,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        env = dict(self.env, LD_LIBRARY_PATH=self.libdir, LAZYROOT_HOME=self.root)
        r = subprocess.run([out, ref, str(1 << 20)], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)  # LAZYROOT_CANCELLED
        self.assertIn("status 8: ", r.stderr)
        self.assertIn("cancelled", r.stderr)
        self.assertNotIn("digest", r.stdout)
        self.assertEqual(self.lazyroot("images", "--format", "json").stdout.count("lib/big"), 0)
        # Nothing half-written: the store is clean (a resumable partial is a note, not a problem).
        self.assertOk(self.lazyroot("fsck"))
        r = subprocess.run([out, ref], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("digest " + big.digest, r.stdout)
        # The resumed pull fetched the config and the layer's rest (lazyroot_pull_result).
        self.assertRegex(r.stdout, r"\nblobs [12]\n")
        lines = [l.split() for l in r.stdout.splitlines() if l.startswith("progress ")]
        self.assertTrue(lines)
        done = [int(l[1]) for l in lines]
        self.assertEqual(done, sorted(done))  # monotonic
        self.assertEqual(done[-1], int(lines[-1][2]))  # ends at the total
        self.assertOk(self.lazyroot("fsck"))

    def test_launcher_verbs_use_the_public_api_only(self):
        """pull, extract, mount (the daemon) and inspect --launch are built on
        <lazyroot/lazyroot.hpp>: their files include nothing of the core, so
        a launcher can do all they do."""
        cli = os.path.join(HERE, "..", "..", "src", "cli")
        allowed = {"<lazyroot/lazyroot.hpp>", '"src/cli/cli_common.h"', '"src/cli/progress_observer.h"',
                   '"src/cli/progress_render.h"', '"src/cli/interrupt.h"'}
        for name in ("cmd_pull.cc", "cmd_extract.cc", "cmd_mount_library.cc", "cmd_launch.cc",
                     "progress_observer.h", "cli_common.h"):
            with open(os.path.join(cli, name)) as f:
                includes = [l.split(None, 1)[1].strip() for l in f if l.startswith("#include")]
            ours = [i for i in includes if i.startswith('"') or i.startswith("<lazyroot")]
            if name.endswith(".cc"):
                self.assertIn("<lazyroot/lazyroot.hpp>", ours, name)
            self.assertEqual([i for i in ours if i not in allowed], [], name)

    def test_exports_and_soname(self):
        so = os.path.join(self.libdir, "liblazyroot.so")
        r = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True)
        names = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
        self.assertIn("lazyroot_mount_image", names)
        self.assertEqual([n for n in names if not n.startswith("lazyroot_")], [])
        r = subprocess.run(["readelf", "-d", so], capture_output=True, text=True)
        self.assertIn("[liblazyroot.so.0]", r.stdout)
        for h in ("lazyroot.h", "lazyroot.hpp"):
            self.assertTrue(os.path.exists(os.path.join(self.prefix, "include", "lazyroot", h)))
        self.assertEqual(self.pkg_config("--modversion"), ["0.2.0"])


if __name__ == "__main__":
    unittest.main()
