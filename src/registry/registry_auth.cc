#include "src/registry/registry_auth.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <rapidjson/document.h>

#include <algorithm>

#include "src/image/json_document.h"

namespace lazyroot {
namespace {

constexpr size_t kMaxTokenBody = 1 << 20;

}  // namespace

bool IsInternalAddress(const std::string& host) {
  if (host == "localhost") return true;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    uint32_t a = ntohl(v4.s_addr);
    return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
           (a >> 16) == (169u << 8 | 254) || a == 0;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    const uint8_t* b = v6.s6_addr;
    bool loop = std::all_of(b, b + 15, [](uint8_t x) { return x == 0; }) && (b[15] == 1 || b[15] == 0);
    return loop || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || (b[0] & 0xfe) == 0xfc;
  }
  return false;
}

namespace {

std::string HostOf(const std::string& host_port) {
  if (!host_port.empty() && host_port.front() == '[') {
    size_t e = host_port.find(']');
    return host_port.substr(0, e == std::string::npos ? host_port.size() : e + 1);
  }
  size_t c = host_port.rfind(':');
  return c == std::string::npos ? host_port : host_port.substr(0, c);
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

RegistryAuth::RegistryAuth(std::string registry, std::optional<Credential> credential, bool plain_http,
                           std::string tls_host_port)
    : registry_(std::move(registry)),
      credential_(std::move(credential)),
      plain_http_(plain_http),
      tls_host_port_(std::move(tls_host_port)) {}

int RegistryAuth::tokens_fetched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_fetched_;
}

Status RegistryAuth::LearnChallenge(const HttpResponse& resp, const std::string& scope) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.erase(scope);
  bool found = false;
  for (const std::string& value : resp.Headers("www-authenticate")) {
    auto parsed = ParseWwwAuthenticate(value);
    if (!parsed.ok()) return parsed.status().WithContext("registry " + registry_ + ": bad WWW-Authenticate header");
    for (const AuthChallenge& c : *parsed) {
      // Bearer is preferred over Basic (containerd's order).
      if (c.scheme == "bearer") {
        bearer_ = c;
        found = true;
      } else if (c.scheme == "basic") {
        basic_ = true;
        found = true;
      }
    }
  }
  if (!found) return Status::Unauthorized("registry " + registry_ + ": unauthorized, and no supported challenge");
  return Status::Ok();
}

Status RegistryAuth::CheckRealm(const std::string& realm) const {
  std::string origin = UrlOrigin(realm);
  if (origin.empty()) return Status::Unauthorized("registry " + registry_ + ": malformed token realm");
  if (!origin.starts_with("https://") && !(origin.starts_with("http://") && plain_http_)) {
    return Status::Unauthorized("registry " + registry_ + ": refusing token realm " + origin +
                                " (plain http for a TLS registry)");
  }
  std::string realm_host = HostOf(UrlHostPort(realm));
  if (IsInternalAddress(realm_host) && !IsInternalAddress(HostOf(registry_))) {
    return Status::Unauthorized("registry " + registry_ + ": refusing token realm on internal address " + realm_host);
  }
  return Status::Ok();
}

Result<std::string> RegistryAuth::FetchToken(HttpClient& http, const std::string& scope) {
  // REQUIRES: mu_ held, bearer_ set.
  const auto& params = bearer_->params;
  auto realm_it = params.find("realm");
  if (realm_it == params.end() || realm_it->second.empty()) {
    return Status::Unauthorized("registry " + registry_ + ": bearer challenge without realm");
  }
  const std::string& realm = realm_it->second;
  LAZYROOT_RETURN_IF_ERROR(CheckRealm(realm));
  std::string service;
  if (auto it = params.find("service"); it != params.end()) service = it->second;

  HttpRequest req;
  req.tls_also_for = tls_host_port_;
  if (credential_ && credential_->identity_token) {
    // OAuth2 refresh-token grant (docker login identity tokens).
    req.method = "POST";
    req.url = realm;
    req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    req.post_body = "grant_type=refresh_token&client_id=lazyroot&refresh_token=" + UrlEncode(credential_->secret) +
                    "&service=" + UrlEncode(service) + (scope.empty() ? "" : "&scope=" + UrlEncode(scope));
  } else {
    // No scope (login): a token that only proves the credentials, as docker login asks for.
    std::string query;
    if (!service.empty()) query = "service=" + UrlEncode(service);
    if (!scope.empty()) query += (query.empty() ? "" : "&") + ("scope=" + UrlEncode(scope));
    req.url = realm;
    if (!query.empty()) req.url += (realm.find('?') == std::string::npos ? "?" : "&") + query;
    if (credential_ && !credential_->username.empty()) {
      req.authorization = "Basic " + Base64Encode(credential_->username + ":" + credential_->secret);
    }
  }
  HttpResponse resp;
  Status st = http.Do(req, &resp);
  if (!st.ok()) return st.WithContext("registry " + registry_ + ": token request");
  if (resp.status == 401 || resp.status == 403) {
    return Status::Unauthorized("registry " + registry_ + ": token request refused (HTTP " +
                                std::to_string(resp.status) + "): check the credentials for " + registry_);
  }
  if (resp.status != 200) {
    return Status::Unauthorized("registry " + registry_ + ": token request failed with HTTP " +
                                std::to_string(resp.status));
  }
  LAZYROOT_ASSIGN_OR_RETURN(
      JsonDocument doc,
      ParseJsonDocument(resp.body, "registry " + registry_ + ": token response from " + UrlOrigin(req.url),
                        kMaxTokenBody));
  std::string token;
  for (const char* key : {"token", "access_token"}) {
    if (doc.HasMember(key) && doc[key].IsString() && doc[key].GetStringLength() > 0) {
      token = doc[key].GetString();
      break;
    }
  }
  if (token.empty()) return Status::Corruption("registry " + registry_ + ": token response has no token");
  // The spec's default lifetime is 60 s; refresh a little before expiry.
  int64_t expires_in = 60;
  if (doc.HasMember("expires_in") && doc["expires_in"].IsInt64() && doc["expires_in"].GetInt64() > 0) {
    expires_in = doc["expires_in"].GetInt64();
  }
  int64_t margin_ms = std::min<int64_t>(10'000, expires_in * 1000 / 4);
  tokens_[scope] =
      Token{token, std::chrono::steady_clock::now() + std::chrono::milliseconds(expires_in * 1000 - margin_ms)};
  ++tokens_fetched_;
  return "Bearer " + token;
}

Result<std::string> RegistryAuth::Authorization(HttpClient& http, const std::string& scope) {
  std::lock_guard<std::mutex> lock(mu_);
  if (credential_ && !credential_->registry_token.empty()) return "Bearer " + credential_->registry_token;
  if (bearer_) {
    auto it = tokens_.find(scope);
    if (it != tokens_.end() && std::chrono::steady_clock::now() < it->second.refresh_at) {
      return "Bearer " + it->second.value;
    }
    return FetchToken(http, scope);
  }
  if (basic_) {
    if (!credential_ || credential_->username.empty()) {
      return Status::Unauthorized("registry " + registry_ +
                                  ": authentication required (basic); no credentials found (use --creds or "
                                  "docker login)");
    }
    return "Basic " + Base64Encode(credential_->username + ":" + credential_->secret);
  }
  return std::string();
}

}  // namespace lazyroot
