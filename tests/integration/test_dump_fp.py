#!/usr/bin/env python3
"""Frame-pointer code blocked in system calls (-O0 and -O2 -fno-omit-frame-pointer builds):
threads captured live, without rbp, still show their whole stack down to start_thread, no
thread is stopped, and the fixture's own EINTR counter stays at zero."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

FIXTURE = "tests/targets/fp_waits.c"

# thread name -> (leaf function, marker on its blocking line)
BLOCKED = {
    "fp-read": ("fp_read_leaf", "FP:read"),
    "fp-recv-tmo": ("fp_recv_leaf", "FP:recv"),
    "fp-epoll": ("fp_epoll_leaf", "FP:epoll"),
    "fp-sleep": ("fp_sleep_leaf", "FP:sleep"),
    "fp-mutex": ("fp_mutex_leaf", "FP:mutex"),
}
# The callers above every leaf, outermost last, each at its call line.
CHAIN = [("fp_middle", "FP:middle"), ("fp_outer", "FP:outer"), ("thread_main", "FP:thread"),
         ("start_thread", None)]


def check_thread(th, leaf, marker):
    funcs = [f["function"] for f in th["frames"]]
    check(leaf in funcs, "%s: no %s frame" % (th["name"], leaf), funcs)
    at = funcs.index(leaf)
    check(th["frames"][at]["line"] == cplib.line_of(FIXTURE, marker),
          "%s: %s at the wrong line" % (th["name"], leaf), th["frames"][at])
    rest = th["frames"][at + 1:]
    want = [fn for fn, _ in CHAIN]
    got = [f["function"] for f in rest][:len(want)]
    check(got == want, "%s: callers of %s are not the whole chain" % (th["name"], leaf),
          funcs)
    for f, (fn, mk) in zip(rest, CHAIN):
        if mk:
            check(f["line"] == cplib.line_of(FIXTURE, mk), "%s: %s line" % (th["name"], fn), f)
    check(not any(f["function"] in ("[unknown]", "[truncated]") for f in th["frames"]),
          "%s: stack ends in a placeholder" % th["name"], funcs)


def dump_and_check(build):
    with cplib.Target(build) as t:
        check(cplib.eintr_count(t) == 0, "EINTR before any dump")
        env = dict(os.environ, CPROF_STATS="1")
        for _ in range(3):
            p = cplib.run(["dump", "-p", t.pid, "--format", "json"], check_rc=0, env=env)
            d = json.loads(p.stdout)
            for name, (leaf, marker) in BLOCKED.items():
                th = cplib.thread_by_name(d, name)
                check(th is not None, "%s: thread %s missing" % (build, name))
                check_thread(th, leaf, marker)
            m = re.search(r"stopped=(\d+)", p.stderr)
            check(m is not None and int(m.group(1)) == 0, "%s: threads were stopped" % build,
                  p.stderr)
            cplib.assert_target_unharmed(t.pid)
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check("unwinding stopped early" not in text, "%s: text dump cut short" % build, text)
        time.sleep(0.2)
        check(cplib.eintr_count(t) == 0, "%s: a dump made a blocked call fail with EINTR" % build)


def test_O0_build():
    dump_and_check("fp_waits_O0")


def test_frame_pointer_build():
    dump_and_check("fp_waits_fp")


if __name__ == "__main__":
    cplib.main(globals())
