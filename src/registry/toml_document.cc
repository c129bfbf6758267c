#include "src/registry/toml_document.h"

#include "src/common/file_io.h"

namespace lazyroot {

Result<toml::table> ParseTomlDocument(std::string_view bytes, const std::string& origin) {
  try {
    return toml::parse(bytes, origin);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return Status::InvalidArgument(origin + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " +
                                   std::string(e.description()));
  }
}

Result<std::string> ReadSmallConfigFile(const std::string& path, size_t cap) {
  return ReadWholeFile(path, cap, UnfitFileCodes{ErrorCode::kInvalidArgument, ErrorCode::kLimitExceeded});
}

Result<std::string> TomlString(const toml::node& node, const std::string& where, size_t max_len) {
  const toml::value<std::string>* v = node.as_string();
  if (v == nullptr) return Status::InvalidArgument(where + " must be a string");
  if (v->get().size() > max_len) {
    return Status::LimitExceeded(where + ": longer than " + std::to_string(max_len) + " bytes");
  }
  return v->get();
}

Status TomlReader::String(std::string_view key, std::string* out, size_t max_len) const {
  const toml::node* n = table_.get(key);
  if (n == nullptr) return Status::Ok();
  LAZYROOT_ASSIGN_OR_RETURN(*out, TomlString(*n, where_ + ": " + std::string(key), max_len));
  return Status::Ok();
}

Status TomlReader::Bool(std::string_view key, bool* out) const {
  const toml::node* n = table_.get(key);
  if (n == nullptr) return Status::Ok();
  const toml::value<bool>* v = n->as_boolean();
  if (v == nullptr) return Status::InvalidArgument(where_ + ": " + std::string(key) + " must be true or false");
  *out = v->get();
  return Status::Ok();
}

Status TomlReader::StringList(std::string_view key, std::vector<std::string>* out, size_t max_items, size_t max_len,
                              bool* present) const {
  const toml::node* n = table_.get(key);
  if (present != nullptr) *present = n != nullptr;
  if (n == nullptr) return Status::Ok();
  const std::string where = where_ + ": " + std::string(key);
  if (n->is_string()) {
    LAZYROOT_ASSIGN_OR_RETURN(std::string s, TomlString(*n, where, max_len));
    out->push_back(std::move(s));
    return Status::Ok();
  }
  const toml::array* arr = n->as_array();
  if (arr == nullptr) return Status::InvalidArgument(where + " must be a string or an array of strings");
  if (arr->size() > max_items) {
    return Status::LimitExceeded(where + ": more than " + std::to_string(max_items) + " items");
  }
  for (const toml::node& item : *arr) {
    LAZYROOT_ASSIGN_OR_RETURN(std::string s, TomlString(item, where, max_len));
    out->push_back(std::move(s));
  }
  return Status::Ok();
}

}  // namespace lazyroot
