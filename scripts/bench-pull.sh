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
#
# It also prints each side's CPU (user + sys) with the registry's CPU
# during that side's transfer, and "2-core floor": (client + registry CPU)
# / 2, the wall time no schedule on this 2-vCPU machine can beat for that
# work. When lazyroot's floor is above skopeo's wall time, 1.0x is out of
# reach without doing less work, however well the pull overlaps.
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
  _w+=("$e"); _c+=("$(printf '%.2f' "$(echo "$u + $s" | bc -l)")")
}
# The registry's CPU seconds so far (docker-registry, the child of registry.py).
registry_cpu() {
  local p t=0 hz
  hz=$(getconf CLK_TCK)
  for p in $(pgrep -P "$bench_registry_pid"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "scale=2; $t / $hz" | bc -l
}
# time_cpu_reg WALL CPU REG cmd…: time_cpu, and the registry's CPU during cmd.
time_cpu_reg() {
  local -n _r=$3
  local r0 r1
  r0=$(registry_cpu)
  time_cpu "$1" "$2" "${@:4}"
  r1=$(registry_cpu)
  _r+=("$(printf '%.2f' "$(echo "$r1 - $r0" | bc -l)")")
}

for kind in ${KINDS:-usr}; do
  rc=0
  info=$(python3 scripts/bench_image.py --registry "$host" --repo "bench/$kind" --tag v1 --kind "$kind") || rc=$?
  if ((rc == 3)); then echo "$kind: skipped (see above)"; continue; fi
  ((rc == 0)) || exit "$rc"
  echo "$kind image: $info"
  ref="http://$host/bench/$kind:v1"
  lz=(); sk=(); lzc=(); skc=(); lzr=(); skr=(); bw=(); bc_=()
  for i in $(seq "$RUNS"); do
    time_cpu_reg lz lzc lzr "$LAZYROOT" --root "$bench_work/lz$i" pull -q "${pull_args[@]}" "$ref"
    time_cpu_reg sk skc skr skopeo copy -q --src-tls-verify=false "docker://$host/bench/$kind:v1" "oci:$bench_work/sk$i:v1"
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
  printf '%s: skopeo copy CPU:         %s s   runs: %s\n' "$kind" "$(median "${skc[@]}")" "${skc[*]}"
  printf '%s: registry CPU serving:    lazyroot %s s, skopeo %s s\n' "$kind" "$(median "${lzr[@]}")" "$(median "${skr[@]}")"
  lz_floor=$(printf '%.3f' "$(echo "($(median "${lzc[@]}") + $(median "${lzr[@]}")) / 2" | bc -l)")
  sk_floor=$(printf '%.3f' "$(echo "($(median "${skc[@]}") + $(median "${skr[@]}")) / 2" | bc -l)")
  printf '%s: 2-core floor:            lazyroot %s s, skopeo %s s; lazyroot floor / skopeo wall %s\n' "$kind" \
    "$lz_floor" "$sk_floor" "$(ratio "$lz_floor" "$(median "${sk[@]}")")"
  if [[ -n ${BASELINE_BIN:-} ]]; then
    printf '%s: baseline pull (+index):  %s s   runs: %s\n' "$kind" "$(median "${bw[@]}")" "${bw[*]}"
    printf '%s: baseline pull CPU:       %s s   runs: %s\n' "$kind" "$(median "${bc_[@]}")" "${bc_[*]}"
    printf '%s: ratio lazyroot/baseline: wall %s, CPU %s\n' "$kind" "$(ratio "$(median "${lz[@]}")" "$(median "${bw[@]}")")" \
      "$(ratio "$(median "${lzc[@]}")" "$(median "${bc_[@]}")")"
  fi
  printf '%s: index size:              %s bytes = %s %% of %s blob bytes\n' "$kind" "$index_bytes" \
    "$(echo "scale=2; 100 * $index_bytes / $blob_bytes" | bc -l)" "$blob_bytes"
done
