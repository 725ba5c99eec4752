#!/usr/bin/env python3
# cprof-test: exclusive
"""100 heap-profile attach/detach cycles on a 16-thread malloc stress fixture: no crash, no
hang, no damaged block, the sampler's memory the same after the last cycle as after the first,
and the sampler off at the end."""
import os
import re
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402
from test_heap import agent_control  # noqa: E402


def read_check(t, n):
    os.kill(t.pid, signal.SIGUSR1)
    line = t.wait_for("CHECK", timeout=60)
    m = re.search(r"ops=(\d+) bad=(\d+)", line)
    check(m, "bad CHECK line", line)
    return int(m.group(1)), int(m.group(2))


def agent_memory(pid):
    """KiB of the sampler's memfd and library mappings, and their count."""
    kib, n = 0, 0
    with open("/proc/%d/smaps" % pid) as f:
        cur = None
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                cur = "libcprof-agent" in line or "memfd:" in line
                n += 1 if cur else 0
            elif cur and line.startswith("Size:"):
                kib += int(line.split()[1])
    return kib, n


def test_attach_detach_cycles():
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    with cplib.Target("malloc_stress", "--pace", "500") as t:
        ops0, bad0 = read_check(t, 0)
        first = None
        for i in range(100):
            r = cplib.run(["attach", "-p", t.pid, "--profile", "allocs", "--seconds", "0.1",
                           "--rate", "65536", "-o", os.path.join(d, "c.pb.gz")], timeout=120)
            check(r.returncode == 0, "cycle %d failed" % i, r.stderr)
            check(cplib.tracer_pid(t.pid) == 0, "traced after cycle %d" % i)
            if i == 0:
                first = agent_memory(t.pid)
        last = agent_memory(t.pid)
        ops1, bad1 = read_check(t, 1)
        check(bad1 == 0, "malloc_stress saw %d damaged blocks" % bad1)
        check(ops1 > ops0, "malloc_stress made no progress", ops0, ops1)
        check(last == first, "the sampler's memory grew over 100 cycles", first, last)
        c = agent_control(t.pid)
        check(c[4] == 0 and c[5] == 100, "sampler not off, or not 100 sessions", c)
        cplib.assert_target_unharmed(t.pid)
        # A cycle of 0.1 s may catch no allocation on a loaded machine: the stacks are
        # checked on a longer one, looked at again (up to 5 times) if even that one missed.

        def longer():
            r = cplib.run(["attach", "-p", t.pid, "--profile", "allocs", "--seconds", "2",
                           "--rate", "65536", "-o", os.path.join(d, "c.pb.gz")], timeout=120)
            check(r.returncode == 0, "last attach failed", r.stderr)
            return cplib.go_pprof("-top", os.path.join(d, "c.pb.gz"))

        p = cplib.until(longer, lambda p: "family_alloc" in p.stdout or "worker" in p.stdout,
                        tries=5)
        check("family_alloc" in p.stdout or "worker" in p.stdout, "stress stacks", p.stdout)
        print("100 cycles: sampler mappings %s KiB/%s, %d ops, 0 damaged" % (last[0], last[1],
                                                                           ops1 - ops0))


if __name__ == "__main__":
    cplib.main(globals())
