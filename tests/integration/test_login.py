#!/usr/bin/env python3
"""`lazyroot login` / `logout` against real registries: an HTTPS registry
with an htpasswd user (tls-basic) and a token-auth registry (token). The
credentials are checked first (a wrong password fails, naming the registry
and the user, and changes no file), then kept in the containers auth.json
podman uses ($XDG_RUNTIME_DIR/containers/auth.json, or --authfile), mode 0600
and atomic, other entries and keys kept; or handed to the docker-credential
helper docker's config.json names (`store` / `erase`, a script speaking the
docker protocol). A pull afterwards uses what login stored. The password is
never printed, and a terminal prompt does not echo it."""

import base64
import json
import os
import pty
import select
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
from pull_harness import LAZYROOT_BIN, PullTestCase  # noqa: E402


def small_image(tag):
    return mi.build_image([mi.build_layer(mi.default_files(tag))], config={"Cmd": ["/bin/hello"]})


HELPER = r'''#!/usr/bin/env python3
# docker-credential-NAME speaking the docker protocol, keeping its store in a JSON file.
import json, os, sys
db, log = %r, %r
action = sys.argv[1]
data = sys.stdin.read()
store = json.load(open(db)) if os.path.exists(db) else {}
open(log, "a").write(action + " " + (data.strip() if action != "store" else json.loads(data)["ServerURL"]) + "\n")
if action == "store":
    c = json.loads(data)
    store[c["ServerURL"]] = [c["Username"], c["Secret"]]
elif action == "get":
    if data.strip() not in store:
        print("credentials not found in native keychain"); sys.exit(1)
    u, s = store[data.strip()]
    print(json.dumps({"ServerURL": data.strip(), "Username": u, "Secret": s}))
elif action == "erase":
    if store.pop(data.strip(), None) is None:
        print("credentials not found in native keychain"); sys.exit(1)
else:
    sys.exit(2)
json.dump(store, open(db, "w"))
'''


class LoginCase(PullTestCase):
    def setUp(self):
        super().setUp()
        self.run_dir = self.workdir("run")
        os.chmod(self.run_dir, 0o700)
        self.env["XDG_RUNTIME_DIR"] = self.run_dir
        self.auth_json = os.path.join(self.run_dir, "containers", "auth.json")

    def login(self, *args, password=None, env=None):
        pw = self.reg.password if password is None else password
        return self.lazyroot("login", "--password-stdin", *args, root=False, input=pw + "\n", env=env)

    def read_auth(self, path=None):
        with open(path or self.auth_json) as f:
            return json.load(f)

    def entry_for(self, user, password):
        return {"auth": base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}

    def install_helper(self, name):
        bindir = self.workdir("bin")
        db, log = os.path.join(self.tmp, name + ".db"), os.path.join(self.tmp, name + ".log")
        path = os.path.join(bindir, "docker-credential-" + name)
        with open(path, "w") as f:
            f.write(HELPER % (db, log))
        os.chmod(path, 0o755)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "/usr/bin:/bin")
        return db, log

    def write_docker_config(self, cfg):
        os.makedirs(self.env["DOCKER_CONFIG"], exist_ok=True)
        with open(os.path.join(self.env["DOCKER_CONFIG"], "config.json"), "w") as f:
            json.dump(cfg, f)


