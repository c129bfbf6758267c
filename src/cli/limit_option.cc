// `--limit NAME=VALUE` (pull, extract, mount) and LAZYROOT_LIMITS: the
// budgets of index/limits.h as the user raises or lowers them. The
// environment gives every command's defaults; the flags then win.
#include <cstdlib>

#include "src/cli/cli.h"

namespace lazyroot::cli {
namespace {

std::string Size(uint64_t v) {
  if (v % (uint64_t{1} << 30) == 0) return std::to_string(v >> 30) + "G";
  if (v % (uint64_t{1} << 20) == 0) return std::to_string(v >> 20) + "M";
  if (v % (uint64_t{1} << 10) == 0) return std::to_string(v >> 10) + "K";
  return std::to_string(v);
}

}  // namespace

void AddLimitOption(CLI::App* cmd, std::vector<std::string>* values) {
  const Limits d;
  cmd->add_option("--limit", *values,
                  "Change a budget an image must fit, NAME=VALUE (repeatable; K, M, G suffixes): layer-entries (default " +
                      Size(d.layer_entries) + "), layer-metadata (" + Size(d.layer_metadata) + "), image-entries (" +
                      Size(d.image_entries) + "), image-metadata (" + Size(d.image_metadata) + "), symlink-steps (" +
                      Size(d.symlink_steps) + "), image-layers (" + Size(d.image_layers) +
                      "). Metadata is the bytes of paths, link targets, user/group names and xattrs. "
                      "Defaults for every command come from $LAZYROOT_LIMITS=\"NAME=VALUE,...\"; this flag wins")
      ->allow_extra_args(false)
      ->option_text("NAME=VALUE");
}

Result<Limits> ResolveLimits(const std::vector<std::string>& values) {
  Limits limits;
  if (const char* env = std::getenv("LAZYROOT_LIMITS"); env != nullptr) {
    Status st = ParseLimits(env, &limits);
    if (!st.ok()) return st.WithContext("LAZYROOT_LIMITS");
  }
  for (const std::string& v : values) {
    Status st = ParseLimits(v, &limits);
    if (!st.ok()) return st.WithContext("--limit");
  }
  return limits;
}

std::optional<std::vector<std::string>> LimitItems(const std::vector<std::string>& values) {
  // Checked here, so the message names --limit or LAZYROOT_LIMITS.
  if (auto limits = ResolveLimits(values); !limits.ok()) {
    Fail(limits.status());
    return std::nullopt;
  }
  std::vector<std::string> items;
  if (const char* env = std::getenv("LAZYROOT_LIMITS"); env != nullptr) items.emplace_back(env);
  items.insert(items.end(), values.begin(), values.end());
  return items;
}

}  // namespace lazyroot::cli
