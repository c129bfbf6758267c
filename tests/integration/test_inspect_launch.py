#!/usr/bin/env python3
"""lazyroot inspect --launch: the launch configuration of images with each
form of User ("", name, uid, name:group, uid:gid, a uid absent from passwd),
Entrypoint/Cmd combinations, missing Env, and /etc/passwd reached through a
symlink, pulled from a real registry. The oracle is umoci (its runtime-spec
conversion resolves the user with runc's libcontainer/user against the
unpacked rootfs): process.args, process.cwd, process.user.{uid, gid,
additionalGids} must equal ours. docker's PATH/HOME defaults and its
--entrypoint/trailing-args rules (moby daemon/commit.go) are asserted
directly, since umoci does not apply them."""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

HAVE_UMOCI = bool(shutil.which("umoci"))

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1001:App:/home/app:/bin/sh\n"
          "svc:x:1500:1500::/srv:/bin/sh\n")
GROUP = ("root:x:0:\n"
         "app:x:1001:\n"
         "audio:x:29:app,svc\n"
         "video:x:44:svc,app\n"
         "staff:x:50:\n")

BASE = [{"path": "usr/share/auth", "type": "dir"},
        {"path": "usr/share/auth/passwd", "content": PASSWD},
        {"path": "etc", "type": "dir"},
        # passwd through a symlink, group as a plain file
        {"path": "etc/passwd", "type": "symlink", "target": "../usr/share/auth/passwd"},
        {"path": "etc/group", "content": GROUP},
        {"path": "bin/app", "content": "#!/bin/sh\n", "mode": 0o755}]

CASES = {
    # tag: config
    "root": {"Cmd": ["/bin/app", "serve"], "Env": ["A=1"]},
    "name": {"Entrypoint": ["/bin/app"], "Cmd": ["--port", "80"], "User": "app", "WorkingDir": "/srv/data",
             "Env": ["PATH=/opt/bin", "HOME=/custom"]},
    "uid": {"Entrypoint": ["/bin/app"], "User": "1500"},
    "namegroup": {"Cmd": ["/bin/app"], "User": "app:staff"},
    "uidgid": {"Cmd": ["/bin/app"], "User": "1000:44"},
    "absent": {"Cmd": ["/bin/app"], "User": "4242"},
    "absentpair": {"Cmd": ["/bin/app"], "User": "4242:4343", "WorkingDir": "rel"},
}


