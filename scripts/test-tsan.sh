#!/usr/bin/env bash
# The concurrency check of the mount and the pull's indexer: builds lazyroot
# and the unit tests with ThreadSanitizer (build-tsan/), runs the fs unit
# tests (span cache and read path from many threads), the indexer's hashing
# thread's tests and the FUSE mount integration test against
# the TSAN binary. The daemon's stderr is /dev/null, so TSAN writes its
# reports to files; any report fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-tsan bash scripts/build.sh -DLAZYROOT_WERROR=ON -DLAZYROOT_SANITIZE=thread >/dev/null
reports=$(mktemp -d /tmp/lazyroot-tsan.XXXXXX)
trap 'rm -rf "$reports"' EXIT
export TSAN_OPTIONS="log_path=$reports/tsan second_deadlock_stack=1"
build-tsan/tests/fs_tests --gtest_brief=1
# The pull's hashing and deflating threads (index/stream_hasher.h, blob_hasher.h, serial_worker.h).
build-tsan/tests/index_tests --gtest_brief=1 --gtest_filter='StreamHasher*:*LayerIndexer*:BlobHasher*:SerialWorker*:LayerIndexWriter*:Sha256Pair*'
# The indexer's thread beside the download (src/pull/threaded_consumer.h), in
# the unit tests and in pulls of layers past its threshold, one failing on it.
build-tsan/tests/src_tests --gtest_brief=1 --gtest_filter='ThreadedConsumer*:PullException*'
LAZYROOT_BIN=$PWD/build-tsan/src/lazyroot python3 tests/integration/test_attacks_pull_hashing.py \
  ExactSizes.test_tamper_into_a_store_with_an_image ExactSizes.test_corrupt_tar_past_the_threshold 2>&1 | tail -3
LAZYROOT_BIN=$PWD/build-tsan/src/lazyroot python3 tests/integration/test_mount_basic.py 2>&1 | tail -3
if compgen -G "$reports/tsan*" >/dev/null; then
  echo "ThreadSanitizer reports:"; cat "$reports"/tsan*; exit 1
fi
echo "ThreadSanitizer: no reports"
