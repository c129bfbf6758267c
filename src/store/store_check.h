// CheckStore: `lazyroot fsck`. Checks every object of a store against what
// vouches for it — blobs against their digests and the descriptors naming
// them, image records against their manifests, layer indexes and trees
// against what the blobs and the merge give when rebuilt in memory, cached
// extracts against their image's tree — and, with repair, puts the store
// back into a state every command accepts. It never downloads.
//
// A finding is a problem or a note:
//  - a problem is something a command would trip over or serve wrongly: a
//    blob whose bytes or size are wrong, a record whose manifest, config or
//    layers are missing or inconsistent, a missing or wrong layer index, a
//    wrong tree, a cached extract that differs from its image, a file that
//    has no business in the store. No interrupted command leaves one behind
//    (every publish is an atomic rename), so a problem means damage.
//  - a note is what an interrupted or concurrent command leaves and the next
//    command or `gc` deals with: partial downloads (resumable), blobs no
//    image uses, indexes without blob, trees without image, temp files of
//    dead processes, staged indexes, extract dirs never finished. Work whose
//    owner is alive (its lock is held, its pid runs) is left alone entirely.
// So after `kill -9` of any command a store has notes only (fsck exits 0).
//
// Repair (store lock exclusive) rebuilds missing or wrong indexes and trees
// from the verified blobs (atomic writes), drops the records of images whose
// blobs are missing or corrupt (listed in pull_again), then removes corrupt
// blobs, orphan indexes and trees, temp files and dirs of dead processes,
// unfinished or changed cached extracts (the next extract rebuilds them) and
// stray files. Resumable partial downloads and unused blobs stay for the
// next pull or `gc`. Without repair the store lock is taken shared and
// nothing is written.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "index/limits.h"
#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot {

struct StoreFinding {
  bool problem = true;   // false: a note
  std::string object;    // "blob sha256:<hex>", "layer index sha256:<hex>", "tree sha256:<hex>",
                         // "image <reference>", or the path under the store ("tmp/<name>", "rootfs/<hex>")
  std::string what;      // what is wrong (problem) or what it is (note)
  std::string repaired;  // with repair: what was done about it; "" if nothing
};

struct StoreCheckProgress {
  const char* phase = "";  // "blobs" (units are bytes), "images", "rootfs" (units are objects)
  uint64_t done = 0, total = 0;
};

struct StoreCheckOptions {
  bool repair = false;
  // Sizes and structure only: no hashing of blobs, no rebuilding of indexes
  // and trees, cached extracts compared by metadata only.
  bool quick = false;
  // Normalised references (Reference::ToString()): check only these images'
  // objects (their record, blobs, indexes, tree and cached extract). Empty:
  // the whole store, including orphans and tmp/. An unknown one is kNotFound.
  std::vector<std::string> references;
  // Indexes and trees are rebuilt under these, as a pull and a mount would.
  Limits limits;
  // Called from the checking thread, often (every MiB hashed).
  std::function<void(const StoreCheckProgress&)> progress;
};

struct StoreCheckReport {
  std::vector<StoreFinding> findings;   // in check order
  std::vector<std::string> pull_again;  // references whose records repair dropped
  uint64_t blobs = 0, blob_bytes = 0, images = 0, indexes = 0, trees = 0, rootfs = 0;
  size_t problems() const;
  size_t notes() const;
  // Problems that repair did not fix (all of them without repair).
  size_t unrepaired() const;
};

// Takes the store lock (exclusive with repair, shared otherwise) for the
// whole check. Errors are only for a check that could not run (the store
// lock, an unknown reference); everything found wrong is a finding.
Result<StoreCheckReport> CheckStore(Store& store, const StoreCheckOptions& options);

}  // namespace lazyroot
