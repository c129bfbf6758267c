#include "src/cli/progress_render.h"

#include <unistd.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include "src/cli/cli.h"

namespace lazyroot::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::string Human(uint64_t bytes) { return HumanBytes(bytes); }

std::string Short(const std::string& digest) { return digest.size() > 19 ? digest.substr(7, 12) : digest; }

double Seconds(Clock::time_point t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

struct BlobState {
  uint64_t current = 0, total = 0;
  std::string status = "waiting";
  TransferRate rate;
};

// Shared bookkeeping of the renderers that show per-blob state.
class Tracker : public PullProgress {
 protected:
  std::mutex mu_;
  std::vector<std::string> order_;
  std::map<std::string, BlobState> blobs_;

  BlobState& Get(const std::string& d) {
    auto [it, inserted] = blobs_.try_emplace(d);
    if (inserted) order_.push_back(d);
    return it->second;
  }
  uint64_t Downloaded() const {
    uint64_t s = 0;
    for (const auto& [d, b] : blobs_) s += b.current;
    return s;
  }
};

class TtyProgress final : public Tracker {
 public:
  void Resolved(const std::string& reference, const std::string& digest, const std::string& platform, int layers,
                uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    total_ = total;
    std::fprintf(stderr, "Pulling %s (%s, %s, %s)\nDigest: %s\n", reference.c_str(), platform.c_str(),
                 Counted(static_cast<unsigned>(layers), "layer").c_str(), Human(total).c_str(), digest.c_str());
  }
  void BlobStarted(const std::string& d, uint64_t cur, uint64_t total) override { Update(d, cur, total, "downloading", true); }
  void BlobProgress(const std::string& d, uint64_t cur, uint64_t total) override { Update(d, cur, total, "downloading", false); }
  void BlobDone(const std::string& d, uint64_t total, bool present) override {
    Update(d, total, total, present ? "already present" : "verified", true);
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu_);
    Clear();
    std::fprintf(stderr, "%s\n", text.c_str());
    Draw();
  }
  void Finished(const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    Clear();
    Draw();
    drawn_ = 0;
  }

 private:
  void Update(const std::string& d, uint64_t cur, uint64_t total, const char* status, bool force) {
    std::lock_guard<std::mutex> lock(mu_);
    BlobState& b = Get(d);
    auto now = Clock::now();
    const bool downloading = std::string_view(status) == "downloading";
    // Bytes that came over the wire: a resume's head and a blob already
    // present are not part of the rate.
    if (downloading && b.status == "downloading" && cur > b.current) fetched_ += cur - b.current;
    b.current = cur;
    b.total = total;
    b.status = status;
    if (downloading) b.rate.Sample(cur, Seconds(now));
    overall_.Sample(fetched_, Seconds(now));
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    Clear();
    Draw();
  }
  void Clear() {
    for (int i = 0; i < drawn_; ++i) std::fputs("\x1b[1A\x1b[2K", stderr);
    drawn_ = 0;
  }
  void Draw() {
    int active = 0;
    for (const std::string& d : order_) {
      const BlobState& b = blobs_[d];
      constexpr int kWidth = 30;
      int filled = b.total ? static_cast<int>(kWidth * static_cast<double>(b.current) / static_cast<double>(b.total)) : kWidth;
      std::string bar(static_cast<size_t>(std::min(filled, kWidth)), '=');
      bar.resize(kWidth, ' ');
      const bool downloading = b.status == "downloading";
      active += downloading ? 1 : 0;
      std::fprintf(stderr, "%s [%s] %-42s %s\n", Short(d).c_str(), bar.c_str(),
                   FormatTransfer(b.current, b.total, downloading ? b.rate.rate() : 0).c_str(),
                   downloading ? "" : b.status.c_str());
      ++drawn_;
    }
    // The whole image, while more than one blob is on its way.
    if (active > 1 && total_ > 0) {
      std::fprintf(stderr, "%-12s %s\n", "total", FormatTransfer(Downloaded(), total_, overall_.rate()).c_str());
      ++drawn_;
    }
    std::fflush(stderr);
  }
  int drawn_ = 0;
  uint64_t total_ = 0, fetched_ = 0;
  TransferRate overall_;
  Clock::time_point last_draw_{};
};

// For logs and CI: one line per blob event, and a summary every few seconds.
class PlainProgress final : public Tracker {
 public:
  void Resolved(const std::string& reference, const std::string& digest, const std::string& platform, int layers,
                uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    total_ = total;
    std::fprintf(stderr, "Pulling %s (%s, %s, %s), digest %s\n", reference.c_str(), platform.c_str(),
                 Counted(static_cast<unsigned>(layers), "layer").c_str(), Human(total).c_str(), digest.c_str());
  }
  void BlobStarted(const std::string& d, uint64_t cur, uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    BlobState& b = Get(d);
    b.current = cur;
    b.total = total;
    b.status = "downloading";
    std::fprintf(stderr, "%s: downloading %s%s\n", Short(d).c_str(), Human(total).c_str(),
                 cur ? (" (resuming at " + Human(cur) + ")").c_str() : "");
  }
  void BlobProgress(const std::string& d, uint64_t cur, uint64_t total) override {
    std::lock_guard<std::mutex> lock(mu_);
    BlobState& b = Get(d);
    if (cur > b.current) fetched_ += cur - b.current;
    b.current = cur;
    b.total = total;
    auto now = Clock::now();
    rate_.Sample(fetched_, Seconds(now));
    if (now - last_line_ < std::chrono::seconds(5)) return;
    last_line_ = now;
    std::fprintf(stderr, "progress: %s\n", FormatTransfer(Downloaded(), total_, rate_.rate()).c_str());
  }
  void BlobDone(const std::string& d, uint64_t total, bool present) override {
    std::lock_guard<std::mutex> lock(mu_);
    BlobState& b = Get(d);
    b.current = total;
    b.total = total;
    b.status = "done";
    std::fprintf(stderr, "%s: %s\n", Short(d).c_str(), present ? "already present" : "verified");
  }
  void Note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "%s\n", text.c_str());
  }

 private:
  uint64_t total_ = 0, fetched_ = 0;
  TransferRate rate_;
  Clock::time_point last_line_ = Clock::now();
};

