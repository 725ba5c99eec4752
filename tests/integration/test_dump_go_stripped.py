#!/usr/bin/env python3
"""cprof dump on stripped Go programs (no .symtab, no DWARF): frames named from .gopclntab with
file:line, for the gowaits fixture built with -ldflags='-s -w' and for Debian's prometheus."""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-gostrip-"))
CACHE = WORK / "cache"
GO_ENV = cplib.GO_ENV
ENV = dict(os.environ, CPROF_CACHE_DIR=str(CACHE), CPROF_STATS="1")
PROMETHEUS = "/usr/bin/prometheus"
FRAME = re.compile(r"  #\d+ (\S+)  (\S+):(\d+)")


def stripped_gowaits():
    if not shutil.which("go"):
        check(False, "go is not installed (make test installs golang-go)")
    exe = WORK / "gowaits-stripped"
    p = subprocess.run(["go", "build", "-ldflags=-s -w", "-o", str(exe),
                        str(cplib.SRC / "tests" / "targets" / "gowaits" / "main.go")],
                       capture_output=True, text=True, timeout=300, env=GO_ENV, cwd=str(WORK))
    check(p.returncode == 0, "go build of gowaits failed", p.stderr)
    sections = subprocess.run(["readelf", "-SW", str(exe)], capture_output=True,
                              text=True).stdout
    check(".gopclntab" in sections and ".symtab" not in sections and
          ".debug_info" not in sections, "the build is not stripped", sections)
    return exe


def dump(pid):
    """The text dump and the CPROF_STATS numbers of one `cprof dump -p pid`."""
    p = cplib.run(["dump", "-p", pid], env=ENV, check_rc=0, timeout=300)
    m = re.search(r"stats: (.*)", p.stderr)
    check(m, "no stats line on stderr", p.stderr[-2000:])
    return p.stdout, dict(kv.split("=", 1) for kv in m.group(1).split())


def spinning(text):
    """Whether a thread of the dump has main.spin as its leaf and 3 Ms are parked."""
    th = threads(text).values()
    return (any(f and named(f[0]) and named(f[0])[0] == "main.spin" for f in th) and
            sum(any(" runtime.notesleep " in x for x in f) for f in th) >= 3)


def threads(text):
    """{header: [frame line, ...]} of the thread blocks of a text dump."""
    out = {}
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("thread "):
            out[lines[0]] = [ln for ln in lines[1:] if re.match(r"  #\d+ ", ln)]
    return out


def named(frame):
    """(function, file, line) of a frame line named with file:line, else None."""
    m = FRAME.match(frame)
    return (m.group(1), m.group(2), int(m.group(3))) if m else None


def test_stripped_gowaits_named():
    """Parked Ms show runtime.futex and runtime.notesleep, the spinning goroutine main.spin at
    main.go; every frame of every thread has a name and a file:line; a second dump (answers
    from the symbol cache) prints the same."""
    with cplib.Target("gowaits", 1, path=stripped_gowaits()) as t:
        # main.spin is the leaf only while its goroutine runs, idle Ms park only between
        # wakeups: on a busy machine a dump may catch either in passing (in the Go
        # scheduler), so look again (from an empty cache) before checking.

        def first():
            shutil.rmtree(CACHE, ignore_errors=True)
            return dump(t.pid)

        text, stats = cplib.until(first, lambda r: spinning(r[0]), tries=10)
        check(stats["captured"] == stats["threads"], "threads not captured", stats)
        th = threads(text)
        check(th, "no threads", text[:2000])
        for head, frames in th.items():
            check(frames and named(frames[0]), "thread without a named frame", head, frames)
            # A thread caught in Go's signal handler (preemption signals hit main.spin every
            # 10 ms) is walked out of the signal frame by the unwinder, not checked here.
            if named(frames[0])[0].startswith("runtime.sig"):
                continue
            for fr in frames:
                # Where the walk ended early, the dump says so in a pseudo-frame.
                if re.search(r"#\d+ \[(truncated|unknown)\]$", fr):
                    continue
                check(named(fr), "frame without a name and file:line", head, fr)
        parked = [f for f in th.values() if any(" runtime.notesleep " in x for x in f)]
        check(len(parked) >= 3, "fewer than 3 threads parked in notesleep", text[:3000])
        for frames in parked:
            fn, path, line = named(frames[0])
            check(fn == "runtime.futex" and path.endswith("sys_linux_amd64.s") and line > 0,
                  "parked stack does not start in runtime.futex", frames)
        spin = [f for f in th.values() if f and named(f[0])[0] == "main.spin"]
        check(spin, "no thread in main.spin", text[:3000])
        fn, path, line = named(spin[0][0])
        check(path.endswith("tests/targets/gowaits/main.go") and 20 <= line <= 30,
              "main.spin at the wrong place", spin[0])
        check("(inlined)" in text, "no inlined frame from the inline trees", text[:3000])
        print("stripped gowaits: symbolize_us=%s dump_us=%s" % (stats["symbolize_us"],
                                                                stats["dump_us"]))
        # The answers went to the symbol cache (named by the Go build ID: no GNU one).
        files = list((CACHE / "sym1").glob("*")) if (CACHE / "sym1").exists() else []
        cached = "".join(f.read_text() for f in files)
        check("main.spin" in cached and "gowaits/main.go" in cached,
              "main.spin not in the symbol cache", [f.name for f in files])
        again, stats2 = cplib.until(lambda: dump(t.pid), lambda r: "main.spin  " in r[0],
                                    tries=10)
        check("main.spin  " in again, "main.spin not named from the cache", again[:3000])
        print("stripped gowaits, from the cache: symbolize_us=%s" % stats2["symbolize_us"])
        cplib.assert_target_unharmed(t.pid)


