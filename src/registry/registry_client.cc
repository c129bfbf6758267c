#include "src/registry/registry_client.h"

#include <dirent.h>
#include <rapidjson/document.h>

#include <algorithm>

#include "index/sha256.h"
#include "src/image/json_document.h"
#include "src/image/manifest.h"
#include "src/registry/registries_conf.h"

namespace lazyroot {
namespace {

std::string StripParams(const std::string& content_type) {
  std::string s = content_type.substr(0, content_type.find(';'));
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.ends_with(suffix);
}

}  // namespace

std::string RegistryErrorText(const std::string& body) {
  // Error bodies are capped by HttpPolicy::max_body, like every body.
  auto parsed = ParseJsonDocument(body, "error body", kMaxManifestBytes);
  if (!parsed.ok()) return "";
  const JsonDocument& doc = *parsed;
  if (!doc.HasMember("errors") || !doc["errors"].IsArray()) return "";
  std::string out;
  for (const auto& e : doc["errors"].GetArray()) {
    if (!e.IsObject()) continue;
    if (!out.empty()) out += "; ";
    if (e.HasMember("code") && e["code"].IsString()) out += e["code"].GetString();
    if (e.HasMember("message") && e["message"].IsString()) {
      out += ": ";
      out += e["message"].GetString();
    }
  }
  return out;
}

RegistryClient::RegistryClient(const Endpoint& endpoint, const RegistryOptions& options, const HttpPolicy& policy,
                               std::optional<Credential> cred)
    : endpoint_(endpoint), options_(options), api_root_(endpoint.api_root), cred_(std::move(cred)) {
  options_.policy = policy;
  host_port_ = UrlHostPort(api_root_);
  scope_ = "repository:" + endpoint.repository + ":pull";
  auth_ = std::make_unique<RegistryAuth>(endpoint.registry, cred_, api_root_.starts_with("http://"), host_port_);
  const std::string sys = SysconfDir();
  options_.cert_dirs.push_back(sys + "/containers/certs.d");
  options_.cert_dirs.push_back(sys + "/docker/certs.d");
}

Result<std::unique_ptr<RegistryClient>> RegistryClient::Connect(const Reference& ref, const RegistryOptions& options) {
  return Connect(UpstreamEndpoint(ref, options.insecure || ref.plain_http), options, options.policy);
}

Result<std::unique_ptr<RegistryClient>> RegistryClient::Connect(const Endpoint& endpoint, const RegistryOptions& options,
                                                                const HttpPolicy& policy) {
  CredentialOptions credentials = options.credentials;
  credentials.repository = endpoint.repository;
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<Credential> cred, LookupCredential(endpoint.registry, credentials));
  std::unique_ptr<RegistryClient> client(new RegistryClient(endpoint, options, policy, std::move(cred)));
  LAZYROOT_RETURN_IF_ERROR(client->Ping());
  return client;
}

std::string RegistryClient::Describe() const { return endpoint_.Describe(); }

std::string RegistryClient::Url(const std::string& kind, const std::string& what) const {
  std::string url = api_root_ + "/" + endpoint_.repository + "/" + kind + "/" + what;
  if (!endpoint_.query.empty()) url += "?" + endpoint_.query;
  return url;
}

TlsConfig RegistryClient::TlsFor(const std::string& host_port) const {
  TlsConfig tls;
  tls.verify = options_.tls_verify;
  if (host_port == host_port_) {
    // The endpoint's own settings (hosts.toml ca/client/skip_verify,
    // registries.conf insecure) come first; certs.d adds to them.
    // It may loosen verification, never tighten what --tls-verify=false loosened.
    if (endpoint_.tls_verify) tls.verify = tls.verify && *endpoint_.tls_verify;
    tls.ca_files = endpoint_.ca_files;
    tls.client_cert = endpoint_.client_cert;
    tls.client_key = endpoint_.client_key;
  }
  for (const std::string& root : options_.cert_dirs) {
    std::string dir = root + "/" + host_port;
    for (const std::string& name : ListDir(dir)) {
      if (EndsWith(name, ".crt")) {
        tls.ca_files.push_back(dir + "/" + name);
      } else if (EndsWith(name, ".cert") && tls.client_cert.empty()) {
        tls.client_cert = dir + "/" + name;
        tls.client_key = dir + "/" + name.substr(0, name.size() - 5) + ".key";
      }
    }
  }
  return tls;
}

