#!/usr/bin/env python3
"""A token server for the distribution token-auth spec, for tests only.

GET REALM?service=S&scope=repository:NAME:pull[,push] (optionally with Basic
auth) answers {"token", "access_token", "expires_in", "issued_at"}. The token
is an RS256 JWT whose header carries x5c = [signing cert]; the signing cert is
issued by a root CA whose PEM file is the registry's `rootcertbundle`
(distribution 2.8 verifies the x5c chain against it).

Anonymous requests get pull access; the configured user gets what it asks
for; a wrong password gets 401. The issuer counts requests so a test can see
that a client fetched a new token after the old one expired.

Also home of the small PKI helpers (make_ca, issue_cert) that registry.py uses
for its TLS server certificate.

Thread safety: TokenIssuer runs a ThreadingHTTPServer on a daemon thread;
`requests` is appended under a lock, read it with `request_log()`.
"""

import argparse
import base64
import datetime
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


# ---------------------------------------------------------------- PKI helpers

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn="lazyroot test CA"):
    """Returns (key, cert) of a fresh self-signed CA valid for a day."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue_cert(ca_key, ca_cert, cn, server_names=(), server=True):
    """Returns (key, cert) signed by the CA. server_names are DNS names or IP
    literals put into the SAN (IP literals as IP SANs)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if server:
        sans = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        b = (b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return key, b.sign(ca_key, hashes.SHA256())


def write_pem(path, key=None, cert=None):
    """Writes a key or a certificate as PEM; returns path."""
    with open(path, "wb") as f:
        if key is not None:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
        if cert is not None:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- JWT

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key, cert, claims):
    """RS256 JWT with x5c = [cert] in the header."""
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(sig)


def parse_scope(scope):
    """'repository:demo/x:pull,push' -> {"type","name","actions"}; None if malformed."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    return {"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")}


# ---------------------------------------------------------------- server

class TokenIssuer:
    """Token server on 127.0.0.1:port. Files (root CA PEM) live in workdir.

    username/password: the one account; anonymous gets pull only.
    lifetime: seconds a token is valid (expires_in). distribution accepts a
      token until exp + 60 s (its Leeway), so exp is set to now + lifetime -
      registry_leeway: the registry then really refuses it after `lifetime`.
    access_token_only: answer {"access_token"} without the "token" field.
    tls: (certificate, key) PEM paths: serve the realm over https.
    """

    def __init__(self, workdir, service="lazyroot-test-registry", issuer="lazyroot-test-issuer",
                 username="tokenuser", password="tokenpass-S3cret", lifetime=300,
                 access_token_only=False, port=None, registry_leeway=60, tls=None):
        self.workdir = workdir
        self.service = service
        self.issuer = issuer
        self.username = username
        self.password = password
        self.lifetime = lifetime
        self.access_token_only = access_token_only
        self.registry_leeway = registry_leeway
        os.makedirs(workdir, exist_ok=True)
        ca_key, ca_cert = make_ca("lazyroot token root CA")
        self._key, self._cert = issue_cert(ca_key, ca_cert, "lazyroot token signer", server=False)
        self.root_cert_bundle = write_pem(os.path.join(workdir, "token-root.pem"), cert=ca_cert)
        self._lock = threading.Lock()
        self._requests = []  # dicts: time, user, scope, status
        self._server = ThreadingHTTPServer(("127.0.0.1", port or 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        scheme = "http"
        if tls:  # (certificate PEM path, key PEM path): the realm is https
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.realm = "%s://127.0.0.1:%d/token" % (scheme, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def request_log(self):
        with self._lock:
            return list(self._requests)

    def token_count(self):
        """Number of tokens handed out (status 200)."""
        return sum(1 for r in self.request_log() if r["status"] == 200)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _record(self, **kw):
        with self._lock:
            self._requests.append(dict(time=time.time(), **kw))

    def _issue(self, user, scopes):
        now = int(time.time())
        access = []
        for s in scopes:
            p = parse_scope(s)
            if p is None:
                continue
            actions = p["actions"] if user else [a for a in p["actions"] if a == "pull"]
            access.append({"type": p["type"], "name": p["name"], "actions": actions})
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + self.lifetime - self.registry_leeway, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        token = sign_jwt(self._key, self._cert, claims)
        body = {"access_token": token, "expires_in": self.lifetime,
                "issued_at": datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ")}
        if not self.access_token_only:
            body["token"] = token
        return body

    def _handler_class(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _reply(self, status, body, extra=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query)
                scopes = []
                for s in q.get("scope", []):
                    scopes.extend(s.split(" "))
                if url.path != "/token":
                    issuer._record(user=None, scope=scopes, status=404)
                    return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.lower().startswith("basic "):
                    try:
                        u, _, p = base64.b64decode(auth[6:].strip()).decode().partition(":")
                    except Exception:
                        u, p = "", None
                    if u != issuer.username or p != issuer.password:
                        issuer._record(user=u, scope=scopes, status=401)
                        return self._reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                              "message": "bad credentials"}]},
                                           [("WWW-Authenticate", 'Basic realm="token"')])
                    user = u
                issuer._record(user=user, scope=scopes, status=200)
                self._reply(200, issuer._issue(user, scopes))

        return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="where the root CA PEM is written")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=int, default=300)
    ap.add_argument("--access-token-only", action="store_true")
    a = ap.parse_args()
    t = TokenIssuer(a.dir, port=a.port, lifetime=a.lifetime, access_token_only=a.access_token_only)
    print("realm %s" % t.realm)
    print("rootcertbundle %s" % t.root_cert_bundle)
    print("service %s issuer %s" % (t.service, t.issuer), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    t.stop()


if __name__ == "__main__":
    main()
