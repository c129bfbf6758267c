#include "src/launch/launch_config.h"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>

#include "index/path_resolve.h"

namespace lazyroot {
namespace {

constexpr uint64_t kMaxUserFileBytes = 4u << 20;

Result<std::optional<std::string>> ReadImageFile(const ImageTree& tree, const ImageContent& content,
                                                 const std::string& path) {
  Result<NodeId> id = tree.Resolve(path);
  if (!id.ok()) {
    if (id.status().code() == ErrorCode::kNotFound) return std::optional<std::string>();
    return id.status().WithContext("the image's " + path);
  }
  Node node = tree.GetNode(*id);
  if (node.type != NodeType::kRegular) return Status::Unsupported("the image's " + path + " is not a regular file");
  if (node.size > kMaxUserFileBytes) {
    return Status::LimitExceeded("the image's " + path + " is " + std::to_string(node.size) +
                                 " bytes, more than the 4 MiB a user database may have");
  }
  std::string out(static_cast<size_t>(node.size), '\0');
  if (node.size == 0) return std::optional<std::string>(std::move(out));
  auto reader = content.NewReader(node.layer);
  size_t done = 0;
  while (done < out.size()) {
    size_t n = 0;
    Status st = ReadFileData(tree, *id, *reader, done,
                             std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()) + done, out.size() - done), &n);
    if (!st.ok()) return st.WithContext("the image's " + path);
    if (n == 0) return Status::Corruption("the image's " + path + " ends early");
    done += n;
  }
  return std::optional<std::string>(std::move(out));
}

std::string_view EnvKey(std::string_view kv) { return kv.substr(0, kv.find('=')); }

// Sets KEY=VALUE in env, in place of an earlier KEY (docker's
// ReplaceOrAppendEnvValues).
void SetEnv(std::vector<std::string>& env, const std::string& kv) {
  std::string_view key = EnvKey(kv);
  auto it = std::find_if(env.begin(), env.end(), [&](const std::string& e) { return EnvKey(e) == key; });
  if (it != env.end())
    *it = kv;
  else
    env.push_back(kv);
}

bool HasEnv(const std::vector<std::string>& env, std::string_view key) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& e) { return EnvKey(e) == key; });
}

}  // namespace

Result<UserFiles> ReadUserFiles(const ImageTree& tree, const ImageContent& content) {
  UserFiles f;
  LAZYROOT_ASSIGN_OR_RETURN(f.passwd, ReadImageFile(tree, content, "/etc/passwd"));
  LAZYROOT_ASSIGN_OR_RETURN(f.group, ReadImageFile(tree, content, "/etc/group"));
  return f;
}

Result<LaunchConfig> MakeLaunchConfig(const ImageConfig& config, const LaunchOverrides& overrides,
                                      const UserFiles& files) {
  LaunchConfig lc;
  // docker (daemon/commit.go merge): an overridden Entrypoint drops the
  // image's Cmd; trailing arguments replace Cmd.
  std::vector<std::string> cmd;
  if (overrides.entrypoint) {
    if (!overrides.entrypoint->empty()) lc.args.push_back(*overrides.entrypoint);
    if (overrides.cmd) cmd = *overrides.cmd;
  } else {
    lc.args = config.entrypoint;
    cmd = overrides.cmd ? *overrides.cmd : config.cmd;
  }
  lc.args.insert(lc.args.end(), cmd.begin(), cmd.end());
  if (lc.args.empty()) {
    return Status::NotFound(
        "no command: the image sets neither Entrypoint nor Cmd (give one after the image, or --entrypoint)");
  }

  lc.user = overrides.user ? *overrides.user : config.user;
  LAZYROOT_ASSIGN_OR_RETURN(lc.exec_user, ResolveExecUser(lc.user, files.passwd, files.group));

  // As docker passes it (ReplaceOrAppendEnvValues over its defaults): an
  // entry without '=' unsets that variable - of the defaults here, PATH -
  // and is not passed on (runc refuses to start a process given one).
  bool path_unset = false;
  for (const std::string& kv : config.env) {
    if (kv.find('=') != std::string::npos)
      lc.env.push_back(kv);
    else if (kv == "PATH")
      path_unset = true;
  }
  for (const std::string& kv : overrides.env) {
    if (EnvKey(kv).empty() || kv.find('=') == std::string::npos)
      return Status::InvalidArgument("--env " + kv + ": want KEY=VALUE");
    SetEnv(lc.env, kv);
  }
  if (!HasEnv(lc.env, "PATH") && !path_unset) lc.env.push_back(std::string("PATH=") + kDefaultPath);
  if (!HasEnv(lc.env, "HOME")) lc.env.push_back("HOME=" + lc.exec_user.home);

  // Absolute and clean, as every launcher needs it (docker refuses a
  // relative one; umoci passes it on, and runc then refuses it).
  std::string wd = overrides.workdir ? *overrides.workdir : config.working_dir;
  lc.cwd = "/" + JoinPath(CleanPathComponents(wd));

  lc.exposed_ports = config.exposed_ports;
  lc.volumes = config.volumes;
  lc.stop_signal = config.stop_signal;
  lc.labels = config.labels;
  return lc;
}

