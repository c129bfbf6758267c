#!/usr/bin/env python3
"""kill -9 at random moments (issue 14, item 7): of `pull` (five layers, two
large random blobs, from the real registry), `extract` (into a DIR and into
the store's cached rootfs), `gc` and `fsck --repair`. Each moment is drawn
uniformly within the operation's measured duration (an unkilled run first;
extract then takes the median of its unkilled runs so far, the first run
being a slow cold one). After every kill:

  - `lazyroot fsck` exits 0, or reports nothing but resumable partials (when
    the binary has fsck); the store invariants of
    tests/tools/store_faults.py hold either way (blobs hash to their names,
    no temp file outside tmp/, no .done without its tree, records complete);
  - the target DIR of a killed extract is absent or complete;
  - the same command, run again, succeeds, and its result matches an
    independent tool: sha256sum of the blobs and the image's digest list for
    pull; GNU tar's extraction of the layer tars (tree_listing) for extract.

Counts: LAZYROOT_KILL9_ITERATIONS kills per operation (default 50; extract's
are split between DIR and the cached rootfs), LAZYROOT_KILL9_BLOB_MIB for the
two large blobs (default 8). The random seed is printed; replay with
LAZYROOT_FAULT_SEED. Each test prints its counts and wall time."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
import store_faults as sf  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

ITERATIONS = sf.env_int("LAZYROOT_KILL9_ITERATIONS", 50)
BIG_MIB = sf.env_float("LAZYROOT_KILL9_BLOB_MIB", 8)


def attempts(kills):
    """Iteration numbers until ITERATIONS kills hit a running process (a run
    that ends before its moment is not a kill), at most 3 x ITERATIONS."""
    i = 0
    while kills() < ITERATIONS and i < 3 * ITERATIONS:
        yield i
        i += 1


class Kill9(PullTestCase):
    @classmethod
    def setUpClass(cls):
        sf.announce_seed()
        import tempfile
        cls.shared = tempfile.mkdtemp(prefix="lazyroot-kill9-")
        cls.addClassCleanup(shutil.rmtree, cls.shared, ignore_errors=True)
        cls.reg = registry.start_registry("plain", os.path.join(cls.shared, "registry"))
        cls.addClassCleanup(cls.reg.stop)
        client = mi.RegistryClient(cls.reg.host)
        cls.img, layers = sf.fault_image("kill9", BIG_MIB)
        tars = [l.tar for l in layers]
        mi.push(client, "crash/big", "v1", cls.img)
        cls.ref = "http://%s/crash/big:v1" % cls.reg.host
        # A second image sharing the base layers, with small layers of its own:
        # what gc deletes.
        other_layers = [mi.build_layer(sf.many_files("other", 200)), mi.build_layer(random_mib=3, seed=7)]
        cls.other = mi.build_image(layers[:2] + other_layers, config={"Cmd": ["other"]})
        mi.push(client, "crash/other", "v1", cls.other)
        cls.other_ref = "http://%s/crash/other:v1" % cls.reg.host
        other_tars = [l.tar for l in layers[:2]] + [l.tar for l in other_layers]
        cls.want_other = sf.listing(sf.gnu_tar_tree(other_tars, os.path.join(cls.shared, "gnutar-other"), cls.shared))
        cls.want = sf.listing(sf.gnu_tar_tree(tars, os.path.join(cls.shared, "gnutar"), cls.shared))
        cls.blobs = [cls.img.config.digest] + [l.digest for l in cls.img.layers]

    def setUp(self):
        super().setUp()
        self.found, self.examples, self.notes = Counter(), [], Counter()

    # ------------------------------------------------------------ helpers

    def timed(self, *args):
        start = time.monotonic()
        r = self.lazyroot(*args, timeout=300)
        self.assertOk(r, "lazyroot " + " ".join(args))
        return time.monotonic() - start

    def kill_at(self, rng, duration, *args):
        """Starts lazyroot ARGS, SIGKILLs it after uniform(0, duration) s.
        Returns True when the kill hit a running process."""
        p = self.popen(*args)
        time.sleep(rng.uniform(0, duration))
        hit = p.poll() is None
        if hit:
            os.kill(p.pid, signal.SIGKILL)
        code, _, err = self.finish(p, timeout=300)
        if not hit:
            self.assertEqual(code, 0, "lazyroot %s finished before the kill, and failed: %s" % (args, err[-2000:]))
        return hit

    def check_store(self, what, expect_blobs=()):
        """Collects what is wrong after a kill (self.found); the test fails at
        its end with every kind of problem counted, so one run shows how often
        each happens rather than only the first."""
        problems = sf.store_invariants(self.root, expect_blobs)
        if sf.has_fsck():
            r = self.lazyroot("fsck", timeout=300)
            bad = sf.fsck_problems(r.stdout)
            if not (r.returncode == 0 or (r.returncode == 1 and not bad)):
                problems += ["fsck exited %d: %s" % (r.returncode, l) for l in (bad or [r.stderr.strip()[-300:]])]
            for n in sf.fsck_notes(r.stdout):
                self.notes[self.kind(n)] += 1
        for p in problems:
            kind = self.kind(p)
            if kind not in self.found:
                self.examples.append("%s: %s" % (what, p))
            self.found[kind] += 1

    @staticmethod
    def kind(line):
        """A problem or note with its digests, pids and numbers made generic."""
        kind = re.sub(r"[0-9a-f]{64}", "<hex>", re.sub(r"\.tmp\.[0-9.]+", ".tmp.<id>", line))
        kind = re.sub(r"lazyroot-tmp-\w+", "lazyroot-tmp-<x>", kind)
        return re.sub(r"\d+", "N", kind)

    def assertNothingFound(self):
        self.assertEqual(dict(self.found), {}, "store problems after kills, counted by kind; first of each:\n  "
                         + "\n  ".join(self.examples))

    def check_extracted(self, d, what, want=None):
        diff = sf.same_tree(d, want or self.want)
        if diff:
            self.fail("%s: %s differs from GNU tar's extraction of the layers:\n%s" % (what, d, diff[:4000]))

    def report(self, name, kills, misses, start, extra=""):
        sys.stderr.write("\n[%s: %d kills (+%d runs finished before their kill), %.1f s%s; fsck notes after kills: %s] "
                         % (name, kills, misses, time.monotonic() - start, extra,
                            dict(self.notes) if sf.has_fsck() else "no fsck in this build"))

    # ------------------------------------------------------------ tests

    def test_pull(self):
        rng = sf.rng("pull")
        start = time.monotonic()
        duration = self.timed("pull", "-q", self.ref)
        kills = misses = 0
        for i in attempts(lambda: kills):
            shutil.rmtree(self.root)
            if self.kill_at(rng, duration, "pull", "-q", self.ref):
                kills += 1
            else:
                misses += 1
            self.check_store("pull killed (iteration %d)" % i)
            self.timed("pull", "-q", self.ref)
            self.check_store("pull after a killed pull (iteration %d)" % i, self.blobs)
            if i % 10 == 9:  # the indexes and tree it left are usable
                d = os.path.join(self.tmp, "out%d" % i)
                self.timed("extract", self.ref, d)
                self.check_extracted(d, "extract after a killed pull (iteration %d)" % i)
                shutil.rmtree(d)
        self.report("pull", kills, misses, start, ", one pull %.2f s" % duration)
        self.assertNothingFound()
        self.assertGreater(kills, ITERATIONS // 2, "most kills came too late to hit a running pull")

    def test_extract(self):
        rng = sf.rng("extract")
        start = time.monotonic()
        self.timed("pull", "-q", self.ref)
        d = os.path.join(self.tmp, "dir")
        runs = {False: [self.timed("extract", self.ref, d)]}
        self.check_extracted(d, "first extract")
        shutil.rmtree(d)
        runs[True] = [self.timed("extract", self.ref)]
        rootfs = os.path.join(self.root, "rootfs", self.img.digest[7:])
        self.check_extracted(rootfs, "first cached extract")
        kills = misses = litter = 0
        for i in attempts(lambda: kills):
            cached = i % 2 == 1
            if cached:
                shutil.rmtree(rootfs)  # what a missing cache looks like: extract it again
                os.unlink(rootfs + ".done")
                args, target = ("extract", self.ref), rootfs
            else:
                args, target = ("extract", self.ref, d), d
            duration = sorted(runs[cached])[len(runs[cached]) // 2]
            if self.kill_at(rng, duration, *args):
                kills += 1
            else:
                misses += 1
            what = "extract%s killed (iteration %d)" % (" (cached)" if cached else " DIR", i)
            self.check_store(what, self.blobs)
            if os.path.exists(target) and (not cached or os.path.exists(rootfs + ".done")):
                self.check_extracted(target, what + ": a target that exists is complete")
            if not cached and os.path.exists(d):
                shutil.rmtree(d)  # a complete DIR: extract refuses a non-empty one
            for n in os.listdir(self.tmp):  # a kill -9 leaves the temp dir beside DIR: count, clear
                if ".lazyroot-tmp-" in n:
                    litter += 1
                    shutil.rmtree(os.path.join(self.tmp, n))
            t0 = time.monotonic()
            r = self.lazyroot(*args, timeout=300)
            runs[cached].append(time.monotonic() - t0)
            self.assertOk(r, "extract after " + what)
            self.assertEqual(r.stdout.strip(), target)
            self.check_extracted(target, "extract after " + what)
            if not cached:
                shutil.rmtree(d)
            self.check_store("extract after " + what, self.blobs)
        # Whatever a killed extract left beside its target is gone once gc ran.
        self.timed("gc")
        leftovers = sf.stale_extract_temps(self.root)
        if leftovers:
            self.found["killed extracts' temp dirs still in rootfs/ after gc"] = len(leftovers)
            self.examples.append("after gc: rootfs/%s (and %d more)" % (leftovers[0], len(leftovers) - 1))
        self.report("extract", kills, misses, start, ", DIR %.2f s, cached %.2f s, %d temp dirs left beside DIR"
                    % (sorted(runs[False])[len(runs[False]) // 2], sorted(runs[True])[len(runs[True]) // 2], litter))
        self.assertNothingFound()
        self.assertGreater(kills, ITERATIONS // 2)

    def test_gc(self):
        rng = sf.rng("gc")
        start = time.monotonic()
        self.timed("pull", "-q", self.ref)
        self.timed("extract", self.ref)
        rootfs = os.path.join(self.root, "rootfs", self.img.digest[7:])
        own = [l.digest for l in self.other.layers[2:]] + [self.other.config.digest]

        def garbage(after=""):
            """other's record gone, its blobs, indexes, tree and cached rootfs left to gc."""
            self.timed("pull", "-q", self.other_ref)
            self.timed("extract", self.other_ref)
            # A cached rootfs a killed gc was removing must not be handed out.
            self.check_extracted(os.path.join(self.root, "rootfs", self.other.digest[7:]),
                                 "cached extract of the image %s was removing" % (after or "gc"), self.want_other)
            self.assertOk(self.lazyroot("rm", self.other_ref))

        garbage()
        duration = self.timed("gc")
        kills = misses = 0
        for i in attempts(lambda: kills):
            # After a killed gc (i > 0), garbage() pulls and extracts the image
            # that gc was removing: its cached rootfs must be whole, never
            # what the killed gc left of it.
            garbage("the gc killed in iteration %d" % (i - 1) if i else "")
            if self.kill_at(rng, duration, "gc"):
                kills += 1
            else:
                misses += 1
            what = "gc killed (iteration %d)" % i
            self.check_store(what, self.blobs)
            if i % 5 == 4:
                # The image kept is whole: its cached rootfs is reused as it is
                # and matches, a fresh extract works from its indexes and tree,
                # and the next gc finishes the job.
                r = self.lazyroot("extract", self.ref)
                self.assertOk(r, "cached extract after " + what)
                self.check_extracted(rootfs, "cached extract after " + what)
                d = os.path.join(self.tmp, "out%d" % i)
                self.timed("extract", self.ref, d)
                self.check_extracted(d, "extract after " + what)
                shutil.rmtree(d)
                self.timed("gc")
                self.check_store("the gc after " + what, self.blobs)
                left = [x for x in own if os.path.exists(os.path.join(self.root, "blobs/sha256", x[7:]))]
                self.assertEqual(left, [], "the next gc left blobs of the removed image")
                self.assertFalse(os.path.exists(os.path.join(self.root, "rootfs", self.other.digest[7:])))
        self.report("gc", kills, misses, start, ", one gc %.3f s" % duration)
        self.assertNothingFound()
        self.assertGreater(kills, 0)

    def test_fsck_repair(self):
        if not sf.has_fsck():
            self.fail("this lazyroot has no fsck command (issue 14 item 1): cannot kill fsck --repair")
        rng = sf.rng("fsck")
        start = time.monotonic()
        self.timed("pull", "-q", self.ref)
        self.timed("extract", self.ref)
        rootfs = os.path.join(self.root, "rootfs", self.img.digest[7:])

        def damage():
            """What repair fixes without downloading: lost indexes and tree,
            an orphan blob, a stale temp file."""
            for sub in ("index/sha256", "trees"):
                d = os.path.join(self.root, sub)
                for n in os.listdir(d) if os.path.isdir(d) else []:
                    os.unlink(os.path.join(d, n))
            orphan = mi.random_bytes(100000, rng.randrange(1 << 30))
            with open(os.path.join(self.root, "blobs/sha256", mi.sha256(orphan)[7:]), "wb") as f:
                f.write(orphan)
            os.makedirs(os.path.join(self.root, "tmp"), exist_ok=True)
            with open(os.path.join(self.root, "tmp", "x.tmp.999999"), "wb") as f:
                f.write(b"stale")

        damage()
        duration = self.timed("fsck", "--repair")
        kills = misses = 0
        for i in attempts(lambda: kills):
            damage()
            if self.kill_at(rng, duration, "fsck", "--repair"):
                kills += 1
            else:
                misses += 1
            what = "fsck --repair killed (iteration %d)" % i
            self.found.update(sf.store_invariants(self.root, self.blobs))
            r = self.lazyroot("fsck", "--repair", timeout=300)
            self.assertEqual(r.returncode, 0, "fsck --repair after %s (nothing needs a download):\n%s\n%s"
                             % (what, r.stdout[-2000:], r.stderr[-2000:]))
            r = self.lazyroot("fsck", timeout=300)
            self.assertEqual(r.returncode, 0, "fsck after the repair that followed %s:\n%s\n%s"
                             % (what, r.stdout[-3000:], r.stderr[-2000:]))
            self.assertOk(self.lazyroot("extract", self.ref), "cached extract after " + what)
            self.check_extracted(rootfs, "cached extract after " + what)
            if i % 10 == 9:
                d = os.path.join(self.tmp, "out%d" % i)
                self.timed("extract", self.ref, d)
                self.check_extracted(d, "extract after " + what)
                shutil.rmtree(d)
        self.report("fsck --repair", kills, misses, start, ", one repair %.3f s" % duration)
        self.assertNothingFound()
        self.assertGreater(kills, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
