#!/usr/bin/env python3
"""A registry (and the files beside it) answering with JSON bombs: a manifest,
an index and a config nested 200,000 levels deep, a token endpoint answering
the same, a manifest of 2,000,000 numbers, an oversized manifest, a credential helper printing deep JSON, an
OCI layout whose index.json is deep. Before the depth limit a deep manifest
crashed `pull` with SIGSEGV (RapidJSON's recursive parser ran out of stack).

Each case must end with exit status 1 (2 for the user's own malformed
config.json, as for any malformed config.json), a message naming the
document and where it came from, no signal, the store as it was, and a
small peak RSS (wait4 of the child). Each case prints its peak RSS and wall
time."""

import json
import os
import resource
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
from peak_rss import run_measured  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase, store_listing  # noqa: E402

DEPTH = 200000
# lazyroot's own footprint is ~10 MiB; a refused document must not cost more
# than its capped bytes (4 MiB) a few times over.
RSS_BOUND_MIB = 64
DEEP = "JSON nested deeper than 64 levels"


class HostileRegistry(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.img = mi.build_image([mi.build_layer(mi.default_files("hostile"))], config={"Cmd": ["/bin/hello"]})

    def measured(self, name, *args, env=None, code=1):
        """Runs lazyroot --root ROOT ARGS, prints peak RSS and wall time, and
        checks: exit `code` (never a signal), a message, the store unchanged,
        the RSS bound. Returns stderr."""
        before = store_listing(self.root)
        e = dict(self.env)
        e.update(env or {})
        t0 = time.monotonic()
        rc, out, err, rss = run_measured([LAZYROOT_BIN, "--root", self.root] + list(args), timeout=120, env=e)
        wall = time.monotonic() - t0
        print("\n  %-16s exit %d  peak RSS %6.1f MiB  wall %.3f s  | %s" % (name, rc, rss, wall, err.strip()[:300]),
              file=sys.stderr)
        self.assertGreaterEqual(rc, 0, "killed by signal %d\nstderr: %s" % (-rc, err[-2000:]))
        self.assertEqual(rc, code, "stdout: %s\nstderr: %s" % (out[-2000:], err[-2000:]))
        self.assertTrue(err.startswith("lazyroot: "), err)
        self.assertEqual(store_listing(self.root), before)
        self.assertLess(rss, RSS_BOUND_MIB)
        return err

    def test_deep_manifest(self):
        with fault_server.FaultServer(self.img, mode="deep-manifest", depth=DEPTH) as fs:
            err = self.measured("deep manifest", "pull", fs.url_ref())
            self.assertIn("manifest %s from %s/%s: manifest: %s" % (fs.top, fs.host, fs.repo, DEEP), err)
            self.assertEqual(fs.requests(kind="blob"), [], "blobs fetched for a refused manifest")

    def test_deep_index(self):
        with fault_server.FaultServer(self.img, mode="deep-index", depth=DEPTH) as fs:
            err = self.measured("deep index", "pull", fs.url_ref())
            self.assertIn("manifest %s from %s/%s: index: %s" % (fs.top, fs.host, fs.repo, DEEP), err)
            self.assertEqual(fs.requests(kind="blob"), [])

    def test_wide_manifest(self):
        # 2,000,000 numbers in 3.8 MB: 16 bytes each in the DOM and again on
        # the parse stack, so refused at the values budget.
        with fault_server.FaultServer(self.img, mode="wide-manifest", width=2000000) as fs:
            err = self.measured("wide manifest", "pull", fs.url_ref())
            self.assertIn("manifest %s from %s/%s: manifest: more than 1048576 JSON values" % (fs.top, fs.host, fs.repo),
                          err)
            self.assertEqual(fs.requests(kind="blob"), [])

    def test_deep_config(self):
        with fault_server.FaultServer(self.img, mode="deep-config", depth=DEPTH) as fs:
            config = json.loads(fs.manifests[fs.top][0])["config"]["digest"]
            err = self.measured("deep config", "pull", fs.url_ref())
            self.assertIn("config %s from %s/%s: image config: %s" % (config, fs.host, fs.repo, DEEP), err)
            layers = [r for r in fs.requests(kind="blob") if r["digest"] != config]
            self.assertEqual(layers, [], "layers fetched for a refused config")

    def test_deep_token_answer(self):
        with fault_server.FaultServer(self.img, mode="deep-token", depth=DEPTH) as fs:
            err = self.measured("deep token", "pull", fs.url_ref())
            self.assertIn("registry %s: token response from %s: %s" % (fs.host, fs.url, DEEP), err)
            self.assertTrue(fs.requests(kind="token"), "the token endpoint was never asked")
            self.assertEqual(fs.requests(kind="manifest"), [])

    def test_oversized_manifest(self):
        with fault_server.FaultServer(self.img, mode="huge-manifest") as fs:
            err = self.measured("huge manifest", "pull", fs.url_ref())
            self.assertIn("manifest %s/%s:%s: " % (fs.host, fs.repo, fs.tag), err)
            self.assertIn("larger than 4194304 bytes", err)
            self.assertIn(fs.host, err)
            self.assertEqual(fs.requests(kind="blob"), [])

    def write_helper(self, name, script):
        bindir = self.workdir("bin")
        path = os.path.join(bindir, "docker-credential-" + name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + script + "\n")
        os.chmod(path, 0o755)
        return {"PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")}

    def write_docker_config(self, text):
        os.makedirs(self.env["DOCKER_CONFIG"], exist_ok=True)
        path = os.path.join(self.env["DOCKER_CONFIG"], "config.json")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_credential_helper_printing_deep_json(self):
        with fault_server.FaultServer(self.img) as fs:
            env = self.write_helper("x", "cat >/dev/null; printf '{\"Username\":\"u\",\"Secret\":'; "
                                         "head -c %d /dev/zero | tr '\\0' '['" % DEPTH)
            self.write_docker_config(json.dumps({"credHelpers": {fs.host: "x"}}))
            err = self.measured("deep cred helper", "pull", fs.url_ref(), env=env)
            self.assertIn("credential helper docker-credential-x for registry %s: output: %s" % (fs.host, DEEP), err)
            self.assertEqual(fs.requests(kind="manifest"), [])

    def test_deep_docker_config(self):
        with fault_server.FaultServer(self.img) as fs:
            path = self.write_docker_config('{"auths":{"x":' + "[" * DEPTH + "]" * DEPTH + "}}")
            err = self.measured("deep config.json", "pull", fs.url_ref(), code=2)
            self.assertIn("%s: %s" % (path, DEEP), err)

    def test_oci_layout_with_deep_index_json(self):
        layout = self.workdir("layout")
        os.makedirs(os.path.join(layout, "blobs", "sha256"))
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        with open(os.path.join(layout, "index.json"), "wb") as f:
            f.write(fault_server.deep_json(DEPTH))
        err = self.measured("deep index.json", "pull", "oci:" + layout)
        self.assertIn("oci:%s: index.json: %s" % (layout, DEEP), err)