class InspectLaunch(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        client = mi.RegistryClient(cls.reg.host)
        cls.layer = mi.build_layer(BASE, compression="gzip")
        cls.images = {}
        for tag, cfg in CASES.items():
            img = mi.build_image([cls.layer], fmt="oci", config=cfg)
            mi.push(client, "demo/launch", tag, img)
            cls.images[tag] = img
        for tag, cfg in (("ghost", {"Cmd": ["/bin/app"], "User": "ghost"}),
                         ("ghostgroup", {"Cmd": ["/bin/app"], "User": "app:ghosts"}),
                         ("nocmd", {"Env": ["A=1"]})):
            mi.push(client, "demo/launch", tag, mi.build_image([cls.layer], fmt="docker", config=cfg))
        bare = mi.build_layer([{"path": "bin/app", "content": "x", "mode": 0o755}], compression="zstd")
        mi.push(client, "demo/launch", "nopasswd", mi.build_image([bare], fmt="docker",
                                                                   config={"Cmd": ["/bin/app"], "User": "7:8"}))
        mi.push(client, "demo/launch", "nopasswdname", mi.build_image([bare], fmt="docker",
                                                                       config={"Cmd": ["/bin/app"], "User": "app"}))

    def ref(self, tag):
        return "http://%s/demo/launch:%s" % (self.reg.host, tag)

    def launch(self, tag, *options, args=None):
        self.pull_ok(self.ref(tag))
        r = self.lazyroot("inspect", "--launch", *options, self.ref(tag), *(["--"] + args if args else []))
        self.assertOk(r, "inspect --launch " + tag)
        return json.loads(r.stdout)

    def umoci_process(self, tag):
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout-" + tag), self.images[tag], tag=tag)
        bundle = os.path.join(self.tmp, "bundle-" + tag)
        subprocess.run(["umoci", "unpack", "--image", "%s:%s" % (layout, tag), bundle], check=True,
                       capture_output=True)
        with open(os.path.join(bundle, "config.json")) as f:
            return json.load(f)["process"]

    @unittest.skipUnless(HAVE_UMOCI, "umoci not installed")
    def test_user_args_and_cwd_equal_umocis_conversion(self):
        for tag in CASES:
            with self.subTest(tag=tag):
                got = self.launch(tag)
                want = self.umoci_process(tag)
                self.assertEqual(got["args"], want["args"])
                # umoci passes a relative WorkingDir on (runc then refuses it); we make it absolute.
                self.assertEqual(got["cwd"], want["cwd"] if want["cwd"].startswith("/") else "/" + want["cwd"])
                self.assertEqual(got["uid"], want["user"]["uid"])
                self.assertEqual(got["gid"], want["user"]["gid"])
                self.assertEqual(got["additional_gids"], want["user"].get("additionalGids") or [])
                # The image's Env comes first, verbatim, as in umoci's process.env.
                image_env = CASES[tag].get("Env", [])
                self.assertEqual(got["env"][:len(image_env)], image_env)

    def test_docker_defaults_and_values(self):
        got = self.launch("name")
        self.assertEqual((got["uid"], got["gid"], got["additional_gids"]), (1000, 1001, [29, 44]))
        self.assertEqual(got["env"], ["PATH=/opt/bin", "HOME=/custom"])  # the image's own win
        self.assertEqual(got["cwd"], "/srv/data")
        got = self.launch("root")
        self.assertEqual(got["env"], ["A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                      "HOME=/root"])
        self.assertEqual(got["cwd"], "/")
        got = self.launch("uid")
        self.assertIn("HOME=/srv", got["env"])
        got = self.launch("absent")
        self.assertEqual((got["uid"], got["gid"], got["additional_gids"]), (4242, 0, []))
        self.assertIn("HOME=/", got["env"])
        got = self.launch("nopasswd")
        self.assertEqual((got["uid"], got["gid"]), (7, 8))

    def test_docker_run_overrides(self):
        got = self.launch("name", args=["--verbose"])
        self.assertEqual(got["args"], ["/bin/app", "--verbose"])
        got = self.launch("name", "--entrypoint", "/bin/other")
        self.assertEqual(got["args"], ["/bin/other"])  # the image's Cmd goes with its Entrypoint
        got = self.launch("name", "--entrypoint", "", args=["ls", "-l"])
        self.assertEqual(got["args"], ["ls", "-l"])
        got = self.launch("root", "--user", "app:video", "--workdir", "/tmp", "-e", "A=2", "-e", "B=3")
        self.assertEqual((got["uid"], got["gid"], got["additional_gids"]), (1000, 44, []))
        self.assertEqual(got["cwd"], "/tmp")
        self.assertEqual(got["env"][:2], ["A=2", "B=3"])

    def test_missing_users_groups_and_commands_are_errors(self):
        for tag, words in (("ghost", "unable to find user ghost"), ("ghostgroup", "unable to find group ghosts"),
                           ("nocmd", "neither Entrypoint nor Cmd"), ("nopasswdname", "no /etc/passwd")):
            with self.subTest(tag=tag):
                self.pull_ok(self.ref(tag))
                r = self.lazyroot("inspect", "--launch", self.ref(tag))
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(words, r.stderr)
                self.assertIn(self.ref(tag).split("//")[1], r.stderr)  # names the image

    def test_flags_need_launch(self):
        self.pull_ok(self.ref("root"))
        r = self.lazyroot("inspect", "--entrypoint", "x", self.ref("root"))
        self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    unittest.main()
