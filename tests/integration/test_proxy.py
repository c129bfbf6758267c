#!/usr/bin/env python3
"""Pulls through a real HTTP proxy: tinyproxy (Debian's tinyproxy-bin),
run as this test's child on a free 127.0.0.1 port with its own config and
log. Every request it forwards is in its log ("GET http://HOST:PORT/..."
for plain HTTP, "CONNECT HOST:PORT" for a TLS tunnel), so the test reads
which hops went through it:

- HTTP_PROXY (upper case, which libcurl alone ignores) and http_proxy: the
  registry's requests go through the proxy;
- HTTPS_PROXY: a TLS registry is reached through a CONNECT tunnel, its CA
  still checked (--cert-dir);
- a token realm on another port, and a blob redirect to another port, go
  through the proxy too;
- NO_PROXY / no_proxy naming the host, or a CIDR holding it, bypass it (the
  log does not grow); a proxy that is down makes the pull fail, which shows
  the proxy is really in the path."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
import registry  # noqa: E402
import token_issuer  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


class Tinyproxy:
    def __init__(self, workdir):
        self.port = token_issuer.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(workdir, "tinyproxy.log")
        conf = os.path.join(workdir, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nTimeout 60\nLogFile \"%s\"\nLogLevel Info\n"
                    "MaxClients 50\nAllow 127.0.0.1\nDisableViaHeader Yes\n" % (self.port, self.log_path))
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(workdir, "tinyproxy.out"), "wb"),
                                     stderr=subprocess.STDOUT, preexec_fn=registry._die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tinyproxy exited: " + self.log())
            try:
                import socket
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("tinyproxy not listening")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def requests(self, since=""):
        """The request lines tinyproxy logged after the text `since`."""
        text = self.log()[len(since):]
        return [l.split("): ", 1)[1] for l in text.splitlines() if "Request (file descriptor" in l and "): " in l]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def small_image(tag):
    return mi.build_image([mi.build_layer(mi.default_files(tag)), mi.build_layer(random_mib=0.1, seed=5)])


class Proxy(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxydir = tempfile.mkdtemp(prefix="lazyroot-proxy-")
        cls.addClassCleanup(shutil.rmtree, cls.proxydir, ignore_errors=True)
        cls.proxy = Tinyproxy(cls.proxydir)
        cls.addClassCleanup(cls.proxy.stop)
        cls.class_registry("plain")
        cls.img = small_image("proxy")
        mi.push(mi.RegistryClient(cls.reg.host, "http"), "px/app", "v1", cls.img)
        cls.ref = "http://%s/px/app:v1" % cls.reg.host

    def setUp(self):
        super().setUp()
        for k in ("NO_PROXY", "no_proxy"):
            self.env.pop(k, None)  # the harness bypasses every proxy by default

    def assertPulled(self, img):
        self.assertStored([img.config.digest] + [l.digest for l in img.layers])

    def test_upper_case_http_proxy(self):
        mark = self.proxy.log()
        self.pull_ok(self.ref, env={"HTTP_PROXY": self.proxy.url})
        self.assertPulled(self.img)
        seen = self.proxy.requests(mark)
        self.assertIn("GET http://%s/v2/ HTTP/1.1" % self.reg.host, seen)
        for layer in self.img.layers:
            self.assertTrue(any(("/blobs/" + layer.digest) in r for r in seen), seen)

    def test_lower_case_http_proxy(self):
        mark = self.proxy.log()
        self.pull_ok(self.ref, env={"http_proxy": self.proxy.url})
        self.assertTrue(any(self.reg.host in r for r in self.proxy.requests(mark)))

    def test_no_proxy_bypasses_it(self):
        # As libcurl reads it: host names (and their subdomains), addresses, CIDR.
        local_ref = "http://localhost:%d/px/app:v1" % self.reg.port
        for no_proxy, ref in (({"NO_PROXY": "127.0.0.1"}, self.ref), ({"no_proxy": "127.0.0.0/8"}, self.ref),
                              ({"NO_PROXY": "example.com, localhost"}, local_ref)):
            with self.subTest(no_proxy=no_proxy):
                shutil.rmtree(self.root, ignore_errors=True)
                mark = self.proxy.log()
                env = {"HTTP_PROXY": self.proxy.url, "http_proxy": self.proxy.url}
                env.update(no_proxy)
                self.pull_ok(ref, env=env)
                self.assertPulled(self.img)
                self.assertEqual(self.proxy.requests(mark), [])

    def test_dead_proxy_fails_the_pull(self):
        dead = "http://127.0.0.1:%d" % token_issuer.free_port()
        r = self.pull(self.ref, env={"HTTP_PROXY": dead})
        self.assertFails(r)

    def test_https_proxy_tunnels_to_a_tls_registry(self):
        with registry.start_registry("tls-basic", self.workdir("tls-reg")) as reg:
            img = small_image("tls-proxy")
            mi.push(mi.RegistryClient(reg.host, "https", reg.username, reg.password, reg.ca_cert), "px/tls", "v1",
                    img)
            mark = self.proxy.log()
            self.pull_ok("%s/px/tls:v1" % reg.host, "--cert-dir", reg.cert_dir,
                         "--creds", "%s:%s" % (reg.username, reg.password), env={"HTTPS_PROXY": self.proxy.url})
            self.assertPulled(img)
            self.assertIn("CONNECT %s HTTP/1.1" % reg.host, self.proxy.requests(mark))

    def test_token_realm_on_another_port_goes_through_it(self):
        with registry.start_registry("token", self.workdir("tok-reg")) as reg:
            img = small_image("tok-proxy")
            mi.push(mi.RegistryClient(reg.host, "http", reg.username, reg.password), "px/tok", "v1", img)
            mark = self.proxy.log()
            self.pull_ok("http://%s/px/tok:v1" % reg.host, "--creds", "%s:%s" % (reg.username, reg.password),
                         env={"HTTP_PROXY": self.proxy.url})
            self.assertPulled(img)
            seen = self.proxy.requests(mark)
            self.assertTrue(any(r.startswith("GET http://%s/" % reg.realm_host) for r in seen), seen)
            self.assertTrue(any(r.startswith("GET http://%s/v2/px/tok/" % reg.host) for r in seen), seen)

    def test_blob_redirect_to_another_port_goes_through_it(self):
        img = small_image("redirect-proxy")
        with fault_server.FaultServer(img, mode="redirect") as fs:
            mark = self.proxy.log()
            self.pull_ok(fs.url_ref(), "--creds", "%s:%s" % (fs.username, fs.password),
                         env={"HTTP_PROXY": self.proxy.url})
            self.assertPulled(img)
            seen = self.proxy.requests(mark)
            self.assertTrue(any(r.startswith("GET http://%s/" % fs.blob_host) for r in seen), seen)
            self.assertTrue(fs.requests(kind="blob", port="blob"))


if __name__ == "__main__":
    unittest.main()
