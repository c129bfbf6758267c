#include "src/image/manifest.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <string>

#include "index/ascii.h"
#include "src/image/json_document.h"
#include "src/image/reference.h"

namespace lazyroot {
namespace {

using Value = JsonValue;

constexpr std::string_view kSchema1Message = "schema 1 manifests are not supported; rebuild or re-push the image";
constexpr std::string_view kAttestationAnnotation = "vnd.docker.reference.type";

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The member named key, or nullptr. A key that appears twice is an error:
// parsers that keep the first and parsers that keep the last would read two
// different images from the same bytes.
Result<const Value*> Find(const Value& obj, std::string_view key, std::string_view where) {
  const Value* found = nullptr;
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    if (std::string_view(it->name.GetString(), it->name.GetStringLength()) != key) continue;
    if (found != nullptr) return Status::Corruption(std::string(where) + ": duplicate key " + Quote(key));
    found = &it->value;
  }
  return found;
}

std::string Path(std::string_view where, std::string_view key) { return std::string(where) + "." + std::string(key); }

// Reads an optional string; null counts as absent.
Status GetString(const Value& obj, std::string_view key, std::string_view where, std::string* out,
                 bool required = false) {
  LAZYROOT_ASSIGN_OR_RETURN(const Value* v, Find(obj, key, where));
  if (v == nullptr || v->IsNull()) {
    if (required) return Status::Corruption(Path(where, key) + " is missing");
    return Status::Ok();
  }
  if (!v->IsString()) return Status::Corruption(Path(where, key) + ": want a string");
  out->assign(v->GetString(), v->GetStringLength());
  return Status::Ok();
}

// Reads an optional array of strings; null counts as absent (Docker writes
// "Cmd": null).
Status GetStringArray(const Value& obj, std::string_view key, std::string_view where, std::vector<std::string>* out) {
  LAZYROOT_ASSIGN_OR_RETURN(const Value* v, Find(obj, key, where));
  out->clear();
  if (v == nullptr || v->IsNull()) return Status::Ok();
  if (!v->IsArray()) return Status::Corruption(Path(where, key) + ": want an array of strings");
  for (const Value& e : v->GetArray()) {
    if (!e.IsString()) return Status::Corruption(Path(where, key) + ": want an array of strings");
    out->emplace_back(e.GetString(), e.GetStringLength());
  }
  return Status::Ok();
}

Status GetStringMap(const Value& obj, std::string_view key, std::string_view where,
                    std::map<std::string, std::string>* out) {
  LAZYROOT_ASSIGN_OR_RETURN(const Value* v, Find(obj, key, where));
  out->clear();
  if (v == nullptr || v->IsNull()) return Status::Ok();
  if (!v->IsObject()) return Status::Corruption(Path(where, key) + ": want an object of strings");
  for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it) {
    if (!it->value.IsString()) {
      return Status::Corruption(Path(where, key) + "[" + Quote(it->name.GetString()) + "]: want a string");
    }
    (*out)[std::string(it->name.GetString(), it->name.GetStringLength())] =
        std::string(it->value.GetString(), it->value.GetStringLength());
  }
  return Status::Ok();
}

Status CheckSchemaVersion(const Value& obj, std::string_view where) {
  LAZYROOT_ASSIGN_OR_RETURN(const Value* v, Find(obj, "schemaVersion", where));
  if (v == nullptr) return Status::Ok();
  if (!v->IsInt64()) return Status::Corruption(Path(where, "schemaVersion") + ": want an integer");
  if (v->GetInt64() == 1) return Status::Unsupported(std::string(kSchema1Message));
  if (v->GetInt64() != 2) {
    return Status::Unsupported(std::string(where) + ": unsupported schemaVersion " + std::to_string(v->GetInt64()));
  }
  return Status::Ok();
}

Status CheckDigest(const std::string& digest, std::string_view where) {
  Status st = ValidateDigest(digest);
  if (!st.ok()) return Status::Corruption(Path(where, "digest") + ": " + st.message());
  return Status::Ok();
}

