#!/usr/bin/env python3
"""The zero-EINTR guarantee: `cprof dump` captures threads blocked in calls that a ptrace stop
would fail with EINTR (epoll_wait, recv/read/accept under SO_RCVTIMEO, sigtimedwait) without
stopping them, with their stacks, and the fixture's own EINTR counter stays at zero; a stop
by hand proves the counter counts."""
import ctypes
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

FIXTURE = "tests/targets/eintr_counter.c"

# thread name -> (function that blocks, marker on its blocking line)
BLOCKED = {
    "e-epoll": ("block_epoll", "EINTR:epoll"),
    "e-epoll-tmo": ("block_epoll", "EINTR:epoll"),
    "e-recv-tmo": ("block_recv", "EINTR:recv"),
    "e-read-tmo": ("block_read", "EINTR:read"),
    "e-accept-tmo": ("block_accept", "EINTR:accept"),
    "e-sigwait": ("block_sigtimedwait", "EINTR:sigtimedwait"),
    "eintr_counter": ("main", "EINTR:main"),
}
DUMPS = 5


def check_stacks(d):
    by_name = {th["name"]: th for th in d["threads"]}
    for name, (fn, marker) in BLOCKED.items():
        th = by_name.get(name)
        check(th is not None, "thread %s missing" % name, sorted(by_name))
        frames = [f for f in th["frames"] if f["function"] == fn]
        check(frames, "%s: no frame in %s" % (name, fn), th["frames"])
        want = cplib.line_of(FIXTURE, marker)
        check(any(f["line"] == want for f in frames),
              "%s: %s not at line %d" % (name, fn, want), frames)


def test_dump_never_interrupts():
    with cplib.Target("eintr_counter") as t:
        check(cplib.eintr_count(t) == 0, "EINTR before any dump")
        env = dict(os.environ, CPROF_STATS="1")
        for _ in range(DUMPS):
            p = cplib.run(["dump", "-p", t.pid, "--format", "json"], check_rc=0, env=env)
            check_stacks(json.loads(p.stdout))
            m = re.search(r"stopped=(\d+)", p.stderr)
            check(m is not None, "no stats line", p.stderr)
            # Only the busy thread may have to be stopped (or none, if it was preempted).
            check(int(m.group(1)) <= 1, "blocked threads were stopped", p.stderr)
            cplib.assert_target_unharmed(t.pid)
        # Text dumps and --group go through the same capture.
        cplib.run(["dump", "-p", t.pid, "--group"], check_rc=0)
        time.sleep(0.2)
        check(cplib.eintr_count(t) == 0, "cprof dump made blocked calls fail with EINTR")


PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17


def test_counter_counts():
    """Control: a ptrace stop of the epoll thread (what cprof avoids) is an EINTR."""
    libc = ctypes.CDLL(None, use_errno=True)
    with cplib.Target("eintr_counter") as t:
        tid = None
        for x in os.listdir("/proc/%d/task" % t.pid):
            with open("/proc/%d/task/%s/comm" % (t.pid, x)) as f:
                if f.read().strip() == "e-epoll":
                    tid = int(x)
        check(tid is not None, "no e-epoll thread")
        if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
            cplib.skip("cannot PTRACE_SEIZE here (errno %d)" % ctypes.get_errno())
        try:
            check(libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0, "interrupt failed")
            os.waitpid(tid, 0x40000000)  # __WALL
        finally:
            libc.ptrace(PTRACE_DETACH, tid, None, None)
        deadline = time.monotonic() + 10
        n = 0
        while time.monotonic() < deadline and n == 0:
            n = cplib.eintr_count(t)
            time.sleep(0.05)
        check(n >= 1, "the fixture did not count the EINTR of a real stop")


if __name__ == "__main__":
    cplib.main(globals())
