#!/usr/bin/env python3
"""Compare two cprof binaries on the same machine, their runs alternating.

  python3 bench/compare.py --old /tmp/cprof-old --new build-release/cprof [--runs N]
                           [--only dump,profile] [--threads 1003,16] [--seconds 5] [--hz 99,999]
                           [--out FILE]

  dump     `cprof dump -p PID --format json -o /dev/null` of bench/targets/mixed.c with 1003 and
           16 threads (as make bench starts it): wall and CPU time of the whole command, and
           the dump's own time as cprof reports it (CPROF_STATS).
  profile  `cprof attach -p PID --seconds 5 -F HZ` of bench/targets/fixed_work.c (busy threads
           forever): cprof's own CPU time, and that CPU per sample taken.

Old and new take turns within each run, the order flipping from one run to the next (old,
new, new, old, ...), after one warm-up run of each, so that a change in the machine's load hits
both alike. Each binary has a symbol cache folder of its own. Prints, for each figure, the
median (min–max) of each binary and the new/old ratio of the medians, as a Markdown table.
The targets are built and the helpers (Target, timed_cpu, ...) taken from bench/run.py.
"""
import argparse
import datetime
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ in bench/ from importing run.py


def load_bench_run():
    """bench/run.py as a module (it creates its own temporary folder, bench.TMP, on import)."""
    spec = importlib.util.spec_from_file_location("cprof_bench_run", HERE / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = load_bench_run()

STATS_RE = re.compile(r"stats: dump_us=(\d+) threads=(\d+)")
SAMPLES_RE = re.compile(r"(\d+) samples \((\d+) lost\)")


def turns(binaries, run):
    """The order of the binaries in run number run: flipped every other run."""
    return binaries if run % 2 == 0 else list(reversed(binaries))


def bench_dump(binaries, targets, runs, sizes, envs):
    """Figures per (threads, binary): wall s, CPU s, cprof's dump time s."""
    rows = []
    for total in sizes:
        t = bench.Target([targets["mixed"], str(total - 3)])
        try:
            t.stats()
            def argv(exe):
                return [exe, "dump", "-p", str(t.pid), "--format", "json", "-o", "/dev/null"]

            for name, exe in binaries:
                bench.timed(argv(exe), env=envs[name])  # warm-up: page cache, disk caches
            res = {name: dict(wall=[], cpu=[], dump=[], threads=set()) for name, _ in binaries}
            for run in range(runs):
                for name, exe in turns(binaries, run):
                    # Let the target settle, as make bench does.
                    time.sleep(0.5)
                    t.stats()
                    wall, cpu, rc, _, err = bench.timed_cpu(argv(exe), env=envs[name])
                    if rc != 0:
                        print("  %s dump failed (exit %d): %s" % (name, rc, err.strip()[:200]))
                        continue
                    r = res[name]
                    r["wall"].append(wall)
                    r["cpu"].append(cpu)
                    m = STATS_RE.search(err)
                    if m:
                        r["dump"].append(int(m.group(1)) / 1e6)
                        r["threads"].add(int(m.group(2)))
            for name, _ in binaries:
                r = res[name]
                print("  %d threads %-4s wall %s s, CPU %s s, dump %s s (threads seen: %s)" % (
                    total, name, bench.fmt_range(r["wall"]), bench.fmt_range(r["cpu"]),
                    bench.fmt_range(r["dump"]), sorted(r["threads"])), flush=True)
            rows += [("dump %d threads: wall s" % total, {n: res[n]["wall"] for n in res}),
                     ("dump %d threads: CPU s" % total, {n: res[n]["cpu"] for n in res}),
                     ("dump %d threads: dump time s (cprof's own)" % total,
                      {n: res[n]["dump"] for n in res})]
        finally:
            t.stop()
    return rows


def bench_profile(binaries, targets, runs, seconds, rates, work_threads, envs):
    """Figures per (rate, binary): cprof's CPU s for one attach, and its CPU µs per sample."""
    rows = []
    work = subprocess.Popen([targets["fixed_work"], str(work_threads), "forever"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = bench.TMP / "compare.pb.gz"
    try:
        work.stdout.readline()  # READY
        for hz in rates:
            def argv(exe, secs, hz=hz):
                return [exe, "attach", "-p", str(work.pid), "--seconds", str(secs), "-F",
                        str(hz), "-o", str(out)]

            for name, exe in binaries:
                bench.timed(argv(exe, 1), env=envs[name])  # warm-up: symbol caches
            res = {name: dict(cpu=[], per_sample=[]) for name, _ in binaries}
            for run in range(runs):
                for name, exe in turns(binaries, run):
                    _, cpu, rc, _, err = bench.timed_cpu(argv(exe, seconds), env=envs[name])
                    if rc != 0:
                        print("  %s attach failed (exit %d): %s" % (name, rc,
                                                                    err.strip()[:200]))
                        continue
                    res[name]["cpu"].append(cpu)
                    m = SAMPLES_RE.search(err)
                    if m and int(m.group(1)):
                        res[name]["per_sample"].append(cpu / int(m.group(1)))
            for name, _ in binaries:
                r = res[name]
                print("  %d Hz %-4s cprof CPU %s s, %s us per sample" % (
                    hz, name, bench.fmt_range(r["cpu"]),
                    bench.fmt_range(r["per_sample"], 1e6, "%.1f")), flush=True)
            what = "attach %g s at %d Hz (%d busy threads)" % (seconds, hz, work_threads)
            rows += [("%s: cprof CPU s" % what, {n: res[n]["cpu"] for n in res}),
                     ("%s: cprof CPU µs per sample" % what,
                      {n: [v * 1e6 for v in res[n]["per_sample"]] for n in res})]
    finally:
        work.kill()
        work.wait()
    return rows


def table(rows):
    """The Markdown table: figure, old and new median (min–max), new/old of the medians."""
    lines = ["| figure | old, median (min–max) | new, median (min–max) | new/old |",
             "|---|---|---|---|"]
    for what, by in rows:
        old, new = by.get("old", []), by.get("new", [])
        fmt = "%.1f" if "µs" in what else "%.3f"
        ratio = "%.3f" % (bench.med(new) / bench.med(old)) if old and new and bench.med(old) \
            else "n/a"
        lines.append("| %s | %s | %s | %s |" % (what, bench.fmt_range(old, 1.0, fmt),
                                               bench.fmt_range(new, 1.0, fmt), ratio))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", required=True, help="the reference cprof binary")
    ap.add_argument("--new", required=True, help="the cprof binary under test")
    ap.add_argument("--runs", type=int, default=5, help="runs of each binary per figure")
    ap.add_argument("--only", default="dump,profile")
    ap.add_argument("--threads", default="1003,16",
                    help="thread counts of the dump target (at least 4 each)")
    ap.add_argument("--seconds", type=float, default=5, help="length of each attach")
    ap.add_argument("--hz", default="99,999", help="sampling rates of the profile runs")
    ap.add_argument("--work-threads", type=int, default=2,
                    help="busy threads of the profiled target")
    ap.add_argument("--out", help="also write the table (Markdown) to this file")
    args = ap.parse_args()

    binaries = []
    for name, path in (("old", args.old), ("new", args.new)):
        exe = shutil.which(path) or path
        if not os.access(exe, os.X_OK):
            print("compare: %s binary %s is not executable" % (name, path), file=sys.stderr)
            return 2
        binaries.append((name, str(pathlib.Path(exe).resolve())))
    sizes = [int(x) for x in args.threads.split(",") if x]
    if args.runs < 1 or any(n < 4 for n in sizes):
        print("compare: --runs must be at least 1 and --threads at least 4", file=sys.stderr)
        return 2
    only = set(args.only.split(","))
    envs = {}
    for name, _ in binaries:
        cache = bench.TMP / ("cache-" + name)
        cache.mkdir()
        envs[name] = dict(os.environ, CPROF_STATS="1", CPROF_CACHE_DIR=str(cache))
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        targets = bench.build_targets(bench.TMP / "targets")
        rows = []
        if "dump" in only:
            print("dump:", flush=True)
            rows += bench_dump(binaries, targets, args.runs, sizes, envs)
        if "profile" in only:
            print("profile:", flush=True)
            rows += bench_profile(binaries, targets, args.runs, args.seconds,
                                  [int(x) for x in args.hz.split(",") if x],
                                  args.work_threads, envs)
    finally:
        shutil.rmtree(bench.TMP, ignore_errors=True)
    doc = ["# cprof: old and new binaries compared", "",
           "- date: %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
           "- machine: %s" % bench.machine(),
           "- old: `%s`" % binaries[0][1],
           "- new: `%s`" % binaries[1][1],
           "- runs per figure and binary: %d, alternating (median, min–max)" % args.runs, ""]
    doc += table(rows)
    print()
    print("\n".join(doc))
    if args.out:
        pathlib.Path(args.out).write_text("\n".join(doc) + "\n")
        print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
