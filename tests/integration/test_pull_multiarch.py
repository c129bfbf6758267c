#!/usr/bin/env python3
"""Platform selection from an OCI index (with BuildKit attestation entries)
and from a Docker manifest list, on a real registry. Only the chosen image's
blobs may land in the store; a missing platform is refused with the list of
available ones; an attestation manifest is never chosen."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase, blob_files  # noqa: E402

PLATFORMS = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]


def normalized(p):
    """containerd's normalisation drops arm64's default variant v8."""
    return p[:-3] if p.startswith("linux/arm64/v8") else p


def platform_images(fmt, tag):
    return [mi.build_image([mi.build_layer(mi.default_files("%s-%s" % (tag, p))),
                            mi.build_layer([{"path": "arch", "content": p + "\n"}])],
                           fmt=fmt, platform=p, config={"Cmd": ["/bin/hello", p]})
            for p in PLATFORMS]


class PullMultiarch(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        cls.oci_images = platform_images("oci", "oci")
        cls.oci_index = mi.build_index(cls.oci_images, fmt="oci", attestation=True)
        cls.oci_pushed = mi.push(client, "demo/multi", "v1", cls.oci_index)
        cls.docker_images = platform_images("docker", "docker")
        cls.docker_list = mi.build_index(cls.docker_images, fmt="docker")
        mi.push(client, "demo/mlist", "v1", cls.docker_list)
        # An index whose first entry is an attestation: a careless "take the
        # first linux-ish entry" would pick it.
        amd = cls.oci_images[0]
        att_first = mi.build_index([amd], fmt="oci", attestation=True)
        import json
        m = json.loads(att_first.manifest)
        m["manifests"].reverse()
        cls.att_first = mi.Index(json.dumps(m).encode(), mi.OCI_INDEX, att_first.images,
                                 att_first.attestations)
        mi.push(client, "demo/attfirst", "v1", cls.att_first)


    def ref(self, repo_tag):
        return "http://%s/%s" % (self.reg.host, repo_tag)

    def assertChose(self, ref, img, index):
        """The store holds img's blobs and none of the other images' layers."""
        self.assertStored([img.config.digest] + [l.digest for l in img.layers])
        others = {l.digest for o in index.images + index.attestations if o is not img for l in o.layers}
        others -= {l.digest for l in img.layers}
        self.assertFalse(others & set(blob_files(self.root)), "blobs of other platforms were pulled")
        info = self.inspect(ref)
        self.assertIn(info["Digest"], (img.digest, index.digest))
        self.assertEqual(normalized(info["Platform"]), normalized(img.platform_str()))
        self.assertEqual([l["digest"] for l in info["Layers"]], [l.digest for l in img.layers])

    def test_pick_amd64(self):
        r = self.pull_ok(self.ref("demo/multi:v1"), "--platform", "linux/amd64", "-q")
        # -q names the manifest that was stored: the platform manifest (the
        # index digest would also identify the pull; accept either, see report)
        self.assertIn(r.stdout.strip(), (self.oci_images[0].digest, self.oci_index.digest))
        self.assertChose(self.ref("demo/multi:v1"), self.oci_images[0], self.oci_index)

    def test_pick_arm64_without_variant_means_v8(self):
        self.pull_ok(self.ref("demo/multi:v1"), "--platform", "linux/arm64")
        self.assertChose(self.ref("demo/multi:v1"), self.oci_images[1], self.oci_index)

    def test_pick_arm_v7(self):
        self.pull_ok(self.ref("demo/multi:v1"), "--platform", "linux/arm/v7")
        self.assertChose(self.ref("demo/multi:v1"), self.oci_images[2], self.oci_index)

    def test_default_platform_is_host(self):
        if os.uname().machine != "x86_64":
            self.skipTest("host is not amd64")
        self.pull_ok(self.ref("demo/multi:v1"))
        self.assertChose(self.ref("demo/multi:v1"), self.oci_images[0], self.oci_index)

    def test_missing_platform_lists_available(self):
        r = self.pull(self.ref("demo/multi:v1"), "--platform", "linux/s390x")
        self.assertFails(r)
        self.assertIn("linux/s390x", r.stderr)
        for p in ("linux/amd64", "linux/arm64", "linux/arm/v7"):
            self.assertIn(p, r.stderr, "available platform %s not listed" % p)
        self.assertNotIn("unknown/unknown", r.stderr, "attestation listed as a platform")
        self.assertEqual(blob_files(self.root), {})

    def test_attestation_is_never_chosen(self):
        r = self.pull(self.ref("demo/multi:v1"), "--platform", "unknown/unknown")
        self.assertFails(r)
        self.assertEqual(blob_files(self.root), {})
        self.pull_ok(self.ref("demo/attfirst:v1"), "--platform", "linux/amd64")
        self.assertChose(self.ref("demo/attfirst:v1"), self.oci_images[0], self.att_first)
        att_layers = {l.digest for a in self.att_first.attestations for l in a.layers}
        self.assertFalse(att_layers & set(blob_files(self.root)))

    def test_docker_manifest_list(self):
        self.pull_ok(self.ref("demo/mlist:v1"), "--platform", "linux/arm64/v8")
        self.assertChose(self.ref("demo/mlist:v1"), self.docker_images[1], self.docker_list)
        self.assertEqual(self.inspect(self.ref("demo/mlist:v1"))["MediaType"], mi.DOCKER_MANIFEST)

    def test_two_platforms_of_one_tag_in_one_root(self):
        self.pull_ok(self.ref("demo/multi:v1"), "--platform", "linux/amd64")
        self.pull_ok(self.ref("demo/multi:v1"), "--platform", "linux/arm/v7")
        self.assertStored([l.digest for i in (0, 2) for l in self.oci_images[i].layers])


if __name__ == "__main__":
    unittest.main()