std::unique_ptr<HttpClient> RegistryClient::AcquireHttp() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      auto h = std::move(pool_.back());
      pool_.pop_back();
      return h;
    }
  }
  return std::make_unique<HttpClient>([this](const std::string& hp) { return TlsFor(hp); }, options_.policy);
}

void RegistryClient::ReleaseHttp(std::unique_ptr<HttpClient> http) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  pool_.push_back(std::move(http));
}

Status RegistryClient::Ping() {
  // With a fallback to HTTP, HTTPS gets one try, as containers/image gives it.
  const bool probe = endpoint_.http_fallback && api_root_.starts_with("https://");
  Status st = PingOnce(probe);
  if (st.ok() || !endpoint_.http_fallback || !api_root_.starts_with("https://") || st.code() != ErrorCode::kNetwork) {
    return st;
  }
  // registries.conf `insecure`: HTTPS failed at the transport, so plain HTTP.
  api_root_ = "http://" + api_root_.substr(8);
  host_port_ = UrlHostPort(api_root_);
  auth_ = std::make_unique<RegistryAuth>(endpoint_.registry, cred_, true, host_port_);
  Status plain = PingOnce(false);
  return plain.ok() ? plain : st;
}

Status RegistryClient::PingOnce(bool single_attempt) {
  std::unique_ptr<HttpClient> http;
  if (single_attempt) {
    HttpPolicy once = options_.policy;
    once.max_attempts = 1;
    http = std::make_unique<HttpClient>([this](const std::string& hp) { return TlsFor(hp); }, once);
  } else {
    http = AcquireHttp();
  }
  HttpRequest req;
  req.url = api_root_ + "/";
  req.headers = endpoint_.headers;
  HttpResponse resp;
  Status st = http->Do(req, &resp);
  if (!single_attempt) ReleaseHttp(std::move(http));
  const std::string& registry = endpoint_.registry;
  if (!st.ok() && st.code() == ErrorCode::kAborted) return st;  // cancelled: no "cannot reach"
  if (!st.ok()) {
    std::string hint;
    if (api_root_.starts_with("https://") && st.message().find("SSL") != std::string::npos && !endpoint_.mirror) {
      hint = " (for a plain-HTTP registry write http://" + registry + "/… or pass --insecure)";
    }
    return Status::Network("registry " + registry + ": cannot reach " + req.url + ": " + st.message() + hint);
  }
  if (resp.status == 200) return Status::Ok();
  if (resp.status == 401) return auth_->LearnChallenge(resp, scope_);
  // An override_path root is the API below a path of the server's choosing;
  // nothing says it answers GET / (containerd never asks).
  if (endpoint_.lenient_ping && resp.status < 500) return Status::Ok();
  return Status::Network("registry " + registry + ": " + req.url + " answered HTTP " + std::to_string(resp.status) +
                         " (is this an OCI registry?)");
}

Status RegistryClient::Request(HttpRequest req, HttpResponse* resp, const BodySink& sink) {
  req.headers.insert(req.headers.end(), endpoint_.headers.begin(), endpoint_.headers.end());
  auto http = AcquireHttp();
  Status st;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto authz = auth_->Authorization(*http, scope_);
    if (!authz.ok()) {
      st = authz.status();
      break;
    }
    req.authorization = *authz;
    st = http->Do(req, resp, sink);
    if (!st.ok() || resp->status != 401) break;
    if (attempt == 1) {
      st = Status::Unauthorized("registry " + endpoint_.registry + ": " + Describe() +
                                ": unauthorized (HTTP 401) — check credentials (--creds, docker login)");
      break;
    }
    // Expired token or a new scope: learn the challenge and try once more.
    st = auth_->LearnChallenge(*resp, scope_);
    if (!st.ok()) break;
  }
  ReleaseHttp(std::move(http));
  return st;
}

