#!/usr/bin/env python3
"""tests/bench/pull_floor, the least-work client that bench-pull.sh times
next to the pull (download, blob digest, ISA-L inflate, DiffID), does the
whole work it stands for: against a real registry its "BLOB DIFFID" lines
equal the manifest's layer digests and the config's DiffIDs, for a gzip
layer (1.5 MiB, many calls into the decoder), a multi-member gzip layer, an
uncompressed tar layer and an empty-file layer, fetched three at a time. A
blob whose gzip stream is cut short or corrupt fails it (exit 1, the URL
named), so the bench cannot time a client that skipped bytes."""

import gzip
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

PULL_FLOOR = os.environ.get("PULL_FLOOR_BIN") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(LAZYROOT_BIN))), "tests", "pull_floor")


class PullFloor(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        text = b"".join(b"line %06d of a layer that compresses\n" % i for i in range(40000))
        big = mi.build_layer([{"path": "t.txt", "content": text}], random_mib=0.5, seed=1, level=6)
        tar = mi.build_tar([{"path": "m/%d" % i, "content": os.urandom(3000)} for i in range(50)])
        cut = len(tar) // 3
        cls.tar_start = tar[:10]
        first = gzip.compress(tar[:cut], mtime=0)
        members = first + gzip.compress(tar[cut:], mtime=0)
        cls.second_member_at = len(first)
        multi = mi.Layer(tar, members, "gzip")
        plain = mi.build_layer(mi.default_files("plain"), compression="none")
        empty = mi.build_layer([{"path": "empty", "content": b""}])
        cls.img = mi.build_image([big, multi, plain, empty])
        cls.client = mi.RegistryClient(cls.reg.host, "http")
        mi.push(cls.client, "floor/app", "v1", cls.img)

    def url(self, digest, repo="floor/app"):
        return "http://%s/v2/%s/blobs/%s" % (self.reg.host, repo, digest)

    def run_floor(self, *urls):
        self.assertTrue(os.access(PULL_FLOOR, os.X_OK), "pull_floor not built at %s (it needs ISA-L)" % PULL_FLOOR)
        return subprocess.run([PULL_FLOOR, "-j", "3"] + list(urls), capture_output=True, text=True, timeout=120)

    def test_digests_and_diff_ids_are_the_images(self):
        r = self.run_floor(*[self.url(l.digest) for l in self.img.layers])
        self.assertEqual(r.returncode, 0, r.stderr)
        want = ["%s %s" % (l.digest, l.diff_id) for l in self.img.layers]
        self.assertEqual(r.stdout.splitlines(), want)
        # The second layer really is two gzip members (its DiffID covers both).
        second = self.img.layers[1].data[self.second_member_at:]
        self.assertEqual(second[:3], b"\x1f\x8b\x08")
        self.assertEqual(gzip.decompress(self.img.layers[1].data)[:10], self.tar_start)

    def test_a_broken_gzip_stream_fails(self):
        good = self.img.layers[0].data
        for label, data in (("cut", good[:len(good) // 2]),
                            ("corrupt", good[:200] + bytes(b ^ 0x55 for b in good[200:4200]) + good[4200:])):
            with self.subTest(label):
                layer = mi.Layer(b"", data, "gzip")
                layer.diff_id = mi.sha256(b"")
                img = mi.build_image([layer])
                mi.push(self.client, "floor/bad", label, img)
                r = self.run_floor(self.url(img.layers[0].digest, "floor/bad"))
                self.assertEqual(r.returncode, 1, "a %s gzip stream was taken: %s" % (label, r.stdout))
                self.assertIn(img.layers[0].digest, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
