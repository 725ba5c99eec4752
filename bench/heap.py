#!/usr/bin/env python3
"""make bench, section "heap": what the allocation sampler (libcprof-agent.so) costs a target
that does nothing but malloc and free, side by side with heaptrack and a uprobe counter.

  python3 bench/heap.py --build build-release [--runs 9] [--pairs 10000000]

The workload is tests/targets/malloc_stress --pairs N: N malloc/free pairs of 16-256 bytes in
one thread, timed by the loop itself (ns per pair; process start-up and the agent's set-up are
outside it). Configurations, their runs taking turns:
  plain           the fixture alone
  preloaded       LD_PRELOAD=libcprof-agent.so with CPROF_AGENT (record's launch path) at the
                  default rate, 524288, and cprof's default stack copy (8 KiB), a ring that
                  holds every sample of the run (nothing dropped)
  compiled        the same with CPROF_AGENT_COMPILED_HOOKS=1: malloc's and free's compiled
                  hooks, where the agent cannot map its generated fast paths near the allocator
  never sampling  the same at a rate of 2^40: the hooks alone
  attached        the same process before, while and after `cprof attach --profile heap`
                  (three attaches; each while-attached figure against the runs around it),
                  three runs of the loop each (their median)
                  (the target waits in sigwait; each SIGUSR1 runs the loop once)
  heaptrack       Debian's heaptrack in launch mode (its -p attach drives gdb: tried once)
  uprobe count    `perf probe -x libc malloc` + `perf stat -e probe_libc:malloc`: a counter
                  on every malloc, as bcc's memleak pays on every call
The workload runs pinned to the last CPU and cprof to the first, as in bench/run.py (on this
VM the first CPU takes the interrupts and its speed swings). Prints a Markdown table: ratios are the median of per-round ratios (each run against the plain
run of its round), and fastest run against fastest run (a busy machine only adds time).
"""
import argparse
import os
import pathlib
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATE = 524288
NEVER = 1 << 40     # a rate that never samples in 10M pairs: the hooks' own cost
STACK = 8192
RING = 32 << 20
PAIRS_RE = re.compile(r"ns_per_pair=([\d.]+)")
CPUS = sorted(os.sched_getaffinity(0))
WORK_CPU, TOOL_CPU = CPUS[-1], CPUS[0]


def pinned(cpu):
    """A preexec_fn: the child and what it starts run on cpu only."""
    return lambda: os.sched_setaffinity(0, {cpu})


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(xs):
    if not xs:
        return "n/a"
    return "%.2f (%.2f–%.2f)" % (med(xs), min(xs), max(xs))


def ns_per_pair(text):
    m = PAIRS_RE.search(text or "")
    return float(m.group(1)) if m else None


def run_pairs(argv, env=None, timeout=600):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                       stdin=subprocess.DEVNULL, preexec_fn=pinned(WORK_CPU))
    return ns_per_pair(p.stdout), p


def readline_until(stream, text, timeout):
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        r, _, _ = select.select([stream], [], [], 0.2)
        if r:
            line = stream.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if text in line:
                return line
    raise RuntimeError("no %r within %ss: %s" % (text, timeout, seen[-3:]))