namespace {

void String(rapidjson::PrettyWriter<rapidjson::StringBuffer>& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void Strings(rapidjson::PrettyWriter<rapidjson::StringBuffer>& w, const std::vector<std::string>& v) {
  w.StartArray();
  for (const std::string& s : v) String(w, s);
  w.EndArray();
}

}  // namespace

std::string LaunchJson(const ImageRecord& record, const LaunchConfig& lc) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("image");
  String(w, record.reference);
  w.Key("digest");
  String(w, record.manifest_digest);
  w.Key("args");
  Strings(w, lc.args);
  w.Key("env");
  Strings(w, lc.env);
  w.Key("cwd");
  String(w, lc.cwd);
  w.Key("user");
  String(w, lc.user);
  w.Key("uid");
  w.Uint(lc.exec_user.uid);
  w.Key("gid");
  w.Uint(lc.exec_user.gid);
  w.Key("additional_gids");
  w.StartArray();
  for (uint32_t g : lc.exec_user.additional_gids) w.Uint(g);
  w.EndArray();
  w.Key("home");
  String(w, lc.exec_user.home);
  w.Key("exposed_ports");
  Strings(w, lc.exposed_ports);
  w.Key("volumes");
  Strings(w, lc.volumes);
  w.Key("stop_signal");
  String(w, lc.stop_signal);
  w.Key("labels");
  w.StartObject();
  for (const auto& [k, v] : lc.labels) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    String(w, v);
  }
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

namespace {

Result<ImageLaunch> LoadImageLaunchFrom(Store& store, const ImageRecord& record, const ImageTree& tree,
                                        const ImageContent& content, const LaunchOverrides& overrides) {
  const std::string what = "image " + record.reference;
  LAZYROOT_ASSIGN_OR_RETURN(std::string bytes, store.ReadBlob(record.config_digest, kMaxConfigBytes));
  ImageLaunch out;
  auto config = ParseImageConfig(bytes);
  if (!config.ok()) return config.status().WithContext(what + ": config " + record.config_digest);
  out.config = std::move(*config);
  auto files = ReadUserFiles(tree, content);
  if (!files.ok()) return files.status().WithContext(what);
  auto launch = MakeLaunchConfig(out.config, overrides, *files);
  if (!launch.ok()) return launch.status().WithContext(what);
  out.launch = std::move(*launch);
  return out;
}

}  // namespace

Result<ImageLaunch> LoadImageLaunch(Store& store, const ImageRecord& record, const ImageTree& tree,
                                    const ImageContent& content, const LaunchOverrides& overrides) {
  // A lazily read tree (a mount's) throws where it is damaged.
  try {
    return LoadImageLaunchFrom(store, record, tree, content, overrides);
  } catch (const TreeCorruptionError& e) {
    return Status::Corruption("image " + record.reference + ": " + e.what());
  }
}

}  // namespace lazyroot
