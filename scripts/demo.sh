#!/usr/bin/env bash
# The whole product on a built-in demo: installs dependencies, builds, starts a
# throw-away registry on 127.0.0.1, pushes a small generated image, then runs
# lazyroot on it. Everything lives in a temporary directory removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
LAZYROOT=$PWD/build/src/lazyroot

work=$(mktemp -d /tmp/lazyroot-demo.XXXXXX)
registry_pid=""
mounted=""
cleanup() {
  if [[ -n $mounted ]]; then "$LAZYROOT" umount "$mounted" 2>/dev/null || fusermount3 -u "$mounted" 2>/dev/null || true; fi
  if [[ -n $registry_pid ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Start a registry on 127.0.0.1 (Debian's docker-registry)"
python3 tests/tools/registry.py start --mode plain --dir "$work/registry" >"$work/registry.out" 2>&1 &
registry_pid=$!
for _ in $(seq 200); do
  host=$(head -n1 "$work/registry.out" 2>/dev/null || true)
  [[ $host == 127.0.0.1:* ]] && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.out"; exit 1; }
  sleep 0.1
done
echo "registry at $host"

step "Generate an image and push it (demo/hello:v1: busybox, an app layer, a whiteout layer)"
python3 scripts/demo_image.py --registry "$host" --repo demo/hello --tag v1 >"$work/pushed.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("manifest", d["manifest"]); print("layers  ", *d["layers"], sep="\n  ")' "$work/pushed.json"

export LAZYROOT_HOME=$work/store
image="http://$host/demo/hello:v1"

step "lazyroot pull $image"
"$LAZYROOT" pull --progress plain "$image"

step "lazyroot pull again (everything already present)"
"$LAZYROOT" pull --progress plain "$image"

step "lazyroot images"
"$LAZYROOT" images

step "lazyroot inspect $host/demo/hello:v1"
"$LAZYROOT" inspect "$host/demo/hello:v1"

step "Every stored blob re-checked with sha256sum"
(cd "$LAZYROOT_HOME/blobs/sha256" && n=0 && for f in *; do
   [[ $(sha256sum "$f" | cut -d' ' -f1) == "$f" ]] || { echo "MISMATCH $f"; exit 1; }; n=$((n + 1)); done
 echo "$n blobs verified")

step "lazyroot extract $host/demo/hello:v1 $work/rootfs"
"$LAZYROOT" extract "$host/demo/hello:v1" "$work/rootfs"
ls -l "$work/rootfs" "$work/rootfs/etc"
echo "whited-out /etc/obsolete present? $([[ -e $work/rootfs/etc/obsolete ]] && echo yes || echo no)"
echo "opaque /var/cache holds: $(ls "$work/rootfs/var/cache")"

step "lazyroot mount $host/demo/hello:v1 $work/mnt (read-only FUSE, nothing unpacked)"
mkdir -p "$work/mnt"
"$LAZYROOT" mount "$host/demo/hello:v1" "$work/mnt"
mounted=$work/mnt
grep " $work/mnt " /proc/mounts
echo "the mount and the extracted tree are identical: $(diff -r --no-dereference "$work/rootfs" "$work/mnt" >/dev/null && echo yes || echo NO)"
echo "sha256 of /srv/data.bin read through the mount: $(sha256sum <"$work/mnt/srv/data.bin" | cut -c1-16)…"

step "Run the image's entrypoint inside the mount (chroot $work/mnt /bin/hello)"
chroot "$work/mnt" /bin/hello

step "lazyroot umount $work/mnt"
"$LAZYROOT" umount "$work/mnt"
mounted=""

step "Hostile input: the image under a tiny budget (--limit layer-entries=3) is refused, the store untouched"
if LAZYROOT_HOME=$work/store-limited "$LAZYROOT" pull --progress plain --limit layer-entries=3 "$image"; then
  echo "UNEXPECTED: the pull went over its budget"; exit 1
fi
echo "image records in that store afterwards: $(ls "$work/store-limited/images" 2>/dev/null | wc -l)"

step "lazyroot extract --rootless (files owned by the caller, no setuid/setgid or group/other write on disk)"
"$LAZYROOT" extract --rootless "$host/demo/hello:v1" "$work/rootless"
stat -c '%A %U %n' "$work/rootless/bin/busybox"
echo "the image's own uid:gid:mode, kept in user.containers.override_stat: $(getfattr --only-values -n user.containers.override_stat "$work/rootless/bin/busybox" 2>/dev/null || echo '(file system without user xattrs)')"

step "Debugging layers from the indexes (no mount, no unpacking): lazyroot layers, which, ls --layer"
"$LAZYROOT" layers "$host/demo/hello:v1"
"$LAZYROOT" which "$host/demo/hello:v1" /etc/obsolete
echo "what layer 3 deletes (its .wh. files): $("$LAZYROOT" ls -R --layer 3 "$host/demo/hello:v1" | grep '/\.wh\.' | tr '\n' ' ')"

step "The next release (demo/hello:v2, layer 3 rebuilt): lazyroot diff v1 v2, from the per-file digests"
python3 scripts/demo_image.py --registry "$host" --repo demo/hello --tag v2 --variant v2 >/dev/null
"$LAZYROOT" pull -q "http://$host/demo/hello:v2" >/dev/null
"$LAZYROOT" diff "$host/demo/hello:v1" "$host/demo/hello:v2" || true

step "lazyroot mount --layers: every layer and every partial merge in one mount, each file tagged with its layer"
mkdir -p "$work/dbg"
"$LAZYROOT" mount --layers "$host/demo/hello:v1" "$work/dbg"
mounted=$work/dbg
ls "$work/dbg" "$work/dbg/layers" "$work/dbg/upto"
echo "what layer 3 deletes: $(cd "$work/dbg/layers" && find 3-* -name '.wh.*' | tr '\n' ' ')"
echo "/etc/motd after layer 2: $(cat "$work/dbg/upto/2/etc/motd"), merged: $(cat "$work/dbg/merged/etc/motd")"
echo "who wrote merged/etc/motd: $(getfattr --absolute-names --only-values -n user.lazyroot.layer "$work/dbg/merged/etc/motd" | cut -c1-20)…"
"$LAZYROOT" umount "$work/dbg"
mounted=""

step "For a VM launcher: lazyroot inspect --launch (the user resolved from the image's own /etc/passwd)"
"$LAZYROOT" inspect --launch "$host/demo/hello:v1"

step "lazyroot extract --bundle: an OCI runtime bundle; runc runs the entrypoint as the image's user"
"$LAZYROOT" extract --bundle "$work/bundle" "$host/demo/hello:v1"
if command -v runc >/dev/null; then
  python3 - "$work/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/sh", "-c", "/bin/hello; echo \"running as $(busybox id -u):$(busybox id -g) in $(pwd)\""]
json.dump(c, open(sys.argv[1], "w"))
PY
  runc run --bundle "$work/bundle" "lazyroot-demo-$$" || echo "(runc could not run here)"
  runc delete --force "lazyroot-demo-$$" >/dev/null 2>&1 || true
fi

step "lazyroot fsck (every blob re-hashed, every index and tree rebuilt in memory and compared)"
"$LAZYROOT" fsck && echo "fsck: clean (exit 0)"

step "Verified reads: one byte of the largest layer blob changed on disk under a live mount"
"$LAZYROOT" mount "$host/demo/hello:v1" "$work/mnt"
mounted=$work/mnt
blob=$(ls -S "$LAZYROOT_HOME/blobs/sha256" | head -n1)
python3 - "$LAZYROOT_HOME/blobs/sha256/$blob" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    off = os.fstat(f.fileno()).st_size // 2
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xFF]))
    print("flipped byte %d of blob sha256:%s…" % (off, os.path.basename(sys.argv[1])[:16]))
