#!/usr/bin/env python3
"""Go profiles read from the runtime's own records (no injection): cprof attach --profile
heap|allocs|block|mutex|goroutine on tests/targets/goheap (built here, plain and with
-ldflags='-s -w') agrees with the fixture's own net/http/pprof through `go tool pprof -top`
(the same top functions, totals within 5%), as it does on Debian's prometheus; programs that
did not enable block/mutex profiles are told how; serve answers the same paths and /metrics
counts goroutines."""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
import profiles  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-goprof-"))
SRC = cplib.SRC / "tests" / "targets" / "goheap" / "main.go"
PROMETHEUS = "/usr/bin/prometheus"
_built = {}

# The sample types of each profile and the functions that must lead them in the fixture.
SAMPLE_TYPES = {
    "heap": ["inuse_space", "inuse_objects", "alloc_space", "alloc_objects"],
    "allocs": ["alloc_space", "alloc_objects"],
    "block": ["delay", "contentions"],
    "mutex": ["delay", "contentions"],
}
LEADERS = {
    ("heap", "inuse_space"): "main.leakA",
    ("allocs", "alloc_space"): "main.churnB",
    ("block", "delay"): "main.waitChan",
    ("mutex", "delay"): "main.holdMutex",
}


def goheap(stripped=False):
    """The fixture built with the go command (once per flavour)."""
    if stripped in _built:
        return _built[stripped]
    check(shutil.which("go"), "go is not installed (make test installs golang-go)")
    exe = WORK / ("goheap-stripped" if stripped else "goheap")
    cmd = ["go", "build"] + (["-ldflags=-s -w"] if stripped else []) + ["-o", str(exe), str(SRC)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cplib.GO_ENV,
                       cwd=str(WORK))
    check(p.returncode == 0, "go build of goheap failed", p.stderr)
    _built[stripped] = exe
    return exe


def fetch(url, path):
    with urllib.request.urlopen(url, timeout=60) as r:
        data = r.read()
    path.write_bytes(data)
    return path


def attach(pid, kind, out, *extra, rc=0):
    p = cplib.run(["attach", "-p", pid, "--profile", kind, "--seconds", "0", "-o", out] +
                  list(extra), check_rc=rc, timeout=300)
    return p


UNITS = {"B": 1, "kB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "ns": 1, "us": 1e3, "ms": 1e6,
         "s": 1e9, "": 1}


def number(text):
    m = re.match(r"^(-?[\d.]+)([a-zA-Z]*)$", text)
    check(m, "not a pprof number: %r" % text)
    return float(m.group(1)) * UNITS.get(m.group(2), 1)


def top(path, index):
    """(total, [(flat, name)] by flat, {name: cum}) of `go tool pprof -top` for sample type
    index, with no warning from pprof."""
    out = profiles.pprof("-top", "-nodecount=200", "-sample_index=" + index, path)
    m = re.search(r"of (\S+) total", out)
    check(m, "no total in pprof -top output", out[:2000])
    rows, cum = [], {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1].endswith("%") and f[4].endswith("%"):
            name = " ".join(f[5:]).replace(" (inline)", "")
            rows.append((number(f[0]), name))
            cum[name] = max(cum.get(name, 0), number(f[3]))
    rows.sort(key=lambda r: -r[0])
    return number(m.group(1)), rows, cum


def agree(ours, theirs, kind, index, what):
    """Our profile and Go's: totals within 5% and the same leading functions."""
    t1, r1, c1 = top(ours, index)
    t2, r2, c2 = top(theirs, index)
    check(abs(t1 - t2) <= 0.05 * max(t1, t2), "%s %s %s: total %g, Go's %g" %
          (what, kind, index, t1, t2))
    lead1 = [n for v, n in r1 if v > 0][:3]
    lead2 = [n for v, n in r2 if v > 0][:3]
    # The heaviest function is the same; the next ones may tie with Go's own handler's.
    check(lead1[:1] == lead2[:1], "%s %s %s: top %s, Go's %s" % (what, kind, index, lead1, lead2))
    leader = LEADERS.get((kind, index)) if "goheap" in what else None
    if leader:
        check(c1.get(leader, 0) >= 0.5 * t1, "%s %s %s: %s holds %g of %g" %
              (what, kind, index, leader, c1.get(leader, 0), t1), r1[:5])
    return t1, t2


