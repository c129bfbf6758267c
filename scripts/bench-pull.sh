#!/usr/bin/env bash
# Pull benchmark: the same image (~100+ MiB compressed, 4 gzip layers of this
# machine's /usr) pulled from one local registry by `lazyroot pull` (which
# also decompresses, DiffID-checks and indexes every layer in the same pass)
# and by `skopeo copy docker://… oci:…` (download + verify only), each into a
# fresh destination, alternating, median of N runs (default 3). Prints the
# ratio lazyroot / skopeo. Not a test: numbers only.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
LAZYROOT=${LAZYROOT_BIN:-$PWD/build/src/lazyroot}
[[ -x $LAZYROOT ]] || bash scripts/build.sh

work=$(mktemp -d /var/tmp/lazyroot-bench-pull.XXXXXX)
registry_pid=""
cleanup() {
  if [[ -n $registry_pid ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 tests/tools/registry.py start --mode plain --dir "$work/registry" >"$work/registry.out" 2>&1 &
registry_pid=$!
for _ in $(seq 200); do
  host=$(head -n1 "$work/registry.out" 2>/dev/null || true)
  [[ $host == 127.0.0.1:* ]] && break
  sleep 0.1
done
info=$(python3 scripts/bench_image.py --registry "$host" --repo bench/usr --tag v1)
echo "image: $info"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
lz=(); sk=()
for i in $(seq "$RUNS"); do
  t0=$(now); "$LAZYROOT" --root "$work/lz$i" pull -q "http://$host/bench/usr:v1" >/dev/null; t1=$(now)
  lz+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$host/bench/usr:v1" "oci:$work/sk$i:v1" >/dev/null; t1=$(now)
  sk+=("$(echo "$t1 - $t0" | bc -l)")
  rm -rf "$work/lz$i" "$work/sk$i"
done
lzm=$(printf '%s\n' "${lz[@]}" | median)
skm=$(printf '%s\n' "${sk[@]}" | median)
printf 'lazyroot pull (+index):  %s s   runs: %s\n' "$lzm" "${lz[*]}"
printf 'skopeo copy:             %s s   runs: %s\n' "$skm" "${sk[*]}"
printf 'ratio lazyroot/skopeo:   %.2f\n' "$(echo "$lzm / $skm" | bc -l)"
