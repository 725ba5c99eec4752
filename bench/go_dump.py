#!/usr/bin/env python3
"""Goroutine dumps of a Go program with 10,000 goroutines: cprof against gdb's runtime-gdb.py
and Delve, measured side by side in the same run.

  python3 bench/go_dump.py --build build-release [--runs 5] [--goroutines 10000] [--out FILE]

The target (bench/targets/gomany) parks N goroutines at 1-8 frames of depth in a channel
receive, a mutex and a select, and spins one. Measured, as wall time of the whole command
(attach, read, detach), median of --runs with min-max:
  cprof      `cprof dump -p PID` (threads and goroutines with whole stacks, text)
  cprof json `cprof dump -p PID --format json`
  gdb        `info goroutines` (runtime-gdb.py: one line per goroutine, no stacks)
  gdb bt     `goroutine all bt` (stacks): gdb needs minutes per thousand goroutines, so it is
             measured once on a target of --gdb-bt-goroutines (default 300) and scaled
  dlv        `goroutines` (one line each) and `goroutines -t 64` (stacks), Delve attached and
             detached without killing the target
CPU ms is the command's own user + system time (gdb and Delve: theirs, not the target's),
which a loaded machine disturbs less than wall time. Every tool must leave the target running
and untraced; the table says how many goroutines each printed.
"""
import argparse
import os
import pathlib
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TMP = pathlib.Path(tempfile.mkdtemp(prefix="cprof-gobench-"))
GO_ENV = dict(os.environ, HOME=os.environ.get("HOME", "/tmp"), GOCACHE="/tmp/cprof-gocache",
              GOPATH="/tmp/cprof-gopath", GOPROXY="off", GOFLAGS="", GO111MODULE="auto",
              CGO_ENABLED="0", GOTOOLCHAIN="local")


def build_target():
    exe = TMP / "gomany"
    subprocess.run(["go", "build", "-o", str(exe),
                    str(ROOT / "bench" / "targets" / "gomany" / "main.go")],
                   check=True, env=GO_ENV, cwd=str(TMP), timeout=600)
    return exe


def runtime_gdb():
    """runtime-gdb.py of the Go that built the target (GOROOT/src/runtime)."""
    p = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, env=GO_ENV)
    path = pathlib.Path(p.stdout.strip()) / "src" / "runtime" / "runtime-gdb.py"
    return path if path.exists() else None


