#include "src/store/test_pause.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace lazyroot {

void TestPause(std::string_view point) {
  const char* spec = std::getenv("LAZYROOT_TEST_PAUSE");
  if (spec == nullptr) return;
  const std::string_view s(spec);
  if (!s.starts_with(point) || s.size() <= point.size() + 1 || s[point.size()] != ':') return;
  const std::string base = std::string(s.substr(point.size() + 1)) + "/" + std::string(point);
  const int fd = ::open((base + ".reached").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  // Polling keeps this free of any dependency; it only runs under a test.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (::access((base + ".go").c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace lazyroot
