// read_image IMAGE DIR FILE: the C++ interface (lazyroot.hpp) built against
// the installed CMake package: pull if missing, mount at DIR, print FILE
// read through the mount and the image's argv, unmount (RAII), then extract
// the store's cached tree and print its path.
//
//   find_package(lazyroot REQUIRED)
//   target_link_libraries(read_image PRIVATE lazyroot::lazyroot)
#include <fstream>
#include <iostream>
#include <lazyroot/lazyroot.hpp>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: read_image IMAGE DIR FILE\n";
    return 2;
  }
  try {
    lazyroot::Store store;
    store.Ensure(argv[1]);
    lazyroot::Launch launch = store.LaunchConfig(argv[1]);
    lazyroot::Mount mount = store.MountImage(argv[1], argv[2]);
    std::ifstream in(mount.dir() + "/" + argv[3]);
    std::stringstream content;
    content << in.rdbuf();
    std::cout << "file: " << content.str();
    std::cout << "argv:";
    for (const std::string& a : launch.args) std::cout << " " << a;
    std::cout << "\nuid: " << launch.uid << "\n";
    // docker run's overrides: trailing args replace Cmd, -e adds to Env.
    lazyroot::LaunchOptions overrides;
    overrides.cmd = std::vector<std::string>{"--check"};
    overrides.env = {"MODE=test"};
    lazyroot::Launch custom = store.LaunchConfig(argv[1], overrides);
    std::cout << "override argv:";
    for (const std::string& a : custom.args) std::cout << " " << a;
    std::cout << "\noverride env:";
    for (const std::string& e : custom.env) std::cout << " " << e;
    std::cout << "\n";
    mount.Unmount();
    // The store's cached extract (what krun_set_root gets without a mount).
    std::cout << "cached: " << store.Extract(argv[1]) << "\n";
  } catch (const lazyroot::Error& e) {
    std::cerr << "read_image: " << e.what() << " (status " << e.code() << ")\n";
    return 1;
  }
  return 0;
}
