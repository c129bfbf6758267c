#include "src/registry/credentials.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace lazyroot {
namespace {

// Every secret in these fixtures contains this marker, so one search proves
// no error message leaks one.
constexpr const char* kSecretMarker = "s3cret";

TEST(NormalizeAuthKey, Vectors) {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"https://index.docker.io/v1/", "index.docker.io"},
      {"http://h:5000/v2", "h:5000"},
      {"h:5000", "h:5000"},
      {"ghcr.io", "ghcr.io"},
      {"https://ghcr.io", "ghcr.io"},
      {"https://GHCR.io/v2/", "ghcr.io"},
      {"registry.example.com/path/to/repo", "registry.example.com"},
      {"http://[::1]:5000/", "[::1]:5000"},
      {"", ""},
  };
  for (const Case& c : cases) EXPECT_EQ(NormalizeAuthKey(c.in), c.out) << c.in;
}

// A temp dir holding config.json and a bin/ of fake helpers put first on PATH.
class Credentials : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lazyroot-creds-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    bin_ = dir_ + "/bin";
    ASSERT_EQ(mkdir(bin_.c_str(), 0755), 0);
    const char* path = std::getenv("PATH");
    old_path_ = path ? path : "";
    setenv("PATH", (bin_ + ":" + old_path_).c_str(), 1);
    options_.docker_config_dir = dir_;

    // Echoes the URL it got into a file, and answers with the URL in the username.
    Helper("good", R"(read -r url; printf '%s' "$url" > ")" + dir_ + R"(/good.url"
printf '{"ServerURL":"%s","Username":"user-%s","Secret":"s3cret-helper"}' "$url" "$url")");
    Helper("token", R"(read -r url; printf '{"ServerURL":"%s","Username":"<token>","Secret":"s3cret-refresh"}' "$url")");
    Helper("missing", R"(echo "credentials not found in native keychain"; exit 1)");
    Helper("broken", R"(echo "boom: s3cret-broken"; echo "more s3cret" >&2; exit 3)");
    Helper("garbage", R"(echo "not json s3cret-garbage")");
    Helper("empty", R"(echo '{"ServerURL":"","Username":"","Secret":""}')");
    Helper("huge", R"(head -c 2000000 /dev/zero | tr '\0' 'a')");
    Helper("signalled", R"(kill -9 $$)");
    Helper("wrongtype", R"(echo '{"Username":1,"Secret":"s3cret-x"}')");
    Helper("noread", R"(printf '{"Username":"u","Secret":"s3cret-noread"}')");
    // 200,000 nested arrays (200 KB, under the output cap): must be refused
    // without exhausting the stack.
    Helper("deep", R"(printf '{"Username":"s3cret-deep","Secret":'; head -c 200000 /dev/zero | tr '\0' '[')");
  }

  void TearDown() override {
    setenv("PATH", old_path_.c_str(), 1);
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  void Helper(const std::string& name, const std::string& body) {
    std::string path = bin_ + "/docker-credential-" + name;
    std::ofstream(path) << "#!/bin/bash\n[ \"$1\" = get ] || exit 99\n" << body << "\n";
    ASSERT_EQ(chmod(path.c_str(), 0755), 0);
  }

  void Config(const std::string& json) { std::ofstream(dir_ + "/config.json") << json; }

  Result<std::optional<Credential>> Lookup(const std::string& registry) {
    return LookupCredential(registry, options_);
  }

  std::string ReadFile(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_, bin_, old_path_;
  CredentialOptions options_;
};

std::string Repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// base64("alice:s3cret-pw") and base64("bob:s3cret:with:colons").
constexpr const char* kAlice = "YWxpY2U6czNjcmV0LXB3";
constexpr const char* kBob = "Ym9iOnMzY3JldDp3aXRoOmNvbG9ucw==";

TEST_F(Credentials, NoConfigIsAnonymous) {
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value());
}

TEST_F(Credentials, ExplicitCredentialWinsWithoutReadingConfig) {
  Config("{not json");
  options_.explicit_credential = Credential{"me", "s3cret-flag", false, ""};
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->username, "me");
  EXPECT_EQ((*r)->secret, "s3cret-flag");
}

