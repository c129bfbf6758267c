#!/usr/bin/env python3
"""Hostile layers that repeat a whiteout or an opaque marker many times must
cost linear work in the merge (ls, mount, extract), in `layers` and in
`which` (LayerPathMapper). Each of these used to walk everything below (or
sharing the prefix of) the whited-out path once per marker: a 100-KB-per-
1000-entries layer of N entries and N markers took N^2 steps (20,000 of each:
~4 s per command; 1M entries: hours). The expected trees and counts come from
the layer lists built here, not from lazyroot."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

N = 40000
# Before the fix each command below needed minutes at this N; after, well
# under a second. A command still running at this point is the bug.
HANG = 90


class WhiteoutStorms(PullTestCase):
    def setUp(self):
        super().setUp()
        # Layer 1: N files in d/ and N symlinks s000000.. (lower links that
        # share the prefix "s" with the whiteout ".wh.s").
        l1 = [{"path": "d/f%06d" % i, "content": ""} for i in range(N)]
        l1 += [{"path": "s%06d" % i, "type": "symlink", "target": "d"} for i in range(N)]
        l1 += [{"path": "s", "content": "x"}]
        # Layer 2: N whiteouts of s; d made opaque N times; e/ gets N files
        # and N symlinks, then is made opaque N times (by the same layer:
        # nothing of it goes), as is its parent's ancestor chain a/b/c.
        l2 = [{"path": ".wh.s", "content": ""} for _ in range(N)]
        l2 += [{"path": "d/.wh..wh..opq", "content": ""} for _ in range(N)]
        l2 += [{"path": "a/b/e/g%06d" % i, "content": ""} for i in range(N)]
        l2 += [{"path": "a/b/e/l%06d" % i, "type": "symlink", "target": "g000000"} for i in range(N)]
        for _ in range(N // 4):
            l2 += [{"path": p, "content": ""} for p in
                   ("a/b/e/.wh..wh..opq", "a/b/.wh..wh..opq", "a/.wh..wh..opq", "a/b/.wh.e-")]
        layers = [mi.build_layer(l1, compression="gzip"), mi.build_layer(l2, compression="gzip")]
        layout = mi.write_oci_layout(os.path.join(self.tmp, "layout"), mi.build_image(layers, fmt="oci"), tag="v1")
        self.image = "oci:%s:v1" % layout
        self.pull_ok(self.image)

    def test_merge_layers_and_which_stay_linear(self):
        r = self.lazyroot("ls", self.image, "/", timeout=HANG)
        self.assertOk(r)
        self.assertEqual(r.stdout.split(), ["a", "d", "s%06d" % 0] + ["s%06d" % i for i in range(1, N)])
        r = self.lazyroot("ls", self.image, "/d", timeout=HANG)
        self.assertOk(r)
        self.assertEqual(r.stdout.split(), [])
        r = self.lazyroot("ls", self.image, "/a/b/e", timeout=HANG)
        self.assertOk(r)
        self.assertEqual(sorted(r.stdout.split()),
                         sorted(["g%06d" % i for i in range(N)] + ["l%06d" % i for i in range(N)]))

        r = self.lazyroot("layers", "--format", "json", self.image, timeout=HANG)
        self.assertOk(r)
        got = json.loads(r.stdout)["layers"]
        # Every whiteout counts (one per entry), every marker is an opaque dir.
        self.assertEqual(got[1]["deleted"], N + N // 4)
        self.assertEqual(got[1]["opaque"], N + 3 * (N // 4))
        self.assertEqual(got[1]["added"], 2 * N)
        # d's N files and the file s are what layer 2 removed of layer 1.
        self.assertEqual(got[0]["added"], 2 * N + 1)
        self.assertEqual(got[0]["bytes_shadowed"], 1)

        r = self.lazyroot("which", self.image, "/a/b/e/l000001", timeout=HANG)
        self.assertOk(r)
        self.assertIn("a/b/e/l000001", r.stdout)


if __name__ == "__main__":
    unittest.main()
