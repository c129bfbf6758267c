#!/usr/bin/env python3
"""Hostile inputs to what issue 17 added (archives, login, registries.conf,
hosts.toml, auth files): each case is one an attacker controls, and each
must fail at once with a message naming the file at fault, never hang and
never write through it.

- A FIFO where a config file, an auth file or an archive belongs: nobody
  ever writes to it, so opening it for reading would block forever. Every
  command must refuse it as "not a regular file" (the subprocess timeout
  is the hang detector). A hosts.toml ca= or client= naming a FIFO is
  refused before curl opens it (curl's fopen() would block), with a
  listener there so that the TLS setup is reached.
- df while files come and go in the store (what a pull does in tmp/ under
  the same shared lock): a file that vanished between the listing and its
  stat is not an error; a store root that is a symlink (moved to another
  disk) is measured, not reported as 0 B.
- The C API's cancel flag already set when lazyroot_extract is called:
  it must cancel every time (a small image was written anyway in ~1 of 5
  calls, before the flag's watcher thread first looked).
- A hosts.toml header = { Authorization = … } (a static credential, as
  containerd users write it) reached the host a blob GET is redirected to:
  like the Authorization the client computes, and like Go's client under
  containerd, a credential header goes to the configured origin only;
  other headers follow the redirect.
- A proxy answering 407 (plain HTTP through HTTP_PROXY, or to the CONNECT
  of HTTPS_PROXY) is reported as the proxy wanting credentials, at once,
  not as "is this an OCI registry?" or 5 retries of "cannot reach".
- `lazyroot save` to a DEST inside the store (directly or through a
  symlink) is refused: an archive renamed over a blob corrupted the store.
- Names from a hostile archive (docker save RepoTags and Config, an OCI
  index.json's ref.name annotations) reach error messages without their
  control bytes (a terminal escape sequence) and cut short.
- lazyroot_pull's cancel flag set while the registry says nothing (it
  accepted the connection and never answers): the pull returns
  LAZYROOT_CANCELLED promptly, not after the HTTP timeouts and retries.
- An options struct whose `size` is smaller than any version's is refused:
  the fields past `size` were read anyway (here a copy was written)."""

import os
import socket
import subprocess
import sys
import base64
import io
import json
import tarfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from fault_server import FaultServer, canned_reply_server  # noqa: E402
from pull_harness import LAZYROOT_BIN, SOURCE_DIR, PullTestCase  # noqa: E402

# No registry listens here: a command that gets past its files fails fast.
DEAD = "127.0.0.1:9/attack/app:v1"
# Far above a refusal's milliseconds; a hang is only ever killed by it.
HANG = 20


class FifoInputs(PullTestCase):
    def fifo(self, name="fifo"):
        path = os.path.join(self.tmp, name)
        os.mkfifo(path)
        return path

    def assertRefused(self, r, path):
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(path, r.stderr)
        self.assertIn("not a regular file", r.stderr)

    def test_registries_conf_fifo(self):
        f = self.fifo()
        self.assertRefused(self.pull(DEAD, "--registries-conf", f, timeout=HANG), f)

    def test_hosts_toml_fifo(self):
        f = self.fifo()
        d = self.workdir("certs.d/127.0.0.1:9")
        os.symlink(f, os.path.join(d, "hosts.toml"))
        r = self.pull(DEAD, "--hosts-dir", os.path.join(self.tmp, "certs.d"), timeout=HANG)
        self.assertRefused(r, "hosts.toml")

    def test_authfile_fifo_pull(self):
        f = self.fifo()
        self.assertRefused(self.pull(DEAD, "--authfile", f, timeout=HANG), f)
        self.assertRefused(self.pull(DEAD, env={"REGISTRY_AUTH_FILE": f}, timeout=HANG), f)

    def test_docker_config_fifo_pull(self):
        f = self.fifo("config.json")
        d = os.path.dirname(f)
        self.assertRefused(self.pull(DEAD, env={"DOCKER_CONFIG": d}, timeout=HANG), f)

    def test_authfile_fifo_login(self):
        f = self.fifo()
        r = self.lazyroot("login", "--authfile", f, "--username", "u", "--password-stdin", "127.0.0.1:9",
                          input="secret\n", timeout=HANG)
        self.assertRefused(r, f)
        self.assertNotIn("secret", r.stderr + r.stdout)
        r = self.lazyroot("logout", "--authfile", f, "127.0.0.1:9", timeout=HANG)
        self.assertRefused(r, f)

    def test_hosts_toml_tls_files_fifo(self):
        f = self.fifo()
        # Connections complete in the backlog: curl gets as far as TLS.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.addCleanup(listener.close)
        host = "127.0.0.1:%d" % listener.getsockname()[1]
        for what, line in (("ca", 'ca = "%s"' % f), ("client", 'client = ["%s", "%s"]' % (f, f))):
            with self.subTest(what=what):
                d = self.workdir("certs-%s.d/%s" % (what, host))
                with open(os.path.join(d, "hosts.toml"), "w") as out:
                    out.write('server = "https://%s"\n%s\n' % (host, line))
                r = self.pull(host + "/attack/app:v1", "--hosts-dir", os.path.dirname(d), timeout=HANG)
                self.assertRefused(r, f)

    def test_archive_fifo(self):
        f = self.fifo()
        for transport in ("docker-archive:", "oci-archive:"):
            with self.subTest(transport=transport):
                self.assertRefused(self.pull(transport + f, timeout=HANG), f)



