#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) into
# build-fuzz/ (or $FUZZ_BUILD_DIR), writes their seed corpora
# (scripts/fuzz_seeds.py), and runs each target for SECONDS:
#
#   scripts/fuzz.sh [TARGET...] [-t SECONDS] [-j JOBS] [-k]
#   scripts/fuzz.sh --replay    only replay the regressions with the targets
#                               already built (exit 77 if there are none)
#
# TARGET is a name like tar_reader (default: every target); SECONDS defaults
# to 30; JOBS targets run at once (default 1); -k keeps fuzzing after a crash
# (libFuzzer's -fork=1 -ignore_crashes=1: for long runs). First every
# committed crash input in tests/fuzz/regressions/TARGET/ is replayed (each
# must run clean), then the target fuzzes its seeds, its regressions (unless
# one still fails: fuzzing would only stop on it again) and the corpus it
# grew in earlier runs (build-fuzz/corpus/TARGET). New crashes land in
# build-fuzz/artifacts/TARGET/; the full log in build-fuzz/fuzz-logs/.
# Prints one line per target (executions, exec/s, coverage, crashes) and
# exits 1 if any regression or fuzz run crashed, leaked, timed out (25 s per
# input) or went over 2 GiB RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=30
jobs=1
keep_going=0
replay_only=0
targets=()
while (($#)); do
  case $1 in
    -t) seconds=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    -k) keep_going=1; shift ;;
    --replay) replay_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

bin=$build/tests/fuzz
# A hang fails at 25 s per input. Slow units are not reported as artifacts:
# on a busy CI machine a harness that writes files (oci_layout) once stalled
# past 10 s on an input that runs in 6 ms, and that is not a bug to fail on.
flags=(-rss_limit_mb=2048 -timeout=25 -report_slow_units=100000)

# Replays tests/fuzz/regressions/T one input at a time; prints the failures.
replay() {
  local t=$1 dir=$src/tests/fuzz/regressions/$1 failed=0 f
  [[ -d $dir ]] || return 0
  for f in "$dir"/*; do
    [[ -f $f ]] || continue
    if ! "$bin/${t}_fuzzer" "${flags[@]}" "$f" >"$build/fuzz-logs/$t.replay.log" 2>&1; then
      echo "$t: regression $(basename "$f") FAILS: $(grep -a -m1 -E 'SUMMARY|FUZZ_CHECK' "$build/fuzz-logs/$t.replay.log" || true)"
      failed=1
    fi
  done
  return $failed
}

if ((replay_only)); then
  ls "$bin"/*_fuzzer >/dev/null 2>&1 || { echo "fuzz.sh: no fuzz targets built in $bin"; exit 77; }
  mkdir -p "$build/fuzz-logs"
  failed=0
  for dir in tests/fuzz/regressions/*/; do
    t=$(basename "$dir")
    [[ -x $bin/${t}_fuzzer ]] || { echo "fuzz.sh: regressions for unknown target $t"; failed=1; continue; }
    replay "$t" || failed=1
  done
  ((failed)) || echo "fuzz.sh: every regression input runs clean"
  exit $failed
fi

if [[ ! -f $build/CMakeCache.txt ]]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DLAZYROOT_FUZZ=ON >/dev/null
fi
cmake --build "$build" --target fuzz -j "$(nproc)"

# Seeds are regenerated when the generator or the writer changed.
seeds=$build/seeds
if [[ ! -f $seeds/.stamp || scripts/fuzz_seeds.py -nt $seeds/.stamp || $bin/fuzz_seed_writer -nt $seeds/.stamp ]]; then
  python3 scripts/fuzz_seeds.py --out "$seeds" --writer "$bin/fuzz_seed_writer"
  touch "$seeds/.stamp"
fi

if ((${#targets[@]} == 0)); then
  for f in "$bin"/*_fuzzer; do targets+=("$(basename "${f%_fuzzer}")"); done
fi
for t in "${targets[@]}"; do
  [[ -x $bin/${t}_fuzzer ]] || { echo "fuzz.sh: no target $t (have: $(cd "$bin" && ls *_fuzzer | sed 's/_fuzzer//' | tr '\n' ' '))" >&2; exit 2; }
done

mkdir -p "$build/fuzz-logs"
fuzz_flags=()
((keep_going)) && fuzz_flags=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)

# Fuzzes T for $seconds and writes one summary line to $build/fuzz-logs/T.result.
fuzz_one() {
  local t=$1
  rm -f "$build/fuzz-logs/$t.result"
  local log=$build/fuzz-logs/$1.log corpus=$build/corpus/$1 artifacts=$build/artifacts/$1/
  local status=ok
  mkdir -p "$corpus" "$artifacts" "$seeds/$t"
  local dirs=("$corpus" "$seeds/$t")
  if ! replay "$t"; then
    status=REGRESSION
  elif [[ -d $src/tests/fuzz/regressions/$t ]]; then
    dirs+=("$src/tests/fuzz/regressions/$t")
  fi
  local before
  before=$(find "$artifacts" -type f ! -name 'slow-unit-*' | wc -l)
  local rc=0
  "$bin/${t}_fuzzer" "${flags[@]}" "${fuzz_flags[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$artifacts" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  local crashes=$(($(find "$artifacts" -type f ! -name 'slow-unit-*' | wc -l) - before))
  if ((rc != 0 || crashes > 0)) && [[ $status == ok ]]; then status=CRASH; fi
  # libFuzzer's final stats, or after a crash its last status line.
  local execs cov ft rate
  execs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")
  [[ -n $execs ]] || execs=$(grep -a -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  rate=$(awk '/^stat::average_exec_per_sec/ {print $2}' "$log")
  # -k (fork mode) prints no final stats: the rate is executions / seconds.
  [[ -n $rate || -z $execs ]] || rate=$((execs / seconds))
  cov=$(grep -a -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
  ft=$(grep -a -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
  local line
  line=$(printf '%-18s %6ss %10s execs %7s/s  cov %5s  ft %6s  crashes %d  %s' \
    "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$crashes" "$status")
  if ((rc != 0 || crashes > 0)); then
    line+=$'\n'"    $(grep -a -m1 -E 'SUMMARY|FUZZ_CHECK' "$log" || echo "exit status $rc")"
    line+=$'\n'"    inputs: $artifacts  log: $log"
    # The newest crash input itself (base64, if small), so that a crash seen
    # only on a CI machine can be replayed from its log.
    local newest
    newest=$(ls -t "$artifacts" 2>/dev/null | head -1)
    if [[ -n $newest && $(stat -c %s "$artifacts$newest") -le 8192 ]]; then
      line+=$'\n'"    $newest (base64): $(base64 -w0 "$artifacts$newest")"
    fi
  fi
  echo "$line" >"$build/fuzz-logs/$t.result"
  echo "$line"
}

pids=()
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  pids+=($!)
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
done
wait

echo "== fuzz summary ($seconds s per target)"
failed=0
for t in "${targets[@]}"; do
  if [[ ! -f $build/fuzz-logs/$t.result ]]; then
    echo "$t: no result (the run itself failed)"
    failed=1
    continue
  fi
  cat "$build/fuzz-logs/$t.result"
  if head -1 "$build/fuzz-logs/$t.result" | grep -q -E ' (CRASH|REGRESSION)$'; then failed=1; fi
done
exit $failed
