// `lazyroot ls IMAGE [PATH]` and `lazyroot cat IMAGE PATH`: the merged tree (or
// the merge of the first N layers, or one layer's own entries) listed and
// read without mounting or unpacking.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <optional>

#include "index/path_resolve.h"
#include "src/cli/cli.h"
#include "src/store/open_image.h"
#include "src/inspect/layer_query.h"

namespace lazyroot::cli {
namespace {

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

struct LsArgs {
  std::string image, path, format = "table";
  bool long_format = false, recursive = false;
  std::string layer_arg, upto_arg;  // as typed: N or a digest prefix ("" = not given)
  uint32_t layer = 0, upto = 0;     // resolved, from 1; 0: not given
  std::vector<std::string> limits;
};

// --layer / --upto as typed to 1-based layer numbers of rec (0: not given).
Status ResolveLayerArgs(const ImageRecord& rec, const std::string& layer_arg, const std::string& upto_arg,
                        uint32_t* layer, uint32_t* upto) {
  if (!layer_arg.empty()) {
    LAZYROOT_ASSIGN_OR_RETURN(uint32_t i, ResolveLayerArg(rec, layer_arg));
    *layer = i + 1;
  }
  if (!upto_arg.empty()) {
    LAZYROOT_ASSIGN_OR_RETURN(uint32_t i, ResolveLayerArg(rec, upto_arg));
    *upto = i + 1;
  }
  return Status::Ok();
}

// What ls prints of one entry, from a tree node or a layer's tar entry.
struct Listed {
  std::string path;  // image path, "" = root
  char type = '-';   // ls -l's first letter
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime = 0;
  std::string link_target;  // symlinks; hardlinks (layer listings) as "link to"
  bool hardlink = false;
  uint32_t layer = 0;  // 0 = bottom
};

char TypeLetter(NodeType t) {
  switch (t) {
    case NodeType::kRegular: return '-';
    case NodeType::kDirectory: return 'd';
    case NodeType::kSymlink: return 'l';
    case NodeType::kCharDevice: return 'c';
    case NodeType::kBlockDevice: return 'b';
    case NodeType::kFifo: return 'p';
  }
  return '?';
}

char TypeLetter(EntryType t) {
  switch (t) {
    case EntryType::kRegular: return '-';
    case EntryType::kHardlink: return 'h';
    case EntryType::kDirectory: return 'd';
    case EntryType::kSymlink: return 'l';
    case EntryType::kCharDevice: return 'c';
    case EntryType::kBlockDevice: return 'b';
    case EntryType::kFifo: return 'p';
  }
  return '?';
}

std::string_view TypeWord(char letter) {
  switch (letter) {
    case '-': return "file";
    case 'd': return "dir";
    case 'l': return "symlink";
    case 'h': return "hardlink";
    case 'c': return "char";
    case 'b': return "block";
    case 'p': return "fifo";
  }
  return "?";
}

std::string ModeString(char type, uint32_t mode) {
  std::string s(1, type == 'h' ? '-' : type);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (mode & (0400u >> i)) ? rwx[i] : '-';
  if (mode & S_ISUID) s[3] = (mode & 0100) ? 's' : 'S';
  if (mode & S_ISGID) s[6] = (mode & 0010) ? 's' : 'S';
  if (mode & S_ISVTX) s[9] = (mode & 0001) ? 't' : 'T';
  return s;
}

Listed FromNode(const ImageTree& tree, NodeId id, std::string path) {
  Node n = tree.GetNode(id);
  Listed l;
  l.path = std::move(path);
  l.type = TypeLetter(n.type);
  l.mode = n.mode;
  l.uid = n.uid;
  l.gid = n.gid;
  l.size = n.size;
  l.mtime = n.mtime_sec;
  l.link_target = std::string(n.symlink_target);
  l.layer = n.layer;
  return l;
}

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// The entry at `path`: parents resolved in-root; the last component followed
// too when it is a symlink unless `keep_link` (ls -l shows the link itself).
Result<std::pair<NodeId, std::string>> Find(const ImageTree& tree, const std::string& path, bool keep_link) {
  std::vector<std::string> c = CleanPathComponents(path);
  if (c.empty()) return std::pair<NodeId, std::string>{ImageTree::kRoot, ""};
  std::string last = c.back();
  c.pop_back();
  LAZYROOT_ASSIGN_OR_RETURN(auto parent, ResolveInRoot(tree, c));
  std::optional<NodeId> dir = parent.nodes.empty() ? std::optional<NodeId>(ImageTree::kRoot) : parent.nodes.back();
  std::optional<NodeId> id;
  if (dir && tree.IsDir(*dir)) id = tree.Lookup(*dir, last);
  parent.components.push_back(last);
  std::string where = JoinPath(parent.components);
  if (!id) return Status::NotFound("/" + where + ": no such file or directory in the image");
  if (tree.IsSymlink(*id) && !keep_link) {
    LAZYROOT_ASSIGN_OR_RETURN(auto full, ResolveInRoot(tree, CleanPathComponents(where)));
    if (full.nodes.empty()) return std::pair<NodeId, std::string>{ImageTree::kRoot, ""};
    if (!full.nodes.back()) return Status::NotFound("/" + where + ": a dangling symlink");
    return std::pair<NodeId, std::string>{*full.nodes.back(), JoinPath(full.components)};
  }
  return std::pair<NodeId, std::string>{*id, where};
}

void ListTree(const ImageTree& tree, NodeId dir, const std::string& path, bool recursive, std::vector<Listed>* out) {
  for (uint32_t i = 0; i < tree.ChildCount(dir); ++i) {
    DirEntry d = tree.ChildAt(dir, i);
    std::string p = Join(path, d.name);
    out->push_back(FromNode(tree, d.node, p));
    if (recursive && tree.IsDir(d.node)) ListTree(tree, d.node, p, recursive, out);
  }
}

void Print(const std::vector<Listed>& items, const LsArgs& args) {
  if (args.format == "json") {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartArray();
    for (const Listed& l : items) {
      w.StartObject();
      w.Key("path"); w.String(("/" + Displayable(l.path)).c_str());
      w.Key("type"); w.String(std::string(TypeWord(l.type)).c_str());
      w.Key("mode"); w.Uint(l.mode);
      w.Key("uid"); w.Uint(l.uid);
      w.Key("gid"); w.Uint(l.gid);
      w.Key("size"); w.Uint64(l.size);
      w.Key("mtime"); w.Int64(l.mtime);
      if (l.type == 'l' || l.type == 'h') { w.Key("link_target"); w.String(Displayable(l.link_target).c_str()); }
      w.Key("layer"); w.Uint(l.layer + 1);
      w.EndObject();
    }
    w.EndArray();
    std::printf("%s\n", sb.GetString());
    return;
  }
  for (const Listed& l : items) {
    // -R prints image paths (like find), a plain listing the names.
    std::string name = Displayable(args.recursive ? "/" + l.path : l.path.substr(l.path.rfind('/') + 1));
    if (!args.long_format) {
      std::printf("%s\n", name.c_str());
      continue;
    }
    char when[32] = "";
    time_t t = static_cast<time_t>(l.mtime);
    struct tm tm {};
    gmtime_r(&t, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    std::string link;
    if (l.type == 'l') link = " -> " + Displayable(l.link_target);
    if (l.type == 'h') link = " link to " + Displayable(l.link_target);
    std::printf("%s %5u %5u %12llu %s %s%s\n", ModeString(l.type, l.mode).c_str(), l.uid, l.gid,
                static_cast<unsigned long long>(l.size), when, name.c_str(), link.c_str());
  }
}

int RunLayerLs(Store& store, const ImageRecord& rec, const LsArgs& args, const Limits& limits) {
  auto entries = LayerEntries(store, rec, args.layer - 1, limits);
  if (!entries.ok()) return Fail(entries.status());
  std::vector<std::string> base = CleanPathComponents(args.path);
  std::vector<Listed> items;
  bool found = base.empty();
  for (const TarEntry& e : *entries) {
    std::vector<std::string> c = CleanPathComponents(e.path);
    if (c.size() < base.size() || !std::equal(base.begin(), base.end(), c.begin())) continue;
    if (c.size() == base.size()) {
      found = true;
      if (e.type != EntryType::kDirectory) {
        // The path names a non-directory: list that entry alone.
      } else {
        continue;
      }
    } else if (!args.recursive && c.size() != base.size() + 1) {
      continue;
    }
    found = true;
    Listed l;
    l.path = JoinPath(c);
    l.type = TypeLetter(e.type);
    l.mode = e.mode;
    l.uid = e.uid;
    l.gid = e.gid;
    l.size = e.size;
    l.mtime = e.mtime_sec;
    l.link_target = e.link_target;
    l.layer = args.layer - 1;
    items.push_back(std::move(l));
  }
  if (!found) {
    return Fail(Status::NotFound("layer " + std::to_string(args.layer) + " has no entry /" + JoinPath(base)));
  }
  Print(items, args);
  return kExitOk;
}

int RunLs(const GlobalOptions& global, LsArgs args) {
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Fail(limits.status());
  // Shared, as inspect: gc cannot remove the blobs and indexes being read.
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Fail(store.status());
  auto rec = FindImage(**store, args.image);
  if (!rec.ok()) return Fail(rec.status());
  if (Status st = ResolveLayerArgs(*rec, args.layer_arg, args.upto_arg, &args.layer, &args.upto); !st.ok()) {
    return Fail(st);
  }
  if (args.layer != 0) return RunLayerLs(**store, *rec, args, *limits);
  uint32_t upto = args.upto != 0 ? args.upto : static_cast<uint32_t>(rec->layer_digests.size());
  auto tree = TreeUpTo(**store, *rec, upto, *limits);
  if (!tree.ok()) return Fail(tree.status());
  auto found = Find(*tree, args.path, args.long_format && !args.recursive);
  if (!found.ok()) return Fail(found.status());
  auto [id, path] = *found;
  std::vector<Listed> items;
  if (tree->IsDir(id)) {
    ListTree(*tree, id, path, args.recursive, &items);
  } else {
    items.push_back(FromNode(*tree, id, path));
  }
  Print(items, args);
  return kExitOk;
}

struct CatArgs {
  std::string image, path;
  std::string layer_arg, upto_arg;  // as typed: N or a digest prefix ("" = not given)
  uint32_t layer = 0, upto = 0;     // resolved, from 1; 0: not given
  std::vector<std::string> limits;
};

// Writes `size` bytes of the layer's uncompressed stream at `offset` to stdout.
Status CopyStream(RandomReader& reader, uint64_t offset, uint64_t size) {
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t done = 0; done < size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(reader.Read(offset + done, std::span<uint8_t>(buf.data(), want), &n));
    if (n == 0) return Status::Corruption("the layer stream ends inside the file");
    if (std::fwrite(buf.data(), 1, n, stdout) != n) return Status::IoError("writing to stdout failed");
    done += n;
  }
  return Status::Ok();
}

int RunCat(const GlobalOptions& global, CatArgs args) {
  auto limits = ResolveLimits(args.limits);
  if (!limits.ok()) return Fail(limits.status());
  auto store = OpenStoreShared(global);
  if (!store.ok()) return Fail(store.status());
  auto rec = FindImage(**store, args.image);
  if (!rec.ok()) return Fail(rec.status());
  if (Status st = ResolveLayerArgs(*rec, args.layer_arg, args.upto_arg, &args.layer, &args.upto); !st.ok()) {
    return Fail(st);
  }
  OpenImageOptions open_options;
  open_options.limits = *limits;
  // The blobs, read through VerifiedByteSource: every byte checked against
  // the chunk digests recorded at pull, as the mount reads them.
  auto image = OpenImage(**store, *rec, open_options);
  if (!image.ok()) return Fail(image.status());
  const std::string shown = "/" + JoinPath(CleanPathComponents(args.path));
  if (args.layer != 0) {
    auto entries = LayerEntries(**store, *rec, args.layer - 1, *limits);
    if (!entries.ok()) return Fail(entries.status());
    std::vector<std::string> want = CleanPathComponents(args.path);
    const TarEntry* hit = nullptr;
    for (const TarEntry& e : *entries) {
      if (CleanPathComponents(e.path) == want) hit = &e;  // the last one, as tar extracts it
    }
    if (hit == nullptr) return Fail(Status::NotFound("layer " + std::to_string(args.layer) + " has no entry " + shown));
    // A hardlink reads as the entry it names: the last one of that name before it.
    for (int hops = 0; hit->type == EntryType::kHardlink && hops < 64; ++hops) {
      std::vector<std::string> target = CleanPathComponents(hit->link_target);
      const TarEntry* next = nullptr;
      for (const TarEntry& e : *entries) {
        if (&e == hit) break;
        if (CleanPathComponents(e.path) == target) next = &e;
      }
      if (next == nullptr) {
        return Fail(Status::NotFound(shown + " in layer " + std::to_string(args.layer) + " links to " +
                                     hit->link_target + ", which the layer does not hold before it"));
      }
      hit = next;
    }
    const std::string in_layer = shown + " in layer " + std::to_string(args.layer);
    if (hit->type != EntryType::kRegular) return Fail(Status::Unsupported(in_layer + " is not a regular file"));
    if (!hit->sparse.empty()) {
      return Fail(Status::Unsupported(in_layer + " is sparse: read it from the merged tree (without --layer)"));
    }
    auto reader = image->content->NewReader(args.layer - 1);
    Status st = CopyStream(*reader, hit->data_offset, hit->stored_size);
    if (!st.ok()) return Fail(st.WithContext(shown));
    return kExitOk;
  }
  std::optional<ImageTree> upto_tree;
  const ImageTree* tree = image->tree.get();
  if (args.upto != 0 && args.upto != rec->layer_digests.size()) {
    auto t = TreeUpTo(**store, *rec, args.upto, *limits);
    if (!t.ok()) return Fail(t.status());
    upto_tree = std::move(*t);
    tree = &*upto_tree;
  }
  auto found = Find(*tree, args.path, false);
  if (!found.ok()) return Fail(found.status());
  NodeId id = found->first;
  Node node = tree->GetNode(id);
  if (node.type != NodeType::kRegular) return Fail(Status::Unsupported(shown + " is not a regular file"));
  auto reader = image->content->NewReader(node.layer);
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0; off < node.size;) {
    size_t n = 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), node.size - off));
    Status st = ReadFileData(*tree, id, *reader, off, std::span<uint8_t>(buf.data(), want), &n);
    if (!st.ok()) return Fail(st);
    if (n == 0) return Fail(Status::Corruption(shown + ": ends early"));
    if (std::fwrite(buf.data(), 1, n, stdout) != n) return Fail(Status::IoError("writing to stdout failed"));
    off += n;
  }
  if (std::fflush(stdout) != 0) return Fail(Status::IoError("writing to stdout failed"));
  return kExitOk;
}

}  // namespace

