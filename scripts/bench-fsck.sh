#!/usr/bin/env bash
# How long `lazyroot fsck` and `fsck --quick` take on a store holding the
# demo image, then the distribution-like bench image (bench_image.py --kind
# usr, ~300 MiB of gzip layers), each pulled and extracted into the store's
# rootfs/ first. Warm page cache (fsck reads everything once; cold numbers
# depend on the disk). Prints the median of $RUNS runs; never asserts.
#
#   bash scripts/bench-fsck.sh            # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry

measure() {  # measure LABEL IMAGE
  local label=$1 image=$2 root=$bench_work/store-$1
  "$LAZYROOT" --root "$root" pull -q "$image" >/dev/null
  "$LAZYROOT" --root "$root" extract "$image" >/dev/null 2>&1
  local full=() quick=()
  for _ in $(seq "$RUNS"); do
    time_cmd full "$LAZYROOT" --root "$root" fsck
    time_cmd quick "$LAZYROOT" --root "$root" fsck --quick
  done
  local blobs
  blobs=$(du -sm "$root/blobs" | cut -f1)
  printf '%-6s %5s MiB of blobs: fsck %s s, fsck --quick %s s\n' "$label" "$blobs" "$(median "${full[@]}")" "$(median "${quick[@]}")"
}

python3 scripts/demo_image.py --registry "$host" --repo demo/hello --tag v1 >/dev/null
measure demo "http://$host/demo/hello:v1"
python3 scripts/bench_image.py --registry "$host" --repo bench/usr --tag v1 --kind usr >/dev/null
measure usr "http://$host/bench/usr:v1"
