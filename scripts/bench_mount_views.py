#!/usr/bin/env python3
"""Mount-ready time and peak RSS of `lazyroot mount` with and
without the debug views (--layer 1, --upto N-1, --layers) on a synthetic
image of FILES files (1 KiB each, 1,000 per directory) spread evenly over
LAYERS gzip layers, the upper layers also rewriting 5% of the files below
and whiting out 1%. Written as an oci: layout and pulled into a fresh store
first (not timed); each mount is then made three times (best time, largest
peak) and unmounted. Two peaks: the mount command's (GNU time: it builds the
view's tree before the daemon forks, so this is the build's peak) and the
serving daemon's VmHWM once it is ready (what a mount keeps).

usage: bench_mount_views.py [--files 100000] [--layers 4] [--lazyroot build/src/lazyroot] [--work DIR]
"""
import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
import make_image as mi  # noqa: E402
import peak_rss  # noqa: E402


def layer_tar(i, per_layer, nlayers):
    buf = io.BytesIO()
    payload = b"x" * 1024
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        def add(name, data=payload):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1700000000
            tf.addfile(ti, io.BytesIO(data))
        for k in range(i * per_layer, (i + 1) * per_layer):
            add("d%04d/f%06d" % (k // 1000, k))
        if i > 0:
            for k in range(0, i * per_layer, 20):  # rewrite 5% of the files below
                add("d%04d/f%06d" % (k // 1000, k), b"y" * 1024)
            for k in range(7, i * per_layer, 100):  # white out 1%
                add("d%04d/.wh.f%06d" % (k // 1000, k), b"")
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--lazyroot", default=os.path.join(os.path.dirname(__file__), "..", "build", "src", "lazyroot"))
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="lazyroot-bench-views-")
    per = a.files // a.layers
    tars = [layer_tar(i, per, a.layers) for i in range(a.layers)]
    layers = [mi.Layer(t, mi._compress(t, "gzip", 1), "gzip") for t in tars]
    layout = mi.write_oci_layout(os.path.join(work, "layout"), mi.build_image(layers), tag="v1")
    ref = "oci:%s:v1" % layout
    store = os.path.join(work, "store")
    base = [a.lazyroot, "--root", store]
    subprocess.run(base + ["pull", "-q", ref], check=True)
    entries = sum(len(tarfile.open(fileobj=io.BytesIO(t)).getnames()) for t in tars)
    print("image: %d layers, %d tar entries, %d paths in the merged tree" %
          (a.layers, entries, sum(1 for _ in subprocess.run(base + ["ls", "-R", ref], check=True,
                                                                capture_output=True).stdout.splitlines())))
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    for view in ([], ["--layer", "1"], ["--upto", str(max(1, a.layers - 1))], ["--layers"]):
        best, peak, cmd_peak, nodes = None, 0, 0, 0
        for _ in range(3):
            t0 = time.monotonic()
            rc, _out, err, rss = peak_rss.run_measured(base + ["mount"] + view + [ref, mnt], timeout=600)
            dt = time.monotonic() - t0
            if rc != 0:
                sys.exit("mount %s failed: %s" % (view, err))
            cmd_peak = max(cmd_peak, rss)
            pids = peak_rss.daemon_pids(mnt)
            peak = max([peak] + [peak_rss.vm_hwm_mib(p) for p in pids])
            nodes = os.statvfs(mnt).f_files
            subprocess.run(base + ["umount", mnt], check=True)
            best = dt if best is None else min(best, dt)
        print("mount %-12s ready in %6.3f s, command peak RSS %6.1f MiB, daemon %6.1f MiB, %d nodes" %
              (" ".join(view) or "(normal)", best, cmd_peak, peak, nodes))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