void AddLsCommands(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto args = std::make_shared<LsArgs>();
  CLI::App* ls = app.add_subcommand(
      "ls",
      "List a directory of an image's merged tree (or of the merge of its first N layers, or of one layer's own "
      "entries) from the store, without mounting or unpacking. Symlinks on the way are followed inside the image; "
      "with -l a symlink named last is shown itself. Without IMAGE: the images in the store, as `images`.");
  ls->add_option("IMAGE", args->image, "Image reference as pulled");
  ls->add_option("PATH", args->path, "Directory or file inside the image (default: /)");
  ls->add_flag("-l,--long", args->long_format, "Mode, owner (uid gid), size, mtime (UTC) and symlink target");
  ls->add_flag("-R,--recursive", args->recursive, "Everything below PATH, one image path per line (like find)");
  auto* layer = ls->add_option("--layer", args->layer_arg,
                               "Layer N's own entries as its tar has them (whiteout files included, names not "
                               "resolved through symlinks); N from 1 at the base, or a digest prefix (>= 4 hex "
                               "digits, with or without sha256:, matching one layer)");
  ls->add_option("--upto", args->upto_arg,
                 "The merge of layers 1..N only (N or a digest prefix: up to and including that layer)")
      ->excludes(layer);
  ls->add_option("--format", args->format, "table or json (json: path, type, mode, uid, gid, size, mtime, "
                                           "link_target, layer)")
      ->check(CLI::IsMember({"table", "json"}));
  AddLimitOption(ls, &args->limits);
  ls->callback([args, &global, run] {
    *run = [args, &global] { return args->image.empty() ? ListImages(global, args->format) : RunLs(global, *args); };
  });

  auto cargs = std::make_shared<CatArgs>();
  CLI::App* cat = app.add_subcommand(
      "cat",
      "Write a regular file of an image to stdout, read from the compressed layers with every byte verified as the "
      "mount does; symlinks are followed inside the image.");
  cat->add_option("IMAGE", cargs->image, "Image reference as pulled")->required();
  cat->add_option("PATH", cargs->path, "File inside the image")->required();
  auto* clayer = cat->add_option("--layer", cargs->layer_arg,
                                 "The file as layer N's tar has it (N from 1 at the base, or a digest prefix: >= 4 "
                                 "hex digits, with or without sha256:, matching one layer)");
  cat->add_option("--upto", cargs->upto_arg,
                  "The file in the merge of layers 1..N only (N or a digest prefix: up to and including that layer)")
      ->excludes(clayer);
  AddLimitOption(cat, &cargs->limits);
  cat->callback([cargs, &global, run] { *run = [cargs, &global] { return RunCat(global, *cargs); }; });
}

}  // namespace lazyroot::cli
