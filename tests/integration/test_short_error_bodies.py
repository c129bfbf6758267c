#!/usr/bin/env python3
"""A hostile registry whose error replies stop short of their Content-Length
(the fault server's `scripted` mode). Since f5e3550 such a reply (non-2xx
status, body cut) is taken as whole rather than as a transport error: Go's
registry answers a Range past a blob's end with a 416 whose text is shorter
than the length it declares. These attacks check what that must not change:

- a 416 at every offset (with no Content-Range, or one lying about the
  total), from the first request or after a partial: the pull fails naming
  the blob and HTTP 416, in a bounded number of requests, without the
  backed-off retries of a transport error;
- a 416 then a 200 with other bytes: "digest mismatch", nothing stored;
- a proxy's 407 cut short is named as a 407;
- a status line in a chunked 200's trailer is not taken as the status;
- a 2xx body cut short is still resumed with Range and verified (wrong bytes
  after the resume are caught and downloaded again from 0);
- 429/503 cut short are still retried (bounded), a 3xx cut short is still
  followed (and a loop of them ends), a 401 cut short (with or without a
  challenge, and a token realm answering cut short) fails at once;
- the text of an error body reaches stderr with no escape sequence, and an
  error body larger than the cap is refused.

Every failed pull leaves the store as it was and `lazyroot fsck` clean."""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import fault_server  # noqa: E402
import make_image as mi  # noqa: E402
from pull_harness import PullTestCase, blob_files, store_listing  # noqa: E402

KiB = 1024
CUT = 256 * KiB


def short(status, text, headers=(), missing=1000):
    """A reply whose body is `text` but whose Content-Length says `missing`
    bytes more (the connection is closed after the text)."""
    body = text.encode()
    return (status, list(headers), body, len(body) + missing)


def error_json(code, message):
    return '{"errors":[{"code":"%s","message":"%s"}]}' % (code, message)


class Script:
    """A thread-safe script for fault_server's scripted mode: `rule(rec, n)`
    is called for each request of `kind` (and `digest` if given), n counting
    them from 1; other requests are served as usual."""

    def __init__(self, rule, kind="blob", digest=None):
        self.rule, self.kind, self.digest = rule, kind, digest
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self, rec):
        if rec["kind"] != self.kind or (self.digest and rec["digest"] != self.digest) or rec["method"] != "GET":
            return None
        with self.lock:
            self.n += 1
            n = self.n
        return self.rule(rec, n)


