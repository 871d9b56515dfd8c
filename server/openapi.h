// The OpenAPI 3.1 document of the HTTP API (server/openapi.json, compiled in at build time),
// served at GET /v1/openapi.json.
#pragma once

#include <string>

namespace wj {

const std::string& openapi_document();

}  // namespace wj
