#include "src/registry/http_client.h"

#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>

#include "index/exception_status.h"
#include "src/registry/curl_api.h"
#include "src/registry/toml_document.h"

namespace lazyroot {
namespace {

// The loaded libcurl. REQUIRES: LoadCurl() succeeded (every entry point checks).
const CurlApi& Curl() { return *LoadCurl(); }

// Process-wide libcurl state: global init once, and one share handle so that
// every thread's easy handle reuses connections, DNS answers and TLS sessions.
struct CurlShared {
  CURLSH* share = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];
  CurlShared() {
    Curl().global_init(CURL_GLOBAL_DEFAULT);
    share = Curl().share_init();
    Curl().share_setopt(share, CURLSHOPT_LOCKFUNC, &Lock);
    Curl().share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Unlock);
    Curl().share_setopt(share, CURLSHOPT_USERDATA, this);
    Curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    Curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    Curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  }
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<CurlShared*>(user)->locks[data].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) { static_cast<CurlShared*>(user)->locks[data].unlock(); }
};

CurlShared& Shared() {
  static CurlShared* shared = new CurlShared();  // lives for the process; curl cleanup at exit is not needed
  return *shared;
}

bool IsRedirect(long s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }
bool IsRetryableStatus(long s) { return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

double ParseRetryAfter(const std::string& v) {
  if (v.empty() || !LoadCurl()) return -1;
  if (std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return std::stod(v);
  }
  time_t t = Curl().getdate(v.c_str(), nullptr);
  if (t < 0) return -1;
  double d = std::difftime(t, std::time(nullptr));
  return d > 0 ? d : -1;
}

namespace {

// A CA bundle, client certificate or key: a few KiB; the system's whole
// bundle is ~200 KiB.
constexpr size_t kMaxTlsFileBytes = size_t{4} << 20;

struct TransferState {
  HttpResponse* resp;
  const BodySink* sink;
  uint64_t max_body;
  uint64_t sink_bytes = 0;
  bool too_large = false;
  Status sink_status;
};

// curl's callbacks are called from C: nothing they throw (out of memory in a
// sink's layer consumer, in a header's copy) may unwind through curl, which
// would leave its handle mid-transfer and skip its cleanup. It ends the
// transfer instead, as the sink's error.
size_t HeaderCallbackOrThrow(char* data, size_t size, size_t nitems, TransferState* st);
size_t WriteCallbackOrThrow(char* data, size_t size, size_t nmemb, TransferState* st);

size_t HeaderCallback(char* data, size_t size, size_t nitems, void* user) {
  auto* st = static_cast<TransferState*>(user);
  try {
    return HeaderCallbackOrThrow(data, size, nitems, st);
  } catch (...) {
    st->sink_status = CurrentExceptionStatus("");
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
}

size_t WriteCallback(char* data, size_t size, size_t nmemb, void* user) {
  auto* st = static_cast<TransferState*>(user);
  try {
    return WriteCallbackOrThrow(data, size, nmemb, st);
  } catch (...) {
    st->sink_status = CurrentExceptionStatus("");
    return 0;
  }
}

size_t HeaderCallbackOrThrow(char* data, size_t size, size_t nitems, TransferState* st) {
  std::string_view line(data, size * nitems);
  // After the body, lines are a chunked reply's trailers: a hostile
  // "HTTP/1.1 500" there would turn a 200 whose bytes the sink already took
  // into a reply to retry, and the retry's bytes would follow the first's.
  if (st->sink_bytes > 0 || !st->resp->body.empty()) return size * nitems;
  if (line.starts_with("HTTP/")) {  // a new response (e.g. after 100 Continue): start over
    st->resp->headers.clear();
    size_t sp = line.find(' ');
    if (sp != std::string_view::npos)
      st->resp->status = std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
    return size * nitems;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    st->resp->headers.emplace(Lower(std::string(line.substr(0, colon))), Trim(line.substr(colon + 1)));
  }
  return size * nitems;
}

size_t WriteCallbackOrThrow(char* data, size_t size, size_t nmemb, TransferState* st) {
  size_t n = size * nmemb;
  long status = st->resp->status;
  if (st->sink != nullptr && *st->sink && status >= 200 && status < 300) {
    Status s = (*st->sink)(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), n));
    if (!s.ok()) {
      st->sink_status = s;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    st->sink_bytes += n;
    return n;
  }
  if (st->resp->body.size() + n > st->max_body) {
    st->too_large = true;
    return 0;
  }
  st->resp->body.append(data, n);
  return n;
}

struct SslCtxData {
  const TlsConfig* tls;
};

// Adds the host's extra CA certificates to the system trust store curl set up.
CURLcode SslCtxCallback(CURL*, void* ssl_ctx, void* user) {
  auto* d = static_cast<SslCtxData*>(user);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  for (const std::string& file : d->tls->ca_files) {
    // Read by us, bounded and never blocking (a FIFO or /dev/zero named
    // by a hosts.toml ca= is refused), then parsed from memory.
    std::optional<Result<std::string>> pem;
    try {  // called from C, as the callbacks above
      pem.emplace(ReadSmallConfigFile(file, kMaxTlsFileBytes));
    } catch (...) {
      return CURLE_OUT_OF_MEMORY;
    }
    if (!pem->ok()) return CURLE_SSL_CACERT_BADFILE;
    BIO* bio = BIO_new_mem_buf((*pem)->data(), static_cast<int>((*pem)->size()));
    if (bio == nullptr) return CURLE_OUT_OF_MEMORY;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);  // duplicates are harmless
      X509_free(cert);
    }
    BIO_free(bio);
  }
  return CURLE_OK;
}

