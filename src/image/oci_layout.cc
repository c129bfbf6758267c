#include "src/image/oci_layout.h"

#include <fcntl.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <cerrno>
#include <vector>

#include "index/ascii.h"
#include "index/sha256.h"
#include "src/common/file_io.h"
#include "src/image/json_document.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"
#include "src/image/tar_archive.h"

namespace lazyroot {
namespace {

constexpr uint64_t kMaxLayoutFile = 1 << 16;  // {"imageLayoutVersion":"1.0.0"}

class DirectoryFiles final : public LayoutFiles {
 public:
  explicit DirectoryFiles(std::string dir) : dir_(std::move(dir)) {}
  Result<std::string> Read(const std::string& name, uint64_t cap) const override {
    return ReadWholeFile(dir_ + "/" + name, cap);
  }
  Status Stream(const std::string& name, uint64_t offset, const std::function<Status(uint64_t)>& on_start,
                const std::function<Status(std::span<const uint8_t>)>& sink) const override {
    std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return Status::NotFound(name + ": not in " + Describe());
      return Status::FromErrno("open " + path, err);
    }
    Status st = on_start(offset);
    std::vector<uint8_t> buf(1 << 20);
    while (st.ok()) {
      ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        st = Status::FromErrno("read " + path, errno);
        break;
      }
      if (n == 0) break;
      offset += static_cast<uint64_t>(n);
      st = sink(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    }
    ::close(fd);
    return st;
  }
  std::string Describe() const override { return "oci:" + dir_; }

 private:
  std::string dir_;
};

class ArchiveFiles final : public LayoutFiles {
 public:
  explicit ArchiveFiles(std::unique_ptr<TarArchive> archive) : archive_(std::move(archive)) {}
  Result<std::string> Read(const std::string& name, uint64_t cap) const override { return archive_->Read(name, cap); }
  Status Stream(const std::string& name, uint64_t offset, const std::function<Status(uint64_t)>& on_start,
                const std::function<Status(std::span<const uint8_t>)>& sink) const override {
    LAZYROOT_ASSIGN_OR_RETURN(TarArchive::Member m, archive_->Find(name));
    LAZYROOT_RETURN_IF_ERROR(on_start(offset));
    return archive_->Stream(m, offset, sink, name);
  }
  std::string Describe() const override { return archive_->what(); }

 private:
  std::unique_ptr<TarArchive> archive_;
};

class OciLayoutSource final : public ImageSource {
 public:
  OciLayoutSource(std::shared_ptr<const LayoutFiles> files, std::string top_digest, std::string top_type)
      : files_(std::move(files)), top_digest_(std::move(top_digest)), top_type_(std::move(top_type)) {}

  Result<FetchedManifest> GetManifest(const std::string& selector) override {
    // The layout's index.json picked the top manifest; selectors other than
    // a digest mean "that one".
    std::string digest = selector.starts_with("sha256:") ? selector : top_digest_;
    LAZYROOT_RETURN_IF_ERROR(ValidateDigest(digest));
    auto body = files_->Read(BlobName(digest), kMaxManifestBytes);
    if (!body.ok()) return body.status().WithContext(files_->Describe() + ": manifest " + digest);
    FetchedManifest m;
    m.body = std::move(*body);
    m.digest = "sha256:" + Sha256::HexOf(std::string_view(m.body));
    if (m.digest != digest) {
      return Status::Corruption(files_->Describe() + ": manifest " + digest + ": digest mismatch (got " + m.digest + ")");
    }
    if (digest == top_digest_) m.content_type = top_type_;
    return m;
  }

  Status FetchBlob(const std::string& digest, uint64_t offset, const std::function<Status(uint64_t)>& on_start,
                   const std::function<Status(std::span<const uint8_t>)>& sink) override {
    LAZYROOT_RETURN_IF_ERROR(ValidateDigest(digest));
    Status st = files_->Stream(BlobName(digest), offset, on_start, sink);
    if (st.code() == ErrorCode::kNotFound) return Status::NotFound("blob " + digest + ": not in " + files_->Describe());
    return st.ok() ? st : st.WithContext("blob " + digest);
  }

