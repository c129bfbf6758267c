#include "index/limits.h"

#include <charconv>

namespace lazyroot {
namespace {

// "123", "64K", "16M", "2G" (powers of 1024); false on anything else or overflow.
bool ParseAmount(std::string_view s, uint64_t* out) {
  uint64_t scale = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'K': case 'k': scale = uint64_t{1} << 10; break;
      case 'M': case 'm': scale = uint64_t{1} << 20; break;
      case 'G': case 'g': scale = uint64_t{1} << 30; break;
      default: break;
    }
    if (scale != 1) s.remove_suffix(1);
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return false;
  if (v > UINT64_MAX / scale) return false;
  *out = v * scale;
  return true;
}

}  // namespace

uint64_t MetadataBytes(const TarEntry& e) {
  uint64_t n = e.path.size() + e.link_target.size() + e.uname.size() + e.gname.size();
  for (const auto& [name, value] : e.xattrs) n += name.size() + value.size();
  return n;
}

std::string DescribeEntry(uint64_t header_offset, std::string_view path) {
  constexpr size_t kShown = 64;
  std::string s = "tar entry at offset " + std::to_string(header_offset);
  if (path.empty()) return s;  // not known yet (an extension header was refused)
  s += " (";
  if (path.size() > kShown) {
    s.append(path.substr(0, kShown));
    s += "… " + std::to_string(path.size()) + " bytes";
  } else {
    s.append(path);
  }
  return s + ")";
}

Status CheckBudget(const Limits& limits, std::string_view scope, uint64_t entries, uint64_t metadata) {
  const bool layer = scope == "layer";
  const uint64_t max_entries = layer ? limits.layer_entries : limits.image_entries;
  const uint64_t max_metadata = layer ? limits.layer_metadata : limits.image_metadata;
  const std::string the = layer ? "the layer holds" : "the image's layers together hold";
  if (entries > max_entries) {
    const std::string name = std::string(scope) + "-entries";
    return Status::LimitExceeded(the + " more than " + std::to_string(max_entries) + " entries (limit " + name +
                                 "; raise with --limit " + name + "=N or LAZYROOT_LIMITS)");
  }
  if (metadata > max_metadata) {
    const std::string name = std::string(scope) + "-metadata";
    return Status::LimitExceeded(the + " more than " + std::to_string(max_metadata) +
                                 " bytes of metadata (paths, link targets, user/group names, xattrs) (limit " + name +
                                 "; raise with --limit " + name + "=SIZE or LAZYROOT_LIMITS)");
  }
  return Status::Ok();
}

Status ParseLimits(std::string_view text, Limits* limits) {
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument("limit '" + std::string(item) + "': expected NAME=VALUE");
    }
    std::string_view name = item.substr(0, eq);
    uint64_t value = 0;
    if (!ParseAmount(item.substr(eq + 1), &value) || value == 0) {
      return Status::InvalidArgument("limit '" + std::string(item) + "': value must be a positive number (K, M, G suffixes)");
    }
    if (name == "layer-entries") limits->layer_entries = value;
    else if (name == "layer-metadata") limits->layer_metadata = value;
    else if (name == "image-entries") limits->image_entries = value;
    else if (name == "image-metadata") limits->image_metadata = value;
    else if (name == "symlink-steps") limits->symlink_steps = value;
    else if (name == "image-layers") limits->image_layers = value;
    else {
      return Status::InvalidArgument("limit '" + std::string(item) +
                                     "': unknown name (layer-entries, layer-metadata, image-entries, "
                                     "image-metadata, symlink-steps, image-layers)");
    }
  }
  return Status::Ok();
}

}  // namespace lazyroot