class BasicAuth(LoginCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("tls-basic")
        cls.img = small_image("login")
        mi.push(mi.RegistryClient(cls.reg.host, "https", cls.reg.username, cls.reg.password, cls.reg.ca_cert),
                "private/app", "v1", cls.img)
        cls.ref = "%s/private/app:v1" % cls.reg.host

    def tls(self):
        return ("--cert-dir", self.reg.cert_dir)

    def test_login_writes_auth_json_then_pull_uses_it(self):
        # Before login the pull is refused: the credentials come from login alone.
        self.assertFails(self.pull(self.ref, *self.tls()))
        os.makedirs(os.path.dirname(self.auth_json))
        other = self.entry_for("someone", "else")
        with open(self.auth_json, "w") as f:
            json.dump({"auths": {"other.example:5000": other}, "x-unknown": {"kept": [1, 2]}}, f)
        r = self.login("-u", self.reg.username, *self.tls(), self.reg.host)
        self.assertOk(r, "lazyroot login")
        self.assertIn("Login Succeeded", r.stdout)
        self.assertNotIn(self.reg.password, r.stdout + r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(self.auth_json).st_mode), 0o600)
        self.assertEqual(self.read_auth(), {
            "auths": {"other.example:5000": other, self.reg.host: self.entry_for(self.reg.username, self.reg.password)},
            "x-unknown": {"kept": [1, 2]}})
        self.assertEqual([n for n in os.listdir(os.path.dirname(self.auth_json))], ["auth.json"], "temp file left")
        r = self.pull_ok(self.ref, *self.tls(), "-q")
        self.assertEqual(r.stdout.strip(), self.img.digest)

        # logout removes that entry alone; a second logout says there is none.
        r = self.lazyroot("logout", self.reg.host, root=False)
        self.assertOk(r, "lazyroot logout")
        self.assertEqual(self.read_auth(), {"auths": {"other.example:5000": other}, "x-unknown": {"kept": [1, 2]}})
        r = self.lazyroot("logout", self.reg.host, root=False)
        self.assertFails(r)
        self.assertIn("not logged in to " + self.reg.host, r.stderr)

    def test_already_logged_in(self):
        # No --username: what is stored is checked, as podman does.
        r = self.lazyroot("login", *self.tls(), self.reg.host, root=False, input="")
        self.assertFails(r, code=2)  # nothing stored, and no terminal to ask on
        self.assertOk(self.login("-u", self.reg.username, *self.tls(), self.reg.host))
        r = self.lazyroot("login", *self.tls(), self.reg.host, root=False, input="")
        self.assertOk(r, "lazyroot login (stored)")
        self.assertIn("Already logged in to " + self.reg.host, r.stdout)
        # Stored credentials that the registry refuses are an error naming it.
        with open(self.auth_json, "w") as f:
            json.dump({"auths": {self.reg.host: self.entry_for(self.reg.username, "Stale-s3cret")}}, f)
        r = self.lazyroot("login", *self.tls(), self.reg.host, root=False, input="")
        self.assertFails(r)
        self.assertIn(self.reg.host, r.stderr)
        self.assertNotIn("Stale-s3cret", r.stderr + r.stdout)

    def test_parent_dir_created_private(self):
        self.assertOk(self.login("-u", self.reg.username, *self.tls(), self.reg.host))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.auth_json)).st_mode), 0o700)

    def test_wrong_password_fails_and_changes_nothing(self):
        os.makedirs(os.path.dirname(self.auth_json))
        with open(self.auth_json, "w") as f:
            json.dump({"auths": {self.reg.host: self.entry_for("old", "old-pass")}}, f)
        before = os.stat(self.auth_json)
        with open(self.auth_json, "rb") as f:
            before_bytes = f.read()
        secret = "Wr0ng-Passw0rd-xyz"
        r = self.login("-u", self.reg.username, *self.tls(), self.reg.host, password=secret)
        self.assertFails(r)
        self.assertIn(self.reg.host, r.stderr)
        self.assertIn(self.reg.username, r.stderr)
        self.assertNotIn(secret, r.stderr + r.stdout)
        with open(self.auth_json, "rb") as f:
            self.assertEqual(f.read(), before_bytes)
        self.assertEqual(os.stat(self.auth_json).st_ino, before.st_ino)

    def test_authfile_and_registry_auth_file(self):
        path = os.path.join(self.tmp, "elsewhere", "my-auth.json")
        self.assertOk(self.login("-u", self.reg.username, "--authfile", path, *self.tls(), self.reg.host))
        self.assertEqual(self.read_auth(path)["auths"][self.reg.host],
                         self.entry_for(self.reg.username, self.reg.password))
        self.assertFalse(os.path.exists(self.auth_json))
        self.pull_ok(self.ref, *self.tls(), "--authfile", path)
        env_path = os.path.join(self.tmp, "env-auth.json")
        self.assertOk(self.login("-u", self.reg.username, *self.tls(), self.reg.host,
                                 env={"REGISTRY_AUTH_FILE": env_path}))
        self.assertIn(self.reg.host, self.read_auth(env_path)["auths"])

    def test_creds_store_helper_gets_store_and_erase(self):
        db, log = self.install_helper("lrtest")
        self.write_docker_config({"credsStore": "lrtest"})
        r = self.login("-u", self.reg.username, *self.tls(), self.reg.host)
        self.assertOk(r, "lazyroot login")
        self.assertIn("docker-credential-lrtest", r.stdout)
        self.assertFalse(os.path.exists(self.auth_json), "auth.json written although credsStore is set")
        with open(db) as f:
            self.assertEqual(json.load(f), {self.reg.host: [self.reg.username, self.reg.password]})
        self.pull_ok(self.ref, *self.tls())  # pull reads it back through `get`
        self.assertOk(self.lazyroot("logout", self.reg.host, root=False))
        with open(db) as f:
            self.assertEqual(json.load(f), {})
        with open(log) as f:
            actions = [l.split()[0] for l in f.read().splitlines()]
        self.assertEqual(actions, ["store", "get", "erase"])

    def test_cred_helpers_entry_and_authfile_override(self):
        db, _ = self.install_helper("perhost")
        self.write_docker_config({"credHelpers": {self.reg.host: "perhost"}})
        self.assertOk(self.login("-u", self.reg.username, *self.tls(), self.reg.host))
        self.assertTrue(os.path.exists(db))
        # A file the user names is where the login goes, whatever docker's config says.
        path = os.path.join(self.tmp, "named.json")
        self.assertOk(self.login("-u", self.reg.username, *self.tls(), "--authfile", path, self.reg.host))
        self.assertIn(self.reg.host, self.read_auth(path)["auths"])

    def test_namespaced_login(self):
        # podman's namespaced key: it applies to that namespace only.
        r = self.login("-u", self.reg.username, *self.tls(), self.reg.host + "/private")
        self.assertOk(r, "lazyroot login HOST/private")
        self.assertEqual(list(self.read_auth()["auths"]), [self.reg.host + "/private"])
        self.pull_ok(self.ref, *self.tls())
        # A helper keeps one login per registry: a namespace is refused, nothing stored.
        db, _ = self.install_helper("nsnope")
        self.write_docker_config({"credsStore": "nsnope"})
        os.unlink(self.auth_json)
        r = self.login("-u", self.reg.username, *self.tls(), self.reg.host + "/private")
        self.assertFails(r, code=2)
        self.assertIn("docker-credential-nsnope", r.stderr)
        self.assertFalse(os.path.exists(db))
        self.assertFalse(os.path.exists(self.auth_json))

    def test_password_never_on_the_command_line(self):
        r = self.lazyroot("login", "-u", "x", "--password", "secret", self.reg.host, root=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.lazyroot("login", "-u", self.reg.username, *self.tls(), self.reg.host, root=False, input="")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--password-stdin", r.stderr)

    def test_terminal_prompt_does_not_echo(self):
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(LAZYROOT_BIN, [LAZYROOT_BIN, "login", "-u", self.reg.username, *self.tls(), self.reg.host],
                          dict(self.env))
            finally:
                os._exit(127)
        out = b""
        sent = False
        while True:
            r, _, _ = select.select([fd], [], [], 30)
            if not r:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not sent and b"Password:" in out:
                os.write(fd, self.reg.password.encode() + b"\n")
                sent = True
        if not sent:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        self.assertTrue(sent, "no password prompt: %r" % out)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out.decode(errors="replace"))
        self.assertIn(b"Login Succeeded", out)
        self.assertNotIn(self.reg.password.encode(), out)


