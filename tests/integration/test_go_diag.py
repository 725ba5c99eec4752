#!/usr/bin/env python3
"""cprof dump's Go diagnosis on the godiag fixture (plain and stripped builds): a goroutine
leak that grows between the two looks of --stuck (and a fixed worker pool that does not), a
connection read without a deadline (and one with), the channels waited on with their element
types and waiters, "all goroutines are asleep" (and not when a timer is pending); and the
gocgo fixture (cgo): C threads and goroutines in one dump, the goroutine in a C call tied to
the thread that runs it; and make demo's leaking Go service (godemo)."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-godiag-"))
_exe = {}


def build(name, stripped=False, cgo=False):
    """tests/targets/NAME built once into WORK (-ldflags='-s -w' when stripped)."""
    key = (name, stripped, cgo)
    if key not in _exe:
        if not shutil.which("go"):
            check(False, "go is not installed (make test installs golang-go)")
        exe = WORK / ("%s%s" % (name, "-s" if stripped else ""))
        flags = ["-ldflags=-s -w"] if stripped else []
        env = dict(cplib.GO_ENV, CGO_ENABLED="1" if cgo else "0")
        p = subprocess.run(["go", "build"] + flags + ["-o", str(exe),
                            str(cplib.SRC / "tests" / "targets" / name / "main.go")],
                           capture_output=True, text=True, timeout=300, env=env,
                           cwd=str(WORK))
        check(p.returncode == 0, "go build of %s failed" % name, p.stderr)
        _exe[key] = exe
    return _exe[key]


def goroutines_in(d, function):
    """Ids of the goroutines with function among their frames."""
    return sorted(g["id"] for g in d["goroutines"]
                  if any(f["function"] == function for f in g["frames"]))


def check_leak(stripped):
    with cplib.Target("godiag", "leak", path=build("godiag", stripped)) as t:
        nodeadline, deadline = t.number("nodeadline"), t.number("deadline")
        d = cplib.dump_json(t.pid, "--stuck", "1")
        check(d["go_version"], "not read as Go", d.get("go_error"))
        leaks = d["go_leaks"]
        check(len(leaks) == 1, "not one leak", leaks)
        lk = leaks[0]
        check(lk["wait_reason"] == "chan send" and lk["by_growth"] and lk["grown"] > 0 and
              lk["count"] > lk["before"], "the leak's evidence", lk)
        check(lk["created_by"] and lk["created_by"]["function"] == "main.leakOne" and
              lk["created_by"]["file"].endswith("godiag/main.go"), "the leak's site", lk)
        senders = set(goroutines_in(d, "main.leakOne.func1"))
        check(set(lk["goroutines"]) <= senders and len(lk["goroutines"]) >= 20,
              "leak members are not the leaked senders", lk["goroutines"], sorted(senders))
        # The worker pool: 20 receivers of one chan main.job, not a leak.
        workers = goroutines_in(d, "main.worker")
        check(len(workers) == 20, "not 20 workers", workers)
        chans = [c for c in d["go_channels"] if c["receivers"] == workers]
        check(len(chans) == 1, "no channel with the workers as receivers", d["go_channels"])
        c = chans[0]
        check(c["elem_type"] == "main.job" and c["capacity"] == 0 and c["closed"] is False,
              "the workers' channel", c)
        by_id = {g["id"]: g for g in d["goroutines"]}
        check(all(by_id[w]["waiting_on"] == c["address"] for w in workers),
              "workers' waiting_on is not their channel", c["address"])
        sender = min(senders)
        sc = [c for c in d["go_channels"] if sender in c["senders"]]
        check(len(sc) == 1 and sc[0]["elem_type"] == "int", "a leaked sender's channel", sc)
        # The network: one read without a deadline, one with an hour's.
        waits = {w["goroutine"]: w for w in d["go_net_waits"]}
        check(nodeadline in waits and deadline in waits, "net waits missing", waits,
              nodeadline, deadline)
        w = waits[nodeadline]
        check(w["op"] == "read" and w["deadline"] is False and w["timeout"] is None and
              w["object"].startswith("socket:[") and "TCP 127.0.0.1:" in w["detail"],
              "the read without deadline", w)
        w = waits[deadline]
        check(w["deadline"] is True and 0 < w["timeout"] <= 3600 * 10**9,
              "the read with a deadline", w)
        w = waits.get(t.number("accept"))
        check(w and w["op"] == "accept" and w["deadline"] is False and
              "listening on" in w["detail"], "the accept", w, waits)
        check(d["deadlocks"] == [], "a deadlock in a live program", d["deadlocks"])
        # The same in text; without --stuck, no growth to judge.
        p = cplib.run(["dump", "-p", t.pid, "--stuck", "1"], check_rc=0)
        check("LEAK? " in p.stdout and "created by main.leakOne at" in p.stdout,
              "no LEAK? line", p.stdout[:3000])
        check("NO DEADLINE: goroutine %d [IO wait] reading fd" % nodeadline in p.stdout and
              "NO DEADLINE: goroutine %d " % deadline not in p.stdout and
              "NO DEADLINE: goroutine %d " % t.number("accept") not in p.stdout,
              "NO DEADLINE lines", p.stdout[:3000])
        check("chan main.job (unbuffered): receivers " in p.stdout, "no channel line",
              p.stdout[-3000:])
        d = cplib.dump_json(t.pid)
        check(d["go_leaks"] == [], "a leak without --stuck (waits are all recent)",
              d["go_leaks"])
        cplib.assert_target_unharmed(t.pid)


def test_leak_netwait_channels():
    check_leak(False)


def test_leak_netwait_channels_stripped():
    check_leak(True)


def deadlocked(pid, tries=20):
    """The dump once the two lockers are both blocked (they get there just after READY)."""
    for _ in range(tries):
        d = cplib.dump_json(pid)
        semas = [g for g in d["goroutines"] if g["wait_reason"] == "semacquire"]
        if len(semas) >= 3:
            return d
        time.sleep(0.2)
    raise cplib.Failure("the lockers never blocked: %s" % [
        (g["id"], g["status"], g["wait_reason"]) for g in d["goroutines"]])


def check_deadlock(stripped):
    with cplib.Target("godiag", "deadlock", path=build("godiag", stripped)) as t:
        d = deadlocked(t.pid)
        gd = [x for x in d["deadlocks"] if x["goroutines"]]
        check(len(gd) == 1, "no goroutine deadlock", d["deadlocks"])
        ids = {g["id"] for g in d["goroutines"]}
        check(set(gd[0]["goroutines"]) == ids and 1 in ids and gd[0]["tids"] == [],
              "the deadlock's goroutines", gd[0], sorted(ids))
        check(gd[0]["description"].startswith("all %d goroutines are asleep" % len(ids)),
              "description", gd[0])
        p = cplib.run(["dump", "-p", t.pid], check_rc=0)
        check("\nDEADLOCK: all %d goroutines are asleep" % len(ids) in p.stdout and
              "all goroutines are asleep: see DEADLOCK at the end" in p.stdout,
              "no DEADLOCK line", p.stdout[-3000:])
        cplib.assert_target_unharmed(t.pid)
    # The same program with a select that a timer will wake: not a deadlock.
    with cplib.Target("godiag", "timer", path=build("godiag", stripped)) as t:
        d = deadlocked(t.pid)
        check(any(g["wait_reason"] == "select" for g in d["goroutines"]), "no select",
              d["goroutines"])
        check(not [x for x in d["deadlocks"] if x["goroutines"]],
              "a deadlock despite the pending timer", d["deadlocks"])
        cplib.assert_target_unharmed(t.pid)


def test_all_asleep():
    check_deadlock(False)


def test_all_asleep_stripped():
    check_deadlock(True)


def test_cgo_threads_and_goroutines():
    """A cgo program: the C thread (c_worker in read) and the thread running a goroutine's C
    call (c_sleep_forever) are shown with their C frames; that goroutine is in syscall in
    main._Cfunc_c_sleep_forever, tied to that thread; the Go waiters are goroutines."""
    with cplib.Target("gocgo", path=build("gocgo", cgo=True)) as t:
        d = cplib.dump_json(t.pid)
        funcs = {th["tid"]: [f["function"] for f in th["frames"]] for th in d["threads"]}
        worker = [tid for tid, fs in funcs.items() if "c_worker" in fs]
        sleeper = [tid for tid, fs in funcs.items() if "c_sleep_forever" in fs]
        check(len(worker) == 1 and len(sleeper) == 1, "C threads", funcs)
        check(next(th for th in d["threads"] if th["tid"] == worker[0])["wait"]["kind"] ==
              "io-read", "c_worker is not in io-read")
        cg = [g for g in d["goroutines"]
              if any(f["function"] == "main._Cfunc_c_sleep_forever" for f in g["frames"])]
        check(len(cg) == 1 and cg[0]["status"] == "syscall" and cg[0]["thread"] == sleeper[0],
              "the goroutine in C", cg, sleeper)
        th = next(th for th in d["threads"] if th["tid"] == sleeper[0])
        check(th["goroutine"] == cg[0]["id"], "the thread does not name its goroutine", th)
        check(len(goroutines_in(d, "main.waiter")) == 5, "not 5 Go waiters",
              [(g["id"], [f["function"] for f in g["frames"]]) for g in d["goroutines"]])
        # .debug_aranges of a cgo build lists only its C units: Go frames on the threads must
        # still be named from the Go units (a .go or .s file), never from a C one.
        go_frames = [(f["function"], f["file"]) for th in d["threads"] for f in th["frames"]
                     if (f["function"] or "").startswith("runtime.") and f["file"]]
        check(go_frames and all(fl.endswith((".go", ".s")) for _, fl in go_frames),
              "Go frames named from a C unit", go_frames)
        cplib.assert_target_unharmed(t.pid)


def test_demo_leak():
    """make demo's Go service (tests/targets/godemo): its leak is named by --stuck, with the
    go statement in main.handle that makes it."""
    with cplib.Target("godemo", path=build("godemo")) as t:
        for _ in range(3):
            d = cplib.dump_json(t.pid, "--stuck", "2")
            if d["go_leaks"]:
                break
        check(len(d["go_leaks"]) == 1, "no leak in godemo", d["go_leaks"])
        lk = d["go_leaks"][0]
        check(lk["wait_reason"] == "chan send" and lk["created_by"]["function"] ==
              "main.handle" and lk["by_growth"], "godemo's leak", lk)
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    cplib.main(globals())
