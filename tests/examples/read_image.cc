// read_image IMAGE DIR FILE: the C++ interface (lazyroot.hpp) built against
// the installed CMake package: pull if missing, mount at DIR, print FILE
// read through the mount and the image's argv, unmount (RAII).
//
//   find_package(lazyroot REQUIRED)
//   target_link_libraries(read_image PRIVATE lazyroot::lazyroot)
#include <lazyroot/lazyroot.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

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
    mount.Unmount();
  } catch (const lazyroot::Error& e) {
    std::cerr << "read_image: " << e.what() << " (status " << e.code() << ")\n";
    return 1;
  }
  return 0;
}
