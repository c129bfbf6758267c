#!/usr/bin/env python3
"""Runs a real distribution registry (/usr/bin/docker-registry) for tests.

    with start_registry("plain", workdir) as reg:
        reg.host   # "127.0.0.1:PORT"
        reg.url    # "http://127.0.0.1:PORT" (https for tls-basic)

Modes:
  plain      http, anonymous
  tls-basic  https with a fresh CA (reg.ca_cert, inside reg.cert_dir laid out
             as certs.d: CERT_DIR/HOST:PORT/ca.crt) and an htpasswd (bcrypt) user
             reg.username / reg.password
  token      http, distribution token auth; a TokenIssuer (token_issuer.py)
             runs on a thread; reg.username / reg.password are the issuer's
             account, reg.issuer the TokenIssuer (request counters),
             token_lifetime= sets expires_in
  tls-token  token auth with the registry and its token realm both on https,
             on two ports, with certificates of one fresh CA that is only in
             the registry's certs.d entry (reg.cert_dir/HOST:PORT/ca.crt), as
             Harbor and GitLab are set up; realm_ca="own" gives the realm a
             second CA instead, in its own certs.d entry (reg.realm_host)

client_ca=True (tls-basic mode) also requires a client certificate from a
second fresh CA (distribution's http.tls.clientcas): reg.client_cert and
reg.client_key are a pair it accepts.

proxy_remoteurl="http://HOST:PORT" (plain mode) makes it a pull-through
cache of that registry (distribution's `proxy: remoteurl:`), as used for a
registry mirror.

Storage is workdir/data (delete enabled), the registry log (incl. access log)
is workdir/registry.log; `blob_gets()` parses it. Readiness is detected by
polling /v2/; stop() sends SIGTERM, then SIGKILL, to the PID it started.

CLI: python3 registry.py start --mode plain --dir D   prints the host and
stays in the foreground until killed.
"""

import argparse
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import token_issuer  # noqa: E402

REGISTRY_BIN = os.environ.get("LAZYROOT_REGISTRY_BIN", "/usr/bin/docker-registry")
MODES = ("plain", "tls-basic", "token", "tls-token")


