#!/usr/bin/env python3
"""cprof record: run a command under the profiler, follow its threads and children, pass its
exit status through (docs/cprof.1 "record", docs/FORMATS.md "Profiles")."""
import os
import subprocess
import time

import cplib
from cplib import check
import profiles
from profiles import pprof, traces, total


def record(*args, rc=0, timeout=120, **kw):
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    r = subprocess.run([cplib.CPROF, "record", "-o", out] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       **kw)
    check(r.returncode == rc, "record %s exited %d, expected %d" % (args, r.returncode, rc),
          r.stderr)
    return out, r


def target(name):
    return str(cplib.TARGETS / name)


def test_stacks_and_exit_status_zero():
    out, r = record("-F", 999, "--", target("cpu_split"), "--seconds", 2)
    check(os.path.exists(out), "no profile", r.stderr)
    tr = traces(out)
    leaf = total(tr, lambda f, l: f[0] == "spin_leaf")
    good = total(tr, lambda f, l: f[0] == "spin_leaf" and len(f) > 2 and
                 f[1] in ("work_a", "work_b") and "main" in f[2:])
    check(leaf > 0 and good >= 0.95 * leaf, "%d of %d leaf samples unwound to main" % (good, leaf),
          tr[:4])
    raw = pprof("-raw", out)
    m1 = raw[raw.index("Mappings"):].splitlines()[1]
    check(m1.startswith("1: ") and "/cpu_split " in m1, "mapping 1 is not the command: " + m1)


def test_main_binary_through_a_wrapper():
    """record -- env CMD: the profile's main binary (mapping 1, pprof's "File:") is the program
    the wrapper exec'd, not the wrapper."""
    out, r = record("-F", 499, "--", "env", target("cpu_split"), "--seconds", 1)
    raw = pprof("-raw", out)
    m1 = raw[raw.index("Mappings"):].splitlines()[1]
    check(m1.startswith("1: ") and "/cpu_split " in m1, "mapping 1 is not the command: " + m1)
    tr = traces(out)
    check(total(tr, lambda f, l: f[0] == "spin_leaf") > 0, "no samples in spin_leaf", tr[:4])
    rep = cplib.run(["report", out], check_rc=0).stdout
    check("File: cpu_split" in rep, "report's File: line", rep[:300])


def test_exit_status_passed_through():
    out, r = record("--", "sh", "-c", "exit 3", rc=3)
    check(os.path.exists(out), "no profile for a command that exited 3", r.stderr)
    pprof("-raw", out)


def test_signal_death_is_128_plus_n():
    out, r = record("--", "sh", "-c", "kill -TERM $$", rc=143)
    out, r = record("--", "sh", "-c", "kill -KILL $$", rc=137)