def profile_under_load(proc, port):
    """A CPU profile while /metrics is fetched in a loop: prometheus's own code is named
    (github.com/prometheus/...), no frame is left as prometheus+0x..."""
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                            timeout=5) as r:
                    r.read()
            except OSError:
                time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(2)]
    for w in workers:
        w.start()
    out = WORK / "prom.folded"
    try:
        cplib.run(["attach", "-p", proc.pid, "--seconds", "3", "--format", "folded", "-o",
                   out], env=ENV, check_rc=0, timeout=120)
    finally:
        stop.set()
        for w in workers:
            w.join()
    folded = out.read_text()
    check("prometheus+0x" not in folded, "unnamed prometheus frames in the profile",
          folded[:2000])
    check(re.search(r"(^|;)github\.com/prometheus/", folded, re.M),
          "no github.com/prometheus frame in the profile", folded[:2000])


def test_prometheus_named():
    """Debian's prometheus (stripped, Go, .gopclntab only): its threads' frames are runtime.*,
    main.* or github.com/prometheus/* ... with file:line, none left as prometheus+0x..."""
    if not os.access(PROMETHEUS, os.X_OK) or not os.path.exists("/etc/prometheus/prometheus.yml"):
        cplib.skip("prometheus is not installed")
    port = cplib.free_port()
    data = WORK / "tsdb"
    proc = subprocess.Popen([PROMETHEUS, "--config.file=/etc/prometheus/prometheus.yml",
                             "--web.listen-address=127.0.0.1:%d" % port,
                             "--storage.tsdb.path=%s" % data], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cplib._started.append(proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            check(proc.poll() is None, "prometheus exited", proc.returncode)
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            check(time.monotonic() < deadline, "prometheus not ready in 60 s")
            time.sleep(0.3)
        shutil.rmtree(CACHE, ignore_errors=True)
        text, stats = dump(proc.pid)
        th = threads(text)
        check(len(th) >= 4, "few threads", text[:2000])
        frames = [fr for f in th.values() for fr in f]
        check(not any("prometheus+0x" in fr for fr in frames), "unnamed prometheus frames",
              [fr for fr in frames if "prometheus+0x" in fr][:10])
        go = [named(fr) for fr in frames if named(fr)]
        check(len(go) >= 0.9 * len(frames), "frames without file:line", text[:3000])
        check(all(re.match(r"(runtime|main|github\.com/prometheus|syscall|internal|sync|"
                           r"time|net|os|[a-z]+[./])", fn) for fn, _, _ in go),
              "unexpected names", sorted({fn for fn, _, _ in go})[:40])
        check(any(fn.startswith("runtime.") for fn, _, _ in go), "no runtime frame")
        check(any(fn == "runtime.futex" and path.endswith(".s") for fn, path, _ in go),
              "no runtime.futex frame", text[:3000])
        print("prometheus: %d threads, %d frames named, symbolize_us=%s dump_us=%s" %
              (len(th), len(go), stats["symbolize_us"], stats["dump_us"]))
        again, stats2 = dump(proc.pid)
        print("prometheus, from the cache: symbolize_us=%s dump_us=%s" %
              (stats2["symbolize_us"], stats2["dump_us"]))
        profile_under_load(proc, port)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
