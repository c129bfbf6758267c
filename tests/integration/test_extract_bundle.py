#!/usr/bin/env python3
"""extract --bundle DIR writes an OCI runtime bundle that runc runs: the
image's entrypoint as the image's user (ids from the image's own
/etc/passwd and /etc/group), in its WorkingDir, with its Env plus docker's
defaults; config.json's process equals umoci's conversion of the same image
(args, cwd, user). extract --krun-config writes /.krun_config.json at the
top of the root without writing through what the image planted at that name
(a symlink out of the root, a hardlink to the image's /etc/passwd), in DIR,
--copy DIR and --bundle DIR alike; mount --krun-config serves the same
file at the root of the mount, hiding the planted entry, while a normal
mount of the image still shows what the image has; misuse fails before
anything is written."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

BUSYBOX = shutil.which("busybox")
RUNC = shutil.which("runc")
HAVE_UMOCI = bool(shutil.which("umoci"))
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\naudio:x:29:app\n"
WORKLOAD = 'id; echo "cwd=$(pwd)"; echo "greeting=$GREETING"; echo "home=$HOME"; cat /data/msg'


def busybox_layer(extra=()):
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    return [{"path": "bin/busybox", "content": bb, "mode": 0o755}] + [
        {"path": "bin/" + t, "type": "symlink", "target": "busybox"} for t in ("sh", "id", "cat", "echo")
    ] + [{"path": "etc/passwd", "content": PASSWD}, {"path": "etc/group", "content": GROUP},
         {"path": "home/app", "type": "dir", "mode": 0o755, "uid": 1000, "gid": 1001},
         {"path": "data/msg", "content": "message in the image\n"}] + list(extra)


CONFIG = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": [WORKLOAD], "User": "app", "WorkingDir": "/home/app",
          "Env": ["GREETING=hello"], "Labels": {"org.example.team": "rootfs"}, "StopSignal": "SIGTERM"}


@unittest.skipUnless(BUSYBOX, "busybox-static needed")
class ExtractBundle(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        client = mi.RegistryClient(cls.reg.host)
        cls.outside = tempfile.mkdtemp(prefix="lazyroot-outside-")
        cls.addClassCleanup(shutil.rmtree, cls.outside, ignore_errors=True)
        cls.host_file = os.path.join(cls.outside, "host-file")
        planted = [{"path": ".krun_config.json", "type": "symlink", "target": cls.host_file}]
        cls.images = {
            "v1": mi.build_image([mi.build_layer(busybox_layer())], config=CONFIG),
            "symlink": mi.build_image([mi.build_layer(busybox_layer(planted), compression="zstd")], config=CONFIG),
            "hardlink": mi.build_image([mi.build_layer(busybox_layer(
                [{"path": ".krun_config.json", "type": "hardlink", "target": "etc/passwd"}]))], fmt="docker",
                config=CONFIG),
            "ghost": mi.build_image([mi.build_layer(busybox_layer())], config=dict(CONFIG, User="ghost")),
            # docker's "unset" entries: not passed on (runc refuses an env entry without '=').
            "unset": mi.build_image([mi.build_layer(busybox_layer())],
                                    config=dict(CONFIG, Env=["NOEQUALS", "GREETING=hello", "HOME"])),
        }
        for tag, img in cls.images.items():
            mi.push(client, "demo/bundle", tag, img)

    def setUp(self):
        super().setUp()
        with open(self.host_file, "w") as f:
            f.write("host data\n")

    def ref(self, tag):
        return "http://%s/demo/bundle:%s" % (self.reg.host, tag)

    def extract(self, tag, *args):
        r = self.lazyroot("extract", self.ref(tag), *args)
        self.assertOk(r, "extract " + " ".join(args))
        return r

    def config(self, path):
        with open(path) as f:
            return json.load(f)

    @unittest.skipUnless(RUNC, "runc needed")
    def test_runc_runs_the_bundle_as_the_images_user(self):
        bundle = os.path.join(self.tmp, "bundle")
        r = self.extract("v1", "--bundle", bundle)
        self.assertEqual(r.stdout.strip(), bundle)
        self.assertTrue(os.path.isdir(os.path.join(bundle, "rootfs", "bin")))
        cid = "lazyroot-test-%d" % os.getpid()
        p = subprocess.run([RUNC, "run", "--bundle", bundle, cid], capture_output=True, text=True, timeout=120)
        subprocess.run([RUNC, "delete", "--force", cid], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("uid=1000(app) gid=1001(app)", p.stdout)
        self.assertIn("29(audio)", p.stdout)
        self.assertIn("cwd=/home/app", p.stdout)
        self.assertIn("greeting=hello", p.stdout)
        self.assertIn("home=/home/app", p.stdout)
        self.assertIn("message in the image", p.stdout)
        spec = self.config(os.path.join(bundle, "config.json"))
        self.assertEqual(spec["annotations"]["org.example.team"], "rootfs")
        self.assertEqual(spec["annotations"]["org.opencontainers.image.stopSignal"], "SIGTERM")

    @unittest.skipUnless(RUNC, "runc needed")
    def test_runc_runs_a_bundle_of_an_image_with_env_entries_without_equals(self):
        bundle = os.path.join(self.tmp, "bundle")
        self.extract("unset", "--bundle", bundle)
        env = self.config(os.path.join(bundle, "config.json"))["process"]["env"]
        self.assertTrue(all("=" in e for e in env), env)
        cid = "lazyroot-test-unset-%d" % os.getpid()
        p = subprocess.run([RUNC, "run", "--bundle", bundle, cid], capture_output=True, text=True, timeout=120)
        subprocess.run([RUNC, "delete", "--force", cid], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("greeting=hello", p.stdout)
        self.assertIn("home=/home/app", p.stdout)

    @unittest.skipUnless(HAVE_UMOCI, "umoci needed")
    def test_config_process_equals_umocis_conversion(self):
        bundle = os.path.join(self.tmp, "bundle")
        self.extract("v1", "--bundle", bundle)
        ours = self.config(os.path.join(bundle, "config.json"))["process"]
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), self.images["v1"], tag="v1")
        ub = os.path.join(self.tmp, "umoci-bundle")
        subprocess.run(["umoci", "unpack", "--image", layout + ":v1", ub], check=True, capture_output=True)
        theirs = self.config(os.path.join(ub, "config.json"))["process"]
        self.assertEqual(ours["args"], theirs["args"])
        self.assertEqual(ours["cwd"], theirs["cwd"])
        self.assertEqual(ours["user"]["uid"], theirs["user"]["uid"])
        self.assertEqual(ours["user"]["gid"], theirs["user"]["gid"])
        self.assertEqual(ours["user"].get("additionalGids", []), theirs["user"].get("additionalGids", []))
        # umoci puts its default PATH (docker's) first and adds TERM=xterm
        # (its runtime defaults); the image's Env and docker's PATH are in both.
        self.assertLessEqual(set(ours["env"]) - {"HOME=/home/app"}, set(theirs["env"]), theirs["env"])

    def test_krun_config_replaces_a_planted_symlink_without_following_it(self):
        for where in ("dir", "copy", "bundle"):
            with self.subTest(where=where):
                target = os.path.join(self.tmp, "krun-" + where)
                args = {"dir": [target], "copy": ["--copy", target], "bundle": ["--bundle", target]}[where]
                self.extract("symlink", "--krun-config", *args)
                root = os.path.join(target, "rootfs") if where == "bundle" else target
                path = os.path.join(root, ".krun_config.json")
                self.assertFalse(os.path.islink(path))
                cfg = self.config(path)
                self.assertEqual(cfg["process"]["args"], ["/bin/sh", "-c", WORKLOAD])
                self.assertEqual(cfg["process"]["cwd"], "/home/app")
                self.assertIn("GREETING=hello", cfg["process"]["env"])
                with open(self.host_file) as f:
                    self.assertEqual(f.read(), "host data\n")
                self.assertFalse([n for n in os.listdir(root) if "lazyroot-tmp" in n])

    def test_krun_config_does_not_write_through_a_hardlink(self):
        d = os.path.join(self.tmp, "hl")
        self.extract("hardlink", "--krun-config", d)
        with open(os.path.join(d, "etc", "passwd")) as f:
            self.assertEqual(f.read(), PASSWD)
        self.assertEqual(self.config(os.path.join(d, ".krun_config.json"))["process"]["user"]["uid"], 1000)

    def test_mount_krun_config_serves_the_same_file(self):
        d = os.path.join(self.tmp, "extracted")
        self.extract("symlink", "--krun-config", d)
        with open(os.path.join(d, ".krun_config.json")) as f:
            written = f.read()
        for name, args in (("krun", ["--krun-config"]), ("plain", [])):
            mnt = self.workdir("mnt-" + name)
            self.assertOk(self.lazyroot("mount", *args, self.ref("symlink"), mnt), "mount " + name)
            self.addCleanup(self.lazyroot, "umount", mnt)
            path = os.path.join(mnt, ".krun_config.json")
            if name == "plain":  # the image's own planted symlink, untouched
                self.assertTrue(os.path.islink(path))
                self.assertEqual(os.readlink(path), self.host_file)
                continue
            st = os.lstat(path)
            self.assertTrue(stat.S_ISREG(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o444)
            with open(path) as f:
                self.assertEqual(f.read(), written)
            self.assertEqual(os.listdir(mnt).count(".krun_config.json"), 1)
            self.assertEqual(os.listxattr(path), [])
            with self.assertRaises(OSError):
                open(path, "w")
            with open(self.host_file) as f:
                self.assertEqual(f.read(), "host data\n")
            # The rest of the root is the image's.
            self.assertTrue(os.path.isfile(os.path.join(mnt, "etc", "passwd")))

    def test_krun_config_over_a_planted_directory_leaves_dir_as_it_was(self):
        img = mi.build_image([mi.build_layer(busybox_layer([{"path": ".krun_config.json", "type": "dir"}]))],
                             config=CONFIG)
        mi.push(mi.RegistryClient(self.reg.host), "demo/bundle", "krundir", img)
        for existed in (False, True):
            d = os.path.join(self.tmp, "krundir-%s" % existed)
            if existed:
                os.makedirs(d)
            r = self.lazyroot("extract", "--krun-config", self.ref("krundir"), d)
            self.assertFails(r, 1)
            self.assertIn(".krun_config.json", r.stderr)
            self.assertEqual(os.path.isdir(d), existed)
            if existed:
                self.assertEqual(os.listdir(d), [])

    def test_misuse_fails_before_writing(self):
        r = self.lazyroot("extract", "--krun-config", self.ref("v1"))
        self.assertFails(r, 2)
        self.assertIn("--krun-config", r.stderr)
        full = os.path.join(self.tmp, "full")
        os.makedirs(full)
        with open(os.path.join(full, "keep"), "w") as f:
            f.write("x")
        r = self.lazyroot("extract", "--bundle", full, self.ref("v1"))
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(os.listdir(full), ["keep"])
        r = self.lazyroot("extract", "--bundle", os.path.join(self.tmp, "b"), "x", self.ref("v1"))
        self.assertNotEqual(r.returncode, 0)
        ghost = os.path.join(self.tmp, "ghost")
        r = self.lazyroot("extract", "--bundle", ghost, self.ref("ghost"))
        self.assertFails(r, 1)
        self.assertIn("unable to find user ghost", r.stderr)
        self.assertFalse(os.path.exists(ghost), "a failed --bundle left its directory behind")


if __name__ == "__main__":
    unittest.main()
