#pragma once

// The OpenAPI 3 document of the operator API (src/api/openapi.json, embedded at build time and
// served at GET /api/v1/openapi.json). A test checks it against the registered routes.

#include <string_view>

namespace hearth::api {

std::string_view openapi_json();

}  // namespace hearth::api
