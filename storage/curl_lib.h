// libcurl, opened on first use (dlopen) instead of linked: a process that never fetches or
// percent-decodes a URL (most `run` and `exec` invocations) does not pay for loading it and
// its ~25 dependencies, about 8 ms of every process start on this machine. Same API, under
// wj::curl; `serve` loads it at start-up.
#pragma once

#include <curl/curl.h>

#include <string>

namespace wj::curl {

struct Lib {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  const char* (*easy_strerror)(CURLcode);
  char* (*easy_unescape)(CURL*, const char*, int, int*);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
  void (*free)(void*);
  CURLU* (*url)();
  void (*url_cleanup)(CURLU*);
  CURLUcode (*url_set)(CURLU*, CURLUPart, const char*, unsigned int);
  CURLUcode (*url_get)(const CURLU*, CURLUPart, char**, unsigned int);
};

// The library, loaded and globally initialized once (thread-safe); nullptr when it cannot
// be, with the reason in *error.
const Lib* lib(std::string* error = nullptr);

}  // namespace wj::curl
