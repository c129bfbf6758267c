#!/usr/bin/env bash
# Pull benchmark: each image of $KINDS (default "usr": 4 gzip -6 layers of
# this machine's /usr, ~160 MB compressed; also "small" (100k files, one
# layer), "large", "debian" (a debootstrap bookworm image of 3 layers; skipped
# when debootstrap is missing), see scripts/bench_image.py) pulled from one
# local registry by `lazyroot pull` (which also decompresses, DiffID-checks and
# indexes every layer in the same pass) and by `skopeo copy docker://…
# oci:…` (download + verify only), each into a fresh destination,
# alternating, median of $RUNS (default 3). Prints the ratio lazyroot /
# skopeo and the index size relative to the blobs.
#
# BASELINE_BIN=/path/to/other/lazyroot adds that build to the rotation and
# prints wall and CPU (user + sys) medians of both and their ratios: what a
# change costs the pull (e.g. the per-file SHA-256 of index format 3).
# PULL_ARGS="-j 4" passes extra arguments to both lazyroot pulls.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry
read -r -a pull_args <<<"${PULL_ARGS:-}"

# time_cpu WALL CPU cmd…: appends the wall and user+sys seconds of cmd.
time_cpu() {
  local -n _w=$1 _c=$2; shift 2
  /usr/bin/time -f '%e %U %S' -o "$bench_work/time.out" "$@" >/dev/null
  read -r e u s <"$bench_work/time.out"
  _w+=("$e"); _c+=("$(echo "$u + $s" | bc -l)")
}

for kind in ${KINDS:-usr}; do
  rc=0
  info=$(python3 scripts/bench_image.py --registry "$host" --repo "bench/$kind" --tag v1 --kind "$kind") || rc=$?
  if ((rc == 3)); then echo "$kind: skipped (see above)"; continue; fi
  ((rc == 0)) || exit "$rc"
  echo "$kind image: $info"
  ref="http://$host/bench/$kind:v1"
  lz=(); sk=(); lzc=(); bw=(); bc_=()
  for i in $(seq "$RUNS"); do
    time_cpu lz lzc "$LAZYROOT" --root "$bench_work/lz$i" pull -q "${pull_args[@]}" "$ref"
    time_cmd sk skopeo copy -q --src-tls-verify=false "docker://$host/bench/$kind:v1" "oci:$bench_work/sk$i:v1"
    if [[ -n ${BASELINE_BIN:-} ]]; then
      time_cpu bw bc_ "$BASELINE_BIN" --root "$bench_work/base$i" pull -q "${pull_args[@]}" "$ref"
      rm -rf "$bench_work/base$i"
    fi
    ((i == 1)) || rm -rf "$bench_work/lz$i"
    rm -rf "$bench_work/sk$i"
  done
  blob_bytes=$(du -sb "$bench_work/lz1/blobs" | cut -f1)
  index_bytes=$(du -sb "$bench_work/lz1/index" | cut -f1)
  rm -rf "$bench_work/lz1"
  printf '%s: lazyroot pull (+index):  %s s   runs: %s\n' "$kind" "$(median "${lz[@]}")" "${lz[*]}"
  printf '%s: skopeo copy:             %s s   runs: %s\n' "$kind" "$(median "${sk[@]}")" "${sk[*]}"
  printf '%s: ratio lazyroot/skopeo:   %s\n' "$kind" "$(ratio "$(median "${lz[@]}")" "$(median "${sk[@]}")")"
  printf '%s: lazyroot pull CPU:       %s s   runs: %s\n' "$kind" "$(median "${lzc[@]}")" "${lzc[*]}"
  if [[ -n ${BASELINE_BIN:-} ]]; then
    printf '%s: baseline pull (+index):  %s s   runs: %s\n' "$kind" "$(median "${bw[@]}")" "${bw[*]}"
    printf '%s: baseline pull CPU:       %s s   runs: %s\n' "$kind" "$(median "${bc_[@]}")" "${bc_[*]}"
    printf '%s: ratio lazyroot/baseline: wall %s, CPU %s\n' "$kind" "$(ratio "$(median "${lz[@]}")" "$(median "${bw[@]}")")" \
      "$(ratio "$(median "${lzc[@]}")" "$(median "${bc_[@]}")")"
  fi
  printf '%s: index size:              %s bytes = %s %% of %s blob bytes\n' "$kind" "$index_bytes" \
    "$(echo "scale=2; 100 * $index_bytes / $blob_bytes" | bc -l)" "$blob_bytes"
done
