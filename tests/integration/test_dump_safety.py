#!/usr/bin/env python3
"""cprof dump must never harm its target: after a dump, and after cprof is killed (SIGKILL,
SIGINT, SIGTERM) at random moments during a dump of a 200-thread process, the target is not
stopped, not traced, has received no stray signal and keeps making progress."""
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import Target, check, run, CPROF  # noqa: E402

KILLS = 20
INTERRUPTS = 10
BIG = ["--threads", "180", "--ticks"]  # 203 threads in all


def drain_ticks(t, wait=0.0):
    """Read what the fixture printed so far (waiting up to `wait` s for more); last tick."""
    fd = t.proc.stdout.fileno()
    deadline = time.monotonic() + wait
    last = None
    buf = b""
    while True:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        for m in re.finditer(rb"tick (\d+)\n", buf):
            last = int(m.group(1))
        buf = buf[buf.rfind(b"\n") + 1:]
        if wait == 0.0:
            continue
    return last


def assert_progress(t, what):
    """The ticker thread keeps counting: a newer tick arrives within a generous delay."""
    before = drain_ticks(t) or 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = drain_ticks(t, 0.5)
        if now is not None and now >= before + 3:
            return
    raise cplib.Failure("target stopped making progress after %s (last tick %s)" % (what, before))


def assert_unharmed_soon(pid, what):
    """A tracer's exit detaches its tracees at once; a thread may need a moment to leave 't'."""
    deadline = time.monotonic() + 5
    while True:
        try:
            cplib.assert_target_unharmed(pid)
            return
        except cplib.Failure as e:
            if time.monotonic() > deadline:
                raise cplib.Failure("%s: %s" % (what, e))
            time.sleep(0.05)


def ticker_alive(t, what):
    check(t.alive(), "target died after %s (stray signal?) status %s" % (what, t.proc.poll()))
    with open("/proc/%d/status" % t.pid) as f:
        status = f.read()
    pending = int(re.search(r"^ShdPnd:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    # SIGSTOP/SIGTRAP/SIGCHLD left pending would be a stray signal from the tracer.
    stray = pending & ((1 << (signal.SIGSTOP - 1)) | (1 << (signal.SIGTRAP - 1)))
    check(stray == 0, "stray signal pending after %s: ShdPnd=%x" % (what, pending))


def dump_seconds(pid):
    t0 = time.monotonic()
    run(["dump", "-p", pid, "-o", "/dev/null"], check_rc=0, timeout=300)
    return time.monotonic() - t0


def test_target_unharmed_after_dumps():
    with Target("demo", "--ticks") as t:
        for args in ([], ["--format", "json"], ["--kernel"], ["--group"], ["--stuck", "1"]):
            run(["dump", "-p", t.pid] + args, check_rc=0, timeout=180)
            cplib.assert_target_unharmed(t.pid)
            ticker_alive(t, "dump " + " ".join(args))
        assert_progress(t, "dumps")
        # The blocked threads are still blocked where they were: nothing was woken up.
        d = cplib.dump_json(t.pid)
        check(cplib.thread_by_name(d, "w-mutex")["wait"]["kind"] == "mutex", "w-mutex woke up")
        check(cplib.thread_by_name(d, "w-pipe")["wait"]["kind"] == "io-read", "w-pipe woke up")


def kill_during_dumps(sig, times, outdir=None):
    with Target("demo", *BIG, timeout=60) as t:
        full = dump_seconds(t.pid)
        rng = random.Random(0x5eed + sig)
        outcomes = {}
        for i in range(times):
            args = [CPROF, "dump", "-p", str(t.pid), "--format", "json"]
            out = None
            if outdir:
                out = os.path.join(outdir, "dump-%d.json" % i)
                args += ["-o", out]
            p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, text=True)
            # Half the kills early, where the captures (and the stops) happen.
            time.sleep(rng.uniform(0.0, full * (0.3 if i % 2 else 1.1)))
            p.send_signal(sig)
            try:
                _, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise cplib.Failure("cprof did not end after %s" % signal.Signals(sig).name)
            rc = p.returncode
            outcomes[rc] = outcomes.get(rc, 0) + 1
            what = "%s #%d (rc %s)" % (signal.Signals(sig).name, i, rc)
            check("Sanitizer" not in err and "runtime error" not in err, what, err[-2000:])
            if sig == signal.SIGKILL:
                check(rc in (0, -signal.SIGKILL), what, err[-500:])
            else:
                check(rc in (0, 1, -sig), what, err[-500:])
                if rc == 1:
                    check("interrupted" in err and len(err.splitlines()) == 1,
                          "one 'interrupted' line expected", err)
            if out and sig != signal.SIGKILL:
                if rc == 0:
                    json.load(open(out))
                elif os.path.exists(out):
                    # Only a complete dump is ever renamed into place.
                    try:
                        json.load(open(out))
                    except ValueError:
                        raise cplib.Failure("partial output after " + what)
                left = [x for x in os.listdir(outdir) if ".tmp." in x]
                check(not left, "temporary files left after " + what, left)
            assert_unharmed_soon(t.pid, what)
            ticker_alive(t, what)
            drain_ticks(t)
        assert_progress(t, "%d x %s" % (times, signal.Signals(sig).name))
        print("%s outcomes (exit status: count): %s; full dump %.2fs"
              % (signal.Signals(sig).name, outcomes, full))


def test_sigkill_during_dump():
    kill_during_dumps(signal.SIGKILL, KILLS)


def test_sigint_during_dump():
    with tempfile.TemporaryDirectory() as tmp:
        kill_during_dumps(signal.SIGINT, INTERRUPTS, tmp)


def test_sigterm_during_dump():
    with tempfile.TemporaryDirectory() as tmp:
        kill_during_dumps(signal.SIGTERM, INTERRUPTS, tmp)


def test_threads_come_and_go():
    """A thread per request: threads vanish between listing and capture, others appear."""
    with Target("demo", "--churn", "--ticks") as t:
        for i in range(8):
            d = cplib.dump_json(t.pid)
            names = [th["name"] for th in d["threads"]]
            check("churner" in names and "w-mutex" in names, "threads missing", names)
            check(len(set(th["tid"] for th in d["threads"])) == len(d["threads"]),
                  "a thread listed twice")
            check(d["summary"]["threads"] == len(d["threads"]), "summary count")
            assert_unharmed_soon(t.pid, "dump %d of a churning process" % i)
            ticker_alive(t, "dump %d" % i)
        assert_progress(t, "dumps of a churning process")


def test_target_exits_during_dump():
    """Whatever the moment the target exits: exit 0 with what was captured, or 1 with
    'no such process' when nothing was; never a crash or a broken output."""
    rng = random.Random(7)
    seen = set()
    for i in range(6):
        with Target("demo", "--threads", "180", "--exit-after", str(rng.randint(0, 600)),
                    timeout=60) as t:
            p = run(["dump", "-p", t.pid, "--format", "json"], timeout=300)
            check("Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr[-2000:])
            check(p.returncode in (0, 1), "exit %d" % p.returncode, p.stderr[-1000:])
            if p.returncode == 0:
                d = json.loads(p.stdout)
                check(len(d["threads"]) >= 1, "empty dump")
                if "exited during the dump" in p.stderr:
                    seen.add("exited")
                else:
                    seen.add("whole")
            else:
                check("no such process" in p.stderr, "rc 1 without 'no such process'", p.stderr)
                check(p.stdout == "", "output on failure")
                seen.add("gone")
    print("outcomes: %s" % sorted(seen))


if __name__ == "__main__":
    cplib.main(globals())
