#!/usr/bin/env python3
"""A process whose main thread has exited (pthread_exit in main) while others live on: /proc/PID
reads Z and its maps, mem, root, exe, cmdline and fd went with the leader. It is not a zombie:
dump, attach (cpu, wall) and the fd diagnosis work through a live thread's /proc/PID/task/TID;
heap, which loads a library into it, refuses with the reason (docs/cprof.1 "dump", "attach")."""
import os

import cplib
from cplib import Target, check, run, dump_json, error_line
import profiles
from profiles import traces, total


def frames_of(th):
    return [f["function"] for f in th["frames"]]


def test_dump():
    with Target("leader_exit") as t:
        d = dump_json(t.pid)
        check(d["exe"].endswith("/leader_exit"), "exe not read", d["exe"])
        check(d["cmdline"] and d["cmdline"][0].endswith("leader_exit"), "cmdline not read",
              d["cmdline"])
        check(d["fds"]["pipe"] >= 2, "the fds were not counted", d["fds"])
        kinds = {th["tid"]: th["wait"]["kind"] for th in d["threads"]}
        check(kinds.get(t.pid) == "zombie", "the leader is not the zombie thread", kinds)
        spin = [th for th in d["threads"] if "orphan_spin" in frames_of(th)]
        wait = [th for th in d["threads"] if "orphan_wait" in frames_of(th)]
        check(spin and wait, "live threads not unwound and symbolized",
              [frames_of(th) for th in d["threads"]])
        check(wait[0]["wait"]["kind"] == "io-read", "waiter's wait kind", wait[0]["wait"])
        text = run(["dump", "-p", t.pid], check_rc=0).stdout
        check("write end held only by this process" in text, "pipe holder not found", text)
        cplib.assert_target_unharmed(t.pid)


def test_attach_cpu_and_wall():
    with Target("leader_exit") as t:
        for kind in ("cpu", "wall"):
            out = os.path.join(profiles.tmpdir(), kind + ".pb.gz")
            p = run(["attach", "-p", t.pid, "--profile", kind, "--seconds", 1, "-o", out],
                    check_rc=0)
            check("exited" not in p.stderr, "%s: the process was taken for exited" % kind,
                  p.stderr)
            tr = traces(out)
            spin = total(tr, lambda f, l: "orphan_spin" in f)
            check(spin > 0.3 * total(tr), "%s: orphan_spin not in the profile" % kind, tr[:5])
            # The vDSO is read through the live thread too: time() is named.
            if kind == "cpu":
                check(total(tr, lambda f, l: f[0].startswith("[vdso]")) == 0,
                      "vDSO frames left unnamed", tr[:5])
        cplib.assert_target_unharmed(t.pid)


def test_heap_refused_with_reason():
    with Target("leader_exit") as t:
        p = run(["attach", "-p", t.pid, "--profile", "heap", "--seconds", 1, "-o",
                 os.path.join(profiles.tmpdir(), "h.pb.gz")])
        error_line(p, 1, r"cprof: pid \d+: .*main thread has exited")
        cplib.assert_target_unharmed(t.pid)
        check(t.alive(), "target died")


if __name__ == "__main__":
    cplib.main(globals())