def _die_with_parent():
    """Runs in the child before exec: if the test process dies (even by
    SIGKILL from a CTest timeout), the kernel sends the registry SIGTERM."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RegistryError(RuntimeError):
    pass


class Registry:
    def __init__(self, mode, workdir, token_lifetime=300, access_token_only=False, realm_ca="registry",
                 proxy_remoteurl=None, client_ca=False):
        if mode not in MODES:
            raise ValueError("unknown registry mode %r (want one of %s)" % (mode, ", ".join(MODES)))
        self.mode = mode
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = token_issuer.free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.scheme = "https" if mode in ("tls-basic", "tls-token") else "http"
        self.url = "%s://%s" % (self.scheme, self.host)
        self.storage = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "registry.log")
        self.ca_cert = None
        self.cert_dir = None
        self.client_cert = self.client_key = None
        self.username = None
        self.password = None
        self.issuer = None
        self._proc = None
        self._log = None
        auth = ""
        tls = ""
        if mode == "tls-basic":
            self.username, self.password = "testuser", "pa55-W0rd-secret"
            ca_key, ca = token_issuer.make_ca("lazyroot registry CA")
            key, cert = token_issuer.issue_cert(ca_key, ca, "127.0.0.1", ["127.0.0.1", "localhost"])
            # certs.d layout (DIR/HOST:PORT/ca.crt) as --cert-dir / skopeo --src-cert-dir want it
            self.cert_dir = os.path.join(self.workdir, "certs.d")
            os.makedirs(os.path.join(self.cert_dir, self.host))
            self.ca_cert = token_issuer.write_pem(os.path.join(self.cert_dir, self.host, "ca.crt"), cert=ca)
            os.makedirs(os.path.join(self.workdir, "tls"))
            cert_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/server.crt"), cert=cert)
            key_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/server.key"), key=key)
            htpasswd = os.path.join(self.workdir, "htpasswd")
            out = subprocess.run(["htpasswd", "-Bbn", self.username, self.password],
                                 check=True, capture_output=True, text=True).stdout
            with open(htpasswd, "w") as f:
                f.write(out.strip() + "\n")
            tls = "  tls:\n    certificate: %s\n    key: %s\n" % (cert_path, key_path)
            if client_ca:
                cca_key, cca = token_issuer.make_ca("lazyroot client CA")
                ckey, ccert = token_issuer.issue_cert(cca_key, cca, "lazyroot client", server=False)
                cca_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/client-ca.crt"), cert=cca)
                self.client_cert = token_issuer.write_pem(os.path.join(self.workdir, "tls/client.cert"), cert=ccert)
                self.client_key = token_issuer.write_pem(os.path.join(self.workdir, "tls/client.key"), key=ckey)
                tls += "    clientcas:\n      - %s\n" % cca_path
            auth = "auth:\n  htpasswd:\n    realm: lazyroot-test\n    path: %s\n" % htpasswd
        if mode == "tls-token":
            ca_key, ca = token_issuer.make_ca("lazyroot registry CA")
            key, cert = token_issuer.issue_cert(ca_key, ca, "127.0.0.1", ["127.0.0.1", "localhost"])
            self.cert_dir = os.path.join(self.workdir, "certs.d")
            os.makedirs(os.path.join(self.cert_dir, self.host))
            self.ca_cert = token_issuer.write_pem(os.path.join(self.cert_dir, self.host, "ca.crt"), cert=ca)
            os.makedirs(os.path.join(self.workdir, "tls"))
            cert_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/server.crt"), cert=cert)
            key_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/server.key"), key=key)
            tls = "  tls:\n    certificate: %s\n    key: %s\n" % (cert_path, key_path)
            realm_key, realm_cert = ca_key, ca
            if realm_ca == "own":
                realm_key, realm_cert = token_issuer.make_ca("lazyroot realm CA")
            ikey, icert = token_issuer.issue_cert(realm_key, realm_cert, "127.0.0.1", ["127.0.0.1", "localhost"])
            icert_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/issuer.crt"), cert=icert)
            ikey_path = token_issuer.write_pem(os.path.join(self.workdir, "tls/issuer.key"), key=ikey)
        if mode in ("token", "tls-token"):
            self.issuer = token_issuer.TokenIssuer(os.path.join(self.workdir, "issuer"),
                                                   lifetime=token_lifetime,
                                                   access_token_only=access_token_only,
                                                   tls=(icert_path, ikey_path) if mode == "tls-token" else None)
            self.realm_host = "127.0.0.1:%d" % self.issuer.port
            if mode == "tls-token" and realm_ca == "own":
                os.makedirs(os.path.join(self.cert_dir, self.realm_host))
                token_issuer.write_pem(os.path.join(self.cert_dir, self.realm_host, "ca.crt"), cert=realm_cert)
            self.username, self.password = self.issuer.username, self.issuer.password
            auth = ("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n"
                    "    rootcertbundle: %s\n" % (self.issuer.realm, self.issuer.service,
                                                  self.issuer.issuer, self.issuer.root_cert_bundle))
        self.config_path = os.path.join(self.workdir, "config.yml")
        with open(self.config_path, "w") as f:
            f.write("version: 0.1\n"
                    "log:\n  level: info\n  accesslog:\n    disabled: false\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  delete:\n    enabled: true\n  redirect:\n    disable: true\n"
                    "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                    "http:\n  addr: %s\n  secret: lazyroot-test-secret\n%s%s"
                    % (self.storage, self.host, tls, auth))
            if proxy_remoteurl:
                f.write("proxy:\n  remoteurl: %s\n" % proxy_remoteurl)

    # -- lifecycle
    def start(self, timeout=20.0):
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        # The Debian package reads OTEL etc. from env; keep it minimal and quiet.
        self._proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config_path],
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env,
                                      preexec_fn=_die_with_parent)
        ctx = None
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_cert)
            if self.client_cert:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RegistryError("registry exited with %s; log tail:\n%s"
                                    % (self._proc.returncode, self.log_tail()))
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2, context=ctx).close()
                return self
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth modes: up and asking for credentials
                    return self
                last = e
            except (urllib.error.URLError, OSError) as e:
                last = e
            time.sleep(0.05)
        self.stop()
        raise RegistryError("registry on %s not ready after %.0fs (%s); log tail:\n%s"
                            % (self.host, timeout, last, self.log_tail()))

    def stop(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log:
            self._log.close()
            self._log = None
        if self.issuer:
            self.issuer.stop()
            self.issuer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- inspection
    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    def log_mark(self):
        """An offset into the log; pass to blob_gets() to see only later requests."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def blob_gets(self, since=0):
        """Digests of successful (2xx) blob GETs in the access log after offset `since`."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [m.group(1) for m in
                re.finditer(r'"GET /v2/\S+/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+" 2\d\d ', text)]

    def blob_path(self, digest):
        """Where the filesystem driver keeps a blob's bytes (for corruption tests)."""
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")


def start_registry(mode, workdir, token_lifetime=300, access_token_only=False, timeout=20.0, realm_ca="registry",
                   proxy_remoteurl=None, client_ca=False):
    """Starts a registry and waits until it answers /v2/. See module doc."""
    return Registry(mode, workdir, token_lifetime, access_token_only, realm_ca, proxy_remoteurl).start(timeout)


def main():
    ap = argparse.ArgumentParser(description="run a test registry on 127.0.0.1")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--mode", choices=MODES, default="plain")
    s.add_argument("--dir", required=True)
    s.add_argument("--token-lifetime", type=int, default=300)
    a = ap.parse_args()
    reg = start_registry(a.mode, a.dir, token_lifetime=a.token_lifetime)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(reg.host, flush=True)
    if reg.username:
        print("username %s password %s" % (reg.username, reg.password), file=sys.stderr)
    if reg.ca_cert:
        print("ca_cert %s" % reg.ca_cert, file=sys.stderr)
    try:
        while not stop.is_set() and reg._proc.poll() is None:
            stop.wait(0.5)
    finally:
        reg.stop()


if __name__ == "__main__":
    main()