Result<FetchedManifest> RegistryClient::GetManifest(const std::string& selector) {
  HttpRequest req;
  req.url = Url("manifests", selector);
  req.headers.push_back("Accept: " + std::string(media_type::kOciIndex) + ", " + std::string(media_type::kDockerList) +
                        ", " + std::string(media_type::kOciManifest) + ", " + std::string(media_type::kDockerManifest));
  HttpResponse resp;
  const std::string what = Describe() + (selector.starts_with("sha256:") ? "@" : ":") + selector;
  Status st = Request(req, &resp);
  if (!st.ok()) return st.WithContext("manifest " + what);
  if (resp.status == 404) {
    std::string detail = RegistryErrorText(resp.body);
    return Status::NotFound("manifest " + what + ": not found" + (detail.empty() ? "" : " (" + detail + ")"));
  }
  if (resp.status == 401 || resp.status == 403) {
    return Status::Unauthorized("manifest " + what + ": access denied (HTTP " + std::to_string(resp.status) + ")");
  }
  if (resp.status != 200) {
    std::string detail = RegistryErrorText(resp.body);
    return Status::Network("manifest " + what + ": HTTP " + std::to_string(resp.status) +
                           (detail.empty() ? "" : " (" + detail + ")"));
  }
  if (resp.body.size() > kMaxManifestBytes) {
    return Status::Corruption("manifest " + what + ": larger than 4 MiB");
  }
  FetchedManifest m;
  m.body = std::move(resp.body);
  m.content_type = StripParams(resp.Header("content-type"));
  m.digest = "sha256:" + Sha256::HexOf(std::string_view(m.body));
  // A digest fetch must hash to what we asked for; a tag fetch is verified by
  // hashing the body (Docker-Content-Digest is not trusted).
  if (selector.starts_with("sha256:") && m.digest != selector) {
    return Status::Corruption("manifest " + what + ": digest mismatch (got " + m.digest + ")");
  }
  return m;
}

Status RegistryClient::FetchBlob(const std::string& digest, uint64_t offset,
                                 const std::function<Status(uint64_t)>& on_start,
                                 const std::function<Status(std::span<const uint8_t>)>& sink) {
  HttpRequest req;
  req.url = Url("blobs", digest);
  req.range_start = offset;
  HttpResponse resp;
  bool started = false;
  bool sink_failed = false;
  BodySink wrapped = [&](std::span<const uint8_t> bytes) -> Status {
    if (!started) {
      started = true;
      uint64_t actual = 0;
      if (resp.status == 206) {
        // Content-Range: bytes first-last/total must start where we asked.
        std::string cr = resp.Header("content-range");
        if (resp.Headers("content-range").size() != 1 || !cr.starts_with("bytes ") ||
            std::strtoull(cr.c_str() + 6, nullptr, 10) != offset) {
          return Status::Corruption("blob " + digest + ": bad Content-Range \"" + cr + "\" for a resume at " +
                                    std::to_string(offset));
        }
        actual = offset;
      }
      Status st = on_start(actual);
      if (!st.ok()) {
        sink_failed = true;
        return st;
      }
    }
    Status st = sink(bytes);
    sink_failed = !st.ok();
    return st;
  };
  Status st = Request(req, &resp, wrapped);
  if (!st.ok()) return sink_failed ? st : st.WithContext("blob " + digest);
  if (resp.status == 416 && offset > 0) {
    return FetchBlob(digest, 0, on_start, sink);  // the server cannot resume there: start over
  }
  if (resp.status == 404) return Status::NotFound("blob " + digest + ": not found in " + Describe());
  if (resp.status != 200 && resp.status != 206) {
    std::string detail = RegistryErrorText(resp.body);
    return Status::Network("blob " + digest + ": HTTP " + std::to_string(resp.status) +
                           (detail.empty() ? "" : " (" + detail + ")"));
  }
  if (!started) {
    LAZYROOT_RETURN_IF_ERROR(on_start(resp.status == 206 ? offset : 0));  // empty body
  }
  return Status::Ok();
}

Status RegistryClient::CheckLogin() {
  auto http = AcquireHttp();
  Status st;
  auto authz = auth_->Authorization(*http, "");
  if (!authz.ok()) {
    st = authz.status();
  } else if (!authz->empty()) {
    HttpRequest req;
    req.url = api_root_ + "/";
    req.headers = endpoint_.headers;
    req.authorization = *authz;
    HttpResponse resp;
    st = http->Do(req, &resp);
    if (st.ok() && (resp.status == 401 || resp.status == 403)) {
      st = Status::Unauthorized("registry " + endpoint_.registry + ": credentials refused (HTTP " +
                                std::to_string(resp.status) + ")");
    } else if (st.ok() && resp.status != 200) {
      st = Status::Network("registry " + endpoint_.registry + ": " + req.url + " answered HTTP " +
                           std::to_string(resp.status));
    }
  }
  ReleaseHttp(std::move(http));
  return st;
}

}  // namespace lazyroot
