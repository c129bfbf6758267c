#include "src/store/save_image.h"

#include <fcntl.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>
#include <utility>
#include <vector>

#include "index/sha256.h"
#include "src/image/json_document.h"
#include "src/image/manifest.h"
#include "src/image/tar_writer.h"

namespace lazyroot {
namespace {

constexpr std::string_view kRefName = "org.opencontainers.image.ref.name";
constexpr std::string_view kLayoutFile = R"({"imageLayoutVersion":"1.0.0"})";

struct Blob {
  std::string digest;
  uint64_t size = 0;
};

// What is saved: the platform manifest as stored and the blobs it names.
struct Plan {
  std::string manifest, manifest_type;
  Blob manifest_blob, config;
  std::vector<std::string> layers;              // in manifest order, repeats kept
  std::vector<Blob> blobs;                      // config, layers (each once), manifest
  const std::atomic<int>* interrupt = nullptr;  // non-zero: stop, clean up, return kAborted
};

std::string Hex(const std::string& digest) { return digest.substr(7); }
std::string BlobName(const std::string& digest) { return "blobs/sha256/" + Hex(digest); }

Result<Plan> MakePlan(const Store& store, const ImageRecord& image) {
  Plan p;
  LAZYROOT_RETURN_IF_ERROR(ValidateDigest(image.manifest_digest));
  LAZYROOT_ASSIGN_OR_RETURN(p.manifest, store.ReadBlob(image.manifest_digest, kMaxManifestBytes));
  LAZYROOT_ASSIGN_OR_RETURN(p.manifest_type, ManifestMediaType("", p.manifest));
  auto parsed = ParseImageManifest(p.manifest);
  if (!parsed.ok()) return parsed.status().WithContext("manifest " + image.manifest_digest);
  p.manifest_blob = {image.manifest_digest, p.manifest.size()};
  p.config = {parsed->config.digest, static_cast<uint64_t>(parsed->config.size)};
  std::set<std::string> seen;
  p.blobs.push_back(p.config);
  seen.insert(p.config.digest);
  for (const Layer& l : parsed->layers) {
    p.layers.push_back(l.descriptor.digest);
    if (seen.insert(l.descriptor.digest).second) {
      p.blobs.push_back({l.descriptor.digest, static_cast<uint64_t>(l.descriptor.size)});
    }
  }
  if (seen.insert(p.manifest_blob.digest).second) p.blobs.push_back(p.manifest_blob);
  for (const Blob& b : p.blobs) {
    struct stat st;
    if (::stat(store.BlobPath(b.digest).c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != b.size) {
      return Status::NotFound("blob " + b.digest +
                              " of the image is missing from the store or has the wrong size "
                              "(run lazyroot fsck)");
    }
  }
  return p;
}

// Streams a store blob through sink, checking it still hashes to its digest.
Status CopyBlob(const Store& store, const Plan& p, const Blob& b,
                const std::function<Status(std::span<const uint8_t>)>& sink) {
  const std::string path = store.BlobPath(b.digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("blob " + b.digest + ": open " + path, errno);
  Sha256 hash;
  std::vector<uint8_t> buf(1 << 20);
  Status st;
  uint64_t total = 0;
  while (st.ok()) {
    if (p.interrupt != nullptr && p.interrupt->load() != 0) {
      st = Status::Aborted("interrupted");
      break;
    }
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      st = Status::FromErrno("blob " + b.digest + ": read " + path, errno);
      break;
    }
    if (n == 0) break;
    std::span<const uint8_t> chunk(buf.data(), static_cast<size_t>(n));
    hash.Update(chunk);
    total += chunk.size();
    st = sink(chunk);
  }
  ::close(fd);
  LAZYROOT_RETURN_IF_ERROR(st);
  if (total != b.size || "sha256:" + hash.FinishHex() != b.digest) {
    return Status::Corruption("blob " + b.digest + " in the store does not match its digest (run lazyroot fsck)");
  }
  return Status::Ok();
}

Status WriteAll(int fd, std::span<const uint8_t> b, const std::string& path) {
  while (!b.empty()) {
    ssize_t w = ::write(fd, b.data(), b.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path, errno);
    }
    b = b.subspan(static_cast<size_t>(w));
  }
  return Status::Ok();
}

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  return rc == 0 ? Status::Ok() : Status::FromErrno("fsync " + path, err);
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Writes a store blob to path through a temp file beside it.
Status WriteBlobFile(const Store& store, const Plan& p, const Blob& b, const std::string& path) {
  const std::string tmp = path + UniqueTempSuffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("create " + tmp, errno);
  Status st = CopyBlob(store, p, b, [&](std::span<const uint8_t> c) { return WriteAll(fd, c, tmp); });
  if (st.ok() && ::fsync(fd) != 0) st = Status::FromErrno("fsync " + tmp, errno);
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = Status::FromErrno("rename " + tmp, errno);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

// The index.json descriptor of the saved manifest.
void WriteDescriptor(rapidjson::Writer<rapidjson::StringBuffer>& w, const Plan& p, const std::string& tag,
                     const std::string& image_name) {
  w.StartObject();
  w.Key("mediaType");
  w.String(p.manifest_type.c_str());
  w.Key("digest");
  w.String(p.manifest_blob.digest.c_str());
  w.Key("size");
  w.Uint64(p.manifest_blob.size);
  if (!tag.empty() || !image_name.empty()) {
    w.Key("annotations");
    w.StartObject();
    if (!image_name.empty()) {
      w.Key("io.containerd.image.name");
      w.String(image_name.c_str());
    }
    if (!tag.empty()) {
      w.Key(kRefName.data(), static_cast<rapidjson::SizeType>(kRefName.size()));
      w.String(tag.c_str());
    }
    w.EndObject();
  }
  w.EndObject();
}

// index.json holding `existing`'s entries (if any) but those named tag, then
// the saved manifest named tag.
Result<std::string> IndexJson(const std::string* existing, const Plan& p, const std::string& tag,
                              const std::string& what, const std::string& image_name = "") {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  if (existing == nullptr) {
    w.Key("schemaVersion");
    w.Int(2);
    w.Key("manifests");
    w.StartArray();
  } else {
    LAZYROOT_ASSIGN_OR_RETURN(JsonDocument d, ParseJsonDocument(*existing, what + ": index.json", kMaxManifestBytes));
    if (!d.HasMember("manifests") || !d["manifests"].IsArray()) {
      return Status::Corruption(what + ": malformed index.json (no manifests array)");
    }
    for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
      if (std::string_view(it->name.GetString(), it->name.GetStringLength()) == "manifests") continue;
      it->name.Accept(w);
      it->value.Accept(w);
    }
    w.Key("manifests");
    w.StartArray();
    for (const auto& m : d["manifests"].GetArray()) {
      bool replaced = false;
      if (m.IsObject() && m.HasMember("annotations") && m["annotations"].IsObject()) {
        auto a = m["annotations"].FindMember(kRefName.data());
        replaced =
            !tag.empty() && a != m["annotations"].MemberEnd() && a->value.IsString() && tag == a->value.GetString();
      }
      // An untagged save replaces an untagged entry of the same manifest.
      if (tag.empty() && m.IsObject() && m.HasMember("digest") && m["digest"].IsString() &&
          p.manifest_blob.digest == m["digest"].GetString() &&
          !(m.HasMember("annotations") && m["annotations"].IsObject() && m["annotations"].HasMember(kRefName.data()))) {
        replaced = true;
      }
      if (!replaced) m.Accept(w);
    }
  }
  WriteDescriptor(w, p, tag, image_name);
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

// Holds an exclusive flock on a layout directory: two saves into one
// layout (two tags, say) each read index.json, add their entry and write it
// back, so one would otherwise lose the other's tag. The lock is on the
// directory itself, so the layout gains no file; tools that do not take it
// (skopeo) are not kept out.
class LayoutLock {
 public:
  static Result<LayoutLock> Take(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open " + dir, errno);
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::FromErrno("lock " + dir, err);
    }
    return LayoutLock(fd);
  }
  LayoutLock(LayoutLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  LayoutLock(const LayoutLock&) = delete;
  LayoutLock& operator=(const LayoutLock&) = delete;
  LayoutLock& operator=(LayoutLock&&) = delete;
  ~LayoutLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit LayoutLock(int fd) : fd_(fd) {}
  int fd_;
};

// Adds the image to the OCI layout at dir (tag replaced if there), under
// the layout's lock.
Result<SaveResult> AddToLayout(const Store& store, const Plan& p, const Reference& dest, const std::string& what) {
  const std::string& dir = dest.layout_dir;
  SaveResult r;
  r.manifest_digest = p.manifest_blob.digest;
  LAZYROOT_ASSIGN_OR_RETURN(LayoutLock lock, LayoutLock::Take(dir));
  LAZYROOT_ASSIGN_OR_RETURN(std::string lf, ReadWholeFile(dir + "/oci-layout", 1 << 16));
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument ld, ParseJsonDocument(lf, what + ": oci-layout", 1 << 16));
  if (!ld.HasMember("imageLayoutVersion") || !ld["imageLayoutVersion"].IsString()) {
    return Status::Corruption(what + ": malformed oci-layout file");
  }
  auto existing = ReadWholeFile(dir + "/index.json", kMaxManifestBytes);
  if (!existing.ok() && existing.status().code() != ErrorCode::kNotFound) return existing.status().WithContext(what);
  LAZYROOT_ASSIGN_OR_RETURN(std::string index, IndexJson(existing.ok() ? &*existing : nullptr, p, dest.tag, what));
  for (const std::string& d : {dir + "/blobs", dir + "/blobs/sha256"}) {
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(what + ": mkdir " + d, errno);
  }
  for (const Blob& b : p.blobs) {
    const std::string path = dir + "/" + BlobName(b.digest);
    // Content-addressed: a blob already there with the right size is kept
    // (skopeo does the same).
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == b.size) continue;
    LAZYROOT_RETURN_IF_ERROR(WriteBlobFile(store, p, b, path).WithContext(what));
    ++r.blobs;
    r.bytes += b.size;
  }
  LAZYROOT_RETURN_IF_ERROR(FsyncPath(dir + "/blobs/sha256"));
  LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(dir + "/index.json", index).WithContext(what));
  return r;
}

