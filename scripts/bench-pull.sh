#!/usr/bin/env bash
# Pull benchmark: the same image (4 gzip -6 layers of this machine's /usr,
# ~160 MB compressed) pulled from one local registry by `lazyroot pull` (which
# also decompresses, DiffID-checks and indexes every layer in the same pass)
# and by `skopeo copy docker://… oci:…` (download + verify only), each into a
# fresh destination, alternating, median of $RUNS (default 3). Prints the
# ratio lazyroot / skopeo and the index size relative to the blobs.
#
# BASELINE_BIN=/path/to/other/lazyroot adds that build to the rotation and
# prints wall and CPU (user + sys) medians of both and their ratios: what a
# change costs the pull (e.g. the per-file SHA-256 of index format 3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry
info=$(python3 scripts/bench_image.py --registry "$host" --repo bench/usr --tag v1)
echo "image: $info"

# time_cpu WALL CPU cmd…: appends the wall and user+sys seconds of cmd.
time_cpu() {
  local -n _w=$1 _c=$2; shift 2
  /usr/bin/time -f '%e %U %S' -o "$bench_work/time.out" "$@" >/dev/null
  read -r e u s <"$bench_work/time.out"
  _w+=("$e"); _c+=("$(echo "$u + $s" | bc -l)")
}

lz=(); sk=(); lzc=(); bw=(); bc_=()
for i in $(seq "$RUNS"); do
  time_cpu lz lzc "$LAZYROOT" --root "$bench_work/lz$i" pull -q "http://$host/bench/usr:v1"
  time_cmd sk skopeo copy -q --src-tls-verify=false "docker://$host/bench/usr:v1" "oci:$bench_work/sk$i:v1"
  if [[ -n ${BASELINE_BIN:-} ]]; then
    time_cpu bw bc_ "$BASELINE_BIN" --root "$bench_work/base$i" pull -q "http://$host/bench/usr:v1"
    rm -rf "$bench_work/base$i"
  fi
  ((i == 1)) || rm -rf "$bench_work/lz$i"
  rm -rf "$bench_work/sk$i"
done
blob_bytes=$(du -sb "$bench_work/lz1/blobs" | cut -f1)
index_bytes=$(du -sb "$bench_work/lz1/index" | cut -f1)
printf 'lazyroot pull (+index):  %s s   runs: %s\n' "$(median "${lz[@]}")" "${lz[*]}"
printf 'skopeo copy:             %s s   runs: %s\n' "$(median "${sk[@]}")" "${sk[*]}"
printf 'ratio lazyroot/skopeo:   %s\n' "$(ratio "$(median "${lz[@]}")" "$(median "${sk[@]}")")"
printf 'lazyroot pull CPU:       %s s   runs: %s\n' "$(median "${lzc[@]}")" "${lzc[*]}"
if [[ -n ${BASELINE_BIN:-} ]]; then
  printf 'baseline pull (+index):  %s s   runs: %s\n' "$(median "${bw[@]}")" "${bw[*]}"
  printf 'baseline pull CPU:       %s s   runs: %s\n' "$(median "${bc_[@]}")" "${bc_[*]}"
  printf 'ratio lazyroot/baseline: wall %s, CPU %s\n' "$(ratio "$(median "${lz[@]}")" "$(median "${bw[@]}")")" \
    "$(ratio "$(median "${lzc[@]}")" "$(median "${bc_[@]}")")"
fi
printf 'index size:              %s bytes = %s %% of %s blob bytes\n' "$index_bytes" \
  "$(echo "scale=2; 100 * $index_bytes / $blob_bytes" | bc -l)" "$blob_bytes"
