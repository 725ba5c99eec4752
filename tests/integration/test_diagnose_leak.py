#!/usr/bin/env python3
"""cprof dump on the leak fixture: 600 threads blocked in the same recv with no timeout are
each reported as an unbounded socket read, and --group folds them into one entry. 600 is
past the 256 threads a CPU from which a dump on a 2-CPU machine (CI's) trusts the CPUs'
context-switch records instead of reading each thread's status twice: that path runs here."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

N = 600
SWITCH_WATCH_PER_CPU = 256  # src/dump.c


def test_leaked_threads():
    with cplib.Target("leak", N, timeout=120) as t:
        port = t.number("PORT")
        t0 = time.monotonic()
        p = cplib.run(["dump", "-p", t.pid, "--format", "json"], check_rc=0, timeout=300,
                      env=dict(os.environ, CPROF_STATS="1"))
        d = json.loads(p.stdout)
        secs = time.monotonic() - t0
        print("dump of %d threads took %.2fs" % (len(d["threads"]), secs))
        stats = dict(re.findall(r"(\w+)=(\d+)", p.stderr))
        check(stats.get("stopped") == "0", "no thread stopped", p.stderr)
        if os.geteuid() == 0 and (os.cpu_count() or 1) * SWITCH_WATCH_PER_CPU <= N + 1:
            check(stats.get("switch_records") == "1", "switch records not used", p.stderr)

        handlers = [x for x in d["threads"] if x["name"] == "conn-handler"]
        check(len(handlers) == N, "%d handlers expected, got %d" % (N, len(handlers)))
        fds = set()
        for h in handlers:
            w = h["wait"]
            check(w["kind"] == "io-read" and w["syscall"] == "recvfrom", "handler in recv", w)
            check(w["timeout"] is None, "unbounded", w)
            check(re.search(r"TCP 127\.0\.0\.1:%d -> 127\.0\.0\.1:\d+ ESTABLISHED" % port,
                            w["detail"] or ""), "server side of a loopback connection", w)
            fds.add(w["fd"])
        check(len(fds) == N, "each handler on its own fd (%d distinct)" % len(fds))
        check(d["fds"]["socket"] >= 2 * N + 1, "sockets counted", d["fds"])
        check(d["deadlocks"] == [], "no deadlock", d["deadlocks"])

        text = cplib.run(["dump", "-p", t.pid], check_rc=0, timeout=300).stdout
        flagged = [l for l in text.splitlines()
                   if l.startswith("thread ") and '"conn-handler"' in l and "no timeout" in l]
        check(len(flagged) == N, "text flags all %d unbounded reads (got %d)" % (N, len(flagged)))

        g = cplib.dump_json(t.pid, "--group", timeout=300)
        groups = [x for x in (g["groups"] or []) if x["count"] == N]
        check(len(groups) == 1 and groups[0]["wait_kind"] == "io-read",
              "one group of %d io-read threads" % N, [(x["count"], x["wait_kind"]) for x in g["groups"] or []])
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    cplib.main(globals())
