// TomlDocument: the one way lazyroot reads a TOML file (registries.conf,
// hosts.toml). toml++ (Debian's libtomlplusplus) parses; its nesting is
// bounded by the library (256 levels), the bytes by the caller's cap, and
// every value the rules take is read through TomlReader, which checks its
// type and length and names the file and key when they are wrong.
// Pure apart from ReadSmallConfigFile; thread-safe.
#pragma once

#include <toml++/toml.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace lazyroot {

// Parses bytes; kInvalidArgument "ORIGIN:LINE:COL: <what toml++ says>".
Result<toml::table> ParseTomlDocument(std::string_view bytes, const std::string& origin);

// Reads a regular file of at most cap bytes: kNotFound when it does not
// exist, kLimitExceeded when it is bigger, other errors from errno.
Result<std::string> ReadSmallConfigFile(const std::string& path, size_t cap);

// Typed access to one table's keys; a missing key leaves the output alone.
// Errors are kInvalidArgument "<where>: KEY must be …", or kLimitExceeded
// for a string or list over its cap.
class TomlReader {
 public:
  TomlReader(const toml::table& table, std::string where) : table_(table), where_(std::move(where)) {}
  Status String(std::string_view key, std::string* out, size_t max_len) const;
  Status Bool(std::string_view key, bool* out) const;
  // A string or an array of strings; *present says whether the key was there.
  Status StringList(std::string_view key, std::vector<std::string>* out, size_t max_items, size_t max_len,
                    bool* present = nullptr) const;

 private:
  const toml::table& table_;
  std::string where_;
};

// Checks one string value (its length) and returns it.
Result<std::string> TomlString(const toml::node& node, const std::string& where, size_t max_len);

}  // namespace lazyroot
