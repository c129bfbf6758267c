#include "index/path_resolve.h"

namespace lazyroot {

std::vector<std::string> CleanPathComponents(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view name = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      // Lexical clamp at the root, as filepath.Clean("/" + name) does.
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.emplace_back(name);
  }
  return out;
}

std::string JoinPath(const std::vector<std::string>& components, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < components.size(); ++i) {
    if (i > 0) out += '/';
    out += components[i];
  }
  return out;
}

}  // namespace lazyroot