def stacks(path, index):
    """The distinct stacks (tuples of function names, innermost first) of the samples of
    `go tool pprof -traces` for sample type index."""
    out = profiles.pprof("-traces", "-sample_index=" + index, path)
    result = set()
    for block in re.split(r"^-+\+-+$", out, flags=re.M)[1:]:
        frames = []
        for line in block.splitlines():
            if not line.strip() or (not frames and re.match(r"^\s*[\w.]+:\s", line)):
                continue
            name = line.split(None, 1)[1] if not frames else line.strip()
            frames.append(name.replace(" (inline)", "").strip())
        if frames:
            result.add(tuple(frames))
    return result


def same_stacks(ours, theirs, index, what):
    """Every stack of ours is one of Go's, frame for frame (inlined frames folded as Go
    folds them); Go's may have more, from the requests it served meanwhile."""
    s1, s2 = stacks(ours, index), stacks(theirs, index)
    check(s1 and s1 <= s2, "%s %s: stacks Go does not have" % (what, index),
          sorted(s1 - s2)[:5], sorted(s2)[:10])


def compare_fixture(stripped):
    port = cplib.free_port()
    exe = goheap(stripped)
    what = "stripped goheap" if stripped else "goheap"
    with cplib.Target("goheap", port, path=exe) as t:
        base = "http://127.0.0.1:%d/debug/pprof/" % port
        for kind in ("heap", "allocs", "block", "mutex"):
            ours = WORK / ("%s-%s-ours.pb.gz" % (what.replace(" ", "-"), kind))
            theirs = WORK / ("%s-%s-go.pb.gz" % (what.replace(" ", "-"), kind))
            p = attach(t.pid, kind, ours)
            check("from the runtime's records" in p.stderr, "no summary line", p.stderr)
            fetch(base + kind, theirs)
            for index in SAMPLE_TYPES[kind]:
                agree(ours, theirs, kind, index, what)
            same_stacks(ours, theirs, SAMPLE_TYPES[kind][0], "%s %s" % (what, kind))
        # The heap samples carry Go's numeric label bytes: 8 KiB blocks of main.leakA.
        tags = profiles.pprof("-tags", "-sample_index=inuse_space",
                              WORK / ("%s-heap-ours.pb.gz" % what.replace(" ", "-")))
        check(re.search(r"bytes: Total", tags) and re.search(r": 8kB", tags),
              "no bytes label of 8kB in the heap profile", tags[:1000])
        cplib.assert_target_unharmed(t.pid)


def test_fixture_agrees_with_its_own_pprof():
    compare_fixture(stripped=False)


def test_stripped_fixture_agrees():
    compare_fixture(stripped=True)


def test_goroutine_profile():
    port = cplib.free_port()
    with cplib.Target("goheap", port, path=goheap()) as t:
        ours = WORK / "goroutine-ours.pb.gz"
        theirs = fetch("http://127.0.0.1:%d/debug/pprof/goroutine?debug=0" % port,
                       WORK / "goroutine-go.pb.gz")
        p = attach(t.pid, "goroutine", ours)
        check(re.search(r"22 goroutines", p.stderr), "not the fixture's 22 goroutines", p.stderr)
        t1, r1, c1 = top(ours, "goroutine")
        t2, r2, c2 = top(theirs, "goroutine")
        # Go's own count includes the goroutines serving its request.
        check(t1 == 22 and 22 <= t2 <= 25, "goroutines: ours %g, Go's %g" % (t1, t2))
        check(c1.get("main.parked") == 20 and c2.get("main.parked") == 20,
              "main.parked: ours %s, Go's %s" % (c1.get("main.parked"), c2.get("main.parked")))
        check("runtime.goexit" not in c1, "runtime.goexit is shown (Go leaves it out)")
        # The go statements' wrapper closures are elided as Go's tracebacks elide them.
        check(not any(re.match(r"main\.main\.func\d", n) for n in c1),
              "a go statement's wrapper is shown", sorted(c1))
        cplib.assert_target_unharmed(t.pid)


