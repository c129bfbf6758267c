#include "src/launch/runtime_spec.h"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <initializer_list>
#include <string_view>
#include <utility>
#include <vector>

namespace lazyroot {
namespace {

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void Str(Writer& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

void Strs(Writer& w, std::initializer_list<std::string_view> v) {
  w.StartArray();
  for (std::string_view s : v) Str(w, s);
  w.EndArray();
}

void Mount(Writer& w, std::string_view dest, std::string_view type, std::string_view source,
           std::initializer_list<std::string_view> options) {
  w.StartObject();
  w.Key("destination");
  Str(w, dest);
  w.Key("type");
  Str(w, type);
  w.Key("source");
  Str(w, source);
  if (options.size() > 0) {
    w.Key("options");
    Strs(w, options);
  }
  w.EndObject();
}

}  // namespace

std::string RuntimeSpecJson(const ImageConfig& config, const LaunchConfig& launch, const RuntimeSpecOptions& options) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("ociVersion");
  Str(w, "1.0.2");
  w.Key("process");
  w.StartObject();
  w.Key("terminal");
  w.Bool(options.terminal);
  w.Key("user");
  w.StartObject();
  w.Key("uid");
  w.Uint(launch.exec_user.uid);
  w.Key("gid");
  w.Uint(launch.exec_user.gid);
  if (!launch.exec_user.additional_gids.empty()) {
    w.Key("additionalGids");
    w.StartArray();
    for (uint32_t g : launch.exec_user.additional_gids) w.Uint(g);
    w.EndArray();
  }
  w.EndObject();
  w.Key("args");
  w.StartArray();
  for (const std::string& a : launch.args) Str(w, a);
  w.EndArray();
  w.Key("env");
  w.StartArray();
  for (const std::string& e : launch.env) Str(w, e);
  w.EndArray();
  w.Key("cwd");
  Str(w, launch.cwd);
  // docker's default capability set for an unprivileged container's root.
  const std::initializer_list<std::string_view> caps = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  w.Key("capabilities");
  w.StartObject();
  for (const char* set : {"bounding", "effective", "permitted"}) {
    w.Key(set);
    Strs(w, caps);
  }
  w.EndObject();
  w.Key("rlimits");
  w.StartArray();
  w.StartObject();
  w.Key("type");
  Str(w, "RLIMIT_NOFILE");
  w.Key("hard");
  w.Uint(1024);
  w.Key("soft");
  w.Uint(1024);
  w.EndObject();
  w.EndArray();
  w.Key("noNewPrivileges");
  w.Bool(true);
  w.EndObject();  // process

  w.Key("root");
  w.StartObject();
  w.Key("path");
  Str(w, options.root_path);
  w.Key("readonly");
  w.Bool(false);
  w.EndObject();
  w.Key("hostname");
  Str(w, "lazyroot");
  w.Key("mounts");
  w.StartArray();
  Mount(w, "/proc", "proc", "proc", {});
  Mount(w, "/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"});
  Mount(w, "/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"});
  Mount(w, "/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"});
  Mount(w, "/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"});
  Mount(w, "/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"});
  w.EndArray();

  // conversion.md: these config fields become annotations; Labels merge in
  // (an explicit annotation key wins over a label of the same name).
  w.Key("annotations");
  w.StartObject();
  std::vector<std::pair<std::string, std::string>> annotations;
  auto add = [&](std::string key, const std::string& value) {
    if (!value.empty()) annotations.emplace_back(std::move(key), value);
  };
  add("org.opencontainers.image.os", config.os);
  add("org.opencontainers.image.architecture", config.architecture);
  add("org.opencontainers.image.variant", config.variant);
  add("org.opencontainers.image.author", config.author);
  add("org.opencontainers.image.created", config.created);
  add("org.opencontainers.image.stopSignal", config.stop_signal);
  std::string ports;
  for (const std::string& p : config.exposed_ports) ports += (ports.empty() ? "" : ",") + p;
  add("org.opencontainers.image.exposedPorts", ports);
  for (const auto& [k, v] : config.labels) {
    bool taken = false;
    for (const auto& a : annotations) taken = taken || a.first == k;
    if (!taken) annotations.emplace_back(k, v);
  }
  for (const auto& [k, v] : annotations) {
    w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    Str(w, v);
  }
  w.EndObject();

  w.Key("linux");
  w.StartObject();
  w.Key("namespaces");
  w.StartArray();
  for (const char* ns : {"pid", "network", "ipc", "uts", "mount"}) {
    w.StartObject();
    w.Key("type");
    Str(w, ns);
    w.EndObject();
  }
  w.EndArray();
  w.Key("maskedPaths");
  Strs(w, {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
           "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"});
  w.Key("readonlyPaths");
  Strs(w, {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"});
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

}  // namespace lazyroot
