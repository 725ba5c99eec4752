#!/usr/bin/env python3
"""Calls injected into live processes (src/inject, through tests/tools/inject_call.c).

The target must not notice beyond the call: no EINTR in any of its blocked threads, registers
(vector ones included) intact, a signal sent during the call delivered once, afterwards; a
caller killed at any moment, mid-call included, leaves it running; 50 calls leave nothing
behind; targets that cannot be called into safely are refused and left as they were.
"""
import ctypes
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import Target, check  # noqa: E402

INJECT = os.environ.get("CPROF_INJECT_CALL") or str(pathlib.Path(cplib.CPROF).parent / "tests" /
                                                    "inject-call")
PROBE = str(cplib.TARGETS / "libinject_probe.so")
# The waiting threads of inject_target and the calls each one's /proc syscall may show after.
WAITERS = {"i-futex": {202}, "i-futex-tmo": {202, 219}, "i-pipe": {0}, "i-sleep": {35, 230, 219},
           "i-clock": {230, 219}, "i-poll": {7, 219}, "i-epoll": {232}, "i-accept": {43, 288},
           "main": {0}}
WOKEN = ["i-futex", "i-futex-tmo", "i-pipe", "i-poll", "i-epoll", "i-accept"]
SIGUSR2 = int(signal.SIGUSR2)
libc = ctypes.CDLL(None, use_errno=True)


def inject(pid, *args, tid=None, timeout_ms=None):
    """Run inject-call; returns (exit code, its output, {key: value} of its lines)."""
    cmd = [INJECT]
    if tid:
        cmd += ["--tid", str(tid)]
    if timeout_ms:
        cmd += ["--timeout", str(timeout_ms)]
    p = subprocess.run(cmd + [str(pid)] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=120)
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return p.returncode, p.stdout + p.stderr, out


def line_with(t, text, timeout=20):
    """The first line the fixture printed that contains text, already read or still to come."""
    for line in t.lines:
        if text in line:
            return line
    return t.wait_for(text, timeout=timeout)


def counts(t):
    """The fixture's counters (SIGUSR1 -> COUNT line)."""
    os.kill(t.pid, signal.SIGUSR1)
    line = t.wait_for("COUNT", timeout=20)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}


def tids_of(t):
    tids = t.tagged("TID")
    check(set(WAITERS) <= set(tids), "fixture named its threads", tids)
    return tids


def syscall_nr(pid, tid):
    with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
        first = f.read().split()[0]
    return int(first) if first.lstrip("-").isdigit() else None


def wake_all(t):
    """SIGHUP: every waiting thread wakes once and checks what it read (and its registers)."""
    os.kill(t.pid, signal.SIGHUP)
    for name in WOKEN:
        line = line_with(t, "WOKE " + name)
        check(line.endswith(" ok"), "thread %s woke wrong after the calls" % name, line)


def healthy(t, tids):
    """No EINTR, no bad sum, back in its own calls, every waiter wakes right, nothing traced."""
    c = counts(t)
    check(c["eintr"] == 0, "the target saw EINTR", c)
    check(c["bad"] == 0, "the target's checks failed", c)
    for name, nrs in WAITERS.items():
        deadline = time.monotonic() + 10
        while syscall_nr(t.pid, tids[name]) not in nrs and time.monotonic() < deadline:
            time.sleep(0.05)
        check(syscall_nr(t.pid, tids[name]) in nrs, "thread %s is back in its call" % name,
              open("/proc/%d/task/%d/syscall" % (t.pid, tids[name])).read())
    cplib.assert_target_unharmed(t.pid)
    wake_all(t)


def test_call_on_every_kind_of_waiting_thread():
    with Target("inject_target") as t:
        tids = tids_of(t)
        for name in WAITERS:
            rc, out, kv = inject(t.pid, PROBE, "probe_clobber", 7, tid=tids[name],
                                 timeout_ms=10000)
            check(rc == 0, "call on %s" % name, out)
            check(kv.get("ret") == "7", "probe_clobber returned its argument", out)
            check(kv.get("tid") == str(tids[name]), "ran on the thread asked for", out)
        rc, out, kv = inject(t.pid, PROBE, "probe_sum6", 1, 2, 3, 4, 5, 6)
        check(rc == 0 and kv.get("ret") == str(1 + 4 + 9 + 16 + 25 + 36), "six arguments", out)
        rc, out, kv = inject(t.pid, PROBE, "probe_loaded")
        check(rc == 0 and kv.get("ret") == "1", "loaded once, constructor ran once", out)
        # A call that faults is abandoned: the fault is not delivered, the thread resumes.
        rc, out, kv = inject(t.pid, PROBE, "probe_fault", tid=tids["i-pipe"])
        check(rc == 1 and "got signal 11" in out, "the fault is reported", out)
        healthy(t, tids)