TEST_F(Credentials, AuthsBase64SplitsAtFirstColon) {
  Config(std::string(R"({"auths":{"ghcr.io":{"auth":")") + kAlice + R"("},"quay.io":{"auth":")" + kBob + R"("}}})");
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->username, "alice");
  EXPECT_EQ((*r)->secret, "s3cret-pw");
  EXPECT_FALSE((*r)->identity_token);

  r = Lookup("quay.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->username, "bob");
  EXPECT_EQ((*r)->secret, "s3cret:with:colons");

  r = Lookup("other.io");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST_F(Credentials, AuthsFieldsAndTokens) {
  Config(R"({"auths":{
    "a.io":{"username":"u","password":"s3cret-pw"},
    "b.io":{"auth":"dTpzM2NyZXQtcHc=","identitytoken":"s3cret-refresh"},
    "c.io":{"registrytoken":"s3cret-bearer"},
    "d.io":{},
    "e.io":{"auth":"","email":"x@y"}
  }})");
  Result<std::optional<Credential>> r = Lookup("a.io");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->username, "u");
  EXPECT_EQ((*r)->secret, "s3cret-pw");

  r = Lookup("b.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->username, "u");
  EXPECT_EQ((*r)->secret, "s3cret-refresh");
  EXPECT_TRUE((*r)->identity_token);

  r = Lookup("c.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->registry_token, "s3cret-bearer");

  for (const char* empty : {"d.io", "e.io"}) {
    r = Lookup(empty);
    ASSERT_TRUE(r.ok()) << empty;
    EXPECT_FALSE(r->has_value()) << empty;
  }
}

TEST_F(Credentials, AuthsUrlKeysAreNormalised) {
  Config(std::string(R"({"auths":{"https://registry.example.com:5000/v2/":{"auth":")") + kAlice +
         R"("},"http://Plain.Example.com/":{"auth":")" + kBob + R"("}}})");
  Result<std::optional<Credential>> r = Lookup("registry.example.com:5000");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->username, "alice");
  r = Lookup("plain.example.com");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->username, "bob");
  // The port is part of the host.
  r = Lookup("registry.example.com");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST_F(Credentials, DockerHubKeys) {
  for (const std::string key :
       {"https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io", "https://docker.io"}) {
    SCOPED_TRACE(key);
    Config(R"({"auths":{")" + key + R"(":{"auth":")" + kAlice + R"("}}})");
    for (const char* registry : {"docker.io", "registry-1.docker.io", "index.docker.io"}) {
      Result<std::optional<Credential>> r = Lookup(registry);
      ASSERT_TRUE(r.ok() && r->has_value()) << registry;
      EXPECT_EQ((*r)->username, "alice");
    }
    Result<std::optional<Credential>> r = Lookup("ghcr.io");
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
  }
  // The legacy v1 key wins over the others when both exist.
  Config(std::string(R"({"auths":{"docker.io":{"auth":")") + kBob + R"("},"https://index.docker.io/v1/":{"auth":")" +
         kAlice + R"("}}})");
  Result<std::optional<Credential>> r = Lookup("docker.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->username, "alice");
}

TEST_F(Credentials, OrderCredHelpersThenCredsStoreThenAuths) {
  const std::string auths = std::string(R"("auths":{"ghcr.io":{"auth":")") + kAlice + R"("}})";
  // credHelpers[host] beats credsStore and auths.
  Config(R"({"credHelpers":{"ghcr.io":"good"},"credsStore":"token",)" + auths + "}");
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->username, "user-ghcr.io");
  EXPECT_EQ((*r)->secret, "s3cret-helper");
  EXPECT_EQ(ReadFile("good.url"), "ghcr.io");

  // A credHelpers entry for another host does not apply: credsStore does.
  Config(R"({"credHelpers":{"quay.io":"broken"},"credsStore":"token",)" + auths + "}");
  r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_TRUE((*r)->identity_token);
  EXPECT_EQ((*r)->username, "");
  EXPECT_EQ((*r)->secret, "s3cret-refresh");

  // Without helpers, auths.
  Config("{" + auths + "}");
  r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->username, "alice");

  // An empty credsStore is no store.
  Config(R"({"credsStore":"",)" + auths + "}");
  r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->username, "alice");
}