class JsonProgress final : public PullProgress {
 public:
  void Resolved(const std::string& reference, const std::string& digest, const std::string& platform, int layers,
                uint64_t total) override {
    Emit([&](auto& w) {
      w.Key("event"); w.String("resolved");
      w.Key("reference"); w.String(reference.c_str());
      w.Key("digest"); w.String(digest.c_str());
      w.Key("platform"); w.String(platform.c_str());
      w.Key("layers"); w.Int(layers);
      w.Key("total"); w.Uint64(total);
    });
  }
  void BlobStarted(const std::string& d, uint64_t cur, uint64_t total) override { Blob("start", d, cur, total); }
  void BlobProgress(const std::string& d, uint64_t cur, uint64_t total) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto now = Clock::now();
      auto& last = last_[d];
      if (cur != total && now - last < std::chrono::milliseconds(250)) return;
      last = now;
    }
    Blob("progress", d, cur, total);
  }
  void BlobDone(const std::string& d, uint64_t total, bool present) override {
    Emit([&](auto& w) {
      w.Key("event"); w.String("done");
      w.Key("digest"); w.String(d.c_str());
      w.Key("total"); w.Uint64(total);
      w.Key("cached"); w.Bool(present);
    });
  }
  void Note(const std::string& text) override {
    Emit([&](auto& w) {
      w.Key("event"); w.String("note");
      w.Key("message"); w.String(text.c_str());
    });
  }
  void Finished(const std::string& digest) override {
    Emit([&](auto& w) {
      w.Key("event"); w.String("finished");
      w.Key("digest"); w.String(digest.c_str());
    });
  }

 private:
  void Blob(const char* event, const std::string& d, uint64_t cur, uint64_t total) {
    Emit([&](auto& w) {
      w.Key("event"); w.String(event);
      w.Key("digest"); w.String(d.c_str());
      w.Key("current"); w.Uint64(cur);
      w.Key("total"); w.Uint64(total);
    });
  }
  template <typename F>
  void Emit(F&& fill) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    fill(w);
    w.EndObject();
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "%s\n", sb.GetString());
    std::fflush(stderr);
  }
  std::mutex mu_;
  std::map<std::string, Clock::time_point> last_;
};

class NoProgress final : public PullProgress {
 public:
  // -q keeps stdout to the result, but a warning (a mirror passed over)
  // still reaches stderr.
  void Note(const std::string& text) override {
    if (text.starts_with("warning: ")) std::fprintf(stderr, "lazyroot: %s\n", Displayable(text).c_str());
  }
};

}  // namespace

std::unique_ptr<PullProgress> MakeProgress(ProgressMode mode) {
  if (mode == ProgressMode::kAuto) mode = ::isatty(STDERR_FILENO) ? ProgressMode::kTty : ProgressMode::kPlain;
  switch (mode) {
    case ProgressMode::kTty: return std::make_unique<TtyProgress>();
    case ProgressMode::kPlain: return std::make_unique<PlainProgress>();
    case ProgressMode::kJson: return std::make_unique<JsonProgress>();
    case ProgressMode::kNone:
    case ProgressMode::kAuto: break;
  }
  return std::make_unique<NoProgress>();
}

void BarLine::Update(const std::string& label, uint64_t done, uint64_t total) {
  if (!enabled_ || total < min_total_) return;
  const auto clock_now = Clock::now();
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(clock_now.time_since_epoch()).count();
  if (label != label_) rate_ = TransferRate();  // a new phase counts anew
  label_ = label;
  rate_.Sample(done, Seconds(clock_now));
  if (drawn_ && done < total && now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  constexpr int kWidth = 30;
  int filled = total ? static_cast<int>(kWidth * static_cast<double>(done) / static_cast<double>(total)) : kWidth;
  std::string bar(static_cast<size_t>(std::min(filled, kWidth)), '=');
  bar.resize(kWidth, ' ');
  // Bytes for big totals (blobs), plain counts for small ones (images).
  const bool bytes = total >= (1u << 20);
  std::fprintf(stderr, "\r\x1b[2K%-8s [%s] %s", label.c_str(), bar.c_str(),
               bytes ? FormatTransfer(done, total, rate_.rate()).c_str()
                     : (std::to_string(done) + " / " + std::to_string(total)).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void BarLine::Clear() {
  if (!drawn_) return;
  std::fputs("\r\x1b[2K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace lazyroot::cli