def tgkill(pid, tid, sig):
    check(libc.syscall(234, pid, tid, sig) == 0, "tgkill", ctypes.get_errno())


def test_signal_during_call_arrives_once_after():
    with Target("inject_target") as t:
        tids = tids_of(t)
        tid = tids["i-pipe"]
        p = subprocess.Popen([INJECT, "--tid", str(tid), str(t.pid), PROBE, "probe_sleep",
                              "1500"], stdout=subprocess.PIPE, text=True)
        try:
            line_with(t, "PROBE begin tid=%d" % tid, timeout=30)
            tgkill(t.pid, tid, SIGUSR2)
            out = p.communicate(timeout=60)[0]
        finally:
            if p.poll() is None:
                p.kill()
        check(p.returncode == 0 and "ret 42" in out, "the call ended", out)
        end = line_with(t, "PROBE end tid=%d" % tid)
        end_ns = int(re.search(r"ns=(\d+)", end).group(1))
        c = counts(t)
        check(c["usr2"] == 1, "SIGUSR2 delivered once", c)
        check(c["usr2_tid"] == tid, "to the thread it was sent to", c, tid)
        check(c["usr2_ns"] > end_ns, "after the call", c, end_ns)
        healthy(t, tids)


def test_killed_caller_mid_call_leaves_target_running():
    with Target("inject_target") as t:
        tids = tids_of(t)
        for name in ["i-pipe", "i-poll", "i-futex-tmo", "i-epoll", "i-accept", "main"]:
            tid = tids[name]
            p = subprocess.Popen([INJECT, "--tid", str(tid), str(t.pid), PROBE, "probe_sleep",
                                  "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                line_with(t, "PROBE begin tid=%d" % tid, timeout=30)
            finally:
                p.kill()
                p.wait(timeout=30)
            # The thread ends the call by itself and returns through the frame cprof left.
            line_with(t, "PROBE end tid=%d" % tid, timeout=30)
        healthy(t, tids)


def test_killed_caller_inside_dlopen_leaves_library_loaded():
    slow = str(cplib.TARGETS / "libinject_slowinit.so")
    with Target("inject_target") as t:
        tids = tids_of(t)
        p = subprocess.Popen([INJECT, "--tid", str(tids["i-futex"]), str(t.pid), slow],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            line_with(t, "SLOWINIT begin", timeout=30)
        finally:
            p.kill()
            p.wait(timeout=30)
        # The thread ends dlopen (the constructor) by itself, then resumes its wait.
        line_with(t, "SLOWINIT end", timeout=30)
        deadline = time.monotonic() + 10
        while syscall_nr(t.pid, tids["i-futex"]) != 202 and time.monotonic() < deadline:
            time.sleep(0.05)
        check("libinject_slowinit.so" in open("/proc/%d/maps" % t.pid).read(), "loaded")
        rc, out, kv = inject(t.pid, slow, "slowinit_ready")
        check(rc == 0 and kv.get("ret") == "1", "found loaded, callable", out)
        healthy(t, tids)


def test_caller_killed_at_random_moments():
    rnd = random.Random(14)
    with Target("inject_target") as t:
        tids = tids_of(t)
        for i in range(30):
            # Killed while parking, mapping the call page, in the call or putting it back.
            call = ["probe_sleep", "10"] if i % 2 else ["probe_add", str(i), "1"]
            p = subprocess.Popen([INJECT, str(t.pid), PROBE] + call, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0, 0.04))
            p.kill()
            p.wait(timeout=30)
        rc, out, kv = inject(t.pid, PROBE, "probe_add", 40, 2)
        check(rc == 0 and kv.get("ret") == "42", "still callable", out)
        healthy(t, tids)


def test_calls_that_a_stop_fails_with_eintr_do_not():
    """epoll_wait, recv/read/accept under SO_RCVTIMEO, sigtimedwait: EINTR after a plain stop;
    cprof issues them again instead, as if the stop came just before them."""
    with Target("eintr_counter") as t:
        for tid in sorted(int(x) for x in os.listdir("/proc/%d/task" % t.pid)):
            with open("/proc/%d/task/%d/comm" % (t.pid, tid)) as f:
                comm = f.read().strip()
            if comm == "e-busy":
                continue
            rc, out, kv = inject(t.pid, PROBE, "probe_add", 1, 2, tid=tid, timeout_ms=10000)
            check(rc == 0 and kv.get("ret") == "3", "call on %s" % comm, out)
        # Left to choose, cprof prefers a call that continues exactly to one issued again.
        rc, out, kv = inject(t.pid, PROBE, "probe_add", 1, 2)
        check(rc == 0, "call", out)
        with open("/proc/%d/task/%s/comm" % (t.pid, kv.get("tid"))) as f:
            comm = f.read().strip()
        check(comm in ("e-recv-tmo", "e-read-tmo", "e-accept-tmo"),
              "parked a thread whose call restarts, not epoll_wait or sigtimedwait", comm)
        check(cplib.eintr_count(t) == 0, "no EINTR in any thread")
        cplib.assert_target_unharmed(t.pid)


def test_sigstop_during_call_stops_the_process_after():
    with Target("inject_target") as t:
        tids = tids_of(t)
        tid = tids["i-pipe"]
        p = subprocess.Popen([INJECT, "--tid", str(tid), str(t.pid), PROBE, "probe_sleep",
                              "800"], stdout=subprocess.PIPE, text=True)
        try:
            line_with(t, "PROBE begin tid=%d" % tid, timeout=30)
            os.kill(t.pid, signal.SIGSTOP)
            out = p.communicate(timeout=60)[0]
        finally:
            if p.poll() is None:
                p.kill()
        check(p.returncode == 0 and "ret 42" in out, "the call ended", out)
        states = [cplib.proc_status(t.pid, int(x))["State"][0]
                  for x in os.listdir("/proc/%d/task" % t.pid)]
        check(set(states) == {"T"}, "every thread stopped, the caller's one too", states)
        check(cplib.tracer_pid(t.pid) == 0, "not traced")
        os.kill(t.pid, signal.SIGCONT)
        wake_all(t)
        cplib.assert_target_unharmed(t.pid)


def snapshot(pid):
    with open("/proc/%d/status" % pid) as f:
        vm = re.search(r"VmSize:\s+(\d+)", f.read()).group(1)
    with open("/proc/%d/maps" % pid) as f:
        nmaps = len(f.readlines())
    return {"fds": len(os.listdir("/proc/%d/fd" % pid)),
            "threads": len(os.listdir("/proc/%d/task" % pid)), "maps": nmaps, "vmsize_kb": vm}


def test_fifty_calls_leave_nothing_behind():
    with Target("inject_target") as t:
        tids = tids_of(t)
        rc, out, _ = inject(t.pid, PROBE)
        check(rc == 0, "load", out)
        before = snapshot(t.pid)
        p = subprocess.run([INJECT, "--repeat", "50", str(t.pid), PROBE, "probe_add", "1", "2"],
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, "50 calls", p.stdout, p.stderr)
        calls = [ln for ln in p.stdout.splitlines() if ln.startswith("call_ms")]
        check(len(calls) == 50 and "ret 3" in p.stdout, "50 calls returned", p.stdout[-300:])
        after = snapshot(t.pid)
        check(before == after, "no fd, thread, mapping or memory left behind", before, after)
        healthy(t, tids)


def refused(pid, text):
    rc, out, _ = inject(pid, PROBE, "probe_add", 1, 2, timeout_ms=500)
    check(rc == 2 and "refused:" in out and text in out, "refused: %s" % text, out)


def test_failed_dlopen_says_why():
    with Target("inject_target") as t:
        tids = tids_of(t)
        with tempfile.NamedTemporaryFile(suffix=".so") as f:
            f.write(b"not an ELF file\n" * 8)
            f.flush()
            rc, out, _ = inject(t.pid, f.name)
        check(rc == 1 and "dlopen of" in out and "failed in the target" in out, "refused", out)
        check("invalid ELF header" in out or "too short" in out, "with dlerror's text", out)
        healthy(t, tids)


def test_refusals_change_nothing():
    for name, args, text in [("inject_static", [], "static binary"),
                             ("inject_musl", [], "musl libc"),
                             ("inject_refuse", ["seccomp"], "seccomp filter")]:
        check((cplib.TARGETS / name).exists(), "fixture %s built (musl-tools installed?)" % name)
        with Target(name, *args) as t:
            refused(t.pid, text)
            cplib.assert_target_unharmed(t.pid)
    refused(2, "kernel thread")
    z = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while cplib.proc_status(z.pid)["State"][0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    refused(z.pid, "zombie")
    z.wait()
    strace = subprocess.Popen(["strace", "-o", "/dev/null", str(cplib.TARGETS / "inject_target")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = strace.stdout.readline().decode()
        check(line.startswith("TID"), "traced fixture started", line)
        with open("/proc/%d/task/%d/children" % (strace.pid, strace.pid)) as f:
            child = int(f.read().split()[0])
        refused(child, "traced by process %d (strace)" % strace.pid)
    finally:
        strace.kill()
        strace.wait(timeout=10)


def test_no_safe_thread_times_out_cleanly():
    with Target("inject_refuse", "unsafe") as t:
        rc, out, _ = inject(t.pid, PROBE, "probe_add", 1, 2, timeout_ms=400)
        check(rc == 1 and "no thread at a safe point within 400 ms" in out, "timed out", out)
        check("malloc_info" in out, "says a thread is in the allocator", out)
        check("__libc_fork" in out, "says a thread is in fork", out)
        check("not a thread stack with a guard page" in out, "says a stack is in the heap", out)
        check(not any("libinject_probe" in ln for ln in open("/proc/%d/maps" % t.pid)),
              "nothing was loaded")
        cplib.assert_target_unharmed(t.pid)
        check(t.alive(), "target alive")


def test_thread_inside_the_loader_refuses_a_load():
    """A thread blocked in a dl_iterate_phdr callback holds the loader's lock: a dlopen on any
    other thread would wait for it, so nothing is parked at all."""
    with Target("inject_refuse", "loader") as t:
        rc, out, _ = inject(t.pid, PROBE, "probe_add", 1, 2, timeout_ms=400)
        check(rc == 1 and "a dlopen would wait for it" in out and "dl_iterate_phdr" in out,
              "refused, naming the loader's frame", out)
        check(not any("libinject_probe" in ln for ln in open("/proc/%d/maps" % t.pid)),
              "nothing was loaded")
        cplib.assert_target_unharmed(t.pid)


def test_other_mount_namespace_loads_through_memfd():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        cplib.skip("needs root and unshare(1) for a private mount namespace")
    d = tempfile.mkdtemp(prefix="cprof-inject-")
    try:
        lib = os.path.join(d, "libinject_probe.so")
        shutil.copy(PROBE, lib)
        target = str(cplib.TARGETS / "inject_target")
        cmd = "mount -t tmpfs none %s && exec %s" % (d, target)
        with Target("unshare", "-m", "--propagation", "private", "sh", "-c", cmd,
                    path=shutil.which("unshare")) as t:
            tids = tids_of(t)
            check(not os.path.exists("/proc/%d/root%s" % (t.pid, lib)),
                  "the target does not see the library")
            rc, out, kv = inject(t.pid, lib, "probe_add", 20, 22)
            check(rc == 0 and kv.get("ret") == "42", "load and call through a memfd", out)
            maps = open("/proc/%d/maps" % t.pid).read()
            check("/memfd:cprof-libinject_probe.so" in maps, "mapped from the memfd", maps)
            links = [os.readlink("/proc/%d/fd/%s" % (t.pid, fd))
                     for fd in os.listdir("/proc/%d/fd" % t.pid)]
            check(not any("memfd" in ln for ln in links), "the memfd was closed", links)
            rc2, out2, kv2 = inject(t.pid, lib, "probe_loaded")
            check(rc2 == 0 and kv2.get("base") == kv.get("base") and kv2.get("ret") == "1",
                  "loading again finds the same copy", out, out2)
            healthy(t, tids)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    cplib.main(globals())