  std::string Describe() const override { return files_->Describe(); }

 private:
  static std::string BlobName(const std::string& digest) { return "blobs/sha256/" + digest.substr(7); }
  std::shared_ptr<const LayoutFiles> files_;
  std::string top_digest_, top_type_;
};

}  // namespace

Result<std::unique_ptr<ImageSource>> OpenOciLayout(std::shared_ptr<const LayoutFiles> files, const std::string& tag) {
  const std::string what = files->Describe();
  auto layout = files->Read("oci-layout", kMaxLayoutFile);
  if (!layout.ok()) return Status::NotFound(what + ": not an OCI image layout (no oci-layout file)");
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument ld, ParseJsonDocument(*layout, what + ": oci-layout", kMaxLayoutFile));
  if (!ld.HasMember("imageLayoutVersion") || !ld["imageLayoutVersion"].IsString()) {
    return Status::Corruption(what + ": malformed oci-layout file");
  }
  auto index = files->Read("index.json", kMaxManifestBytes);
  if (!index.ok()) return index.status().WithContext(what);
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument d, ParseJsonDocument(*index, what + ": index.json", kMaxManifestBytes));
  if (!d.HasMember("manifests") || !d["manifests"].IsArray()) {
    return Status::Corruption(what + ": malformed index.json");
  }
  std::vector<std::pair<std::string, std::string>> matches;  // digest, media type
  std::vector<std::string> names;
  for (const auto& m : d["manifests"].GetArray()) {
    if (!m.IsObject() || !m.HasMember("digest") || !m["digest"].IsString()) {
      return Status::Corruption(what + ": index.json entry without a digest");
    }
    std::string name;
    if (m.HasMember("annotations") && m["annotations"].IsObject() &&
        m["annotations"].HasMember("org.opencontainers.image.ref.name") &&
        m["annotations"]["org.opencontainers.image.ref.name"].IsString()) {
      name = m["annotations"]["org.opencontainers.image.ref.name"].GetString();
    }
    names.push_back(name.empty() ? std::string("(untagged)") : name);
    std::string type = m.HasMember("mediaType") && m["mediaType"].IsString() ? m["mediaType"].GetString() : "";
    if (tag.empty() || name == tag) matches.emplace_back(m["digest"].GetString(), type);
  }
  // The names are the archive's: shown without control bytes, and a few
  // of them only (index.json may list thousands).
  std::string listing;
  for (size_t i = 0; i < names.size(); ++i) {
    if (listing.size() > 1024) {
      listing += ", … (" + std::to_string(names.size() - i) + " more)";
      break;
    }
    listing += (listing.empty() ? "" : ", ") + ShownText(names[i]);
  }
  if (matches.empty()) {
    return Status::NotFound(what + ": no image tagged \"" + ShownText(tag) +
                            "\" (tags: " + (listing.empty() ? "none" : listing) + ")");
  }
  if (matches.size() > 1) {
    return Status::InvalidArgument(what + ": holds several images; name one with " + what + ":TAG (tags: " +
                                   listing + ")");
  }
  LAZYROOT_RETURN_IF_ERROR(ValidateDigest(matches[0].first));
  return std::unique_ptr<ImageSource>(new OciLayoutSource(std::move(files), matches[0].first, matches[0].second));
}

Result<std::unique_ptr<ImageSource>> OpenOciLayout(const std::string& dir, const std::string& tag) {
  return OpenOciLayout(std::make_shared<DirectoryFiles>(dir), tag);
}

Result<std::unique_ptr<ImageSource>> OpenOciArchive(const std::string& path, const std::string& tag) {
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<TarArchive> archive, TarArchive::Open(path, "oci-archive:" + path));
  return OpenOciLayout(std::make_shared<ArchiveFiles>(std::move(archive)), tag);
}

}  // namespace lazyroot