Result<Descriptor> ParseDescriptor(const Value& v, const std::string& where) {
  if (!v.IsObject()) return Status::Corruption(where + ": want an object");
  Descriptor d;
  LAZYROOT_RETURN_IF_ERROR(GetString(v, "mediaType", where, &d.media_type, /*required=*/true));
  LAZYROOT_RETURN_IF_ERROR(GetString(v, "digest", where, &d.digest, /*required=*/true));
  LAZYROOT_RETURN_IF_ERROR(CheckDigest(d.digest, where));
  LAZYROOT_ASSIGN_OR_RETURN(const Value* size, Find(v, "size", where));
  if (size == nullptr) return Status::Corruption(Path(where, "size") + " is missing");
  if (!size->IsInt64()) return Status::Corruption(Path(where, "size") + ": want an integer");
  if (size->GetInt64() < 0) {
    return Status::Corruption(Path(where, "size") + ": negative size " + std::to_string(size->GetInt64()));
  }
  d.size = size->GetInt64();
  LAZYROOT_RETURN_IF_ERROR(GetStringMap(v, "annotations", where, &d.annotations));
  LAZYROOT_RETURN_IF_ERROR(GetStringArray(v, "urls", where, &d.urls));
  return d;
}

std::string_view StripParameters(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && (content_type.front() == ' ' || content_type.front() == '\t')) {
    content_type.remove_prefix(1);
  }
  while (!content_type.empty() && (content_type.back() == ' ' || content_type.back() == '\t')) {
    content_type.remove_suffix(1);
  }
  return content_type;
}

bool IsSchema1(std::string_view mt) {
  return mt == media_type::kDockerSchema1 || mt == media_type::kDockerSchema1Signed;
}
bool IsIndexType(std::string_view mt) { return mt == media_type::kOciIndex || mt == media_type::kDockerList; }
bool IsManifestType(std::string_view mt) { return mt == media_type::kOciManifest || mt == media_type::kDockerManifest; }
// What registries and proxies send when they do not know: sniff the body.
bool IsGenericType(std::string_view mt) {
  return mt.empty() || mt == "application/json" || mt == "text/plain" || mt == "application/octet-stream" ||
         mt == "binary/octet-stream";
}

}  // namespace

Result<std::string> ManifestMediaType(std::string_view content_type, std::string_view body) {
  std::string ct = AsciiLower(StripParameters(content_type));
  if (IsSchema1(ct)) return Status::Unsupported(std::string(kSchema1Message));
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc,
                            ParseJsonDocument(body, IsIndexType(ct) ? "index" : "manifest", kMaxManifestBytes));
  LAZYROOT_RETURN_IF_ERROR(CheckSchemaVersion(doc, "manifest"));
  LAZYROOT_ASSIGN_OR_RETURN(const Value* fs_layers, Find(doc, "fsLayers", "manifest"));
  if (fs_layers != nullptr) return Status::Unsupported(std::string(kSchema1Message));
  std::string body_type;
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "mediaType", "manifest", &body_type));
  if (IsSchema1(body_type)) return Status::Unsupported(std::string(kSchema1Message));

  if (!IsGenericType(ct)) {
    if (!IsIndexType(ct) && !IsManifestType(ct)) {
      return Status::Unsupported("unsupported manifest media type " + Quote(ct));
    }
    // CVE-2021-41190: the bytes must not be read as a different kind of
    // document than the registry served.
    if (!body_type.empty() && body_type != ct) {
      return Status::Corruption("manifest mediaType " + Quote(body_type) + " does not match Content-Type " + Quote(ct));
    }
    return ct;
  }
  if (!body_type.empty()) {
    if (IsIndexType(body_type) || IsManifestType(body_type)) return body_type;
    return Status::Unsupported("unsupported manifest media type " + Quote(body_type));
  }
  LAZYROOT_ASSIGN_OR_RETURN(const Value* manifests, Find(doc, "manifests", "manifest"));
  if (manifests != nullptr && manifests->IsArray()) return std::string(media_type::kOciIndex);
  LAZYROOT_ASSIGN_OR_RETURN(const Value* config, Find(doc, "config", "manifest"));
  LAZYROOT_ASSIGN_OR_RETURN(const Value* layers, Find(doc, "layers", "manifest"));
  if (config != nullptr && config->IsObject() && layers != nullptr && layers->IsArray()) {
    return std::string(media_type::kOciManifest);
  }
  return Status::Unsupported("cannot tell the manifest kind: no mediaType, no known Content-Type (" + Quote(ct) +
                             "), and neither manifests[] nor config+layers");
}

Result<ManifestKind> ClassifyManifest(std::string_view content_type, std::string_view body) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string mt, ManifestMediaType(content_type, body));
  return IsIndexType(mt) ? ManifestKind::kIndex : ManifestKind::kManifest;
}

Result<Compression> LayerCompression(std::string_view media_type) {
  struct Known {
    std::string_view media_type;
    Compression compression;
  };
  static constexpr std::array<Known, 10> kKnown = {{
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip},
  }};
  for (const Known& k : kKnown) {
    if (k.media_type == media_type) return k.compression;
  }
  if (media_type.find("+encrypted") != std::string_view::npos) {
    return Status::Unsupported("encrypted layer media type " + Quote(media_type) + " is not supported");
  }
  return Status::Unsupported("unsupported layer media type " + Quote(media_type));
}

