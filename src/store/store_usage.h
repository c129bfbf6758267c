// StoreUsage: what a store holds on disk, for `lazyroot df`. Bytes are
// allocated bytes (st_blocks * 512), as du(1) counts them: directories
// included, a file with several hard links once (where the walk meets it
// first), other file systems mounted inside (a launcher's bind mounts in a
// cached extract) not entered. What gc would reclaim follows gc's own rule
// (LiveSet, from Store::LiveImages without sweeping). Per image: the bytes
// of its blobs (manifest, index, config, layers) and layer indexes, split
// into unique (no other record names them) and shared.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot {

struct UsageBytes {
  uint64_t bytes = 0;  // allocated
  uint64_t files = 0;  // regular files (in tmp/: the *.partial downloads)
};

struct ImageUsage {
  std::string reference, manifest_digest;
  uint64_t unique_bytes = 0, shared_bytes = 0;
};

struct StoreUsage {
  UsageBytes blobs;                // blobs/
  UsageBytes indexes;              // index/
  UsageBytes trees;                // trees/
  UsageBytes rootfs;               // rootfs/: cached extracts, stale ones and their leftovers
  UsageBytes partials;             // tmp/: partial downloads, staged indexes, download locks
  UsageBytes other;                // images/, inuse/, store.lock, the root directory itself
  uint64_t total = 0;              // all of the above (du -sx of the root)
  uint64_t reclaimable = 0;        // what gc would remove, of the total
  std::vector<ImageUsage> images;  // one per record, in ListImages order
};

// Measures store. REQUIRES: the store lock, held (shared is enough).
// Errors: a record that cannot be read (kCorruption naming it); an
// unreadable directory is an IoError naming it.
Result<StoreUsage> MeasureStore(Store& store);

}  // namespace lazyroot
