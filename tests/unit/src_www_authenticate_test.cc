#include "src/registry/www_authenticate.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace lazyroot {
namespace {

using Params = std::map<std::string, std::string>;

struct Want {
  std::string scheme;
  Params params;
  std::string token68 = "";
};

struct Case {
  std::string name;
  std::string header;
  bool ok;
  std::vector<Want> want;
};

// regclient internal/auth/auth_test.go TestParseAuthHeader, containerd
// core/remotes/docker/auth/parse_test.go, and our own edges.
const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      // regclient
      {"Bearer to auth.docker.io",
       R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:docker/docker:pull")",
       true,
       {{"bearer",
         {{"realm", "https://auth.docker.io/token"},
          {"service", "registry.docker.io"},
          {"scope", "repository:docker/docker:pull"}}}}},
      {"Basic to GitHub", R"(Basic realm="GitHub Package Registry")", true,
       {{"basic", {{"realm", "GitHub Package Registry"}}}}},
      {"Basic case insensitive type and key", R"(BaSiC ReAlM="Case insensitive key")", true,
       {{"basic", {{"realm", "Case insensitive key"}}}}},
      {"Basic unquoted realm", R"(Basic realm=unquoted)", true, {{"basic", {{"realm", "unquoted"}}}}},
      {"Basic unquoted token", R"(Basic realm=/)", true, {{"basic", {{"realm", "/"}}}}},
      {"Basic with charset", R"(Basic realm="Dev", charset="UTF-8")", true,
       {{"basic", {{"realm", "Dev"}, {"charset", "UTF-8"}}}}},
      {"Quoted auth type and key", R"("Basic" "realm"=/)", true, {{"basic", {{"realm", "/"}}}}},
      {"Multiple challenges",
       R"(Bearer realm="https://auth.docker.io/token", service="registry.docker.io", scope="repository:docker/docker:pull", Basic realm="GitHub Package Registry")",
       true,
       {{"bearer",
         {{"realm", "https://auth.docker.io/token"},
          {"service", "registry.docker.io"},
          {"scope", "repository:docker/docker:pull"}}},
        {"basic", {{"realm", "GitHub Package Registry"}}}}},
      {"Missing commas", R"(Basic realm="Dev" charset="UTF-8")", false, {}},
      {"Missing close quote", R"(Basic realm="GitHub Package Registry)", false, {}},
      {"Missing value after escape", R"(Basic realm="GitHub Package Registry\\)", false, {}},
      // containerd
      {"containerd SingleScope",
       R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:foo/bar:pull,push")",
       true,
       {{"bearer",
         {{"realm", "https://auth.docker.io/token"},
          {"service", "registry.docker.io"},
          {"scope", "repository:foo/bar:pull,push"}}}}},
      {"containerd MultipleScopes",
       R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:foo/bar:pull,push repository:foo/baz:pull repository:foo/foo:push")",
       true,
       {{"bearer",
         {{"realm", "https://auth.docker.io/token"},
          {"service", "registry.docker.io"},
          {"scope", "repository:foo/bar:pull,push repository:foo/baz:pull repository:foo/foo:push"}}}}},
      {"containerd empty value",
       R"(Bearer realm="https://auth.example.io/token",empty="",service="registry.example.io",scope="repository:library/hello-world:pull,push")",
       true,
       {{"bearer",
         {{"realm", "https://auth.example.io/token"},
          {"empty", ""},
          {"service", "registry.example.io"},
          {"scope", "repository:library/hello-world:pull,push"}}}}},
      // ours
      {"empty header", "", true, {}},
      {"scheme only", "Basic", true, {{"basic", {}}}},
      {"two bare schemes", "Negotiate, NTLM", true, {{"negotiate", {}}, {"ntlm", {}}}},
      {"escapes resolved", R"(Bearer realm="a\"b\\c\d")", true, {{"bearer", {{"realm", R"(a"b\cd)"}}}}},
      {"whitespace around equals and commas", "Bearer  realm = \"r\" ,\tservice=s ,, scope=\"x\"", true,
       {{"bearer", {{"realm", "r"}, {"service", "s"}, {"scope", "x"}}}}},
      {"basic then bearer", R"(Basic realm="b", Bearer realm="https://t/token",service=svc)", true,
       {{"basic", {{"realm", "b"}}}, {"bearer", {{"realm", "https://t/token"}, {"service", "svc"}}}}},
      {"relative realm", R"(Bearer realm="/token2",service="reg")", true,
       {{"bearer", {{"realm", "/token2"}, {"service", "reg"}}}}},
      {"token68", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", true, {{"basic", {}, "YWxhZGRpbjpvcGVuc2VzYW1l"}}},
      {"token68 with padding then another challenge", "Basic dXNlcjpwYXNzd29yZA==, Bearer realm=x", true,
       {{"basic", {}, "dXNlcjpwYXNzd29yZA=="}, {"bearer", {{"realm", "x"}}}}},
      {"duplicate key: the last wins", R"(Bearer realm="a", REALM="b")", true, {{"bearer", {{"realm", "b"}}}}},
      {"trailing comma", R"(Bearer realm="a",)", true, {{"bearer", {{"realm", "a"}}}}},
      {"dangling escape in quotes", "Bearer realm=\"abc\\", false, {}},
      {"dangling escape unquoted", "Bearer realm=abc\\", false, {}},
      {"bare word after a comma is a new scheme", R"(Bearer realm="a", service)", true,
       {{"bearer", {{"realm", "a"}}}, {"service", {}}}},
      {"missing equals", R"(Bearer realm "x")", false, {}},
      {"param without scheme", R"(="x")", false, {}},
      {"key without value then junk", R"(Bearer realm="a" "b")", false, {}},
  };
  return cases;
}

