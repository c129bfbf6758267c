// `lazyroot inspect --remote IMAGE`: what the registry (or layout) has for an
// image, as `skopeo inspect` shows it: the manifest (the host's platform
// picked from an index, or --platform), the config (verified against its
// digest), the index's platforms. No layer is downloaded, nothing is stored.
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cstdio>

#include "src/cli/cli.h"
#include "src/cli/inspect_json.h"
#include "src/image/reference.h"
#include "src/pull/pull.h"

namespace lazyroot::cli {

void AddRemoteOptions(CLI::App* inspect, RemoteArgs* a) {
  auto* remote = inspect->add_flag(
      "--remote", a->remote,
      "Read IMAGE's manifest and config from the registry (or the oci:, oci-archive: or "
      "docker-archive: source) without pulling its layers or touching the store, as skopeo inspect does");
  inspect->add_option("--platform", a->platform, "With --remote: os/arch[/variant] to pick from an index")
      ->needs(remote);
  inspect->add_flag("--insecure", a->insecure, "With --remote: plain HTTP to the registry")->needs(remote);
  inspect->add_flag("--tls-verify,!--no-tls-verify", a->tls_verify, "With --remote: verify the registry's TLS")
      ->needs(remote);
  inspect->add_option("--cert-dir", a->cert_dirs, "With --remote: certs.d directory (repeatable), as for pull")
      ->needs(remote);
  inspect->add_option("--authfile", a->authfile, "With --remote: the containers auth.json to read, as for pull")
      ->needs(remote)
      ->option_text("FILE");
  AddEndpointOptions(inspect, &a->endpoints, remote);
}

int RunInspectRemote(const std::string& image, const RemoteArgs& a) {
  auto ref = ParseReference(image);
  if (!ref.ok()) return Fail(ref.status());
  PullOptions options;
  if (!a.platform.empty()) {
    auto p = ParsePlatform(a.platform);
    if (!p.ok()) return Fail(p.status());
    options.platform = *p;
    options.platform_explicit = true;
  }
  options.registry.insecure = a.insecure;
  options.registry.tls_verify = a.tls_verify;
  options.registry.cert_dirs = a.cert_dirs;
  options.registry.credentials.authfile = a.authfile;
  ApplyEndpointOptions(a.endpoints, nullptr, &options.registry);
  auto r = InspectRemote(*ref, options);
  if (!r.ok()) return Fail(r.status());

  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  auto str = [&](const std::string& s) { WriteString(w, s); };
  uint64_t size = static_cast<uint64_t>(r->manifest.config.size);
  for (const Layer& l : r->manifest.layers) size += static_cast<uint64_t>(l.descriptor.size);
  w.StartObject();
  w.Key("Reference");
  str(r->reference);
  w.Key("Digest");
  str(r->manifest_digest);
  if (!r->index_digest.empty()) {
    w.Key("IndexDigest");
    str(r->index_digest);
    w.Key("Platforms");
    w.StartArray();
    for (const Platform& p : r->platforms) str(p.ToString());
    w.EndArray();
  }
  w.Key("MediaType");
  str(r->media_type);
  w.Key("Platform");
  str(Platform{r->config.os, r->config.architecture, r->config.variant}.ToString());
  w.Key("Created");
  str(r->config.created);
  w.Key("Size");
  w.Uint64(size);
  w.Key("Layers");
  w.StartArray();
  for (size_t i = 0; i < r->manifest.layers.size(); ++i) {
    w.StartObject();
    WriteLayerFields(w, i, r->manifest.layers[i], r->config.diff_ids);
    w.EndObject();
  }
  w.EndArray();
  // The config as the registry served it (verified against its digest).
  w.Key("Config");
  w.RawValue(r->config_bytes.data(), r->config_bytes.size(), rapidjson::kObjectType);
  w.EndObject();
  std::printf("%s\n", sb.GetString());
  return kExitOk;
}

}  // namespace lazyroot::cli
