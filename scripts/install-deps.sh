#!/usr/bin/env bash
# Installs every build and test dependency of lazyroot from Debian 12 packages.
# Nothing is downloaded from anywhere else. Safe to run repeatedly.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev rapidjson-dev
  libfuse3-dev libgtest-dev libgmock-dev libcli11-dev libisal-dev
  # runtime / tests
  fuse3 ca-certificates curl openssl tar gzip zstd python3 python3-cryptography time
  docker-registry skopeo umoci apache2-utils attr
  # the proxy tests (test_proxy.py) run tinyproxy as their own child: the binary
  # alone, without the package that installs and starts a system service
  tinyproxy-bin
  # extract --reflink test: a small reflink=1 XFS on a loop device
  xfsprogs
  # fuzzing (scripts/fuzz.sh): clang and its libFuzzer/ASan/UBSan runtimes
  # (libclang_rt.fuzzer-x86_64.a is in libclang-rt-14-dev)
  clang libclang-rt-14-dev
  # the VM test (tests/integration/test_vm_boot.py): QEMU (TCG), Debian's
  # kernel and its 9p modules; runc runs the OCI bundles extract writes (crun 1.8 refuses this machine's hybrid cgroups)
  qemu-system-x86 linux-image-amd64 runc
  # benchmarks
  squashfs-tools squashfuse archivemount hyperfine bc busybox-static
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# policy-rc.d keeps docker-registry's package from starting a system service.
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
