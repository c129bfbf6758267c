// `lazyroot images`, `inspect`, `rm`, `gc`: reading and pruning the store.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>
#include <ctime>

#include "src/cli/cli.h"
#include "src/cli/inspect_json.h"
#include "src/inspect/layer_report.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"

namespace lazyroot::cli {
namespace {

void WriteStrings(JsonWriter& w, const std::vector<std::string>& v) {
  w.StartArray();
  for (const auto& s : v) w.String(s.c_str());
  w.EndArray();
}

std::string HumanSize(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1u << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1u << 30));
  else if (bytes >= (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1u << 20));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024);
  return buf;
}

}  // namespace

int ListImages(const GlobalOptions& global, const std::string& format) {
  auto store = OpenStore(global);
  if (!store.ok()) return Fail(store.status());
  auto images = (*store)->ListImages();
  if (!images.ok()) return Fail(images.status());
  if (format == "json") {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartArray();
    for (const ImageRecord& r : *images) {
      w.StartObject();
      w.Key("reference"); w.String(r.reference.c_str());
      w.Key("digest"); w.String(r.manifest_digest.c_str());
      w.Key("platform"); w.String(r.platform.c_str());
      w.Key("size"); w.Uint64(r.size);
      w.Key("pulled_at"); w.Int64(r.pulled_at);
      w.EndObject();
    }
    w.EndArray();
    std::printf("%s\n", sb.GetString());
    return kExitOk;
  }
  std::printf("%-50s %-19s %-14s %10s  %s\n", "REFERENCE", "DIGEST", "PLATFORM", "SIZE", "PULLED");
  for (const ImageRecord& r : *images) {
    char when[32] = "";
    time_t t = static_cast<time_t>(r.pulled_at);
    struct tm tm {};
    gmtime_r(&t, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    std::printf("%-50s %-19s %-14s %10s  %s\n", r.reference.c_str(), r.manifest_digest.substr(0, 19).c_str(),
                r.platform.c_str(), HumanSize(r.size).c_str(), when);
  }
  return kExitOk;
}

namespace {

int RunInspect(const GlobalOptions& global, const std::string& image, bool raw, bool config_only) {
  // Shared: gc cannot remove the blobs between finding the record and reading them.
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Fail(store.status());
  auto rec = FindImage(**store, image);
  if (!rec.ok()) return Fail(rec.status());
  auto manifest_bytes = (*store)->ReadBlob(rec->manifest_digest, 4u << 20);
  if (!manifest_bytes.ok()) return Fail(manifest_bytes.status());
  auto config_bytes = (*store)->ReadBlob(rec->config_digest, 8u << 20);
  if (!config_bytes.ok()) return Fail(config_bytes.status());
  if (raw) {
    std::fwrite(manifest_bytes->data(), 1, manifest_bytes->size(), stdout);
    return kExitOk;
  }
  if (config_only) {
    std::fwrite(config_bytes->data(), 1, config_bytes->size(), stdout);
    return kExitOk;
  }
  auto manifest = ParseImageManifest(*manifest_bytes);
  if (!manifest.ok()) return Fail(manifest.status().WithContext("manifest " + rec->manifest_digest));
  auto config = ParseImageConfig(*config_bytes);
  if (!config.ok()) return Fail(config.status().WithContext("config " + rec->config_digest));
  auto history = ParseConfigHistory(*config_bytes);
  if (!history.ok()) return Fail(history.status().WithContext("config " + rec->config_digest));
  // The history entry of each layer as docker matches them (empty_layer skipped).
  const std::vector<int> layer_history = MatchHistoryToLayers(*history, manifest->layers.size());
  std::vector<int> history_layer(history->size(), 0);
  for (size_t i = 0; i < layer_history.size(); ++i) {
    if (layer_history[i] >= 0) history_layer[static_cast<size_t>(layer_history[i])] = static_cast<int>(i + 1);
  }
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("Reference"); w.String(rec->reference.c_str());
  w.Key("Digest"); w.String(rec->manifest_digest.c_str());
  if (!rec->index_digest.empty()) { w.Key("IndexDigest"); w.String(rec->index_digest.c_str()); }
  w.Key("Platform"); w.String(rec->platform.c_str());
  w.Key("MediaType"); w.String(manifest->media_type.c_str());
  w.Key("Created"); w.String(config->created.c_str());
  w.Key("Size"); w.Uint64(rec->size);
  w.Key("Layers");
  w.StartArray();
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    w.StartObject();
    WriteLayerFields(w, i, manifest->layers[i], config->diff_ids);
    if (layer_history[i] >= 0) {
      const std::string& by = (*history)[static_cast<size_t>(layer_history[i])].created_by;
      w.Key("createdBy"); w.String(by.data(), static_cast<rapidjson::SizeType>(by.size()));
    }
    w.EndObject();
  }
  w.EndArray();
  // The config's history as is, each entry with the layer (1 = base) it made.
  w.Key("History");
  w.StartArray();
  for (size_t h = 0; h < history->size(); ++h) {
    const HistoryEntry& e = (*history)[h];
    w.StartObject();
    w.Key("created"); w.String(e.created.data(), static_cast<rapidjson::SizeType>(e.created.size()));
    w.Key("created_by"); w.String(e.created_by.data(), static_cast<rapidjson::SizeType>(e.created_by.size()));
    if (!e.author.empty()) { w.Key("author"); w.String(e.author.data(), static_cast<rapidjson::SizeType>(e.author.size())); }
    if (!e.comment.empty()) { w.Key("comment"); w.String(e.comment.data(), static_cast<rapidjson::SizeType>(e.comment.size())); }
    w.Key("empty_layer"); w.Bool(e.empty_layer);
    if (history_layer[h] > 0) { w.Key("layer"); w.Int(history_layer[h]); }
    w.EndObject();
  }
  w.EndArray();
  w.Key("DiffIDs"); WriteStrings(w, config->diff_ids);
  w.Key("Config");
  w.StartObject();
  w.Key("Entrypoint"); WriteStrings(w, config->entrypoint);
  w.Key("Cmd"); WriteStrings(w, config->cmd);
  w.Key("Env"); WriteStrings(w, config->env);
  w.Key("WorkingDir"); w.String(config->working_dir.c_str());
  w.Key("User"); w.String(config->user.c_str());
  // Docker's shape: {"80/tcp": {}}.
  w.Key("ExposedPorts");
  w.StartObject();
  for (const auto& port : config->exposed_ports) {
    w.Key(port.c_str());
    w.StartObject();
    w.EndObject();
  }
  w.EndObject();
  w.Key("Labels");
  w.StartObject();
  for (const auto& [k, v] : config->labels) {
    w.Key(k.c_str());
    w.String(v.c_str());
  }
  w.EndObject();
  w.Key("StopSignal"); w.String(config->stop_signal.c_str());
  w.EndObject();
  w.EndObject();
  std::printf("%s\n", sb.GetString());
  return kExitOk;
}

}  // namespace

