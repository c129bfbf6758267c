// What `inspect` (a pulled image) and `inspect --remote` (the registry's)
// write alike, so that the two stay one format.
#pragma once

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <string>
#include <vector>

#include "src/image/manifest.h"

namespace lazyroot::cli {

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

inline void WriteString(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// Into the object the caller opened for layer i (0 = base) of a manifest:
// index (1 = base), digest, size, mediaType and, when the config has it,
// diffID.
inline void WriteLayerFields(JsonWriter& w, size_t i, const Layer& layer, const std::vector<std::string>& diff_ids) {
  w.Key("index");
  w.Uint64(i + 1);
  w.Key("digest");
  WriteString(w, layer.descriptor.digest);
  w.Key("size");
  w.Int64(layer.descriptor.size);
  w.Key("mediaType");
  WriteString(w, layer.descriptor.media_type);
  if (i < diff_ids.size()) {
    w.Key("diffID");
    WriteString(w, diff_ids[i]);
  }
}

}  // namespace lazyroot::cli
