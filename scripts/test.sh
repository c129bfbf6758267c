#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, and runs every test
# (unit tests and integration tests against real registries, real FUSE
# mounts and independent tools). Needs root for the FUSE and ownership tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build} bash scripts/build.sh -DLAZYROOT_WERROR=ON
# The mount's concurrency under ThreadSanitizer first, so that CTest's
# summary stays the last word (LAZYROOT_SKIP_TSAN=1 skips it, e.g. locally).
if [[ ${LAZYROOT_SKIP_TSAN:-0} != 1 ]]; then bash scripts/test-tsan.sh; fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
