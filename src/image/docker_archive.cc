#include "src/image/docker_archive.h"

#include <map>
#include <tuple>

#include "index/ascii.h"
#include "index/sha256.h"
#include "index/tar_header.h"
#include "src/image/json_document.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"
#include "src/image/tar_archive.h"

namespace lazyroot {
namespace {

constexpr size_t kMaxArchiveImages = 1 << 16;
constexpr size_t kMaxArchiveLayers = 1 << 16;

std::string LayerMediaType(const std::string& magic) {
  // starts_with rather than indexing: GCC's -Wmaybe-uninitialized misreads
  // magic[0] of a string returned by value once inlined (TSan builds).
  if (magic.starts_with("\x1f\x8b")) return "application/vnd.oci.image.layer.v1.tar+gzip";
  if (magic == std::string_view("\x28\xb5\x2f\xfd", 4)) return "application/vnd.oci.image.layer.v1.tar+zstd";
  return "application/vnd.oci.image.layer.v1.tar";
}

// The normalised form of a RepoTags entry or of the user's ref ("busybox" ->
// "docker.io/library/busybox:latest"); "" when it is no registry reference.
std::string NormalisedTag(std::string_view text) {
  auto r = ParseReference(text);
  if (!r.ok() || r->transport != Reference::Transport::kRegistry || !r->digest.empty()) return "";
  return r->ToString();
}

class DockerArchiveSource final : public ImageSource {
 public:
  DockerArchiveSource(std::unique_ptr<TarArchive> archive, std::string manifest,
                      std::map<std::string, std::pair<std::string, TarArchive::Member>> blobs)
      : archive_(std::move(archive)), manifest_(std::move(manifest)), blobs_(std::move(blobs)) {
    digest_ = "sha256:" + Sha256::HexOf(std::string_view(manifest_));
  }

  Result<FetchedManifest> GetManifest(const std::string& selector) override {
    if (selector.starts_with("sha256:") && selector != digest_) {
      return Status::NotFound(archive_->what() + ": no manifest " + selector + " (its image's is " + digest_ + ")");
    }
    FetchedManifest m;
    m.body = manifest_;
    m.digest = digest_;
    m.content_type = std::string(media_type::kOciManifest);
    return m;
  }

  Status FetchBlob(const std::string& digest, uint64_t offset, const std::function<Status(uint64_t)>& on_start,
                   const std::function<Status(std::span<const uint8_t>)>& sink) override {
    auto it = blobs_.find(digest);
    if (it == blobs_.end()) return Status::NotFound("blob " + digest + ": not in " + archive_->what());
    LAZYROOT_RETURN_IF_ERROR(on_start(offset));
    return archive_->Stream(it->second.second, offset, sink, it->second.first);
  }

  std::string Describe() const override { return archive_->what(); }

 private:
  std::unique_ptr<TarArchive> archive_;
  std::string manifest_, digest_;
  std::map<std::string, std::pair<std::string, TarArchive::Member>> blobs_;  // digest -> member name, member
};

Result<std::vector<std::string>> StringArray(const JsonValue& v, const std::string& what, size_t max) {
  if (!v.IsArray()) return Status::Corruption(what + ": want an array of strings");
  if (v.Size() > max) return Status::Corruption(what + ": more than " + std::to_string(max) + " entries");
  std::vector<std::string> out;
  for (const auto& s : v.GetArray()) {
    if (!s.IsString()) return Status::Corruption(what + ": want an array of strings");
    out.emplace_back(s.GetString(), s.GetStringLength());
  }
  return out;
}

}  // namespace

Result<std::vector<DockerArchiveImage>> ParseDockerArchiveManifest(std::string_view body, const std::string& what) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument d, ParseJsonValue(body, what, kMaxManifestBytes));
  if (!d.IsArray()) return Status::Corruption(what + ": want a JSON array of images");
  if (d.Size() > kMaxArchiveImages) {
    return Status::Corruption(what + ": more than " + std::to_string(kMaxArchiveImages) + " images");
  }
  std::vector<DockerArchiveImage> out;
  for (rapidjson::SizeType i = 0; i < d.Size(); ++i) {
    const std::string at = what + "[" + std::to_string(i) + "]";
    const JsonValue& e = d[i];
    if (!e.IsObject()) return Status::Corruption(at + ": want an object");
    DockerArchiveImage img;
    auto config = e.FindMember("Config");
    if (config == e.MemberEnd() || !config->value.IsString() || config->value.GetStringLength() == 0) {
      return Status::Corruption(at + ".Config: want the config's member name");
    }
    img.config.assign(config->value.GetString(), config->value.GetStringLength());
    auto layers = e.FindMember("Layers");
    if (layers == e.MemberEnd()) return Status::Corruption(at + ".Layers: missing");
    LAZYROOT_ASSIGN_OR_RETURN(img.layers, StringArray(layers->value, at + ".Layers", kMaxArchiveLayers));
    auto tags = e.FindMember("RepoTags");
    if (tags != e.MemberEnd() && !tags->value.IsNull()) {
      LAZYROOT_ASSIGN_OR_RETURN(img.repo_tags, StringArray(tags->value, at + ".RepoTags", kMaxArchiveImages));
    }
    out.push_back(std::move(img));
  }
  if (out.empty()) return Status::Corruption(what + ": lists no image");
  return out;
}

