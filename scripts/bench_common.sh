# Shared pieces of the benchmark scripts (sourced, not run): a scratch
# directory, a local registry, cold-cache and timing helpers.
# Benchmarks print numbers and ratios; they never assert on time.

LAZYROOT=${LAZYROOT_BIN:-$PWD/build/src/lazyroot}
RUNS=${RUNS:-3}
[[ -x $LAZYROOT ]] || bash scripts/build.sh

bench_work=$(mktemp -d /var/tmp/lazyroot-bench.XXXXXX)
bench_registry_pid=""
bench_cleanup_hooks=()
bench_cleanup() {
  local h
  for h in "${bench_cleanup_hooks[@]}"; do eval "$h" || true; done
  if [[ -n $bench_registry_pid ]]; then kill "$bench_registry_pid" 2>/dev/null || true; wait "$bench_registry_pid" 2>/dev/null || true; fi
  rm -rf "$bench_work"
}
trap bench_cleanup EXIT

# Starts Debian's docker-registry on 127.0.0.1; sets $host.
bench_start_registry() {
  python3 tests/tools/registry.py start --mode plain --dir "$bench_work/registry" >"$bench_work/registry.out" 2>&1 &
  bench_registry_pid=$!
  for _ in $(seq 300); do
    host=$(head -n1 "$bench_work/registry.out" 2>/dev/null || true)
    [[ $host == 127.0.0.1:* ]] && return 0
    sleep 0.1
  done
  cat "$bench_work/registry.out" >&2
  return 1
}

# Drops the page cache when we may (root); cold numbers otherwise are warm.
drop_caches() { sync; if [[ -w /proc/sys/vm/drop_caches ]]; then echo 3 >/proc/sys/vm/drop_caches; fi; }

now() { date +%s.%N; }
# time_cmd VAR cmd…: runs cmd, appends its wall seconds to array VAR.
time_cmd() {
  local -n _acc=$1; shift
  local t0 t1
  t0=$(now); "$@" >/dev/null; t1=$(now)
  _acc+=("$(echo "$t1 - $t0" | bc -l)")
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.3f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# ratio A B: A / B to 2 places; "n/a" when either is missing or B is 0 (a
# walk of a few entries can time at 0.000 s).
ratio() {
  if [[ -n ${1:-} && -n ${2:-} ]] && [[ $(echo "$2 != 0" | bc -l) == 1 ]]; then
    echo "scale=2; $1 / $2" | bc -l
  else
    echo "n/a"
  fi
}