TEST(ParseWwwAuthenticate, Table) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Result<std::vector<AuthChallenge>> r = ParseWwwAuthenticate(c.header);
    if (!c.ok) {
      ASSERT_FALSE(r.ok()) << "parsed " << r->size() << " challenges";
      EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find("WWW-Authenticate"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->size(), c.want.size());
    for (size_t i = 0; i < c.want.size(); ++i) {
      EXPECT_EQ((*r)[i].scheme, c.want[i].scheme) << i;
      EXPECT_EQ((*r)[i].params, c.want[i].params) << i;
      EXPECT_EQ((*r)[i].token68, c.want[i].token68) << i;
    }
  }
}

TEST(ParseWwwAuthenticate, ErrorsNameTheDefect) {
  EXPECT_NE(ParseWwwAuthenticate(R"(Basic realm="x)").status().message().find("unclosed quoted string"),
            std::string::npos);
  EXPECT_NE(ParseWwwAuthenticate("Basic realm=\"x\\").status().message().find("dangling"), std::string::npos);
  EXPECT_NE(ParseWwwAuthenticate(R"(Basic realm="Dev" charset="UTF-8")").status().message().find("expected ','"),
            std::string::npos);
}

// The fuzz seeds of both projects, plus every prefix of them: no crash, and
// either a value or an error.
TEST(ParseWwwAuthenticate, PrefixesNeverCrash) {
  const std::vector<std::string> seeds = {
      R"(Bearer realm="https://example.com/token",service="example.com",scope="repository:foo/bar:pull,push")",
      R"(Basic realm="GitHub Package Registry")",
      R"(Bearer realm="a\"b", Basic dXNlcg==, "Q" "k"=v)",
  };
  for (const std::string& seed : seeds) {
    for (size_t n = 0; n <= seed.size(); ++n) {
      Result<std::vector<AuthChallenge>> r = ParseWwwAuthenticate(std::string_view(seed).substr(0, n));
      if (r.ok()) {
        for (const AuthChallenge& c : *r) EXPECT_FALSE(c.scheme.empty());
      }
    }
  }
}

}  // namespace
}  // namespace lazyroot
