// `lazyroot layers`: what each layer of a pulled image adds, replaces and
// deletes, and the bytes it ships that never reach the merged tree
// (src/inspect/layer_report.h), as a table or JSON.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>

#include "src/cli/cli.h"
#include "src/inspect/layer_report.h"

namespace lazyroot::cli {
namespace {

struct LayersArgs {
  std::string image;
  std::string format = "table";
  std::vector<std::string> limits;
};

std::string Bytes(uint64_t n) {
  char buf[32];
  if (n >= (uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.1fG", static_cast<double>(n) / (1u << 30));
  else if (n >= (uint64_t{1} << 20)) std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / (1u << 20));
  else if (n >= 1024) std::snprintf(buf, sizeof buf, "%.1fK", static_cast<double>(n) / 1024);
  else std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(n));
  return buf;
}

// "tar+gzip" out of "application/vnd.oci.image.layer.v1.tar+gzip", "tar.gzip" out of Docker's.
std::string ShortMediaType(const std::string& t) {
  size_t at = t.rfind(".tar");
  return at == std::string::npos ? t : t.substr(at + 1);
}

void PrintJson(const ImageLayerReport& r) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("layers");
  w.StartArray();
  for (const LayerStats& s : r.layers) {
    w.StartObject();
    w.Key("index"); w.Uint(s.index);
    w.Key("digest"); w.String(s.digest.c_str());
    w.Key("diff_id"); w.String(s.diff_id.c_str());
    w.Key("media_type"); w.String(s.media_type.c_str());
    w.Key("compressed_size"); w.Uint64(s.compressed_size);
    w.Key("uncompressed_size"); w.Uint64(s.uncompressed_size);
    w.Key("entries"); w.Uint64(s.entries);
    w.Key("added"); w.Uint64(s.added);
    w.Key("modified"); w.Uint64(s.modified);
    w.Key("deleted"); w.Uint64(s.deleted);
    w.Key("opaque"); w.Uint64(s.opaque);
    w.Key("bytes_added"); w.Uint64(s.bytes_added);
    w.Key("bytes_shadowed"); w.Uint64(s.bytes_shadowed);
    w.Key("created_by"); w.String(s.created_by.data(), static_cast<rapidjson::SizeType>(s.created_by.size()));
    w.EndObject();
  }
  w.EndArray();
  w.Key("bytes_shipped"); w.Uint64(r.bytes_shipped);
  w.Key("bytes_merged"); w.Uint64(r.bytes_merged);
  w.Key("bytes_wasted"); w.Uint64(r.bytes_wasted);
  w.Key("efficiency"); w.Double(r.efficiency);
  w.EndObject();
  std::printf("%s\n", sb.GetString());
}

void PrintTable(const ImageLayerReport& r) {
  std::printf("%3s  %-19s  %-9s  %8s  %8s  %7s  %6s  %6s  %6s  %4s  %8s  %8s  %s\n", "#", "DIGEST", "TYPE", "SIZE",
              "UNPACKED", "ENTRIES", "ADDED", "MODIF", "DELETD", "OPQ", "BYTES", "SHADOWED", "CREATED BY");
  for (const LayerStats& s : r.layers) {
    std::string by = Displayable(s.created_by);
    if (by.size() > 60) by = by.substr(0, 57) + "...";
    std::printf("%3u  %-19s  %-9s  %8s  %8s  %7llu  %6llu  %6llu  %6llu  %4llu  %8s  %8s  %s\n", s.index,
                s.digest.substr(0, 19).c_str(), ShortMediaType(s.media_type).c_str(), Bytes(s.compressed_size).c_str(),
                Bytes(s.uncompressed_size).c_str(), static_cast<unsigned long long>(s.entries),
                static_cast<unsigned long long>(s.added), static_cast<unsigned long long>(s.modified),
                static_cast<unsigned long long>(s.deleted), static_cast<unsigned long long>(s.opaque),
                Bytes(s.bytes_added).c_str(), Bytes(s.bytes_shadowed).c_str(), by.c_str());
  }
  std::printf("\nFile bytes shipped: %llu (%s); reaching the merged tree: %llu (%s)\n",
              static_cast<unsigned long long>(r.bytes_shipped), Bytes(r.bytes_shipped).c_str(),
              static_cast<unsigned long long>(r.bytes_merged), Bytes(r.bytes_merged).c_str());
  std::printf("Wasted bytes: %llu (%s); efficiency: %.2f%%\n", static_cast<unsigned long long>(r.bytes_wasted),
              Bytes(r.bytes_wasted).c_str(), 100.0 * r.efficiency);
}

int RunLayers(const GlobalOptions& global, const LayersArgs& a) {
  auto limits = ResolveLimits(a.limits);
  if (!limits.ok()) return Fail(limits.status());
  // Shared, as inspect: gc cannot remove the indexes and blobs being read.
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Fail(store.status());
  auto rec = FindImage(**store, a.image);
  if (!rec.ok()) return Fail(rec.status());
  auto report = ComputeLayerReport(**store, *rec, *limits);
  if (!report.ok()) return Fail(report.status());
  if (a.format == "json") PrintJson(*report);
  else PrintTable(*report);
  return kExitOk;
}

}  // namespace

void AddLayersCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto a = std::make_shared<LayersArgs>();
  CLI::App* cmd = app.add_subcommand(
      "layers", "Per layer of a pulled image: what it adds, modifies and deletes, and its wasted bytes");
  cmd->footer(
      "Read from the stored layer indexes, no layer is decompressed (a missing or damaged index is\n"
      "rebuilt from its blob first, as mount does). Per layer, base = 1:\n"
      "  ENTRIES   tar entries, whiteouts included\n"
      "  ADDED     non-directory, non-whiteout entries at a path the layers below did not have\n"
      "  MODIF     non-directory, non-whiteout entries at a path the layers below had\n"
      "  DELETD    .wh.NAME whiteouts;  OPQ: .wh..wh..opq opaque directory markers\n"
      "  BYTES     sizes of the layer's regular files (hardlinks add none)\n"
      "  SHADOWED  of those, bytes no name of the merged tree keeps: replaced or whited out by later\n"
      "            layers, or rewritten by the layer itself (a file a hardlink still names is kept)\n"
      "  CREATED BY  the config history's created_by (entries with empty_layer skipped, as docker does)\n"
      "Totals: wasted bytes = shipped file bytes that do not reach the merged tree; efficiency =\n"
      "merged / shipped (1 when nothing is shipped). Paths are compared after lexical cleaning;\n"
      "symlinked parent directories are not resolved. --format json gives the same figures in\n"
      "bytes, with each layer's diff_id and full media type.");
  cmd->add_option("IMAGE", a->image, "Image reference as pulled")->required();
  cmd->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  AddLimitOption(cmd, &a->limits);
  cmd->callback([a, &global, run] { *run = [a, &global] { return RunLayers(global, *a); }; });
}

}  // namespace lazyroot::cli
