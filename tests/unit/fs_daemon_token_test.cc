// The token a mount daemon holds for as long as it lives, which `lazyroot
// umount` waits on (fs/daemon_token.h): held while bound, free once closed,
// even by a process that exits without closing it; one holder per device.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "fs/daemon_token.h"

namespace lazyroot {
namespace {

// A device name no real mount of this test run has.
std::string TestDevice(const char* what) { return std::string("test-") + what + "-" + std::to_string(getpid()); }

TEST(DaemonToken, HeldWhileBoundFreeOnceClosed) {
  const std::string dev = TestDevice("held");
  EXPECT_FALSE(DaemonTokenHeld(dev));
  {
    DaemonToken token;
    ASSERT_TRUE(token.Bind(dev));
    EXPECT_TRUE(token.held());
    EXPECT_TRUE(DaemonTokenHeld(dev));
    EXPECT_TRUE(DaemonTokenHeld(dev));  // probing does not take it away
    DaemonToken second;
    EXPECT_FALSE(second.Bind(dev));  // one holder
    EXPECT_FALSE(second.held());
    EXPECT_FALSE(WaitForDaemonExit(dev, std::chrono::milliseconds(30)));
  }
  EXPECT_FALSE(DaemonTokenHeld(dev));
  EXPECT_TRUE(WaitForDaemonExit(dev, std::chrono::milliseconds(0)));
}

// A daemon holds its mount's unique-ID name and its device's: a umount that
// may not statx the mount (root, a user's mount without allow_other) waits
// on the device. Each name is held until the token goes; one taken by
// another holder leaves the others held.
TEST(DaemonToken, HoldsEveryNameItBinds) {
  const std::string unique = TestDevice("unique"), dev = TestDevice("dev"), taken = TestDevice("taken");
  DaemonToken other;
  ASSERT_TRUE(other.Bind(taken));
  {
    DaemonToken token;
    ASSERT_TRUE(token.Bind(unique));
    ASSERT_TRUE(token.Bind(dev));
    EXPECT_FALSE(token.Bind(taken));
    EXPECT_TRUE(token.held());
    EXPECT_TRUE(DaemonTokenHeld(unique));
    EXPECT_TRUE(DaemonTokenHeld(dev));
  }
  EXPECT_FALSE(DaemonTokenHeld(unique));
  EXPECT_FALSE(DaemonTokenHeld(dev));
  EXPECT_TRUE(DaemonTokenHeld(taken));
}

TEST(DaemonToken, NoDeviceNoToken) {
  DaemonToken token;
  EXPECT_FALSE(token.Bind(""));
  EXPECT_FALSE(DaemonTokenHeld(""));
  EXPECT_TRUE(WaitForDaemonExit("", std::chrono::milliseconds(0)));
}

TEST(DaemonToken, WaitEndsWhenTheHolderExitsWithoutClosing) {
  const std::string dev = TestDevice("exit");
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto token = std::make_unique<DaemonToken>();
    if (!token->Bind(dev)) _exit(3);
    token.release();  // never closed: the kernel frees the name at exit
    if (write(go[1], "r", 1) != 1) _exit(4);
    usleep(200 * 1000);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(go[0], &c, 1), 1);
  EXPECT_TRUE(DaemonTokenHeld(dev));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitForDaemonExit(dev, std::chrono::seconds(20)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));  // it did wait
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(go[0]);
  close(go[1]);
}

// A token is named by the kernel's unique mount ID where it has one (Linux
// 6.8+: the mount of "/" and of "/proc" differ, and the name is stable),
// else by the device it is given; a path that does not resolve falls back.
TEST(MountTokenName, UniqueMountIdOrTheDevice) {
  EXPECT_EQ(MountTokenName("/nonexistent/lazyroot-token", "0:99"), "0:99");
  EXPECT_EQ(MountTokenName("", "0:98"), "0:98");
  const std::string root = MountTokenName("/", "0:1"), proc = MountTokenName("/proc", "0:2");
  EXPECT_EQ(root, MountTokenName("/", "0:1"));
  EXPECT_NE(root, proc);
  if (root.starts_with("u")) {
    EXPECT_TRUE(proc.starts_with("u")) << proc;
    EXPECT_GT(root.size(), 1u);
  } else {
    EXPECT_EQ(root, "0:1");  // a kernel before unique mount IDs
  }
}

}  // namespace
}  // namespace lazyroot
