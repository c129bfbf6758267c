// The library's pull events (lazyroot.hpp's PullObserver) drawn by the
// CLI's progress renderers (progress_render.h), for the verbs built on the
// public API.
#pragma once

#include <lazyroot/lazyroot.hpp>

#include <cstdint>
#include <string>

#include "src/cli/progress_render.h"

namespace lazyroot::cli {

class ProgressObserver final : public lazyroot::PullObserver {
 public:
  explicit ProgressObserver(PullProgress* p) : p_(p) {}
  void Resolved(const std::string& reference, const std::string& digest, const std::string& platform, int layers,
                uint64_t total) override {
    p_->Resolved(reference, digest, platform, layers, total);
  }
  void BlobStarted(const std::string& digest, uint64_t current, uint64_t total) override {
    p_->BlobStarted(digest, current, total);
  }
  void BlobProgress(const std::string& digest, uint64_t current, uint64_t total) override {
    p_->BlobProgress(digest, current, total);
  }
  void BlobDone(const std::string& digest, uint64_t total, bool already_present) override {
    p_->BlobDone(digest, total, already_present);
  }
  void Note(const std::string& text) override { p_->Note(text); }
  void Finished(const std::string& digest) override { p_->Finished(digest); }

 private:
  PullProgress* p_;
};

// Only the notes ("warning: mirror … failed", -v's endpoints), as lines on stderr.
class NotesOnly final : public lazyroot::PullObserver {
 public:
  void Note(const std::string& text) override;
};

}  // namespace lazyroot::cli
