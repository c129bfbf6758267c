#!/usr/bin/env python3
"""Mirrors and registry rules: containers' registries.conf and containerd's
hosts.toml, as podman/skopeo and containerd read them.

The registry is a real one (registry.py, Debian's docker-registry); mirrors
are fault servers (fault_server.py: a good one, one answering 404, 500 or
wrong bytes, one behind a path) or a port nobody listens on, and in the
last class Debian's docker-registry in proxy mode (a pull-through cache of
a second registry): the first pull fills it, a second store pulls from it
with the upstream stopped. Every pull is checked against the pushed
digests (the store's blobs are re-hashed by sha256sum)."""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
import registry  # noqa: E402
import token_issuer  # noqa: E402
from pull_harness import PullTestCase, blob_files  # noqa: E402

REPO = "demo/app"


def image(seed=31):
    return mi.build_image([mi.build_layer(mi.default_files("mirrors")),
                           mi.build_layer(random_mib=1, compression="gzip", seed=seed)],
                          config={"Cmd": ["/bin/hello"]})


def warnings(stderr):
    return [l for l in stderr.splitlines() if "warning:" in l]


class MirrorCase(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.img = image()
        cls.class_registry("plain")
        cls.pushed = mi.push(mi.RegistryClient(cls.reg.host), REPO, "v1", cls.img)

    def setUp(self):
        super().setUp()
        self.ref = "%s/%s:v1" % (self.reg.host, REPO)
        self.digests = [self.img.config.digest] + [l.digest for l in self.img.layers]

    def conf(self, text, name="registries.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def mirror_conf(self, *mirrors, prefix=None, extra=""):
        """[[registry]] for the test registry (insecure: it is plain HTTP),
        with one [[registry.mirror]] per (location, extra lines)."""
        text = '[[registry]]\n%slocation = "%s"\ninsecure = true\n%s' % (
            'prefix = "%s"\n' % prefix if prefix else "", self.reg.host, extra)
        for m in mirrors:
            loc, more = (m, "") if isinstance(m, str) else m
            text += '[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n%s' % (loc, more)
        return self.conf(text)

    def fault(self, **kw):
        fs = fault_server.FaultServer(self.img, repo=kw.pop("repo", REPO), **kw)
        self.addCleanup(fs.stop)
        return fs


class RegistriesConf(MirrorCase):
    def test_mirror_serves_everything_and_v_names_it(self):
        fs = self.fault()
        mark = self.reg.log_mark()
        r = self.pull_ok(self.ref, "-v", "--registries-conf", self.mirror_conf(fs.host))
        self.assertStored(self.digests)
        self.assertIn(self.pushed["manifest"], r.stdout)
        self.assertEqual(self.reg.blob_gets(mark), [], "the registry served blobs a mirror had")
        served = set(x["digest"] for x in fs.requests(kind="blob") if x["method"] == "GET" and x["status"] == 200)
        self.assertEqual(served, set(self.digests))
        # -v: one line for the manifest and one per blob, naming the mirror.
        lines = [l for l in r.stderr.splitlines() if " from %s/%s" % (fs.host, REPO) in l]
        self.assertTrue(any(l.startswith("manifest v1") for l in lines), r.stderr)
        for d in self.digests:
            self.assertTrue(any(l.startswith("blob " + d[:19]) for l in lines), (d, r.stderr))
        self.assertEqual(warnings(r.stderr), [])

    def test_dead_mirror_falls_through_with_one_warning(self):
        dead = "127.0.0.1:%d" % token_issuer.free_port()
        r = self.pull_ok(self.ref, "--registries-conf", self.mirror_conf(dead))
        self.assertStored(self.digests)
        w = warnings(r.stderr)
        self.assertEqual(len(w), 1, r.stderr)
        self.assertIn("%s/%s (mirror, registries.conf " % (dead, REPO), w[0])
        self.assertIn("trying %s/%s" % (self.reg.host, REPO), w[0])

    def test_404_and_500_mirrors_fall_through_in_order(self):
        empty = self.fault(repo="other/repo")   # answers 404 for demo/app
        broken = self.fault(mode="http-500")
        good = self.fault()
        r = self.pull_ok(self.ref, "-v", "--registries-conf", self.mirror_conf(empty.host, broken.host, good.host))
        self.assertStored(self.digests)
        w = warnings(r.stderr)
        self.assertEqual(len(w), 2, r.stderr)
        self.assertIn(empty.host, w[0])
        self.assertIn("not found", w[0])
        self.assertIn(broken.host, w[1])
        self.assertIn("500", w[1])
        self.assertTrue(good.requests(kind="blob"), "the third mirror served nothing")
        t_manifest = [x["time"] for x in broken.requests(kind="manifest")]
        self.assertTrue(t_manifest and min(t_manifest) > min(x["time"] for x in empty.requests()),
                        "mirrors not tried in order")

    def test_mirror_with_wrong_bytes_is_rejected_and_the_registry_used(self):
        bad = self.fault(mode="wrong-digest", tamper=self.img.layers[1].digest)
        mark = self.reg.log_mark()
        r = self.pull_ok(self.ref, "--jobs", "1", "-v", "--registries-conf", self.mirror_conf(bad.host))
        self.assertStored(self.digests)
        self.assertIn(self.img.layers[1].digest, self.reg.blob_gets(mark))
        w = warnings(r.stderr)
        self.assertTrue(w and "digest mismatch" in w[0] and bad.host in w[0], r.stderr)
        self.assertIn("blob %s from %s/%s" % (self.img.layers[1].digest[:19], self.reg.host, REPO), r.stderr)

    def test_digest_only_mirror_is_not_used_for_a_tag(self):
        fs = self.fault()
        conf = self.mirror_conf((fs.host, 'pull-from-mirror = "digest-only"\n'))
        self.pull_ok(self.ref, "--registries-conf", conf)
        self.assertStored(self.digests)
        self.assertEqual(fs.requests(), [], "a digest-only mirror was asked for a tag pull")
        # By digest, into a fresh store, it is used.
        shutil.rmtree(self.root)
        mark = self.reg.log_mark()
        self.pull_ok("%s/%s@%s" % (self.reg.host, REPO, self.pushed["manifest"]), "--registries-conf", conf)
        self.assertStored(self.digests)
        self.assertTrue(fs.requests(kind="blob"))
        self.assertEqual(self.reg.blob_gets(mark), [])

    def test_longest_prefix_rewrites_and_blocked_names_its_file(self):
        conf = self.conf('[[registry]]\nprefix = "example.test"\nlocation = "%s/nothing-here"\ninsecure = true\n'
                         '[[registry]]\nprefix = "example.test/team"\nlocation = "%s/demo"\ninsecure = true\n'
                         '[[registry]]\nprefix = "example.test/team/secret"\nlocation = "%s/sealed"\nblocked = true\n'
                         % (self.reg.host, self.reg.host, self.reg.host))
        r = self.pull_ok("example.test/team/app:v1", "-v", "--registries-conf", conf)
        self.assertStored(self.digests)
        self.assertIn("from %s/demo/app" % self.reg.host, r.stderr)
        self.assertEqual([i["reference"] for i in self.images()], ["example.test/team/app:v1"])
        r = self.pull("example.test/team/secret/app:v1", "--registries-conf", conf)
        self.assertFails(r)
        self.assertIn("blocked", r.stderr)
        self.assertIn(conf, r.stderr)

    def test_default_lookup_sysconfdir_dropins_and_user_file(self):
        sysconf = self.env["LAZYROOT_SYSCONFDIR"]
        os.makedirs(os.path.join(sysconf, "containers", "registries.conf.d"))
        with open(os.path.join(sysconf, "containers", "registries.conf"), "w") as f:
            f.write('unqualified-search-registries = ["docker.io"]\n'
                    '[[registry]]\nlocation = "%s"\ninsecure = true\n' % self.reg.host)
        dropin = os.path.join(sysconf, "containers", "registries.conf.d", "50-block.conf")
        with open(dropin, "w") as f:  # same prefix, later file: it wins
            f.write('[[registry]]\nlocation = "%s"\nblocked = true\n' % self.reg.host)
        r = self.pull(self.ref)
        self.assertFails(r)
        self.assertIn(dropin, r.stderr)
        # $CONTAINERS_REGISTRIES_CONF replaces the main file; the drop-ins
        # are still read (containers/image), so still blocked.
        env = {"CONTAINERS_REGISTRIES_CONF": self.mirror_conf()}
        self.assertFails(self.pull(self.ref, env=env))
        # A user registries.conf replaces the system file and its drop-ins.
        user = os.path.join(self.env["XDG_CONFIG_HOME"], "containers")
        os.makedirs(user)
        with open(os.path.join(user, "registries.conf"), "w") as f:
            f.write('[[registry]]\nlocation = "%s"\ninsecure = true\n' % self.reg.host)
        self.pull_ok(self.ref)
        self.assertStored(self.digests)

    def test_bad_config_is_an_error_naming_the_file(self):
        conf = self.conf('[[registry]]\nlocation = "https://%s"\n' % self.reg.host)
        r = self.pull(self.ref, "--registries-conf", conf)
        self.assertFails(r, 2)
        self.assertIn(conf, r.stderr)
        self.assertIn("URI schemes are not supported", r.stderr)

    def test_inspect_remote_goes_through_the_mirror(self):
        fs = self.fault()
        r = self.lazyroot("inspect", "--remote", "-v", "--registries-conf", self.mirror_conf(fs.host), self.ref)
        self.assertOk(r)
        self.assertIn(self.pushed["manifest"], r.stdout)
        self.assertTrue(fs.requests(kind="manifest"))
        self.assertIn("from %s/%s" % (fs.host, REPO), r.stderr)


class HostsToml(MirrorCase):
    def hosts(self, text, dirname=None):
        d = os.path.join(self.tmp, "certs.d")
        host_dir = os.path.join(d, dirname or self.reg.host)
        os.makedirs(host_dir, exist_ok=True)
        with open(os.path.join(host_dir, "hosts.toml"), "w") as f:
            f.write(text)
        return d, host_dir

    def test_mirror_gets_its_headers_and_ns(self):
        fs = self.fault()
        d, _ = self.hosts('server = "http://%s"\n[host."http://%s"]\ncapabilities = ["pull", "resolve"]\n'
                          '[host."http://%s".header]\nX-Mirror-Token = "s3cret"\nX-Multi = ["a", "b"]\n'
                          % (self.reg.host, fs.host, fs.host),
                          # containerd's name for HOST:PORT
                          dirname=self.reg.host.replace(":", "_") + "_")
        mark = self.reg.log_mark()
        r = self.pull_ok(self.ref, "-v", "--hosts-dir", d)
        self.assertStored(self.digests)
        self.assertEqual(self.reg.blob_gets(mark), [])
        reqs = [x for x in fs.requests() if x["kind"] in ("manifest", "blob")]
        self.assertTrue(reqs)
        for x in reqs:
            self.assertEqual(x["headers"].get("X-Mirror-Token"), "s3cret", x)
            self.assertEqual(x["query"], "ns=" + self.reg.host, x)
        self.assertIn("hosts.toml", r.stderr)

    def test_host_without_resolve_is_not_asked_for_tags(self):
        fs = self.fault()
        d, _ = self.hosts('server = "http://%s"\n[host."http://%s"]\ncapabilities = ["pull"]\n'
                          % (self.reg.host, fs.host))
        self.pull_ok(self.ref, "--hosts-dir", d)
        self.assertStored(self.digests)
        manifests = [x["path"] for x in fs.requests(kind="manifest")]
        self.assertFalse([p for p in manifests if p.endswith("/v1")], manifests)
        self.assertTrue(fs.requests(kind="blob"), "the pull-only mirror served no blob")

    def test_override_path(self):
        fs = self.fault(root="/custom/api")
        d, _ = self.hosts('server = "http://%s"\n[host."http://%s/custom/api"]\noverride_path = true\n'
                          % (self.reg.host, fs.host))
        mark = self.reg.log_mark()
        self.pull_ok(self.ref, "--hosts-dir", d)
        self.assertStored(self.digests)
        self.assertEqual(self.reg.blob_gets(mark), [])
        self.assertTrue(all(x["path"].startswith("/custom/api/") for x in fs.requests()), fs.requests())

    def test_system_certs_d_is_used_for_its_host_and_dead_host_warns(self):
        dead = "127.0.0.1:%d" % token_issuer.free_port()
        root = os.path.join(self.env["LAZYROOT_SYSCONFDIR"], "containerd", "certs.d", self.reg.host)
        os.makedirs(root)
        with open(os.path.join(root, "hosts.toml"), "w") as f:
            f.write('server = "http://%s"\n[host."http://%s"]\n' % (self.reg.host, dead))
        r = self.pull_ok(self.ref)
        self.assertStored(self.digests)
        w = warnings(r.stderr)
        self.assertEqual(len(w), 1, r.stderr)
        self.assertIn(dead, w[0])


    def test_default_dir_yields_to_a_registries_conf_rule(self):
        fs = self.fault()
        default = os.path.join(self.env["LAZYROOT_SYSCONFDIR"], "containerd", "certs.d", "_default")
        os.makedirs(default)
        with open(os.path.join(default, "hosts.toml"), "w") as f:
            f.write('[host."http://%s"]\n' % fs.host)  # no server: the registry itself comes last
        r = self.pull_ok(self.ref, "-v", "--insecure")
        self.assertStored(self.digests)
        self.assertIn("_default/hosts.toml", r.stderr)
        self.assertTrue(fs.requests(kind="blob"))
        # A registries.conf rule for the registry is more specific than _default.
        shutil.rmtree(self.root)
        conf = self.conf('[[registry]]\nlocation = "%s"\ninsecure = true\n' % self.reg.host)
        before = len(fs.requests())
        self.pull_ok(self.ref, "--registries-conf", conf)
        self.assertStored(self.digests)
        self.assertEqual(len(fs.requests()), before, "_default's mirror used despite a registries.conf rule")


class HostsTomlTls(PullTestCase):
    """ca = (relative to the hosts.toml) for a registry under a private CA."""

    @classmethod
    def setUpClass(cls):
        cls.img = image(seed=32)
        cls.class_registry("tls-basic")
        cls.pushed = mi.push(mi.RegistryClient(cls.reg.host, scheme="https", username=cls.reg.username,
                                               password=cls.reg.password, ca_file=cls.reg.ca_cert),
                             REPO, "v1", cls.img)

    def test_ca_from_hosts_toml(self):
        ref = "%s/%s:v1" % (self.reg.host, REPO)
        creds = "%s:%s" % (self.reg.username, self.reg.password)
        self.assertFails(self.pull(ref, "--creds", creds))  # the CA is nowhere else
        d = os.path.join(self.tmp, "certs.d")
        host_dir = os.path.join(d, self.reg.host)
        os.makedirs(host_dir)
        shutil.copy(self.reg.ca_cert, os.path.join(host_dir, "private-ca.pem"))
        with open(os.path.join(host_dir, "hosts.toml"), "w") as f:
            f.write('server = "https://%s"\n[host."https://%s"]\nca = "private-ca.pem"\n' % (self.reg.host, self.reg.host))
        self.pull_ok(ref, "--creds", creds, "--hosts-dir", d)
        self.assertStored([self.img.config.digest] + [l.digest for l in self.img.layers])

    def test_skip_verify(self):
        ref = "%s/%s:v1" % (self.reg.host, REPO)
        d = os.path.join(self.tmp, "certs.d")
        os.makedirs(os.path.join(d, self.reg.host))
        with open(os.path.join(d, self.reg.host, "hosts.toml"), "w") as f:
            f.write('server = "https://%s"\nskip_verify = true\n' % self.reg.host)
        self.pull_ok(ref, "--creds", "%s:%s" % (self.reg.username, self.reg.password), "--hosts-dir", d)
        self.assertStored([self.img.config.digest] + [l.digest for l in self.img.layers])


class HostsTomlClientCert(PullTestCase):
    """client = [cert, key] for a registry that requires a client certificate."""

    def test_client_pair_from_hosts_toml(self):
        img = image(seed=34)
        seed = registry.start_registry("plain", self.workdir("seed"))
        mi.push(mi.RegistryClient(seed.host), REPO, "v1", img)
        seed.stop()
        reg = registry.Registry("tls-basic", self.workdir("mtls"), client_ca=True)
        shutil.copytree(seed.storage, reg.storage)
        reg.start()
        self.addCleanup(reg.stop)
        ref = "%s/%s:v1" % (reg.host, REPO)
        creds = "%s:%s" % (reg.username, reg.password)
        d = os.path.join(self.tmp, "certs.d")
        host_dir = os.path.join(d, reg.host)
        os.makedirs(host_dir)
        shutil.copy(reg.ca_cert, os.path.join(host_dir, "ca.pem"))
        with open(os.path.join(host_dir, "hosts.toml"), "w") as f:
            f.write('server = "https://%s"\nca = "ca.pem"\n' % reg.host)
        self.assertFails(self.pull(ref, "--creds", creds, "--hosts-dir", d))  # no client certificate
        with open(os.path.join(host_dir, "hosts.toml"), "a") as f:
            f.write('client = [["%s", "%s"]]\n' % (reg.client_cert, reg.client_key))
        self.pull_ok(ref, "--creds", creds, "--hosts-dir", d)
        self.assertStored([img.config.digest] + [l.digest for l in img.layers])


class PullThroughCache(PullTestCase):
    """Debian's docker-registry with `proxy: remoteurl:` as the mirror."""

    def setUp(self):
        super().setUp()
        self.img = image(seed=33)
        self.upstream = registry.start_registry("plain", self.workdir("upstream"))
        self.addCleanup(self.upstream.stop)
        self.pushed = mi.push(mi.RegistryClient(self.upstream.host), REPO, "v1", self.img)
        self.cache = registry.start_registry("plain", self.workdir("cache"), proxy_remoteurl=self.upstream.url)
        self.addCleanup(self.cache.stop)
        self.ref = "%s/%s:v1" % (self.upstream.host, REPO)
        self.digests = [self.img.config.digest] + [l.digest for l in self.img.layers]

    def wait_cached(self):
        """The cache stores a blob it proxies on a goroutine of its own:
        wait until every blob is on its disk before the upstream goes."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(os.path.exists(self.cache.blob_path(d)) for d in self.digests):
                return
            time.sleep(0.1)
        self.fail("the pull-through cache did not store %s" % self.digests)

    def second_store(self, *opts):
        root2 = os.path.join(self.tmp, "root2")
        r = self.lazyroot("--root", root2, "pull", "-v", *opts, self.ref, root=False)
        self.assertOk(r, "second pull")
        self.assertEqual(set(blob_files(root2)) - {self.pushed["manifest"]}, set(self.digests))
        return r, blob_files(root2)

    def run_both(self, *opts):
        r = self.pull_ok(self.ref, "-v", *opts)
        self.assertStored(self.digests)
        self.assertIn("from %s/%s" % (self.cache.host, REPO), r.stderr)
        first = blob_files(self.root)
        self.wait_cached()
        self.upstream.stop()
        r, second = self.second_store(*opts)
        self.assertEqual(first, second)
        self.assertIn(self.pushed["manifest"], r.stdout)
        self.assertIn("from %s/%s" % (self.cache.host, REPO), r.stderr)
        self.assertEqual(warnings(r.stderr), [])

    def test_as_registries_conf_mirror(self):
        conf = os.path.join(self.tmp, "registries.conf")
        with open(conf, "w") as f:
            f.write('[[registry]]\nlocation = "%s"\ninsecure = true\n'
                    '[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n' % (self.upstream.host, self.cache.host))
        self.run_both("--registries-conf", conf)

    def test_as_hosts_toml_mirror(self):
        d = os.path.join(self.tmp, "certs.d", self.upstream.host)
        os.makedirs(d)
        with open(os.path.join(d, "hosts.toml"), "w") as f:
            f.write('server = "http://%s"\n[host."http://%s"]\ncapabilities = ["pull", "resolve"]\n'
                    % (self.upstream.host, self.cache.host))
        self.run_both("--hosts-dir", os.path.dirname(d))


if __name__ == "__main__":
    unittest.main()
