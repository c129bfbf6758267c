#!/usr/bin/env python3
"""`lazyroot df` against du(1): two images sharing a base layer are pulled
from a real registry, one is extracted into the store's cache (a tree with
a hard link in it), a partial download is left in tmp/. Then

- each kind (blobs, indexes, trees, rootfs, partials) and the total equal
  `du -sx -B1` of that directory (allocated bytes, hard links once);
- per image, UNIQUE and SHARED equal du of the blob and index files only it
  names and of those both name (the base layer);
- after `rm` of one image, "gc would reclaim" equals what `gc` then frees:
  du of the store before minus du after."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

KINDS = {"blobs": "blobs", "indexes": "index", "trees": "trees", "rootfs": "rootfs", "partials": "tmp"}


def du(*paths):
    """Allocated bytes of paths together, as du counts them (-x, hard links once)."""
    out = subprocess.run(["du", "-sxc", "-B1", "--"] + list(paths), check=True, capture_output=True,
                         text=True).stdout
    return int(out.splitlines()[-1].split()[0])


class Df(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        base = mi.build_layer(mi.default_files("base"), random_mib=0.5, seed=1)
        cls.a = mi.build_image([base, mi.build_layer(random_mib=0.25, seed=2)])
        cls.b = mi.build_image([base, mi.build_layer(random_mib=0.125, seed=3)], config={"Cmd": ["/bin/b"]})
        client = mi.RegistryClient(cls.reg.host, "http")
        mi.push(client, "df/a", "v1", cls.a)
        mi.push(client, "df/b", "v1", cls.b)
        cls.ref_a = "%s/df/a:v1" % cls.reg.host
        cls.ref_b = "%s/df/b:v1" % cls.reg.host

    def df(self):
        r = self.lazyroot("df", "--format", "json")
        self.assertOk(r, "lazyroot df")
        return json.loads(r.stdout)

    def files_of(self, img):
        out = []
        for blob in [img.config] + img.layers:
            out.append(os.path.join(self.root, "blobs/sha256", blob.digest[7:]))
        for layer in img.layers:
            out.append(os.path.join(self.root, "index/sha256", layer.digest[7:]))
        out.append(os.path.join(self.root, "blobs/sha256", img.digest[7:]))
        return out

    def test_df_against_du(self):
        self.pull_ok("http://" + self.ref_a)
        self.pull_ok("http://" + self.ref_b)
        self.assertOk(self.lazyroot("extract", self.ref_b), "lazyroot extract (cached)")
        partial = os.path.join(self.root, "tmp", "ab" * 32 + ".partial")
        with open(partial, "wb") as f:
            f.write(os.urandom(300000))

        d = self.df()
        self.assertEqual(d["unit"], "allocated bytes")
        for kind, sub in KINDS.items():
            self.assertEqual(d[kind]["bytes"], du(os.path.join(self.root, sub)), kind)
        self.assertGreater(d["rootfs"]["bytes"], 0)
        self.assertGreater(d["partials"]["bytes"], 300000 - 1)
        self.assertEqual(d["partials"]["files"], 1)  # the download, not the blob lock files beside it
        self.assertEqual(d["total"], du(self.root))
        self.assertEqual(sum(d[k]["bytes"] for k in list(KINDS) + ["other"]), d["total"])

        shared = set(self.files_of(self.a)) & set(self.files_of(self.b))
        self.assertEqual(len(shared), 2)  # the base layer and its index
        images = {i["reference"]: i for i in d["images"]}
        for ref, img in ((self.ref_a, self.a), (self.ref_b, self.b)):
            self.assertEqual(images[ref]["digest"], img.digest)
            self.assertEqual(images[ref]["shared"], du(*sorted(shared)), ref)
            self.assertEqual(images[ref]["unique"], du(*sorted(set(self.files_of(img)) - shared)), ref)

        # Everything is live but the partial: gc would reclaim the partial alone.
        self.assertEqual(d["reclaimable"], du(partial))

        # After rm b: b's own blobs and indexes, its tree and cached rootfs
        # and the partial go; df says so before, du measures it after.
        self.assertOk(self.lazyroot("rm", self.ref_b))
        d = self.df()
        self.assertEqual([i["reference"] for i in d["images"]], [self.ref_a])
        self.assertEqual(d["images"][0]["shared"], 0)
        before = du(self.root)
        self.assertEqual(d["total"], before)
        self.assertOk(self.lazyroot("gc"), "lazyroot gc")
        self.assertEqual(d["reclaimable"], before - du(self.root))
        self.assertEqual(self.df()["reclaimable"], 0)

    def test_table_and_empty_store(self):
        r = self.lazyroot("df")
        self.assertOk(r, "lazyroot df")
        self.assertIn("gc would reclaim", r.stdout)
        self.assertEqual(self.df()["images"], [])
        r = self.lazyroot("df", "--help")
        self.assertIn("st_blocks", r.stdout)


if __name__ == "__main__":
    unittest.main()
