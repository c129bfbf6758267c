#!/usr/bin/env python3
"""Authentication and TLS against a real registry: an HTTPS registry with a
per-run CA (given via --cert-dir) and an htpasswd user, with credentials from
--creds, --password-stdin, $DOCKER_CONFIG/config.json (auths, credsStore,
credHelpers -> a `docker-credential-test` script on PATH); a token-auth
registry (anonymous, with credentials, `access_token`-only issuer, and a token
that expires in the middle of a throttled pull). Error messages must never
contain the password."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import PullTestCase, blob_files, store_listing  # noqa: E402

AUTH_WORDS = ("401", "unauthori", "authenticat", "credential", "denied", "password")


def small_image(tag):
    return mi.build_image([mi.build_layer(mi.default_files(tag)),
                           mi.build_layer(random_mib=0.25, seed=3)], config={"Cmd": ["/bin/hello"]})


class TlsBasic(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("tls-basic")
        cls.img = small_image("tls")
        mi.push(mi.RegistryClient(cls.reg.host, "https", cls.reg.username, cls.reg.password,
                                  cls.reg.ca_cert), "private/app", "v1", cls.img)
        cls.ref = "%s/private/app:v1" % cls.reg.host


    def write_docker_config(self, cfg):
        os.makedirs(self.env["DOCKER_CONFIG"], exist_ok=True)
        with open(os.path.join(self.env["DOCKER_CONFIG"], "config.json"), "w") as f:
            json.dump(cfg, f)

    def install_helper(self, name, username, secret):
        """A docker-credential-NAME script on PATH; it logs each call."""
        bindir = self.workdir("bin")
        log = os.path.join(self.tmp, "helper-%s.log" % name)
        script = os.path.join(bindir, "docker-credential-" + name)
        with open(script, "w") as f:
            f.write("#!/usr/bin/env python3\n"
                    "import json, sys\n"
                    "server = sys.stdin.read().strip()\n"
                    "open(%r, 'a').write(' '.join(sys.argv[1:]) + ' ' + server + '\\n')\n"
                    "if sys.argv[1] != 'get': sys.exit(1)\n"
                    "if server.replace('https://', '').rstrip('/') != %r:\n"
                    "    print('credentials not found in native keychain'); sys.exit(1)\n"
                    "print(json.dumps({'ServerURL': server, 'Username': %r, 'Secret': %r}))\n"
                    % (log, self.reg.host, username, secret))
        os.chmod(script, 0o755)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "/usr/bin:/bin")
        return log

    def assertPulled(self):
        self.assertStored([self.img.config.digest] + [l.digest for l in self.img.layers])

    def test_creds_flag_and_cert_dir(self):
        r = self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir,
                         "--creds", "%s:%s" % (self.reg.username, self.reg.password), "-q")
        self.assertEqual(r.stdout.strip(), self.img.digest)
        self.assertPulled()

    def test_password_stdin(self):
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir, "--username", self.reg.username,
                     "--password-stdin", input=self.reg.password + "\n")
        self.assertPulled()

    def test_docker_config_auths(self):
        token = base64.b64encode(("%s:%s" % (self.reg.username, self.reg.password)).encode()).decode()
        self.write_docker_config({"auths": {self.reg.host: {"auth": token}}})
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertPulled()

    def test_docker_config_cred_helper(self):
        log = self.install_helper("test", self.reg.username, self.reg.password)
        # credHelpers wins over a wrong auths entry for the same host
        bad = base64.b64encode(("%s:wrong" % self.reg.username).encode()).decode()
        self.write_docker_config({"auths": {self.reg.host: {"auth": bad}},
                                  "credHelpers": {self.reg.host: "test"}})
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertPulled()
        with open(log) as f:
            calls = f.read()
        self.assertIn("get", calls)
        self.assertIn(self.reg.host, calls)

    def test_docker_config_creds_store(self):
        self.install_helper("test", self.reg.username, self.reg.password)
        self.write_docker_config({"credsStore": "test"})
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertPulled()

    def auth(self, password):
        return {"auth": base64.b64encode(("%s:%s" % (self.reg.username, password)).encode()).decode()}

    def write_json(self, path, cfg):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def test_containers_auth_json_in_containers_auth_order(self):
        good, bad = self.auth(self.reg.password), self.auth("wrong")
        run_dir = self.workdir("run")
        runtime = os.path.join(run_dir, "containers", "auth.json")
        config = os.path.join(self.env["XDG_CONFIG_HOME"], "containers", "auth.json")
        self.env["XDG_RUNTIME_DIR"] = run_dir
        # The XDG config file is read when the runtime file has no entry.
        self.write_json(runtime, {"auths": {"other.example:5000": good}})
        self.write_json(config, {"auths": {self.reg.host: good}})
        self.write_docker_config({"auths": {self.reg.host: bad}})
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertPulled()
        # The runtime file comes before it, and auth.json before docker's config.json.
        self.write_json(runtime, {"auths": {self.reg.host: bad}})
        r = self.pull(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertFails(r)
        self.assertTrue(any(w in r.stderr.lower() for w in AUTH_WORDS), r.stderr)
        # --authfile, then $REGISTRY_AUTH_FILE, replace the runtime file.
        given = self.write_json(os.path.join(self.tmp, "given.json"), {"auths": {self.reg.host: good}})
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir, "--authfile", given)
        self.env["REGISTRY_AUTH_FILE"] = given
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir)

    def test_namespaced_keys_beat_the_host_key(self):
        auth_file = os.path.join(self.tmp, "auth.json")
        # private/app is what the test image lives at.
        self.write_json(auth_file, {"auths": {self.reg.host: self.auth("wrong"),
                                              self.reg.host + "/private": self.auth(self.reg.password)}})
        self.pull_ok(self.ref, "--cert-dir", self.reg.cert_dir, "--authfile", auth_file)
        self.write_json(auth_file, {"auths": {self.reg.host: self.auth(self.reg.password),
                                              self.reg.host + "/private/app": self.auth("wrong"),
                                              self.reg.host + "/other": self.auth("wrong")}})
        self.assertFails(self.pull(self.ref, "--cert-dir", self.reg.cert_dir, "--authfile", auth_file))
        # A key for another namespace never stands for the host.
        self.write_json(auth_file, {"auths": {self.reg.host + "/other": self.auth(self.reg.password)}})
        r = self.pull(self.ref, "--cert-dir", self.reg.cert_dir, "--authfile", auth_file)
        self.assertFails(r)
        self.assertTrue(any(w in r.stderr.lower() for w in AUTH_WORDS), r.stderr)

    def test_a_hanging_helper_is_stopped_and_named(self):
        bindir = self.workdir("bin")
        script = os.path.join(bindir, "docker-credential-hang")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexec sleep 60\n")
        os.chmod(script, 0o755)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "/usr/bin:/bin")
        auth_file = self.write_json(os.path.join(self.tmp, "auth.json"), {"credHelpers": {self.reg.host: "hang"}})
        start = time.monotonic()
        r = self.pull(self.ref, "--cert-dir", self.reg.cert_dir, "--authfile", auth_file,
                      env={"LAZYROOT_CREDENTIAL_HELPER_TIMEOUT": "1"})
        self.assertFails(r)
        self.assertLess(time.monotonic() - start, 30)
        self.assertIn("docker-credential-hang", r.stderr)
        self.assertIn("no answer within", r.stderr)

    def test_unknown_ca_is_refused_then_tls_verify_false(self):
        creds = "%s:%s" % (self.reg.username, self.reg.password)
        r = self.pull(self.ref, "--creds", creds)
        self.assertFails(r)
        self.assertIn(self.reg.host, r.stderr)
        self.assertEqual(blob_files(self.root), {})
        self.pull_ok(self.ref, "--creds", creds, "--tls-verify=false")
        self.assertPulled()

    def test_wrong_password_is_clear_and_secret_free(self):
        secret = "Wr0ng-Pa55-xyzzy"
        before = store_listing(self.root)
        r = self.pull(self.ref, "--cert-dir", self.reg.cert_dir, "--creds",
                      "%s:%s" % (self.reg.username, secret))
        self.assertFails(r)
        self.assertNotIn(secret, r.stderr + r.stdout)
        self.assertNotIn(base64.b64encode(("%s:%s" % (self.reg.username, secret)).encode()).decode(),
                         r.stderr)
        self.assertTrue(any(w in r.stderr.lower() for w in AUTH_WORDS), r.stderr)
        self.assertEqual(store_listing(self.root), before)

    def test_missing_credentials(self):
        r = self.pull(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertFails(r)
        self.assertTrue(any(w in r.stderr.lower() for w in AUTH_WORDS), r.stderr)

    def test_helper_secret_not_leaked_on_failure(self):
        secret = "helper-S3cret-wrong"
        self.install_helper("test", self.reg.username, secret)
        self.write_docker_config({"credHelpers": {self.reg.host: "test"}})
        r = self.pull(self.ref, "--cert-dir", self.reg.cert_dir)
        self.assertFails(r)
        self.assertNotIn(secret, r.stderr + r.stdout)


class TokenRealmTls(PullTestCase):
    """A token-auth registry and its token issuer on two https ports with
    certificates of a CA that is only in the registry's certs.d entry (the
    usual Harbor/GitLab setup): the token request gets the registry's TLS
    settings, as containers/image and docker give it; a realm with a CA of
    its own is trusted through its own certs.d entry."""

    def start(self, realm_ca):
        reg = registry.start_registry("tls-token", self.workdir("reg-" + realm_ca), realm_ca=realm_ca)
        self.addCleanup(reg.stop)
        bundle = os.path.join(self.tmp, "push-ca-%s.pem" % realm_ca)
        with open(bundle, "w") as out:
            for d in (reg.host, reg.realm_host):
                ca = os.path.join(reg.cert_dir, d, "ca.crt")
                if os.path.exists(ca):
                    with open(ca) as f:
                        out.write(f.read())
        img = small_image("realm-" + realm_ca)
        mi.push(mi.RegistryClient(reg.host, "https", reg.username, reg.password, bundle), "tok/app", "v1", img)
        return reg, img, "%s/tok/app:v1" % reg.host

    def test_realm_under_the_registrys_ca(self):
        reg, img, ref = self.start("registry")
        self.assertFalse(os.path.exists(os.path.join(reg.cert_dir, reg.realm_host)))
        n = reg.issuer.token_count()
        self.pull_ok(ref, "--cert-dir", reg.cert_dir)
        self.assertStored([l.digest for l in img.layers])
        self.assertGreater(reg.issuer.token_count(), n)
        # With credentials too (Basic to the realm, over its TLS).
        self.pull_ok(ref, "--cert-dir", reg.cert_dir, "--username", reg.username, "--password-stdin",
                     input=reg.password + "\n")

    def test_realm_with_its_own_certs_d_entry(self):
        reg, img, ref = self.start("own")
        self.pull_ok(ref, "--cert-dir", reg.cert_dir)
        self.assertStored([l.digest for l in img.layers])

    def test_without_the_ca_the_realm_is_refused(self):
        reg, _, ref = self.start("registry")
        r = self.pull(ref)  # the CA is nowhere: the registry itself fails TLS
        self.assertFails(r)
        # The registry's CA alone does not cover a realm whose CA is its own.
        reg2, _, ref2 = self.start("own")
        only_registry = os.path.join(self.tmp, "only-registry")
        os.makedirs(os.path.join(only_registry, reg2.host))
        shutil.copy(os.path.join(reg2.cert_dir, reg2.host, "ca.crt"), os.path.join(only_registry, reg2.host))
        r = self.pull(ref2, "--cert-dir", only_registry)
        self.assertFails(r)
        self.assertIn("token request", r.stderr)

    @unittest.skipUnless(shutil.which("skopeo"), "skopeo needed")
    def test_skopeo_pulls_the_same_setup(self):
        reg, _, ref = self.start("registry")
        dest = os.path.join(self.tmp, "skopeo-layout")
        p = subprocess.run(["skopeo", "copy", "--src-cert-dir", os.path.join(reg.cert_dir, reg.host),
                            "docker://" + ref, "oci:" + dest + ":v1"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)


class TokenAuth(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("token")
        cls.img = small_image("token")
        mi.push(mi.RegistryClient(cls.reg.host, "http", cls.reg.username, cls.reg.password),
                "tok/app", "v1", cls.img)
        cls.ref = "http://%s/tok/app:v1" % cls.reg.host


    def test_anonymous_pull_gets_a_token(self):
        n = self.reg.issuer.token_count()
        self.pull_ok(self.ref)
        self.assertStored([l.digest for l in self.img.layers])
        self.assertGreater(self.reg.issuer.token_count(), n)
        scopes = [s for r in self.reg.issuer.request_log() for s in r["scope"]]
        self.assertIn("repository:tok/app:pull", scopes)

    def test_pull_with_credentials(self):
        self.pull_ok(self.ref, "--creds", "%s:%s" % (self.reg.username, self.reg.password))
        self.assertStored([l.digest for l in self.img.layers])
        self.assertIn(self.reg.username, [r["user"] for r in self.reg.issuer.request_log()])

    def test_wrong_password_at_token_endpoint(self):
        secret = "n0t-the-Token-pass"
        r = self.pull(self.ref, "--creds", "%s:%s" % (self.reg.username, secret))
        self.assertFails(r)
        self.assertNotIn(secret, r.stderr + r.stdout)
        self.assertTrue(any(w in r.stderr.lower() for w in AUTH_WORDS), r.stderr)
        self.assertEqual(blob_files(self.root), {})

    def test_access_token_only_issuer(self):
        with registry.start_registry("token", self.workdir("reg2"), access_token_only=True) as reg:
            mi.push(mi.RegistryClient(reg.host, "http", reg.username, reg.password), "tok/app", "v1", self.img)
            self.pull_ok("http://%s/tok/app:v1" % reg.host)
            self.assertStored([l.digest for l in self.img.layers])

    def test_token_expires_during_pull(self):
        # Tokens live 2 s; the pull is throttled to ~3 MiB/s over 5 layers of
        # 2 MiB, one at a time, so it needs >3 s and must fetch a new token
        # when the registry answers 401 (or before, from expires_in).
        with registry.start_registry("token", self.workdir("reg3"), token_lifetime=2) as reg:
            big = mi.build_image([mi.build_layer(random_mib=2, compression="none", seed=40 + i)
                                  for i in range(5)])
            mi.push(mi.RegistryClient(reg.host, "http", reg.username, reg.password), "tok/big", "v1", big)
            with fault_server.TcpThrottle(reg.host, 3 * 1024 * 1024) as proxy:
                n = reg.issuer.token_count()
                t0 = time.monotonic()
                self.pull_ok("http://%s/tok/big:v1" % proxy.host, "--jobs", "1",
                             "--creds", "%s:%s" % (reg.username, reg.password))
                took = time.monotonic() - t0
            self.assertGreater(took, 2.5, "pull too fast to outlive the token")
            self.assertGreaterEqual(reg.issuer.token_count() - n, 2, "token was not re-fetched")
            self.assertStored([l.digest for l in big.layers])


if __name__ == "__main__":
    unittest.main()
