// ImageSource: where a pull reads manifests and blobs from — a registry or
// a local OCI image layout. Implementations are thread-safe: the pull fetches
// several layers at once through one source.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "index/status.h"

namespace lazyroot {

struct FetchedManifest {
  std::string body;          // raw bytes, as received (digests are of these)
  std::string content_type;  // parameters stripped; may be empty
  std::string digest;        // "sha256:<hex>" of body
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // Fetches the manifest (or index) named by a tag or "sha256:…" digest. A
  // digest fetch must hash to that digest (kCorruption otherwise). Bodies are
  // capped at 4 MiB.
  virtual Result<FetchedManifest> GetManifest(const std::string& selector) = 0;
  // Streams the blob's bytes starting at offset. on_start(actual) is called
  // once before any byte with the offset the data really starts at: offset,
  // or 0 when the source cannot resume (the caller then discards what it
  // had). A transport failure after some bytes returns kNetwork; the caller
  // may call again with a larger offset.
  virtual Status FetchBlob(const std::string& digest, uint64_t offset,
                           const std::function<Status(uint64_t actual_offset)>& on_start,
                           const std::function<Status(std::span<const uint8_t>)>& sink) = 0;
  // "127.0.0.1:5000/demo/hello", "oci:/path" — for messages.
  virtual std::string Describe() const = 0;
};

}  // namespace lazyroot
