#!/usr/bin/env bash
# How long the index-only debugging verbs take on the 100,000-file image
# (bench_image.py --kind small) and on the distribution-like one (--kind
# usr): `layers`, `which` of a file in the middle of the tree, `ls -R` of the
# whole merged tree, beside the floor of a tar-based approach: GNU tar
# listing every layer blob (`tar -tv`, which must decompress them all; dive
# and container-diff unpack on top of that). Warm page cache; median of
# $RUNS runs; never asserts.
#
#   bash scripts/bench-layers.sh            # RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry

measure() {  # measure LABEL IMAGE
  local label=$1 image=$2 root=$bench_work/store-$1
  "$LAZYROOT" --root "$root" pull -q "$image" >/dev/null
  local layers=() tars=() digests d
  mapfile -t digests < <("$LAZYROOT" --root "$root" inspect "$image" |
    python3 -c 'import json,sys; print("\n".join(l["digest"] for l in json.load(sys.stdin)["Layers"]))')
  list_all() { for d in "${digests[@]}"; do tar -tvf "$root/blobs/sha256/${d#sha256:}"; done; }
  local path
  path=$("$LAZYROOT" --root "$root" ls -R --format json "$image" / | python3 -c '
import json, sys
files = [e["path"] for e in json.load(sys.stdin) if e["type"] == "file"]
print(files[len(files) // 2])')
  local which=() lsr=()
  for _ in $(seq "$RUNS"); do
    time_cmd layers "$LAZYROOT" --root "$root" layers "$image"
    time_cmd which "$LAZYROOT" --root "$root" which "$image" "$path"
    time_cmd lsr "$LAZYROOT" --root "$root" ls -R "$image" /
    time_cmd tars list_all
  done
  local lm wm rm tm
  lm=$(median "${layers[@]}")
  wm=$(median "${which[@]}")
  rm=$(median "${lsr[@]}")
  tm=$(median "${tars[@]}")
  printf '%-6s %d layer(s), tar -tv of the blobs %s s; lazyroot layers %s s (%sx), which %s s (%sx), ls -R %s s (%sx)\n' \
    "$label" "${#digests[@]}" "$tm" "$lm" "$(ratio "$tm" "$lm")" "$wm" "$(ratio "$tm" "$wm")" "$rm" "$(ratio "$tm" "$rm")"
}

python3 scripts/bench_image.py --registry "$host" --repo bench/small --tag v1 --kind small >/dev/null
measure small "http://$host/bench/small:v1"
python3 scripts/bench_image.py --registry "$host" --repo bench/usr --tag v1 --kind usr >/dev/null
measure usr "http://$host/bench/usr:v1"
