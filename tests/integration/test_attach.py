#!/usr/bin/env python3
"""cprof attach: CPU profiles of running processes (docs/cprof.1, docs/FORMATS.md "Profiles")."""
import glob
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import cplib
from cplib import check, Target
import profiles
from profiles import pprof, traces, total


def attach(pid, *extra, seconds=3, timeout=120):
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    r = cplib.run(["attach", "-p", pid, "--seconds", seconds, "-o", out] + list(extra),
                  timeout=timeout)
    check(r.returncode == 0, "attach exited %d" % r.returncode, r.stderr)
    check(os.path.exists(out), "no profile written", r.stderr)
    return out, r


def test_split_and_stacks_dwarf():
    with Target("cpu_split") as t:
        # 999 Hz: enough samples for a tight split even when the machine is busy.
        out, r = attach(t.pid, "-F", 999, seconds=5)
        check("wrote " + out in r.stderr, "summary line does not name the file", r.stderr)
        tr = traces(out)
        a = total(tr, lambda f, l: "work_a" in f)
        b = total(tr, lambda f, l: "work_b" in f)
        check(a + b >= 150, "too few samples in work_a/work_b: %d" % (a + b), tr[:3])
        share = 100.0 * a / (a + b)
        check(69 <= share <= 81, "work_a share %.1f%%, expected 75 +- 6" % share)
        # Every leaf sample must reach main through the right caller.
        leaf = total(tr, lambda f, l: f[0] == "spin_leaf")
        good = total(tr, lambda f, l: f[0] == "spin_leaf" and len(f) > 2 and
                     f[1] in ("work_a", "work_b") and "main" in f[2:])
        check(leaf > 0 and good >= 0.95 * leaf,
              "only %d of %d spin_leaf samples unwind to main through work_a/work_b" %
              (good, leaf), [x for x in tr if x[1][0] == "spin_leaf"][:5])
        # Labels: thread name, tid and pid.
        for c, f, l in tr:
            check(l.get("thread") == "cpu_split" and l.get("pid") == str(t.pid) and
                  l.get("tid") == str(t.pid), "sample labels wrong: %r" % l)
        raw = pprof("-raw", out)
        check("thread:[cpu_split]" in raw and "pid:[%d]" % t.pid in raw, "labels not in -raw")
        check("samples/count cpu/nanoseconds[dflt]" in raw, "sample types wrong", raw[:400])
        check("Period: %d" % (10**9 // 999) in raw, "period is not 1e9/HZ", raw[:300])
        # -lines: file:line of the leaf's loop.
        leaf_line = cplib.line_of("tests/targets/cpu_split.c", "LEAF_LINE")
        top = pprof("-top", "-lines", out)
        check("cpu_split.c:%d" % leaf_line in top, "no cpu_split.c:%d in -lines" % leaf_line, top)
        # Mapping 1 is the executable, with its build ID.
        m1 = raw[raw.index("Mappings"):].splitlines()[1]
        check(m1.startswith("1: ") and m1.split()[2].endswith("/cpu_split"),
              "mapping 1 is not the executable: " + m1)


def test_fp_mode():
    with Target("cpu_split") as t:
        out, r = attach(t.pid, "--unwind", "fp", "-F", 499, seconds=2)
        tr = traces(out)
        check(total(tr, lambda f, l: "spin_leaf" in f) > 0, "no spin_leaf in fp profile", tr[:3])
        # The fixture has no frame pointers: a chain that stops before a thread's start is
        # cut short, and says so.
        roots = ("_start", "__libc_start_call_main", "__libc_start_main_impl", "start_thread",
                 "__clone3", "clone3", "[unknown]", "[truncated]")
        ours = ("spin_leaf", "work_a", "work_b", "main")
        short = [f for c, f, l in tr if any(x in f for x in ours) and f[-1] not in roots]
        check(not short, "fp stacks cut short without an [unknown] end", short[:3])
        check(total(tr, lambda f, l: f and f[-1] == "[unknown]") > 0, "no [unknown] end", tr[:3])


def raw_locations(path):
    """{location id: (address, mapping file or None, rest)} from `go tool pprof -raw`."""
    raw = pprof("-raw", path)
    maps, locs = {}, {}
    for l in raw.split("\nMappings\n", 1)[1].splitlines():
        m = re.match(r"^(\d+): 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ (\S*)", l)
        if m:
            maps[m.group(1)] = m.group(2)
    body = raw.split("\nLocations\n", 1)[1].split("\nMappings\n", 1)[0]
    for l in body.splitlines():
        m = re.match(r"^\s*(\d+): 0x([0-9a-f]+)\s*(?:M=(\d+))?\s*(.*)$", l)
        if m:
            locs[m.group(1)] = (int(m.group(2), 16), maps.get(m.group(3)), m.group(4))
    return locs


def test_fp_mode_drops_junk_frames():
    """Frame-pointer chains through code without frame pointers read junk: no frame may be
    outside executable file mappings ([heap], stack, unmapped)."""
    with Target("cpu_split") as t:
        out, r = attach(t.pid, "--unwind", "fp", "-F", 499, seconds=2)
        locs = raw_locations(out)
        check(locs, "no locations in the fp profile")
        bad = []
        for lid, (addr, mfile, rest) in locs.items():
            if "[unknown]" in rest or "[truncated]" in rest or mfile == "[kernel]":
                continue
            if not mfile or not (mfile.startswith("/") or mfile == "[vdso]"):
                bad.append((lid, hex(addr), mfile, rest))
        check(not bad, "fp frames outside executable file mappings: %s" % bad[:5])
        tr = traces(out)
        check(not any("[heap]" in fr for c, f, l in tr for fr in f), "[heap] frame in -traces")


def test_deep_stack_truncated():
    # 100 frames of ~256 bytes (25 KiB): far more than a 4 KiB copy or the default 8 KiB,
    # complete with 32 KiB; 20 frames (5 KiB) are complete with the default.
    with Target("cpu_split", "--deep", 100) as t:
        out, r = attach(t.pid, "--stack-size", 4096, "-F", 499, seconds=2)
        tr = traces(out)
        leaf = total(tr, lambda f, l: f[0] == "spin_leaf")
        cut = total(tr, lambda f, l: f[0] == "spin_leaf" and f[-1] == "[truncated]")
        check(leaf > 0 and cut >= 0.9 * leaf, "%d of %d deep stacks end in [truncated]" %
              (cut, leaf), [f for c, f, l in tr][:2])
        out, r = attach(t.pid, "--stack-size", 32768, "-F", 499, seconds=2)
        tr = traces(out)
        leaf = total(tr, lambda f, l: f[0] == "spin_leaf")
        full = total(tr, lambda f, l: f[0] == "spin_leaf" and "main" in f and
                     f.count("recurse") >= 100)
        check(leaf > 0 and full >= 0.9 * leaf, "%d of %d deep stacks complete with 32 KiB" %
              (full, leaf), [f for c, f, l in tr][:2])
    with Target("cpu_split", "--deep", 20) as t:
        out, r = attach(t.pid, "-F", 499, seconds=2)
        tr = traces(out)
        leaf = total(tr, lambda f, l: f[0] == "spin_leaf")
        full = total(tr, lambda f, l: f[0] == "spin_leaf" and "main" in f and
                     f.count("recurse") >= 20)
        check(leaf > 0 and full >= 0.9 * leaf, "%d of %d 20-deep stacks complete with the "
              "default 8 KiB" % (full, leaf), [f for c, f, l in tr][:2])


def test_formats():
    with Target("cpu_split") as t:
        d = profiles.tmpdir()
        for fmt, check_fn in [
            ("folded", lambda s: any(l.rsplit(" ", 1)[0].endswith("spin_leaf") and
                                     "main;" in l and l.rsplit(" ", 1)[1].isdigit()
                                     for l in s.splitlines())),
            ("svg", lambda s: s.lstrip().startswith(("<?xml", "<svg")) and "spin_leaf" in s
             and s.rstrip().endswith("</svg>")),
            ("text", lambda s: "spin_leaf" in s and "flat%" in s),
        ]:
            out = os.path.join(d, "p." + fmt)
            r = cplib.run(["attach", "-p", t.pid, "--seconds", 1.5, "-F", 499, "--format", fmt,
                           "-o", out], check_rc=0)
            text = open(out).read()
            check(check_fn(text), "bad %s output" % fmt, text[:600])
        # pprof to standard output: a gzip stream, nothing else.
        r = subprocess.run([cplib.CPROF, "attach", "-p", str(t.pid), "--seconds", "1", "-o", "-"],
                           capture_output=True, timeout=120)
        check(r.returncode == 0, "attach -o - failed", r.stderr)
        check(r.stdout[:2] == b"\x1f\x8b", "-o - is not gzip")
        path = os.path.join(d, "stdout.pb.gz")
        open(path, "wb").write(r.stdout)
        pprof("-top", path)


def test_default_output_name():
    with Target("cpu_split") as t:
        d = profiles.tmpdir()
        r = subprocess.run([cplib.CPROF, "attach", "-p", str(t.pid), "--seconds", "1"], cwd=d,
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "attach failed", r.stderr)
        files = glob.glob(os.path.join(d, "cprof-%d-*.pb.gz" % t.pid))
        check(len(files) == 1 and len(os.listdir(d)) == 1, "files: %s" % os.listdir(d))
        check(os.path.basename(files[0]) in r.stderr, "path not printed", r.stderr)


def test_sigint_ends_early():
    with Target("cpu_split") as t:
        d = profiles.tmpdir()
        out = os.path.join(d, "p.pb.gz")
        p = profiles.start(["attach", "-p", t.pid, "--seconds", 120, "-o", out])
        profiles.wait_sampling(p)
        # Events open before cprof has finished setting up; on a loaded machine the target
        # may also get little CPU. Let it burn a few CPU-seconds under sampling first.
        profiles.wait_target_cpu(t.pid, seconds=3.0, min_wall=3.0)
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGINT)
        rc, so, se = profiles.finish(p, timeout=60)
        check(rc == 0, "attach after SIGINT exited %d" % rc, se)
        check(time.monotonic() - t0 < 60, "SIGINT did not end sampling early")
        tr = traces(out)
        check(total(tr) > 0, "profile after SIGINT has no samples")
        profiles.alive_and_running(t.pid)


def test_seconds_is_the_profile_duration():
    """The --seconds countdown starts when the events start counting (setup is sampled
    time), so the profile lasts N seconds, not N plus setup; generous slack for ASan."""
    with Target("cpu_split") as t:
        out, r = attach(t.pid, seconds=2)
        raw = pprof("-raw", out)
        dur = float([l for l in raw.splitlines() if l.startswith("Duration:")][0].split()[1])
        check(1.9 <= dur < 3.5, "profile duration %.2f s for --seconds 2" % dur)


def test_stopped_or_idle_target_says_why_empty():
    """A stopped target (state T) or one that used no CPU gives a valid empty profile,
    exit 0, and one note saying why."""
    with Target("cpu_split") as t:
        os.kill(t.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 10
            while (cplib.proc_status(t.pid)["State"][0] != "T" and
                   time.monotonic() < deadline):
                time.sleep(0.05)
            out, r = attach(t.pid, seconds=1)
        finally:
            os.kill(t.pid, signal.SIGCONT)
        check("cprof: pid %d is stopped (state T): it used no CPU while sampled" % t.pid
              in r.stderr, "no note for a stopped target", r.stderr)
        pprof("-top", out)
    idle = subprocess.Popen(["sleep", "600"])
    try:
        out, r = attach(idle.pid, seconds=1)
    finally:
        idle.kill()
        idle.wait()
    check("no samples: the target used no CPU" in r.stderr, "no note for an idle target",
          r.stderr)
    pprof("-top", out)


def test_sigint_during_setup():
    """SIGINT as soon as the events are open (setup may still be running): exit 0 with a
    valid profile holding the samples so far, or a note that there are none."""
    with Target("cpu_split") as t:
        d = profiles.tmpdir()
        out = os.path.join(d, "p.pb.gz")
        p = profiles.start(["attach", "-p", t.pid, "--seconds", 120, "-o", out])
        profiles.wait_sampling(p)
        os.kill(p.pid, signal.SIGINT)
        rc, so, se = profiles.finish(p, timeout=60)
        check(rc == 0, "attach after an early SIGINT exited %d" % rc, se)
        tr = traces(out)
        check(total(tr) > 0 or "no samples" in se, "empty profile without a note", se)
        profiles.alive_and_running(t.pid)


def test_target_exits_mid_profile():
    with Target("cpu_split", "--seconds", 4) as t:
        d = profiles.tmpdir()
        out = os.path.join(d, "p.pb.gz")
        t0 = time.monotonic()
        r = cplib.run(["attach", "-p", t.pid, "--seconds", 100, "-o", out], timeout=120)
        check(r.returncode == 0, "attach exited %d" % r.returncode, r.stderr)
        check(time.monotonic() - t0 < 90, "sampling did not end when the target exited")
        check("exited" in r.stderr, "no note that the target exited", r.stderr)
        check(total(traces(out), lambda f, l: "spin_leaf" in f) > 0, "no samples kept")


def test_thread_created_after_attach():
    with Target("cpu_split") as t:
        d = profiles.tmpdir()
        out = os.path.join(d, "p.pb.gz")
        p = profiles.start(["attach", "-p", t.pid, "--seconds", 4, "-F", 499, "-o", out])
        profiles.wait_sampling(p)
        os.kill(t.pid, signal.SIGUSR1)
        t.wait_for("LATE")
        rc, so, se = profiles.finish(p)
        check(rc == 0, "attach exited %d" % rc, se)
        tr = traces(out)
        late = total(tr, lambda f, l: l.get("thread") == "late" and "late_burn" in f)
        check(late > 0, "no samples of the thread created after attaching",
              sorted(set(l.get("thread") for c, f, l in tr)))
        tids = set(l.get("tid") for c, f, l in tr if l.get("thread") == "late")
        check(len(tids) == 1 and str(t.pid) not in tids, "late thread tid labels: %s" % tids)


def test_threads_and_size():
    want = {"worker-1", "worker-2", "worker-3", "worker-4"}
    with Target("cpu_split", "--threads", 4) as t:
        out, r = attach(t.pid, seconds=3)
        names = set(l.get("thread") for c, f, l in traces(out))
        if not want <= names:
            # Seen once in CI on a machine at load ~10: one busy thread had no sample in 3 s.
            # Not understood yet (see the closing note); a second look must find every thread.
            print("note: first profile missed %s; profiling again" % sorted(want - names))
            out, r = attach(t.pid, seconds=5)
            names = set(l.get("thread") for c, f, l in traces(out))
        check(want <= names, "not every thread sampled: %s" % names)
        check(os.path.getsize(out) < 256 * 1024, "profile is %d bytes" % os.path.getsize(out))


def test_dlopen_during_profile():
    with Target("dlopen_burn", "--seconds", 2) as t:
        d = profiles.tmpdir()
        out = os.path.join(d, "p.pb.gz")
        p = profiles.start(["attach", "-p", t.pid, "--seconds", 5, "-F", 499, "-o", out])
        profiles.wait_sampling(p)
        os.kill(t.pid, signal.SIGUSR1)
        t.wait_for("BURNING")
        rc, so, se = profiles.finish(p)
        check(rc == 0, "attach exited %d" % rc, se)
        tr = traces(out)
        n = total(tr, lambda f, l: f[0] == "burn_in_library")
        check(n > 0, "burn_in_library (dlopened while profiling) not in profile", tr[:5])
        raw = pprof("-raw", out)
        check("libburn.so" in raw, "no libburn.so mapping")


def test_sigkill_leaves_target_alone():
    with Target("cpu_split") as t:
        d = profiles.tmpdir()
        p = profiles.start(["attach", "-p", t.pid, "--seconds", 60, "-o",
                            os.path.join(d, "p.pb.gz")])
        profiles.wait_sampling(p)
        time.sleep(0.5)
        p.kill()
        p.wait(timeout=30)
        profiles.alive_and_running(t.pid)
        check(not os.path.exists(os.path.join(d, "p.pb.gz")), "a profile appeared after SIGKILL")


def test_multiple_pids():
    with Target("cpu_split") as t1, Target("cpu_split") as t2:
        out, r = attach("%d,%d" % (t1.pid, t2.pid), seconds=2)
        tr = traces(out)
        pids = set(l.get("pid") for c, f, l in tr)
        check({str(t1.pid), str(t2.pid)} <= pids, "pids in profile: %s" % pids)


def bad(args, rc, pattern):
    r = cplib.run(args, timeout=60)
    check(r.returncode == rc, "cprof %s exited %d, expected %d" % (args, r.returncode, rc),
          r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(lines and lines[0].startswith("cprof: ") and pattern in lines[0],
          "cprof %s: expected 'cprof: ...%s...' got %r" % (args, pattern, lines))
    check(not r.stdout, "output on stdout for an error")


def test_bad_input():
    bad(["attach"], 2, "missing -p")
    bad(["attach", "-p", "abc"], 2, "invalid PID")
    bad(["attach", "-p", "999999999"], 1, "no such process")
    bad(["attach", "-p", "2"], 1, "kernel thread")
    with Target("cpu_split") as t:
        for f in ("0", "-5", "abc", "100000000"):
            bad(["attach", "-p", t.pid, "-F", f], 2, "invalid -F")
        for s in ("0", "-1", "abc", "1e9", ""):
            bad(["attach", "-p", t.pid, "--seconds", s], 2, "invalid --seconds")
        bad(["attach", "-p", t.pid, "--unwind", "lbr"], 2, "invalid --unwind")
        bad(["attach", "-p", t.pid, "--format", "json"], 2, "invalid --format")
        bad(["attach", "-p", t.pid, "--bogus"], 2, "unknown option")
        # Empty items in the list are a typo, not ignored (one line, usage exit).
        for pl in ("%d,,%d" % (t.pid, t.pid), ",%d" % t.pid, "%d," % t.pid, ","):
            r = cplib.run(["attach", "-p", pl, "--seconds", "1", "-o", "/dev/null"],
                          timeout=60)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            check(r.returncode == 2 and len(lines) == 1 and "invalid PID list" in lines[0],
                  "-p %s: rc %d %r" % (pl, r.returncode, lines))
        bad(["attach", "-p", t.pid, "-o", "/nonexistent-dir/x.pb.gz", "--seconds", "1"], 1,
            "/nonexistent-dir/x.pb.gz")
    # A zombie: a child of ours that exited and was not reaped yet.
    z = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while cplib.proc_status(z.pid)["State"][0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    bad(["attach", "-p", z.pid], 1, "zombie")
    z.wait()
    # cprof itself: the shell's pid becomes cprof's through exec.
    r = subprocess.run(["sh", "-c", 'exec "$0" attach -p $$ --seconds 1', cplib.CPROF],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "cprof itself" in r.stderr, "own pid accepted", r.stderr)


def test_unprivileged_user_only():
    """perf_event_paranoid=2 lets users profile their own processes in user space only;
    a process of another user is refused with the control named."""
    if os.geteuid() != 0:
        cplib.skip("needs root to run the fixture and cprof as another user")
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        paranoid = int(f.read())
    if paranoid != 2:
        cplib.skip("kernel.perf_event_paranoid is %d, this test is written for 2" % paranoid)
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    d = profiles.tmpdir()
    os.chmod(d, 0o777)
    # The user must be able to read the binary it runs and cprof symbolizes: the build may
    # sit in a folder only root can enter (a clone in a mktemp -d folder).
    exe = os.path.join(d, "cpu_split")
    shutil.copy(str(cplib.TARGETS / "cpu_split"), exe)
    os.chmod(exe, 0o755)
    fixture = subprocess.Popen(user + [exe], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    cplib._started.append(fixture)
    time.sleep(0.5)
    out = os.path.join(d, "p.pb.gz")
    r = subprocess.run(user + [cplib.CPROF, "attach", "-p", str(fixture.pid), "--seconds", "1",
                               "-o", out], capture_output=True, text=True, timeout=120)
    if "AddressSanitizer" in r.stderr and r.returncode != 0:
        cplib.skip("the sanitized build cannot run as another user here")
    check(r.returncode == 0, "user-only attach failed", r.stderr)
    check("user space only" in r.stderr, "no note about the kernel fallback", r.stderr)
    check(total(traces(out), lambda f, l: "spin_leaf" in f) > 0, "no user samples")
    # As nobody, a root process is refused, and the message names the control.
    with Target("cpu_split") as t:
        r = subprocess.run(user + [cplib.CPROF, "attach", "-p", str(t.pid), "--seconds", "1",
                                   "-o", out + "2"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 1, "attach to another user's process exited %d" % r.returncode,
              r.stderr)
        check("perf_event_paranoid" in r.stderr or "another user" in r.stderr,
              "refusal does not name the control", r.stderr)
    fixture.kill()


if __name__ == "__main__":
    cplib.main(globals())
