// pull_floor: the least work a pull that checks what the pull goal
// asks for (download, the blob's digest, decompress, the DiffID) can do, done
// with the fastest parts this machine has and nothing else: libcurl for the
// transfer, ISA-L for the inflate (no checkpoints), OpenSSL's SHA-256 (SHA-NI)
// for both digests. No tar parsing, no index, no chunk or file digests, no
// disk writes. Its wall and CPU time bound from below what any client doing
// that work can reach on this machine, whoever writes it; scripts/
// bench-pull.sh runs it next to `lazyroot pull` and `skopeo copy`.
//   pull_floor [-j JOBS] URL...
// Each URL is a layer blob (plain HTTP); JOBS of them transfer at once (3, as
// `lazyroot pull`). Prints one line per URL: "sha256:<blob> sha256:<diffid>",
// which the bench checks against the manifest and config, so the figure is
// known to be of the whole work. A gzip blob is inflated member by member; any
// other blob is taken as a plain tar (DiffID = blob digest).
#include <curl/curl.h>
#include <isa-l/igzip_lib.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct EvpFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Sha = std::unique_ptr<EVP_MD_CTX, EvpFree>;

Sha NewSha() {
  Sha c(EVP_MD_CTX_new());
  if (!c || EVP_DigestInit_ex(c.get(), EVP_sha256(), nullptr) != 1) std::abort();
  return c;
}

std::string Hex(EVP_MD_CTX* c) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(c, md, &len);
  std::string out = "sha256:";
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    out += b;
  }
  return out;
}

struct Layer {
  Sha blob = NewSha(), diff = NewSha();
  bool first = true, gzip = false, member_done = false;
  inflate_state st{};
  std::vector<uint8_t> out = std::vector<uint8_t>(256 << 10);
  std::string error;
};

void StartMember(Layer& l) {
  isal_inflate_init(&l.st);
  l.st.crc_flag = ISAL_GZIP;
  l.member_done = false;
}

size_t OnBytes(char* data, size_t size, size_t count, void* user) {
  Layer& l = *static_cast<Layer*>(user);
  const size_t n = size * count;
  auto* p = reinterpret_cast<uint8_t*>(data);
  EVP_DigestUpdate(l.blob.get(), p, n);
  if (l.first && n > 0) {
    l.first = false;
    l.gzip = n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
    if (l.gzip) StartMember(l);
  }
  if (!l.gzip) {
    EVP_DigestUpdate(l.diff.get(), p, n);
    return n;
  }
  l.st.next_in = p;
  l.st.avail_in = static_cast<uint32_t>(n);
  for (;;) {
    if (l.member_done) {  // the next gzip member, if any bytes are left
      if (l.st.avail_in == 0) break;
      uint8_t* in = l.st.next_in;
      const uint32_t avail = l.st.avail_in;
      StartMember(l);
      l.st.next_in = in;
      l.st.avail_in = avail;
    }
    l.st.next_out = l.out.data();
    l.st.avail_out = static_cast<uint32_t>(l.out.size());
    if (isal_inflate(&l.st) != ISAL_DECOMP_OK) {
      l.error = "inflate failed";
      return 0;
    }
    EVP_DigestUpdate(l.diff.get(), l.out.data(), l.out.size() - l.st.avail_out);
    if (l.st.block_state == ISAL_BLOCK_FINISH) {
      l.member_done = true;
    } else if (l.st.avail_in == 0 && l.st.avail_out != 0) {
      break;  // wants more input
    }
  }
  return n;
}

bool Fetch(const std::string& url, std::string& line) {
  Layer l;
  CURL* c = curl_easy_init();
  if (c == nullptr) return false;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBytes);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &l);
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK || !l.error.empty() || (l.gzip && !l.member_done)) {
    std::fprintf(stderr, "pull_floor: %s: %s\n", url.c_str(),
                 !l.error.empty() ? l.error.c_str() : rc != CURLE_OK ? curl_easy_strerror(rc) : "gzip stream cut short");
    return false;
  }
  line = Hex(l.blob.get()) + " " + Hex(l.diff.get());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 3;
  std::vector<std::string> urls;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
      jobs = std::max(1, std::atoi(argv[++i]));
    } else {
      urls.emplace_back(argv[i]);
    }
  }
  if (urls.empty()) {
    std::fprintf(stderr, "usage: pull_floor [-j JOBS] URL...\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::vector<std::string> lines(urls.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> workers;
  for (int j = 0; j < jobs; ++j) {
    workers.emplace_back([&] {
      for (size_t i; (i = next++) < urls.size();) {
        if (!Fetch(urls[i], lines[i])) ok = false;
      }
    });
  }
  for (auto& w : workers) w.join();
  for (const auto& l : lines) std::printf("%s\n", l.c_str());
  curl_global_cleanup();
  return ok ? 0 : 1;
}
