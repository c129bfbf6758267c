"""Peak memory of a command, for the hostile-input tests' memory bounds.

run_measured(argv, timeout, env, cwd) runs argv to completion and returns
(returncode, stdout, stderr, peak_rss_mib): the peak resident set of the
child (ru_maxrss from wait4); stdout and stderr decoded as text. A child killed by a
signal has a negative returncode, as in subprocess.

vm_hwm_mib(pid) reads VmHWM of a live process (e.g. a mount daemon, which is
not our child) from /proc/PID/status.
"""

import os
import selectors
import time


def run_measured(argv, timeout=None, env=None, cwd=None):
    """Runs argv (stdin /dev/null) and reaps it with os.wait4, whose rusage
    covers exactly that child (and children it waited for)."""
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            for fd in (r_out, r_err, w_out, w_err, devnull):
                os.close(fd)
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env if env is not None else os.environ)
        finally:
            os._exit(127)
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
