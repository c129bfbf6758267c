#!/usr/bin/env python3
"""Memory of the merge (issue 13, item 3): `extract` of an image whose tree
is not yet in the store merges it from the layer indexes. The entries stream
from each index file straight into the tree builder, so the peak grows with
the tree (the nodes and names of the image), not with a decoded copy of
every layer's entries on top of it.

An image of LAZYROOT_MERGE_LAYERS (default 1) layers of
LAZYROOT_MERGE_ENTRIES (default 200,000) empty files each is pushed, pulled,
and extracted; extract must succeed with every file on disk and peak under
BASE_MIB + BYTES_PER_ENTRY x entries (GNU time's maximum RSS of lazyroot).
Prints the peak RSS and wall time of pull and extract.

Layers are written by Python's tarfile straight into gzip."""

import os
import sys
import tarfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from peak_rss import run_measured  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402

ENTRIES = int(os.environ.get("LAZYROOT_MERGE_ENTRIES", "200000"))
LAYERS = int(os.environ.get("LAZYROOT_MERGE_LAYERS", "1"))
# The documented bound of extract's peak while merging (README, "Memory"):
# a fixed part (binary, allocator, buffers, one decoder per worker) plus the
# tree under construction, per entry of the image: the builder's node
# (~200 bytes) and dirent (~96), then, while it is frozen, the tree's own
# records and names (~100) and the copy written out (~100). Measured: 115 MiB
# for 200,000 entries (20% under this), 545 MiB for 1,000,000 (4% under).
BASE_MIB = 32
BYTES_PER_ENTRY = 560


def empty_files_layer(n, prefix):
    """One directory `prefix` holding n empty files (the names a flat
    directory of an attacker's image would have)."""
    sink = mi.StreamingLayer(1)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as tf:
        d = tarfile.TarInfo(prefix)
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1700000000
        tf.addfile(d)
        ti = tarfile.TarInfo()
        ti.mode, ti.mtime = 0o644, 1700000000
        for i in range(n):
            ti.name = "%s/f%07d" % (prefix, i)
            tf.addfile(ti)
    return sink.layer()


def bound_mib(entries):
    return BASE_MIB + BYTES_PER_ENTRY * entries / float(1 << 20)


class MergeMemory(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        t0 = time.monotonic()
        layers = [empty_files_layer(ENTRIES, "d%d" % i) for i in range(LAYERS)]
        print("\n  %d layer(s) of %d empty files: %d bytes of gzip, built in %.1f s"
              % (LAYERS, ENTRIES, sum(l.size for l in layers), time.monotonic() - t0), file=sys.stderr)
        mi.push(mi.RegistryClient(cls.reg.host), "merge/files", "v1",
                mi.build_image(layers, config={"Cmd": ["/bin/sh"]}))
        cls.url = "http://%s/merge/files:v1" % cls.reg.host

    def measured(self, what, *args):
        argv = [LAZYROOT_BIN, "--root", self.root] + list(args)
        t0 = time.monotonic()
        rc, _, err, peak = run_measured(argv, timeout=1800, env=self.env)
        print("  %-8s %d x %d entries: exit %d  peak RSS %6.1f MiB  wall %6.1f s"
              % (what, LAYERS, ENTRIES, rc, peak, time.monotonic() - t0), file=sys.stderr)
        self.assertEqual(rc, 0, err[-3000:])
        return err, peak

    def test_extract_peak_grows_with_the_tree_only(self):
        self.measured("pull", "pull", "-q", self.url)
        out = os.path.join(self.workdir("x"), "out")
        err, peak = self.measured("extract", "extract", self.url, out)
        entries = LAYERS * (ENTRIES + 1)
        print("  extract: %.0f bytes of peak RSS per entry; bound %.1f MiB"
              % (peak * (1 << 20) / entries, bound_mib(entries)), file=sys.stderr)
        self.assertNotIn("rebuilding", err)  # the merge read the indexes the pull wrote
        for i in range(LAYERS):
            d = os.path.join(out, "d%d" % i)
            with os.scandir(d) as it:
                self.assertEqual(sum(1 for _ in it), ENTRIES, d)
        self.assertLess(peak, bound_mib(entries), "extract of %d entries peaked at %.1f MiB" % (entries, peak))


if __name__ == "__main__":
    unittest.main(verbosity=2)