Result<std::vector<IndexEntry>> ParseIndex(std::string_view body) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc, ParseJsonDocument(body, "index", kMaxManifestBytes));
  LAZYROOT_RETURN_IF_ERROR(CheckSchemaVersion(doc, "index"));
  std::string mt;
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "mediaType", "index", &mt));
  if (!mt.empty() && !IsIndexType(mt)) return Status::Corruption("index mediaType " + Quote(mt) + " is not an index");
  LAZYROOT_ASSIGN_OR_RETURN(const Value* manifests, Find(doc, "manifests", "index"));
  if (manifests == nullptr) return Status::Corruption("index.manifests is missing");
  if (!manifests->IsArray()) return Status::Corruption("index.manifests: want an array");

  std::vector<IndexEntry> out;
  for (rapidjson::SizeType i = 0; i < manifests->Size(); ++i) {
    std::string where = "index.manifests[" + std::to_string(i) + "]";
    LAZYROOT_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor((*manifests)[i], where));
    IndexEntry e;
    e.digest = std::move(d.digest);
    e.media_type = std::move(d.media_type);
    e.size = d.size;
    e.annotations = std::move(d.annotations);
    LAZYROOT_ASSIGN_OR_RETURN(const Value* platform, Find((*manifests)[i], "platform", where));
    if (platform != nullptr && !platform->IsNull()) {
      std::string pwhere = where + ".platform";
      if (!platform->IsObject()) return Status::Corruption(pwhere + ": want an object");
      Platform p;
      LAZYROOT_RETURN_IF_ERROR(GetString(*platform, "os", pwhere, &p.os, /*required=*/true));
      LAZYROOT_RETURN_IF_ERROR(GetString(*platform, "architecture", pwhere, &p.arch, /*required=*/true));
      LAZYROOT_RETURN_IF_ERROR(GetString(*platform, "variant", pwhere, &p.variant));
      e.has_platform = true;
      e.platform = NormalizePlatform(std::move(p));
    }
    auto type = e.annotations.find(std::string(kAttestationAnnotation));
    e.is_attestation = (type != e.annotations.end() && type->second == "attestation-manifest") ||
                       (e.has_platform && e.platform.os == "unknown" && e.platform.arch == "unknown");
    out.push_back(std::move(e));
  }
  return out;
}

Result<ImageManifest> ParseImageManifest(std::string_view body) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc, ParseJsonDocument(body, "manifest", kMaxManifestBytes));
  LAZYROOT_RETURN_IF_ERROR(CheckSchemaVersion(doc, "manifest"));
  ImageManifest m;
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "mediaType", "manifest", &m.media_type));
  if (IsSchema1(m.media_type)) return Status::Unsupported(std::string(kSchema1Message));
  if (IsIndexType(m.media_type)) {
    return Status::Corruption("manifest mediaType " + Quote(m.media_type) + " is an index, not an image manifest");
  }
  if (m.media_type.empty()) m.media_type = std::string(media_type::kOciManifest);
  if (!IsManifestType(m.media_type)) {
    return Status::Unsupported("unsupported manifest media type " + Quote(m.media_type));
  }

  LAZYROOT_ASSIGN_OR_RETURN(const Value* config, Find(doc, "config", "manifest"));
  if (config == nullptr) return Status::Corruption("manifest.config is missing");
  LAZYROOT_ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "manifest.config"));
  if (m.config.media_type != media_type::kOciConfig && m.config.media_type != media_type::kDockerConfig) {
    // image-spec: an unknown config type marks an artifact, not an image.
    return Status::Unsupported("manifest.config: media type " + Quote(m.config.media_type) +
                               " is not a container image config (an OCI artifact?)");
  }

  LAZYROOT_ASSIGN_OR_RETURN(const Value* layers, Find(doc, "layers", "manifest"));
  if (layers == nullptr) return Status::Corruption("manifest.layers is missing");
  if (!layers->IsArray()) return Status::Corruption("manifest.layers: want an array");
  for (rapidjson::SizeType i = 0; i < layers->Size(); ++i) {
    std::string where = "manifest.layers[" + std::to_string(i) + "]";
    Layer layer;
    LAZYROOT_ASSIGN_OR_RETURN(layer.descriptor, ParseDescriptor((*layers)[i], where));
    Result<Compression> c = LayerCompression(layer.descriptor.media_type);
    if (!c.ok()) return c.status().WithContext(where);
    layer.compression = *c;
    m.layers.push_back(std::move(layer));
  }
  return m;
}

