// Platform: os/arch[/variant] with containerd's normalisation, and the
// choice of one manifest from an index. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace lazyroot {

struct Platform {
  std::string os;       // "linux"
  std::string arch;     // "amd64", "arm64", "arm", "386", …
  std::string variant;  // "", "v7", "v8" (arm64's default v8 normalises to "")
  std::string ToString() const;  // "linux/arm/v7", "linux/amd64"
  bool operator==(const Platform&) const = default;
};

// containerd/platforms normalisation: x86_64/x86-64 -> amd64, aarch64 -> arm64,
// arm64 variant 8/v8/v8.0 -> "", armhf -> arm/v7, armel -> arm/v6, arm without
// variant -> v7, i386 -> 386, amd64 v1 -> "", macos -> darwin, os lower-cased.
Platform NormalizePlatform(Platform p);

// Parses "os/arch[/variant]" and normalises; kInvalidArgument names the text.
Result<Platform> ParsePlatform(std::string_view text);

// The platform of this machine (uname), normalised; os is always "linux".
Platform HostPlatform();

// One entry of an image index, as much as platform choice needs.
struct IndexEntry {
  std::string digest;
  std::string media_type;
  int64_t size = 0;  // the descriptor's size (ParseIndex checks it is >= 0)
  std::map<std::string, std::string> annotations;  // e.g. org.opencontainers.image.ref.name
  bool has_platform = false;
  Platform platform;  // normalised
  bool is_attestation = false;  // unknown/unknown or vnd.docker.reference.type=attestation-manifest
};

// Picks the best entry for want: exact match on os/arch, then variant
// preference (arm64 v9 > v8…; arm v7 > v6 > v5); first among equals wins.
// Attestation entries never match; neither do entries without a platform
// (picking one would need its config: containerd reads it, ggcr guesses
// linux/amd64; we refuse to guess). arm64 also runs arm/v8…v5; amd64 does
// NOT fall back to 386. Both sides are normalised. Returns the entry's position, or
// kNotFound whose message lists the platforms that exist:
//   no manifest for platform linux/s390x; available: linux/amd64, linux/arm64
Result<size_t> SelectPlatform(const std::vector<IndexEntry>& entries, const Platform& want);

}  // namespace lazyroot
