#!/usr/bin/env python3
"""A tiny registry that serves one image (make_image.Image or Index) and
misbehaves on purpose, for the pull tests.

    with FaultServer(img, repo="demo/app", tag="v1", mode="drop", drop_after=1<<20) as fs:
        run(["lazyroot", "pull", fs.url_ref()])       # http://127.0.0.1:PORT/demo/app:v1
        fs.requests(kind="blob")                       # what happened

It speaks GET/HEAD /v2/, /v2/REPO/manifests/{tag|digest}, /v2/REPO/blobs/DIGEST
and honours `Range: bytes=A-[B]` with 206 + Content-Range (except in
ignore-range mode). Modes:

  None           behave
  redirect       the API port wants Basic auth (username/password); blob GETs
                 answer 307 to a second port (fs.blob_host) that serves the
                 bytes and records whether an Authorization header arrived
  retry-after    the first `retries` blob GETs get 429 + Retry-After: 1
  drop           the first GET of each blob larger than drop_after sends
                 drop_after body bytes, then the connection is closed
  ignore-range   like drop, but later Range requests get 200 + the full body
  wrong-digest   blob `tamper` (default: the first layer) is served with one
                 byte flipped
  huge-manifest  the tag resolves to a valid manifest padded past 4 MiB
  deep-manifest  the tag resolves to an image manifest (OCI Content-Type)
                 whose annotations hold `depth` nested arrays
  deep-index     the same, as an OCI index
  wide-manifest  the tag resolves to an image manifest holding `width`
                 numbers in one array (under 4 MiB)
  deep-config    the image's manifest names a config blob of `depth` nested
                 arrays (served with its true digest and size)
  deep-token     every API request without a Bearer token gets 401 with a
                 challenge whose realm (/token on this port) answers `depth`
                 nested arrays
  http-500       every manifest and blob request answers 500 (the ping works)
  scripted       fs.script(rec) is asked first for every request (rec: its
                 record, with kind "ping"|"manifest"|"blob"|"token" (path
                 /token) and digest filled in); it returns None (served as
                 usual) or (status, headers, body, length): a raw reply whose
                 Content-Length is `length` (None: len(body)); a body shorter
                 than that is cut there and the connection closed (as Go's
                 416 for a Range past a blob's end); or bytes: written as
                 they are (status line and all), then the connection closed
`root` (default "/v2") is where the API lives: "/custom/api" serves
/custom/api/, /custom/api/REPO/manifests/… (a registry behind a path, for
hosts.toml's override_path).
Any mode: `rate` (bytes/s) throttles blob bodies; it may be changed while the
server runs (fs.rate = None), as may `mode`.

Every request is recorded on arrival, in arrival order, and its record is
filled in while it is served (fs.requests()): dict time, port ("api"|"blob"),
method, path, kind ("ping"|"manifest"|"blob"), digest, range, auth (bool),
status, sent (body bytes actually written), headers (dict), query (the
raw query string); kind "token" for deep-token's
realm. Thread-safe: one lock guards the
log; handlers run on daemon threads.
"""

import argparse
import base64
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_image  # noqa: E402

