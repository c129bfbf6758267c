// RegistryClient: the OCI Distribution protocol for one repository — ping,
// manifests by tag or digest, blobs with resume — as an ImageSource.
// Thread-safe: requests run on a small pool of HttpClients, one per
// concurrent caller; auth state is shared through RegistryAuth.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/registry/credentials.h"
#include "src/registry/http_client.h"
#include "src/image/image_source.h"
#include "src/image/reference.h"
#include "src/registry/registry_auth.h"

namespace lazyroot {

struct RegistryOptions {
  bool insecure = false;    // plain HTTP to the registry (also implied by an http:// reference)
  bool tls_verify = true;   // --tls-verify=false
  // certs.d roots searched for DIR/HOST[:PORT]/{*.crt,*.cert,*.key}; the
  // defaults /etc/containers/certs.d and /etc/docker/certs.d are appended.
  std::vector<std::string> cert_dirs;
  CredentialOptions credentials;
  HttpPolicy policy;
};

class RegistryClient final : public ImageSource {
 public:
  // Looks up credentials and pings /v2/. Errors name the registry.
  static Result<std::unique_ptr<RegistryClient>> Connect(const Reference& ref, const RegistryOptions& options);

  Result<FetchedManifest> GetManifest(const std::string& selector) override;
  Status FetchBlob(const std::string& digest, uint64_t offset,
                   const std::function<Status(uint64_t)>& on_start,
                   const std::function<Status(std::span<const uint8_t>)>& sink) override;
  std::string Describe() const override;

  int tokens_fetched() const { return auth_->tokens_fetched(); }

  // `login`'s check, as docker login makes it: GET /v2/ with the credential
  // (Basic, or a token fetched with it for no scope). OK when the registry
  // asks for no authentication at all. kUnauthorized naming the registry
  // when it or its token realm refuses the credential.
  Status CheckLogin();

 private:
  RegistryClient(const Reference& ref, const RegistryOptions& options, std::optional<Credential> cred);
  Status Ping();
  // Performs req (URL relative to the repository API root) with auth: on a 401
  // learns the challenge and retries once.
  Status Request(HttpRequest req, HttpResponse* resp, const BodySink& sink = nullptr);
  TlsConfig TlsFor(const std::string& host_port) const;
  std::unique_ptr<HttpClient> AcquireHttp();
  void ReleaseHttp(std::unique_ptr<HttpClient> http);

  Reference ref_;
  RegistryOptions options_;
  std::string base_url_;  // scheme://host[:port]
  std::string scope_;     // repository:NAME:pull
  std::unique_ptr<RegistryAuth> auth_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<HttpClient>> pool_;  // guarded by pool_mu_
};

// Turns a registry error body ({"errors":[{"code","message"}]}) into text,
// e.g. "MANIFEST_UNKNOWN: manifest unknown"; "" when the body is not one.
std::string RegistryErrorText(const std::string& body);

}  // namespace lazyroot
