#!/usr/bin/env python3
"""Small habits of a mature CLI: an unknown command is named with the
nearest real one (exit 2) instead of "A subcommand is required"; counts
agree with their nouns ("1 layer", "2 layers", "1 blob"); extract into a
non-empty DIR is refused before anything is pulled (the registry is never
contacted); `inspect --remote` reads an image's manifest and config from the
registry without pulling a layer, its config equal to `skopeo inspect
--config`'s."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402


class CliHabits(PullTestCase):
    def test_unknown_commands_name_the_nearest(self):
        for word, want in (("lyaers", "layers"), ("moutn", "mount"), ("fsk", "fsck"), ("ext", "extract")):
            r = self.lazyroot(word, "x")
            self.assertFails(r, 2)
            self.assertIn("unknown command '%s' (did you mean '%s'?)" % (word, want), r.stderr)
        r = self.lazyroot("--root", self.tmp, "xyzzy")
        self.assertFails(r, 2)
        self.assertIn("unknown command 'xyzzy'", r.stderr)
        self.assertNotIn("did you mean", r.stderr)
        r = self.lazyroot("\x1b[31mred")
        self.assertNotIn("\x1b", r.stderr)  # escaped for the terminal
        self.assertOk(self.lazyroot("images"))

    def test_counts_agree_with_their_nouns(self):
        regdir = tempfile.mkdtemp(prefix="lazyroot-reg-")
        self.addCleanup(shutil.rmtree, regdir, ignore_errors=True)
        reg = registry.start_registry("plain", regdir)
        self.addCleanup(reg.stop)
        client = mi.RegistryClient(reg.host)
        one = mi.build_image([mi.build_layer([{"path": "a", "content": "1"}])])
        two = mi.build_image([mi.build_layer([{"path": "a", "content": "1"}]),
                              mi.build_layer([{"path": "b", "content": "2"}])])
        mi.push(client, "habits/one", "v1", one)
        mi.push(client, "habits/two", "v1", two)
        r = self.pull_ok("http://%s/habits/one:v1" % reg.host, "--progress", "plain")
        self.assertRegex(r.stderr, r"\b1 layer,")
        self.assertIn("Downloaded 1 blob,", r.stdout)  # the layer (manifest and config are counted apart)
        r = self.pull_ok("http://%s/habits/two:v1" % reg.host, "--progress", "plain")
        self.assertRegex(r.stderr, r"\b2 layers,")
        self.assertIn("Downloaded 1 blob,", r.stdout)  # the first layer is shared
        r = self.lazyroot("fsck")
        self.assertOk(r, "fsck")
        self.assertRegex(r.stderr, r"checked 2 images, 6 blobs .*0 problems, 0 notes")
        self.assertIsNone(re.search(r"\(s\)|\(es\)", r.stderr + r.stdout))

    def test_inspect_remote_reads_manifest_and_config_only(self):
        reg = self.class_registry("plain")
        amd = mi.build_image([mi.build_layer([{"path": "a", "content": "amd"}])], config={"Cmd": ["/a"]},
                             platform="linux/amd64")
        arm = mi.build_image([mi.build_layer([{"path": "a", "content": "arm"}])], config={"Cmd": ["/b"]},
                             platform="linux/arm64")
        idx = mi.build_index([amd, arm], fmt="oci")
        mi.push(mi.RegistryClient(reg.host), "habits/multi", "v1", idx)
        ref = "http://%s/habits/multi:v1" % reg.host
        r = self.lazyroot("inspect", "--remote", ref)
        self.assertOk(r)
        got = json.loads(r.stdout)
        self.assertEqual(got["Digest"], amd.digest)
        self.assertEqual(got["IndexDigest"], idx.digest)
        self.assertEqual(got["Platforms"], ["linux/amd64", "linux/arm64"])
        self.assertEqual([l["digest"] for l in got["Layers"]], [l.digest for l in amd.layers])
        self.assertEqual(got["Config"]["config"]["Cmd"], ["/a"])
        r = self.lazyroot("inspect", "--remote", "--platform", "linux/arm64", ref)
        self.assertOk(r)
        self.assertEqual(json.loads(r.stdout)["Digest"], arm.digest)
        self.assertFalse(os.path.exists(os.path.join(self.root, "blobs")) and
                         os.listdir(os.path.join(self.root, "blobs", "sha256")), "inspect --remote stored blobs")
        if shutil.which("skopeo"):
            p = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                                "docker://%s/habits/multi:v1" % reg.host], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout), got["Config"])
        r = self.lazyroot("inspect", "--remote", "http://%s/habits/missing:v1" % reg.host)
        self.assertFails(r)
        self.assertIn("habits/missing", r.stderr)
        self.assertFails(self.lazyroot("inspect", "--remote", "--launch", ref), 2)

    def test_extract_into_a_non_empty_dir_is_refused_before_the_pull(self):
        d = self.workdir("full")
        with open(os.path.join(d, "keep"), "w") as f:
            f.write("x")
        r = self.lazyroot("extract", "http://127.0.0.1:1/never/contacted:v1", d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not empty", r.stderr)
        self.assertNotIn("127.0.0.1:1", r.stderr.replace("never/contacted", ""))
        self.assertNotIn("pulling", r.stderr)
        self.assertEqual(os.listdir(d), ["keep"])


if __name__ == "__main__":
    unittest.main()