def test_running_goroutine_at_its_threads_stack():
    """A goroutine running on a CPU is counted at its own stack, sampled from its thread."""
    port = cplib.free_port()
    with cplib.Target("goheap", port, "on", "spin", path=goheap()) as t:
        seen = []
        for attempt in range(3):
            out = WORK / ("spin-%d.pb.gz" % attempt)
            attach(t.pid, "goroutine", out)
            total, rows, cum = top(out, "goroutine")
            check(total == 23, "goroutines with the spinner: %g" % total, rows[:5])
            seen.append(sorted(n for n in cum if "spin" in n or n.startswith("[")))
            if cum.get("main.spin") == 1:
                break
        else:
            check(False, "the spinning goroutine was never shown at main.spin", seen)
        cplib.assert_target_unharmed(t.pid)


def test_window_is_a_difference():
    """--seconds N gives what happened in the window: nothing, for a fixture that stays still."""
    port = cplib.free_port()
    with cplib.Target("goheap", port, path=goheap()) as t:
        out = WORK / "window.pb.gz"
        p = cplib.run(["attach", "-p", t.pid, "--profile", "allocs", "--seconds", "1", "-o",
                       out], check_rc=0, timeout=120)
        check("difference over the window" in p.stderr, "no window in the summary", p.stderr)
        m = re.search(r"Duration: ([\d.]+)s", profiles.pprof("-top", out))
        check(m and float(m.group(1)) >= 1.0, "the window's duration is not in the profile")
        total, rows, cum = top(out, "alloc_space")
        check(cum.get("main.churnB", 0) == 0 and cum.get("main.leakA", 0) == 0,
              "allocations from before the window are in it", rows[:5])


def test_not_enabled_says_how():
    port = cplib.free_port()
    with cplib.Target("goheap", port, "off", path=goheap()) as t:
        for kind, fn in (("block", "SetBlockProfileRate"), ("mutex", "SetMutexProfileFraction")):
            out = WORK / ("off-%s.pb.gz" % kind)
            p = attach(t.pid, kind, out, rc=1)
            check(fn in p.stderr and "did not enable" in p.stderr,
                  "%s: no hint to call runtime.%s" % (kind, fn), p.stderr)
            check(not out.exists(), "a file was written for a refused profile")
        cplib.assert_target_unharmed(t.pid)


def test_memory_profiling_disabled_by_the_linker():
    """A program that imports no profiling package keeps no heap profile: said, exit 1."""
    for stripped in (False, True):
        exe = WORK / ("gonoprof-s" if stripped else "gonoprof")
        p = subprocess.run(["go", "build"] + (["-ldflags=-s -w"] if stripped else []) +
                           ["-o", str(exe), str(cplib.SRC / "tests" / "targets" / "gonoprof" /
                                                "main.go")],
                           capture_output=True, text=True, timeout=300, env=cplib.GO_ENV,
                           cwd=str(WORK))
        check(p.returncode == 0, "go build of gonoprof failed", p.stderr)
        with cplib.Target("gonoprof", path=exe) as t:
            out = WORK / "noprof.pb.gz"
            p = attach(t.pid, "heap", out, rc=1)
            cplib.error_line(p, 1, r"cprof: pid \d+: memory profiling is disabled .*"
                                   r"runtime\.disableMemoryProfiling")
            check(not out.exists(), "a file was written for a refused profile")


def test_native_goroutine_is_threads_by_stack():
    with cplib.Target("waits") as t:
        out = WORK / "native-goroutine.pb.gz"
        p = attach(t.pid, "goroutine", out)
        check("not a Go program" in p.stderr, "no note that it counts threads", p.stderr)
        total, rows, cum = top(out, "goroutine")
        nthreads = len(os.listdir("/proc/%d/task" % t.pid))
        check(total == nthreads, "threads by stack: %g, the process has %d" % (total, nthreads))


def test_seconds_zero_needs_a_snapshot_type():
    with cplib.Target("waits") as t:
        p = cplib.run(["attach", "-p", t.pid, "--seconds", "0"])
        cplib.error_line(p, 2, r"cprof: attach: invalid --seconds '0': only a snapshot")