Result<ImageConfig> ParseImageConfig(std::string_view body) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc, ParseJsonDocument(body, "image config", kMaxConfigBytes));
  ImageConfig c;
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "os", "config", &c.os));
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "architecture", "config", &c.architecture));
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "variant", "config", &c.variant));
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "created", "config", &c.created));
  LAZYROOT_RETURN_IF_ERROR(GetString(doc, "author", "config", &c.author));

  LAZYROOT_ASSIGN_OR_RETURN(const Value* run, Find(doc, "config", "config"));
  if (run != nullptr && !run->IsNull()) {
    constexpr std::string_view w = "config.config";
    if (!run->IsObject()) return Status::Corruption(std::string(w) + ": want an object");
    LAZYROOT_RETURN_IF_ERROR(GetStringArray(*run, "Entrypoint", w, &c.entrypoint));
    LAZYROOT_RETURN_IF_ERROR(GetStringArray(*run, "Cmd", w, &c.cmd));
    LAZYROOT_RETURN_IF_ERROR(GetStringArray(*run, "Env", w, &c.env));
    LAZYROOT_RETURN_IF_ERROR(GetString(*run, "WorkingDir", w, &c.working_dir));
    LAZYROOT_RETURN_IF_ERROR(GetString(*run, "User", w, &c.user));
    LAZYROOT_RETURN_IF_ERROR(GetString(*run, "StopSignal", w, &c.stop_signal));
    LAZYROOT_RETURN_IF_ERROR(GetStringMap(*run, "Labels", w, &c.labels));
    LAZYROOT_ASSIGN_OR_RETURN(const Value* ports, Find(*run, "ExposedPorts", w));
    if (ports != nullptr && !ports->IsNull()) {
      if (!ports->IsObject()) return Status::Corruption(std::string(w) + ".ExposedPorts: want an object");
      for (auto it = ports->MemberBegin(); it != ports->MemberEnd(); ++it) {
        c.exposed_ports.emplace_back(it->name.GetString(), it->name.GetStringLength());
      }
      std::sort(c.exposed_ports.begin(), c.exposed_ports.end());
      c.exposed_ports.erase(std::unique(c.exposed_ports.begin(), c.exposed_ports.end()), c.exposed_ports.end());
    }
    LAZYROOT_ASSIGN_OR_RETURN(const Value* volumes, Find(*run, "Volumes", w));
    if (volumes != nullptr && !volumes->IsNull()) {
      if (!volumes->IsObject()) return Status::Corruption(std::string(w) + ".Volumes: want an object");
      for (auto it = volumes->MemberBegin(); it != volumes->MemberEnd(); ++it) {
        c.volumes.emplace_back(it->name.GetString(), it->name.GetStringLength());
      }
      std::sort(c.volumes.begin(), c.volumes.end());
      c.volumes.erase(std::unique(c.volumes.begin(), c.volumes.end()), c.volumes.end());
    }
  }

  LAZYROOT_ASSIGN_OR_RETURN(const Value* rootfs, Find(doc, "rootfs", "config"));
  if (rootfs == nullptr) return Status::Corruption("config.rootfs is missing");
  if (!rootfs->IsObject()) return Status::Corruption("config.rootfs: want an object");
  std::string type;
  LAZYROOT_RETURN_IF_ERROR(GetString(*rootfs, "type", "config.rootfs", &type, /*required=*/true));
  if (type != "layers") return Status::Corruption("config.rootfs.type is " + Quote(type) + ", want \"layers\"");
  LAZYROOT_ASSIGN_OR_RETURN(const Value* diff_ids, Find(*rootfs, "diff_ids", "config.rootfs"));
  if (diff_ids == nullptr) return Status::Corruption("config.rootfs.diff_ids is missing");
  if (!diff_ids->IsArray()) return Status::Corruption("config.rootfs.diff_ids: want an array");
  for (rapidjson::SizeType i = 0; i < diff_ids->Size(); ++i) {
    std::string where = "config.rootfs.diff_ids[" + std::to_string(i) + "]";
    const Value& v = (*diff_ids)[i];
    if (!v.IsString()) return Status::Corruption(where + ": want a string");
    std::string id(v.GetString(), v.GetStringLength());
    if (Status st = ValidateDigest(id); !st.ok()) return Status::Corruption(where + ": " + st.message());
    c.diff_ids.push_back(std::move(id));
  }
  return c;
}

}  // namespace lazyroot