// curl's progress callback: nonzero ends the transfer (CURLE_ABORTED_BY_CALLBACK).
int CancelCallback(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(flag)->load(std::memory_order_relaxed) ? 1 : 0;
}

// "Name: value" lines that carry a credential (Go's http.Client drops the
// same ones on a redirect to another host).
bool IsCredentialHeader(std::string_view line) {
  const std::string name = Lower(std::string(line.substr(0, line.find(':'))));
  return name == "authorization" || name == "cookie" || name == "cookie2";
}

// The TLS files of a request, checked before curl opens them: curl's own
// fopen() of a FIFO put where a certificate belongs would block forever.
Status CheckTlsFiles(const TlsConfig& tls) {
  std::vector<std::string> files = tls.ca_files;
  for (const std::string* f : {&tls.client_cert, &tls.client_key}) {
    if (!f->empty()) files.push_back(*f);
  }
  for (const std::string& f : files) {
    auto bytes = ReadSmallConfigFile(f, kMaxTlsFileBytes);
    if (!bytes.ok()) return bytes.status();
  }
  return Status::Ok();
}

}  // namespace

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::vector<std::string> HttpResponse::Headers(const std::string& lower_name) const {
  std::vector<std::string> out;
  auto [b, e] = headers.equal_range(lower_name);
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

struct HttpClient::Impl {
  CURL* curl = nullptr;
  ~Impl() {
    if (curl != nullptr) Curl().easy_cleanup(curl);
  }
};

HttpClient::HttpClient(std::function<TlsConfig(const std::string&)> tls_for_host, HttpPolicy policy)
    : impl_(std::make_unique<Impl>()), tls_for_host_(std::move(tls_for_host)), policy_(policy) {
  if (LoadCurl()) {
    Shared();
    impl_->curl = Curl().easy_init();
  }
}

HttpClient::~HttpClient() = default;

Status HttpClient::DoOnce(const HttpRequest& req, const std::string& url, bool send_auth, HttpResponse* resp,
                          const BodySink& sink) {
  CURL* c = impl_->curl;
  if (c == nullptr) return Status::IoError(LoadCurl() ? "curl_easy_init failed" : LoadCurlError());
  Curl().easy_reset(c);
  *resp = HttpResponse();
  TransferState st{resp, &sink, policy_.max_body, 0, false, Status::Ok()};

  Curl().easy_setopt(c, CURLOPT_SHARE, Shared().share);
  Curl().easy_setopt(c, CURLOPT_URL, url.c_str());
  // Proxies come from the environment, read by libcurl itself for every hop
  // (token realm and redirects included): https_proxy/HTTPS_PROXY,
  // all_proxy/ALL_PROXY, no_proxy/NO_PROXY (host suffixes, CIDR). But for
  // http:// it reads only the lower-case http_proxy (the CGI "httpoxy"
  // guard); docker, podman and skopeo (Go) also take HTTP_PROXY, and so do
  // we. NO_PROXY still applies to a proxy set this way.
  if (url.starts_with("http://")) {
    const char* lower = std::getenv("http_proxy");
    const char* upper = std::getenv("HTTP_PROXY");
    if ((lower == nullptr || *lower == '\0') && upper != nullptr && *upper != '\0') {
      Curl().easy_setopt(c, CURLOPT_PROXY, upper);
    }
  }
  Curl().easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  Curl().easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  Curl().easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // redirects are ours: see Do()
  Curl().easy_setopt(c, CURLOPT_CONNECTTIMEOUT, policy_.connect_timeout_s);
  Curl().easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  Curl().easy_setopt(c, CURLOPT_LOW_SPEED_TIME, policy_.low_speed_time_s);
  Curl().easy_setopt(c, CURLOPT_USERAGENT, "lazyroot/0.1");
  if (policy_.cancel != nullptr) {
    if (policy_.cancel->load()) return Status::Aborted("cancelled");
    Curl().easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &CancelCallback);
    Curl().easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(policy_.cancel));
    Curl().easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  Curl().easy_setopt(c, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  Curl().easy_setopt(c, CURLOPT_HEADERDATA, &st);
  Curl().easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteCallback);
  Curl().easy_setopt(c, CURLOPT_WRITEDATA, &st);
  Curl().easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
  if (req.method == "HEAD") {
    Curl().easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "POST") {
    Curl().easy_setopt(c, CURLOPT_POST, 1L);
    Curl().easy_setopt(c, CURLOPT_POSTFIELDS, req.post_body.c_str());
    Curl().easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.post_body.size()));
  }

  struct curl_slist* headers = nullptr;
  for (const std::string& h : req.headers) {
    // A credential in the caller's headers (hosts.toml's header =
    // {Authorization = …}) stays with its origin, as the computed
    // Authorization does: a redirect's target gets the other headers only.
    if (!send_auth && IsCredentialHeader(h)) continue;
    headers = Curl().slist_append(headers, h.c_str());
  }
  std::string auth_header;
  if (send_auth && !req.authorization.empty()) {
    auth_header = "Authorization: " + req.authorization;
    headers = Curl().slist_append(headers, auth_header.c_str());
  }
  std::string range;
  if (req.range_start > 0) {
    range = std::to_string(req.range_start) + "-";
    Curl().easy_setopt(c, CURLOPT_RANGE, range.c_str());
  }
  Curl().easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  const std::string host_port = UrlHostPort(url);
  TlsConfig tls = tls_for_host_ ? tls_for_host_(host_port) : TlsConfig{};
  if (tls_for_host_ && !req.tls_also_for.empty() && req.tls_also_for != host_port) {
    TlsConfig also = tls_for_host_(req.tls_also_for);
    tls.ca_files.insert(tls.ca_files.end(), also.ca_files.begin(), also.ca_files.end());
    if (tls.client_cert.empty()) {
      tls.client_cert = also.client_cert;
      tls.client_key = also.client_key;
    }
    tls.verify = tls.verify && also.verify;
  }
  SslCtxData ssl_data{&tls};
  if (url.starts_with("https://")) {
    if (Status bad = CheckTlsFiles(tls); !bad.ok()) {
      Curl().slist_free_all(headers);
      last_permanent_ = true;  // a file will not change on retry
      return bad.WithContext(req.method + " " + url);
    }
    if (!tls.verify) {
      Curl().easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      Curl().easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!tls.ca_files.empty()) {
      Curl().easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, &SslCtxCallback);
      Curl().easy_setopt(c, CURLOPT_SSL_CTX_DATA, &ssl_data);
    }
    if (!tls.client_cert.empty()) {
      Curl().easy_setopt(c, CURLOPT_SSLCERT, tls.client_cert.c_str());
      Curl().easy_setopt(c, CURLOPT_SSLKEY, tls.client_key.c_str());
    }
  }

  CURLcode rc = Curl().easy_perform(c);
  Curl().slist_free_all(headers);
  last_sink_bytes_ += st.sink_bytes;
  char* eff = nullptr;
  Curl().easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff);
  resp->effective_url = eff != nullptr ? eff : url;
  if (!st.sink_status.ok()) return st.sink_status;
  if (rc == CURLE_ABORTED_BY_CALLBACK) return Status::Aborted("cancelled");
  if (st.too_large) {
    return Status::Corruption("response from " + UrlOrigin(url) + " larger than " + std::to_string(policy_.max_body) +
                              " bytes");
  }
  if (rc == CURLE_PARTIAL_FILE && (resp->status < 200 || resp->status >= 300)) {
    // An error reply whose body stops short of its Content-Length (Go's
    // net/http sends a 416's one-line text under the blob's length): its
    // status and headers are whole, and its body is only the error's text.
    // As a transport error it would be retried with backoff (~45 s) to the
    // same reply. (Before the 407 check: a proxy's 407 may be cut too.)
    rc = CURLE_OK;
  }
  long connect_code = 0;
  Curl().easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  if (connect_code == 407 || (rc == CURLE_OK && resp->status == 407)) {
    // The proxy ($HTTP(S)_PROXY) wants credentials; asking again will not
    // change that, and "cannot reach" or "is this a registry?" would mislead.
    // The proxy's URL is not shown: it may hold a password.
    return Status::Unauthorized(req.method + " " + url +
                                ": the proxy refused it (HTTP 407 Proxy Authentication Required); give the proxy's "
                                "credentials in its URL (http://USER:PASSWORD@HOST:PORT)");
  }
  if (rc != CURLE_OK) {
    // A certificate the peer presents will not change on retry.
    last_permanent_ = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                      rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR ||
                      rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_UNSUPPORTED_PROTOCOL ||
                      rc == CURLE_URL_MALFORMAT;
    return Status::Network(req.method + " " + url + ": " + Curl().easy_strerror(rc));
  }
  return Status::Ok();
}

