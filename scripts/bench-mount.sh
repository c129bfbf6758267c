#!/usr/bin/env bash
# Mount benchmark. For each image (distribution-like /usr in 4 layers, 100k
# small files, three 256 MiB files) and each way of serving its tree:
#   native     the tree extracted to a plain directory (ext4)
#   lazyroot   lazyroot mount (FUSE, read-through from the compressed layers)
#   squashfuse squashfuse over mksquashfs of the native tree (mksquashfs time reported)
#   archivemount  of the layer tar, uncompressed (single-layer images of at most
#                 $ARCHIVEMOUNT_MAX_ENTRIES entries, default 20000)
# it measures, with the page cache dropped and a fresh mount before every
# repetition (median of $RUNS, default 3): time to ready, walk (lstat of
# every entry), read every file, 2000 random 4 KiB reads. Finally "time to a
# usable rootfs": lazyroot pull + mount vs skopeo copy + umoci unpack, and
# what a least-work client (tests/bench/pull_floor, see bench-pull.sh) plus
# our mount could reach at best.
# Prints numbers and ratios; never asserts.
# TIME_TO_ROOTFS=0 skips the last part.
# WAYS="native lazyroot" picks the ways (default: all that apply).
# BASELINE=/path/to/another/lazyroot adds the way "baseline": that binary with
# its own store, side by side with this build (e.g. the cost of a change:
# build the commit before it into another directory and point BASELINE there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
bench_start_registry
kinds=${KINDS:-"usr small large"}
ARCHIVEMOUNT_TIMEOUT=${ARCHIVEMOUNT_TIMEOUT:-120}
mnt=$bench_work/mnt; mkdir -p "$mnt"
bench_cleanup_hooks+=("mountpoint -q '$mnt' && { fusermount3 -u '$mnt' || umount -l '$mnt'; }")

# serve KIND WAY: mounts (or points at) the tree; echoes the directory.
serve() {
  case $2 in
    native) echo "$bench_work/native-$1" ;;
    lazyroot) "$LAZYROOT" --root "$bench_work/store" mount "$host/bench/$1:v1" "$mnt" && echo "$mnt" ;;
    baseline) "$BASELINE" --root "$bench_work/store-baseline" mount "$host/bench/$1:v1" "$mnt" && echo "$mnt" ;;
    squashfuse) squashfuse "$bench_work/$1.sqfs" "$mnt" && echo "$mnt" ;;
    archivemount) timeout "$ARCHIVEMOUNT_TIMEOUT" archivemount -o readonly "$bench_work/$1.tar" "$mnt" && echo "$mnt" ;;
  esac
}
unserve() { if mountpoint -q "$mnt"; then fusermount3 -u "$mnt"; fi; }

printf '%-6s %-12s %9s %9s %9s %9s\n' image way ready walk readall random4k
for kind in $kinds; do
  python3 scripts/bench_image.py --registry "$host" --repo "bench/$kind" --tag v1 --kind "$kind" >/dev/null
  "$LAZYROOT" --root "$bench_work/store" pull -q "http://$host/bench/$kind:v1" >/dev/null
  "$LAZYROOT" --root "$bench_work/store" extract "$host/bench/$kind:v1" "$bench_work/native-$kind" >/dev/null 2>&1
  ways=${WAYS:-"native lazyroot squashfuse"}
  if [[ -n ${BASELINE:-} ]]; then
    "$BASELINE" --root "$bench_work/store-baseline" pull -q "http://$host/bench/$kind:v1" >/dev/null
    ways+=" baseline"
  fi
  if [[ " $ways " == *" squashfuse "* ]]; then
    t0=$(now); mksquashfs "$bench_work/native-$kind" "$bench_work/$kind.sqfs" -quiet -no-progress >/dev/null; t1=$(now)
    echo "mksquashfs $kind: $(echo "$t1 - $t0" | bc -l | cut -c1-6) s (a cost squashfuse users pay once)"
  fi
  layers=$("$LAZYROOT" --root "$bench_work/store" inspect "$host/bench/$kind:v1" | python3 -c 'import json,sys; print(" ".join(l["digest"][7:] for l in json.load(sys.stdin)["Layers"]))')
  if [[ -z ${WAYS:-} && $(wc -w <<<"$layers") == 1 ]]; then
    gzip -dc "$bench_work/store/blobs/sha256/$layers" >"$bench_work/$kind.tar"
    # archivemount crawls on large archives (a 100k-entry tar had not finished
    # its walk after minutes): run it only where it finishes.
    if (( $(tar -tf "$bench_work/$kind.tar" | wc -l) <= ${ARCHIVEMOUNT_MAX_ENTRIES:-20000} )); then
      ways+=" archivemount"
    else
      echo "archivemount skipped for $kind (more than ${ARCHIVEMOUNT_MAX_ENTRIES:-20000} entries)"
    fi
  fi
  # Runs interleave the ways (run 1 of each, then run 2 of each, …): the
  # first timed steps after building the image run while the disk is still
  # busy, which a way measured first would pay alone.
  declare -A med=() acc=()
  for i in $(seq "$RUNS"); do
    for way in $ways; do
      # archivemount seeks through the tar for every read; its ops get the
      # mount timeout and count as that many seconds ("a lower bound") if cut.
      op_timeout=600; [[ $way == archivemount ]] && op_timeout=$ARCHIVEMOUNT_TIMEOUT
      timed() { timeout "$op_timeout" python3 scripts/bench_reads.py "$@" || echo "$op_timeout"; }
      for op in ready walk readall random; do
        unserve; drop_caches
        t0=$(now); dir=$(serve "$kind" "$way") || { dir=""; }; t1=$(now)
        [[ -n $dir ]] || { echo "$way failed to mount"; continue 2; }
        case $op in
          ready) acc[$way.ready]+=" $(echo "$t1 - $t0" | bc -l)" ;;
          walk) acc[$way.walk]+=" $(timed walk "$dir")" ;;
          readall) acc[$way.readall]+=" $(timed readall "$dir")" ;;
          random) acc[$way.random]+=" $(timed random "$dir" 2000)" ;;
        esac
      done
    done
  done
  unserve
  for way in $ways; do
    for op in ready walk readall random; do
      # shellcheck disable=SC2086
      med[$way.$op]=$(median ${acc[$way.$op]:-})
    done
    printf '%-6s %-12s %8ss %8ss %8ss %8ss\n' "$kind" "$way" "${med[$way.ready]}" "${med[$way.walk]}" "${med[$way.readall]}" "${med[$way.random]}"
  done
  # Every figure against its peer in this same run (n/a when the peer did
  # not run): native for walk and read-all, squashfuse for all four.
  printf '%-6s ratios lazyroot/native: walk %s, readall %s, random4k %s\n' "$kind" \
    "$(ratio "${med[lazyroot.walk]}" "${med[native.walk]:-}")" "$(ratio "${med[lazyroot.readall]}" "${med[native.readall]:-}")" \
    "$(ratio "${med[lazyroot.random]}" "${med[native.random]:-}")"
  printf '%-6s ratios lazyroot/squashfuse: ready %s, walk %s, readall %s, random4k %s\n' "$kind" \
    "$(ratio "${med[lazyroot.ready]}" "${med[squashfuse.ready]:-}")" "$(ratio "${med[lazyroot.walk]}" "${med[squashfuse.walk]:-}")" \
    "$(ratio "${med[lazyroot.readall]}" "${med[squashfuse.readall]:-}")" "$(ratio "${med[lazyroot.random]}" "${med[squashfuse.random]:-}")"
  if [[ -n ${BASELINE:-} ]]; then
    printf '%-6s ratios against BASELINE: ready %s, walk %s, readall %s, random4k %s\n' "$kind" \
      "$(ratio "${med[lazyroot.ready]}" "${med[baseline.ready]}")" "$(ratio "${med[lazyroot.walk]}" "${med[baseline.walk]}")" \
      "$(ratio "${med[lazyroot.readall]}" "${med[baseline.readall]}")" "$(ratio "${med[lazyroot.random]}" "${med[baseline.random]}")"
  fi
  unset med acc