def test_serve_go_target():
    port, sport = cplib.free_port(), cplib.free_port()
    with cplib.Target("goheap", port, path=goheap()) as t:
        srv = profiles.start(["serve", "-p", t.pid, "--listen", "127.0.0.1:%d" % sport])
        base = "http://127.0.0.1:%d" % sport
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/debug/pprof/", timeout=5).read()
                break
            except OSError:
                check(time.monotonic() < deadline and srv.poll() is None, "serve did not start")
                time.sleep(0.1)
        ours = fetch(base + "/debug/pprof/heap", WORK / "serve-heap.pb.gz")
        theirs = fetch("http://127.0.0.1:%d/debug/pprof/heap" % port, WORK / "serve-go.pb.gz")
        agree(ours, theirs, "heap", "inuse_space", "serve of goheap")
        g = fetch(base + "/debug/pprof/goroutine?debug=0", WORK / "serve-g.pb.gz")
        total, rows, cum = top(g, "goroutine")
        check(total == 22 and cum.get("main.parked") == 20, "serve goroutine?debug=0", rows[:5])
        metrics = urllib.request.urlopen(base + "/metrics", timeout=60).read().decode()
        check('go_goroutines{pid="%d"} 22\n' % t.pid in metrics, "no go_goroutines 22",
              metrics[-1500:])
        check('cprof_goroutines{pid="%d",wait_reason="chan receive"} 20\n' % t.pid in metrics,
              "no cprof_goroutines chan receive 20", metrics[-1500:])
        os.kill(srv.pid, signal.SIGTERM)
        srv.communicate(timeout=60)
        cplib.assert_target_unharmed(t.pid)


def test_prometheus_heap_agrees():
    """Debian's prometheus (stripped, Go 1.19): its heap as cprof reads it and as it serves it,
    taken at the same GC cycle (ours before and after Go's are the same)."""
    check(os.path.exists(PROMETHEUS), "prometheus is not installed (make test installs it)")
    port = cplib.free_port()
    d = WORK / "prom"
    d.mkdir()
    (d / "cfg.yml").write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    t = cplib.Target("prometheus", "--config.file=%s" % (d / "cfg.yml"),
                     "--web.listen-address=127.0.0.1:%d" % port,
                     "--storage.tsdb.path=%s" % (d / "data"), ready=None, path=PROMETHEUS)
    with t:
        url = "http://127.0.0.1:%d/debug/pprof/heap" % port
        deadline = time.monotonic() + 120
        while True:
            try:
                fetch(url, d / "warmup.pb.gz")
                break
            except OSError:
                check(time.monotonic() < deadline and t.alive(), "prometheus did not start")
                time.sleep(0.2)
        for attempt in range(5):
            attach(t.pid, "heap", d / "before.pb.gz")
            fetch(url, d / "go.pb.gz")
            attach(t.pid, "heap", d / "after.pb.gz")
            if top(d / "before.pb.gz", "inuse_space")[0] == top(d / "after.pb.gz",
                                                                  "inuse_space")[0]:
                break
        for index in SAMPLE_TYPES["heap"]:
            agree(d / "after.pb.gz", d / "go.pb.gz", "heap", index, "prometheus")
        # prometheus enables neither the block nor the mutex profile: said, with the hint.
        p = attach(t.pid, "block", d / "block.pb.gz", rc=1)
        check("SetBlockProfileRate" in p.stderr and "--native" in p.stderr,
              "prometheus' block profile: no hint", p.stderr)
        # --native samples its threads: their waits are named from Go's own system call
        # frames (runtime.futex, runtime.usleep, runtime.epollwait), not [unknown].
        cplib.run(["attach", "-p", t.pid, "--profile", "block", "--native", "--seconds", "1",
                   "-o", d / "native.pb.gz"], check_rc=0, timeout=120)
        waits = {l.get("wait") for c, f, l in profiles.traces_of(d / "native.pb.gz",
                                                                 "contentions")}
        check(waits and "unknown" not in waits and "futex" in waits,
              "prometheus' native block waits", waits)
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    cplib.main(globals())
