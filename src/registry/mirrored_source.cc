#include "src/registry/mirrored_source.h"

#include "index/sha256.h"

namespace lazyroot {
namespace {

std::string ShortDigest(const std::string& d) { return d.substr(0, 7 + 12); }

}  // namespace

MirroredSource::MirroredSource(std::vector<Endpoint> endpoints, const RegistryOptions& options) : options_(options) {
  for (Endpoint& e : endpoints) slots_.push_back(Slot{std::move(e), nullptr, false, Status::Ok()});
}

Result<std::unique_ptr<MirroredSource>> MirroredSource::Open(std::vector<Endpoint> endpoints,
                                                             const RegistryOptions& options) {
  std::unique_ptr<MirroredSource> s(new MirroredSource(std::move(endpoints), options));
  if (s->slots_.size() == 1) {
    Status err;
    if (s->ClientFor(0, &err) == nullptr) return err;
  }
  return s;
}

std::string MirroredSource::Describe() const { return slots_.back().endpoint.Describe(); }

RegistryClient* MirroredSource::ClientFor(size_t i, Status* error) {
  std::lock_guard<std::mutex> lock(mu_);
  Slot& s = slots_[i];
  if (s.client) return s.client.get();
  if (s.dead) {
    *error = s.connect_error;
    return nullptr;
  }
  HttpPolicy policy = options_.policy;
  if (s.endpoint.mirror && slots_.size() > 1) {
    // A dead mirror should cost seconds, not the registry's minute of
    // retries: the next endpoint is the better retry.
    policy.max_attempts = std::min(policy.max_attempts, 2);
    policy.connect_timeout_s = std::min<long>(policy.connect_timeout_s, 10);
  }
  auto client = RegistryClient::Connect(s.endpoint, options_, policy);
  if (!client.ok()) {
    s.dead = true;
    s.connect_error = client.status();
    *error = client.status();
    return nullptr;
  }
  s.client = std::move(*client);
  return s.client.get();
}

void MirroredSource::MarkDead(size_t i, const Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  slots_[i].dead = true;
  slots_[i].connect_error = why;
}

void MirroredSource::Warn(size_t i, const std::string& what, const Status& st, size_t next) const {
  if (!options_.warn) return;
  options_.warn(slots_[i].endpoint.DescribeWithOrigin() + ": " + what + ": " + st.message() + "; trying " +
                slots_[next].endpoint.Describe());
}

std::vector<size_t> MirroredSource::Candidates(bool resolve) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<size_t> out;
  auto eligible = [&](size_t i) {
    const Slot& s = slots_[i];
    return !s.dead && (resolve ? s.endpoint.resolve : s.endpoint.pull);
  };
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (eligible(i)) out.push_back(i);
  }
  // Every endpoint dead (or none able): the last one still gets asked, so
  // the error the caller sees is the registry's own.
  if (out.empty()) out.push_back(slots_.size() - 1);
  return out;
}

Result<FetchedManifest> MirroredSource::GetManifest(const std::string& selector) {
  const bool by_tag = !selector.starts_with("sha256:");
  const std::vector<size_t> order = Candidates(by_tag);
  const std::string what = "manifest " + (by_tag ? selector : ShortDigest(selector));
  Status last;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    const bool more = k + 1 < order.size();
    Status err;
    RegistryClient* client = ClientFor(i, &err);
    if (client == nullptr) {
      if (!more || err.code() == ErrorCode::kAborted) return err;
      Warn(i, what, err, order[k + 1]);
      last = err;
      continue;
    }
    auto m = client->GetManifest(selector);
    if (m.ok()) {
      if (options_.debug) options_.debug(what + " (" + m->digest + ") from " + slots_[i].endpoint.DescribeWithOrigin());
      return m;
    }
    if (m.status().code() == ErrorCode::kAborted || !more) return m.status();
    // An endpoint without the image's manifest (or with a wrong one) is not
    // asked for its other manifests and blobs: one warning, not one per blob.
    MarkDead(i, m.status());
    Warn(i, what, m.status(), order[k + 1]);
    last = m.status();
  }
  return last;
}

Status MirroredSource::FetchBlob(const std::string& digest, uint64_t offset,
                                 const std::function<Status(uint64_t)>& on_start,
                                 const std::function<Status(std::span<const uint8_t>)>& sink) {
  const std::vector<size_t> order = Candidates(/*resolve=*/false);
  const std::string what = "blob " + ShortDigest(digest);
  Status last;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    const bool more = k + 1 < order.size();
    Status err;
    RegistryClient* client = ClientFor(i, &err);
    if (client == nullptr) {
      if (!more || err.code() == ErrorCode::kAborted) return err;
      Warn(i, what, err, order[k + 1]);
      last = err;
      continue;
    }
    // With someone to take over, bytes from 0 are hashed here too, so a
    // mirror's wrong bytes are passed over rather than failing the pull.
    const bool verify = more && offset == 0;
    Sha256 hash;
    bool delivered = false;
    auto counting = [&](std::span<const uint8_t> bytes) -> Status {
      delivered = true;
      if (verify) hash.Update(bytes);
      return sink(bytes);
    };
    Status st = client->FetchBlob(digest, offset, on_start, counting);
    if (st.ok() && verify) {
      const std::string got = "sha256:" + hash.FinishHex();
      if (got != digest) st = Status::Corruption("digest mismatch (got " + got + ")");
    }
    if (st.ok()) {
      if (options_.debug) options_.debug(what + " from " + slots_[i].endpoint.DescribeWithOrigin());
      return st;
    }
    // Cancelled, or the caller's own failure (a write to its disk): no
    // other endpoint would do better.
    if (st.code() == ErrorCode::kAborted || st.code() == ErrorCode::kIoError || !more) return st;
    // A transfer cut short after some bytes is the caller's to resume (it
    // comes back with an offset, and this endpoint is asked first again);
    // only wrong bytes send the blob to the next endpoint from scratch.
    if (delivered && st.code() != ErrorCode::kCorruption) return st;
    if (st.code() == ErrorCode::kCorruption) MarkDead(i, st);
    Warn(i, what, st, order[k + 1]);
    last = st;
    // The next endpoint starts from 0: its on_start(0) makes the caller
    // drop whatever this one delivered.
    if (delivered) offset = 0;
  }
  return last;
}

}  // namespace lazyroot
