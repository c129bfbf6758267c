// `lazyroot diff IMAGE_A IMAGE_B [PATH]`: what changed between the merged
// trees of two pulled images, from the trees and the layer indexes (contents
// by the per-file SHA-256 recorded at pull), like diff(1)'s exit status.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cinttypes>
#include <cstdio>

#include "src/cli/cli.h"
#include "src/inspect/image_diff.h"

namespace lazyroot::cli {
namespace {

// diff(1): 0 the same, 1 different, 2 trouble.
constexpr int kExitSame = 0;
constexpr int kExitDiffer = 1;
constexpr int kExitTrouble = 2;

struct DiffArgs {
  std::string image_a, image_b, path, format = "table";
  bool mtime = false;
  std::vector<std::string> limits;
};

std::string_view TypeWord(NodeType t) {
  switch (t) {
    case NodeType::kRegular: return "file";
    case NodeType::kDirectory: return "dir";
    case NodeType::kSymlink: return "symlink";
    case NodeType::kCharDevice: return "char";
    case NodeType::kBlockDevice: return "block";
    case NodeType::kFifo: return "fifo";
  }
  return "?";
}

std::string Shown(const std::string& path, const DiffSide& s) {
  std::string p = "/" + Displayable(path);
  if (s.type == NodeType::kDirectory && p != "/") p += "/";
  return p;
}

std::string Octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

std::string Hex(const Digest32& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "sha256:";
  for (uint8_t b : d) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

// "dir, 12 entries" / "file, 120 bytes" / "symlink -> target".
std::string Describe(const DiffSide& s) {
  std::string out(TypeWord(s.type));
  if (s.type == NodeType::kDirectory) out += ", " + std::to_string(s.entries) + (s.entries == 1 ? " entry" : " entries");
  if (s.type == NodeType::kRegular) out += ", " + std::to_string(s.size) + " bytes";
  if (s.type == NodeType::kSymlink) out += " -> " + Displayable(s.link_target);
  return out;
}

// What changed, with the values: "size 1021 -> 1100, content".
std::string Details(const DiffChange& c) {
  const DiffSide& a = *c.a;
  const DiffSide& b = *c.b;
  std::vector<std::string> parts;
  auto arrow = [](const std::string& x, const std::string& y) { return x + " -> " + y; };
  if (c.what & kDiffType) parts.push_back("type " + arrow(Describe(a), Describe(b)));
  if (c.what & kDiffMode) parts.push_back("mode " + arrow(Octal(a.mode), Octal(b.mode)));
  if (c.what & kDiffOwner) {
    parts.push_back("owner " + arrow(std::to_string(a.uid) + ":" + std::to_string(a.gid),
                                     std::to_string(b.uid) + ":" + std::to_string(b.gid)));
  }
  if (c.what & kDiffSize) parts.push_back("size " + arrow(std::to_string(a.size), std::to_string(b.size)));
  if (c.what & kDiffContent) parts.push_back("content");
  if (c.what & kDiffTarget) parts.push_back("link target " + arrow(Displayable(a.link_target), Displayable(b.link_target)));
  if (c.what & kDiffXattrs) {
    std::string names;
    for (const std::string& n : c.xattr_names) names += (names.empty() ? "" : " ") + Displayable(n);
    parts.push_back("xattrs (" + names + ")");
  }
  if (c.what & kDiffLinks) parts.push_back("links " + arrow(std::to_string(a.nlink), std::to_string(b.nlink)));
  if (c.what & kDiffDevice) {
    parts.push_back("device " + arrow(std::to_string(a.rdev_major) + "," + std::to_string(a.rdev_minor),
                                      std::to_string(b.rdev_major) + "," + std::to_string(b.rdev_minor)));
  }
  if (c.what & kDiffMtime) parts.push_back("mtime " + arrow(std::to_string(a.mtime_sec), std::to_string(b.mtime_sec)));
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

struct Counts {
  uint64_t added = 0, removed = 0, modified = 0;
};

Counts CountOf(const ImageDiff& d) {
  Counts n;
  for (const DiffChange& c : d.changes) {
    if (c.kind == DiffKind::kAdded) ++n.added;
    if (c.kind == DiffKind::kRemoved) ++n.removed;
    if (c.kind == DiffKind::kModified) ++n.modified;
  }
  return n;
}

void PrintTable(const ImageDiff& d, const DiffArgs& args) {
  for (const DiffChange& c : d.changes) {
    switch (c.kind) {
      case DiffKind::kAdded:
        std::printf("A %s  %s\n", Shown(c.path, *c.b).c_str(), Describe(*c.b).c_str());
        break;
      case DiffKind::kRemoved:
        std::printf("D %s  %s\n", Shown(c.path, *c.a).c_str(), Describe(*c.a).c_str());
        break;
      case DiffKind::kModified:
        std::printf("M %s  %s\n", Shown(c.path, *c.b).c_str(), Details(c).c_str());
        break;
    }
  }
  const Counts n = CountOf(d);
  std::printf("%" PRIu64 " added, %" PRIu64 " removed, %" PRIu64 " changed%s\n", n.added, n.removed, n.modified,
              args.mtime ? "" : " (mtimes not compared: --mtime)");
}

void WriteSide(rapidjson::PrettyWriter<rapidjson::StringBuffer>& w, const DiffSide& s) {
  w.StartObject();
  w.Key("type"); w.String(std::string(TypeWord(s.type)).c_str());
  w.Key("mode"); w.Uint(s.mode);
  w.Key("uid"); w.Uint(s.uid);
  w.Key("gid"); w.Uint(s.gid);
  w.Key("size"); w.Uint64(s.size);
  w.Key("mtime"); w.Int64(s.mtime_sec);
  if (s.type != NodeType::kDirectory) { w.Key("links"); w.Uint(s.nlink); }
  if (s.type == NodeType::kDirectory) { w.Key("entries"); w.Uint64(s.entries); }
  if (s.type == NodeType::kSymlink) { w.Key("link_target"); w.String(Displayable(s.link_target).c_str()); }
  if (s.type == NodeType::kCharDevice || s.type == NodeType::kBlockDevice) {
    w.Key("rdev_major"); w.Uint(s.rdev_major);
    w.Key("rdev_minor"); w.Uint(s.rdev_minor);
  }
  if (s.digest) { w.Key("digest"); w.String(Hex(*s.digest).c_str()); }
  w.Key("layer"); w.Uint(s.layer + 1);
  w.EndObject();
}

void PrintJson(const ImageDiff& d, const DiffArgs& args, const ImageRecord& a, const ImageRecord& b) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("a"); w.String(a.reference.c_str());
  w.Key("b"); w.String(b.reference.c_str());
  w.Key("path"); w.String(("/" + Displayable(d.path)).c_str());
  w.Key("mtime_compared"); w.Bool(args.mtime);
  w.Key("changes");
  w.StartArray();
  for (const DiffChange& c : d.changes) {
    w.StartObject();
    w.Key("path"); w.String(("/" + Displayable(c.path)).c_str());
    w.Key("change");
    w.String(c.kind == DiffKind::kAdded ? "added" : c.kind == DiffKind::kRemoved ? "removed" : "modified");
    if (c.kind == DiffKind::kModified) {
      w.Key("what");
      w.StartArray();
      for (std::string_view n : DiffWhatNames(c.what)) w.String(std::string(n).c_str());
      w.EndArray();
      if (c.what & kDiffXattrs) {
        w.Key("xattrs");
        w.StartArray();
        for (const std::string& n : c.xattr_names) w.String(Displayable(n).c_str());
        w.EndArray();
      }
    }
    if (c.a) { w.Key("a"); WriteSide(w, *c.a); }
    if (c.b) { w.Key("b"); WriteSide(w, *c.b); }
    w.EndObject();
  }
  w.EndArray();
  const Counts n = CountOf(d);
  w.Key("summary");
  w.StartObject();
  w.Key("added"); w.Uint64(n.added);
  w.Key("removed"); w.Uint64(n.removed);
  w.Key("modified"); w.Uint64(n.modified);
  w.EndObject();
  w.EndObject();
  std::printf("%s\n", sb.GetString());
}

int Trouble(const Status& st) {
  Fail(st);
  return kExitTrouble;
}

int RunDiff(const GlobalOptions& global, const DiffArgs& args) {
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Trouble(limits.status());
  // Shared, as ls: gc cannot remove the blobs, trees and indexes being read.
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Trouble(store.status());
  auto a = FindImage(**store, args.image_a);
  if (!a.ok()) return Trouble(a.status());
  auto b = FindImage(**store, args.image_b);
  if (!b.ok()) return Trouble(b.status());
  DiffOptions options;
  options.mtime = args.mtime;
  auto d = DiffImages(**store, *a, *b, args.path, options, *limits);
  if (!d.ok()) return Trouble(d.status());
  if (args.format == "json") {
    PrintJson(*d, args, *a, *b);
  } else {
    PrintTable(*d, args);
  }
  if (std::fflush(stdout) != 0) return Trouble(Status::IoError("writing to stdout failed"));
  return d->changes.empty() ? kExitSame : kExitDiffer;
}

}  // namespace

void AddDiffCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto args = std::make_shared<DiffArgs>();
  CLI::App* diff = app.add_subcommand(
      "diff",
      "Compare the merged trees of two pulled images (or what lies below PATH in each): one line per path, "
      "A added, D removed, M changed with what changed, old -> new (type, mode, owner uid:gid, size, content, "
      "link target, xattrs, hard link count, device numbers; mtime only with --mtime), then a summary line. An added or "
      "removed directory is one line with the number of entries below it; a path whose type changed is not "
      "descended into. Contents are compared without decompressing: equal when both read the same bytes of the "
      "same layer blob, else by the SHA-256 of each file recorded in the layer index at pull (a sparse file's "
      "digest covers its sparse map and stored bytes, so a file stored sparse in one image and not in the other "
      "shows as changed; the layer indexes of images pulled by an older lazyroot have no digests and are rebuilt "
      "from their blobs once, with a notice). Directories are shown with a trailing /. PATH's parent symlinks are "
      "resolved inside each image; PATH itself is not followed.");
  diff->footer("Exit status, as diff(1): 0 no differences, 1 differences, 2 trouble (a usage error or a failure).");
  diff->add_option("IMAGE_A", args->image_a, "The old image, a reference as pulled")->required();
  diff->add_option("IMAGE_B", args->image_b, "The new image, a reference as pulled")->required();
  diff->add_option("PATH", args->path, "Compare only this path and what is below it (default: /)");
  diff->add_flag("--mtime", args->mtime,
                 "Also compare modification times (off by default: rebuilding an image changes them all)");
  diff->add_option("--format", args->format,
                   "table or json (json: a, b, path, mtime_compared, changes [path, change added/removed/modified, "
                   "what, xattrs, a and b: type, mode, uid, gid, size, mtime, links, entries, link_target, "
                   "rdev_major/minor, digest when compared by digest, layer], summary)")
      ->check(CLI::IsMember({"table", "json"}));
  AddLimitOption(diff, &args->limits);
  diff->callback([args, &global, run] { *run = [args, &global] { return RunDiff(global, *args); }; });
}

}  // namespace lazyroot::cli
