#!/usr/bin/env python3
"""cprof benchmarks against eu-stack, gdb and perf, measured side by side in the same run.

  python3 bench/run.py --build build-release [--runs 5] [--quick] [--only dump,sampling,...]

Prints a table with ratios and writes docs/PERFORMANCE.md. Sections:
  dump       wall time of a thread dump for N = 10, 100, 1000 blocked threads (+ busy and
             heartbeat threads): cprof vs eu-stack -i -s, eu-stack, gdb; the heartbeat's
             largest stall; EINTRs the target's threads saw; cprof's own per-thread stop time.
  sampling   a fixed-work program alone vs under cprof record, perf record -g and perf record
             --call-graph dwarf at 99 and 999 Hz: its run time, the profiler's CPU (perf:
             record + report), output size; then what one sample costs the sampled thread,
             measured inside it (bench/targets/gaps.c) at 9999 and 999 Hz, for all three.
  symbols    first vs repeated dumps of a process linked against large libraries.
  heap       what the allocation sampler costs 10 million malloc/free pairs: preloaded,
             attached by cprof, after detach, against heaptrack and a uprobe counter (heap.py).
  long       cprof's RSS over a long profile of a busy 8-thread process: one with a fixed set
             of stacks (flat, or cprof leaks), one whose distinct stacks never stop coming.
Machines are noisy: every figure is a median of --runs runs with min-max, and every claim is a
ratio against a reference measured in the same run.
"""
import argparse
import datetime
import os
import pathlib
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TMP = pathlib.Path(tempfile.mkdtemp(prefix="cprof-bench-"))
FIXTURE_FLAGS = ["-O2", "-g", "-fomit-frame-pointer", "-pthread"]


def build_targets(outdir):
    outdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, lang in (("mixed", "c"), ("fixed_work", "c"), ("gaps", "c"), ("bigdeps", "c++")):
        src = ROOT / "bench" / "targets" / ("%s.%s" % (name, "cpp" if lang == "c++" else "c"))
        exe = outdir / name
        cc = "g++" if lang == "c++" else "gcc"
        extra = ["-ldl"] if lang == "c++" else []
        subprocess.run([cc] + FIXTURE_FLAGS + [str(src), "-o", str(exe)] + extra, check=True)
        out[name] = str(exe)
    return out


class Target:
    """A benchmark target started with a stdin pipe for its "stats" command."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.pid = self.p.pid
        line = self.readline(30)
        if not line or "READY" not in line:
            self.stop()
            raise RuntimeError("target %s did not start: %r" % (argv, line))

    def readline(self, timeout):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        return self.p.stdout.readline() if r else ""

    def stats(self):
        self.p.stdin.write("stats\n")
        self.p.stdin.flush()
        line = self.readline(10)
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.p.wait()


def timed(argv, env=None, stdout=subprocess.DEVNULL):
    """Run argv; return (wall seconds, exit status, stdout, stderr)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         stdin=subprocess.DEVNULL, text=True)
    out, err = p.communicate()
    wall = time.monotonic() - t0
    return wall, p.returncode, out, err


def timed_cpu(argv, env=None):
    """timed() plus the command's CPU seconds (user + system, its children included)."""
    before = cpu_of_children()
    wall, rc, out, err = timed(argv, env=env)
    return wall, cpu_of_children() - before, rc, out, err


def cpu_of_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_range(xs, scale=1.0, fmt="%.3f"):
    if not xs:
        return "n/a"
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med(xs) * scale, min(xs) * scale,
                                                     max(xs) * scale)


# ---------------------------------------------------------------------------------------
# dump


def bench_dump(cprof, targets, runs, sizes, report):
    tools = [
        ("cprof dump", lambda pid: [cprof, "dump", "-p", str(pid), "--format", "json",
                                    "-o", "/dev/null"]),
        ("eu-stack -i -s", lambda pid: ["eu-stack", "-p", str(pid), "-i", "-s"]),
        ("eu-stack", lambda pid: ["eu-stack", "-p", str(pid)]),
        ("gdb bt", lambda pid: ["gdb", "-batch", "-nx", "-ex", "thread apply all bt",
                                "-p", str(pid)]),
    ]
    env = dict(os.environ, CPROF_STATS="1")
    rows = []
    for n in sizes:
        t = Target([targets["mixed"], str(n)])
        try:
            t.stats()
            # A warm-up dump of each tool (page cache, cprof's debug-file cache), not counted.
            for name, argv in tools:
                timed(argv(t.pid), env=env)
            t.stats()
            results = {name: dict(wall=[], cpu=[], gap=[], eintr=[], stop=[], maxstop=[],
                                  stopped=[], sampled=[])
                       for name, _ in tools + [("(no tool)", None)]}
            # Round robin: a change in the machine's load hits every tool alike.
            for _ in range(runs):
                # The heartbeat's lateness with nobody looking: the machine's own noise.
                time.sleep(0.5)
                s = t.stats()
                results["(no tool)"]["gap"].append(s.get("max_gap_us", 0) / 1e6)
                results["(no tool)"]["eintr"].append(s.get("eintr", 0))
                for name, argv in tools:
                    # Let the target settle: eu-stack and gdb leave hundreds of threads
                    # restarting their calls (their EINTRs), which the next tool would meet.
                    time.sleep(0.5)
                    t.stats()
                    wall, cpu, rc, _, err = timed_cpu(argv(t.pid), env=env)
                    s = t.stats()
                    if rc != 0:
                        print("  %s failed (exit %d): %s" % (name, rc, err.strip()[:200]))
                        continue
                    r = results[name]
                    r["wall"].append(wall)
                    r["cpu"].append(cpu)
                    r["gap"].append(s.get("max_gap_us", 0) / 1e6)
                    r["eintr"].append(s.get("eintr", 0))
                    m = re.search(r"max_stop_us=(\d+).*avg_stop_us=(\d+).*stopped=(\d+)"
                                  r" sampled=(\d+)", err)
                    if m:
                        r["maxstop"].append(int(m.group(1)) / 1e6)
                        r["stop"].append(int(m.group(2)) / 1e6)
                        r["stopped"].append(int(m.group(3)))
                        r["sampled"].append(int(m.group(4)))
            for name, r in results.items():
                print("  N=%-5d %-15s wall %s s, CPU %s s, max stall %s ms, EINTR/run %s" %
                      (n + 3, name, fmt_range(r["wall"]), fmt_range(r["cpu"]),
                       fmt_range(r["gap"], 1e3, "%.2f"),
                       med(r["eintr"]) if r["eintr"] else "n/a"), flush=True)
            rows.append((n, results))
        finally:
            t.stop()
    lines = ["## Thread dump", "",
             "Target: `bench/targets/mixed.c` with N blocked threads (mutex, condvar, sleep, "
             "pipe read, recv with SO_RCVTIMEO, epoll_wait, poll, accept, rwlock, semaphore) "
             "plus a busy thread, a heartbeat thread (wakes every 1 ms and records its largest "
             "lateness) and the main thread (blocked in a read of stdin). Built -O2 -g "
             "-fomit-frame-pointer. The tools take turns within each run (round robin), after "
             "one warm-up dump each, and half a second for the target to settle before each "
             "dump; `(no tool)` is the heartbeat's lateness over 0.5 s with nobody looking, "
             "the machine's own noise.", "",
             "Commands: `cprof dump -p PID --format json -o /dev/null` (fully symbolized: "
             "function, file:line, inlined frames), "
             "`eu-stack -p PID -i -s` (the same information), `eu-stack -p PID` (function "
             "names only), `gdb -batch -nx -ex 'thread apply all bt' -p PID`.", "",
             "| threads | tool | wall s, median (min–max) | vs cprof | CPU s (user+sys) | "
             "heartbeat's longest stall ms | EINTR per run (median) |",
             "|---|---|---|---|---|---|---|"]
    for n, results in rows:
        base = med(results.get("cprof dump", {}).get("wall", []))
        for name, r in results.items():
            if name == "(no tool)":
                lines.append("| %d | %s | – | – | – | %s | %s |" % (
                    n + 3, name, fmt_range(r["gap"], 1e3, "%.2f"), med(r["eintr"])))
                continue
            ratio = med(r["wall"]) / base if base and r["wall"] else float("nan")
            lines.append("| %d | %s | %s | %.1fx | %s | %s | %s |" % (
                n + 3, name, fmt_range(r["wall"]), ratio, fmt_range(r["cpu"]),
                fmt_range(r["gap"], 1e3, "%.2f"),
                med(r["eintr"]) if r["eintr"] else "n/a"))
    lines.append("")
    lines.append("cprof's own accounting (per dump, median): threads taken from one perf "
                 "sample while they ran (never stopped), threads it had to stop with ptrace "
                 "(the others were captured live, off CPU, without stopping), the longest "
                 "single stop, the average stop of the stopped ones:")
    lines.append("")
    lines.append("| threads | sampled while running | stopped | longest stop ms | "
                 "average stop µs |")
    lines.append("|---|---|---|---|---|")
    for n, results in rows:
        r = results.get("cprof dump", {})
        if r.get("maxstop"):
            lines.append("| %d | %s | %s | %s | %.1f |" % (
                n + 3, med(r["sampled"]), med(r["stopped"]),
                fmt_range(r["maxstop"], 1e3, "%.3f"), med(r["stop"]) * 1e6))
    lines.append("")
    for n, results in rows:
        c = results.get("cprof dump", {})
        for ref in ("eu-stack -i -s", "eu-stack", "gdb bt"):
            w = med(results.get(ref, {}).get("wall", []))
            if c.get("wall") and w == w:
                report.append("dump %d threads: %s / cprof wall = %.1fx (CPU %.1fx)" % (
                    n + 3, ref, w / med(c["wall"]),
                    med(results[ref]["cpu"]) / max(med(c["cpu"]), 1e-6)))
        if c.get("eintr"):
            report.append("dump %d threads: EINTRs in the target per cprof dump: max %d; "
                          "threads stopped per dump: max %s, longest stop %.3f ms; "
                          "running threads sampled per dump: median %s" % (
                              n + 3, max(c["eintr"]), max(c["stopped"]) if c["stopped"]
                              else "n/a", max(c["maxstop"]) * 1e3 if c["maxstop"] else 0,
                              med(c["sampled"]) if c["sampled"] else "n/a"))
    return lines


