#!/usr/bin/env python3
# cprof-test: exclusive (it keeps a CPU busy with 6 processes: other tests would starve)
"""A running thread on an overloaded CPU is still captured from a perf sample, never stopped:
the sample comes once the thread gets the CPU, however many others share it (a stop would
wait as long for it to run)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

HOGS = 6


def test_spinning_thread_on_a_busy_cpu_is_sampled():
    cpu = str(os.cpu_count() - 1)
    hogs = []
    try:
        for _ in range(HOGS):
            p = subprocess.Popen(["taskset", "-c", cpu, sys.executable, "-c",
                                  "import time\nend = time.time() + 120\n"
                                  "while time.time() < end: pass"])
            cplib._started.append(p)
            hogs.append(p)
        with cplib.Target("cpu_split", "--seconds", "60", ready=None) as t:
            subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(t.pid)], check=True,
                           capture_output=True)
            env = dict(os.environ, CPROF_STATS="1")
            for _ in range(5):
                p = cplib.run(["dump", "-p", t.pid], check_rc=0, env=env)
                m = re.search(r"stopped=(\d+) sampled=(\d+)", p.stderr)
                check(m is not None, "no stats line", p.stderr)
                check(m.group(1) == "0", "a running thread was stopped", p.stderr)
                check(re.search(r"#\d+ (work_[ab]|loop|main) ", p.stdout),
                      "the running thread's stack", p.stdout[:2000])
            cplib.assert_target_unharmed(t.pid)
    finally:
        for p in hogs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    cplib.main(globals())
