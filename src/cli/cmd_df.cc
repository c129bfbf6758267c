// `lazyroot df`: the store's disk usage by kind, per image (unique and
// shared), and what gc would reclaim (src/store/store_usage.h).
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>

#include "src/cli/cli.h"
#include "src/pull/transfer_rate.h"
#include "src/store/store_usage.h"

namespace lazyroot::cli {
namespace {

int RunDf(const GlobalOptions& global, const std::string& format) {
  // Shared: pulls and mounts go on; gc waits until the count is done.
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Fail(store.status());
  auto usage = MeasureStore(**store);
  if (!usage.ok()) return Fail(usage.status());
  const StoreUsage& u = *usage;
  const std::pair<const char*, const UsageBytes*> kinds[] = {{"blobs", &u.blobs},       {"indexes", &u.indexes},
                                                             {"trees", &u.trees},       {"rootfs", &u.rootfs},
                                                             {"partials", &u.partials}, {"other", &u.other}};
  if (format == "json") {
    rapidjson::StringBuffer sb;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("root");
    w.String((*store)->root().c_str());
    w.Key("unit");
    w.String("allocated bytes");
    for (const auto& [name, k] : kinds) {
      w.Key(name);
      w.StartObject();
      w.Key("bytes");
      w.Uint64(k->bytes);
      w.Key("files");
      w.Uint64(k->files);
      w.EndObject();
    }
    w.Key("total");
    w.Uint64(u.total);
    w.Key("reclaimable");
    w.Uint64(u.reclaimable);
    w.Key("images");
    w.StartArray();
    for (const ImageUsage& i : u.images) {
      w.StartObject();
      w.Key("reference");
      w.String(i.reference.c_str());
      w.Key("digest");
      w.String(i.manifest_digest.c_str());
      w.Key("unique");
      w.Uint64(i.unique_bytes);
      w.Key("shared");
      w.Uint64(i.shared_bytes);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::printf("%s\n", sb.GetString());
    return kExitOk;
  }
  static const char* const kLabels[] = {"blobs",         "layer indexes",     "merged trees",
                                        "cached rootfs", "partial downloads", "other"};
  std::printf("%-18s %8s %11s\n", "KIND", "FILES", "SIZE");
  for (size_t i = 0; i < std::size(kinds); ++i) {
    std::printf("%-18s %8llu %11s\n", kLabels[i], static_cast<unsigned long long>(kinds[i].second->files),
                HumanBytes(kinds[i].second->bytes).c_str());
  }
  std::printf("%-18s %8s %11s\n", "total", "", HumanBytes(u.total).c_str());
  std::printf("gc would reclaim %s\n", HumanBytes(u.reclaimable).c_str());
  if (!u.images.empty()) {
    std::printf("\n%-11s %-11s %s\n", "UNIQUE", "SHARED", "IMAGE");
    for (const ImageUsage& i : u.images) {
      std::printf("%-11s %-11s %s\n", HumanBytes(i.unique_bytes).c_str(), HumanBytes(i.shared_bytes).c_str(),
                  Displayable(i.reference).c_str());
    }
  }
  return kExitOk;
}

}  // namespace

void AddDfCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto format = std::make_shared<std::string>("table");
  CLI::App* cmd = app.add_subcommand(
      "df",
      "Show the store's disk usage: blobs, layer indexes, merged trees, cached rootfs (extracts), partial "
      "downloads; per image the bytes of its blobs and layer indexes no other image shares (UNIQUE, what `rm` then "
      "`gc` frees) and the rest (SHARED); and what `gc` would reclaim now. Sizes are allocated bytes "
      "(st_blocks * 512, as du counts them: directories included, a hard-linked file once, other file systems "
      "mounted inside not entered).");
  cmd->add_option("--format", *format,
                  "table or json (json: root, unit, blobs/indexes/trees/rootfs/partials/other {bytes, files}, total, "
                  "reclaimable, images [{reference, digest, unique, shared}])")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([format, &global, run] { *run = [format, &global] { return RunDf(global, *format); }; });
}

}  // namespace lazyroot::cli
