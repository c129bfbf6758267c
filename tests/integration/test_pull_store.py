#!/usr/bin/env python3
"""The store under stress and over time: kill -9 in the middle of a 64 MiB
layer and a resumed pull that fetches only the rest (fault server Range log);
two concurrent pulls of one image into one root (each blob downloaded once);
rm + gc (bytes freed reported, shared blobs kept); import from an OCI image
layout (oci:DIR[:tag])."""

import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import PullTestCase, blob_files, store_listing, verify_blobs  # noqa: E402

MiB = 1024 * 1024


def store_files(root):
    """{relative path: size} of every file under ROOT/blobs, ROOT/index, ROOT/tmp."""
    out = {}
    for sub in ("blobs", "index", "tmp"):
        for dirpath, _, files in os.walk(os.path.join(root, sub)):
            for f in files:
                p = os.path.join(dirpath, f)
                out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def tmp_bytes(root):
    total = 0
    for dirpath, _, files in os.walk(os.path.join(root, "tmp")):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


class Interrupt(PullTestCase):
    def test_kill_9_mid_layer_then_resume(self):
        big = mi.build_layer(random_mib=64, compression="none", seed=64)
        img = mi.build_image([mi.build_layer(mi.default_files("resume")), big])
        size = img.layers[1].size
        with fault_server.FaultServer(img, rate=24 * MiB) as fs:
            p = self.popen("pull", "--jobs", "1", fs.url_ref())
            killed = False
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and p.poll() is None:
                if tmp_bytes(self.root) >= 16 * MiB:
                    os.kill(p.pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.05)
            if not killed and p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            code, _, err = self.finish(p)
            self.assertTrue(killed, "no partial download of >= 16 MiB appeared under ROOT/tmp "
                            "(exit %s, stderr %s)" % (code, err[-1000:]))
            self.assertNotIn(img.layers[1].digest, blob_files(self.root))
            fs.rate = None
            # the killed request is logged when its handler notices the dead
            # socket, possibly later: select the resumed pull's requests by start time
            t_resume = time.time()
            self.pull_ok(fs.url_ref(), "--jobs", "1")
            self.assertStored([img.config.digest] + [l.digest for l in img.layers])
            gets = [r for r in fs.requests(kind="blob", digest=img.layers[1].digest)
                    if r["method"] == "GET" and r["time"] >= t_resume]
            self.assertTrue(gets and gets[0]["range"], "resumed pull did not send Range: %s" % gets)
            start = int(re.match(r"bytes=(\d+)-", gets[0]["range"]).group(1))
            self.assertGreater(start, 0)
            resent = sum(r["sent"] for r in gets)
            self.assertLess(resent, size, "resume re-downloaded the whole layer")
            self.assertEqual(resent, size - start)

    def test_concurrent_pulls_download_each_blob_once(self):
        img = mi.build_image([mi.build_layer(mi.default_files("conc")),
                              mi.build_layer(random_mib=6, seed=1), mi.build_layer(random_mib=6, seed=2)])
        with fault_server.FaultServer(img, rate=16 * MiB) as fs:
            procs = [self.popen("pull", "-q", fs.url_ref()) for _ in range(2)]
            results = [self.finish(p) for p in procs]
            for code, out, err in results:
                self.assertEqual(code, 0, err[-2000:])
                self.assertEqual(out.strip(), img.digest)
            self.assertStored([img.config.digest] + [l.digest for l in img.layers])
            twice = ["%s (%s, %d bytes sent for %d)" % (b.digest, b.media_type, fs.bytes_sent(b.digest), b.size)
                     for b in img.blobs() if fs.bytes_sent(b.digest) != b.size]
            self.assertEqual(twice, [], "blobs not downloaded exactly once")
            self.assertEqual(len(self.images()), 1)


