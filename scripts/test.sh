#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, and runs every test
# (unit tests and integration tests against real registries, real FUSE
# mounts and independent tools). Needs root for the FUSE and ownership tests.
# Also fuzzes every parser of hostile input for LAZYROOT_FUZZ_SECONDS (30)
# each, after replaying every committed crash input (scripts/fuzz.sh;
# LAZYROOT_SKIP_FUZZ=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build} bash scripts/build.sh -DLAZYROOT_WERROR=ON
# The mount's concurrency under ThreadSanitizer first, so that CTest's
# summary stays the last word (LAZYROOT_SKIP_TSAN=1 skips it, e.g. locally).
if [[ ${LAZYROOT_SKIP_TSAN:-0} != 1 ]]; then bash scripts/test-tsan.sh; fi
# The fuzz targets (clang, ASan + UBSan, build-fuzz/), as many at once as
# there are cores; a crash fails the run, after CTest has had its say.
fuzz_status=0
fuzz_log=$PWD/build-fuzz-run.log
if [[ ${LAZYROOT_SKIP_FUZZ:-0} != 1 ]]; then
  bash scripts/fuzz.sh -t "${LAZYROOT_FUZZ_SECONDS:-30}" -j "$(nproc)" 2>&1 | tee "$fuzz_log" ||
    fuzz_status=${PIPESTATUS[0]}
fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
if ((fuzz_status != 0)); then
  # Again at the end: a CI log often keeps only its tail.
  sed -n '/^== fuzz summary/,$p' "$fuzz_log" >&2 || true
  echo "test.sh: the fuzz targets crashed (summary above, logs in build-fuzz/fuzz-logs/)" >&2
  exit "$fuzz_status"
fi