def test_command_not_found():
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    r = subprocess.run([cplib.CPROF, "record", "-o", out, "--", "/nonexistent/command", "x"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 127, "exit %d for a missing command, expected 127" % r.returncode,
          r.stderr)
    lines = r.stderr.strip().splitlines()
    check(len(lines) == 1 and lines[0].startswith("cprof: ") and "not found" in lines[0],
          "not one error line: %r" % lines)
    check(os.listdir(d) == [], "files left: %s" % os.listdir(d))
    r = subprocess.run([cplib.CPROF, "record", "-o", out, "--", "/etc/passwd"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 126, "exit %d for a non-executable command" % r.returncode, r.stderr)


def test_follows_forked_child():
    out, r = record("-F", 499, "--", target("fork_burn"), 1.5)
    tr = traces(out)
    child = [(c, f, l) for c, f, l in tr if "child_burn" in f]
    parent = [(c, f, l) for c, f, l in tr if "parent_burn" in f]
    check(child, "child_burn (in a forked child) not in the profile",
          sorted(set(f[0] for c, f, l in tr)))
    check(parent, "parent_burn not in the profile")
    cpids = set(l.get("pid") for c, f, l in child)
    ppids = set(l.get("pid") for c, f, l in parent)
    check(len(cpids) == 1 and cpids != ppids, "pid labels: child %s parent %s" % (cpids, ppids))
    check(all(l.get("thread") == "fb-child" for c, f, l in child), "child thread name",
          [l for c, f, l in child][:3])
    check(all("main" in f for c, f, l in child), "child stacks do not reach main",
          [f for c, f, l in child][:3])


def test_cpp_demangled():
    out, r = record("-F", 499, "--", target("cpp_burn"), 1)
    top = pprof("-top", out)
    check("cprof_test::Burner<unsigned long>::spin" in top, "no demangled C++ name", top)


def test_seconds_stops_profiling_and_waits():
    # Margins, not timing: the command runs 8 s, profiling must stop well before.
    t0 = time.monotonic()
    out, r = record("--seconds", 1, "--", target("cpu_split"), "--seconds", 8)
    check(time.monotonic() - t0 >= 7.5, "record did not wait for the command")
    raw = pprof("-raw", out)
    dur = float([l for l in raw.splitlines() if l.startswith("Duration:")][0].split()[1])
    check(0.5 <= dur < 6.0, "profile duration %.2f s for --seconds 1" % dur)


def test_seconds_writes_the_profile_while_the_command_runs():
    # "profile the first 30 s of a server": the file is there while the server still runs.
    # The command waits (30 s at most) for the profile to appear, then says so and exits.
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    script = ('i=0; while [ ! -s "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; '
              '[ -s "$1" ] && echo profile-seen')
    r = subprocess.run([cplib.CPROF, "record", "--seconds", "1", "-o", out, "--", "sh", "-c",
                        script, "sh", out], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    check(r.returncode == 0 and "profile-seen" in r.stdout,
          "the profile was not written while the command ran (rc %d)" % r.returncode,
          r.stdout, r.stderr)
    check("wrote " + out in r.stderr, "no summary line", r.stderr)


def test_stdio_untouched():
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    r = subprocess.run([cplib.CPROF, "record", "-o", out, "--", "sh", "-c",
                        "read x; echo got $x; echo err >&2"], input="hello\n",
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "record exited %d" % r.returncode, r.stderr)
    check(r.stdout == "got hello\n", "command stdout changed: %r" % r.stdout)
    check("err" in r.stderr, "command stderr lost", r.stderr)


def test_output_to_stdout_keeps_command_output_apart():
    """With -o - the profile alone is on stdout; the command's stdout goes to stderr."""
    d = profiles.tmpdir()
    r = subprocess.run([cplib.CPROF, "record", "-o", "-", "--", "sh", "-c",
                        "echo from-the-command; exec \"$0\" --seconds 1",
                        target("cpu_split")],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 0, "record -o - exited %d" % r.returncode, err)
    check(b"from-the-command" not in r.stdout, "command output mixed into the profile")
    check("from-the-command" in err, "command output lost", err)
    check(r.stdout[:2] == b"\x1f\x8b", "stdout is not gzip: %r" % r.stdout[:16])
    path = os.path.join(d, "stdout.pb.gz")
    with open(path, "wb") as f:
        f.write(r.stdout)
    top = pprof("-top", path)
    check("spin_leaf" in top, "no spin_leaf in the profile read from stdout", top)
    help_text = subprocess.run([cplib.CPROF, "record", "--help"], capture_output=True,
                               text=True).stdout
    check("'-o -'" in help_text and "standard error" in help_text,
          "--help does not say where the command's output goes with -o -")


def test_command_that_moves_to_another_cpu():
    """cprof runs on one CPU, its command moves itself to another (taskset): sampled there."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        cplib.skip("needs two CPUs")
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    r = subprocess.run([cplib.CPROF, "record", "-F", "499", "-o", out, "--", "taskset", "-c",
                        str(cpus[-1]), target("cpu_split"), "--cpu-seconds", "1"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}))
    check(r.returncode == 0, "record exited %d" % r.returncode, r.stderr)
    leaf = total(traces(out), lambda f, l: f[0] == "spin_leaf")
    # 1 s of CPU, not of wall time: on a busy machine the spin gets a share of a CPU, the
    # samples (cpu-clock) count the CPU it got.
    check(leaf >= 100, "%d samples in spin_leaf from 1 s of CPU at 499 Hz" % leaf, r.stderr)


def test_threads_followed():
    out, r = record("-F", 499, "--", target("cpu_split"), "--threads", 2, "--seconds", 2)
    names = set(l.get("thread") for c, f, l in traces(out))
    check({"worker-1", "worker-2"} <= names, "threads in profile: %s" % names)


def test_bad_input():
    for args, rc, pat in [
        (["record"], 2, "missing COMMAND"),
        (["record", "-F", "0", "--", "true"], 2, "invalid -F"),
        (["record", "--seconds", "x", "--", "true"], 2, "invalid --seconds"),
        (["record", "--unwind", "x", "--", "true"], 2, "invalid --unwind"),
        (["record", "--format", "x", "--", "true"], 2, "invalid --format"),
    ]:
        r = cplib.run(args, timeout=60)
        check(r.returncode == rc and r.stderr.startswith("cprof: ") and pat in r.stderr,
              "cprof %s: exit %d, %r" % (args, r.returncode, r.stderr))


if __name__ == "__main__":
    cplib.main(globals())
