"""Peak memory of a command, for the hostile-input tests' memory bounds.

run_measured(argv, timeout, env, cwd) runs argv to completion and returns
(returncode, stdout, stderr, peak_rss_mib): the peak resident set of the
command (through GNU time), stdout and stderr decoded as text. A child killed by a
signal has a negative returncode, as in subprocess.

vm_hwm_mib(pid) reads VmHWM of a live process (e.g. a mount daemon, which is
not our child) from /proc/PID/status; daemon_pids(mountpoint) finds the
lazyroot daemon serving a mountpoint (only read, never signalled).
"""

import os
import re
import selectors
import shutil
import time


GNU_TIME = "/usr/bin/time"


def run_measured(argv, timeout=None, env=None, cwd=None):
    """Runs argv (stdin /dev/null) to completion. The peak RSS comes from GNU
    time (package `time`), a small C program that forks the command and
    reads its rusage: a child forked straight from this Python process would
    carry Python's resident pages (~20-30 MiB) into its high-water mark,
    which exec keeps. Without GNU time, wait4 of the direct child is used
    (that floor included)."""
    import tempfile
    report = None
    if os.access(GNU_TIME, os.X_OK):
        fd, report = tempfile.mkstemp(prefix="peak-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-o", report, "-f", "%M"] + list(argv)
    try:
        rc, out, err, rss = _spawn_wait4(argv, timeout, env, cwd)
        if report:
            with open(report) as f:
                text = f.read()
            numbers = [w for w in text.split() if w.isdigit()]
            if numbers:
                rss = int(numbers[-1]) / 1024.0
            m = re.search(r"terminated by signal (\d+)", text)
            if m:  # as subprocess reports a signal, not time's 128 + N
                rc = -int(m.group(1))
        return rc, out, err, rss
    finally:
        if report:
            os.unlink(report)


def _spawn_wait4(argv, timeout, env, cwd):
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, w_out, 1), (os.POSIX_SPAWN_DUP2, w_err, 2),
               (os.POSIX_SPAWN_CLOSE, r_out), (os.POSIX_SPAWN_CLOSE, r_err),
               (os.POSIX_SPAWN_CLOSE, w_out), (os.POSIX_SPAWN_CLOSE, w_err)]
    argv = list(argv)
    if cwd:  # posix_spawn has no chdir action before Python 3.13
        argv = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd] + argv
    path = argv[0] if "/" in argv[0] else (shutil.which(argv[0]) or argv[0])
    pid = os.posix_spawn(path, argv, env if env is not None else os.environ, file_actions=actions)
    os.close(w_out)
    os.close(w_err)
    sel = selectors.DefaultSelector()
    bufs = {r_out: [], r_err: []}
    for fd in (r_out, r_err):
        sel.register(fd, selectors.EVENT_READ)
    deadline = None if timeout is None else time.monotonic() + timeout
    open_fds = 2
    while open_fds:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if left == 0.0:
            os.kill(pid, 9)
            os.wait4(pid, 0)
            raise TimeoutError("%s ran over %s s" % (argv[0], timeout))
        for key, _ in sel.select(left):
            chunk = os.read(key.fd, 65536)
            if chunk:
                bufs[key.fd].append(chunk)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
                open_fds -= 1
    _, status, usage = os.wait4(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    text = lambda fd: b"".join(bufs[fd]).decode("utf-8", "replace")
    return rc, text(r_out), text(r_err), usage.ru_maxrss / 1024.0


def vm_hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise ValueError("no VmHWM for pid %d" % pid)


def daemon_pids(mountpoint):
    """PIDs of lazyroot processes whose command line names mountpoint (the
    daemon a `lazyroot mount` forked)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"lazyroot" and b"mount" in argv and mountpoint.encode() in argv:
            pids.append(int(d))
    return pids
