// HttpClient: one HTTP request at a time over libcurl, with the rules a
// registry client needs: redirects followed by hand (at most 10 hops) so
// that Authorization is never sent to another scheme, host or port; bounded
// retries honouring Retry-After on 429/503 and backing off on transient
// failures; per-host TLS material; streaming bodies with a size cap.
// One HttpClient per thread (it owns a curl easy handle that keeps
// connections alive); all clients of one process share a connection/DNS/TLS
// session cache. Not thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "index/status.h"

namespace lazyroot {

// TLS settings for one registry host.
struct TlsConfig {
  bool verify = true;                   // --tls-verify=false turns both peer and host checks off
  std::vector<std::string> ca_files;    // extra CA certificates (PEM), added to the system store
  std::string client_cert, client_key;  // PEM pair, both or neither
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value", sent to every hop
  // Sent only to the first hop's scheme://host:port (never across a redirect
  // to another origin). Not logged.
  std::string authorization;
  std::string post_body;     // POST only (application/x-www-form-urlencoded)
  uint64_t range_start = 0;  // >0: sends Range: bytes=N-
  // "host:port" whose TLS settings apply to every hop as well, on top of the
  // URL host's own: a registry's CAs and client certificate for its token
  // realm (containers/image and docker fetch the token with the registry's
  // TLS configuration). Empty: the URL host's alone.
  std::string tls_also_for;
};

struct HttpResponse {
  long status = 0;
  std::multimap<std::string, std::string> headers;          // names lower-cased, last hop only
  std::string effective_url;                                // after redirects
  std::string body;                                         // when no sink was given
  std::string Header(const std::string& lower_name) const;  // first value or ""
  std::vector<std::string> Headers(const std::string& lower_name) const;
};

// Receives body bytes of a successful (2xx) response as they arrive. An error
// aborts the transfer and is returned from Do().
using BodySink = std::function<Status(std::span<const uint8_t>)>;

struct HttpPolicy {
  int max_attempts = 5;            // total tries for retryable failures
  double initial_backoff_s = 0.5;  // doubled each retry
  double max_backoff_s = 30;       // also caps Retry-After
  int max_redirects = 10;
  uint64_t max_body = 4u << 20;  // cap for bodies kept in memory (and error bodies)
  long connect_timeout_s = 30;
  long low_speed_time_s = 60;  // abort when < 1 KiB/s for this long
  // Not null: polled while connecting, waiting and between retries; once
  // true the request ends with kAborted "cancelled" (a silent server cannot
  // hold a cancelled pull for the timeouts above).
  const std::atomic<bool>* cancel = nullptr;
};

class HttpClient {
 public:
  // tls_for_host maps "host:port" to its TLS config (may be empty).
  HttpClient(std::function<TlsConfig(const std::string& host_port)> tls_for_host, HttpPolicy policy = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs req. Without a sink the body is kept in resp->body up to
  // policy.max_body (larger is kCorruption "response too large"). With a sink,
  // only 2xx bodies stream to it; other bodies are kept (capped) for the
  // error message. Retries: connection failures, 408/429/500/502/503/504,
  // honouring Retry-After (seconds or HTTP-date) — but never after a sink
  // has received bytes (the caller decides how to resume). Returns a non-OK
  // status only for transport failures; HTTP errors come back in resp.
  Status Do(const HttpRequest& req, HttpResponse* resp, const BodySink& sink = nullptr);

  // Bytes the sink received during the last Do() call (a caller resuming a
  // failed transfer continues after them).
  uint64_t last_sink_bytes() const { return last_sink_bytes_; }

 private:
  Status DoOnce(const HttpRequest& req, const std::string& url, bool send_auth, HttpResponse* resp,
                const BodySink& sink);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::function<TlsConfig(const std::string&)> tls_for_host_;
  HttpPolicy policy_;
  uint64_t last_sink_bytes_ = 0;
  bool last_permanent_ = false;  // the last transport error cannot heal by retrying
};

// scheme://host:port of an absolute URL, with the default port made explicit
// ("https://a.b" -> "https://a.b:443"). Empty for a malformed URL.
std::string UrlOrigin(const std::string& url);
// "host:port" of a URL as used for certs.d lookups (port omitted when default).
std::string UrlHostPort(const std::string& url);
// Resolves location against base (relative redirects).
std::string ResolveUrl(const std::string& base, const std::string& location);
// Seconds to wait from a Retry-After value (delta-seconds or an HTTP-date);
// -1 when absent, malformed or in the past.
double ParseRetryAfter(const std::string& value);
// Percent-encodes s for a query string.
std::string UrlEncode(const std::string& s);

}  // namespace lazyroot