void AddImageCommands(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto format = std::make_shared<std::string>("table");
  CLI::App* images = app.add_subcommand("images", "List the images in the store");
  images->add_option("--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}));
  images->callback([format, &global, run] { *run = [format, &global] { return ListImages(global, *format); }; });

  struct InspectArgs {
    std::string image;
    bool raw = false, config = false;
  };
  auto ia = std::make_shared<InspectArgs>();
  CLI::App* inspect = app.add_subcommand("inspect", "Show an image's manifest summary, layers, history and configuration (JSON)");
  inspect->add_option("IMAGE", ia->image, "Image reference as pulled")->required();
  auto* raw = inspect->add_flag("--raw", ia->raw, "Print the manifest exactly as stored");
  inspect->add_flag("--config", ia->config, "Print the image configuration exactly as stored")->excludes(raw);
  auto launch = std::make_shared<LaunchArgs>();
  AddLaunchOptions(inspect, launch.get());
  auto remote = std::make_shared<RemoteArgs>();
  AddRemoteOptions(inspect, remote.get());
  inspect->callback([ia, launch, remote, &global, run] {
    *run = [ia, launch, remote, &global] {
      if (remote->remote) {
        if (launch->launch || ia->raw || ia->config) {
          return Fail(Status::InvalidArgument("inspect --remote goes with none of --launch, --raw, --config"));
        }
        return RunInspectRemote(ia->image, *remote);
      }
      if (launch->launch) return RunInspectLaunch(global, ia->image, *launch);
      return RunInspect(global, ia->image, ia->raw, ia->config);
    };
  });

  auto rm_image = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = app.add_subcommand("rm", "Remove image records from the store (blobs stay until gc)");
  rm->alias("rmi");
  rm->add_option("IMAGE", *rm_image, "Image reference(s)")->required();
  rm->callback([rm_image, &global, run] {
    *run = [rm_image, &global]() -> int {
      // Shared, as every change to the store (src/store/STORE.md).
      auto store = OpenStoreShared(global);
      if (!store.ok()) return Fail(store.status());
      int rc = kExitOk;
      for (const std::string& text : *rm_image) {
        auto ref = ParseReference(text);
        if (!ref.ok()) return Fail(ref.status());
        Status st = (*store)->RemoveImage(ref->ToString());
        if (!st.ok()) {
          rc = Fail(st);
          continue;
        }
        std::printf("Removed %s\n", ref->ToString().c_str());
      }
      return rc;
    };
  });

  CLI::App* gc = app.add_subcommand("gc", "Delete blobs, indexes and partial downloads no image references");
  gc->callback([&global, run] {
    *run = [&global]() -> int {
      auto store = OpenStore(global);
      if (!store.ok()) return Fail(store.status());
      auto report = (*store)->Gc([] {
        std::fprintf(stderr, "lazyroot: waiting for the store lock (a pull, extract, fsck or opening mount is using "
                             "the store)\n");
      });
      if (!report.ok()) return Fail(report.status());
      std::printf("Removed %s, %s, %s, %s; freed %llu bytes\n", Counted(report->blobs_removed, "blob").c_str(),
                  Counted(report->indexes_removed, "index", "indexes").c_str(),
                  Counted(report->partials_removed, "partial download").c_str(),
                  Counted(report->rootfs_removed, "extracted tree").c_str(),
                  static_cast<unsigned long long>(report->bytes_freed));
      for (const std::string& m : report->not_removed) {
        std::fprintf(stderr, "lazyroot: not removed: %s\n", Displayable(m).c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace lazyroot::cli
