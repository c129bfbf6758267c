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
# It also runs tests/bench/pull_floor (when built: it needs ISA-L), the
# least work a client can do and still check what lazyroot's pull checks for
# this goal: download, blob digest, inflate (ISA-L), DiffID; nothing stored,
# indexed or hashed per chunk or file. Its 2-core floor is a bound for any
# such client on this machine, not just for lazyroot.
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

for kind in ${KINDS:-usr}; do
  rc=0
  info=$(python3 scripts/bench_image.py --registry "$host" --repo "bench/$kind" --tag v1 --kind "$kind") || rc=$?
  if ((rc == 3)); then echo "$kind: skipped (see above)"; continue; fi
  ((rc == 0)) || exit "$rc"
  echo "$kind image: $info"
  ref="http://$host/bench/$kind:v1"
  lz=(); sk=(); lzc=(); skc=(); lzr=(); skr=(); bw=(); bc_=(); fl=(); flc=(); flr=()
  floor_urls=()
  if [[ -n $PULL_FLOOR ]]; then
    mapfile -t floor_urls < <(bench_layer_urls "$kind" "$bench_work/expected")
    "$PULL_FLOOR" "${floor_urls[@]}" >"$bench_work/floor.out"
    if ! diff -q "$bench_work/expected" "$bench_work/floor.out" >/dev/null; then
      echo "$kind: pull_floor's digests differ from the manifest's and config's" >&2
      exit 1
    fi
  fi
  for i in $(seq "$RUNS"); do
    if ((${#floor_urls[@]} > 0)); then time_cpu_reg fl flc flr "$PULL_FLOOR" "${floor_urls[@]}"; fi
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
  if ((${#fl[@]} > 0)); then
    fl_floor=$(printf '%.3f' "$(echo "($(median "${flc[@]}") + $(median "${flr[@]}")) / 2" | bc -l)")
    printf '%s: least work (pull_floor): %s s   runs: %s; CPU %s s, registry %s s; its digests and DiffIDs checked\n' \
      "$kind" "$(median "${fl[@]}")" "${fl[*]}" "$(median "${flc[@]}")" "$(median "${flr[@]}")"
    printf '%s: least work 2-core floor: %s s = %s x skopeo wall (above 1: no client that inflates and checks the DiffID can match skopeo here); lazyroot wall / least work wall %s\n' \
      "$kind" "$fl_floor" "$(ratio "$fl_floor" "$(median "${sk[@]}")")" "$(ratio "$(median "${lz[@]}")" "$(median "${fl[@]}")")"
  fi
  if [[ -n ${BASELINE_BIN:-} ]]; then
    printf '%s: baseline pull (+index):  %s s   runs: %s\n' "$kind" "$(median "${bw[@]}")" "${bw[*]}"
    printf '%s: baseline pull CPU:       %s s   runs: %s\n' "$kind" "$(median "${bc_[@]}")" "${bc_[*]}"
    printf '%s: ratio lazyroot/baseline: wall %s, CPU %s\n' "$kind" "$(ratio "$(median "${lz[@]}")" "$(median "${bw[@]}")")" \
      "$(ratio "$(median "${lzc[@]}")" "$(median "${bc_[@]}")")"
  fi
  printf '%s: index size:              %s bytes = %s %% of %s blob bytes\n' "$kind" "$index_bytes" \
    "$(echo "scale=2; 100 * $index_bytes / $blob_bytes" | bc -l)" "$blob_bytes"
done
