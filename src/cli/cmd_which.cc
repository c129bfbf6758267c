// `lazyroot which IMAGE PATH`: the layers that touched a path, from the indexes.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>

#include "index/path_resolve.h"
#include "src/cli/cli.h"
#include "src/inspect/layer_query.h"

namespace lazyroot::cli {
namespace {

struct WhichArgs {
  std::string image, path, format = "table";
  std::vector<std::string> limits;
};

std::string Shown(std::string_view image_path) { return "/" + Displayable(image_path); }

int RunWhich(const GlobalOptions& global, const WhichArgs& args) {
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Fail(limits.status());
  // Shared, as inspect: gc cannot remove the blobs and indexes being read.
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Fail(store.status());
  auto rec = FindImage(**store, args.image);
  if (!rec.ok()) return Fail(rec.status());
  auto which = WhichPath(**store, *rec, args.path, *limits);
  if (!which.ok()) return Fail(which.status());

  if (args.format == "json") {
    rapidjson::StringBuffer sb;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("path"); w.String(Shown(which->path).c_str());
    w.Key("resolved"); w.String(Shown(which->resolved).c_str());
    w.Key("winner");
    if (which->winner) {
      w.StartObject();
      w.Key("layer"); w.Uint(*which->winner + 1);
      w.Key("digest"); w.String(rec->layer_digests[*which->winner].c_str());
      w.EndObject();
    } else {
      w.Null();
    }
    w.Key("touches");
    w.StartArray();
    for (const PathTouch& t : which->touches) {
      w.StartObject();
      w.Key("layer"); w.Uint(t.layer + 1);
      w.Key("digest"); w.String(t.digest.c_str());
      w.Key("action"); w.String(std::string(TouchActionName(t.action)).c_str());
      w.Key("path"); w.String(Shown(t.path).c_str());
      w.Key("entry"); w.String(Displayable(t.entry).c_str());
      w.Key("type"); w.String(t.type.c_str());
      if (!t.link_target.empty()) { w.Key("link_target"); w.String(Displayable(t.link_target).c_str()); }
      w.Key("wins"); w.Bool(which->winner && *which->winner == t.layer && t.path == which->resolved &&
                            t.action != TouchAction::kWhiteout && t.action != TouchAction::kOpaque);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::printf("%s\n", sb.GetString());
    return kExitOk;
  }

  std::printf("path:     %s\n", Shown(which->path).c_str());
  if (which->resolved != which->path) std::printf("resolved: %s\n", Shown(which->resolved).c_str());
  std::printf("%-5s %-19s %-9s %-8s %s\n", "LAYER", "DIGEST", "ACTION", "TYPE", "PATH");
  for (const PathTouch& t : which->touches) {
    std::string what = Shown(t.path);
    if (!t.link_target.empty()) what += " -> " + Displayable(t.link_target);
    if (JoinPath(CleanPathComponents(t.entry)) != t.path) {
      what += "  (entry " + Displayable(t.entry) + ")";
    }
    std::printf("%-5u %-19s %-9s %-8s %s\n", t.layer + 1, t.digest.substr(0, 19).c_str(),
                std::string(TouchActionName(t.action)).c_str(), t.type.empty() ? "-" : t.type.c_str(), what.c_str());
  }
  if (which->winner) {
    std::printf("wins: layer %u %s\n", *which->winner + 1, rec->layer_digests[*which->winner].c_str());
  } else {
    std::printf("wins: none (%s is not in the merged tree)\n", Shown(which->resolved).c_str());
  }
  return kExitOk;
}

}  // namespace

void AddWhichCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto args = std::make_shared<WhichArgs>();
  CLI::App* cmd = app.add_subcommand(
      "which",
      "Show every layer that touched PATH or one of its parent directories (created, replaced, whited out, made "
      "opaque) and which one the merged tree keeps; answered from the layer indexes, nothing is mounted or "
      "unpacked. Entry names are mapped through the symlinked parents that existed when their layer was applied, "
      "as the merge does. Layers count from 1 at the base.");
  cmd->add_option("IMAGE", args->image, "Image reference as pulled")->required();
  cmd->add_option("PATH", args->path, "Path inside the image")->required();
  cmd->add_option("--format", args->format,
                  "table or json (json: path, resolved, winner {layer, digest} or null, touches [{layer, digest, "
                  "action, path, entry, type, link_target, wins}])")
      ->check(CLI::IsMember({"table", "json"}));
  AddLimitOption(cmd, &args->limits);
  cmd->callback([args, &global, run] { *run = [args, &global] { return RunWhich(global, *args); }; });
}

}  // namespace lazyroot::cli
