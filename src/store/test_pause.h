// A test-only pause point, so an integration test can interleave two
// processes deterministically (tests/integration/test_store_locking.py).
//
// With LAZYROOT_TEST_PAUSE=<point>:<dir> in the environment, TestPause(point)
// creates <dir>/<point>.reached and waits until <dir>/<point>.go exists (at
// most two minutes, then goes on), so the test can act while this process
// holds whatever it holds there. Any other value, or none, makes it a single
// getenv. The points are named where they are called (grep TestPause).
#pragma once

#include <string_view>

namespace lazyroot {

void TestPause(std::string_view point);

}  // namespace lazyroot