class OutOfMemory(PullTestCase):
    """bad_alloc reaching main is a message and exit 1, not std::terminate.
    The fault is real: `inspect` runs under an address-space limit that a
    small image's inspect fits in and parsing an image config of 900,000
    numbers (16 bytes each in the DOM) does not."""

    LIMIT_MIB = 32

    def inspect_limited(self, ref):
        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (self.LIMIT_MIB << 20, self.LIMIT_MIB << 20))
        return subprocess.run([LAZYROOT_BIN, "--root", self.root, "inspect", ref], env=self.env, capture_output=True,
                              text=True, timeout=120, preexec_fn=limit)

    def test_out_of_memory_in_a_command_is_a_message(self):
        small = mi.build_image([mi.build_layer(mi.default_files("small"))])
        wide = mi.build_image([mi.build_layer(mi.default_files("wide"))], config={"X": [0] * 900000})
        with fault_server.FaultServer(small, repo="demo/small") as fs_small, \
                fault_server.FaultServer(wide, repo="demo/wide") as fs_wide:
            self.pull_ok(fs_small.url_ref())
            self.pull_ok(fs_wide.url_ref())
            r = self.inspect_limited(fs_small.url_ref())
            if r.returncode != 0:
                self.skipTest("lazyroot does not start under a %d MiB address space (a sanitizer build?): %s"
                              % (self.LIMIT_MIB, r.stderr.strip()[-300:]))
            t0 = time.monotonic()
            r = self.inspect_limited(fs_wide.url_ref())
            print("\n  inspect under a %d MiB address space: exit %d, %.3f s | %s"
                  % (self.LIMIT_MIB, r.returncode, time.monotonic() - t0, r.stderr.strip()[:300]), file=sys.stderr)
            self.assertGreaterEqual(r.returncode, 0, "killed by signal %d" % -r.returncode)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr, "lazyroot: inspect %s: out of memory\n" % fs_wide.url_ref())


if __name__ == "__main__":
    unittest.main(verbosity=2)
