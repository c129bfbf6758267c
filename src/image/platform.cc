#include "src/image/platform.h"

#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

#include "index/ascii.h"

namespace lazyroot {
namespace {

// "vN" -> N, anything else -> -1.
int VariantNumber(std::string_view variant) {
  if (variant.size() < 2 || variant[0] != 'v') return -1;
  int n = -1;
  auto [end, ec] = std::from_chars(variant.data() + 1, variant.data() + variant.size(), n);
  if (ec != std::errc() || end != variant.data() + variant.size()) return -1;
  return n;
}

// arm64 variants and the ISA levels each one can run, from containerd/platforms
// compare.go arm64variantToVersion: v9.x also runs v8.0 … v8.(x+5).
struct Arm64Versions {
  std::string_view variant;
  int major[2];
  int minor[2];
  int count;
};
constexpr std::array<Arm64Versions, 20> kArm64Versions = {{
    {"v8", {8, 0}, {0, 0}, 1},   {"v8.0", {8, 0}, {0, 0}, 1}, {"v8.1", {8, 0}, {1, 0}, 1}, {"v8.2", {8, 0}, {2, 0}, 1},
    {"v8.3", {8, 0}, {3, 0}, 1}, {"v8.4", {8, 0}, {4, 0}, 1}, {"v8.5", {8, 0}, {5, 0}, 1}, {"v8.6", {8, 0}, {6, 0}, 1},
    {"v8.7", {8, 0}, {7, 0}, 1}, {"v8.8", {8, 0}, {8, 0}, 1}, {"v8.9", {8, 0}, {9, 0}, 1}, {"v9", {9, 8}, {0, 5}, 2},
    {"v9.0", {9, 8}, {0, 5}, 2}, {"v9.1", {9, 8}, {1, 6}, 2}, {"v9.2", {9, 8}, {2, 7}, 2}, {"v9.3", {9, 8}, {3, 8}, 2},
    {"v9.4", {9, 8}, {4, 9}, 2}, {"v9.5", {9, 8}, {5, 9}, 2}, {"v9.6", {9, 8}, {6, 9}, 2}, {"v9.7", {9, 8}, {7, 9}, 2},
}};

// The platforms want can run, best first (containerd/platforms platformVector,
// minus its amd64 -> 386 fallback: a 32-bit image in a micro-VM is never what
// the user meant). Every element is normalised.
std::vector<Platform> PreferenceVector(const Platform& want) {
  std::vector<Platform> out;
  auto add = [&](std::string arch, std::string variant) {
    out.push_back(NormalizePlatform(Platform{want.os, std::move(arch), std::move(variant)}));
  };
  if (want.arch == "amd64") {
    add("amd64", want.variant);
    for (int v = VariantNumber(want.variant) - 1; v >= 1; --v) add("amd64", "v" + std::to_string(v));
  } else if (want.arch == "arm") {
    add("arm", want.variant);
    for (int v = VariantNumber(want.variant) - 1; v >= 5; --v) add("arm", "v" + std::to_string(v));
  } else if (want.arch == "arm64") {
    std::string variant = want.variant.empty() ? "v8" : want.variant;
    auto it = std::find_if(kArm64Versions.begin(), kArm64Versions.end(),
                           [&](const Arm64Versions& a) { return a.variant == variant; });
    if (it == kArm64Versions.end()) {
      add("arm64", want.variant);
    } else {
      for (int i = 0; i < it->count; ++i) {
        for (int minor = it->minor[i]; minor >= 0; --minor) {
          std::string v = "v" + std::to_string(it->major[i]);
          if (minor != 0) v += "." + std::to_string(minor);
          add("arm64", v);
        }
      }
      // Every arm64 v8/v9 core runs 32-bit arm/v8 and below.
      for (int v = 8; v >= 5; --v) add("arm", "v" + std::to_string(v));
    }
  } else {
    add(want.arch, want.variant);
  }
  return out;
}

bool IsKnownOs(std::string_view os) {
  static constexpr std::array<std::string_view, 17> kOs = {
      "aix",   "android", "darwin", "dragonfly", "freebsd", "hurd",    "illumos", "ios", "js",
      "linux", "nacl",    "netbsd", "openbsd",   "plan9",   "solaris", "windows", "zos"};
  return std::find(kOs.begin(), kOs.end(), os) != kOs.end();
}

bool IsKnownArch(std::string_view arch) {
  static constexpr std::array<std::string_view, 24> kArch = {
      "386",     "amd64",   "amd64p32", "arm",    "armbe",  "arm64",    "arm64be",   "ppc64",
      "ppc64le", "loong64", "mips",     "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
      "ppc",     "riscv",   "riscv64",  "s390",   "s390x",  "sparc",    "sparc64",   "wasm"};
  return std::find(kArch.begin(), kArch.end(), arch) != kArch.end();
}

bool IsSpecifierComponent(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string Platform::ToString() const {
  std::string out = os + "/" + arch;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

Platform NormalizePlatform(Platform p) {
  p.os = AsciiLower(std::move(p.os));
  if (p.os == "macos") p.os = "darwin";
  p.arch = AsciiLower(std::move(p.arch));
  p.variant = AsciiLower(std::move(p.variant));
  if (p.arch == "i386") {
    p.arch = "386";
    p.variant.clear();
  } else if (p.arch == "x86_64" || p.arch == "x86-64" || p.arch == "amd64") {
    p.arch = "amd64";
    if (p.variant == "v1") p.variant.clear();
  } else if (p.arch == "aarch64" || p.arch == "arm64") {
    p.arch = "arm64";
    if (p.variant == "8" || p.variant == "v8" || p.variant == "v8.0") {
      p.variant.clear();
    } else if (p.variant == "9" || p.variant == "9.0" || p.variant == "v9.0") {
      p.variant = "v9";
    }
  } else if (p.arch == "armhf") {
    p.arch = "arm";
    p.variant = "v7";
  } else if (p.arch == "armel") {
    p.arch = "arm";
    p.variant = "v6";
  } else if (p.arch == "arm") {
    if (p.variant.empty() || p.variant == "7") {
      p.variant = "v7";
    } else if (p.variant == "5" || p.variant == "6" || p.variant == "8") {
      p.variant = "v" + p.variant;
    }
  }
  return p;
}

Result<Platform> ParsePlatform(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument("invalid platform \"" + std::string(text) + "\": " + std::string(why));
  };
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    std::string_view part = text.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!IsSpecifierComponent(part)) return invalid("want os/arch[/variant] with components [A-Za-z0-9_.-]+");
    parts.emplace_back(part);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() > 3) return invalid("want os/arch[/variant]");
  if (parts.size() == 1) {
    // containerd accepts a lone arch (os defaults to ours) or a lone os (arch
    // defaults to this machine's).
    Platform alone = NormalizePlatform(Platform{"linux", parts[0], ""});
    if (IsKnownArch(alone.arch)) return alone;
    Platform os_only = NormalizePlatform(Platform{parts[0], "", ""});
    if (IsKnownOs(os_only.os)) {
      Platform host = HostPlatform();
      host.os = os_only.os;
      return host;
    }
    return invalid("unknown operating system or architecture");
  }
  return NormalizePlatform(Platform{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""});
}

Platform HostPlatform() {
  struct utsname u {};
  std::string machine = uname(&u) == 0 ? u.machine : "";
  std::string variant;
  if (machine.starts_with("armv")) {
    // armv7l, armv6l, armv5tel: the digit after "armv" is the variant.
    variant = std::string(1, machine.size() > 4 ? machine[4] : '7');
    machine = "arm";
  } else if (machine == "i486" || machine == "i586" || machine == "i686") {
    machine = "386";
  }
  return NormalizePlatform(Platform{"linux", machine, variant});
}

Result<size_t> SelectPlatform(const std::vector<IndexEntry>& entries, const Platform& want) {
  Platform normal_want = NormalizePlatform(want);
  std::vector<Platform> vector = PreferenceVector(normal_want);
  size_t best = entries.size();
  size_t best_rank = vector.size();
  std::vector<std::string> available;
  for (size_t i = 0; i < entries.size(); ++i) {
    const IndexEntry& e = entries[i];
    // Entries without a platform are skipped: picking one would need its
    // config (containerd) or a guess (ggcr assumes linux/amd64).
    if (!e.has_platform || e.is_attestation) continue;
    Platform p = NormalizePlatform(e.platform);
    if (p.os == "unknown" && p.arch == "unknown") continue;
    std::string name = p.ToString();
    if (std::find(available.begin(), available.end(), name) == available.end()) available.push_back(name);
    for (size_t rank = 0; rank < best_rank; ++rank) {
      if (vector[rank] == p) {
        best = i;
        best_rank = rank;
        break;
      }
    }
  }
  if (best < entries.size()) return best;
  std::string message = "no manifest for platform " + normal_want.ToString() + "; available: ";
  if (available.empty()) message += "none";
  for (size_t i = 0; i < available.size(); ++i) {
    if (i > 0) message += ", ";
    message += available[i];
  }
  return Status::NotFound(std::move(message));
}

}  // namespace lazyroot
