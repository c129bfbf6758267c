#!/usr/bin/env python3
"""Metadata attacks on `pull`: layers whose entries break a kernel limit
(the issue's metadata bomb of 1,000 x 1,000,000-byte xattrs, an over-long
symlink target, path, path component) or go over a budget (layer-entries,
layer-metadata, image-entries, image-metadata, lowered with --limit so the
images stay small). Each must exit 1 with a message naming the limit and
the layer, leave the store as it was (no blob, index or image record), and
peak under PEAK_BOUND_MIB; each budget case then pulls fine with the limit
raised by --limit and by LAZYROOT_LIMITS. Usage errors in either exit 2.
Every case prints its peak RSS and wall time (for the release note).

Layers are written by Python's tarfile (PAX format) straight into gzip, so
the bomb's 1 GB of tar never sits in this process's memory."""

import io
import os
import sys
import tarfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from peak_rss import run_measured  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase, store_listing  # noqa: E402

# Every refusal here happens within the first megabytes of the layer; a pull
# that held the bomb's metadata would need ~1 GB. Measured: 13-18 MiB.
PEAK_BOUND_MIB = 32


def stream_layer(entries, level=6):
    """A gzip Layer from (path, kind, target, xattrs) tuples; kind is
    "file", "dir" or "symlink"; xattrs a {name: str value} dict."""
    sink = mi.StreamingLayer(level)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for path, kind, target, xattrs in entries:
            ti = tarfile.TarInfo(path)
            ti.mtime = 1700000000
            ti.mode = 0o755 if kind == "dir" else 0o644
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = target
            if xattrs:
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
            tf.addfile(ti, io.BytesIO(b"") if kind == "file" else None)
    return sink.layer()


def files(n, prefix="f", xattr_bytes=0):
    for i in range(n):
        yield ("%s%06d" % (prefix, i), "file", None, {"user.x": "v" * xattr_bytes} if xattr_bytes else None)


def metadata_bomb():
    """The issue's bomb: 1,000 entries, each a 1,000,000-byte user.* xattr
    (just under the 1 MiB PAX cap); ~1 GB of tar, ~1 MB of gzip."""
    big = "b" * 1000000
    return stream_layer((("etc/x%04d" % i, "file", None, {"user.big": big}) for i in range(1000)), level=9)


