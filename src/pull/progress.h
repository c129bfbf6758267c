// PullProgress: what a pull reports while it works. The CLI renders it as
// bars (TTY), periodic lines (logs) or JSON lines; the library calls it from
// several download threads at once, so implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace lazyroot {

class PullProgress {
 public:
  virtual ~PullProgress() = default;
  // The manifest is known: its digest, platform, layer count and total bytes.
  virtual void Resolved(const std::string& reference, const std::string& manifest_digest, const std::string& platform,
                        int layers, uint64_t total_bytes) {
    (void)reference, (void)manifest_digest, (void)platform, (void)layers, (void)total_bytes;
  }
  // A blob begins downloading (or resuming at `current`).
  virtual void BlobStarted(const std::string& digest, uint64_t current, uint64_t total) {
    (void)digest, (void)current, (void)total;
  }
  virtual void BlobProgress(const std::string& digest, uint64_t current, uint64_t total) {
    (void)digest, (void)current, (void)total;
  }
  // Done: downloaded and verified, or already present in the store.
  virtual void BlobDone(const std::string& digest, uint64_t total, bool already_present) {
    (void)digest, (void)total, (void)already_present;
  }
  // A recoverable event worth telling the user (retry, resume, restart).
  virtual void Note(const std::string& text) { (void)text; }
  virtual void Finished(const std::string& manifest_digest) { (void)manifest_digest; }
};

}  // namespace lazyroot
