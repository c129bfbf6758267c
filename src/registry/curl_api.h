// libcurl, loaded on first use. libcurl drags in ~25 shared libraries
// (nghttp2, gnutls, krb5, ldap, ssh2, …): linking it directly made every
// start of the binary read them, ~28 ms with a cold page cache, although only
// pull talks HTTP. `lazyroot mount` of a pulled image has a start-up goal
// (< 50 ms cold), so http_client.cc calls libcurl through this table, which
// dlopen()s libcurl.so.4 the first time it is asked for.
#pragma once

#include <curl/curl.h>

#include <string>

namespace lazyroot {

struct CurlApi {
  decltype(&curl_global_init) global_init;
  decltype(&curl_easy_init) easy_init;
  decltype(&curl_easy_setopt) easy_setopt;
  decltype(&curl_easy_perform) easy_perform;
  decltype(&curl_easy_getinfo) easy_getinfo;
  decltype(&curl_easy_reset) easy_reset;
  decltype(&curl_easy_cleanup) easy_cleanup;
  decltype(&curl_easy_strerror) easy_strerror;
  decltype(&curl_share_init) share_init;
  decltype(&curl_share_setopt) share_setopt;
  decltype(&curl_slist_append) slist_append;
  decltype(&curl_slist_free_all) slist_free_all;
  decltype(&curl_free) free;
  decltype(&curl_getdate) getdate;
  decltype(&curl_url) url;
  decltype(&curl_url_cleanup) url_cleanup;
  decltype(&curl_url_get) url_get;
  decltype(&curl_url_set) url_set;
};

// The loaded table (thread-safe, loads once), or nullptr if libcurl.so.4 or
// one of its symbols is missing; then LoadCurlError() says which.
const CurlApi* LoadCurl();
const std::string& LoadCurlError();

}  // namespace lazyroot
