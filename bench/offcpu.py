"""make bench, section "off-CPU profiles": what a block profile costs a target that switches
context often (tests/targets/pingpong.c), side by side with perf's sched_switch tracepoint with
DWARF call graphs and with bcc's offcputime (Debian's bpfcc-tools), in one run."""
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build_pingpong(outdir):
    exe = pathlib.Path(outdir) / "pingpong"
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-I", str(ROOT / "tests" / "targets"),
                    str(ROOT / "tests" / "targets" / "pingpong.c"), "-o", str(exe)], check=True)
    return str(exe)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def rounds_lines(p, timeout):
    """The ROUNDS lines target p prints within timeout seconds."""
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            line = p.stdout.readline()
            m = re.match(r"ROUNDS (\d+)", line)
            if m:
                out.append(int(m.group(1)))
    return out


def tools(cprof, pid, seconds, tmp):
    """(name, argv) of each profiler run against pid for seconds; None when not installed."""
    offcpu = shutil.which("offcputime-bpfcc") or shutil.which("offcputime")
    return [
        ("none", None),
        ("cprof block", [cprof, "attach", "-p", str(pid), "--profile", "block", "--seconds",
                         str(seconds), "-o", os.path.join(tmp, "b.pb.gz")]),
        ("cprof block --unwind fp", [cprof, "attach", "-p", str(pid), "--profile", "block",
                                     "-u", "fp", "--seconds", str(seconds),
                                     "-o", os.path.join(tmp, "f.pb.gz")]),
        ("perf sched_switch dwarf", [shutil.which("perf") or "perf", "record", "-e",
                                     "sched:sched_switch", "--call-graph", "dwarf", "-p",
                                     str(pid), "-o", os.path.join(tmp, "perf.data"), "--",
                                     "sleep", str(seconds)]),
        ("bcc offcputime", [offcpu, "-p", str(pid), str(seconds)] if offcpu else []),
    ]


def one(exe, rate, name, argv_of, seconds):
    """Run the target at rate (0 = flat out) under one tool: (median rounds/s during the run,
    target CPU s/s, records lost as the tool reports them); None when the tool is missing,
    "failed: WHY" when it could not run."""
    p = subprocess.Popen([exe, str(rate)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, text=True, bufsize=1)
    try:
        p.stdout.readline()
        rounds_lines(p, 1.5)
        tmp = tempfile.mkdtemp(prefix="cprof-bench-offcpu-")
        argv = dict(argv_of(p.pid, tmp)).get(name)
        if argv == []:
            return None
        t0, c0 = time.monotonic(), cpu_ticks(p.pid)
        lost, got = "", []
        if argv:
            tool = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True)
            while tool.poll() is None:
                got += rounds_lines(p, 0.5)
            out, err = tool.communicate()
            if tool.returncode != 0:
                # A tool that could not run measured nothing (bcc without kernel headers).
                why = [x for x in err.splitlines() if x.strip()]
                told = [x for x in why if "kernel headers" in x or x.startswith("Exception")]
                why = told or why
                return "failed: " + (why[0][:80] if why else "exit %d" % tool.returncode)
            m = re.search(r"(\d+) lost|Lost (\d+)", err + out)
            lost = (m.group(1) or m.group(2)) if m else "0"
        else:
            got = rounds_lines(p, seconds)
        wall = time.monotonic() - t0
        cpu = (cpu_ticks(p.pid) - c0) / os.sysconf("SC_CLK_TCK") / wall
        shutil.rmtree(tmp, ignore_errors=True)
        # The seconds wholly inside the window: the first and last lines straddle its ends.
        inner = sorted(got[1:-1] or got)
        return (inner[len(inner) // 2] if inner else 0), cpu, lost
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def bench_offcpu(cprof, outdir, report, seconds=5):
    exe = build_pingpong(outdir)
    lines = ["## Off-CPU profiles: the cost of `--profile block`", "",
             "`tests/targets/pingpong RATE`: two threads pass a byte over two pipes (two "
             "context switches per round trip). Paced at 10,000 round trips a second (about "
             "20,000 switches a second) the cost is the target's extra CPU; flat out, it is "
             "the round trips lost. One run of %d s per line." % seconds, "",
             "| profiler | paced: rounds/s | paced: target CPU s/s | flat out: rounds/s | "
             "records lost (paced, flat out) |", "|---|---|---|---|---|"]
    base = None
    for name, _ in tools(cprof, 0, seconds, "/tmp"):
        argv_of = lambda pid, tmp: tools(cprof, pid, seconds, tmp)  # noqa: E731
        paced = one(exe, 10000, name, argv_of, seconds)
        if paced is None:
            lines.append("| %s | not installed | | | |" % name)
            continue
        if isinstance(paced, str):
            print("  %-26s %s" % (name, paced))
            lines.append("| %s | %s | | | |" % (name, paced.replace("|", "/")))
            continue
        flat = one(exe, 0, name, argv_of, seconds)
        print("  %-26s paced %6d r/s, CPU %.3f s/s; flat out %6d r/s; lost %s, %s" %
              (name, paced[0], paced[1], flat[0], paced[2], flat[2]))
        lines.append("| %s | %d | %.3f | %d | %s, %s |" % (name, paced[0], paced[1], flat[0],
                                                           paced[2] or "-", flat[2] or "-"))
        if name == "none":
            base = (paced[1], flat[0])
        elif name == "cprof block" and base and base[1]:
            report.append("block profile at 20,000 switches/s: target CPU %.2fx, flat-out "
                          "throughput %.0f%% of unprofiled" % (paced[1] / max(base[0], 1e-9),
                                                              100.0 * flat[0] / base[1]))
    return lines + [""]
