#include "storage/curl_lib.h"

#include <dlfcn.h>

namespace wj::curl {
namespace {

struct Loaded {
  Lib lib{};
  bool ok = false;
  std::string error;
};

Loaded load() {
  Loaded l;
  void* h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    l.error = std::string("cannot load libcurl.so.4: ") + (e ? e : "unknown error");
    return l;
  }
  bool all = true;
  auto sym = [&](auto** fn, const char* name) {
    *reinterpret_cast<void**>(fn) = dlsym(h, name);
    if (!*fn) {
      all = false;
      l.error = std::string("libcurl.so.4 lacks ") + name;
    }
  };
  Lib& c = l.lib;
  sym(&c.global_init, "curl_global_init");
  sym(&c.easy_init, "curl_easy_init");
  sym(&c.easy_cleanup, "curl_easy_cleanup");
  sym(&c.easy_setopt, "curl_easy_setopt");
  sym(&c.easy_perform, "curl_easy_perform");
  sym(&c.easy_getinfo, "curl_easy_getinfo");
  sym(&c.easy_strerror, "curl_easy_strerror");
  sym(&c.easy_unescape, "curl_easy_unescape");
  sym(&c.slist_append, "curl_slist_append");
  sym(&c.slist_free_all, "curl_slist_free_all");
  sym(&c.free, "curl_free");
  sym(&c.url, "curl_url");
  sym(&c.url_cleanup, "curl_url_cleanup");
  sym(&c.url_set, "curl_url_set");
  sym(&c.url_get, "curl_url_get");
  if (!all) return l;  // the handle stays open: harmless, and never retried
  if (c.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    l.error = "libcurl failed to initialize";
    return l;
  }
  l.ok = true;
  return l;
}

}  // namespace

const Lib* lib(std::string* error) {
  static const Loaded loaded = load();  // once, thread-safe
  if (!loaded.ok) {
    if (error) *error = loaded.error;
    return nullptr;
  }
  return &loaded.lib;
}

}  // namespace wj::curl