PY
if cat "$work/mnt/srv/data.bin" >/dev/null 2>"$work/cat.err"; then
  echo "UNEXPECTED: the changed blob was served"; exit 1
fi
echo "cat /srv/data.bin through the mount: $(cat "$work/cat.err")"
echo "the mount is still serving: /etc/motd says \"$(head -c 40 "$work/mnt/etc/motd" | head -n1)\""
"$LAZYROOT" umount "$work/mnt"
mounted=""

step "lazyroot fsck names the blob; --repair drops what needs it (never downloads); pull again; clean"
"$LAZYROOT" fsck && { echo "UNEXPECTED: fsck found nothing"; exit 1; } || echo "fsck: exit $?"
"$LAZYROOT" fsck --repair || echo "fsck --repair: exit $? (an image must be pulled again)"
"$LAZYROOT" pull --progress plain "$image"
"$LAZYROOT" fsck && echo "fsck: clean (exit 0)"

step "The cached extract (extract without DIR, for krun_set_root) is checked before each reuse"
cached=$("$LAZYROOT" extract "$host/demo/hello:v1")
echo "cached rootfs: $cached"
echo "a VM wrote this" >"$cached/etc/motd"
"$LAZYROOT" extract "$host/demo/hello:v1" >/dev/null
echo "/etc/motd in the cached rootfs again: $(head -n1 "$cached/etc/motd")"
"$LAZYROOT" extract --copy "$work/vm1-root" "$host/demo/hello:v1" >/dev/null
echo "a private writable copy for one VM: $work/vm1-root ($(find "$work/vm1-root" | wc -l) entries)"

step "From docker / podman: a registries.conf whose mirror is down; the pull passes it over with one warning (-v names each endpoint)"
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n[[registry.mirror]]\nlocation = "127.0.0.1:9"\ninsecure = true\n' \
  "$host" >"$work/registries.conf"
LAZYROOT_HOME=$work/store-mirror "$LAZYROOT" pull -q -v --registries-conf "$work/registries.conf" "$image" 2>&1 | cut -c1-160

step "docker save / docker load: lazyroot save to docker-archive:, then pulled from the archive into an empty store"
"$LAZYROOT" save "$host/demo/hello:v1" "docker-archive:$work/hello.tar:demo/hello:v1"
tar -tf "$work/hello.tar" | sed 's/^/  /' | head -n 8
LAZYROOT_HOME=$work/store-archive "$LAZYROOT" pull -q "docker-archive:$work/hello.tar:demo/hello:v1"
LAZYROOT_HOME=$work/store-archive "$LAZYROOT" extract "docker-archive:$work/hello.tar:demo/hello:v1" "$work/from-archive" 2>/dev/null
echo "the tree from the archive equals the registry's: $(diff -r --no-dereference "$work/rootfs" "$work/from-archive" >/dev/null && echo yes || echo NO)"

step "lazyroot df (what the store holds, per image, and what gc would reclaim)"
"$LAZYROOT" df

step "The library: a C launcher (tests/examples/launch.c) built against the installed package with pkg-config"
cmake --install build --prefix "$work/prefix" >/dev/null
pcdir=$(dirname "$(find "$work/prefix" -name lazyroot.pc | head -n1)")
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir lazyroot)
# shellcheck disable=SC2046
cc -o "$work/launch" tests/examples/launch.c $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs lazyroot)
mkdir -p "$work/vm-root"
echo "(it mounts the image, prints what it would hand to krun_set_root/exec/env/workdir, unmounts when stdin closes)"
LD_LIBRARY_PATH=$libdir "$work/launch" "$host/demo/hello:v1" "$work/vm-root" </dev/null

step "Demo finished"
