// JsonDocument: the one way lazyroot reads a JSON document. Every one comes
// from someone else — manifests, indexes and configs from a registry or an
// OCI layout, token answers, credential-helper output, docker/containers
// config files, the store's image records — so each is read under a byte
// cap stated by its caller and a nesting limit enforced while parsing.
// RapidJSON's iterative parser keeps the stack flat whatever the input; the
// nesting limit keeps the DOM shallow for whoever walks it afterwards (and
// the parse cheap: a 200,000-deep document stops after 65 brackets).
// Pure; thread-safe.
#pragma once

#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

// Arrays and objects open at once. Real manifests, configs and config.json
// files nest 3 to 5 deep.
inline constexpr int kMaxJsonDepth = 64;
// Values (scalars, arrays, objects) in one document. Real documents hold a
// few thousand; each costs 16 bytes in the DOM and as much again on the
// parse stack, so a capped 8 MiB "[0,0,…]" (4 M values) would cost 128 MiB.
inline constexpr uint64_t kMaxJsonValues = uint64_t{1} << 20;

// RapidJSON's CrtAllocator returns NULL when malloc fails, and RapidJSON
// writes through it; this one throws std::bad_alloc instead, which the
// thread and main boundaries turn into "out of memory".
class JsonHeapAllocator {
 public:
  static const bool kNeedFree = true;
  void* Malloc(size_t size);
  void* Realloc(void* ptr, size_t old_size, size_t new_size);
  static void Free(void* ptr);
};

using JsonDocument =
    rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<JsonHeapAllocator>, JsonHeapAllocator>;
using JsonValue = JsonDocument::ValueType;

// Parses text (what names it: "manifest", "config.json at /h/.docker/...")
// into a document whose root is an object. Errors carry `code` and name
// what:
//   "<what>: larger than <max_bytes> bytes"            (checked before parsing)
//   "<what>: JSON nested deeper than 64 levels at offset N"
//   "<what>: more than 1048576 JSON values at offset N"
//   "<what> is not valid JSON: <reason> at offset N"
//   "<what> is not a JSON object"
// Messages never quote the text (it may hold secrets). Throws std::bad_alloc
// when memory runs out.
Result<JsonDocument> ParseJsonDocument(std::string_view text, std::string_view what, uint64_t max_bytes,
                                              ErrorCode code = ErrorCode::kCorruption);

// ParseJsonDocument for a document whose root may be any value (docker
// save's manifest.json is an array); the same caps and messages.
Result<JsonDocument> ParseJsonValue(std::string_view text, std::string_view what, uint64_t max_bytes,
                                   ErrorCode code = ErrorCode::kCorruption);

}  // namespace lazyroot
