#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, and runs every test
# (unit tests and integration tests against real registries, real FUSE
# mounts and independent tools). Needs root for the FUSE and ownership tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build} bash scripts/build.sh -DLAZYROOT_WERROR=ON
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
