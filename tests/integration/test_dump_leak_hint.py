#!/usr/bin/env python3
"""The LEAK? hint needs evidence: a group of threads made one by one over seconds is flagged
(and the dump says over how long and how recently), so is a group that grows between the two
looks of --stuck; a fixed pool of the same size and stack, made at once, is not."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402


def test_steady_leak_is_flagged():
    # 12 threads, one every 300 ms: created over 3.3 s.
    with cplib.Target("steady_leak", "300", "12", timeout=30) as t:
        out = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        m = re.search(r"LEAK\? (\d+) of \d+ threads .*handle_connection.*created over "
                      r"(\S+), the last (\S+) ago", out)
        check(m is not None, "no LEAK? line with its evidence", out[:2000])
        check(int(m.group(1)) >= 12, "group size", m.group(0))


def test_growth_under_stuck_is_flagged():
    # Fast growth: 10 threads in 0.5 s is no span, but --stuck sees the group grow.
    with cplib.Target("steady_leak", "50", "10", timeout=30) as t:
        out = cplib.run(["dump", "-p", t.pid, "--stuck", "1"], check_rc=0).stdout
        check(re.search(r"LEAK\? \d+ of \d+ threads .*handle_connection.*grew by \d+", out),
              "no LEAK? line for growth during --stuck", out[:2000])


def test_fixed_pool_is_quiet():
    with cplib.Target("steady_leak", "300", "40", "pool", timeout=30) as t:
        out = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check("LEAK?" not in out, "a fixed pool flagged as a leak", out[:2000])
        out = cplib.run(["dump", "-p", t.pid, "--stuck", "1"], check_rc=0).stdout
        check("LEAK?" not in out, "a fixed pool flagged as a leak under --stuck", out[:2000])


if __name__ == "__main__":
    cplib.main(globals())