TEST_F(Credentials, HelperServerUrlIsTheHostOrDockerHubsV1Key) {
  Config(R"({"credsStore":"good"})");
  Result<std::optional<Credential>> r = Lookup("127.0.0.1:5000");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ(ReadFile("good.url"), "127.0.0.1:5000");
  r = Lookup("docker.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ(ReadFile("good.url"), "https://index.docker.io/v1/");
  EXPECT_EQ((*r)->username, "user-https://index.docker.io/v1/");

  // credHelpers keyed by Docker Hub's v1 URL apply to docker.io.
  Config(R"({"credHelpers":{"https://index.docker.io/v1/":"token"}})");
  r = Lookup("docker.io");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_TRUE((*r)->identity_token);
}

TEST_F(Credentials, HelperNotFoundMeansAnonymousWithoutFallback) {
  // docker/cli nativeStore: "not found" yields empty credentials, and auths
  // is not consulted.
  Config(std::string(R"({"credsStore":"missing","auths":{"ghcr.io":{"auth":")") + kAlice + R"("}}})");
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value());

  Config(R"({"credsStore":"empty"})");
  r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value());
}

TEST_F(Credentials, FailingHelperIsAnErrorNeverAFallback) {
  struct Case {
    std::string helper, message;
  };
  const std::vector<Case> cases = {
      {"broken", "credential helper docker-credential-broken for registry ghcr.io failed (exit status 3)"},
      {"garbage", "credential helper docker-credential-garbage for registry ghcr.io: output is not valid JSON"},
      {"huge", "output larger than 1048576 bytes"},
      {"signalled", "killed by signal 9"},
      {"wrongtype", "Username and Secret must be strings"},
      {"absent", "docker-credential-absent not found on PATH"},
      {"deep", "credential helper docker-credential-deep for registry ghcr.io: output: JSON nested deeper than 64 levels"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.helper);
    Config(R"({"credHelpers":{"ghcr.io":")" + c.helper + R"("},"auths":{"ghcr.io":{"auth":")" + kAlice + R"("}}})");
    Result<std::optional<Credential>> r = Lookup("ghcr.io");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthorized);
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find(kSecretMarker), std::string::npos) << r.status().message();
  }
}

TEST_F(Credentials, HelperThatDoesNotReadStdinStillWorks) {
  Config(R"({"credsStore":"noread"})");
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->secret, "s3cret-noread");
}

// A helper that answers and exits but leaves a background process holding
// its stdout (an agent it started) has answered: its exit ends the wait, not
// the timeout (which used to report "no answer" after the full 30 s).
TEST_F(Credentials, HelperWhoseChildKeepsStdoutOpenHasAnswered) {
  Helper("daemon", R"(sleep 600 & echo $! > ")" + dir_ + R"(/daemon.pid"
printf '{"Username":"u","Secret":"s3cret-daemon"}')");
  Config(R"({"credsStore":"daemon"})");
  options_.helper_timeout_ms = 60'000;  // before the fix: "no answer within 60 s"
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  // The background sleep is ours to end (it holds nothing of the test's).
  const std::string pid = ReadFile("daemon.pid");
  if (!pid.empty()) kill(static_cast<pid_t>(std::stol(pid)), SIGKILL);
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->secret, "s3cret-daemon");
}

