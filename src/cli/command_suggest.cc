// The first word of a command line that names no command: say so, and name
// the nearest command (git's and cargo's habit), instead of CLI11's "A
// subcommand is required".
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "src/cli/cli.h"

namespace lazyroot::cli {
namespace {

// Optimal string alignment distance (adjacent swaps count one, as typing
// "lyaers" for "layers" does).
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string UnknownCommandMessage(const CLI::App& app, int argc, const char* const* argv) {
  std::string word;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--root") {  // global options that take a value
      ++i;
      continue;
    }
    if (a == "--") return "";
    if (a.starts_with("-")) continue;
    word = a;
    break;
  }
  if (word.empty() || word.size() > 64) return "";
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) names.push_back(alias);
  }
  if (std::find(names.begin(), names.end(), word) != names.end()) return "";
  // A command the word begins (the shortest), else the nearest within two edits.
  std::string best;
  for (const std::string& n : names) {
    if (word.size() >= 2 && n.starts_with(word) && (best.empty() || n.size() < best.size())) best = n;
  }
  size_t best_distance = 3;  // at most two edits away, as git suggests
  for (const std::string& n : names) {
    if (!best.empty() && best.starts_with(word)) break;
    size_t dist = EditDistance(word, n);
    if (dist < best_distance) {
      best_distance = dist;
      best = n;
    }
  }
  std::string out = "unknown command '" + Displayable(word) + "'";
  if (!best.empty()) out += " (did you mean '" + best + "'?)";
  return out + "; run lazyroot --help for the list";
}

}  // namespace lazyroot::cli
