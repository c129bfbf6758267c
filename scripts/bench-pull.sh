#!/usr/bin/env bash
# Pull benchmark: the same image (4 gzip -6 layers of this machine's /usr,
# ~160 MB compressed) pulled from one local registry by `lazyroot pull` (which
# also decompresses, DiffID-checks and indexes every layer in the same pass)
# and by `skopeo copy docker://… oci:…` (download + verify only), each into a
# fresh destination, alternating, median of $RUNS (default 3). Prints the
# ratio lazyroot / skopeo and the index size relative to the blobs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry
info=$(python3 scripts/bench_image.py --registry "$host" --repo bench/usr --tag v1)
echo "image: $info"

lz=(); sk=()
for i in $(seq "$RUNS"); do
  time_cmd lz "$LAZYROOT" --root "$bench_work/lz$i" pull -q "http://$host/bench/usr:v1"
  time_cmd sk skopeo copy -q --src-tls-verify=false "docker://$host/bench/usr:v1" "oci:$bench_work/sk$i:v1"
done
blob_bytes=$(du -sb "$bench_work/lz1/blobs" | cut -f1)
index_bytes=$(du -sb "$bench_work/lz1/index" | cut -f1)
printf 'lazyroot pull (+index):  %s s   runs: %s\n' "$(median "${lz[@]}")" "${lz[*]}"
printf 'skopeo copy:             %s s   runs: %s\n' "$(median "${sk[@]}")" "${sk[*]}"
printf 'ratio lazyroot/skopeo:   %s\n' "$(ratio "$(median "${lz[@]}")" "$(median "${sk[@]}")")"
printf 'index size:              %s bytes = %s %% of %s blob bytes\n' "$index_bytes" \
  "$(echo "scale=2; 100 * $index_bytes / $blob_bytes" | bc -l)" "$blob_bytes"