Status HttpClient::Do(const HttpRequest& req, HttpResponse* resp, const BodySink& sink) {
  last_sink_bytes_ = 0;
  last_permanent_ = false;
  double backoff = policy_.initial_backoff_s;
  Status last;
  for (int attempt = 1; attempt <= policy_.max_attempts; ++attempt) {
    std::string url = req.url;
    const std::string origin = UrlOrigin(url);
    Status st;
    for (int hop = 0;; ++hop) {
      // Authorization goes only to the origin the caller addressed; a
      // redirect to blob storage elsewhere (or another port) gets none.
      st = DoOnce(req, url, UrlOrigin(url) == origin, resp, sink);
      if (!st.ok() || !IsRedirect(resp->status)) break;
      std::string location = resp->Header("location");
      if (location.empty()) break;
      if (hop + 1 > policy_.max_redirects) {
        return Status::Network(req.method + " " + req.url + ": more than " + std::to_string(policy_.max_redirects) +
                               " redirects");
      }
      std::string next = ResolveUrl(url, location);
      if (next.empty()) return Status::Network(req.method + " " + req.url + ": bad redirect location");
      if (url.starts_with("https://") && !next.starts_with("https://")) {
        return Status::Network(req.method + " " + req.url + ": refusing redirect from https to " + UrlOrigin(next));
      }
      url = next;
    }
    double delay = backoff;
    if (!st.ok()) {
      // Bytes already handed to the sink cannot be taken back: the caller resumes.
      if (st.code() != ErrorCode::kNetwork || last_sink_bytes_ > 0 || last_permanent_) return st;
      last = st;
    } else if (IsRetryableStatus(resp->status)) {
      double ra = ParseRetryAfter(resp->Header("retry-after"));
      if (ra >= 0) delay = ra;
      last = Status::Ok();
      if (attempt == policy_.max_attempts) return Status::Ok();  // caller reports the HTTP status
    } else {
      return Status::Ok();
    }
    if (attempt == policy_.max_attempts) break;
    delay = std::min(delay, policy_.max_backoff_s);
    // In short naps, so that a cancel does not wait out a 30 s backoff.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(delay * 1000));
    while (std::chrono::steady_clock::now() < until) {
      if (policy_.cancel != nullptr && policy_.cancel->load()) return Status::Aborted("cancelled");
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          until - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
    }
    backoff *= 2;
  }
  if (!last.ok()) {
    const int n = policy_.max_attempts;
    return last.WithContext("after " + std::to_string(n) + (n == 1 ? " attempt" : " attempts"));
  }
  return Status::Ok();
}

