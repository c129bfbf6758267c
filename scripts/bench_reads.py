#!/usr/bin/env python3
"""Read workloads for bench-mount.sh, run against any directory tree.

  bench_reads.py walk DIR        lstat every entry (like find -printf of stat fields)
  bench_reads.py readall DIR     read every regular file completely
  bench_reads.py random DIR N    N random 4 KiB preads in files >= 4 KiB (seeded;
                                 a tree of smaller files gets whole-file reads)
  bench_reads.py plan DIR N      prints the reads `random DIR N` makes, one
                                 "PATH OFFSET" a line (PATH relative to DIR),
                                 for tests/bench/replay_reads
Prints the seconds taken on stdout (plan: the reads).
"""
import os
import random
import sys
import time


def files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if (st.st_mode & 0o170000) == 0o100000:
                out.append((p, st.st_size))
    return out


def main():
    mode, root = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    if mode == "walk":
        n = 0
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.lstat(os.path.join(dirpath, name))
                n += 1
    elif mode == "readall":
        for p, _ in files(root):
            with open(p, "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass
    elif mode in ("random", "plan"):
        count = int(sys.argv[3])
        # The file list is taken before the clock starts: only reads count.
        everything = files(root)
        big = [(p, s) for p, s in everything if s >= 4096] or [(p, s) for p, s in everything if s > 0]
        rng = random.Random(42)
        picks = [rng.choice(big) for _ in range(count)]
        offsets = [rng.randrange(0, max(1, s - 4096 + 1)) & ~4095 for _, s in picks]
        if mode == "plan":
            for (p, _), off in zip(picks, offsets):
                print(os.path.relpath(p, root), off)
            return
        t0 = time.perf_counter()
        for (p, _), off in zip(picks, offsets):
            fd = os.open(p, os.O_RDONLY)
            os.pread(fd, 4096, off)
            os.close(fd)
    print("%.3f" % (time.perf_counter() - t0))


if __name__ == "__main__":
    main()