class DfWhileFilesVanish(PullTestCase):
    def test_df_of_symlinked_root(self):
        layout = os.path.join(self.tmp, "tiny")
        mi.write_oci_layout(layout, mi.build_image([mi.build_layer([{"path": "a", "content": "x"}])]), tag="v1")
        self.assertOk(self.pull("oci:%s:v1" % layout))
        link = os.path.join(self.tmp, "store-link")
        os.symlink(self.root, link)
        direct = self.lazyroot("df", "--format", "json")
        self.assertOk(direct)
        linked = self.lazyroot("--root", link, "df", "--format", "json", root=False)
        self.assertOk(linked)
        want, got = json.loads(direct.stdout), json.loads(linked.stdout)
        want.pop("root")
        got.pop("root")
        self.assertGreater(want["total"], 0)
        self.assertEqual(got, want)

    def test_df_during_churn(self):
        tmp = os.path.join(self.root, "tmp")
        self.assertOk(self.lazyroot("df"), "df of an empty store")
        os.makedirs(tmp, exist_ok=True)
        stop = threading.Event()

        def churn(k):
            i = 0
            while not stop.is_set():
                p = os.path.join(tmp, "churn-%d-%d.partial" % (k, i % 200))
                open(p, "w").close()
                os.unlink(p)
                i += 1

        threads = [threading.Thread(target=churn, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        failures = []
        try:
            # Before the fix about a quarter of these runs failed.
            for _ in range(60):
                r = self.lazyroot("df")
                if r.returncode != 0:
                    failures.append(r.stderr.strip())
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])


CANCELLED_EXTRACT = r"""
#include <lazyroot/lazyroot.h>
#include <stdio.h>
int main(int argc, char** argv) {
  lazyroot_store* s = NULL;
  lazyroot_error* err = NULL;
  if (argc != 4 || lazyroot_store_open(argv[1], &s, &err) != LAZYROOT_OK) return 3;
  volatile int cancel = 1;
  lazyroot_extract_options o;
  lazyroot_extract_options_init(&o);
  o.cancel = &cancel;
  lazyroot_status st = lazyroot_extract(s, argv[2], argv[3], &o, NULL, &err);
  printf("%d %s\n", (int)st, lazyroot_error_message(err));
  lazyroot_error_free(err);
  lazyroot_store_close(s);
  return 0;
}
"""

CANCELLED_PULL = r"""
#include <lazyroot/lazyroot.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static volatile int cancel = 0;
static void* later(void* arg) {
  (void)arg;
  usleep(500 * 1000);
  cancel = 1;
  return NULL;
}
int main(int argc, char** argv) {
  lazyroot_store* s = NULL;
  lazyroot_error* err = NULL;
  if (argc != 3 || lazyroot_store_open(argv[1], &s, &err) != LAZYROOT_OK) return 3;
  lazyroot_pull_options o;
  lazyroot_pull_options_init(&o);
  o.cancel = &cancel;
  pthread_t t;
  pthread_create(&t, NULL, later, NULL);
  lazyroot_status st = lazyroot_pull(s, argv[2], &o, NULL, &err);
  pthread_join(t, NULL);
  printf("%d %s\n", (int)st, lazyroot_error_message(err));
  lazyroot_error_free(err);
  lazyroot_store_close(s);
  return 0;
}
"""


