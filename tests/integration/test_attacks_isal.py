#!/usr/bin/env python3
"""Hostile gzip layers against the pull's ISA-L gzip pass (issue 18 item 1:
index/gzip_isal_stream.cc hands ISA-L its input in slices ending at
multiples of 256 KiB of the blob, and the checkpoint table must be a
function of the blob alone). Layers are built by tests/tools/hostile_gzip.py
with Python's zlib and by hand, pushed to a real registry (registry.py) or
written as an OCI layout, and pulled by lazyroot. For each:

- a valid stream (storms of empty members, members and FNAME+FHCRC headers
  ending or starting at every offset around a slice boundary, a long header
  across a boundary, stored blocks): the pull succeeds, `fsck` (which
  rebuilds every index from the blob, fed differently, and compares byte
  for byte) finds nothing, and every file `extract` writes equals Python
  tarfile's reading of the layer tar (never our own output). A read that
  crosses a member header with FHCRC straddling the reader's 64 KiB refill
  used to fail ("incorrect data check"): the layer pulled, passed fsck and
  could not be extracted.
- an invalid one (garbage or zeros after the last member at a slice
  boundary, wrong CRC-32, ISIZE or header CRC-16, a distance reaching into
  the previous member, a stored block with a bad length): the pull fails
  with a message naming the layer and a compressed offset, leaves no image,
  and fsck finds nothing wrong.
- a store pulled by the zlib baseline build ($LAZYROOT_BASELINE_BIN, when
  set): fsck and fsck --repair by this build find nothing (the index
  records the pass that made it; the rebuild uses that pass).
"""

import io
import os
import shutil
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import hostile_gzip as hg  # noqa: E402
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

BASELINE_BIN = os.environ.get("LAZYROOT_BASELINE_BIN", "")


def layer_tar():
    """Text files (many deflate blocks), an incompressible one (stored
    blocks at level 0 or 1) and an empty one: about 2.7 MB."""
    import random
    rnd = random.Random(1)
    words = ["usr", "lib", "share", "x86_64", "\n"]
    files = [{"path": "dir/text%d.txt" % i,
              "content": " ".join(rnd.choice(words) for _ in range(20000 * (i + 1))).encode()}
             for i in range(5)]
    files.append({"path": "random.bin", "content": mi.random_bytes(1500000, 3)})
    files.append({"path": "empty", "content": b""})
    return mi.build_tar(files)


TAR = layer_tar()

VALID = {
    "storm": lambda t: hg.empty_storm(t),
    "stored": hg.stored,
    "header_across_1": lambda t: hg.header_across(t, 1),
    "header_across_hcrc": lambda t: hg.header_across(t, 6315),  # the FHCRC itself split
    "header_across_5000": lambda t: hg.header_across(t, 5000),
}
for _d in (-8, -3, -1, 0, 1, 4, 8, 9, 13, 20):
    VALID["boundary_%+d" % _d] = (lambda d: lambda t: hg.boundary_members(t, d))(_d)

INVALID = {
    "garbage_after": lambda t: hg.garbage_after(t, b"garbage!garbage!"),
    "short_garbage_after": lambda t: hg.garbage_after(t, b"junk"),
    "zeros_after": lambda t: hg.garbage_after(t, b"\0" * 8),
    "bad_crc": hg.bad_crc,
    "bad_isize": hg.bad_isize,
    "bad_crc_second_member": hg.bad_crc_second_member,
    "bad_header_crc": hg.bad_hcrc,
    "lookback_across_members": hg.lookback_across_members,
    "stored_len_mismatch": hg.stored_len_mismatch,
    "data_after_final_block": hg.data_after_final_block,
}


def expected_files(tar):
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            if m.isfile():
                out[m.name] = tf.extractfile(m).read()
    return out


class HostileGzipPulls(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("plain")
        cls.client = mi.RegistryClient(cls.reg.host)
        cls.want = expected_files(TAR)

    def push(self, name, blob, tar=TAR):
        img = mi.build_image([mi.Layer(tar, blob, "gzip")], fmt="oci")
        mi.push(self.client, "attack/" + name.lower().replace("+", "p").replace("-", "m"), "v1", img)
        return "http://%s/attack/%s:v1" % (self.reg.host, name.lower().replace("+", "p").replace("-", "m"))

    def assertFsckClean(self, *opts):
        r = self.lazyroot("fsck", *opts, timeout=300)
        self.assertOk(r, "lazyroot fsck " + " ".join(opts))
        self.assertIn(" 0 problems", r.stderr)
        self.assertNotIn("layer index", r.stdout)

    def assertExtractsLikeTarfile(self, ref, name):
        dest = os.path.join(self.tmp, "x-" + name)
        r = self.lazyroot("extract", ref, dest, timeout=300)
        self.assertOk(r, "lazyroot extract " + name)
        for path, data in self.want.items():
            with open(os.path.join(dest, path), "rb") as f:
                self.assertTrue(f.read() == data, "%s: %s differs from tarfile's" % (name, path))
        shutil.rmtree(dest)

    def test_valid_streams_pull_fsck_and_extract(self):
        for name, make in VALID.items():
            with self.subTest(name):
                blob = make(TAR)
                ref = self.push(name, blob)
                self.pull_ok(ref)
                self.assertExtractsLikeTarfile(ref, name)
        self.assertFsckClean()

    def test_invalid_streams_fail_naming_the_offset(self):
        for name, make in INVALID.items():
            with self.subTest(name):
                blob = make(TAR)
                r = self.pull(self.push(name, blob))
                self.assertFails(r)
                self.assertIn("compressed offset", r.stderr)
                self.assertIn(mi.sha256(blob), r.stderr)
        self.assertEqual(self.images(), [])
        self.assertFsckClean()

    def test_oci_layout(self):
        for name in ("storm", "boundary_+4", "header_across_hcrc"):
            with self.subTest(name):
                d = os.path.join(self.tmp, "layout-" + name)
                img = mi.build_image([mi.Layer(TAR, VALID[name](TAR), "gzip")], fmt="oci")
                mi.write_oci_layout(d, img, tag="v1")
                self.pull_ok("oci:%s:v1" % d)
                self.assertExtractsLikeTarfile("oci:%s:v1" % d, name)
        self.assertFsckClean()

    @unittest.skipUnless(BASELINE_BIN and os.access(BASELINE_BIN, os.X_OK),
                         "set LAZYROOT_BASELINE_BIN to a lazyroot built before the ISA-L pass")
    def test_store_of_the_zlib_build_checks_clean(self):
        import subprocess
        for name in ("storm", "stored", "boundary_+4", "header_across_1"):
            ref = self.push(name, VALID[name](TAR))
            r = subprocess.run([BASELINE_BIN, "--root", self.root, "pull", ref], env=self.env,
                               capture_output=True, text=True, timeout=300)
            self.assertOk(r, "baseline pull " + name)
        self.assertFsckClean()
        self.assertFsckClean("--repair")
        self.assertFsckClean()


if __name__ == "__main__":
    unittest.main()