Result<size_t> SelectDockerArchiveImage(const std::vector<DockerArchiveImage>& images, const std::string& ref,
                                        const std::string& what) {
  std::string listing;
  for (size_t i = 0; i < images.size() && listing.size() < 1024; ++i) {
    listing += listing.empty() ? "" : ", ";
    listing += "@" + std::to_string(i);
    // The archive's own text: no control bytes reach the terminal.
    for (size_t k = 0; k < images[i].repo_tags.size() && listing.size() < 1024; ++k) {
      listing += " " + ShownText(images[i].repo_tags[k]);
    }
  }
  if (ref.empty()) {
    if (images.size() == 1) return size_t{0};
    return Status::InvalidArgument(what + ": holds " + std::to_string(images.size()) + " images; name one with " +
                                   what + ":REF or :@N (" + listing + ")");
  }
  if (ref.starts_with("@")) {
    auto n = tar::ParseDecimal(std::string_view(ref).substr(1), "image index");
    if (!n.ok() || *n >= images.size()) {
      return Status::NotFound(what + ": no image " + ref + " (" + listing + ")");
    }
    return static_cast<size_t>(*n);
  }
  const std::string want = NormalisedTag(ref);
  for (size_t i = 0; i < images.size(); ++i) {
    for (const auto& t : images[i].repo_tags) {
      if (!want.empty() && NormalisedTag(t) == want) return i;
    }
  }
  return Status::NotFound(what + ": no image tagged " + ref + " (" + listing + ")");
}

std::string SynthesizeOciManifest(const std::string& config_digest, uint64_t config_size,
                                  const std::vector<std::tuple<std::string, std::string, uint64_t>>& layers) {
  std::string m = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)";
  m += R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + config_digest +
       R"(","size":)" + std::to_string(config_size) + "},";
  m += R"("layers":[)";
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& [type, digest, size] = layers[i];
    m += (i ? "," : "");
    m += R"({"mediaType":")" + type + R"(","digest":")" + digest + R"(","size":)" + std::to_string(size) + "}";
  }
  return m + "]}";
}

Result<std::unique_ptr<ImageSource>> OpenDockerArchive(const std::string& path, const std::string& ref,
                                                       const std::atomic<bool>* cancel) {
  const std::string what = "docker-archive:" + path;
  LAZYROOT_ASSIGN_OR_RETURN(std::unique_ptr<TarArchive> archive, TarArchive::Open(path, what));
  auto body = archive->Read("manifest.json", kMaxManifestBytes);
  if (!body.ok()) {
    if (body.status().code() == ErrorCode::kNotFound) {
      return Status::NotFound(what +
                              ": no manifest.json (not a docker save archive; an OCI layout's tar is "
                              "oci-archive:)");
    }
    return body.status();
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::vector<DockerArchiveImage> images,
                            ParseDockerArchiveManifest(*body, what + ": manifest.json"));
  LAZYROOT_ASSIGN_OR_RETURN(size_t pick, SelectDockerArchiveImage(images, ref, what));
  const DockerArchiveImage& img = images[pick];

  LAZYROOT_ASSIGN_OR_RETURN(TarArchive::Member config_member, archive->Find(img.config));
  LAZYROOT_ASSIGN_OR_RETURN(std::string config, archive->Read(img.config, kMaxConfigBytes));
  auto parsed = ParseImageConfig(config);
  if (!parsed.ok()) return parsed.status().WithContext(what + ": config " + ShownText(img.config));
  if (parsed->diff_ids.size() != img.layers.size()) {
    return Status::Corruption(what + ": manifest.json lists " + std::to_string(img.layers.size()) +
                              " layers but the config " + ShownText(img.config) + " has " +
                              std::to_string(parsed->diff_ids.size()) + " DiffIDs");
  }
  std::map<std::string, std::pair<std::string, TarArchive::Member>> blobs;
  const std::string config_digest = "sha256:" + Sha256::HexOf(std::string_view(config));
  blobs[config_digest] = {img.config, config_member};

  std::map<uint64_t, std::string> hashed;  // data offset -> digest: a member named twice is hashed once
  std::vector<std::tuple<std::string, std::string, uint64_t>> layers;
  for (size_t i = 0; i < img.layers.size(); ++i) {
    const std::string& name = img.layers[i];
    LAZYROOT_ASSIGN_OR_RETURN(TarArchive::Member m, archive->Find(name));
    LAZYROOT_ASSIGN_OR_RETURN(std::string magic, archive->ReadAt(m, 0, 4));
    std::string type = LayerMediaType(magic);
    std::string digest;
    if (type == "application/vnd.oci.image.layer.v1.tar") {
      // As stored is as uncompressed: the DiffID is its digest, and the pull
      // rejects the layer if its bytes hash to anything else.
      digest = parsed->diff_ids[i];
    } else if (auto h = hashed.find(m.data_offset); h != hashed.end()) {
      digest = h->second;
    } else {
      Sha256 hash;
      LAZYROOT_RETURN_IF_ERROR(archive->Stream(
          m, 0,
          [&](std::span<const uint8_t> b) {
            if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return Status::Aborted("cancelled");
            hash.Update(b);
            return Status::Ok();
          },
          name));
      digest = "sha256:" + hash.FinishHex();
      hashed[m.data_offset] = digest;
    }
    // Two members with one digest: the first serves it (the pull verifies).
    blobs.try_emplace(digest, name, m);
    layers.emplace_back(type, digest, m.size);
  }
  std::string manifest = SynthesizeOciManifest(config_digest, config.size(), layers);
  return std::unique_ptr<ImageSource>(
      new DockerArchiveSource(std::move(archive), std::move(manifest), std::move(blobs)));
}

}  // namespace lazyroot