def build_c(test, name, source):
    libdir = os.path.dirname(os.path.abspath(LAZYROOT_BIN))
    src = os.path.join(test.tmp, name + ".c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(test.tmp, name)
    subprocess.run(["cc", "-o", exe, src, "-pthread", "-I", os.path.join(SOURCE_DIR, "src", "include"), "-L", libdir,
                    "-llazyroot", "-Wl,-rpath," + libdir], check=True)
    return exe


class ApiCancelSilentRegistry(PullTestCase):
    def test_cancel_while_waiting(self):
        exe = build_c(self, "cancel_pull", CANCELLED_PULL)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # connections complete in the backlog; nothing is ever answered
        self.addCleanup(listener.close)
        ref = "http://127.0.0.1:%d/attack/app:v1" % listener.getsockname()[1]
        r = subprocess.run([exe, self.root, ref], capture_output=True, text=True, timeout=HANG, env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("8 "), r.stdout)

SHORT_OPTIONS = r"""
#include <lazyroot/lazyroot.h>
#include <stdio.h>
int main(int argc, char** argv) {
  lazyroot_store* s = NULL;
  lazyroot_error* err = NULL;
  if (argc != 4 || lazyroot_store_open(argv[1], &s, &err) != LAZYROOT_OK) return 3;
  lazyroot_extract_options o;
  lazyroot_extract_options_init(&o);
  o.copy = argv[3];
  o.size = 2 * sizeof(void*); /* says: no field past `copy` ... and not even all of it */
  lazyroot_status st = lazyroot_extract(s, argv[2], NULL, &o, NULL, &err);
  printf("%d %s\n", (int)st, lazyroot_error_message(err));
  lazyroot_error_free(err);
  lazyroot_store_close(s);
  return 0;
}
"""


class ApiShortOptions(PullTestCase):
    def test_refused(self):
        exe = build_c(self, "short", SHORT_OPTIONS)
        layout = os.path.join(self.tmp, "tiny")
        mi.write_oci_layout(layout, mi.build_image([mi.build_layer([{"path": "a", "content": "x"}])]), tag="v1")
        ref = "oci:%s:v1" % layout
        self.assertOk(self.pull(ref))
        target = os.path.join(self.tmp, "copy")
        r = subprocess.run([exe, self.root, ref, target], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("1 "), r.stdout)
        self.assertIn("options.size", r.stdout)
        self.assertFalse(os.path.exists(target))


class ApiCancelBeforeCall(PullTestCase):
    def test_preset_cancel_always_cancels(self):
        exe = build_c(self, "cancel", CANCELLED_EXTRACT)
        layout = os.path.join(self.tmp, "tiny")
        mi.write_oci_layout(layout, mi.build_image([mi.build_layer([{"path": "a", "content": "x"}])]), tag="v1")
        ref = "oci:%s:v1" % layout
        self.assertOk(self.pull(ref))
        for i in range(20):
            target = os.path.join(self.tmp, "out%d" % i)
            r = subprocess.run([exe, self.root, ref, target], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith("8 "), "run %d not cancelled: %s" % (i, r.stdout))
            self.assertFalse(os.path.exists(target), "run %d left %s" % (i, target))


class HostsTomlHeaderOnRedirect(PullTestCase):
    def test_credential_header_stays_with_its_origin(self):
        img = mi.build_image([mi.build_layer(random_mib=0.05, seed=7)])
        with FaultServer(img, mode="redirect") as fs:
            basic = base64.b64encode(("%s:%s" % (fs.username, fs.password)).encode()).decode()
            d = self.workdir("certs.d/" + fs.host)
            with open(os.path.join(d, "hosts.toml"), "w") as f:
                f.write('server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                        '  [host."http://%s".header]\n    Authorization = "Basic %s"\n    X-Trace = "t1"\n'
                        % (fs.host, fs.host, fs.host, basic))
            r = self.pull("%s/%s:%s" % (fs.host, fs.repo, fs.tag), "--hosts-dir", os.path.dirname(d))
            self.assertOk(r, "pull with a hosts.toml credential header")
            api = [q for q in fs.requests(kind="blob", port="api") if q["method"] == "GET"]
            moved = [q for q in fs.requests(kind="blob", port="blob") if q["method"] == "GET"]
            self.assertTrue(api and all(q["auth"] for q in api), api)
            self.assertTrue(moved, "no blob was redirected")
            for q in moved:
                self.assertFalse(q["auth"], "the credential header reached the redirect target %s" % fs.blob_host)
                self.assertEqual(q["headers"].get("X-Trace"), "t1")


class Proxy407(PullTestCase):
    def start_proxy(self):
        proxy, _ = canned_reply_server(self, b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                             b"Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n")
        return proxy

    def test_407_named(self):
        proxy = self.start_proxy()
        # A registry address nothing answers on: only the proxy is reached.
        for ref, var in (("http://192.0.2.1:5000/attack/app:v1", "HTTP_PROXY"),
                         ("192.0.2.1:5000/attack/app:v1", "HTTPS_PROXY")):
            with self.subTest(var=var):
                r = self.pull(ref, env={var: proxy, "NO_PROXY": ""}, timeout=HANG)
                self.assertFails(r)
                self.assertIn("HTTP 407 Proxy Authentication Required", r.stderr)
                self.assertNotIn("attempts", r.stderr)
                self.assertNotIn("is this an OCI registry", r.stderr)


class SaveIntoStore(PullTestCase):
    def test_refused(self):
        layout = os.path.join(self.tmp, "tiny")
        mi.write_oci_layout(layout, mi.build_image([mi.build_layer([{"path": "a", "content": "x"}])]), tag="v1")
        ref = "oci:%s:v1" % layout
        self.assertOk(self.pull(ref))
        blobs = os.path.join(self.root, "blobs", "sha256")
        victim = sorted(os.listdir(blobs))[0]
        def read(path):
            with open(path, "rb") as f:
                return f.read()

        before = read(os.path.join(blobs, victim))
        link = os.path.join(self.tmp, "to-blobs")
        os.symlink(blobs, link)
        for dest in ("oci-archive:%s/%s" % (blobs, victim), "docker-archive:%s/%s" % (link, victim),
                     "oci:%s/layout" % blobs, "oci:%s" % self.root):
            with self.subTest(dest=dest):
                r = self.lazyroot("save", ref, dest)
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn("inside the store", r.stderr)
        self.assertEqual(read(os.path.join(blobs, victim)), before)
        self.assertFalse(os.path.exists(os.path.join(blobs, "layout")))
        self.assertOk(self.lazyroot("fsck"), "fsck after the refused saves")
        self.assertOk(self.lazyroot("save", ref, "oci-archive:" + os.path.join(self.tmp, "ok.tar")), "save elsewhere")


ESC = "\x1b]0;owned\x07\x1b[2J"


def tar_of(members):
    """An uncompressed tar of {name: bytes}."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


class ArchiveTextInMessages(PullTestCase):
    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assertClean(self, r):
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("\x1b", r.stderr)
        self.assertNotIn("\x07", r.stderr)
        self.assertLess(len(r.stderr), 4096, r.stderr[:300])

    def test_docker_archive_repo_tags_and_config(self):
        many = ["evil%s:%d" % (ESC, i) for i in range(2000)]
        manifest = [{"Config": "c.json", "RepoTags": many, "Layers": []},
                    {"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}]
        path = self.write("two.tar", tar_of({"manifest.json": json.dumps(manifest).encode(), "c.json": b"{}"}))
        r = self.pull("docker-archive:" + path)
        self.assertClean(r)
        self.assertIn("?]0;owned", r.stderr)  # shown, without the escape byte
        config = "c%s.json" % ESC
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
        manifest = [{"Config": config, "RepoTags": [], "Layers": ["l.tar"]}]
        path = self.write("cfg.tar", tar_of({"manifest.json": json.dumps(manifest).encode(),
                                             config: cfg.encode(), "l.tar": tar_of({"a": b"x"})}))
        self.assertClean(self.pull("docker-archive:" + path))

    def test_oci_archive_ref_names(self):
        layout = os.path.join(self.tmp, "layout")
        mi.write_oci_layout(layout, mi.build_image([mi.build_layer([{"path": "a", "content": "x"}])]), tag="v1")
        with open(os.path.join(layout, "index.json")) as f:
            index = json.load(f)
        entry = index["manifests"][0]
        index["manifests"] = [dict(entry, annotations={"org.opencontainers.image.ref.name": "t%s%d" % (ESC, i)})
                              for i in range(3000)]
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump(index, f)
        self.assertClean(self.pull("oci:%s:nope" % layout))
        self.assertClean(self.pull("oci:%s" % layout))


if __name__ == "__main__":
    unittest.main()
