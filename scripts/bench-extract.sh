#!/usr/bin/env bash
# Extract benchmark: for each image (distribution-like /usr in 4 layers,
# 100k small files, three 256 MiB files) pulled once, time with a cold page
# cache, each into a fresh directory (a big delete right before an untar
# slows it several times on this filesystem, so trees are removed at the end):
#   lazyroot extract IMAGE DIR
#   umoci unpack (from a skopeo-made OCI layout of the same image)
#   tar -xzf of each layer blob in order (no whiteouts: the floor)
# Median of $RUNS (default 3); prints ratios to tar and umoci.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry
kinds=${KINDS:-"usr small large"}
printf '%-7s %10s %10s %10s %12s %12s\n' image lazyroot umoci tar lazy/tar lazy/umoci
for kind in $kinds; do
  python3 scripts/bench_image.py --registry "$host" --repo "bench/$kind" --tag v1 --kind "$kind" >"$bench_work/$kind.json"
  ref="$host/bench/$kind:v1"
  store="$bench_work/store"
  "$LAZYROOT" --root "$store" pull -q "http://$ref" >/dev/null
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$bench_work/layout-$kind:v1"
  layers=$("$LAZYROOT" --root "$store" inspect "$ref" | python3 -c 'import json,sys; print(" ".join(l["digest"][7:] for l in json.load(sys.stdin)["Layers"]))')
  lz=(); um=(); tr=()
  for i in $(seq "$RUNS"); do
    drop_caches
    time_cmd lz "$LAZYROOT" --root "$store" extract "$ref" "$bench_work/x-$kind-lz$i"
    drop_caches
    time_cmd um umoci unpack --image "$bench_work/layout-$kind:v1" "$bench_work/x-$kind-um$i"
    drop_caches
    mkdir -p "$bench_work/x-$kind-tar$i"
    t0=$(now)
    for l in $layers; do tar -xzf "$store/blobs/sha256/$l" -C "$bench_work/x-$kind-tar$i"; done
    t1=$(now); tr+=("$(echo "$t1 - $t0" | bc -l)")
  done
  L=$(median "${lz[@]}"); U=$(median "${um[@]}"); T=$(median "${tr[@]}")
  printf '%-7s %9ss %9ss %9ss %12s %12s\n' "$kind" "$L" "$U" "$T" "$(ratio "$L" "$T")" "$(ratio "$L" "$U")"
done
