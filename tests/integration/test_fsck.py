#!/usr/bin/env python3
"""`lazyroot fsck`: a real pull from a real registry, then damage done to the
store by hand (a flipped byte in a layer, a config, a manifest; a truncated
or deleted index; a garbage tree; a deleted blob; temp files of dead
processes, a stale extract dir, orphans). Each problem line must name the
damaged object; blob hashes are checked independently with sha256sum;
--quick must miss a same-size flipped byte but not a truncation; --repair
must fix what it can (indexes and trees byte-for-byte as the pull made
them), say which image to pull again, and leave a store that fsck finds
clean and extract uses."""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase, verify_blobs  # noqa: E402


def hexof(digest):
    return digest.split(":", 1)[1]


def sha256sum(path):
    out = subprocess.run(["sha256sum", "--", path], check=True, capture_output=True, text=True).stdout
    return "sha256:" + out.split()[0]


def flip_byte(path, offset=None):
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        off = size // 2 if offset is None else offset
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x55]))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def dead_pid():
    """The pid of a process that has exited (and was reaped)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


class Fsck(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        # A: gzip + uncompressed layers; B: one zstd layer; nothing shared.
        base = mi.build_layer(mi.default_files("fsck-a"))
        cls.a = mi.build_image([
            base,
            mi.build_layer([{"path": "srv/data.txt", "content": "uncompressed layer\n" * 50}], compression="none"),
        ])
        cls.b = mi.build_image([mi.build_layer(mi.default_files("fsck-b") +
                                               [{"path": "srv/b.txt", "content": "zstd\n" * 200}],
                                               compression="zstd")])
        # C shares A's first layer.
        cls.c = mi.build_image([base, mi.build_layer([{"path": "srv/c.txt", "content": "c\n"}])])
        mi.push(client, "fsck/c", "v1", cls.c)
        mi.push(client, "fsck/a", "v1", cls.a)
        mi.push(client, "fsck/b", "v1", cls.b)

    def setUp(self):
        super().setUp()
        self.pull_ok(self.ref("a"), "-q")
        self.pull_ok(self.ref("b"), "-q")
        refs = {i["digest"]: i["reference"] for i in self.images()}
        self.ref_a, self.ref_b = refs[self.a.digest], refs[self.b.digest]

    def ref(self, name):
        return "http://%s/fsck/%s:v1" % (self.reg.host, name)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def blob(self, digest):
        return self.path("blobs", "sha256", hexof(digest))

    def index(self, digest):
        return self.path("index", "sha256", hexof(digest))

    def tree(self, digest):
        return self.path("trees", hexof(digest))

    def fsck(self, *args, code=None):
        r = self.lazyroot("fsck", *args)
        if code is not None:
            self.assertEqual(r.returncode, code, "fsck %s: exit %d, want %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), r.returncode, code, r.stdout[-3000:], r.stderr[-2000:]))
        problems, notes, again = {}, {}, []
        for line in r.stdout.splitlines():
            if line.startswith("pull again: "):
                again.append(line[len("pull again: "):])
                continue
            into = notes if line.startswith("note: ") else problems
            obj, _, what = line[6 if into is notes else 0:].partition(": ")
            into.setdefault(obj, []).append(what)
        return problems, notes, again

    def extract_ok(self, ref):
        r = self.lazyroot("extract", "--no-pull", ref)
        self.assertOk(r, "extract " + ref)
        return r.stdout.strip()

    def test_clean_store_and_usage(self):
        self.extract_ok(self.ref("a"))  # builds the tree and the cached extract
        self.assertTrue(os.path.exists(self.tree(self.a.digest)))
        for args in ((), ("--quick",), (self.ref("a"),)):
            problems, _, _ = self.fsck(*args, code=0)
            self.assertEqual(problems, {}, args)
        j = json.loads(self.lazyroot("fsck", "--format", "json").stdout)
        self.assertEqual(j["problems"], [])
        self.assertEqual(j["pull_again"], [])
        r = self.lazyroot("fsck", "--no-such-flag")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.lazyroot("fsck", self.ref("nope"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not in the store", r.stderr)
        self.assertIn("--repair", self.lazyroot("fsck", "--help").stdout)

    def test_flipped_layer_byte_quick_misses_full_finds_repair_drops(self):
        layer = self.a.layers[0].digest
        flip_byte(self.blob(layer))
        got = sha256sum(self.blob(layer))
        self.assertNotEqual(got, layer)
        # Same size: --quick does not look at the bytes.
        problems, _, _ = self.fsck("--quick", code=0)
        self.assertEqual(problems, {})
        problems, _, _ = self.fsck(code=1)
        self.assertEqual(problems.get("blob " + layer), ["the stored bytes hash to " + got])
        self.assertEqual(problems.get("image " + self.ref_a), ["layer %s is corrupt" % layer])
        self.assertEqual(set(problems), {"blob " + layer, "image " + self.ref_a})
        # Only image B's objects: clean.
        problems, notes, _ = self.fsck(self.ref("b"), code=0)
        self.assertEqual((problems, notes), ({}, {}))
        problems, _, again = self.fsck("--repair", code=1)
        self.assertEqual(again, [self.ref_a])
        self.assertFalse(os.path.exists(self.blob(layer)))
        self.assertFalse(os.path.exists(self.index(layer)))
        verify_blobs(self.root)
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual(problems, {})
        # A's other blobs are unused now: notes, for gc.
        self.assertIn("blob " + self.a.layers[1].digest, notes)
        self.extract_ok(self.ref("b"))
        self.pull_ok(self.ref("a"), "-q")
        self.extract_ok(self.ref("a"))
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual((problems, notes), ({}, {}))

    def test_truncated_blob_found_by_quick(self):
        layer = self.b.layers[0].digest
        with open(self.blob(layer), "r+b") as f:
            f.truncate(self.b.layers[0].size - 10)
        problems, _, _ = self.fsck("--quick", code=1)
        self.assertEqual(problems.get("blob " + layer),
                         ["size %d, manifest %s says %d" % (self.b.layers[0].size - 10, self.b.digest,
                                                            self.b.layers[0].size)])
        self.assertIn("image " + self.ref_b, problems)
        _, _, again = self.fsck("--repair", "--quick", code=1)
        self.assertEqual(again, [self.ref_b])
        self.fsck(code=0)
        self.extract_ok(self.ref("a"))

    def test_flipped_config_and_manifest(self):
        flip_byte(self.blob(self.a.config.digest))
        flip_byte(self.blob(self.b.digest))
        problems, _, _ = self.fsck(code=1)
        for digest in (self.a.config.digest, self.b.digest):
            self.assertEqual(problems.get("blob " + digest), ["the stored bytes hash to " + sha256sum(self.blob(digest))])
        self.assertEqual(problems.get("image " + self.ref_a), ["config %s is corrupt" % self.a.config.digest])
        self.assertEqual(problems.get("image " + self.ref_b), ["manifest %s is corrupt" % self.b.digest])
        _, _, again = self.fsck("--repair", code=1)
        self.assertEqual(sorted(again), sorted([self.ref_a, self.ref_b]))
        self.assertEqual(self.images(), [])
        self.fsck(code=0)
        verify_blobs(self.root)

    def test_deleted_blob(self):
        layer = self.a.layers[1].digest
        os.unlink(self.blob(layer))
        problems, notes, _ = self.fsck("--quick", code=1)
        self.assertEqual(problems, {"image " + self.ref_a: ["layer %s is missing" % layer]})
        _, _, again = self.fsck("--repair", code=1)
        self.assertEqual(again, [self.ref_a])
        self.assertFalse(os.path.exists(self.index(layer)), "the index of a gone blob stays")
        problems, notes, _ = self.fsck(code=0)
        self.assertNotIn("layer index " + layer, notes)

    def test_indexes_and_tree_rebuilt_as_pulled(self):
        self.extract_ok(self.ref("a"))
        l0, l1 = self.a.layers[0].digest, self.a.layers[1].digest
        originals = {p: read(p) for p in (self.index(l0), self.index(l1), self.tree(self.a.digest))}
        with open(self.index(l0), "r+b") as f:
            f.truncate(os.path.getsize(self.index(l0)) // 2)
        os.unlink(self.index(l1))
        flip_byte(self.tree(self.a.digest))
        problems, _, _ = self.fsck("--quick", code=1)
        self.assertEqual(set(problems), {"layer index " + l0, "layer index " + l1, "tree " + self.a.digest})
        self.assertEqual(problems["layer index " + l1], ["missing"])
        problems, _, again = self.fsck("--repair", code=0)
        self.assertEqual(again, [])
        self.assertEqual(set(problems), {"layer index " + l0, "layer index " + l1, "tree " + self.a.digest})
        for path, data in originals.items():
            self.assertEqual(read(path), data, "%s is not what the pull and the mount made" % path)
        self.fsck(code=0)
        self.fsck("--quick", code=0)
        # A's tree under B's name: its layer digests give it away.
        shutil.copyfile(self.tree(self.a.digest), self.tree(self.b.digest))
        problems, _, _ = self.fsck("--quick", code=1)
        self.assertEqual(list(problems), ["tree " + self.b.digest])
        self.fsck("--repair", code=0)
        self.extract_ok(self.ref("b"))
        self.fsck(code=0)

    def test_leftovers_are_notes_and_repair_removes_them(self):
        target = self.extract_ok(self.ref("a"))
        mhex = hexof(self.a.digest)
        pid = dead_pid()
        orphan_hex = "ab" * 32
        orphan_data = b"an orphan blob\n"
        orphan_blob = mi.sha256(orphan_data)
        debris = {
            "blobs/sha256/%s.tmp.%d" % (hexof(self.a.layers[0].digest), pid): "file",
            "trees/%s.tmp.%d.7.1" % (hexof(self.b.digest), pid): "file",
            "images/x.json.tmp.%d" % pid: "file",
            "tmp/%s.index" % orphan_hex: "file",
            "rootfs/%s.lazyroot-tmp-Ab12Cd" % mhex: "dir",
            "trees/" + orphan_hex: "file",
            "index/sha256/" + orphan_hex: "file",
        }
        for rel, kind in debris.items():
            if kind == "dir":
                os.makedirs(self.path(rel, "etc"))
            else:
                with open(self.path(rel), "wb") as f:
                    f.write(b"leftover")
        with open(self.path("tmp", "cd" * 32 + ".partial"), "wb") as f:
            f.write(b"half a download")
        with open(self.blob(orphan_blob), "wb") as f:
            f.write(orphan_data)
        # Live work: a temp file of a running process is nobody's business.
        live = self.path("trees", "%s.tmp.%d" % (hexof(self.b.digest), os.getpid()))
        with open(live, "wb") as f:
            f.write(b"being written")
        # An extract that never finished (no .done).
        os.unlink(self.path("rootfs", mhex + ".done"))
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual(problems, {})
        want = set(debris) - {"trees/" + orphan_hex, "index/sha256/" + orphan_hex}
        want |= {"tree sha256:" + orphan_hex, "layer index sha256:" + orphan_hex, "rootfs/" + mhex,
                 "tmp/%s.partial" % ("cd" * 32), "blob " + orphan_blob}
        self.assertEqual(set(notes), want)
        self.assertNotIn(os.path.relpath(live, self.root), notes)
        problems, notes, _ = self.fsck("--repair", code=0)
        for rel in debris:
            self.assertFalse(os.path.exists(self.path(rel)), rel + " survived --repair")
        self.assertFalse(os.path.exists(target), "the unfinished extract survived --repair")
        self.assertTrue(os.path.exists(live))
        self.assertTrue(os.path.exists(self.path("tmp", "cd" * 32 + ".partial")), "a resumable partial was removed")
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual(set(notes), {"tmp/%s.partial" % ("cd" * 32), "blob " + orphan_blob})
        os.unlink(live)
        # Not a store file at all: a problem.
        with open(self.path("images", "junk"), "w") as f:
            f.write("junk")
        problems, _, _ = self.fsck(code=1)
        self.assertEqual(list(problems), ["images/junk"])
        self.fsck("--repair", code=0)
        self.assertFalse(os.path.exists(self.path("images", "junk")))
        self.assertEqual(self.extract_ok(self.ref("a")), target)
        self.fsck(code=0)

    def test_extract_in_progress_is_left_alone(self):
        import fcntl
        target = self.extract_ok(self.ref("a"))
        os.unlink(target + ".done")
        with open(target + ".lock", "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _, notes, _ = self.fsck("--repair", code=0)
            self.assertNotIn("rootfs/" + hexof(self.a.digest), notes)
            self.assertTrue(os.path.isdir(target))

    def test_older_index_format_is_a_note(self):
        """An index of a lower format version (after an upgrade) is a cache
        the next use rebuilds: a note, rebuilt by --repair."""
        layer = self.b.layers[0].digest
        original = read(self.index(layer))
        with open(self.index(layer), "r+b") as f:
            f.seek(8)
            f.write(b"\0\0\0\0")  # version 0
        for args in ((), ("--quick",)):
            problems, notes, _ = self.fsck(*args, code=0)
            self.assertEqual(problems, {})
            self.assertEqual(len(notes.get("layer index " + layer, [])), 1, notes)
            self.assertTrue(notes["layer index " + layer][0].startswith("format version 0 (now "), notes)
        self.fsck("--repair", code=0)
        self.assertEqual(read(self.index(layer)), original)
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual((problems, notes), ({}, {}))

    def test_shared_layer_index_checked_once(self):
        self.pull_ok(self.ref("c"), "-q")
        self.extract_ok(self.ref("a"))
        self.extract_ok(self.ref("c"))
        self.fsck(code=0)
        shared = self.a.layers[0].digest
        original = read(self.index(shared))
        flip_byte(self.index(shared))
        problems, _, _ = self.fsck(code=1)
        self.assertEqual(list(problems), ["layer index " + shared])
        self.assertEqual(len(problems["layer index " + shared]), 1)
        self.fsck("--repair", code=0)
        self.assertEqual(read(self.index(shared)), original)
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual((problems, notes), ({}, {}))

    def test_damaged_file_digests_fail_fsck_and_diff_not_extract(self):
        """Layer index format 4: the file digest section has its own SHA-256.
        Extract (and mount: the same OpenImage) reads the header, checkpoints
        and chunk digests only, so damage there goes unseen and the file is
        left as it is; fsck reports it, and diff rebuilds it from the blob."""
        self.extract_ok(self.ref("a"))  # builds the tree: later opens read no entries
        layer = self.a.layers[0].digest
        original = read(self.index(layer))
        files_at = int.from_bytes(original[200:208], "little")
        self.assertEqual(original[8], 4)
        self.assertLess(files_at, len(original))
        flip_byte(self.index(layer), files_at + 20)
        damaged = read(self.index(layer))
        out = os.path.join(self.tmp, "out-digests")
        r = self.lazyroot("extract", "--no-pull", self.ref_a, out)
        self.assertOk(r, "extract")
        self.assertNotIn(hexof(layer), r.stderr)
        self.assertEqual(read(self.index(layer)), damaged, "extract read the file digests")
        problems, _, _ = self.fsck(code=1)
        self.assertEqual(list(problems), ["layer index " + layer])
        self.assertIn("file digest section", problems["layer index " + layer][0])
        r = self.lazyroot("diff", self.ref_a, self.ref_b)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(hexof(layer), r.stderr)
        self.assertIn("rebuilding it from the blob", r.stderr)
        self.assertEqual(read(self.index(layer)), original)
        problems, notes, _ = self.fsck(code=0)
        self.assertEqual((problems, notes), ({}, {}))

    def test_changed_cached_extract(self):
        target = self.extract_ok(self.ref("a"))
        path = os.path.join(target, "etc", "hello.txt")
        st = os.stat(path)
        os.chmod(path, 0o644)
        flip_byte(path, 0)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        # Size and mtime put back: --quick finds it by its ctime (later than
        # the .done marker), as extract's reuse check does.
        problems, _, _ = self.fsck("--quick", code=1)
        self.assertEqual(list(problems), ["rootfs/" + hexof(self.a.digest)])
        self.assertTrue(all("changed after the extract" in w for w in problems["rootfs/" + hexof(self.a.digest)]),
                        problems)
        problems, _, _ = self.fsck(code=1)
        self.assertEqual(list(problems), ["rootfs/" + hexof(self.a.digest)])
        # hello.txt and hello-link.txt are one inode: either name may be reported.
        found = problems["rootfs/" + hexof(self.a.digest)]
        self.assertTrue(all(w.startswith("differs from image %s: /etc/hello" % self.ref_a) and
                            ("contents" in w or "changed after the extract" in w) for w in found), problems)
        self.assertTrue(any("contents" in w for w in found), problems)
        # Metadata is what --quick compares.
        os.chmod(path, 0o600)
        problems, _, _ = self.fsck("--quick", code=1)
        self.assertEqual(list(problems), ["rootfs/" + hexof(self.a.digest)])
        self.fsck("--repair", code=0)
        # Moved aside, not deleted (a VM may run on it): gc removes it.
        self.assertFalse(os.path.exists(target))
        aside = [n for n in os.listdir(os.path.dirname(target)) if n.startswith(hexof(self.a.digest) + ".stale-")]
        self.assertEqual(len(aside), 1)
        self.fsck(code=0)
        self.assertEqual(self.extract_ok(self.ref("a")), target)
        with open(path) as f:
            self.assertEqual(f.read(), "hello fsck-a\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