Result<SaveResult> SaveLayout(const Store& store, const Plan& p, const Reference& dest) {
  const std::string what = dest.ToString();
  const std::string& dir = dest.layout_dir;
  struct stat st;
  bool exists = ::stat(dir.c_str(), &st) == 0;
  if (exists && !S_ISDIR(st.st_mode)) return Status::InvalidArgument(what + ": exists and is not a directory");
  bool layout = exists && ::access((dir + "/oci-layout").c_str(), F_OK) == 0;
  if (exists && !layout && !ListNames(dir).empty()) {
    return Status::InvalidArgument(what + ": a directory that is neither empty nor an OCI image layout");
  }
  if (layout) return AddToLayout(store, p, dest, what);
  // A new layout: built whole under a temp name, then renamed into place.
  SaveResult r;
  r.manifest_digest = p.manifest_blob.digest;
  const std::string tmp =
      (dir.size() > 1 && dir.ends_with("/") ? dir.substr(0, dir.size() - 1) : dir) + UniqueTempSuffix();
  std::vector<std::string> made;
  bool lost_race = false;  // another save made the layout first
  auto build = [&]() -> Status {
    for (const std::string& d : {tmp, tmp + "/blobs", tmp + "/blobs/sha256"}) {
      if (::mkdir(d.c_str(), 0755) != 0) return Status::FromErrno("mkdir " + d, errno);
      made.push_back(d);
    }
    for (const Blob& b : p.blobs) {
      made.push_back(tmp + "/" + BlobName(b.digest));
      LAZYROOT_RETURN_IF_ERROR(WriteBlobFile(store, p, b, made.back()));
      r.blobs++;
      r.bytes += b.size;
    }
    made.push_back(tmp + "/oci-layout");
    LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(made.back(), kLayoutFile));
    LAZYROOT_ASSIGN_OR_RETURN(std::string index, IndexJson(nullptr, p, dest.tag, what));
    made.push_back(tmp + "/index.json");
    LAZYROOT_RETURN_IF_ERROR(WriteFileAtomic(made.back(), index));
    LAZYROOT_RETURN_IF_ERROR(FsyncPath(tmp + "/blobs/sha256"));
    LAZYROOT_RETURN_IF_ERROR(FsyncPath(tmp + "/blobs"));
    if (::rename(tmp.c_str(), dir.c_str()) != 0) {
      int err = errno;
      // rename(2) replaces an empty directory only: a concurrent save's
      // layout is there now, so add to it instead of failing.
      if ((err == ENOTEMPTY || err == EEXIST) && ::access((dir + "/oci-layout").c_str(), F_OK) == 0) {
        lost_race = true;
        return Status::Ok();
      }
      return Status::FromErrno("rename " + tmp + " to " + dir, err);
    }
    made.clear();
    return FsyncPath(Parent(dir));
  };
  Status s = build();
  for (auto it = made.rbegin(); it != made.rend(); ++it) {
    if (::unlink(it->c_str()) != 0) ::rmdir(it->c_str());
  }
  if (!s.ok()) return s.WithContext(what);
  if (lost_race) return AddToLayout(store, p, dest, what);
  return r;
}