class Target:
    def __init__(self, exe, n):
        self.p = subprocess.Popen([str(exe), str(n)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.pid = self.p.pid
        line = self.p.stdout.readline()
        if "READY" not in line:
            self.stop()
            raise RuntimeError("gomany did not start: %r" % line)
        self.goroutines = int(line.split()[1])

    def check_unharmed(self, tool):
        status = pathlib.Path("/proc/%d/status" % self.pid).read_text()
        state = re.search(r"State:\s+(\S)", status).group(1)
        tracer = int(re.search(r"TracerPid:\s+(\d+)", status).group(1))
        if self.p.poll() is not None or state in "tT" or tracer:
            raise RuntimeError("%s left the target %s (state %s, tracer %d)"
                               % (tool, "dead" if self.p.poll() is not None else "harmed",
                                  state, tracer))

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.p.wait()


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv, stdin=None, timeout=600):
    c0, t0 = children_cpu(), time.monotonic()
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    return time.monotonic() - t0, children_cpu() - c0, p


def measure(target, name, argv, runs, stdin=None, count=None):
    """Median wall time of runs of argv and what its output shows (count(stdout))."""
    times, cpus, shown, rc = [], [], None, 0
    for _ in range(runs):
        dt, cpu, p = timed(argv, stdin)
        target.check_unharmed(name)
        times.append(dt)
        cpus.append(cpu)
        rc = rc or p.returncode
        shown = count(p.stdout) if count else None
    return {"name": name, "median": statistics.median(times), "min": min(times),
            "max": max(times), "cpu": statistics.median(cpus), "runs": runs, "rc": rc,
            "shown": shown}


def count_go(text):
    return len(re.findall(r"^goroutine \d+ \[", text, re.M))


def count_go_json(text):
    return len(re.findall(r'"wait_reason"', text))


def count_gdb(text):
    return len(re.findall(r"^[ *]\s*\d+ (?:waiting|runnable|running|syscall)", text, re.M))


def count_dlv(text):
    return len(re.findall(r"^\s*\*?\s*Goroutine \d+ - ", text, re.M))


def gdb_argv(pid, script, command):
    return ["gdb", "-p", str(pid), "-batch", "-nx", "-iex",
            "add-auto-load-safe-path %s" % script, "-ex", command]


def dlv_run(pid, command):
    # Delve asks whether to kill the process on exit: no.
    return ["dlv", "attach", str(pid), "--allow-non-terminal-interactive=true"], \
        "%s\nexit\nn\n" % command


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build-release")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--goroutines", type=int, default=10000)
    ap.add_argument("--gdb-bt-goroutines", type=int, default=300)
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    args = ap.parse_args()
    cprof = pathlib.Path(args.build) / "cprof"
    if not cprof.exists():
        cprof = pathlib.Path(args.build) / "cmd" / "cprof"
    exe = build_target()
    script = runtime_gdb()
    rows = []
    t = Target(exe, args.goroutines)
    try:
        print("target: %d goroutines (pid %d)" % (t.goroutines, t.pid), file=sys.stderr)
        rows.append(measure(t, "cprof dump", [str(cprof), "dump", "-p", str(t.pid)],
                            args.runs, count=count_go))
        rows.append(measure(t, "cprof dump --format json",
                            [str(cprof), "dump", "-p", str(t.pid), "--format", "json"],
                            args.runs, count=count_go_json))
        if shutil.which("gdb") and script:
            rows.append(measure(t, "gdb info goroutines",
                                gdb_argv(t.pid, script, "info goroutines"),
                                max(1, args.runs // 2), count=count_gdb))
        if shutil.which("dlv"):
            argv, cmd = dlv_run(t.pid, "goroutines")
            rows.append(measure(t, "dlv goroutines", argv, max(1, args.runs // 2),
                                stdin=cmd, count=count_dlv))
            argv, cmd = dlv_run(t.pid, "goroutines -t 64")
            rows.append(measure(t, "dlv goroutines -t 64 (stacks)", argv,
                                max(1, args.runs // 2), stdin=cmd, count=count_dlv))
    finally:
        t.stop()
    if shutil.which("gdb") and script:
        small = Target(exe, args.gdb_bt_goroutines)
        try:
            r = measure(small, "gdb goroutine all bt (stacks)",
                        gdb_argv(small.pid, script, "goroutine all bt"), 1,
                        count=lambda s: len(re.findall(r"^#0 ", s, re.M)))
            r["scaled_from"] = small.goroutines
            for k in ("median", "min", "max", "cpu"):
                r[k] *= t.goroutines / small.goroutines
            rows.append(r)
        finally:
            small.stop()
    base = rows[0]["median"]
    lines = ["Goroutine dumps of %d goroutines (bench/go_dump.py, %s, %d runs; median, min-max):"
             % (t.goroutines, time.strftime("%Y-%m-%d"), args.runs), "",
             "| tool | wall ms | min-max ms | CPU ms | goroutines shown | vs cprof dump (wall) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        note = ""
        if "scaled_from" in r:
            note = " (measured on %d, scaled)" % r["scaled_from"]
        lines.append("| %s%s | %.0f | %.0f-%.0f | %.0f | %s | %.1fx |"
                     % (r["name"], note, r["median"] * 1000, r["min"] * 1000, r["max"] * 1000,
                        r["cpu"] * 1000, r["shown"] if r["shown"] is not None else "?",
                        r["median"] / base))
    text = "\n".join(lines)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    shutil.rmtree(TMP, ignore_errors=True)
    bad = [r["name"] for r in rows if r["rc"]]
    if bad:
        print("failed: " + ", ".join(bad), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