MODES = (None, "redirect", "retry-after", "drop", "ignore-range", "wrong-digest", "huge-manifest",
         "deep-manifest", "deep-index", "wide-manifest", "deep-config", "deep-token", "http-500", "scripted")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def deep_json(depth, mediatype=None):
    """An object whose member "x" holds depth-1 nested arrays (depth levels
    in all): a JSON bomb of 2*depth bytes that a recursive parser follows to
    the end of its stack."""
    head = {"schemaVersion": 2}
    if mediatype:
        head["mediaType"] = mediatype
    prefix = json.dumps(head)[:-1] + ', "x": '
    return (prefix + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()
CHUNK = 64 * 1024


def canned_reply_server(test, reply, shutdown=False):
    """A listener on 127.0.0.1 that answers every connection with the bytes
    `reply` (after reading what came, up to 64 KiB) and closes it, shut down
    first when `shutdown` (a body cut short of its Content-Length). Closed at
    the test's cleanup. Returns ("http://127.0.0.1:PORT", the requests read)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    test.addCleanup(listener.close)
    asked = []

    def serve():
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            try:
                asked.append(c.recv(65536))
                c.sendall(reply)
                if shutdown:
                    c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return "http://127.0.0.1:%d" % listener.getsockname()[1], asked


class FaultServer:
    def __init__(self, thing, repo="demo/app", tag="v1", mode=None, username="faultuser",
                 password="fault-Pa55word", retries=2, drop_after=1 << 20, rate=None, tamper=None,
                 depth=200000, width=2000000, root="/v2", script=None):
        if mode not in MODES:
            raise ValueError("unknown fault mode %r" % (mode,))
        self.repo, self.tag, self.mode, self.root = repo, tag, mode, root.rstrip("/")
        self.username, self.password = username, password
        self.retries, self.drop_after, self.rate = retries, drop_after, rate
        self.script = script
        self.manifests = {}   # digest -> (bytes, media type)
        self.blobs = {}       # digest -> bytes
        images = [thing] if isinstance(thing, make_image.Image) else thing.images + thing.attestations
        for img in images:
            self.manifests[img.digest] = (img.manifest, img.media_type)
            for b in img.blobs():
                self.blobs[b.digest] = b.data
        self.manifests[thing.digest] = (thing.manifest, thing.media_type)
        self.top = thing.digest
        if mode == "huge-manifest":
            m = json.loads(thing.manifest)
            m.setdefault("annotations", {})["padding"] = "x" * (4 * 1024 * 1024 + 4096)
            data = json.dumps(m).encode()
            self.top = make_image.sha256(data)
            self.manifests[self.top] = (data, thing.media_type)
        if mode in ("deep-manifest", "deep-index"):
            mt = OCI_MANIFEST if mode == "deep-manifest" else OCI_INDEX
            data = deep_json(depth, mt)
            self.top = make_image.sha256(data)
            self.manifests[self.top] = (data, mt)
        if mode == "wide-manifest":
            data = (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST})[:-1] + ', "x": ['
                    + ",".join(["0"] * width) + "]}").encode()
            self.top = make_image.sha256(data)
            self.manifests[self.top] = (data, OCI_MANIFEST)
        if mode == "deep-config":
            config = deep_json(depth)
            m = json.loads(thing.manifest)
            m["config"]["digest"], m["config"]["size"] = make_image.sha256(config), len(config)
            data = json.dumps(m).encode()
            self.blobs[m["config"]["digest"]] = config
            self.top = make_image.sha256(data)
            self.manifests[self.top] = (data, thing.media_type)
        self.token_body = deep_json(depth) if mode == "deep-token" else None
        self.tamper = tamper or (images[0].layers[0].digest if images[0].layers else None)
        self._lock = threading.Lock()
        self._log = []
        self._blob_gets = 0      # for retry-after
        self._dropped = set()    # digests whose first GET was cut
        self._api = self._serve("api")
        self.port = self._api.server_address[1]
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        self._blob = self._serve("blob") if mode == "redirect" else None
        self.blob_host = "127.0.0.1:%d" % self._blob.server_address[1] if self._blob else None

    # -- public
    def url_ref(self, ref=None):
        """http://HOST/REPO:TAG (or @digest if ref starts with sha256:)."""
        ref = ref or self.tag
        sep = "@" if ref.startswith("sha256:") else ":"
        return "%s/%s%s%s" % (self.url, self.repo, sep, ref)

    def requests(self, kind=None, digest=None, port=None):
        with self._lock:
            return [r for r in self._log if (kind is None or r["kind"] == kind)
                    and (digest is None or r["digest"] == digest) and (port is None or r["port"] == port)]

    def bytes_sent(self, digest=None):
        """Blob body bytes written (both ports)."""
        return sum(r["sent"] for r in self.requests(kind="blob", digest=digest) if r["method"] == "GET")

    def clear_log(self):
        with self._lock:
            self._log.clear()

    def stop(self):
        for s in (self._api, self._blob):
            if s:
                s.shutdown()
                s.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- internals
    def _serve(self, port_name):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(port_name))
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def _record(self, rec):
        with self._lock:
            self._log.append(rec)

    def _handler(self, port_name):
        fs = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _send(self, status, body=b"", headers=(), head=False):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                self.rec["status"] = status
                self.rec["sent"] = 0 if head else len(body)

            def _error(self, status, code, msg, headers=()):
                body = json.dumps({"errors": [{"code": code, "message": msg}]}).encode()
                self._send(status, body, [("Content-Type", "application/json")] + list(headers))

            def do_HEAD(self):
                self._dispatch(head=True)

            def do_GET(self):
                self._dispatch(head=False)

            def _dispatch(self, head):
                path = self.path.split("?", 1)[0]
                auth = self.headers.get("Authorization")
                self.rec = {"time": time.time(), "port": port_name, "method": self.command,
                            "path": path, "kind": None, "digest": None,
                            "range": self.headers.get("Range"), "auth": auth is not None,
                            "status": None, "sent": 0, "headers": dict(self.headers),
                            "query": self.path.split("?", 1)[1] if "?" in self.path else ""}
                fs._record(self.rec)  # logged on arrival, filled in as it goes
                try:
                    if fs.mode == "scripted":
                        self._classify(path)
                        answer = fs.script(self.rec)
                        if isinstance(answer, bytes):
                            self.rec["status"] = int(answer.split(b" ", 2)[1])
                            self.wfile.write(answer)
                            self.rec["sent"] = len(answer)
                            self.close_connection = True
                            return
                        if answer is not None:
                            return self._raw(*answer, head=head)
                    if port_name == "blob":
                        return self._blob_port(path, head)
                    if fs.mode == "deep-token" and path == "/token":
                        self.rec["kind"] = "token"
                        return self._send(200, fs.token_body, [("Content-Type", "application/json")], head)
                    if fs.mode == "deep-token" and not (auth or "").lower().startswith("bearer "):
                        self.rec["kind"] = "ping" if path.rstrip("/") == "/v2" else None
                        challenge = 'Bearer realm="%s/token",service="fault-server"' % fs.url
                        return self._error(401, "UNAUTHORIZED", "authentication required",
                                           [("WWW-Authenticate", challenge)])
                    if fs.mode == "redirect" and not self._authorized(auth):
                        self.rec["kind"] = "ping" if path.rstrip("/") == "/v2" else None
                        return self._error(401, "UNAUTHORIZED", "authentication required",
                                           [("WWW-Authenticate", 'Basic realm="fault-server"')])
                    if path.rstrip("/") == fs.root:
                        self.rec["kind"] = "ping"
                        return self._send(200, b"{}", [("Content-Type", "application/json"),
                                                       ("Docker-Distribution-API-Version", "registry/2.0")],
                                          head)
                    prefix = "%s/%s/" % (fs.root, fs.repo)
                    if not path.startswith(prefix):
                        return self._error(404, "NAME_UNKNOWN", "repository name not known")
                    rest = path[len(prefix):]
                    if fs.mode == "http-500":
                        self.rec["kind"] = rest.split("/", 1)[0].rstrip("s")
                        return self._error(500, "UNKNOWN", "the mirror is broken")
                    if rest.startswith("manifests/"):
                        return self._manifest(rest[len("manifests/"):], head)
                    if rest.startswith("blobs/"):
                        return self._blob_api(rest[len("blobs/"):], head)
                    return self._error(404, "NOT_FOUND", "not found")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _classify(self, path):
                prefix = "%s/%s/" % (fs.root, fs.repo)
                if path == "/token":
                    self.rec["kind"] = "token"
                elif path.rstrip("/") == fs.root:
                    self.rec["kind"] = "ping"
                elif path.startswith(prefix):
                    kind, _, ref = path[len(prefix):].partition("/")
                    if kind in ("manifests", "blobs"):
                        self.rec["kind"] = kind.rstrip("s")
                        self.rec["digest"] = fs.top if kind == "manifests" and ref == fs.tag else ref

            def _raw(self, status, headers, body, length, head=False):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.rec["status"] = status
                if head:
                    return
                self.wfile.write(body)
                self.rec["sent"] = len(body)
                if length is not None and length > len(body):
                    self._cut()

            def _cut(self):
                """Ends the reply here: flushed, then the connection shut."""
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _authorized(self, auth):
                if not auth or not auth.lower().startswith("basic "):
                    return False
                want = "%s:%s" % (fs.username, fs.password)
                try:
                    return base64.b64decode(auth[6:].strip()).decode() == want
                except Exception:
                    return False

            def _manifest(self, ref, head):
                self.rec["kind"] = "manifest"
                digest = fs.top if ref == fs.tag else ref
                self.rec["digest"] = digest
                if digest not in fs.manifests:
                    return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                data, mt = fs.manifests[digest]
                self._send(200, data, [("Content-Type", mt), ("Docker-Content-Digest", digest)], head)

            def _blob_api(self, digest, head):
                self.rec["kind"] = "blob"
                self.rec["digest"] = digest
                if digest not in fs.blobs:
                    return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                if fs.mode == "retry-after" and not head:
                    with fs._lock:
                        fs._blob_gets += 1
                        n = fs._blob_gets
                    if n <= fs.retries:
                        return self._error(429, "TOOMANYREQUESTS", "slow down", [("Retry-After", "1")])
                if fs.mode == "redirect" and not head:
                    loc = "http://%s/data/%s?token=signed-url" % (fs.blob_host, digest)
                    return self._send(307, b"", [("Location", loc)])
                self._blob_body(digest, head)

            def _blob_port(self, path, head):
                self.rec["kind"] = "blob"
                m = re.match(r"^/data/(sha256:[0-9a-f]{64})$", path)
                if not m or m.group(1) not in fs.blobs:
                    return self._error(404, "BLOB_UNKNOWN", "blob unknown")
                self.rec["digest"] = m.group(1)
                self._blob_body(m.group(1), head)

            def _blob_body(self, digest, head):
                data = fs.blobs[digest]
                if fs.mode == "wrong-digest" and digest == fs.tamper:
                    data = bytearray(data)
                    data[len(data) // 2] ^= 0xFF
                    data = bytes(data)
                start, end, status = 0, len(data), 200
                rng = self.headers.get("Range")
                m = re.match(r"^bytes=(\d+)-(\d*)$", rng or "")
                if m and fs.mode != "ignore-range" and not head:
                    start = int(m.group(1))
                    end = min(int(m.group(2)) + 1, len(data)) if m.group(2) else len(data)
                    if start >= len(data):
                        return self._send(416, b"", [("Content-Range", "bytes */%d" % len(data))])
                    status = 206
                cut = None
                if fs.mode in ("drop", "ignore-range") and not head and len(data) > fs.drop_after:
                    with fs._lock:
                        if digest not in fs._dropped:
                            fs._dropped.add(digest)
                            cut = fs.drop_after
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start))
                if status == 206:
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, len(data)))
                self.end_headers()
                self.rec["status"] = status
                if head:
                    return
                limit = end if cut is None else min(end, start + cut)
                pos = start
                t0 = time.monotonic()
                while pos < limit:
                    n = min(CHUNK, limit - pos)
                    self.wfile.write(data[pos:pos + n])
                    pos += n
                    self.rec["sent"] = pos - start
                    rate = fs.rate
                    if rate:
                        ahead = (pos - start) / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
                if cut is not None:
                    self._cut()

        return Handler