std::string UrlOrigin(const std::string& url) {
  if (!LoadCurl()) return "";  // as for an unparsable URL; requests report the load error
  CURLU* u = Curl().url();
  std::string out;
  if (Curl().url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    if (Curl().url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        Curl().url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        Curl().url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      out = Lower(scheme) + "://" + Lower(host) + ":" + port;
    }
    Curl().free(scheme);
    Curl().free(host);
    Curl().free(port);
  }
  Curl().url_cleanup(u);
  return out;
}

std::string UrlHostPort(const std::string& url) {
  if (!LoadCurl()) return "";  // as for an unparsable URL; requests report the load error
  CURLU* u = Curl().url();
  std::string out;
  if (Curl().url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *host = nullptr, *port = nullptr;
    if (Curl().url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      out = Lower(host);
      if (Curl().url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) out += std::string(":") + port;
    }
    Curl().free(host);
    Curl().free(port);
  }
  Curl().url_cleanup(u);
  return out;
}

std::string ResolveUrl(const std::string& base, const std::string& location) {
  if (!LoadCurl()) return "";  // as for an unparsable URL; requests report the load error
  CURLU* u = Curl().url();
  std::string out;
  if (Curl().url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      Curl().url_set(u, CURLUPART_URL, location.c_str(), 0) == CURLUE_OK) {
    char* s = nullptr;
    if (Curl().url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) out = s;
    Curl().free(s);
  }
  Curl().url_cleanup(u);
  return out;
}

std::string UrlEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace lazyroot