// "busybox:latest" for docker.io/library/busybox:latest, as docker save
// writes RepoTags; other names as they are.
std::string FamiliarName(const Reference& ref) {
  std::string repo = ref.repository;
  if (ref.registry == "docker.io") {
    if (repo.starts_with("library/")) repo = repo.substr(8);
    return repo + ":" + ref.tag;
  }
  return ref.registry + "/" + repo + ":" + ref.tag;
}

Result<SaveResult> SaveArchive(const Store& store, const Plan& p, const Reference& dest, const ImageRecord& image) {
  const std::string what = dest.ToString();
  const std::string& file = dest.layout_dir;
  const bool docker = dest.transport == Reference::Transport::kDockerArchive;
  SaveResult r;
  r.manifest_digest = p.manifest_blob.digest;
  std::string index_tag = dest.tag, image_name, manifest_json;
  if (docker) {
    // RepoTags: the ref given after FILE, else the image's own name if it has a tag.
    std::string repo_tag;
    auto own = ParseReference(image.reference);
    if (!dest.archive_ref.empty() && !dest.archive_ref.starts_with("@")) {
      auto named = ParseReference(dest.archive_ref);
      if (named.ok()) repo_tag = FamiliarName(*named);
    } else if (own.ok() && own->transport == Reference::Transport::kRegistry && !own->tag.empty()) {
      repo_tag = FamiliarName(*own);
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartArray();
    w.StartObject();
    w.Key("Config");
    w.String(BlobName(p.config.digest).c_str());
    w.Key("RepoTags");
    w.StartArray();
    if (!repo_tag.empty()) w.String(repo_tag.c_str());
    w.EndArray();
    w.Key("Layers");
    w.StartArray();
    for (const std::string& l : p.layers) w.String(BlobName(l).c_str());
    w.EndArray();
    w.EndObject();
    w.EndArray();
    manifest_json.assign(sb.GetString(), sb.GetSize());
    if (!repo_tag.empty()) {
      auto named = ParseReference(repo_tag);
      if (named.ok()) {
        image_name = named->ToString();
        index_tag = named->tag;
      }
    }
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::string index, IndexJson(nullptr, p, index_tag, what, image_name));

  const std::string tmp = file + UniqueTempSuffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(what + ": create " + tmp, errno);
  TarWriter tar(fd, what);
  auto write = [&]() -> Status {
    LAZYROOT_RETURN_IF_ERROR(tar.AddDirectory("blobs/"));
    LAZYROOT_RETURN_IF_ERROR(tar.AddDirectory("blobs/sha256/"));
    for (const Blob& b : p.blobs) {
      LAZYROOT_RETURN_IF_ERROR(
          tar.AddStreamed(BlobName(b.digest), b.size, [&](const auto& sink) { return CopyBlob(store, p, b, sink); }));
      r.blobs++;
      r.bytes += b.size;
    }
    LAZYROOT_RETURN_IF_ERROR(tar.AddFile("oci-layout", kLayoutFile));
    LAZYROOT_RETURN_IF_ERROR(tar.AddFile("index.json", index));
    if (docker) LAZYROOT_RETURN_IF_ERROR(tar.AddFile("manifest.json", manifest_json));
    LAZYROOT_RETURN_IF_ERROR(tar.Finish());
    if (::fsync(fd) != 0) return Status::FromErrno("fsync " + tmp, errno);
    return Status::Ok();
  };
  Status st = write();
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), file.c_str()) != 0)
    st = Status::FromErrno("rename " + tmp + " to " + file, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st.WithContext(what);
  }
  LAZYROOT_RETURN_IF_ERROR(FsyncPath(Parent(file)));
  return r;
}