def waiting_fixture(exe, pairs):
    """The fixture waiting in sigwait: each SIGUSR1 runs the loop once (it prints READY first)."""
    return subprocess.Popen([exe, "--pairs", str(pairs), "--on-signal"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                            bufsize=1, preexec_fn=pinned(WORK_CPU))


def attached(cprof, exe, pairs, tmp, cycles=3, each=3):
    """In one process: (before, during, after, brackets). cprof attaches and detaches `cycles`
    times; before is the median of `each` runs of the loop before the first attach (a first,
    uncounted run warms the heap up), during and after one such median per cycle, while
    attached and after detaching. A bracket is a cycle's run while attached to the mean of the
    runs just before and after it: a machine whose speed drifts moves both alike."""
    t = waiting_fixture(exe, pairs)
    prof = None
    try:
        readline_until(t.stdout, "READY", 30)

        def one():
            os.kill(t.pid, signal.SIGUSR1)
            return ns_per_pair(readline_until(t.stdout, "ns_per_pair", 300))

        def some():
            return med([x for x in (one() for _ in range(each)) if x])

        one()   # the first run in a process pays for its heap's first pages
        plain, during = [some()], []
        for _ in range(cycles):
            prof = subprocess.Popen([cprof, "attach", "-p", str(t.pid), "--profile", "heap",
                                     "--seconds", "600", "-o", os.path.join(tmp, "heap.pb.gz")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    stdin=subprocess.DEVNULL, preexec_fn=pinned(TOOL_CPU))
            readline_until(prof.stderr, "allocation sampler started", 60)
            during.append(some())
            prof.send_signal(signal.SIGINT)
            prof.communicate(timeout=120)
            if prof.returncode != 0:
                raise RuntimeError("cprof attach exited %d" % prof.returncode)
            plain.append(some())
        brackets = [d / ((b + a) / 2) for d, b, a in zip(during, plain, plain[1:])]
        return plain[0], during, plain[1:], brackets
    finally:
        if prof and prof.poll() is None:
            prof.kill()
            prof.wait()
        t.kill()
        t.wait()


class Uprobe:
    """A uprobe on libc's malloc, created for the benchmark and deleted after it."""

    def __init__(self):
        self.libc = None
        self.ok = False
        perf = shutil.which("perf")
        if not perf:
            return
        out = subprocess.run(["ldd", "/bin/true"], capture_output=True, text=True).stdout
        m = re.search(r"libc\.so\.6 => (\S+)", out)
        self.libc = m.group(1) if m else "/lib/x86_64-linux-gnu/libc.so.6"
        subprocess.run([perf, "probe", "-q", "-d", "probe_libc:malloc"], capture_output=True)
        p = subprocess.run([perf, "probe", "-q", "-x", self.libc, "malloc"], capture_output=True,
                           text=True)
        self.ok = p.returncode == 0
        self.why = (p.stderr.strip().splitlines() or ["perf probe failed"])[-1]

    def run(self, exe, pairs):
        ns, p = run_pairs(["perf", "stat", "-x", ",", "-e", "probe_libc:malloc", "--", exe,
                           "--pairs", str(pairs)])
        m = re.search(r"^(\d+),", p.stderr, re.M)
        return ns, int(m.group(1)) if m else 0

    def close(self):
        if self.ok:
            subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:malloc"],
                           capture_output=True)


def heaptrack_attach(exe, pairs, tmp):
    """heaptrack -p on the waiting fixture: ns per pair while attached, or why not."""
    t = waiting_fixture(exe, pairs)
    ht = None
    try:
        readline_until(t.stdout, "READY", 30)
        ht = subprocess.Popen(["heaptrack", "-o", os.path.join(tmp, "ht-attach"), "-p",
                               str(t.pid)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, preexec_fn=pinned(TOOL_CPU))
        try:
            readline_until(ht.stdout, "injecting", 30)
        except RuntimeError as e:
            return "no attach: %s" % str(e)[:100]
        time.sleep(3)
        if ht.poll() is not None:
            return "heaptrack -p exited %d" % ht.returncode
        os.kill(t.pid, signal.SIGUSR1)
        return ns_per_pair(readline_until(t.stdout, "ns_per_pair", 600))
    except RuntimeError as e:
        return str(e)[:100]
    finally:
        t.kill()
        t.wait()
        if ht:
            try:
                ht.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ht.kill()
                ht.wait()


def bench_heap(cprof, build, runs, report, pairs=10_000_000):
    build = pathlib.Path(build)
    exe = str(build / "tests" / "targets" / "malloc_stress")
    agent = str(build / "src" / "agent" / "libcprof-agent.so")
    tmp = tempfile.mkdtemp(prefix="cprof-bench-heap-")
    res = {k: [] for k in ("plain", "preloaded", "compiled", "hooks", "before", "attached", "after",
                           "brackets",
                           "heaptrack", "uprobe")}
    notes = []
    env = dict(os.environ, LD_PRELOAD=agent,
               CPROF_AGENT="%d:%d:%d:%d" % (os.getpid(), RATE, STACK, RING))
    env_hooks = dict(env, CPROF_AGENT="%d:%d:%d:%d" % (os.getpid(), NEVER, STACK, RING))
    env_compiled = dict(env, CPROF_AGENT_COMPILED_HOOKS="1")
    have_ht = shutil.which("heaptrack") is not None
    up = Uprobe()
    slow_runs = min(runs, 2)
    try:
        for i in range(runs):
            ns, _ = run_pairs([exe, "--pairs", str(pairs)])
            res["plain"].append(ns)
            ns, _ = run_pairs([exe, "--pairs", str(pairs)], env=env)
            res["preloaded"].append(ns)
            ns, _ = run_pairs([exe, "--pairs", str(pairs)], env=env_compiled)
            res["compiled"].append(ns)
            ns, _ = run_pairs([exe, "--pairs", str(pairs)], env=env_hooks)
            res["hooks"].append(ns)
            if cprof:
                try:
                    b, d, a, brackets = attached(cprof, exe, pairs, tmp)
                    res["before"].append(b)
                    res["attached"] += d
                    res["after"].append(med(a))
                    res["brackets"] += brackets
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    notes.append("attached: %s" % e)
            if i < slow_runs and have_ht:
                ns, p = run_pairs(["heaptrack", "-o", os.path.join(tmp, "ht%d" % i), exe,
                                   "--pairs", str(pairs)])
                if ns:
                    res["heaptrack"].append(ns)
            if i < slow_runs and up.ok:
                ns, count = up.run(exe, pairs)
                if ns:
                    res["uprobe"].append(ns)
                if count < pairs:
                    notes.append("uprobe counted %d mallocs of %d" % (count, pairs))
            print("  round %d: plain %.2f, preloaded %.2f ns/pair" %
                  (i + 1, res["plain"][-1] or 0, res["preloaded"][-1] or 0), flush=True)
        ht_attach = heaptrack_attach(exe, pairs, tmp) if have_ht else "not installed"
    finally:
        up.close()
        shutil.rmtree(tmp, ignore_errors=True)

    def ratio(k, ref):
        """The median of the per-round ratios of k to ref (runs of one round share the
        machine's mood: a paired ratio drifts less than a ratio of medians)."""
        rs = [x / r for x, r in zip(res[k], res[ref]) if x and r]
        return "%.3f" % med(rs) if rs else "n/a"

    def best(k, ref):
        """Fastest run to fastest run: a busy machine only ever adds time."""
        xs, rs = [x for x in res[k] if x], [r for r in res[ref] if r]
        return "%.3f" % (min(xs) / min(rs)) if xs and rs else "n/a"

    def bracketed():
        return "%.3f" % med(res["brackets"]) if res["brackets"] else "n/a"

    base, same = "plain", "before"

    lines = ["## Heap profiles: what the allocation sampler costs", "",
             "`tests/targets/malloc_stress --pairs %d`: malloc/free pairs of 16-256 bytes in "
             "one thread, ns per pair as the loop times itself; median (min–max) of %d runs "
             "(heaptrack and the uprobe: %d), configurations taking turns, the workload pinned "
             "to CPU %d and cprof to CPU %d; a ratio is the "
             "median of each round's ratio to that round's plain run (attached: of each "
             "attach's ratio to the same process' runs just before and after it; after "
             "detach: to its runs before the first attach). The agent samples at the default rate (%d bytes) "
             "with an %d KiB stack copy per sample." %
             (pairs, runs, slow_runs, WORK_CPU, TOOL_CPU, RATE, STACK // 1024), "",
             "| configuration | ns per pair | ratio | fastest to fastest |",
             "|---|---|---|---|",
             "| plain | %s | 1 | 1 |" % fmt(res["plain"]),
             "| agent preloaded (record's launch path) | %s | %s | %s |" %
             (fmt(res["preloaded"]), ratio("preloaded", base), best("preloaded", base)),
             "| agent preloaded, compiled fast paths (no generated ones) | %s | %s | %s |" %
             (fmt(res["compiled"]), ratio("compiled", base), best("compiled", base)),
             "| agent preloaded, never sampling (rate 2^40) | %s | %s | %s |" %
             (fmt(res["hooks"]), ratio("hooks", base), best("hooks", base)),
             "| same process, before attach | %s | %s | %s |" %
             (fmt(res["before"]), ratio("before", base), best("before", base)),
             "| same process, cprof attach --profile heap (3 times) | %s | %s (to the runs "
             "around it) | %s |" %
             (fmt(res["attached"]), bracketed(), best("attached", same)),
             "| same process, after cprof detached | %s | %s (to before) | %s |" %
             (fmt(res["after"]), ratio("after", same), best("after", same)),
             "| heaptrack (launch) | %s | %s | %s |" %
             (fmt(res["heaptrack"]), ratio("heaptrack", base), best("heaptrack", base)),
             "| heaptrack -p (attach) | %s | | |" % (
                 "%.2f" % ht_attach if isinstance(ht_attach, float) else
                 str(ht_attach).replace("|", "/")),
             "| uprobe counter on malloc (perf) | %s | %s | %s |" % (
                 fmt(res["uprobe"]) if up.ok else "unavailable: " + up.why.replace("|", "/"),
                 ratio("uprobe", base), best("uprobe", base)), ""]
    lines += ["- " + n for n in notes] + ([""] if notes else [])
    report.append("heap sampler at the default rate: %sx plain preloaded (fastest %sx), %sx "
                  "attached (fastest %sx), %sx after detach; heaptrack %sx, uprobe counter %sx" %
                  (ratio("preloaded", base), best("preloaded", base), bracketed(),
                   best("attached", same), ratio("after", same), ratio("heaptrack", base),
                   ratio("uprobe", base)))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build-release"))
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--pairs", type=int, default=10_000_000)
    args = ap.parse_args()
    build = pathlib.Path(args.build).resolve()
    cprof = build / "cprof"
    if not cprof.exists():
        cprof = build / "cmd" / "cprof"
    report = []
    lines = bench_heap(str(cprof) if cprof.exists() else None, build, args.runs, report,
                       args.pairs)
    print("\n".join(lines))
    for r in report:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