class HostileMetadata(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        base = mi.build_layer(mi.default_files("hostile"))
        images = {
            "bomb": [base, metadata_bomb()],
            "symlink": [base, stream_layer([("lnk", "symlink", "a/" * 2047 + "bc", None)])],  # 4096 bytes
            "path": [base, stream_layer([("d/" * 2048 + "f", "file", None, None)])],  # 4097 bytes
            "component": [base, stream_layer([("d/" + "c" * 256, "file", None, None)])],
            # 100 entries; under --limit layer-entries=99 it is one too many.
            "entries": [base, stream_layer(files(100))],
            # 20 entries x (7-byte path + 6-byte name + 60,000-byte value) = 1,200,260 bytes.
            "metadata": [base, stream_layer(files(20, xattr_bytes=60000))],
            # Three layers of 40 entries (each 7 + 6 + 10,000 bytes): 120 entries, 1.2 MB together.
            "image": [stream_layer(files(40, "a", 10000)), stream_layer(files(40, "b", 10000)),
                      stream_layer(files(40, "c", 10000))],
            # One small layer named 1,001 times: over the image-layers default (1000).
            "layers": [base] * 1001,
        }
        cls.pushed = {}
        cls.layers = {}
        for name, layers in images.items():
            img = mi.build_image(layers, config={"Cmd": ["/bin/sh"]})
            cls.pushed[name] = mi.push(client, "hostile/" + name, "v1", img)
            cls.layers[name] = layers
        print("\nbomb layer: %d bytes of gzip" % cls.layers["bomb"][1].size, file=sys.stderr)

    def ref(self, name):
        return "http://%s/hostile/%s:v1" % (self.reg.host, name)

    def listing(self):
        """What a failed pull must not change: blobs, images and layer indexes."""
        out = store_listing(self.root)
        idx = os.path.join(self.root, "index")
        for dirpath, dirnames, filenames in os.walk(idx):
            dirnames.sort()
            out += [(os.path.relpath(os.path.join(dirpath, n), self.root), 0) for n in sorted(filenames)]
        return out

    def measured_pull(self, case, name, *opts, env=None):
        e = dict(self.env)
        e.update(env or {})
        argv = [LAZYROOT_BIN, "--root", self.root, "pull", "--progress", "plain"] + list(opts) + [self.ref(name)]
        t0 = time.monotonic()
        rc, out, err, peak = run_measured(argv, timeout=300, env=e)  # peak RSS of lazyroot itself (GNU time)
        wall = time.monotonic() - t0
        print("\n  %-40s exit %d  peak RSS %6.1f MiB  wall %6.2f s" % (case, rc, peak, wall), file=sys.stderr)
        self.assertGreaterEqual(rc, 0, "killed by signal %d\n%s" % (-rc, err[-2000:]))
        self.assertLess(peak, PEAK_BOUND_MIB, "%s peaked at %.1f MiB" % (case, peak))
        return rc, out, err

    def assertRefused(self, case, name, expect, *opts, layer=-1, env=None):
        """The pull exits 1 naming the layer and `expect`, and changes nothing."""
        before = self.listing()
        rc, _, err = self.measured_pull(case, name, *opts, env=env)
        self.assertEqual(rc, 1, err[-3000:])
        if layer is not None:
            self.assertIn("layer " + self.pushed[name]["layers"][layer], err)
        for text in expect:
            self.assertIn(text, err)
        self.assertEqual(self.listing(), before, "a refused pull changed the store")
        return err

    def assertPulls(self, case, name, *opts, env=None):
        rc, _, err = self.measured_pull(case, name, *opts, env=env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertStored(self.pushed[name]["blobs"])

    # ------------------------------------------------------------ kernel limits

    def test_metadata_bomb(self):
        err = self.assertRefused("metadata bomb (1000 x 1 MB xattr)", "bomb",
                                 ["tar entry at offset 0 (etc/x0000)",
                                  "xattr user.big is 1000000 bytes, over the kernel's 65536"])
        # Kernel limits cannot be raised: a bigger budget changes nothing.
        self.assertRefused("metadata bomb, budgets raised", "bomb", ["over the kernel's 65536"],
                           "--limit", "layer-metadata=4G", "--limit", "image-metadata=4G")

    def test_symlink_target(self):
        self.assertRefused("symlink target of 4096 bytes", "symlink",
                           ["(lnk): symlink target is 4096 bytes, over the kernel's 4095"])

    def test_path(self):
        self.assertRefused("path of 4097 bytes", "path", ["path is 4097 bytes, over the kernel's 4096"])

    def test_component(self):
        self.assertRefused("path component of 256 bytes", "component",
                           ["a path component is 256 bytes, over the kernel's 255"])

    # ------------------------------------------------------------ budgets

    def test_layer_entries(self):
        self.assertRefused("layer-entries=99 (100 entries)", "entries",
                           ["(f000099): the layer holds more than 99 entries",
                            "raise with --limit layer-entries=N"], "--limit", "layer-entries=99")
        self.assertRefused("LAZYROOT_LIMITS layer-entries=99", "entries", ["more than 99 entries"],
                           env={"LAZYROOT_LIMITS": "image-entries=1M,layer-entries=99"})
        # The flag wins over the environment.
        self.assertPulls("layer-entries raised by --limit", "entries", "--limit", "layer-entries=100",
                         env={"LAZYROOT_LIMITS": "layer-entries=99"})

    def test_layer_entries_raised_by_environment(self):
        self.assertPulls("layer-entries raised by LAZYROOT_LIMITS", "entries",
                         env={"LAZYROOT_LIMITS": "layer-entries=100"})

    def test_layer_metadata(self):
        self.assertRefused("layer-metadata=1M (1.2 MB of xattrs)", "metadata",
                           ["the layer holds more than 1048576 bytes of metadata",
                            "raise with --limit layer-metadata=SIZE"], "--limit", "layer-metadata=1M")
        self.assertPulls("layer-metadata raised by --limit", "metadata", "--limit", "layer-metadata=2M",
                         env={"LAZYROOT_LIMITS": "layer-metadata=1M"})

    def test_layer_metadata_raised_by_environment(self):
        self.assertRefused("LAZYROOT_LIMITS layer-metadata=1M", "metadata", ["layer-metadata"],
                           env={"LAZYROOT_LIMITS": "layer-metadata=1M"})
        self.assertPulls("layer-metadata raised by LAZYROOT_LIMITS", "metadata",
                         env={"LAZYROOT_LIMITS": "layer-metadata=2M"})

    def test_image_entries(self):
        self.assertRefused("image-entries=100 (3 x 40 entries)", "image",
                           ["the image's layers together hold more than 100 entries",
                            "raise with --limit image-entries=N"], "--jobs", "1", "--limit", "image-entries=100")
        self.assertPulls("image-entries raised by LAZYROOT_LIMITS", "image",
                         env={"LAZYROOT_LIMITS": "image-entries=120"})

    def test_image_metadata(self):
        # --jobs 1: the third layer is the one over (with parallel layers, whichever crosses the budget).
        self.assertRefused("image-metadata=1M (3 x 400 KB)", "image",
                           ["the image's layers together hold more than 1048576 bytes of metadata",
                            "raise with --limit image-metadata=SIZE"], "--jobs", "1", "--limit", "image-metadata=1M")
        self.assertPulls("image-metadata raised by --limit", "image", "--limit", "image-metadata=2M")

    def test_image_budget_checked_again_when_merging(self):
        # Pulled under the defaults, then extracted (the tree is merged) under lower ones.
        self.assertPulls("image, default limits", "image")
        r = self.lazyroot("extract", "--no-pull", "--limit", "image-entries=100", self.ref("image"),
                          os.path.join(self.tmp, "out"))
        self.assertFails(r)
        self.assertIn("the image's layers together hold more than 100 entries", r.stderr)
        self.assertIn("layer 3 (" + self.pushed["image"]["layers"][2] + ")", r.stderr)  # the merge names layers from 1, and by digest
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out")))

    def test_image_layers(self):
        # Refused from the manifest, before any layer is fetched.
        self.assertRefused("1001 layers (default image-layers 1000)", "layers",
                           ["1001 layers, more than 1000", "raise with --limit image-layers=N"], layer=None)
        self.assertPulls("image-layers raised by --limit", "layers", "--limit", "image-layers=1001")

    # ------------------------------------------------------------ usage

    def test_bad_limits_are_usage_errors(self):
        for args, env, text in [(["--limit", "layer-entries=0"], None, "positive number"),
                                (["--limit", "xattrs=1"], None, "unknown name"),
                                (["--limit", "layer-metadata"], None, "expected NAME=VALUE"),
                                ([], {"LAZYROOT_LIMITS": "layer-entries=12Q"}, "LAZYROOT_LIMITS")]:
            for cmd in ("pull", "extract", "mount"):
                extra = [os.path.join(self.tmp, "d")] if cmd != "pull" else []
                r = self.lazyroot(cmd, *args, self.ref("entries"), *extra, env=env)
                self.assertFails(r, code=2)
                self.assertIn(text, r.stderr)
        self.assertEqual(self.listing(), [])

    def test_help_lists_limits_and_defaults(self):
        for cmd in ("pull", "extract", "mount"):
            r = self.lazyroot(cmd, "--help")
            self.assertOk(r)
            text = " ".join(r.stdout.split())
            for name in ("layer-entries (default 1M)", "layer-metadata (64M)", "image-entries (1M)",
                         "image-metadata (128M)", "symlink-steps (16M)", "image-layers (1000)", "LAZYROOT_LIMITS"):
                self.assertIn(name, text, cmd)


if __name__ == "__main__":
    unittest.main(verbosity=2)