class TcpThrottle:
    """A TCP proxy on 127.0.0.1 that forwards to `target` ("HOST:PORT") and
    limits the server->client direction to `rate` bytes/s in total (one token
    bucket shared by all connections), so
    a pull from a real registry takes as long as a test needs (e.g. to outlive
    a token). `rate` may be changed while it runs. `.host` is the proxy's
    address; stop() closes the listener and every connection it opened."""

    def __init__(self, target, rate):
        self.target = target
        self.rate = rate
        self._lsock = socket.socket()
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(64)
        self.host = "127.0.0.1:%d" % self._lsock.getsockname()[1]
        self._socks = []
        self._lock = threading.Lock()
        self._stopped = False
        self._tokens, self._last = 0.0, time.monotonic()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            h, p = self.target.rsplit(":", 1)
            try:
                u = socket.create_connection((h, int(p)))
            except OSError:
                c.close()
                continue
            with self._lock:
                if self._stopped:
                    c.close()
                    u.close()
                    return
                self._socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _take(self, n):
        """Token bucket with a 50 ms burst; sleeps off this thread's deficit."""
        rate = self.rate
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(rate * 0.05, self._tokens + (now - self._last) * rate) - n
            self._last = now
            deficit = -self._tokens
        if deficit > 0:
            time.sleep(deficit / rate)

    def _pump(self, src, dst, throttled):
        try:
            while True:
                data = src.recv(16 * 1024)
                if not data:
                    break
                if throttled:
                    self._take(len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        with self._lock:
            self._stopped = True
            socks, self._socks = self._socks, []
        self._lsock.close()
        for s in socks:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description="serve a generated image with a fault")
    ap.add_argument("--mode", choices=[m for m in MODES if m], default=None)
    ap.add_argument("--size-mib", type=float, default=4)
    ap.add_argument("--rate", type=float, help="bytes/s for blob bodies")
    a = ap.parse_args()
    img = make_image.build_image([make_image.build_layer(make_image.default_files()),
                                  make_image.build_layer(random_mib=a.size_mib, seed=1)])
    fs = FaultServer(img, mode=a.mode, rate=a.rate)
    print(fs.url_ref(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    fs.stop()


if __name__ == "__main__":
    main()
