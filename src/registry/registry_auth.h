// RegistryAuth: the credentials and bearer tokens for one registry, shared
// by every request of a pull. Learns the registry's challenge from the /v2/
// ping or a 401, fetches tokens (scope repository:NAME:pull) with Basic or
// identity-token credentials, caches them per scope until shortly before they
// expire, and re-fetches on a 401. Thread-safe (one mutex; token fetches are
// single-flight per scope because they happen under it).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "index/status.h"
#include "src/registry/credentials.h"
#include "src/registry/http_client.h"
#include "src/registry/www_authenticate.h"

namespace lazyroot {

class RegistryAuth {
 public:
  // registry: "host[:port]" as in the reference (for messages and realm checks).
  // tls_host_port: the "host:port" the registry's own requests go to; its
  // TLS settings (certs.d CAs, client certificate) also apply to the token
  // realm, wherever that is (HttpRequest::tls_also_for).
  RegistryAuth(std::string registry, std::optional<Credential> credential, bool plain_http,
               std::string tls_host_port = {});

  // Records the challenges of a 401 response (WWW-Authenticate headers) and
  // drops any cached token for scope. kUnauthorized when the response carries
  // no challenge we can answer.
  Status LearnChallenge(const HttpResponse& resp, const std::string& scope);

  // The Authorization header value for a request in scope, "" for anonymous.
  // Fetches a token with http when needed; a token answer over 1 MiB, or
  // not a JSON object within src/image/json_document.h's limits, is kCorruption
  // naming the registry and the token server.
  Result<std::string> Authorization(HttpClient& http, const std::string& scope);

  // Number of tokens fetched so far (tests and progress).
  int tokens_fetched() const;

 private:
  Result<std::string> FetchToken(HttpClient& http, const std::string& scope);
  Status CheckRealm(const std::string& realm) const;

  const std::string registry_;
  const std::optional<Credential> credential_;
  const bool plain_http_;
  const std::string tls_host_port_;
  mutable std::mutex mu_;
  std::optional<AuthChallenge> bearer_;  // guarded by mu_
  bool basic_ = false;                   // guarded by mu_
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point refresh_at;
  };
  std::map<std::string, Token> tokens_;  // scope -> token; guarded by mu_
  int tokens_fetched_ = 0;               // guarded by mu_
};

std::string Base64Encode(std::string_view in);

// Loopback, private, link-local and unspecified address literals (and
// "localhost"): a token realm there for a public registry is an SSRF attempt
// (ggcr #2243), so it is refused.
bool IsInternalAddress(const std::string& host);

}  // namespace lazyroot
