// MirroredSource: an ImageSource over the endpoints of one reference
// (src/registry/endpoints.h), tried in order — mirrors first, the registry
// last. Each endpoint is connected (credentials, ping) the first time it is
// needed, so a registry that a mirror fully serves is never contacted.
// An endpoint is passed over, with one warning line naming it, when it
// cannot be reached, answers an error (5xx, 404, 401 …), or serves a
// manifest or blob whose digest is not the one asked for; an endpoint that
// could not be reached, failed a manifest or served wrong bytes is not
// asked again. Tags go only to endpoints that may resolve, digests and
// blobs to those that may pull, always in the configured order (a
// pull-only mirror serves the blobs of a tag another host resolved).
// A blob from a mirror is hashed on the way when another endpoint could
// take over (offset 0), so wrong bytes fall through instead of failing the
// pull; the caller still verifies every blob as from any source.
// Thread-safe: FetchBlob runs on several threads.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/image/image_source.h"
#include "src/registry/registry_client.h"

namespace lazyroot {

class MirroredSource final : public ImageSource {
 public:
  // REQUIRES: !endpoints.empty(). With a single endpoint it is connected at
  // once, so errors come when they always came (before any manifest).
  static Result<std::unique_ptr<MirroredSource>> Open(std::vector<Endpoint> endpoints, const RegistryOptions& options);

  Result<FetchedManifest> GetManifest(const std::string& selector) override;
  Status FetchBlob(const std::string& digest, uint64_t offset, const std::function<Status(uint64_t)>& on_start,
                   const std::function<Status(std::span<const uint8_t>)>& sink) override;
  // The registry itself ("127.0.0.1:5000/demo/app"), whoever serves.
  std::string Describe() const override;

 private:
  struct Slot {
    Endpoint endpoint;
    std::unique_ptr<RegistryClient> client;  // guarded by mu_ until set, then immutable
    bool dead = false;                       // unreachable or served wrong bytes; guarded by mu_
    Status connect_error;                    // why it is dead; guarded by mu_
  };
  MirroredSource(std::vector<Endpoint> endpoints, const RegistryOptions& options);
  // The client of slot i, connecting it on first use; nullptr when dead.
  RegistryClient* ClientFor(size_t i, Status* error);
  void MarkDead(size_t i, const Status& why);
  void Warn(size_t i, const std::string& what, const Status& st, size_t next) const;
  // Candidate order for a request: the live endpoints able to serve it.
  std::vector<size_t> Candidates(bool resolve) const;

  RegistryOptions options_;
  std::vector<Slot> slots_;
  mutable std::mutex mu_;
};

}  // namespace lazyroot
