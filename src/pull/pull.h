// Pull: reference -> manifest (platform chosen from an index) -> config ->
// layers, each streamed once through SHA-256, a temp file and the layer
// consumer, then published into the store and recorded. Layers download in
// parallel (bounded). A failed pull leaves blobs/, index/ and images/ as they
// were; partial downloads stay in tmp/ and the next pull resumes them.
#pragma once

#include <atomic>

#include <memory>
#include <string>

#include "index/limits.h"
#include "src/image/image_source.h"
#include "src/image/manifest.h"
#include "src/image/platform.h"
#include "src/pull/layer_consumer.h"
#include "src/pull/progress.h"
#include "src/image/reference.h"
#include "src/registry/registry_client.h"
#include "src/store/store.h"

namespace lazyroot {

struct PullOptions {
  Platform platform = HostPlatform();
  bool platform_explicit = false;  // the user named --platform (a mismatch is then an error)
  int jobs = 3;                    // concurrent layer downloads
  RegistryOptions registry;
  PullProgress* progress = nullptr;           // may be null
  LayerConsumerFactory consumer_factory;      // may be empty (give it the same limits)
  Limits limits;                              // for indexes rebuilt from stored blobs
  // The caller holds the store lock (shared) for the whole pull, as extract
  // and mount do to cover what they do with the image next; otherwise Pull
  // takes it itself.
  bool store_locked = false;
  // Set (from any thread) to stop the pull: transfers end at their next
  // chunk and Pull returns kAborted "cancelled"; what was downloaded stays
  // as a resumable partial, nothing half-written is published.
  const std::atomic<bool>* cancel = nullptr;
};

struct PullResult {
  ImageRecord record;
  int blobs_fetched = 0;        // blobs transferred by this pull (not already present)
  uint64_t bytes_fetched = 0;   // bytes received from the source
};

// Opens the registry or OCI layout a reference names.
Result<std::unique_ptr<ImageSource>> OpenImageSource(const Reference& ref, const RegistryOptions& options);

// Pulls ref into store, holding the store lock shared throughout (so gc
// waits for it; src/store/STORE.md). Errors name the reference and the object at fault:
//   pull 127.0.0.1:5000/x:1: layer sha256:ab12…: digest mismatch (got sha256:…)
Result<PullResult> Pull(Store& store, const Reference& ref, const PullOptions& options);

// What a registry (or layout) says of an image, read without pulling its
// layers: the manifest (through an index, for options.platform), the
// config (verified against its digest), and the index's platforms. Nothing
// is written to any store. Errors as Pull's.
struct RemoteImage {
  std::string reference, manifest_digest, index_digest, media_type;
  std::vector<Platform> platforms;  // of the index; empty for a single manifest
  ImageManifest manifest;
  std::string config_bytes;
  ImageConfig config;
};
Result<RemoteImage> InspectRemote(const Reference& ref, const PullOptions& options);

}  // namespace lazyroot
