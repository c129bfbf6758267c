#!/usr/bin/env bash
# What the check before reusing the cached rootfs costs: the 100k-file image
# of bench_image.py --kind small is pulled and extracted into the store once,
# then `lazyroot extract IMAGE` (which now compares the cached tree with the
# image's tree, stat-level, before handing it out) is timed $RUNS times warm
# and once with a cold page cache. Prints the whole command's wall time and
# the check's own time (extract reports it: "checked in N ms").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry
python3 scripts/bench_image.py --registry "$host" --repo bench/small --tag v1 --kind small >/dev/null
ref="$host/bench/small:v1"
store="$bench_work/store"
"$LAZYROOT" --root "$store" pull -q "http://$ref" >/dev/null
t0=$(now); "$LAZYROOT" --root "$store" extract "$ref" >/dev/null 2>&1; t1=$(now)
printf 'first extract (into the store): %.3f s\n' "$(echo "$t1 - $t0" | bc -l)"
run() {  # label
  local t0 t1 err
  t0=$(now); err=$("$LAZYROOT" --root "$store" extract "$ref" 2>&1 >/dev/null); t1=$(now)
  grep -q "already extracted" <<<"$err" || { echo "not reused: $err" >&2; exit 1; }
  printf '%-6s extract (reuse): %.3f s, of which the check: %s\n' "$1" "$(echo "$t1 - $t0" | bc -l)" \
    "$(sed -n 's/.*checked in \([0-9]*\) ms.*/\1 ms/p' <<<"$err")"
}
for _ in $(seq "$RUNS"); do run warm; done
drop_caches
run cold
