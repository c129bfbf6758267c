// Small text helpers the parsers share: ASCII-only, locale-free (a registry
// host, a media type, a platform or an auth scheme is lowered the same way
// whatever LC_CTYPE says), and base64 as PAX xattr records and docker's
// config.json carry it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lazyroot {

// s with A-Z lowered; other bytes unchanged.
std::string AsciiLower(std::string_view s);

// Text from an image or archive as a message may show it: control bytes
// (terminal escapes, line breaks) as '?', cut at max_bytes with "…".
std::string ShownText(std::string_view s, size_t max_bytes = 256);

enum class Base64Padding {
  kRequired,  // Go's base64.StdEncoding (docker's config.json "auth")
  kOptional,  // PAX SCHILY.xattr values: bsdtar omits the '=' padding
};
// Standard alphabet; no whitespace. nullopt on any malformed input (a bad
// character, '=' other than at most two at the end, an impossible length).
std::optional<std::string> DecodeBase64(std::string_view in, Base64Padding padding);

}  // namespace lazyroot
