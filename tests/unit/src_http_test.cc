// URL helpers, Retry-After parsing, realm address checks, base64 and the
// registry error body formatter: the pure parts of the registry client; and
// an exception thrown by a body sink, against a one-shot loopback server.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <new>
#include <stdexcept>
#include <thread>

#include "src/registry/http_client.h"
#include "src/registry/registry_auth.h"
#include "src/registry/registry_client.h"

namespace lazyroot {
namespace {

TEST(Url, OriginMakesDefaultPortsExplicit) {
  EXPECT_EQ(UrlOrigin("https://Registry.Example.com/v2/"), "https://registry.example.com:443");
  EXPECT_EQ(UrlOrigin("http://127.0.0.1:5000/v2/x"), "http://127.0.0.1:5000");
  EXPECT_EQ(UrlOrigin("http://h/x"), "http://h:80");
  // Same host, different port or scheme: different origins (Authorization is not forwarded).
  EXPECT_NE(UrlOrigin("http://h:5000/a"), UrlOrigin("http://h:5001/a"));
  EXPECT_NE(UrlOrigin("https://h/a"), UrlOrigin("http://h:443/a"));
  EXPECT_EQ(UrlOrigin("not a url"), "");
}

TEST(Url, HostPortForCertsD) {
  EXPECT_EQ(UrlHostPort("https://r.io/v2/"), "r.io");
  EXPECT_EQ(UrlHostPort("https://r.io:5000/v2/"), "r.io:5000");
}

TEST(Url, ResolveRelativeRedirects) {
  EXPECT_EQ(ResolveUrl("https://r.io/v2/x/blobs/sha256:a", "/blobs/abc?sig=1"), "https://r.io/blobs/abc?sig=1");
  EXPECT_EQ(ResolveUrl("https://r.io/v2/x/blobs/a", "https://cdn.io/b"), "https://cdn.io/b");
  EXPECT_EQ(ResolveUrl("https://r.io/v2/x/blobs/a", "b"), "https://r.io/v2/x/blobs/b");
}

TEST(Url, Encode) { EXPECT_EQ(UrlEncode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull"); }

TEST(RetryAfter, SecondsDatesAndGarbage) {
  EXPECT_EQ(ParseRetryAfter("3"), 3);
  EXPECT_EQ(ParseRetryAfter(""), -1);
  EXPECT_EQ(ParseRetryAfter("soon"), -1);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"), -1);  // in the past
  time_t future = std::time(nullptr) + 120;
  char buf[64];
  struct tm tm {};
  gmtime_r(&future, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  double d = ParseRetryAfter(buf);
  EXPECT_GT(d, 100);
  EXPECT_LE(d, 120);
}

TEST(RealmAddress, InternalLiterals) {
  for (const char* h : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
                        "0.0.0.0", "localhost", "[::1]", "::1", "fe80::1", "fd00::1"}) {
    EXPECT_TRUE(IsInternalAddress(h)) << h;
  }
  for (const char* h : {"8.8.8.8", "172.32.0.1", "auth.docker.io", "2001:db8::1", "192.169.0.1"}) {
    EXPECT_FALSE(IsInternalAddress(h)) << h;
  }
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("user:pa:ss"), "dXNlcjpwYTpzcw==");
}

TEST(RegistryError, FormatsDistributionErrors) {
  EXPECT_EQ(RegistryErrorText(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"),
            "MANIFEST_UNKNOWN: manifest unknown");
  EXPECT_EQ(RegistryErrorText("<html>"), "");
}

TEST(RegistryAuth, RefusesSsrfRealmForPublicRegistry) {
  RegistryAuth auth("registry.example.com", std::nullopt, false);
  HttpResponse resp;
  resp.status = 401;
  resp.headers.emplace("www-authenticate", R"(Bearer realm="https://169.254.169.254/token",service="x")");
  ASSERT_TRUE(auth.LearnChallenge(resp, "repository:a:pull").ok());
  HttpClient http(nullptr);
  auto authz = auth.Authorization(http, "repository:a:pull");
  ASSERT_FALSE(authz.ok());
  EXPECT_NE(authz.status().message().find("internal address"), std::string::npos);
}

TEST(RegistryAuth, RefusesPlainHttpRealmForTlsRegistry) {
  RegistryAuth auth("registry.example.com", std::nullopt, false);
  HttpResponse resp;
  resp.headers.emplace("www-authenticate", R"(Bearer realm="http://auth.example.com/token")");
  ASSERT_TRUE(auth.LearnChallenge(resp, "s").ok());
  HttpClient http(nullptr);
  auto authz = auth.Authorization(http, "s");
  ASSERT_FALSE(authz.ok());
  EXPECT_NE(authz.status().message().find("plain http"), std::string::npos);
}

TEST(RegistryAuth, BasicWithoutCredentialsIsAClearError) {
  RegistryAuth auth("r.io", std::nullopt, false);
  HttpResponse resp;
  resp.headers.emplace("www-authenticate", R"(Basic realm="r")");
  ASSERT_TRUE(auth.LearnChallenge(resp, "s").ok());
  HttpClient http(nullptr);
  auto authz = auth.Authorization(http, "s");
  ASSERT_FALSE(authz.ok());
  EXPECT_EQ(authz.status().code(), ErrorCode::kUnauthorized);
}

TEST(RegistryAuth, BasicHeaderNeverLeaksIntoErrors) {
  Credential c;
  c.username = "u";
  c.secret = "s3cret-pass";
  RegistryAuth auth("r.io", c, false);
  HttpResponse resp;
  resp.headers.emplace("www-authenticate", R"(Basic realm="r")");
  ASSERT_TRUE(auth.LearnChallenge(resp, "s").ok());
  HttpClient http(nullptr);
  auto authz = auth.Authorization(http, "s");
  ASSERT_TRUE(authz.ok());
  EXPECT_EQ(*authz, "Basic " + Base64Encode("u:s3cret-pass"));
  HttpResponse none;
  Status st = auth.LearnChallenge(none, "s");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().find("s3cret"), std::string::npos);
}

TEST(HttpClient, TransportErrorNamesTheUrl) {
  // A closed loopback port: a transport failure, named by URL (the body caps
  // are exercised against the fault server in test_pull_faults.py).
  HttpPolicy policy;
  policy.max_attempts = 1;
  policy.connect_timeout_s = 2;
  HttpClient http(nullptr, policy);
  HttpRequest req;
  req.url = "http://127.0.0.1:1/v2/";
  HttpResponse resp;
  Status st = http.Do(req, &resp);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kNetwork);
  EXPECT_NE(st.message().find("127.0.0.1:1"), std::string::npos);
}

// A loopback server answering one request with 200 and a 1 MiB body.
class OneShotServer {
 public:
  OneShotServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      (void)::recv(c, buf, sizeof buf, 0);  // the request (one small packet)
      const std::string body(1 << 20, 'x');
      const std::string out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\nConnection: close\r\n\r\n" + body;
      for (size_t at = 0; at < out.size();) {
        const ssize_t n = ::send(c, out.data() + at, out.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      ::close(c);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v2/x/blobs/sha256:00"; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// The sink runs inside curl's write callback (C code): what it throws (out
// of memory in a layer's consumer fed a hostile layer) must not unwind
// through curl, but end the transfer as the sink's error.
TEST(HttpClient, AnExceptionInTheSinkIsTheTransfersError) {
  for (int kind = 0; kind < 2; ++kind) {
    OneShotServer server;
    HttpPolicy policy;
    policy.max_attempts = 1;
    HttpClient http(nullptr, policy);
    HttpRequest req;
    req.url = server.url();
    HttpResponse resp;
    uint64_t got = 0;
    BodySink sink = [&](std::span<const uint8_t> bytes) -> Status {
      got += bytes.size();
      if (got > (64 << 10)) {
        if (kind == 0) throw std::bad_alloc();
        throw std::runtime_error("boom");
      }
      return Status::Ok();
    };
    Status st = Status::Ok();
    EXPECT_NO_THROW(st = http.Do(req, &resp, sink));
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), ErrorCode::kIoError) << st.message();
    EXPECT_NE(st.message().find(kind == 0 ? "out of memory" : "internal error: boom"), std::string::npos)
        << st.message();
  }
}

}  // namespace
}  // namespace lazyroot
