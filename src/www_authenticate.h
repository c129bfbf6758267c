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
};

// Parses one header value, which may hold several challenges
// (`Bearer realm="…",service="…", Basic realm="x"`). Commas inside quoted
// values belong to the value. Unclosed quotes or dangling escapes are
// kInvalidArgument.
Result<std::vector<AuthChallenge>> ParseWwwAuthenticate(std::string_view header);

}  // namespace lazyroot