# ---------------------------------------------------------------------------------------
# sampling cost


def run_workload(argv):
    """Run a profiler wrapping the workload; returns (work s, workload cpu s, profiler cpu s)."""
    before = cpu_of_children()
    wall, rc, out, err = timed(argv)
    after = cpu_of_children()
    m = re.search(r"work_seconds=([\d.]+) cpu_seconds=([\d.]+)", out + err)
    if rc != 0 or not m:
        raise RuntimeError("%s failed (exit %s): %s" % (" ".join(argv), rc, err[-300:]))
    work, wcpu = float(m.group(1)), float(m.group(2))
    return work, wcpu, max(0.0, (after - before) - wcpu)


def run_pinned(argv, cpu):
    """run_workload() with the command (the profiler) pinned to cpu."""
    before = cpu_of_children()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    out, err = p.communicate()
    after = cpu_of_children()
    m = re.search(r"work_seconds=([\d.]+) cpu_seconds=([\d.]+)", out + err)
    if p.returncode != 0 or not m:
        raise RuntimeError("%s failed (exit %s): %s" % (" ".join(argv), p.returncode,
                                                       err[-300:]))
    work, wcpu = float(m.group(1)), float(m.group(2))
    return work, wcpu, max(0.0, (after - before) - wcpu)


def sampling_argv(cprof, fw, how, out, cpu):
    """The workload, pinned to cpu, alone (how None) or under a profiler."""
    work = ["taskset", "-c", str(cpu), fw, "1"]
    if how is None:
        return work
    if how[0] == "cprof":
        return [cprof, "record", "-F", str(how[1]), "-o", str(out) + ".pb.gz", "--"] + work
    if how[0] == "perf-fp":
        return ["perf", "record", "-q", "-g", "-F", str(how[1]), "-o", str(out) + ".data",
                "--"] + work
    return ["perf", "record", "-q", "--call-graph", "dwarf", "-F", str(how[1]), "-o",
            str(out) + ".data", "--"] + work


def quartiles(xs):
    """(lower, upper) quartile: the middle half of the pairs' ratios."""
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def bench_sampling(cprof, targets, runs, rates, report):
    """
    The workload runs pinned to the last CPU and the profiler to the first: on this VM the
    first CPU takes the interrupts and its speed swings by 30% from second to second, while
    the last one's stays within 1-2%. Every profiled run is paired with a run of the
    workload alone right before or after it (the order alternates), and the overhead is the
    median of the pairs' ratios; medians of unpaired runs, unpinned, could not resolve 1%.
    """
    fw = targets["fixed_work"]
    configs = [("alone", None)]
    for hz in rates:
        configs += [("cprof record -F %d" % hz, ("cprof", hz)),
                    ("perf record -g -F %d" % hz, ("perf-fp", hz)),
                    ("perf record --call-graph dwarf -F %d" % hz, ("perf-dwarf", hz))]
    results = {name: dict(work=[], wcpu=[], cpu=[], size=[], rwork=[], rcpu=[])
               for name, _ in configs}
    cpus = sorted(os.sched_getaffinity(0))
    cpu_prof, cpu_work = cpus[0], cpus[-1]
    for i in range(runs):
        profiled = configs[1:] if i % 2 == 0 else configs[:0:-1]
        for name, how in profiled:
            out = TMP / ("prof-%d" % i)
            pair = {}
            try:
                for which in (("alone", "prof") if i % 2 == 0 else ("prof", "alone")):
                    pair[which] = run_pinned(
                        sampling_argv(cprof, fw, how if which == "prof" else None, out,
                                      cpu_work), cpu_prof)
            except RuntimeError as e:
                print("  %s: %s" % (name, e))
                continue
            (aw, awcpu, _), (w, wcpu, pc) = pair["alone"], pair["prof"]
            results["alone"]["work"].append(aw)
            results["alone"]["wcpu"].append(awcpu)
            path = pathlib.Path(str(out) + (".pb.gz" if how[0] == "cprof" else ".data"))
            size = path.stat().st_size if path.exists() else 0
            if how[0] != "cprof" and path.exists():
                # perf's cost includes turning perf.data into stacks.
                before = cpu_of_children()
                timed(["perf", "report", "-i", str(path), "--stdio", "--no-children"])
                pc += cpu_of_children() - before
            if path.exists():
                path.unlink()
            r = results[name]
            r["work"].append(w)
            r["wcpu"].append(wcpu)
            r["cpu"].append(pc)
            r["size"].append(size)
            r["rwork"].append(w / aw)
            r["rcpu"].append(wcpu / awcpu)
    for name, r in results.items():
        print("  %-40s run %s s, its CPU %s s, profiler CPU %s s, output %s MB" % (
            name, fmt_range(r["work"]), fmt_range(r["wcpu"]), fmt_range(r["cpu"]),
            fmt_range(r["size"], 1e-6, "%.3f")), flush=True)
    lines = ["## Sampling cost", "",
             "Target: `bench/targets/fixed_work.c` (one thread; qsort through libc plus "
             "noinline hashing; -O2 -g -fomit-frame-pointer), a fixed amount of work; it "
             "reports its own run time and CPU time (the kernel's work for each sample, the "
             "interrupt and the stack copy, is charged to the sampled thread, so its CPU time "
             "is the overhead measure that a noisy machine disturbs least). Configurations "
             "take turns within each run. Profiler CPU is the CPU of the whole command minus "
             "the workload's own; for perf it includes `perf report --stdio` of the file, "
             "since cprof's output is already symbolized stacks.", "",
             "The workload is pinned to the last CPU, the profiler to the first (which "
             "takes this VM's interrupts, and whose speed swings by 30%; the last one's "
             "stays within 1-2%). Each profiled run is paired with a run of the workload "
             "alone just before or after it; an overhead is the median of the pairs' "
             "ratios (in brackets the middle half of them). On this VM even that swings by "
             "tens of percent from one run of the bench to the next (see the min–max of "
             "`alone`): these run times show the order of magnitude, and the cost per sample "
             "measured inside the target (next section) is what resolves 1%.", "",
             "| configuration | run s, median (min–max) | run time overhead | workload CPU s |"
             " CPU overhead | profiler CPU s | output MB |", "|---|---|---|---|---|---|---|"]

    def overhead(ratios):
        if not ratios:
            return "n/a"
        lo, hi = quartiles(ratios)
        return "%+.1f%% [%+.1f, %+.1f]" % ((med(ratios) - 1) * 100, (lo - 1) * 100,
                                            (hi - 1) * 100)

    for name, r in results.items():
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt_range(r["work"]), overhead(r["rwork"]) if name != "alone" else "",
            fmt_range(r["wcpu"]), overhead(r["rcpu"]) if name != "alone" else "",
            fmt_range(r["cpu"]) if name != "alone" else "",
            fmt_range(r["size"], 1e-6, "%.3f") if name != "alone" else ""))
    lines.append("")
    for hz in rates:
        c = results.get("cprof record -F %d" % hz)
        d = results.get("perf record --call-graph dwarf -F %d" % hz)
        g = results.get("perf record -g -F %d" % hz)
        for who, r in (("cprof", c), ("perf -g", g), ("perf dwarf", d)):
            if r and r["rwork"]:
                report.append("sampling %d Hz: %s overhead (paired runs, medians) %+.1f%% run "
                              "time, "
                              "%+.1f%% CPU" % (hz, who, (med(r["rwork"]) - 1) * 100,
                                               (med(r["rcpu"]) - 1) * 100))
        if c and d and c["cpu"] and d["cpu"] and med(c["cpu"]) > 0:
            report.append("sampling %d Hz: perf dwarf (record+report) CPU / cprof CPU = %.1fx"
                          % (hz, med(d["cpu"]) / med(c["cpu"])))
        if c and d and c["size"] and d["size"] and med(c["size"]) > 0:
            report.append("sampling %d Hz: perf.data (dwarf) / cprof profile size = %.0fx"
                          % (hz, med(d["size"]) / med(c["size"])))
    return lines


