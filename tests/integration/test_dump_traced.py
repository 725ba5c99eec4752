#!/usr/bin/env python3
"""cprof dump on a process that strace or gdb already traces: the dump proceeds without ptrace
(blocked and tracer-stopped threads captured live, running ones by a perf sample), exits 0,
names the tracer in text and JSON, marks any thread it could not capture, and leaves the
target exactly as the tracer had it."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402
import test_dump_waits as waits  # noqa: E402

# Threads blocked in a call that are checked frame by frame: (function, marker).
BLOCKED = {name: (fn, marker) for name, (_, _, fn, marker) in waits.EXPECTED.items()
           if fn and marker and name != "w-running"}


def all_traced_by(pid, tracer):
    try:
        tids = os.listdir("/proc/%d/task" % pid)
        return tids and all(int(cplib.proc_status(pid, int(t))["TracerPid"]) == tracer
                            for t in tids)
    except (OSError, KeyError, ValueError):
        return False


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise cplib.Failure("timed out waiting for " + what)


def start_tracer(argv, pid, stdin=None):
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    cplib._started.append(p)
    wait_until(lambda: all_traced_by(pid, p.pid) or p.poll() is not None, 60,
               "%s to attach to every thread" % argv[0])
    if p.poll() is not None:
        cplib.skip("%s could not attach (exit %d)" % (argv[0], p.returncode))
    return p


def end_tracer(p, stop):
    """Let the tracer detach (stop() asks it); True when it did, else it is killed by PID."""
    stop()
    try:
        p.wait(timeout=30)
        return True
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        return False


def release_vfork(pid):
    """End the w-vfork thread's uninterruptible sleep: a tracer cannot detach from a thread
    that never stops. Its vfork child (a process the fixture made) is killed by PID."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != "w-vfork":
                    continue
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                for child in f.read().split():
                    os.kill(int(child), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def check_frames(t, name):
    fn, marker = BLOCKED[name]
    frames = [f for f in t["frames"] if f["function"] == fn]
    check(frames, "%s: %s not in the stack" % (name, fn), [f["function"] for f in t["frames"]])
    want = cplib.line_of(waits.FIXTURE, marker)
    check(frames[0]["line"] == want, "%s: %s at line %r, expected %d" %
          (name, fn, frames[0]["line"], want))
    check(t["capture_error"] is None, "%s: captured yet marked" % name, t["capture_error"])


def dump_both(pid, tracer, tracer_name):
    """Text and JSON dumps of pid: exit 0, the tracer named, every uncaptured thread marked."""
    p = cplib.run(["dump", "-p", pid], check_rc=0)
    check("  traced by process %d (%s)" % (tracer, tracer_name) in p.stdout,
          "text header does not name the tracer", p.stdout[:1000])
    blocks = p.stdout.split("\nthread ")[1:]
    check(len(blocks) == len(os.listdir("/proc/%d/task" % pid)), "text lists every thread",
          len(blocks))
    for b in blocks:
        check("  #0 " in b or "(stack not captured: traced by %d (%s)" % (tracer, tracer_name)
              in b, "thread without a stack and without a mark", b[:500])
    d = cplib.dump_json(pid)
    check(d["tracer"] == {"pid": tracer, "name": tracer_name}, "JSON tracer", d["tracer"])
    for t in d["threads"]:
        check("capture_error" in t, "thread lacks capture_error", t)
        if t["frames"]:
            check(t["capture_error"] is None, "stack and capture_error", t)
        else:
            check(t["capture_error"] == "traced by %d (%s)" % (tracer, tracer_name),
                  "uncaptured thread not marked", t)
    return d


def check_after(target, pid):
    cplib.assert_target_unharmed(pid)
    check(target.alive(), "fixture died")
    # A normal dump works again, and finds no tracer.
    d = cplib.dump_json(pid)
    check(d["tracer"] is None, "tracer after detach", d["tracer"])


def test_under_strace():
    if not shutil.which("strace"):
        cplib.skip("no strace")
    target, _ = waits.start()
    pid = target.pid
    st = start_tracer(["strace", "-f", "-p", str(pid), "-o", "/dev/null"], pid)
    try:
        d = dump_both(pid, st.pid, "strace")
        threads = waits.waits_of(d)
        check(set(threads) == set(waits.EXPECTED), "threads", sorted(threads))
        for name in BLOCKED:
            check_frames(threads[name], name)
            # Threads blocked under strace are still classified as usual.
            check(threads[name]["wait"]["kind"] == waits.EXPECTED[name][0],
                  "%s kind under strace" % name, threads[name]["wait"])
        check(cplib.tracer_pid(pid) == st.pid, "strace lost its hold")
    finally:
        release_vfork(pid)
        detached = end_tracer(st, lambda: os.kill(st.pid, signal.SIGTERM))
    check(detached, "strace did not detach within 30 s")
    check_after(target, pid)


BUSY = r"""
import os, threading, time
def busy():
    while True:
        os.getppid()
threading.Thread(target=busy, daemon=True).start()
print("READY", flush=True)
time.sleep(600)
"""


def test_syscall_busy_thread_under_strace():
    """A thread making system calls without pause under strace -f is never still for long:
    each dump either captures it (in one of strace's stops) or marks it; never a stop."""
    if not shutil.which("strace"):
        cplib.skip("no strace")
    p = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    cplib._started.append(p)
    check(b"READY" in p.stdout.readline(), "busy helper did not start")
    pid = p.pid
    st = start_tracer(["strace", "-f", "-p", str(pid), "-o", "/dev/null"], pid)
    try:
        for _ in range(5):
            d = dump_both(pid, st.pid, "strace")
            check(len(d["threads"]) == 2, "two threads", d["threads"])
            check(d["threads"][0]["frames"], "the sleeping main thread's stack")
    finally:
        detached = end_tracer(st, lambda: os.kill(st.pid, signal.SIGTERM))
    check(detached, "strace did not detach within 30 s")
    cplib.assert_target_unharmed(pid)
    check(p.poll() is None, "busy helper died")


def gdb_attach(pid):
    """gdb attached to pid, reading its commands from a pipe: every thread in a ptrace stop
    until gdb_detach()."""
    g = start_tracer(["gdb", "-q", "-nx", "-p", str(pid), "-ex", "set confirm off"], pid,
                     stdin=subprocess.PIPE)
    wait_until(lambda: cplib.thread_states(pid).get(pid) == "t", 30,
               "gdb to stop the main thread")
    return g


def gdb_detach(g):
    def detach():
        try:
            g.stdin.write(b"detach\nquit\n")
            g.stdin.close()
        except OSError:
            pass
    return end_tracer(g, detach)


def test_under_gdb():
    if not shutil.which("gdb"):
        cplib.skip("no gdb")
    target, _ = waits.start()
    pid = target.pid
    g = gdb_attach(pid)
    try:
        d = dump_both(pid, g.pid, "gdb")
        threads = waits.waits_of(d)
        check(set(threads) == set(waits.EXPECTED), "threads", sorted(threads))
        for name in BLOCKED:
            check_frames(threads[name], name)
        # A thread gdb stopped shows as stopped by a tracer, and its stack.
        main = threads["waits"]
        check(main["state"] == "t" and main["wait"]["kind"] == "stopped",
              "main under gdb", main["state"], main["wait"])
        running = threads["w-running"]
        if running["state"] == "t":
            check(any(f["function"] == "block_running" for f in running["frames"]),
                  "gdb-stopped running thread's stack", running["frames"])
        check(cplib.tracer_pid(pid) == g.pid, "gdb lost its hold")
    finally:
        release_vfork(pid)
        detached = gdb_detach(g)
    check(detached, "gdb did not detach within 30 s")
    check_after(target, pid)


def test_frame_pointer_code_under_gdb():
    """-O0 code stopped by gdb: sp and pc from /proc, the frame-pointer chain recovered from
    the stack, the whole chain down to start_thread as in an untraced dump."""
    if not shutil.which("gdb"):
        cplib.skip("no gdb")
    import test_dump_fp as fp
    with cplib.Target("fp_waits_O0") as t:
        g = gdb_attach(t.pid)
        try:
            d = dump_both(t.pid, g.pid, "gdb")
            for name, (leaf, marker) in fp.BLOCKED.items():
                th = cplib.thread_by_name(d, name)
                check(th["state"] == "t", "%s not in gdb's stop" % name, th["state"])
                fp.check_thread(th, leaf, marker)
        finally:
            detached = gdb_detach(g)
        check(detached, "gdb did not detach within 30 s")
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    cplib.main(globals())