class ShortErrorBodies(PullTestCase):
    @classmethod
    def setUpClass(cls):
        cls.img = mi.build_image([mi.build_layer(mi.default_files("short")),
                                  mi.build_layer(random_mib=1, compression="gzip", seed=21)],
                                 config={"Cmd": ["/bin/hello"]})
        cls.big = cls.img.layers[1]
        cls.data = cls.big.data

    def server(self, rule, kind="blob", digest=None):
        return fault_server.FaultServer(self.img, mode="scripted", script=Script(rule, kind, digest))

    def big_gets(self, fs):
        return [r for r in fs.requests(kind="blob", digest=self.big.digest) if r["method"] == "GET"]

    def cut_reply(self, rec):
        """The blob's first GET: 200 of its whole length, cut after CUT bytes."""
        return (200, [("Content-Type", "application/octet-stream")], self.data[:CUT], len(self.data))

    def assertFailedClean(self, r, before, *wants):
        """Exit 1 naming each of `wants`, the store's blobs and images as
        `before`, and fsck clean."""
        self.assertFails(r)
        for w in wants:
            self.assertIn(w, r.stderr)
        self.assertNotIn("\x1b", r.stderr, "an escape sequence reached stderr")
        self.assertEqual(store_listing(self.root), before)
        f = self.lazyroot("fsck", timeout=300)
        self.assertOk(f, "fsck after a failed pull")
        self.assertIn(" 0 problems", f.stderr)

    def test_416_at_every_offset_fails_at_once_in_bounded_requests(self):
        total = len(self.data)
        ranges = {"none": [], "true": [("Content-Range", "bytes */%d" % total)],
                  "lying": [("Content-Range", "bytes */%d" % (total * 1000))],
                  "zero": [("Content-Range", "bytes */0")]}
        for first in ("cut", "416"):
            for name, cr in ranges.items():
                with self.subTest(first=first, content_range=name):
                    self.root = os.path.join(self.tmp, "root-%s-%s" % (first, name))

                    def rule(rec, n, cr=cr, first=first):
                        if n == 1 and first == "cut":
                            return self.cut_reply(rec)
                        return short(416, "invalid range\n", cr, missing=total)
                    with self.server(rule, digest=self.big.digest) as fs:
                        before = store_listing(self.root)
                        r = self.pull(fs.url_ref(), "--jobs", "1")
                        self.assertFailedClean(r, before, self.big.digest[7:19], "HTTP 416")
                        # No transport error was retried with backoff ("after 5 attempts").
                        self.assertNotIn("attempts", r.stderr)
                        got = [(bool(g["range"]), g["status"]) for g in self.big_gets(fs)]
                        # The cut is resumed; its 416 restarts from 0; that
                        # 416, with no byte, ends the pull (no round of
                        # resumes that would each ask twice again).
                        want = [(False, 200), (True, 416), (False, 416)] if first == "cut" else [(False, 416)]
                        self.assertEqual(got, want)
                        self.assertNotIn(self.big.digest, blob_files(self.root))

    def test_416_then_other_bytes_from_zero_is_a_digest_mismatch(self):
        other = bytes(b ^ 0x5A for b in self.data)

        def rule(rec, n):
            if n == 1:
                return self.cut_reply(rec)
            if rec["range"]:
                return short(416, "invalid range\n", [("Content-Range", "bytes */%d" % len(self.data))],
                             missing=len(self.data))
            return (200, [], other, None)
        with self.server(rule, digest=self.big.digest) as fs:
            before = store_listing(self.root)
            r = self.pull(fs.url_ref(), "--jobs", "1")
            self.assertFailedClean(r, before, self.big.digest[7:19], "digest mismatch")
            gets = self.big_gets(fs)
            self.assertEqual([bool(g["range"]) for g in gets[:3]], [False, True, False], gets)
            self.assertEqual(gets[1]["status"], 416)
        with fault_server.FaultServer(self.img) as good:
            self.pull_ok(good.url_ref(), "-q")
        self.assertStored([self.big.digest])

    def test_a_cut_2xx_is_still_resumed_and_a_wrong_resume_is_caught(self):
        bad = bytearray(self.data)
        bad[CUT + 1000] ^= 0xFF

        def rule(rec, n):
            if n == 1:
                return self.cut_reply(rec)
            if n == 2:  # the resume: 206 of tampered bytes
                start = int(rec["range"].split("=")[1].rstrip("-"))
                return (206, [("Content-Range", "bytes %d-%d/%d" % (start, len(bad) - 1, len(bad)))],
                        bytes(bad[start:]), None)
            return None  # the download again from 0: the true bytes
        with self.server(rule, digest=self.big.digest) as fs:
            self.pull_ok(fs.url_ref(), "--jobs", "1")
            gets = self.big_gets(fs)
            self.assertEqual([bool(g["range"]) for g in gets], [False, True, False], gets)
            self.assertEqual([g["status"] for g in gets], [200, 206, 200])
        self.assertStored([self.big.digest, self.img.config.digest])

    def test_a_status_line_in_a_chunked_replys_trailer_is_no_new_status(self):
        """A chunked 200 whose bytes the pull has taken, then a trailer line
        that reads as a status line ("HTTP/1.1 500 …", a 307, a 401): the
        reply is a 200 that ended whole and short ("got N of M bytes"), in
        one request. Were the trailer's status believed, the HTTP client would
        retry (or follow, or authenticate) and hand the next reply's bytes
        to the sink after the first reply's ("more than the … bytes")."""
        half = self.data[:CUT]
        # Each line has a colon: libcurl takes it as a trailer field.
        for line in (b"HTTP/1.1 500 Internal: error", b"HTTP/1.1 307 Moved: x\r\nLocation: /elsewhere",
                     b"HTTP/1.1 401 No: x\r\nWWW-Authenticate: Basic realm=\"r\""):
            with self.subTest(trailer=line.split(b"\r")[0].decode()):
                self.root = os.path.join(self.tmp, "root-trailer-%s" % line[9:12].decode())

                def rule(rec, n, line=line):
                    return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(half) +
                            half + b"\r\n0\r\n" + line + b"\r\n\r\n")
                with self.server(rule, digest=self.big.digest) as fs:
                    before = store_listing(self.root)
                    r = self.pull(fs.url_ref(), "--jobs", "1", "--creds", "u:p")
                    self.assertFailedClean(r, before, self.big.digest[7:19],
                                           "size mismatch: got %d of %d bytes" % (CUT, len(self.data)))
                    self.assertEqual(len(self.big_gets(fs)), 1, self.big_gets(fs))
                    self.assertEqual([q for q in fs.requests() if q["path"] == "/elsewhere"], [])

    def test_a_cut_429_or_503_is_still_retried_and_bounded(self):
        for status in (429, 503):
            with self.subTest(status=status, then="served"):
                self.root = os.path.join(self.tmp, "root-%d-served" % status)

                def rule(rec, n, status=status):
                    if n <= 3:
                        return short(status, error_json("TOOMANYREQUESTS", "slow"), [("Retry-After", "0")])
                    return None
                with self.server(rule, digest=self.big.digest) as fs:
                    self.pull_ok(fs.url_ref(), "--jobs", "1")
                    self.assertEqual([g["status"] for g in self.big_gets(fs)], [status] * 3 + [200])
                self.assertStored([self.big.digest])
            with self.subTest(status=status, then="always"):
                self.root = os.path.join(self.tmp, "root-%d-always" % status)
                with self.server(lambda rec, n, status=status: short(status, "busy", [("Retry-After", "0")]),
                                 digest=self.big.digest) as fs:
                    before = store_listing(self.root)
                    r = self.pull(fs.url_ref(), "--jobs", "1")
                    self.assertFailedClean(r, before, self.big.digest[7:19], "HTTP %d" % status)
                    # The HTTP client's 5 tries, each after the Retry-After
                    # (capped at 30 s), and no more: a round of them for each of
                    # the pull's 6 resumes held a pull 6 x 4 x 30 s = 12 min.
                    self.assertEqual(len(self.big_gets(fs)), 5)

    def test_a_cut_redirect_is_followed_and_a_loop_of_them_ends(self):
        def rule(rec, n):
            if "hop" in rec["query"]:
                return None
            loc = "%s/v2/%s/blobs/%s?hop=1" % (self.server_url, "demo/app", rec["digest"])
            return short(307, "<a href=\"%s\">Temporary Redirect</a>" % loc, [("Location", loc)])
        fs = self.server(rule, digest=self.big.digest)
        with fs:
            self.server_url = fs.url
            self.pull_ok(fs.url_ref(), "--jobs", "1")
            self.assertEqual([(g["status"], "hop" in g["query"]) for g in self.big_gets(fs)],
                             [(307, False), (200, True)])
        self.assertStored([self.big.digest])

        self.root = os.path.join(self.tmp, "root-loop")
        with self.server(lambda rec, n: short(302, "Found", [("Location", rec["path"])]),
                         digest=self.big.digest) as fs:
            before = store_listing(self.root)
            r = self.pull(fs.url_ref(), "--jobs", "1")
            self.assertFailedClean(r, before, self.big.digest[7:19], "redirects")
            self.assertLessEqual(len(self.big_gets(fs)), 6 * 11)

    def test_a_cut_401_fails_at_once(self):
        basic = [("WWW-Authenticate", 'Basic realm="r"')]
        no_challenge = "unauthorized, and no supported challenge"
        no_creds = "authentication required (basic); no credentials found"
        cases = {
            "no challenge": ("ping", lambda rec, n: short(401, error_json("UNAUTHORIZED", "no")), no_challenge),
            "basic": ("ping", lambda rec, n: short(401, "no", basic), no_creds),
            "manifest": ("manifest", lambda rec, n: short(401, "no", basic), no_creds),
            "blob": ("blob", lambda rec, n: short(401, "no"), no_challenge),
        }
        for name, (kind, rule, want) in cases.items():
            with self.subTest(case=name):
                self.root = os.path.join(self.tmp, "root-401-" + name.replace(" ", "-"))
                with self.server(rule, kind=kind) as fs:
                    before = store_listing(self.root)
                    r = self.pull(fs.url_ref(), "--jobs", "1")
                    self.assertFailedClean(r, before, want)
                    self.assertNotIn("attempts", r.stderr)
                    self.assertLessEqual(len(fs.requests(kind=kind)), 12, fs.requests(kind=kind))

    def test_a_token_realm_answering_cut_short_fails_at_once(self):
        for status in (401, 403, 404, 500):
            with self.subTest(status=status):
                self.root = os.path.join(self.tmp, "root-token-%d" % status)
                url = {}

                def script(rec, status=status):
                    if rec["kind"] == "token":
                        return short(status, error_json("DENIED", "no token"))
                    if not (rec["headers"].get("Authorization") or "").startswith("Bearer "):
                        challenge = 'Bearer realm="%s/token",service="s"' % url["u"]
                        return short(401, error_json("UNAUTHORIZED", "auth"), [("WWW-Authenticate", challenge)])
                    return None
                with fault_server.FaultServer(self.img, mode="scripted", script=script) as fs:
                    url["u"] = fs.url
                    before = store_listing(self.root)
                    r = self.pull(fs.url_ref(), "--jobs", "1")
                    self.assertFailedClean(r, before, str(status))
                    tokens = fs.requests(kind="token")
                    self.assertTrue(tokens, "the realm was never asked")
                    # 500 is retried by the HTTP client (5 tries); the others not.
                    self.assertLessEqual(len(tokens), 5 if status == 500 else 2, tokens)

    def test_error_text_has_no_escapes_and_its_size_is_capped(self):
        evil = error_json("MANIFEST_UNKNOWN", "gone \\u001b[2J\\u001b]0;pwned\\u0007 \\u009b31m")
        cases = {
            "whole": (evil, 0),
            "cut": (evil, 5000),
            "cut inside": (evil[:40], 5000),
        }
        for name, (text, missing) in cases.items():
            with self.subTest(case=name):
                self.root = os.path.join(self.tmp, "root-text-" + name.replace(" ", "-"))
                with self.server(lambda rec, n: short(404, text, missing=missing) if missing else
                                 (404, [], text.encode(), None), kind="manifest") as fs:
                    before = store_listing(self.root)
                    r = self.pull(fs.url_ref())
                    self.assertFailedClean(r, before, "not found")
                    self.assertNotIn("\x07", r.stderr)
                    self.assertNotIn("\u009b", r.stderr)
        with self.subTest(case="larger than the cap"):
            self.root = os.path.join(self.tmp, "root-text-huge")
            big = "x" * (5 << 20)
            with self.server(lambda rec, n: short(404, big, missing=100 << 20), kind="manifest") as fs:
                before = store_listing(self.root)
                r = self.pull(fs.url_ref())
                self.assertFailedClean(r, before, "larger than %d bytes" % (4 << 20))
                self.assertLessEqual(len(fs.requests(kind="manifest")), 2)

    def test_a_proxys_407_cut_short_is_named(self):
        """A plain-HTTP proxy ($HTTP_PROXY) answering 407 with a body cut
        short: the pull names the 407 at once, as for a whole one, rather than
        "is this an OCI registry?" (or retrying a "partial file")."""
        proxy, asked = fault_server.canned_reply_server(
            self, b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                  b"Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 500\r\n\r\ndenied", shutdown=True)
        before = store_listing(self.root)
        # A registry address nothing answers on: only the proxy is reached.
        r = self.pull("http://192.0.2.1:5000/short/app:v1", env={"HTTP_PROXY": proxy, "NO_PROXY": ""}, timeout=60)
        self.assertFailedClean(r, before, "HTTP 407 Proxy Authentication Required")
        self.assertNotIn("attempts", r.stderr)
        self.assertNotIn("is this an OCI registry", r.stderr)
        self.assertEqual(len(asked), 1, asked)


if __name__ == "__main__":
    unittest.main(verbosity=2)