class Lifecycle(PullTestCase):
    def test_rm_and_gc_keep_shared_blobs(self):
        reg = registry.start_registry("plain", self.workdir("registry"))
        self.addCleanup(reg.stop)
        client = mi.RegistryClient(reg.host)
        shared = mi.build_layer(mi.default_files("shared"))
        a = mi.build_image([shared, mi.build_layer(random_mib=1, seed=31)], config={"Cmd": ["a"]})
        b = mi.build_image([shared, mi.build_layer(random_mib=1, seed=32)], config={"Cmd": ["b"]})
        mi.push(client, "demo/a", "v1", a)
        mi.push(client, "demo/b", "v1", b)
        ref_a, ref_b = ("http://%s/demo/%s:v1" % (reg.host, n) for n in "ab")
        self.pull_ok(ref_a)
        self.pull_ok(ref_b)
        self.assertEqual(len(self.images()), 2)
        blobs_before = blob_files(self.root)
        files_before = store_files(self.root)

        r = self.lazyroot("rm", ref_a)
        self.assertOk(r, "lazyroot rm")
        self.assertEqual([i["digest"] for i in self.images()], [b.digest])
        self.assertEqual(blob_files(self.root), blobs_before, "rm must leave blobs to gc")

        r = self.lazyroot("gc")
        self.assertOk(r, "lazyroot gc")
        after = blob_files(self.root)
        gone = {d: s for d, s in blobs_before.items() if d not in after}
        self.assertIn(a.layers[1].digest, gone)
        self.assertIn(a.config.digest, gone)
        for d in [shared.digest, b.config.digest, b.layers[1].digest]:
            self.assertIn(d, after, "gc removed a blob still in use: %s" % d)
        # bytes freed = every file gc removed (blobs and the layer indexes beside them)
        files_after = store_files(self.root)
        freed = sum(sz for p, sz in files_before.items() if p not in files_after)
        self.assertIn(str(freed), re.findall(r"\d+", r.stdout),
                      "gc output does not report %d bytes freed: %r" % (freed, r.stdout))
        self.assertStored([shared.digest, b.config.digest, b.layers[1].digest])

        r = self.lazyroot("gc")
        self.assertOk(r)
        self.assertEqual(blob_files(self.root), after)
        self.assertEqual(self.inspect(ref_b)["Digest"], b.digest)
        self.assertFails(self.lazyroot("inspect", ref_a))
        self.assertFails(self.lazyroot("rm", ref_a))

        # Extracted trees in ROOT/rootfs go with their image's record.
        self.pull_ok(ref_a)
        for ref in (ref_a, ref_b):
            self.assertOk(self.lazyroot("extract", ref), "lazyroot extract " + ref)
        rootfs = os.path.join(self.root, "rootfs")
        self.assertTrue(os.path.isdir(os.path.join(rootfs, a.digest[7:])))
        self.assertOk(self.lazyroot("rm", ref_a))
        r = self.lazyroot("gc")
        self.assertOk(r)
        self.assertIn("1 extracted tree", r.stdout)
        self.assertFalse([n for n in os.listdir(rootfs) if n.startswith(a.digest[7:])], "rootfs of a removed image kept")
        self.assertTrue(os.path.isfile(os.path.join(rootfs, b.digest[7:], "etc", "hello.txt")), "rootfs of b removed")

    def test_pull_again_replaces_damaged_config_and_manifest_blobs(self):
        # A config or manifest blob damaged on disk: the pull downloads it
        # again (it reads and verifies both every time) and must also put the
        # good bytes in place, not keep the damaged copy because "the blob
        # exists" and leave the download staged in tmp/.
        reg = registry.start_registry("plain", self.workdir("registry"))
        self.addCleanup(reg.stop)
        img = mi.build_image([mi.build_layer(mi.default_files("damaged"))], config={"Cmd": ["x"]})
        mi.push(mi.RegistryClient(reg.host), "demo/d", "v1", img)
        ref = "http://%s/demo/d:v1" % reg.host
        self.pull_ok(ref)
        blobs = os.path.join(self.root, "blobs", "sha256")
        for digest in (img.config.digest, img.digest):
            path = os.path.join(blobs, digest[7:])
            with open(path, "r+b") as f:
                c = f.read(1)
                f.seek(0)
                f.write(bytes([c[0] ^ 0x20]))
        r = self.lazyroot("fsck")
        self.assertNotEqual(r.returncode, 0, "fsck did not notice the damaged blobs: " + r.stdout + r.stderr)
        self.pull_ok(ref)
        self.assertIn(img.config.digest, verify_blobs(self.root))
        self.assertIn(img.digest, verify_blobs(self.root))
        staged = [n for n in os.listdir(os.path.join(self.root, "tmp")) if n.endswith(".partial")]
        self.assertEqual(staged, [], "a download was left staged in tmp/")
        self.assertOk(self.lazyroot("fsck"), "fsck after the second pull")
        self.assertEqual(self.inspect(ref)["Config"]["Cmd"], ["x"])

    def test_oci_layout_import(self):
        img = mi.build_image([mi.build_layer(mi.default_files("layout")),
                              mi.build_layer(random_mib=0.5, compression="zstd", seed=5)],
                             config={"Entrypoint": ["/bin/hello"]})
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), img, tag="v2")
        r = self.pull_ok("oci:%s:v2" % layout, "-q")
        self.assertEqual(r.stdout.strip(), img.digest)
        self.assertStored([img.config.digest] + [l.digest for l in img.layers])
        self.assertEqual(self.inspect("oci:%s:v2" % layout)["Config"]["Entrypoint"], ["/bin/hello"])

    def test_oci_layout_index_with_platform(self):
        imgs = [mi.build_image([mi.build_layer([{"path": "arch", "content": p}])], platform=p)
                for p in ("linux/amd64", "linux/arm64/v8")]
        idx = mi.build_index(imgs, attestation=True)
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), idx, tag="multi")
        self.pull_ok("oci:%s:multi" % layout, "--platform", "linux/arm64/v8")
        self.assertStored([imgs[1].layers[0].digest])
        self.assertNotIn(imgs[0].layers[0].digest, blob_files(self.root))

    def test_oci_layout_with_corrupt_blob(self):
        img = mi.build_image([mi.build_layer(mi.default_files("layout-bad"))])
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), img, tag="v1")
        victim = os.path.join(layout, "blobs", "sha256", img.layers[0].digest[7:])
        with open(victim, "r+b") as f:
            f.seek(10)
            c = f.read(1)
            f.seek(10)
            f.write(bytes([c[0] ^ 1]))
        r = self.pull("oci:%s:v1" % layout)
        self.assertFails(r)
        self.assertIn(img.layers[0].digest[7:19], r.stderr)
        self.assertEqual(store_listing(self.root), [])

    def test_oci_layout_missing_tag(self):
        img = mi.build_image([mi.build_layer(mi.default_files("layout"))])
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), img, tag="v1")
        r = self.pull("oci:%s:nope" % layout)
        self.assertFails(r)
        self.assertIn("nope", r.stderr)


if __name__ == "__main__":
    unittest.main()
