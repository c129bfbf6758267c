#!/usr/bin/env python3
"""lazyroot pull from a real distribution registry (plain HTTP): OCI and
Docker v2s2 manifests, gzip / uncompressed / zstd layers, by tag and by
digest; the store is checked blob by blob with sha256sum and a second pull
must not fetch any blob (the registry's access log is the witness)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase, blob_files, store_listing  # noqa: E402

CONFIG = {"Entrypoint": ["/bin/hello"], "Cmd": ["--loud"], "Env": ["PATH=/bin", "GREETING=hi there"],
          "WorkingDir": "/srv", "User": "1000:1000", "ExposedPorts": {"8080/tcp": {}},
          "Labels": {"org.example.test": "basic"}, "StopSignal": "SIGINT"}


class PullBasic(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry()
        client = mi.RegistryClient(cls.reg.host)
        layers = [mi.build_layer(mi.default_files("basic"), compression="gzip"),
                  mi.build_layer([{"path": "srv/data.txt", "content": "uncompressed\n"}], compression="none"),
                  mi.build_layer([{"path": "srv/z.txt", "content": "zstd layer\n" * 100}], random_mib=1,
                                 compression="zstd", seed=7)]
        cls.oci = mi.build_image(layers, fmt="oci", config=CONFIG)
        cls.oci_pushed = mi.push(client, "demo/basic", "v1", cls.oci)
        cls.docker = mi.build_image([mi.build_layer(mi.default_files("docker"))], fmt="docker",
                                    config={"Cmd": ["/bin/sh"]})
        cls.docker_pushed = mi.push(client, "library/dockerv2", "latest", cls.docker)


    def ref(self, repo_tag):
        return "http://%s/%s" % (self.reg.host, repo_tag)

    def test_oci_pull_stores_verified_blobs_and_record(self):
        self.pull_ok(self.ref("demo/basic:v1"), "--progress", "plain")
        self.assertStored([self.oci.config.digest] + [l.digest for l in self.oci.layers])
        # the store holds nothing unexpected besides these blobs and maybe the manifest
        extra = set(blob_files(self.root)) - {self.oci.config.digest, self.oci.digest} - {
            l.digest for l in self.oci.layers}
        self.assertFalse(extra, "unexpected blobs in the store: %s" % extra)
        # lock files may stay (flock), partial downloads must not
        tmp = os.path.join(self.root, "tmp")
        left = [n for n in (os.listdir(tmp) if os.path.isdir(tmp) else []) if not n.endswith(".lock")]
        self.assertEqual(left, [], "partial downloads left in ROOT/tmp after a successful pull")
        imgs = self.images()
        self.assertEqual(len(imgs), 1, imgs)
        self.assertIn("demo/basic", imgs[0]["reference"])
        self.assertEqual(imgs[0]["digest"], self.oci.digest)
        self.assertEqual(imgs[0]["platform"], "linux/amd64")

    def test_inspect_matches_pushed_image(self):
        self.pull_ok(self.ref("demo/basic:v1"), "-q")
        ref = self.ref("demo/basic:v1")
        info = self.inspect(ref)
        self.assertEqual(info["Digest"], self.oci.digest)
        self.assertEqual(info["MediaType"], mi.OCI_MANIFEST)
        self.assertEqual(info["Platform"], "linux/amd64")
        self.assertEqual([l["digest"] for l in info["Layers"]], [l.digest for l in self.oci.layers])
        self.assertEqual([l["size"] for l in info["Layers"]], [l.size for l in self.oci.layers])
        self.assertEqual([l["mediaType"] for l in info["Layers"]], [l.media_type for l in self.oci.layers])
        self.assertEqual(info["DiffIDs"], [l.diff_id for l in self.oci.layers])
        for k, v in CONFIG.items():
            self.assertEqual(info["Config"].get(k), v, "Config.%s" % k)
        self.assertEqual(self.inspect(ref, "--raw").encode(), self.oci.manifest)
        self.assertEqual(self.inspect(ref, "--config").encode(), self.oci.config.data)

    def test_quiet_prints_only_the_digest(self):
        r = self.pull_ok(self.ref("demo/basic:v1"), "-q")
        self.assertEqual(r.stdout.strip(), self.oci.digest)

    def test_second_pull_transfers_no_blob(self):
        self.pull_ok(self.ref("demo/basic:v1"))
        before = store_listing(self.root)
        mark = self.reg.log_mark()
        r = self.pull_ok(self.ref("demo/basic:v1"), "-q")
        self.assertEqual(r.stdout.strip(), self.oci.digest)
        self.assertEqual(self.reg.blob_gets(since=mark), [], "second pull fetched blobs")
        self.assertEqual(store_listing(self.root), before)

    def test_pull_by_digest(self):
        r = self.pull_ok("%s/demo/basic@%s" % (self.reg.url, self.oci.digest), "-q")
        self.assertEqual(r.stdout.strip(), self.oci.digest)
        self.assertStored([l.digest for l in self.oci.layers])

    def test_docker_v2s2_manifest(self):
        r = self.pull_ok(self.ref("library/dockerv2:latest"), "-q")
        self.assertEqual(r.stdout.strip(), self.docker.digest)
        self.assertStored([self.docker.config.digest, self.docker.layers[0].digest])
        info = self.inspect(self.ref("library/dockerv2:latest"))
        self.assertEqual(info["MediaType"], mi.DOCKER_MANIFEST)
        self.assertEqual(info["Config"]["Cmd"], ["/bin/sh"])
        self.assertEqual(self.inspect(self.ref("library/dockerv2:latest"), "--raw").encode(),
                         self.docker.manifest)

    def test_json_progress_is_one_object_per_line(self):
        r = self.pull_ok(self.ref("demo/basic:v1"), "--progress", "json")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertTrue(lines, "no progress events on stderr")
        for l in lines:
            self.assertIsInstance(json.loads(l), dict, l)

    def test_insecure_flag_with_plain_reference(self):
        r = self.pull_ok("%s/demo/basic:v1" % self.reg.host, "--insecure", "-q")
        self.assertEqual(r.stdout.strip(), self.oci.digest)

    def test_unknown_tag_fails_and_names_it(self):
        r = self.pull(self.ref("demo/basic:nope"))
        self.assertFails(r)
        self.assertIn("nope", r.stderr)
        self.assertEqual(self.images(), [])

    def test_unknown_repository_fails(self):
        r = self.pull(self.ref("demo/absent:v1"))
        self.assertFails(r)
        self.assertIn("demo/absent", r.stderr)

    def test_usage_errors_exit_2(self):
        self.assertFails(self.lazyroot("pull"), code=2)
        self.assertFails(self.lazyroot("pull", "--jobs", "zero", self.ref("demo/basic:v1")), code=2)
        self.assertFails(self.lazyroot("pull", "--progress", "loud", self.ref("demo/basic:v1")), code=2)
        self.assertFails(self.lazyroot("frobnicate"), code=2)

    def test_invalid_reference_fails(self):
        r = self.pull("http://%s/UPPER/case:v1" % self.reg.host)
        self.assertIn(r.returncode, (1, 2), r.stderr)
        self.assertIn("UPPER", r.stderr)

    def test_store_location_from_environment(self):
        home = os.path.join(self.tmp, "lazyhome")
        r = self.lazyroot("pull", "-q", self.ref("demo/basic:v1"), root=False, env={"LAZYROOT_HOME": home})
        self.assertOk(r)
        self.assertIn(self.oci.layers[0].digest, blob_files(home))
        r = self.lazyroot("pull", "-q", self.ref("library/dockerv2:latest"), root=False)
        self.assertOk(r)
        xdg = os.path.join(self.env["XDG_DATA_HOME"], "lazyroot")
        self.assertIn(self.docker.layers[0].digest, blob_files(xdg))


if __name__ == "__main__":
    unittest.main()
