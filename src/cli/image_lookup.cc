// Finding a pulled image by what the user typed, and pulling it when a
// command (mount, extract) needs one that is not in the store yet.
#include <cstdio>

#include "src/cli/cli.h"
#include "src/cli/progress_render.h"
#include "src/store/index_consumer.h"
#include "src/pull/pull.h"
#include "src/image/reference.h"

namespace lazyroot::cli {

Result<ImageRecord> FindImage(Store& store, const std::string& text) {
  LAZYROOT_ASSIGN_OR_RETURN(Reference ref, ParseReference(text));
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<ImageRecord> rec, store.GetImage(ref.ToString()));
  if (!rec) return Status::NotFound("image " + ref.ToString() + ": not in the store (pull it first)");
  return std::move(*rec);
}

Result<ImageRecord> FindOrPullImage(Store& store, const std::string& text, bool pull, const Limits& limits) {
  auto rec = FindImage(store, text);
  if (rec.ok() || rec.status().code() != ErrorCode::kNotFound || !pull) return rec;
  // As `lazyroot pull IMAGE` with its defaults would (host platform, docker
  // credentials, progress on stderr); registry flags are pull's business.
  LAZYROOT_ASSIGN_OR_RETURN(Reference ref, ParseReference(text));
  std::fprintf(stderr, "lazyroot: %s is not in the store: pulling it\n", ref.ToString().c_str());
  PullOptions options;
  options.limits = limits;
  options.store_locked = true;
  options.consumer_factory = MakeIndexingConsumerFactory(store, limits);
  auto progress = MakeProgress(ProgressMode::kAuto);
  options.progress = progress.get();
  LAZYROOT_ASSIGN_OR_RETURN(PullResult pulled, Pull(store, ref, options));
  return std::move(pulled.record);
}

}  // namespace lazyroot::cli