done

# Time to a usable rootfs, from an empty store / empty directory, for each
# image of $ROOTFS_KINDS (default "usr debian"; debian is skipped when
# bench_image.py cannot build it, i.e. without debootstrap).
# (KINDS=" " runs only this part.)
# (TIME_TO_ROOTFS=0 skips it.)
[[ ${TIME_TO_ROOTFS:-1} == 0 ]] && exit 0
for kind in ${ROOTFS_KINDS:-usr debian}; do
  rc=0
  python3 scripts/bench_image.py --registry "$host" --repo "bench/$kind" --tag v1 --kind "$kind" >/dev/null || rc=$?
  if ((rc == 3)); then echo "time to a usable rootfs ($kind image): skipped (see above)"; continue; fi
  ((rc == 0)) || exit "$rc"
  lz=(); sk=(); mo=(); fl=(); flc=(); flr=(); floor_urls=()
  [[ -n $PULL_FLOOR ]] && mapfile -t floor_urls < <(bench_layer_urls "$kind" "$bench_work/expected")
  for i in $(seq "$RUNS"); do
    drop_caches
    t0=$(now)
    "$LAZYROOT" --root "$bench_work/fresh$i" pull -q "http://$host/bench/$kind:v1" >/dev/null
    tm=$(now)
    "$LAZYROOT" --root "$bench_work/fresh$i" mount "$host/bench/$kind:v1" "$mnt"
    t1=$(now); lz+=("$(echo "$t1 - $t0" | bc -l)"); mo+=("$(echo "$t1 - $tm" | bc -l)"); unserve
    if ((${#floor_urls[@]} > 0)); then
      drop_caches
      time_cpu_reg fl flc flr "$PULL_FLOOR" "${floor_urls[@]}"
    fi
    drop_caches
    t0=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$host/bench/$kind:v1" "oci:$bench_work/oci$i:v1"
    umoci unpack --image "$bench_work/oci$i:v1" "$bench_work/bundle$i" >/dev/null
    t1=$(now); sk+=("$(echo "$t1 - $t0" | bc -l)")
    rm -rf "$bench_work/fresh$i" "$bench_work/oci$i" "$bench_work/bundle$i"
  done
  printf 'time to a usable rootfs (%s image): lazyroot pull+mount %ss, skopeo copy+umoci unpack %ss: %sx faster\n' \
    "$kind" "$(median "${lz[@]}")" "$(median "${sk[@]}")" "$(ratio "$(median "${sk[@]}")" "$(median "${lz[@]}")")"
  if ((${#fl[@]} > 0)); then
    # The least work's 2-core floor plus our mount: what a client that checks
    # the DiffID, and stores, indexes and verifies nothing more, could reach.
    best=$(echo "($(median "${flc[@]}") + $(median "${flr[@]}")) / 2 + $(median "${mo[@]}")" | bc -l)
    printf 'time to a usable rootfs (%s image): mount step %ss; least work (pull_floor: download, blob digest, inflate, DiffID) %ss wall, its 2-core floor + the mount %.3fs: at most %sx faster for such a client\n' \
      "$kind" "$(median "${mo[@]}")" "$(median "${fl[@]}")" "$best" "$(ratio "$(median "${sk[@]}")" "$best")"
  fi
done
