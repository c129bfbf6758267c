#!/usr/bin/env python3
"""Registries that misbehave: the fault server (cross-port redirect, 429 with
Retry-After, a connection dropped mid-body, a server that ignores Range, a
tampered blob, an oversized manifest) and a real registry whose stored blob
was corrupted on disk or deleted. Failed pulls must exit 1 with a message
naming the blob or manifest and leave ROOT/blobs and ROOT/images unchanged."""

import os
import re
import shutil
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import PullTestCase, blob_files, store_listing  # noqa: E402

MiB = 1024 * 1024


def image(big_mib=4, seed=11):
    return mi.build_image([mi.build_layer(mi.default_files("faults")),
                           mi.build_layer(random_mib=big_mib, compression="gzip", seed=seed)],
                          config={"Cmd": ["/bin/hello"]})


class FaultServerCases(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.img = image()
        cls.big = cls.img.layers[1]

    def all_digests(self):
        return [self.img.config.digest] + [l.digest for l in self.img.layers]

    def test_redirect_drops_authorization_across_ports(self):
        with fault_server.FaultServer(self.img, mode="redirect") as fs:
            self.pull_ok(fs.url_ref(), "--creds", "%s:%s" % (fs.username, fs.password))
            self.assertStored(self.all_digests())
            api = fs.requests(kind="blob", port="api")
            blob = fs.requests(kind="blob", port="blob")
            self.assertTrue(api and all(r["status"] == 307 for r in api if r["method"] == "GET"), api)
            self.assertTrue(any(r["auth"] for r in api), "the API port never saw credentials")
            self.assertTrue(blob, "redirect was not followed")
            self.assertFalse([r for r in blob if r["auth"]],
                             "Authorization sent to another port after a redirect")

    def test_retry_after_is_honoured(self):
        with fault_server.FaultServer(self.img, mode="retry-after", retries=2) as fs:
            self.pull_ok(fs.url_ref(), "--jobs", "1")
            self.assertStored(self.all_digests())
            gets = [r for r in fs.requests(kind="blob") if r["method"] == "GET"]
            limited = [r for r in gets if r["status"] == 429]
            self.assertEqual(len(limited), 2, gets)
            for r in limited:
                later = [g for g in gets if g["digest"] == r["digest"] and g["time"] > r["time"]]
                self.assertTrue(later, "blob %s not retried after 429" % r["digest"])
                wait = later[0]["time"] - r["time"]
                self.assertGreaterEqual(wait, 0.95, "retried %.2fs after Retry-After: 1" % wait)

    def test_connection_drop_resumes_with_range(self):
        cut = 1 * MiB + 12345
        with fault_server.FaultServer(self.img, mode="drop", drop_after=cut) as fs:
            self.pull_ok(fs.url_ref())
            self.assertStored(self.all_digests())
            gets = [r for r in fs.requests(kind="blob", digest=self.big.digest) if r["method"] == "GET"]
            self.assertGreaterEqual(len(gets), 2, gets)
            self.assertEqual(gets[0]["sent"], cut)
            resumed = [r for r in gets[1:] if r["range"]]
            self.assertTrue(resumed, "no Range request after the drop: %s" % gets)
            start = int(re.match(r"bytes=(\d+)-", resumed[0]["range"]).group(1))
            self.assertTrue(0 < start <= cut, resumed[0]["range"])
            self.assertEqual(resumed[0]["status"], 206)
            self.assertLess(fs.bytes_sent(self.big.digest), self.big.size + cut)

    def test_server_ignoring_range_restarts_cleanly(self):
        with fault_server.FaultServer(self.img, mode="ignore-range", drop_after=1 * MiB) as fs:
            self.pull_ok(fs.url_ref())
            self.assertStored(self.all_digests())
            gets = [r for r in fs.requests(kind="blob", digest=self.big.digest) if r["method"] == "GET"]
            self.assertGreaterEqual(len(gets), 2, gets)

    def test_tampered_blob_is_rejected(self):
        with fault_server.FaultServer(self.img, mode="wrong-digest", tamper=self.big.digest) as fs:
            before = store_listing(self.root)
            r = self.pull(fs.url_ref())
            self.assertFails(r)
            self.assertIn(self.big.digest[7:19], r.stderr, "error does not name the blob")
            self.assertEqual(store_listing(self.root), before)
            self.assertNotIn(self.big.digest, blob_files(self.root))

    def test_tampered_uncompressed_layer_and_config(self):
        # gzip's own CRC catches a flipped byte; an uncompressed layer and the
        # config can only be caught by the sha256 check.
        img = mi.build_image([mi.build_layer(random_mib=1, compression="none", seed=13)],
                             config={"Cmd": ["/bin/true"]})
        for i, victim in enumerate((img.layers[0], img.config)):
            self.root = os.path.join(self.tmp, "root%d" % i)  # nothing learnt from the other case
            with self.subTest(victim=victim.media_type):
                with fault_server.FaultServer(img, mode="wrong-digest", tamper=victim.digest) as fs:
                    r = self.pull(fs.url_ref())
                    self.assertFails(r)
                    self.assertIn(victim.digest[7:19], r.stderr, "error does not name the blob")
                    self.assertEqual(store_listing(self.root), [])

    def test_tampered_blob_after_a_good_image(self):
        # A store that already holds an image must keep it byte for byte.
        other = image(big_mib=1, seed=12)
        with fault_server.FaultServer(other, repo="demo/other") as good:
            self.pull_ok(good.url_ref())
        before = store_listing(self.root)
        with fault_server.FaultServer(self.img, mode="wrong-digest", tamper=self.big.digest) as fs:
            self.assertFails(self.pull(fs.url_ref()))
        self.assertEqual(store_listing(self.root), before)

    def test_huge_manifest_is_rejected(self):
        with fault_server.FaultServer(self.img, mode="huge-manifest") as fs:
            r = self.pull(fs.url_ref())
            self.assertFails(r)
            self.assertIn("manifest", r.stderr.lower())
            self.assertEqual(store_listing(self.root), [])
            self.assertEqual(fs.requests(kind="blob"), [], "blobs fetched for a rejected manifest")


class CorruptRegistry(PullTestCase):
    def setUp(self):
        super().setUp()
        self.reg = registry.start_registry("plain", self.workdir("registry"))
        self.addCleanup(self.reg.stop)
        self.client = mi.RegistryClient(self.reg.host)
        self.base = mi.build_layer(mi.default_files("base"))
        self.good = mi.build_image([self.base], config={"Cmd": ["/bin/hello"]})
        mi.push(self.client, "demo/good", "v1", self.good)
        self.pull_ok("http://%s/demo/good:v1" % self.reg.host)
        self.img = mi.build_image([self.base, mi.build_layer(random_mib=1, seed=21)])
        mi.push(self.client, "demo/bad", "v1", self.img)
        self.victim = self.img.layers[1]

    def test_corrupted_blob_on_registry_disk(self):
        path = self.reg.blob_path(self.victim.digest)
        with open(path, "r+b") as f:
            f.seek(self.victim.size // 2)
            b = f.read(1)
            f.seek(self.victim.size // 2)
            f.write(bytes([b[0] ^ 0x55]))
        before = store_listing(self.root)
        r = self.pull("http://%s/demo/bad:v1" % self.reg.host)
        self.assertFails(r)
        self.assertIn(self.victim.digest[7:19], r.stderr)
        self.assertEqual(store_listing(self.root), before)

    def test_manifest_pointing_to_missing_blob(self):
        req = urllib.request.Request("%s/v2/demo/bad/blobs/%s" % (self.reg.url, self.victim.digest),
                                     method="DELETE")
        urllib.request.urlopen(req).close()
        before = store_listing(self.root)
        r = self.pull("http://%s/demo/bad:v1" % self.reg.host)
        self.assertFails(r)
        self.assertIn(self.victim.digest[7:19], r.stderr)
        self.assertEqual(store_listing(self.root), before)
        self.assertEqual(len(self.images()), 1)


if __name__ == "__main__":
    unittest.main()