def gaps_argv(cprof, gaps, how, out, cpu, seconds):
    """The gap-measuring target, pinned to cpu, alone (how None) or under a profiler at hz.
    perf runs without -q: its closing line counts the samples."""
    work = ["taskset", "-c", str(cpu), gaps, str(seconds)]
    if how is None:
        return work
    who, hz = how
    if who == "cprof":
        return [cprof, "record", "-F", str(hz), "-o", str(out) + ".pb.gz", "--"] + work
    mode = ["-g"] if who == "perf-fp" else ["--call-graph", "dwarf"]
    return ["perf", "record"] + mode + ["-F", str(hz), "-o", str(out) + ".data", "--"] + work


def run_gaps(argv, cpu):
    """Run the gaps target (the command pinned to cpu): (its short-gap ns, seconds, samples
    the profiler reports taking or None)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    out, err = p.communicate()
    m = re.search(r"short_ns=(\d+) short=\d+ long_ns=\d+ long=\d+ seconds=([\d.]+)", out)
    if p.returncode != 0 or not m:
        raise RuntimeError("%s failed (exit %s): %s" % (" ".join(argv), p.returncode,
                                                       err[-300:]))
    # cprof: "N samples (M lost)"; perf: "(N samples)".
    n = re.search(r"(\d+) samples \((\d+) lost\)", err)
    samples = int(n.group(1)) if n else None
    if not n:
        n = re.search(r"\((\d+) samples\)", err)
        samples = int(n.group(1)) if n else None
    return int(m.group(1)), float(m.group(2)), samples


def bench_sample_cost(cprof, targets, runs, report, rates=(9999, 999), seconds=2):
    """
    What one sample costs the sampled thread, measured from inside it (bench/targets/gaps.c:
    the time it loses in gaps of 0.5-200 us while reading the clock in a loop). At 9999 Hz
    the cost stands far above this machine's own interruptions; at 999 Hz it checks that a
    sample costs the same at a lower rate (warm or cold caches). Each profiled run is paired
    with a run alone next to it; cost per sample = extra gap time / samples taken. The
    overhead at a rate R is then R x the cost.
    """
    gaps = targets["gaps"]
    cpus = sorted(os.sched_getaffinity(0))
    cpu_prof, cpu_work = cpus[0], cpus[-1]
    names = [("cprof record", "cprof"), ("perf record -g", "perf-fp"),
             ("perf record --call-graph dwarf", "perf-dwarf")]
    configs = [(name, (who, hz)) for hz in rates for name, who in names]
    cost = {c: [] for c in configs}
    alone = []
    for i in range(runs):
        for config in (configs if i % 2 == 0 else configs[::-1]):
            name, how = config
            out = TMP / ("gaps-%d" % i)
            pair = {}
            try:
                for which in (("alone", "prof") if i % 2 == 0 else ("prof", "alone")):
                    pair[which] = run_gaps(gaps_argv(cprof, gaps, how if which == "prof"
                                                     else None, out, cpu_work, seconds),
                                           cpu_prof)
            except RuntimeError as e:
                print("  %s: %s" % (name, e))
                continue
            for ext in (".pb.gz", ".data"):
                pathlib.Path(str(out) + ext).unlink(missing_ok=True)
            (a_ns, a_s, _), (p_ns, p_s, samples) = pair["alone"], pair["prof"]
            alone.append(a_ns / a_s / 1e9)
            if samples:
                cost[config].append((p_ns / p_s - a_ns / a_s) * p_s / samples / 1e3)
    print("  alone: short gaps take %s%% of the thread's time" %
          fmt_range(alone, 100, "%.1f"), flush=True)
    lines = ["## Cost per sample, measured inside the sampled thread", "",
             "Target: `bench/targets/gaps.c`, one thread reading the clock in a loop for %d s "
             "and adding up the gaps of 0.5-200 us: time it did not run. Alone, this "
             "machine's own interruptions take %s%% of its time (median, min–max) and swing "
             "by several points from run to run, which is why run times cannot resolve a 1%% "
             "overhead here. Pinned as above; each profiled run is paired with a run alone: "
             "cost per sample = (gap time profiled − gap time alone) / samples the profiler "
             "reports. The kernel's work per sample (the timer interrupt, the registers, the "
             "stack copy) does not depend on the rate, which the two rates check; the "
             "overhead at a rate is rate × cost."
             % (seconds, fmt_range(alone, 100, "%.1f")), "",
             "| profiler | sampled at | µs per sample, median (min–max) | overhead at 99 Hz "
             "| at 999 Hz |", "|---|---|---|---|---|"]
    for config, c in cost.items():
        name, (_, hz) = config
        print("  %-32s %5d Hz: %s us per sample" % (name, hz, fmt_range(c, 1, "%.1f")),
              flush=True)
        if not c:
            lines.append("| %s | %d Hz | n/a | | |" % (name, hz))
            continue
        lines.append("| %s | %d Hz | %s | %.2f%% | %.1f%% |" % (
            name, hz, fmt_range(c, 1, "%.1f"), med(c) * 99 / 1e4, med(c) * 999 / 1e4))
        if hz == rates[0]:
            report.append("sample cost (at %d Hz, inside the target): %s %.1f us a sample -> "
                          "%.2f%% at 99 Hz, %.1f%% at 999 Hz" % (
                              hz, name, med(c), med(c) * 99 / 1e4, med(c) * 999 / 1e4))
    lines.append("")
    return lines


# ---------------------------------------------------------------------------------------
# symbolization caches


def bench_symbols(cprof, targets, runs, report):
    t = Target([targets["bigdeps"]])
    firsts, warm_disk, repeats = [], [], []

    def dumps(cache_dir, repeat):
        env = dict(os.environ, CPROF_STATS="1", CPROF_BENCH_REPEAT=str(repeat),
                   CPROF_CACHE_DIR=cache_dir)
        _, rc, _, err = timed([cprof, "dump", "-p", str(t.pid), "--format", "json",
                               "-o", "/dev/null"], env=env)
        return [int(x) / 1e6 for x in re.findall(r"dump_us=(\d+)", err)] if rc == 0 else []

    try:
        for i in range(runs):
            # An empty cache directory: the first dump inflates compressed debug files
            # (libc6-dbg's) and stores them; later dumps in the same process hit the
            # in-memory caches; a new process then finds the decompressed copies on disk.
            cache = str(TMP / ("symcache-%d" % i))
            times = dumps(cache, 3)
            if len(times) >= 2:
                firsts.append(times[0])
                repeats.append(med(times[1:]))
            times = dumps(cache, 1)
            if times:
                warm_disk.append(times[0])
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        t.stop()
    print("  first dump %s s, new process with the disk cache %s s, repeated %s s" % (
        fmt_range(firsts), fmt_range(warm_disk), fmt_range(repeats)))
    lines = ["## Symbolization caches", "",
             "Target: `bench/targets/bigdeps.cpp` (libstdc++ with iostreams and threads, "
             "libcrypto, libssl, libz loaded), 16 blocked threads. Four caches: the "
             "per-build-ID module and per-address caches inside one cprof process "
             "(`CPROF_BENCH_REPEAT=3` dumps three times in one process), and two on disk "
             "(`CPROF_CACHE_DIR`, emptied before each run): debug files whose DWARF is "
             "compressed (Debian's libc6-dbg), decompressed once per build ID, and what DWARF "
             "said about each address met, per build ID.", "",
             "| dump | wall s, median (min–max) |", "|---|---|",
             "| first, cold caches (empty disk cache) | %s |" % fmt_range(firsts),
             "| first of a new process, disk cache warm | %s |" % fmt_range(warm_disk),
             "| repeated in one process (warm caches) | %s |" % fmt_range(repeats), ""]
    if firsts and repeats and med(repeats) > 0:
        report.append("symbols: first (cold) / repeated dump = %.1fx; cold / new process with "
                      "disk cache = %.1fx" % (med(firsts) / med(repeats),
                                              med(firsts) / max(med(warm_disk), 1e-9)))
    return lines


# ---------------------------------------------------------------------------------------
# long runs


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_long(cprof, targets, seconds, report, nosort=False):
    """One long profile of fixed_work on 8 threads: with qsort, whose recursive merge sort
    makes new distinct stacks without end, or (nosort) a small fixed set of stacks, where
    anything that grows is cprof's own."""
    import gzip

    def varint(b, i):
        v = shift = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7f) << shift
            shift += 7
            if c < 0x80:
                return v, i

    def fields(b):
        """(field number, wire type, value or bytes) of one protobuf message."""
        i = 0
        while i < len(b):
            key, i = varint(b, i)
            wt = key & 7
            if wt == 0:
                v, i = varint(b, i)
            elif wt == 1:
                v, i = b[i:i + 8], i + 8
            elif wt == 2:
                n, i = varint(b, i)
                v, i = b[i:i + n], i + n
            elif wt == 5:
                v, i = b[i:i + 4], i + 4
            else:
                raise ValueError("wire type %d" % wt)
            yield key >> 3, wt, v

    def varints(b):
        i, out = 0, []
        while i < len(b):
            v, i = varint(b, i)
            out.append(v)
        return out

    def profile_samples(path):
        """The (stack, count) of each sample of a pprof file: samples/count is its first value."""
        out = []
        for num, wt, v in fields(gzip.decompress(path.read_bytes())):
            if num != 2:
                continue
            stack, values = [], []
            for snum, swt, sv in fields(v):
                if snum == 1:
                    stack += varints(sv) if swt == 2 else [sv]
                elif snum == 2:
                    values += varints(sv) if swt == 2 else [sv]
            out.append((tuple(stack), values[0] if values else 0))
        return out

    def rss_split(pid):
        """(anonymous, file-backed) RSS in KiB: the model is anonymous memory; mapped module
        and debug files (touched as symbolization reaches new addresses) are file-backed."""
        got = {}
        try:
            with open("/proc/%d/status" % pid) as st:
                for line in st:
                    if line.startswith(("RssAnon:", "RssFile:")):
                        got[line.split(":")[0]] = int(line.split()[1])
        except OSError:
            pass
        return got.get("RssAnon"), got.get("RssFile")

    argv = [targets["fixed_work"], "8", "forever"] + (["nosort"] if nosort else [])
    label = "fixed_work 8 forever" + (" nosort" if nosort else "")
    work = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = TMP / "long.pb.gz"
    if out.exists():
        out.unlink()
    samples = []
    split = []
    try:
        work.stdout.readline()
        prof = subprocess.Popen([cprof, "attach", "-p", str(work.pid), "--seconds",
                                 str(seconds), "-o", str(out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        t0 = time.monotonic()
        step = max(1, seconds // 30)
        while prof.poll() is None:
            r = rss_kib(prof.pid)
            if r is not None:
                samples.append((time.monotonic() - t0, r))
                split.append(rss_split(prof.pid))
            time.sleep(step)
        prof.wait()
    finally:
        if work.poll() is None:
            os.kill(work.pid, signal.SIGKILL)
        work.wait()
    size = out.stat().st_size if out.exists() else 0
    what = ("a fixed set of stacks: fill and hash only, anything that grows is cprof's own"
            if nosort else "qsort's recursive merge sort: new distinct stacks without end")
    lines = ["## Long run: %s" % label, "",
             "`cprof attach -p PID --seconds %d` on `%s` (8 busy threads; %s); cprof's VmRSS "
             "sampled every few seconds." % (seconds, label, what), ""]
    if samples:
        lines.append("| time s | cprof RSS MiB |")
        lines.append("|---|---|")
        for t, r in samples[:: max(1, len(samples) // 10)]:
            lines.append("| %.0f | %.1f |" % (t, r / 1024))
        early = [(t, r) for t, r in samples if t >= min(30, seconds / 4)]
        # The samples after the profiling time are cprof writing the profile (encoding it).
        during = [r for t, r in samples if t < seconds - step]
        grow = (during[-1] / early[0][1]) if early and during else float("nan")
        iw = next((i for i, (t, _) in enumerate(samples) if t >= early[0][0]), None) \
            if early else None
        ie = len(during) - 1
        # The second half alone: symbolizing the rare pcs met late is over by then, and
        # what still grows grows with the samples.
        half = [r for t, r in samples if t >= seconds / 2 and t < seconds - step]
        grow2 = (half[-1] / half[0]) if len(half) >= 2 else float("nan")
        lines.append("")
        lines.append("Profile written: %.1f KiB. RSS at the end of profiling / RSS after warm-up: "
                     "%.2f; over the second half alone: %.2f (%.1f -> %.1f MiB); peak while "
                     "writing the profile %.1f MiB." %
                     (size / 1024, grow, grow2, half[0] / 1024 if half else 0,
                      half[-1] / 1024 if half else 0, max(r for _, r in samples) / 1024))
        summary = ("long run %d s (%s): RSS end of profiling/warm-up = %.2f, second half "
                   "%.2f, max %.1f MiB (writing), profile %.0f KiB" % (
                       seconds, label, grow, grow2, max(r for _, r in samples) / 1024,
                       size / 1024))
        # What grows is the number of distinct samples (stack x thread): how many there were
        # at the end, and how many were new after the warm-up. The file holds no times, but
        # the workload is steady: with a fraction f of the samples taken by the warm-up, a
        # sample seen c times was already there with probability 1 - (1 - f)^c.
        if size and early and during:
            smp = profile_samples(out)
            total = sum(c for _, c in smp)
            f = min(1.0, early[0][0] / seconds)
            before = sum(1 - (1 - f) ** c for _, c in smp)
            new = len(smp) - before
            per = (during[-1] - early[0][1]) * 1024 / new if new >= 1 else float("nan")
            lines.append("")
            lines.append("At the end: %d samples in %d distinct samples (stack × thread), %d "
                         "distinct stacks; about %.0f of the distinct samples were new after "
                         "the warm-up (%.0f s), and RSS grew %.0f KiB meanwhile: %.0f bytes "
                         "per new distinct sample." %
                         (total, len(smp), len({s for s, _ in smp}), new, early[0][0],
                          during[-1] - early[0][1], per))
            if iw is not None and ie >= iw and None not in split[iw] + split[ie]:
                lines.append("Of that growth, anonymous memory (the profile model and the "
                             "other heaps): %+.0f KiB; file-backed pages (module and debug "
                             "files mapped by the symbolizer): %+.0f KiB." %
                             (split[ie][0] - split[iw][0], split[ie][1] - split[iw][1]))
                # File-backed pages are the page cache of debug files, mapped when a new pc
                # first needs them and reclaimable; the heap is what a leak would grow.
                summary += ("; anonymous RSS end/warm-up = %.2f (%.1f -> %.1f MiB)" %
                            (split[ie][0] / split[iw][0], split[iw][0] / 1024,
                             split[ie][0] / 1024))
            summary += ("; %d distinct samples, %.0f B of RSS per new distinct sample" %
                        (len(smp), per))
        report.append(summary)
    lines.append("")
    return lines


DESIGN_NOTES = """## Where the time goes, and what cprof does about it

Measured with `perf record`, `perf trace -s` and `strace -c` on cprof itself, dumping the
1003-thread target, and with small C programs on this machine. Two facts of this VM (a
paravirtualised guest) shape everything: a system call costs about 1 µs of entry and exit
plus its work (open of a `/proc` file 4 µs, `pread` of `status` 6 µs, a single
`process_vm_readv` 20 µs whatever its size), and the first touch of a fresh page costs 28 µs.
Populated in bulk with `MADV_POPULATE_WRITE` a page costs 1-3 µs, but its first touch from
user space still costs about 13 µs (the hypervisor's shadow page tables are filled lazily):
a 762 KB array zeroed once took 2.5 ms, and 30 µs the second time. So a dump counts system
calls and pages it writes.

- **Stopping threads** (eu-stack and gdb stop every thread, each stop waits for the thread to
  be scheduled, and every thread in epoll_wait or a timed recv sees EINTR): cprof stops none.
  A thread off CPU is captured *live*: its user sp and pc (and the six argument registers)
  are in `/proc/PID/task/TID/syscall`; in sweeps of 32 threads cprof reads every thread's
  `status` (state, context switches) and `syscall` line, copies all their stacks with one
  `process_vm_readv` (a vector per thread), then reads every `status` again. Unchanged means
  the thread never ran meanwhile and the copy is what a stop would have given. In a dump of
  256+ threads a CPU, the CPUs' context-switch records (a perf dummy event per CPU) replace
  that second look, and the first look reads the cheaper `stat`. A thread on a
  CPU is captured from one perf sample (a task-clock event on that thread, 10 µs of its CPU
  time): the kernel copies its registers and stack in the timer interrupt and the thread never
  leaves the CPU. ptrace (SEIZE + INTERRUPT, never SIGSTOP) remains the fallback.
- **Per-thread cost**: seven system calls a thread, six with the switch records (two opens
  relative to `/proc/PID/task`, three reads or two, two closes) and no fresh page: the sweep that captured a batch unwinds it at
  once and frees the copies for the next batch; symbolized frames are kept at their true size,
  and threads with the same stack share one array of them (1003 threads, 13 stacks);
  the heap a dump needs (measured: 250 KiB at 16 threads, 1.8 MiB at 1003) is populated in
  one `madvise` at the start, and no more than that: a page populated and never touched
  costs too. The capture is about 32 µs a thread: two opens (5 µs each), `status` read
  twice (6 µs each), `syscall` once (4 µs), the closes; no other `/proc` file gives the
  state, the name and the context switches in one read. With the switch records, about
  24 µs: `stat` once (4 µs) and no second look.
  One capturing thread per two CPUs: with four on this 2-CPU box they only contended in the
  kernel (96 ms of CPU instead of 63 for the same dump).
- **After the captures**: what threads share is looked up once a dump: each pc's symbols (a
  memo by pc: the symbolize phase of 1003 threads halved), each lock word's owner (a hundred
  waiters on one mutex, one read of the target's memory), each fd's description. A socket is
  described from a copy of the fd (`pidfd_getfd`: names, TCP state, timeouts) instead of
  `/proc/PID/net/tcp`, whose every read walks all of TCP's connection table. Who holds a
  pipe's other end is one walk of every process's fd directory a dump, each directory read
  with one `getdents64` and its links relative to it. The threads are listed a second time
  only when the thread count changed. A thread that eu-stack or gdb stopped earlier sleeps
  on in `restart_syscall`; its stack names the call, so its `wchan` is not read. The
  frames are symbolized against the maps read before the captures, which the unwinding used
  (a second read of a 2000-line maps file cost 1.3 ms).
  Together with cheaper string formatting, a 1003-thread dump's CPU went from 79 to 63 ms
  (medians of 10 alternating runs on a loaded machine).
- **Kernel symbols**: `/proc/kallsyms` is formatted by the kernel on every read (40-80 ms);
  the parsed table is kept per boot in the cache directory and mapped by later profiles.
- **Symbolization**: Debian's libc6-dbg has compressed DWARF, which libdw inflated (10 MB) in
  every process; cprof keeps one decompressed copy per build ID under `~/.cache/cprof`. And
  what DWARF said about each address is kept there too (`sym1/BUILDID`), so a later dump that
  meets known addresses never loads the DWARF at all.
- **The target's other threads**: a dump works for tens of milliseconds without sleeping; on
  two CPUs, one of them taken by the target's busy thread, the heartbeat thread woke 2-3 ms
  late. cprof asks for a 100 µs time slice (`sched_runtime`, Linux 6.12+), so that a waking
  thread preempts it: 0.7 ms, as with eu-stack (an earlier version that walked every
  process's fds on a second thread, to name who holds the other end of pipes, made it 3 ms).
- **libunwind**: its global cache lock masks all signals around every step, two
  `sigprocmask` calls a step (33 a profile sample). cprof answers libunwind's calls without a
  system call (its own signal handlers never unwind): `cprof record`'s CPU at 999 Hz halved.
- **Start-up**: libdw, libelf, zlib, protobuf-c and libsupc++ are linked in (not loaded and
  relocated at each start; `prefer_static` in `meson.build`): 8.2 → 5.0 ms for
  `cprof --version`; loading and relocating the nine shared objects was a fifth of a
  16-thread dump's CPU time.
- **Output**: the JSON or text of a thousand threads is formatted in 16 KiB pieces into one
  reused buffer and handed to a 64 KiB stdio buffer; pcs, offsets and lines are formatted
  without printf (writing 1003 threads of JSON: 2.8 → 1.9 ms).
- **Sampling**: on this VM the timer interrupt that takes a sample costs the sampled thread
  about 47 µs, for perf as for cprof (see the cost per sample above); the stack copy is a
  few µs of it. cprof asks the kernel for nothing perf dwarf does not: the same 8 KiB user
  stack copy and registers per sample.
""".splitlines()

DESIGN_FIGURES = """## Design figures, and where each applies

The figures behind choices in the code, each under the code it applies to; the comments there
state only the contract and the reason. They were measured once while the code was written, on
the project's test machine (a paravirtualised guest, 2 CPUs) unless said otherwise, not by this
run.

### Target access (src/target/)

- **Reading target memory** (`mem.c`, `struct cp_mem`): a `process_vm_readv` call costs about
  20 µs whatever its size (it pins the other process's pages); a `pread` of `/proc/PID/mem`,
  5 to 9 µs. A dump reads target memory a few hundred times (lock words, timeouts,
  unwinding), so the mem file is opened once per dump and every read is a `pread`.
- **The live sweep** (`capture_sweep.c`, `cp_capture_live_many`): one `process_vm_readv` per
  thread costs about 20 µs; one call for 64 stacks, 1 to 5 µs a stack.
- **The first look** (`capture_live.c`, `cp_live_read_status`): `/proc/PID/task/TID/stat` is a
  third cheaper for the kernel to write than `status`: 4 µs instead of 6.
- **Context-switch records** (`switch_watch.c`; the dump's `SWITCH_WATCH_PER_CPU`, 256 threads
  a CPU): they spare each live capture its second look at the thread's status, 6-7 µs of the
  40 or so a thread costs, but cost an event and a ring per CPU: about 0.2 ms per CPU warm,
  1 to 1.5 ms cold within a dump (open, map, unmap, close). Worth it from about 200 threads a
  CPU. At 1003 threads on 2 CPUs, 21 alternating runs: 50.4 -> 47.4 ms wall and 71.2 ->
  64.0 ms CPU (the machine slow). A 1003-thread dump wrote at most 400 switch records on one
  CPU; a ring of 8 pages holds 1365.
- **The one-sample capture** (`capture_sample.c`): a ring of 8 pages instead of 32 took 0.1 ms
  instead of 0.2-0.3 ms to set up; a ptrace stop holds a running thread 0.1 to several ms on
  a loaded machine (cprof must be scheduled twice). The ring is mapped with `MAP_POPULATE`:
  a first touch of each page is a fault, dear on some virtual machines.

### Dump (src/dump/, cmd/dump.c)

- **Capturing threads** (`dump_capture.c`, `dump_helper_count`, at most half the CPUs): on
  2 CPUs with one target thread spinning, 1003 threads took 40 ms wall and 63 ms CPU with one
  capturing thread, 46-50 ms and 96 ms with four (they only contended in the kernel).
- **Unwinding each batch on the capturing thread** (`dump_unwind.c`) and freeing its copies:
  copies of every thread kept to the end would each touch fresh pages, which are dear on some
  virtual machines.
- **Listing the threads again** (`dump_capture.c`, `dump_capture_newcomers`): a listing of
  `/proc/PID/task` costs as much as a tenth of a dump of a thousand threads (the kernel looks
  every entry up), so the process's thread count decides first whether to list.
- **Reading the maps in pieces** (`src/target/maps.c`, `cp_maps_read`): the maps of a process
  with a thousand threads are 180 KB of text; read whole (the buffer doubling as it grows),
  half a megabyte of fresh pages.
- **Maps for symbolizing** (`dump_symbolize.c`): the dump symbolizes against the maps read
  before the captures (those the stacks were unwound against); a second read cost 1.3 ms at
  1003 threads (two mappings a thread).
- **Shared frames arrays** (`unwind/stack_memo.c`, `dump_symbolize.c`): at 1003 threads in 13
  distinct stacks, one frames array per distinct stack instead of one per thread spares
  350 KB of fresh pages.
- **Unwind results** (`unwind/unwind.h`, `struct cp_unwind_result`): only the header is reset
  per stack; zeroing the whole 4 KB result twice a thread was 3% of the CPU of a dump of a
  thousand threads.
- **Short time slice** (`cmd/dump.c`, `sched_runtime` 100 µs, Linux 6.12+): a thread of a
  16-thread target that sleeps 1 ms in a loop woke 2-3 ms late during a dump; with the short
  slice, 0.7 ms late.
- **Heap prefault** (`src/base/util.c`, `cp_heap_prefault`; the estimate in `cmd/dump.c`,
  512 KiB + 2 KiB a thread): a first touch of a heap page cost 28 µs, against 2 µs a page when
  the kernel fills the same range in one `madvise(MADV_POPULATE_WRITE)`. A dump of 1000
  threads touches about 3000 fresh pages: 80 ms of faults for 150 ms of work. Measured without
  the prefault, the heap's page faults came to 250 KiB at 16 threads and 1.8 MiB at 1003
  threads; a page populated but never touched costs 0.3 ms a MiB, hence no more than the
  estimate.
- **String buffer flushing** (`src/base/util.h`, `CP_STRBUF_FLUSH_AT`): every fresh page costs
  8-16 µs, hence one small buffer, flushed and reused.

### Profiles (src/profile/, cmd/attach.c, cmd/record.c)

- **Wakeups of the reader** (`cmd/record.c`, `cmd/profiling.c`; `cp_session_wake_on` in
  `session.h`): each wakeup costs tens of µs of CPU; a 99 Hz record of a few seconds woke 45
  times when it looked every 100 ms. Hence: wait as long as nothing needs cprof (the pidfd
  ends the wait; the rings wake the reader when half full), 250 ms with a progress line on a
  terminal, 1000 ms otherwise, 100 ms only without `pidfd_open` (Linux before 5.3).
- **Sampler rings** (`sampler.c`, `ring_bytes_for`): a page the guest has not used for a
  while costs tens of µs; a second's worth of ring, 1 MiB per CPU at 99 Hz, was 3-5 ms of
  each ring's mmap (512 KiB: 0.1-0.4 ms), a tenth of a short record's CPU.
- **DWARF stack size** (`sampler.h`): at 10 kHz, 8-12 KiB copies cost what registers alone
  cost (about 44 µs a sample there), 16 KiB 8 µs more and 32 KiB 10 µs more.
- **libunwind's signal mask** (`unwind/unwind.c`, the `sigprocmask` interposer): its
  `sigprocmask` pairs (33 calls a profile sample) were a third of cprof's processing per
  sample, and a call per thread of a dump.

### Symbols (symbolize/, src/base/)

- **Kernel symbols** (`ksyms.c`, `ksym_cache.c`): `/proc/kallsyms` is 120-150k lines (5 MB)
  that the kernel formats anew on every read, 40-80 ms: the largest fixed cost of a profile
  that meets a kernel frame. Hence read at the first kernel frame, never at start, and kept
  per boot in the cache. Parsed by hand in 256 KiB chunks: `sscanf`, `strtok` and a `strdup`
  per symbol were a quarter of a short record's CPU.
- **Symbolization disk cache** (`sym_cache.c`): a first touch of each fresh page, one at a time
  in `read()`, costs tens of µs on a virtual machine, and libc's cache file is a few hundred
  KiB: hence read into memory populated in one go.
- **`.debug_aranges`** (`sym_dwarf.c`): libdw's `dwarf_getaranges` reads every unit's DIE on
  the way, tens of milliseconds for libc's 2000 units, where a dump needs a handful: hence
  cprof's own parse.
- **Two hash tables** (`src/base/util.h`: `cp_itab` beside `cp_htab`): `cp_itab` (4-byte
  slots, load up to 3/4, hash recomputed on growth) serves the profile's two tables that grow
  with distinct stacks (the stack trie's nodes, 8 bytes each, and the distinct samples);
  `cp_htab` (8-byte slots: index and stored hash, load up to 1/2) every other table. Slot
  memory for N entries (6 December 2026):

| entries | the entries (8 B) | cp_itab | cp_htab |
|---|---|---|---|
| 100 000 | 0.8 MiB | 1.0 MiB | 2.0 MiB |
| 1 000 000 | 7.6 MiB | 8.0 MiB | 16.0 MiB |
| 3 000 000 | 22.9 MiB | 16.0 MiB | 64.0 MiB |

With `cp_htab` the index would cost two to four times what it indexes; with `cp_itab` about as
much.

### Go programs (symbolize/, unwind/)

- **Go dumps** (measured under load average 8-17, so CPU times, not wall times): a dump of
  `gowaits` (Go 1.19, cgo, 11 threads, 2 spinning goroutines) cost eu-stack 16.4-17.3 ms of
  CPU. cprof before: 24.8-26.9 ms, 2-3 threads stopped; after, first dump of a build 24.6 ms,
  later dumps 3.8-4.3 ms, none stopped. Two thirds of the time before went to symbolizing: a
  Go binary has no GNU build ID, so the symbol cache was never used, and libdw inflated its
  compressed DWARF (0.6 -> 2.4 MB, 1 MB of it `.debug_loc`) on every dump (`inflate_fast` 24%,
  `adler32` 3%, `__libdw_find_attr` 8%, `read_srclines` 7%). The cache is now keyed by the Go
  build ID. The stops were cgo threads whose walk went past `runtime.mstart` into C start code
  without CFI: walks now end where Go's traceback ends. Each such stop cost 40-70 us idle,
  2-17 ms under load.

### Off-CPU profiles (src/profile/session_offcpu.c, session_mutex.c)

- `block` costs the kernel's user-stack copy at every switch out, about 5 us a switch here:
  `pingpong` at 10,000 round trips a second (about 20,000 switches a second) used 0.37 s of
  CPU in 4 s alone, 0.82 s under `--profile block` (8 KiB copied a switch) and 0.68 s with
  `--unwind fp`, none of its throughput lost and no record dropped (rings of 32 MiB a CPU);
  cprof's own CPU 3.7 us a record. Unpaced (200,000+ switches a second) the kernel dropped
  about half the records (reported as lost): such rates want `--unwind fp` or a smaller
  `--stack-size`. Under `perf record -e sched:sched_switch --call-graph dwarf` the same paced
  target used 0.208 CPU-s/s against cprof's 0.150 (alone 0.091).
- `wall` takes its on-CPU part from cpu-clock ticks, 2 to 12% of which went missing on a
  loaded machine; off-CPU threads were within 1% of the window.
- `mutex`: the total delay was within 10% of what `mutexes` measured with its own clock.

### Go without DWARF (symbolize/sym_gopclntab.c)

- Naming a stripped Go binary's frames from `.gopclntab` costs about as much as the symbol
  tables did: symbolize time 0.7 ms before (frames unnamed), 1.1-1.3 ms with an empty cache,
  0.6-0.7 ms warm, on a stripped `gowaits` (12 threads) and Debian's `prometheus` (7 threads).

### serve (src/serve/metrics.c)

- One `/metrics` scrape of a 1003-thread target reads `/proc` only: each thread's `stat` and
  `syscall` (through a held `/proc/PID/task` fd, one read each), `wchan` where the wait kind
  needs it, lock words and fd links; nothing is stopped and no stack copied. About 2100
  openat, 2000 read and 2100 close a scrape, 20 ms of serve's CPU (1 user, 19 system), spread
  over the kernel's `/proc` lookups and `do_task_stat`'s formatting. On an idle machine 21
  scrapes took 20.0 / 20.4 / 26.0 ms (min / median / max); under load average 13, 36 / 56 / 133
  ms (the scrape waits for a CPU). Reading each file until EOF had cost twice the reads.

### record --leaks (src/target/tracer.c)

- On a program that leaks nothing (CPU times, 5 alternating runs under load average 12-15): a
  system call costs 175-193 ns plain and 228-241 ns under `--leaks` (the seccomp filter that
  stops `exit_group` is checked on each); creating and joining a thread 20-25 us plain, 30-53 us
  under `--leaks`, and cprof spends 55-100 us of its own CPU per thread created (two ptrace
  stops: the creator's clone event, with a copy of 16 KiB of its stack, and the new thread's
  first stop). A process that exits leaving nothing costs one listing of its threads and fds.

### Calling into a live process (src/inject/)

Measured on `tests/targets/inject_target` (11 threads, all blocked but one), kernel 6.18,
glibc 2.36, AVX-512 (the thread's xstate is 2432 bytes: the frame left below its stack pointer
is about 2.9 KiB).

- One park + call + put back, 50 calls in one session, release build: median 0.29 ms (min 0.27,
  p90 0.34), of which the park (choose a thread, stop it, walk and name its stack) 0.21 ms; ASan
  build 0.56 ms. A call is about ten ptrace round trips (seize, interrupt, registers, xstate,
  mask, the call page mapped through libc's `syscall; ret` and written through /proc/PID/mem,
  the call followed with PTRACE_SYSCALL to the stub's getpid, the munmap, put back, detach).
- `cp_inject_load` of a new library: 1.8-4.0 ms release (two ptrace stops per system call the
  loader makes, about 30 for a small library); a library already loaded is found in the maps,
  0.13 ms, no park.
- 50 calls leave the target's fds, threads, mapping count and VmSize exactly as they were.

### Heap profiles of native programs (src/agent/, src/profile/heap_*.c)

- Cost to the target (`bench/heap.py`, 10M malloc/free pairs of 16-256 bytes in one thread, a
  loop that does nothing else, 8.5-9 ns a pair plain; thread CPU time; two runs of the
  section, 5 and 7 rounds, 2026-12-06 18:40 and 19:15 UTC): agent preloaded at the default
  rate 1.104-1.115x, the hooks alone (rate 2^40) 1.053-1.075x; in one process, attached by
  cprof 1.064-1.106x its runs before, after detach 0.94-0.99x; heaptrack 111-125 ns
  (12.7-14.1x); a uprobe counter on libc's malloc 828-868 ns (95-98x). The spread between
  processes (ASLR moves libc, the heap and the stack against each other) is about 5% of the
  plain loop, as large as what is measured: only one process taking turns tells builds apart
  (below). With the workload pinned to the last CPU and cprof to the first (as `bench/run.py`
  pins, since the second session of 2026-12-06; 9 rounds, load average 11 from other tenants):
  preloaded 1.089x (fastest to fastest 1.076x), hooks alone 1.089x (1.032x), attached 1.112x
  its runs before (1.142x; 1.086x plain's median), after detach 0.998x.
- Generated fast paths (`src/agent/stubs.c`, the fifth session of 2026-12-06): malloc's is
  `sub %rdi, %fs:COUNTDOWN; jns REAL_MALLOC`, free's five instructions and `je REAL_FREE`, in
  a page within 2 GiB below the allocator, each with an absolute jump to the compiled slow
  path when the test fails. One conditional jump, taken in the common case, straight into the
  allocator replaces a test whose branch has once been taken plus an indirect jump. In one
  process taking turns (a GOT switched between libc, the compiled shapes and the generated
  ones, 15 rounds, three processes): compiled 1.126-1.159x plain, generated 1.058-1.074x;
  malloc's generated alone about 5 points of that, free's about 3. `bench/heap.py`, 11 rounds
  (load average 1-10): preloaded 1.055-1.080x (the compiled hooks in the same runs
  1.092-1.112x), the hooks alone 1.010-1.029x, attached (three attaches a process, each to the
  runs around it) 1.048-1.070x, after detach 0.974-0.976x; a rate scan (separate processes,
  9 rounds) 1.03x at 2 MiB and 512 KiB, 1.06x at 128 KiB and 32 KiB. Unlike the earlier
  run-time hook below (a test, then `jmp rel32`), the generated path has no branch that is
  taken only at a sample.
- Per sample, four system calls became none in the common case: the stack copy is a memcpy
  bounded by the thread's stack mapping (learnt once per thread from /proc/self/maps), the
  reader's pidfd is polled at most every 10 ms, pid and tid are cached: at rate 16384 with an
  8-byte copy, 1.8 us -> 0.16 us a sample. The copy uses non-temporal stores (the target's
  caches kept) and ends where the thread's frames end (the main thread's `__libc_stack_end`,
  another thread's TCB, plus 256 bytes): the main thread's arguments, environment and auxiliary
  vector, a thread's static TLS are not copied (kilobytes a sample, which the ring and cprof's
  unwinder no longer carry).
- A never-cleared bit filter of sampled addresses made every later free of a once-sampled
  address take the slow path (tcache hands the same addresses out again and again: 8.9 -> 13.7
  ns a pair); counters that go down at the sampled block's free: 9.6.
- Where the cost to the target goes (no hardware counters in this VM; agent builds A/B in ONE
  process that dlopens each and starts/stops them round by round, 11-25 rounds of 10M pairs,
  paired ratios to the plain rounds between them):
  - Code placement: the same hooks at the linker's addresses (malloc's fast path straddling a
    64-byte line) 1.11-1.125x, at a 64-byte-aligned start 1.044-1.087x, three repeats. The
    hooks are `aligned(64)` and free's filter cell is one shift and a mask, which keeps free's
    fast path (7 instructions) within 32 bytes.
  - The extra jump itself is nearly free: a GOT pointing at a one-instruction trampoline costs
    1.036-1.057x whether its jump is a direct `jmp rel32` to libc or `jmp *[rip]` (the
    trampoline idea of the last session: no gain), and a hook whose test is never taken costs
    nothing measurable (8.76 ns against 8.75 plain, preloaded, ten runs).
  - What costs is a conditional branch that has ever been taken. malloc's countdown test is
    taken at every sample (and at a thread's first allocation): 9.28 ns against 8.76 when it
    never is. free's filter test is taken when a sampled block is freed: from then on the loop
    pays 0.25 ns a pair more (9.28 -> 9.53 with about six samples in the run), although no
    sampled path runs after that (the filter and the set are back to empty, checked). Seen
    the same with the test's slow path in a cold section, a 64-byte pad between the test and
    the jump, the test inverted (worse), a table of jump targets indexed by the filter cell
    (an indirect jump with two targets: the same 0.25 ns), and a cmov-chosen target (worse
    by 0.8 ns). It looks like the branch predictor's: a conditional branch never taken costs
    no predictor entry, one taken once does, in a loop with few branches. Any sampler that
    tests per call pays it; the two tests are the whole of what is left above the jump.
  - A malloc hook without a conditional branch, tried and left out: it counts down, and when
    the countdown runs out replaces its caller's return address (conditional moves) so that
    the real malloc returns into the agent with the block. Preloaded, 20 runs each at the
    default rate: the branch hook 1.09x, this hook with one slot for the redirected call
    1.064x, with slots safe against a signal handler's malloc inside a sampled one (a depth
    counter; or a slot chosen by conditional move, slower still) 1.084x; in one process
    taking turns 1.075x / 1.066x / 1.108x. The safe form gains nothing measurable, and
    rewriting return addresses breaks under shadow stacks and leaves an unwinder inside the
    sampled call without its caller. Keeping the caller's return address on the stack instead
    (a conditional move picks the stack pointer: pushed trampoline and size, or not) needs no
    slot and unwinds cleanly, but every stack access in malloc then waits for the countdown:
    14.5 ns a pair. Also no better: one test shared by both hooks (each calls a common check:
    11.1 ns), and a malloc hook generated at run time next to libc whose last jump is a direct
    `jmp rel32` (9.9 against 9.84 at the default rate: the taken-once test costs the same
    whatever jump follows it).
  - The sampled path itself: 0.14 us a sample at the margin (rate scan 16384-524288), about
    0.02 ns a pair at the default rate; the first sample of a thread ~100 us (its stack
    mapping looked up in /proc/self/maps); the reader poll every 10 ms 0.3-0.4 us.
- cprof's side: 3.0-3.4 us of CPU per sampled allocation (copy the record out, unwind its
  stack copy, symbolize once per (pid, address), count the block), release build; the ring is
  looked at every 10 ms. The 8 MiB ring holds about 1,000 records of 8 KiB stack: nothing lost
  at the default rate on 16 threads of malloc_stress; at `--rate 65536` on a loaded 2-core
  machine 38% of the records were lost (counted, said in the summary and the profile).
- Accuracy (`tests/targets/heap_leak`, default rate): leak_a's 200 MiB in use estimated at
  188.5-211.6 MiB over seven runs (one 1 MiB sample stands for 1/(1-e^-2) = 1.157 blocks: a
  standard deviation of about 2.8%), churn_b's 5 GB allocated at 4.99-5.30 GB, none in use.
- One attach/detach cycle on the 16-thread malloc_stress (ASan cprof, loaded machine): 1.7-1.9
  s, most of it the dlopen of the agent (0.3-0.4 s) and its start (0.4 s) inside the target;
  100 cycles: the sampler's mappings 8224 KiB after the first and the last.
- Real programs: redis-server 7 (shared libjemalloc; 48-50 GOT entries patched in 13 modules)
  loading 100k keys, 12.7-16.7 MiB in use at zmalloc, createStringObject, _sdsnewlen,
  dictAddRaw, setCommand; a C++ cache 101.8 MiB (100 expected) at Cache::grow under operator
  new; Debian's python3.11 (no PIE, takes malloc's address) 97.2 MiB (95.4) at
  PyByteArray_Resize.

### Go runtime reader and goroutine dumps (src/golang/, src/dump/dump_go*.c)

- 10,002 goroutines (`bench/go_dump.py`, `bench/targets/gomany`, release build, quiet machine):
  `cprof dump` 77 ms wall (65 ms CPU), `--format json` 102 ms; gdb `info goroutines` (no
  stacks) 886 ms (11.5x), Delve 1.20.2 `goroutines` 840 ms (10.9x), `goroutines -t 64` 3.7 s
  (48x), gdb `goroutine all bt` about 72 s (940x; measured on 302 goroutines and scaled).
- Where the time goes (ASan build, one run): allgs 0.03 ms, the first read of 10,018 gs (4 MB,
  neighbours coalesced into few ranges) 11 ms, decoding 4 ms, the live stacks
  (`process_vm_readv`, 1024 ranges a call) 21 ms, the second read of the gs 9 ms, channels 2
  ms. One pread per g, stack and sudog had cost 350 ms; merging stacks 8 KiB apart into one
  range was slower (70-96 ms).
- A stripped binary's globals: `.gopclntab` names a runtime function's code, whose RIP-relative
  operands into the data sections are scanned; the n-th reference is the global (Go 1.19:
  `runtime.allgadd` gives allgs, allgptr, allglen; `runtime.goroutineheader` the status and
  wait-reason strings; 18 more for profiles and diagnosis), each checked against an unstripped
  build's `go tool nm`. Versions without a table learn the layout of g from the goroutines
  (kubectl go1.22/1.23, cbtemulator go1.24 on this machine): 40 ms of CPU for 10,000
  goroutines against 20-30 ms with a table.
- Agreement with Go's own `debug=2` dump: 1021 goroutines, same ids and statuses, 2062 of 2062
  frames on plain, `-s -w`, PIE and cgo builds; Debian's prometheus 74 of 74 frames of its 22
  stable goroutines; its `debug=1` groups byte-identical (tabs aside).

### Go profiles from the runtime's records (src/golang/go_prof.c, src/profile/go_profile.c)

- Against the program's own `/debug/pprof` at the same GC cycle (`go tool pprof -top`):
  goheap heap inuse_space 34564.93kB both, allocs alloc_space 164.10MB both, block delay
  254.88 ms vs 254.87 ms (cprof measures the TSC rate over 100 ms when the runtime has not),
  mutex 51.72 ms both; Debian's prometheus heap 4100.58kB both.
- `attach --profile heap --seconds 0` on prometheus: 0.04-0.08 s and 20 MB for the whole
  command; a bucket is one 432-byte read of /proc/PID/mem. Through serve: heap 20-35 ms,
  `/metrics` with go_goroutines for two targets 93-193 ms (the runtime is opened per scrape).

### Go diagnosis (src/golang/go_diag*.c)

- The diagnosis adds nothing measurable to a 10,000-goroutine dump on 2 channels; with 10,000
  channels to read (each goroutine sending on its own) the Go part of the dump took 124-145 ms
  (element type names memoized by type address).
""".splitlines()


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs (%s), kernel %s" % (platform.machine(), os.cpu_count(), model,
                                            platform.release())


def tool_versions():
    out = []
    for argv in (["eu-stack", "--version"], ["gdb", "--version"], ["perf", "--version"]):
        try:
            p = subprocess.run(argv, capture_output=True, text=True)
            out.append(p.stdout.splitlines()[0] if p.stdout else argv[0] + ": ?")
        except OSError:
            out.append(argv[0] + ": not installed")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build-release"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter long run")
    ap.add_argument("--only", default="dump,sampling,symbols,offcpu,heap,long")
    ap.add_argument("--long-seconds", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "docs" / "PERFORMANCE.md"))
    args = ap.parse_args()

    build = pathlib.Path(args.build).resolve()
    cprof = str(build / "cprof") if (build / "cprof").exists() else str(build / "cmd" / "cprof")
    for tool in ("eu-stack", "gdb", "perf"):
        if not shutil.which(tool):
            print("bench: %s is not installed (make bench installs it)" % tool)
            return 1
    targets = build_targets(build / "bench")
    only = set(args.only.split(","))
    report = []
    sections = []
    started = datetime.datetime.now(datetime.timezone.utc)
    if "dump" in only:
        print("dump:")
        sizes = [13, 100] if args.quick else [13, 100, 1000]
        sections += bench_dump(cprof, targets, args.runs, sizes, report)
    if "sampling" in only:
        print("sampling:")
        sections += bench_sampling(cprof, targets, args.runs, [99, 999], report)
        sections += bench_sample_cost(cprof, targets, args.runs, report)
    if "symbols" in only:
        print("symbols:")
        sections += bench_symbols(cprof, targets, args.runs, report)
    if "offcpu" in only:
        print("off-CPU profiles:")
        import offcpu
        sections += offcpu.bench_offcpu(cprof, build / "bench", report,
                                        seconds=3 if args.quick else 5)
    if "heap" in only:
        print("heap profiles:")
        import heap
        # Its runs are 0.1 s each and the spread between processes is 5%: more of them.
        sections += heap.bench_heap(cprof, build, max(args.runs, 9), report)
    if "long" in only:
        print("long run:")
        for nosort in (True, False):
            sections += bench_long(cprof, targets, 60 if args.quick else args.long_seconds,
                                   report, nosort)

    print("\nratios:")
    for r in report:
        print("  " + r)
    doc = ["# cprof performance", "",
           "Written by `make bench` (`bench/run.py`); do not edit by hand.", "",
           "- date: %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
           "- machine: %s" % machine(),
           "- references: %s" % "; ".join(tool_versions()),
           "- runs per figure: %d (median, min–max)" % args.runs, "",
           "## Summary (ratios measured in this run)", ""]
    doc += ["- " + r for r in report] + [""] + sections + DESIGN_NOTES + [""] + DESIGN_FIGURES
    pathlib.Path(args.out).write_text("\n".join(doc) + "\n")
    print("wrote %s" % args.out)
    shutil.rmtree(TMP, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