// An auth file the user names (--authfile, $REGISTRY_AUTH_FILE) is the only
// one read, as in containers/image (getAuthFilePaths): without an entry
// there, the pull is anonymous - the XDG config file and docker's
// config.json, with its credsStore helper, are not consulted.
TEST_F(Credentials, NamedAuthFileIsTheOnlyOneRead) {
  const char* saved_xdg = std::getenv("XDG_CONFIG_HOME");
  const std::string old_xdg = saved_xdg ? saved_xdg : "";
  const char* saved_run = std::getenv("XDG_RUNTIME_DIR");
  const std::string old_run = saved_run ? saved_run : "";
  setenv("XDG_CONFIG_HOME", (dir_ + "/xdg").c_str(), 1);
  unsetenv("XDG_RUNTIME_DIR");
  unsetenv("REGISTRY_AUTH_FILE");
  ASSERT_EQ(mkdir((dir_ + "/xdg").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir_ + "/xdg/containers").c_str(), 0755), 0);
  std::ofstream(dir_ + "/xdg/containers/auth.json") << R"({"auths":{"ghcr.io":{"auth":")" << kAlice << R"("}}})";
  Config(R"({"credsStore":"good","auths":{"ghcr.io":{"auth":")" + std::string(kBob) + R"("}}})");
  std::ofstream(dir_ + "/given.json") << R"({"auths":{"quay.io":{"auth":")" << kAlice << R"("}}})";

  // Without a named file the chain finds the XDG config file's entry.
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->secret, "s3cret-pw");

  options_.authfile = dir_ + "/given.json";
  EXPECT_EQ(ContainersAuthFiles(options_), std::vector<std::string>{dir_ + "/given.json"});
  r = Lookup("ghcr.io");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value()) << "read another file than --authfile";
  EXPECT_TRUE(ReadFile("good.url").empty()) << "ran docker's credsStore helper";

  options_.authfile.clear();
  setenv("REGISTRY_AUTH_FILE", (dir_ + "/given.json").c_str(), 1);
  r = Lookup("ghcr.io");
  unsetenv("REGISTRY_AUTH_FILE");
  if (saved_xdg)
    setenv("XDG_CONFIG_HOME", old_xdg.c_str(), 1);
  else
    unsetenv("XDG_CONFIG_HOME");
  if (saved_run) setenv("XDG_RUNTIME_DIR", old_run.c_str(), 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value()) << "read another file than $REGISTRY_AUTH_FILE";
}

TEST_F(Credentials, HelperNameWithSlashIsRejected) {
  Config(R"({"credsStore":"../../bin/sh"})");
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnauthorized);
}

TEST_F(Credentials, MalformedConfigNamesTheFileAndNoSecret) {
  const std::string file = dir_ + "/config.json";
  struct Case {
    std::string json, message;
  };
  const std::vector<Case> cases = {
      {R"({"auths":{"ghcr.io":{"auth":"s3cret-not-base64!"}})", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"auths":[]})", "auths: want an object"},
      {R"({"auths":{"ghcr.io":"s3cret"}})", "auths[\"ghcr.io\"]: want an object"},
      {R"({"auths":{"ghcr.io":{"auth":"s3cret-not-base64!"}}})", "auths[\"ghcr.io\"].auth: not valid base64"},
      {R"({"auths":{"ghcr.io":{"auth":"czNjcmV0LW5vLWNvbG9u"}}})", "want base64 of \"user:password\""},
      {R"({"auths":{"ghcr.io":{"auth":"OnMzY3JldA=="}}})", "want base64 of \"user:password\""},
      {R"({"auths":{"ghcr.io":{"password":5}}})", "auths[\"ghcr.io\"].password: want a string"},
      {R"({"credHelpers":{"ghcr.io":7}})", "credHelpers[\"ghcr.io\"]: want a string"},
      {R"({"credHelpers":"x"})", "credHelpers: want an object"},
      {R"({"credsStore":{}})", "credsStore: want a string"},
      {R"({"auths":{"ghcr.io":{"auth":"s3cret"},"x":)" + std::string(200000, '[') + std::string(200000, ']') + "}}",
       "JSON nested deeper than 64 levels at offset"},
      {Repeat(R"({"a":)", 200000), "JSON nested deeper than 64 levels at offset"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    Config(c.json);
    Result<std::optional<Credential>> r = Lookup("ghcr.io");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(file), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find(kSecretMarker), std::string::npos) << r.status().message();
  }
}

TEST_F(Credentials, ConfigDirFromEnvironment) {
  Config(std::string(R"({"auths":{"ghcr.io":{"auth":")") + kAlice + R"("}}})");
  options_.docker_config_dir.clear();
  const char* old = std::getenv("DOCKER_CONFIG");
  std::string saved = old ? old : "";
  setenv("DOCKER_CONFIG", dir_.c_str(), 1);
  Result<std::optional<Credential>> r = Lookup("ghcr.io");
  if (old) {
    setenv("DOCKER_CONFIG", saved.c_str(), 1);
  } else {
    unsetenv("DOCKER_CONFIG");
  }
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().ToString();
  EXPECT_EQ((*r)->username, "alice");
}

}  // namespace
}  // namespace lazyroot