// The real path of dest's directory (a DEST that does not exist yet is
// resolved through its parent): "" when it cannot be resolved.
std::string RealDirOf(const std::string& dest, bool dest_is_dir) {
  std::string dir = dest;
  while (dir.size() > 1 && dir.ends_with("/")) dir.pop_back();
  struct stat st {};
  if (!dest_is_dir || ::stat(dir.c_str(), &st) != 0) dir = Parent(dir);
  char* real = ::realpath(dir.c_str(), nullptr);
  if (real == nullptr) return "";
  std::string out(real);
  std::free(real);
  return out;
}

// A DEST inside the store would replace its files (an archive renamed over
// a blob) or plant a layout among them: refused, whatever the path's
// spelling or symlinks.
Status RefuseInsideStore(const Store& store, const Reference& dest) {
  const std::string target = RealDirOf(dest.layout_dir, dest.transport == Reference::Transport::kOciLayout);
  char* real_root = ::realpath(store.root().c_str(), nullptr);
  if (target.empty() || real_root == nullptr) {
    std::free(real_root);
    return Status::Ok();  // the write itself reports what is missing
  }
  const std::string root(real_root);
  std::free(real_root);
  if (target == root || target.starts_with(root + "/")) {
    return Status::InvalidArgument(dest.ToString() + ": inside the store " + store.root() +
                                   " (its files are the store's own): save somewhere else");
  }
  return Status::Ok();
}

}  // namespace

Result<SaveResult> SaveImage(const Store& store, const ImageRecord& image, const Reference& dest,
                             const std::atomic<int>* interrupt) {
  if (dest.transport == Reference::Transport::kRegistry) {
    return Status::InvalidArgument("cannot save to " + dest.ToString() +
                                   ": want oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]");
  }
  if (dest.transport == Reference::Transport::kDockerArchive && dest.archive_ref.starts_with("@")) {
    return Status::InvalidArgument(dest.ToString() + ": @N picks an image to read; to write, name it with :REF");
  }
  LAZYROOT_RETURN_IF_ERROR(RefuseInsideStore(store, dest));
  LAZYROOT_ASSIGN_OR_RETURN(Plan plan, MakePlan(store, image));
  plan.interrupt = interrupt;
  if (dest.transport == Reference::Transport::kOciLayout) return SaveLayout(store, plan, dest);
  return SaveArchive(store, plan, dest, image);
}

}  // namespace lazyroot
