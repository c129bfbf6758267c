// `lazyroot fsck`: check (and with --repair, fix) the store. Problems go to
// stdout, one per line, "<object>: <what is wrong>"; notes the same way after
// "note: "; a summary to stderr.
#include <unistd.h>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>

#include "src/cli/cli.h"
#include "src/cli/progress_render.h"
#include "src/image/reference.h"
#include "src/store/store_check.h"

namespace lazyroot::cli {
namespace {

struct FsckArgs {
  std::vector<std::string> images;
  std::vector<std::string> limits;
  bool repair = false, quick = false;
  std::string format = "text";
};

void PrintJson(const StoreCheckReport& report) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  for (bool problems : {true, false}) {
    w.Key(problems ? "problems" : "notes");
    w.StartArray();
    for (const StoreFinding& f : report.findings) {
      if (f.problem != problems) continue;
      w.StartObject();
      w.Key("object"); w.String(f.object.c_str());
      w.Key("what"); w.String(f.what.c_str());
      if (!f.repaired.empty()) { w.Key("repaired"); w.String(f.repaired.c_str()); }
      w.EndObject();
    }
    w.EndArray();
  }
  w.Key("pull_again");
  w.StartArray();
  for (const std::string& r : report.pull_again) w.String(r.c_str());
  w.EndArray();
  w.EndObject();
  std::printf("%s\n", sb.GetString());
}

int RunFsck(const GlobalOptions& global, const FsckArgs& args) {
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Fail(limits.status());
  StoreCheckOptions options;
  options.repair = args.repair;
  options.quick = args.quick;
  options.limits = *limits;
  for (const std::string& text : args.images) {
    auto ref = ParseReference(text);
    if (!ref.ok()) return Fail(ref.status());
    options.references.push_back(ref->ToString());
  }
  auto store = OpenStore(global);
  if (!store.ok()) return Fail(store.status());
  // A bar on a terminal, and only once there is enough to wait for.
  BarLine bar(::isatty(STDERR_FILENO) != 0, uint64_t{64} << 20);
  options.progress = [&bar](const StoreCheckProgress& p) { bar.Update(p.phase, p.done, p.total); };
  auto report = CheckStore(**store, options);
  bar.Clear();
  if (!report.ok()) return Fail(report.status());
  if (args.format == "json") {
    PrintJson(*report);
  } else {
    for (bool problems : {true, false}) {
      for (const StoreFinding& f : report->findings) {
        if (f.problem != problems) continue;
        // One line per finding whatever the names in it (a file a VM created).
        std::printf("%s%s: %s%s%s\n", problems ? "" : "note: ", Displayable(f.object).c_str(),
                    Displayable(f.what).c_str(), f.repaired.empty() ? "" : ": repaired: ",
                    Displayable(f.repaired).c_str());
      }
    }
    for (const std::string& r : report->pull_again) std::printf("pull again: %s\n", r.c_str());
  }
  std::fprintf(stderr, "lazyroot: checked %s, %s (%.1f MiB%s), %s, %s, %s: %s%s, %s\n",
               Counted(report->images, "image").c_str(), Counted(report->blobs, "blob").c_str(),
               static_cast<double>(report->blob_bytes) / (1 << 20), args.quick ? ", sizes only" : ", hashed",
               Counted(report->indexes, "layer index", "layer indexes").c_str(),
               Counted(report->trees, "tree").c_str(), Counted(report->rootfs, "cached extract").c_str(),
               Counted(report->problems(), "problem").c_str(),
               args.repair ? (", " + std::to_string(report->problems() - report->unrepaired()) + " repaired").c_str() : "",
               Counted(report->notes(), "note").c_str());
  return report->unrepaired() == 0 && report->pull_again.empty() ? kExitOk : kExitFailure;
}

}  // namespace

void AddFsckCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto args = std::make_shared<FsckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "fsck",
      "Check the store: every blob's size and SHA-256, every image record against its manifest and config, every "
      "layer index and merged tree against the ones rebuilt from the blobs, the cached extracts against their "
      "image, and tmp/. Prints one line per problem, \"<object>: <what is wrong>\", and notes (\"note: ...\": "
      "resumable partial downloads, unused blobs, leftovers of interrupted commands, which the next command or "
      "gc handles). Exit status 0: no problem (or --repair fixed them all); 1: problems remain, or --repair "
      "dropped images that must be pulled again (listed as \"pull again: REF\"); 2: usage");
  cmd->add_option("IMAGE", args->images, "Check only these images' objects (default: the whole store, with "
                                         "orphans and tmp/)");
  cmd->add_flag("--repair", args->repair,
                "Fix what can be fixed without downloading (holds the store lock exclusively): rebuild missing or "
                "wrong indexes and trees from the verified blobs; remove corrupt blobs and drop the records of the "
                "images that need them (pull those again); remove changed or unfinished cached extracts, orphan "
                "indexes and trees, and temp files of dead processes. Partial downloads and unused blobs stay "
                "(gc removes them)");
  cmd->add_flag("--quick", args->quick,
                "Sizes and structure only: no hashing of blobs, no rebuilding of indexes and trees for comparison, "
                "cached extracts compared by metadata (a changed byte of the same size goes unnoticed)");
  cmd->add_option("--format", args->format, "text or json")->check(CLI::IsMember({"text", "json"}));
  AddLimitOption(cmd, &args->limits);
  cmd->callback([args, &global, run] { *run = [args, &global] { return RunFsck(global, *args); }; });
}

}  // namespace lazyroot::cli
