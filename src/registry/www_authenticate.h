// Parsing of WWW-Authenticate challenges (RFC 7235) as registries send them.
// Pure; thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace lazyroot {

struct AuthChallenge {
  std::string scheme;                         // lower-cased: "bearer", "basic", …
  std::map<std::string, std::string> params;  // keys lower-cased; values unquoted, escapes resolved
  std::string token68;  // `Basic dXNlcjpwYXNz`-style token68 (tolerated, rarely sent); else empty
};

// Parses one header value, which may hold several challenges
// (`Bearer realm="…",service="…", Basic realm="x"`). Commas inside quoted
// values belong to the value; empty values (`empty=""`) are kept; scheme
// and keys are case-insensitive (returned lower-cased); a later duplicate key
// wins. An empty header gives an empty vector. Unclosed quotes, dangling
// escapes, missing '=' or missing commas between parameters are
// kInvalidArgument (the message gives the offset, never the header).
Result<std::vector<AuthChallenge>> ParseWwwAuthenticate(std::string_view header);

}  // namespace lazyroot
