#include "src/registry/curl_api.h"

#include <dlfcn.h>

namespace lazyroot {
namespace {

struct Loaded {
  CurlApi api{};
  bool ok = false;
  std::string error;

  Loaded() {
    void* lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      error = std::string("cannot load libcurl.so.4 (") + (e ? e : "?") + "): install libcurl4";
      return;
    }
    ok = Bind(lib, "curl_global_init", &api.global_init) && Bind(lib, "curl_easy_init", &api.easy_init) &&
         Bind(lib, "curl_easy_setopt", &api.easy_setopt) && Bind(lib, "curl_easy_perform", &api.easy_perform) &&
         Bind(lib, "curl_easy_getinfo", &api.easy_getinfo) && Bind(lib, "curl_easy_reset", &api.easy_reset) &&
         Bind(lib, "curl_easy_cleanup", &api.easy_cleanup) && Bind(lib, "curl_easy_strerror", &api.easy_strerror) &&
         Bind(lib, "curl_share_init", &api.share_init) && Bind(lib, "curl_share_setopt", &api.share_setopt) &&
         Bind(lib, "curl_slist_append", &api.slist_append) &&
         Bind(lib, "curl_slist_free_all", &api.slist_free_all) && Bind(lib, "curl_free", &api.free) &&
         Bind(lib, "curl_getdate", &api.getdate) && Bind(lib, "curl_url", &api.url) &&
         Bind(lib, "curl_url_cleanup", &api.url_cleanup) && Bind(lib, "curl_url_get", &api.url_get) &&
         Bind(lib, "curl_url_set", &api.url_set);
    // The library stays loaded for the life of the process, like a linked one.
  }

  template <typename Fn>
  bool Bind(void* lib, const char* name, Fn* slot) {
    void* sym = dlsym(lib, name);
    if (!sym) {
      error = std::string("libcurl.so.4 has no ") + name + " (libcurl too old?)";
      return false;
    }
    *slot = reinterpret_cast<Fn>(sym);
    return true;
  }
};

const Loaded& Get() {
  static const Loaded* loaded = new Loaded();  // never unloaded
  return *loaded;
}

}  // namespace

const CurlApi* LoadCurl() { return Get().ok ? &Get().api : nullptr; }
const std::string& LoadCurlError() { return Get().error; }

}  // namespace lazyroot
