#!/usr/bin/env python3
"""cprof watch on a fixture that leaks a thread every 100 ms: one dump per threshold crossing,
text and JSON, named cprof-PID-TIME-REASON; exit 0 when the target exits or on SIGINT.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-watch-"))


def start_watch(*args):
    p = subprocess.Popen([cplib.CPROF, "watch"] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    cplib._started.append(p)
    return p


def test_threads_crossing_once():
    out = WORK / "threads"
    out.mkdir()
    # A thread every 100 ms, 40 at most; stdin open so that closing it ends the fixture.
    t = subprocess.Popen([str(cplib.TARGETS / "thread_leak"), "100", "40", "stdin"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cplib._started.append(t)
    w = start_watch("-p", t.pid, "--threads", "10", "--interval", "0.2", "-o", out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(os.listdir("/proc/%d/task" % t.pid)) < 41:
        time.sleep(0.2)
    time.sleep(1)
    t.stdin.close()
    t.wait(timeout=10)
    try:
        stdout, stderr = w.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        raise cplib.Failure("watch did not exit when the target exited")
    check(w.returncode == 0, "watch exit status %d" % w.returncode, stderr)
    files = sorted(os.listdir(out))
    check(len(files) == 2, "one dump (text and JSON) for one crossing", files, stderr)
    base = r"cprof-%d-\d{8}-\d{6}-threads\." % t.pid
    check(re.fullmatch(base + "json", files[0]) and re.fullmatch(base + "txt", files[1]),
          "file names", files)
    d = json.loads((out / files[0]).read_text())
    nthreads = len(d["threads"])
    # Soon after the look that saw the crossing (its count is in the note), however late
    # watch itself started on a busy machine: within 10 more threads (1 s of leaking).
    m = re.search(r"threads (\d+) > 10: wrote", stderr)
    check(m, "no note of the dump", stderr)
    seen = int(m.group(1))
    check(11 <= seen <= nthreads <= seen + 10,
          "dump taken soon after the crossing: %d threads, %d at the look" % (nthreads, seen))
    leaked = [x for x in d["threads"] if x["name"] == "leaked"]
    check(leaked and all(x["wait"]["kind"] == "io-read" for x in leaked), "leaked threads' wait",
          leaked[:2])
    text = (out / files[1]).read_text()
    check(text.startswith("process %d " % t.pid) and "leaked_handler" in text, "text dump",
          text[:500])
    check(re.search(r"threads \d+ > 10: wrote .*threads\.txt and .*threads\.json", stderr),
          "the note of the dump", stderr)
    check("exited" in stderr, "watch says the target exited", stderr)


def test_blocked_threads():
    out = WORK / "blocked"
    out.mkdir()
    t = subprocess.Popen([str(cplib.TARGETS / "thread_leak"), "50", "20", "stdin"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cplib._started.append(t)
    w = start_watch("-p", t.pid, "--blocked", "5", "--fds", "1000", "--interval", "0.2", "-o",
                    out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(os.listdir(out)) < 2:
        time.sleep(0.2)
    time.sleep(1)
    t.stdin.close()
    t.wait(timeout=10)
    stdout, stderr = w.communicate(timeout=20)
    check(w.returncode == 0, "watch exit status %d" % w.returncode, stderr)
    files = sorted(os.listdir(out))
    check(len(files) == 2 and all(re.search(r"-blocked\.(json|txt)$", f) for f in files),
          "one dump for blocked threads (unbounded pipe reads), none for fds", files, stderr)
    check(re.search(r"blocked \d+ > 5", stderr), "the note names the count", stderr)


def test_rearm_and_sigint():
    out = WORK / "rss"
    out.mkdir()
    with cplib.Target("waits") as t:
        rss = int(cplib.proc_status(t.pid)["VmRSS"].split()[0])
        # Above at once: one dump; it stays above, so no second one.
        w = start_watch("-p", t.pid, "--rss", "%dK" % max(rss // 2, 1), "--fds", "100000",
                        "--interval", "0.1", "-o", out)
        time.sleep(2)
        check(w.poll() is None, "watch ended early", w.stderr.read() if w.poll() is not None
              else "")
        w.send_signal(signal.SIGINT)
        stdout, stderr = w.communicate(timeout=20)
        check(w.returncode == 0, "SIGINT exit status %d" % w.returncode, stderr)
        files = sorted(os.listdir(out))
        check(len(files) == 2 and all("-rss." in f for f in files), "one rss crossing", files)
        cplib.assert_target_unharmed(t.pid)


def test_crossings_in_one_second_keep_their_dumps():
    # A shell that opens three more fds for 0.15 s, eight times: several crossings a second,
    # each its own pair of files (STAMP-2, STAMP-3, ... after the first of a second).
    out = WORK / "often"
    out.mkdir()
    script = ("sleep 0.6; for i in 1 2 3 4 5 6 7 8; do exec 5</dev/null 6</dev/null "
              "7</dev/null; sleep 0.15; exec 5<&- 6<&- 7<&-; sleep 0.15; done")
    sh = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL)
    cplib._started.append(sh)
    time.sleep(0.2)
    base = len(os.listdir("/proc/%d/fd" % sh.pid))
    w = start_watch("-p", sh.pid, "--fds", base + 1, "--interval", "0.03", "-o", out)
    sh.wait(timeout=60)
    stdout, stderr = w.communicate(timeout=60)
    check(w.returncode == 0, "watch exit status %d" % w.returncode, stderr)
    wrote = [l for l in stderr.splitlines() if ": wrote " in l]
    txt = [f for f in os.listdir(out) if f.endswith(".txt")]
    check(len(wrote) >= 4, "fewer crossings than the shell made", stderr)
    check(len(txt) == len(wrote) and len(os.listdir(out)) == 2 * len(wrote),
          "%d dumps noted, %d written: some replaced others" % (len(wrote), len(txt)),
          sorted(os.listdir(out)), stderr)


def test_usage_errors():
    p = cplib.run(["watch", "-p", os.getpid()], timeout=30)
    cplib.error_line(p, 2, r"cprof: watch: no threshold")
    with cplib.Target("waits") as t:
        p = cplib.run(["watch", "-p", t.pid, "--rss", "lots"], timeout=30)
        cplib.error_line(p, 2, r"cprof: watch: invalid --rss 'lots'")
        p = cplib.run(["watch", "-p", t.pid, "--threads", "5", "--interval", "0"], timeout=30)
        cplib.error_line(p, 2, r"cprof: watch: invalid --interval")
        p = cplib.run(["watch", "-p", t.pid, "--threads", "5", "-o", WORK / "nodir"], timeout=30)
        cplib.error_line(p, 1, r"cprof: .*nodir: not a writable directory")


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