class TokenAuth(LoginCase):
    @classmethod
    def setUpClass(cls):
        cls.class_registry("token")
        cls.img = small_image("token-login")
        mi.push(mi.RegistryClient(cls.reg.host, "http", cls.reg.username, cls.reg.password),
                "tok/app", "v1", cls.img)

    def test_login_through_the_token_service(self):
        n = len(self.reg.issuer.request_log())
        r = self.login("-u", self.reg.username, "http://" + self.reg.host)
        self.assertOk(r, "lazyroot login")
        log = self.reg.issuer.request_log()[n:]
        self.assertIn((self.reg.username, 200), [(e["user"], e["status"]) for e in log])
        self.assertEqual(self.read_auth()["auths"][self.reg.host],
                         self.entry_for(self.reg.username, self.reg.password))
        n = len(self.reg.issuer.request_log())
        self.pull_ok("http://%s/tok/app:v1" % self.reg.host)
        # The pull's token request carried the stored credentials.
        self.assertIn(self.reg.username, [e["user"] for e in self.reg.issuer.request_log()[n:]])

    def test_wrong_password_at_the_token_service(self):
        secret = "n0t-the-Token-pass"
        r = self.login("-u", self.reg.username, "http://" + self.reg.host, password=secret)
        self.assertFails(r)
        self.assertIn(self.reg.host, r.stderr)
        self.assertIn(self.reg.username, r.stderr)
        self.assertNotIn(secret, r.stderr + r.stdout)
        self.assertFalse(os.path.exists(self.auth_json))


if __name__ == "__main__":
    unittest.main()
