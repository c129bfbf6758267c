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
# time_cpu WALL CPU cmd…: appends the wall and user+sys seconds of cmd.
time_cpu() {
  local -n _w=$1 _c=$2; shift 2
  /usr/bin/time -f '%e %U %S' -o "$bench_work/time.out" "$@" >/dev/null
  read -r e u s <"$bench_work/time.out"
  _w+=("$e"); _c+=("$(printf '%.2f' "$(echo "$u + $s" | bc -l)")")
}
# The registry's CPU seconds so far (docker-registry, the child of
# registry.py started by bench_start_registry).
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

# bench_layer_urls KIND EXPECTED: prints the layer blob URLs of
# bench/KIND:v1 on $host, one per line, and writes "BLOB DIFFID" per layer
# to EXPECTED (from the manifest and config), which pull_floor's output must
# equal.
bench_layer_urls() {
  python3 - "$host" "bench/$1" "$2" <<'PY'
import json, sys, urllib.request
host, repo, expected = sys.argv[1:]
def get(path, accept=None):
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{path}")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req) as r:
        return json.load(r)
m = get("manifests/v1", "application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.v2+json")
diff_ids = get(f"blobs/{m['config']['digest']}")["rootfs"]["diff_ids"]
with open(expected, "w") as f:
    for layer, diff_id in zip(m["layers"], diff_ids):
        f.write(f"{layer['digest']} {diff_id}\n")
for layer in m["layers"]:
    print(f"http://{host}/v2/{repo}/blobs/{layer['digest']}")
PY
}
# The least-work client of bench-pull.sh (tests/bench/pull_floor.cc; built
# with ISA-L only). Empty when it is missing.
PULL_FLOOR=${PULL_FLOOR_BIN:-$PWD/build/tests/pull_floor}
[[ -x $PULL_FLOOR ]] || PULL_FLOOR=""
