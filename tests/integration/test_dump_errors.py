#!/usr/bin/env python3
"""cprof dump on bad input: every failure is one line "cprof: WHAT: WHY" (plus an optional
"cprof: hint: ..." line), the right exit status, and never a file left behind."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import Target, check, run, CPROF  # noqa: E402


def one_error(p, rc, *needles):
    """Exit status rc, nothing on stdout, one error line (+ hints) containing the needles."""
    line = cplib.error_line(p, rc)
    for n in needles:
        check(n in line, "%r not in error line" % n, line)
    return line


def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise cplib.Failure("no free pid")


def test_no_such_pid():
    pid = free_pid()
    one_error(run(["dump", "-p", pid]), 1, "pid %d" % pid, "no such process")


def test_not_a_number():
    for bad in ("abc", "12x", "-5", "0", "", "99999999999999"):
        one_error(run(["dump", "-p", bad]), 2, "PID")


def test_missing_pid():
    one_error(run(["dump"]), 2, "-p")
    # The PID left out, the next option taken for it: said so, by every command with -p.
    for cmd in ("dump", "attach", "watch", "serve"):
        one_error(run([cmd, "-p", "--seconds", "1"]), 2, "-p needs a PID, not the option")


def test_kernel_thread():
    with open("/proc/2/stat") as f:
        if "kthreadd" not in f.read():
            cplib.skip("pid 2 is not kthreadd here (a PID namespace?)")
    one_error(run(["dump", "-p", "2"]), 1, "kernel thread")


def test_own_pid():
    # exec keeps the shell's pid, so $$ is cprof's own pid by the time it runs.
    p = subprocess.run(["sh", "-c", 'exec "$0" dump -p $$', CPROF], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    one_error(p, 1, "cprof itself")


def test_thread_id_is_not_a_process():
    # /proc/TID exists for every thread: a thread id must not pass for a process.
    with Target("cpu_split", "--threads", "1") as t:
        tids = [int(x) for x in os.listdir("/proc/%d/task" % t.pid) if int(x) != t.pid]
        check(tids, "cpu_split has no second thread")
        for cmd in (["dump", "-p", tids[0]], ["attach", "-p", tids[0], "--seconds", "1"]):
            one_error(run(cmd), 1, "pid %d" % tids[0], "thread of process %d" % t.pid)
        cplib.assert_target_unharmed(t.pid)


def test_zombie():
    with Target("dump_procs", "zombie") as t:
        child = int(re.search(r"child=(\d+)", t.lines[-1]).group(1))
        p = run(["dump", "-p", child, "--format", "json"], check_rc=0)
        d = json.loads(p.stdout)
        check(len(d["threads"]) == 1, "zombie: one thread", d["threads"])
        th = d["threads"][0]
        check(th["tid"] == child and th["wait"]["kind"] == "zombie", "zombie thread", th)
        check(th["state"] in ("Z", "X"), "zombie state", th)
        check(d["summary"]["by_wait"] == {"zombie": 1}, "zombie summary", d["summary"])
        p = run(["dump", "-p", child], check_rc=0)
        check(re.search(r'^thread %d "[^"]*" \[zombie' % child, p.stdout, re.M), "text zombie",
              p.stdout)
        # --group groups it as any dump: one group of one.
        g = json.loads(run(["dump", "-p", child, "--group", "--format", "json"],
                           check_rc=0).stdout)
        check(g["groups"] is not None and len(g["groups"]) == 1, "zombie --group", g["groups"])


def test_already_traced():
    """A process another one traces is dumped without ptrace, the tracer named (the whole
    story is tests/integration/test_dump_traced.py)."""
    with Target("dump_procs", "traced") as t:
        m = re.search(r"child=(\d+) tracer=(\d+)", t.lines[-1])
        child, tracer = int(m.group(1)), int(m.group(2))
        check(cplib.tracer_pid(child) == tracer, "fixture did not trace its child")
        p = run(["dump", "-p", child], check_rc=0)
        check("  traced by process %d (dump_procs)" % tracer in p.stdout, "tracer not named",
              p.stdout[:1000])
        check(re.search(r"^  #0 .*pause", p.stdout, re.M), "the paused child's stack",
              p.stdout[:2000])
        d = json.loads(run(["dump", "-p", child, "--format", "json"], check_rc=0).stdout)
        check(d["tracer"] == {"pid": tracer, "name": "dump_procs"}, "JSON tracer", d["tracer"])
        check(d["threads"][0]["frames"] and d["threads"][0]["capture_error"] is None,
              "the child captured", d["threads"][0])
        # cprof must leave the other tracer's hold alone.
        check(cplib.tracer_pid(child) == tracer, "tracer changed after cprof")
        check(cplib.thread_states(child)[child] not in "tT", "target left stopped")


def test_permission_denied():
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        cplib.skip("needs root and setpriv to run cprof as another user")
    with Target("cppfix") as t:
        # cprof as "nobody" against a root process: ptrace refuses, the message says why.
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            CPROF, "dump", "-p", str(t.pid)], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        line = one_error(p, 1, "pid %d" % t.pid, "permission denied")
        check("CAP_SYS_PTRACE" in line or "ptrace_scope" in line, "control not named", line)
        cplib.assert_target_unharmed(t.pid)


SEIZE_HELPER = r"""
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:  # PTRACE_SEIZE
    print("ERR %d" % ctypes.get_errno(), flush=True)
    sys.exit(1)
print("READY", flush=True)
time.sleep(600)
"""


def test_one_thread_traced():
    """One thread held by another tracer (strace -p TID): every thread is still dumped."""
    with Target("cppfix") as t:
        tids = sorted(int(x) for x in os.listdir("/proc/%d/task" % t.pid))
        victim = tids[2]
        helper = subprocess.Popen([sys.executable, "-c", SEIZE_HELPER, str(victim)],
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        cplib._started.append(helper)
        line = helper.stdout.readline()
        if "READY" not in line:
            cplib.skip("cannot PTRACE_SEIZE a thread here: %s" % line.strip())
        p = run(["dump", "-p", t.pid, "--format", "json"], check_rc=0)
        d = json.loads(p.stdout)
        by_tid = {th["tid"]: th for th in d["threads"]}
        check(set(by_tid) == set(tids), "threads", sorted(by_tid))
        # Blocked, it is copied live like the others, without a stop the tracer would see.
        check(by_tid[victim]["frames"] and by_tid[victim]["capture_error"] is None,
              "traced blocked thread not captured", by_tid[victim])
        check(all(by_tid[x]["frames"] for x in tids if x != victim), "others lost their stacks")
        check(d["tracer"] is None, "the process (its leader) is not traced", d["tracer"])
        check(cplib.tracer_pid(t.pid) == 0 and
              int(cplib.proc_status(t.pid, victim)["TracerPid"]) == helper.pid,
              "the helper's hold changed")
        helper.kill()
        helper.wait()
        cplib.assert_target_unharmed(t.pid)


def test_unknown_option():
    one_error(run(["dump", "-p", os.getpid(), "--bogus"]), 2, "unknown option", "--bogus")
    one_error(run(["dump", "-p", os.getpid(), "-Z"]), 2, "unknown option")


def test_extra_argument():
    one_error(run(["dump", "-p", os.getpid(), "extra"]), 2, "extra")


def test_bad_format():
    one_error(run(["dump", "-p", os.getpid(), "--format", "xml"]), 2, "xml")
    one_error(run(["dump", "-p", os.getpid(), "--format"]), 2)


def test_bad_stuck():
    for bad in ("abc", "0", "-1", "1.5", "100000"):
        one_error(run(["dump", "-p", os.getpid(), "--stuck", bad]), 2, "--stuck")


def test_unwritable_output():
    with Target("cppfix") as t, tempfile.TemporaryDirectory() as tmp:
        missing = os.path.join(tmp, "no-such-dir", "out.json")
        one_error(run(["dump", "-p", t.pid, "-o", missing]), 1, missing, "cannot write")
        check(os.listdir(tmp) == [], "file left behind", os.listdir(tmp))
        # A directory in place of the file: the temporary file must not survive either.
        os.mkdir(os.path.join(tmp, "adir"))
        one_error(run(["dump", "-p", t.pid, "-o", os.path.join(tmp, "adir")]), 1, "adir")
        check(os.listdir(tmp) == ["adir"] and os.listdir(os.path.join(tmp, "adir")) == [],
              "file left behind", os.listdir(tmp))
        # A file under a regular file.
        notdir = os.path.join(tmp, "plain")
        open(notdir, "w").close()
        one_error(run(["dump", "-p", t.pid, "-o", os.path.join(notdir, "x")]), 1, "cannot write")
        check(sorted(os.listdir(tmp)) == ["adir", "plain"], "file left behind", os.listdir(tmp))
        # Writes that fail at the end (a full device) are reported too.
        if os.path.exists("/dev/full"):
            one_error(run(["dump", "-p", t.pid, "-o", "/dev/full"]), 1, "/dev/full")
        # The target was never disturbed by the failed runs.
        cplib.assert_target_unharmed(t.pid)


def test_help():
    p = run(["dump", "--help"], check_rc=0)
    check("usage: cprof dump" in p.stdout and "Examples:" in p.stdout, "help text", p.stdout)


if __name__ == "__main__":
    cplib.main(globals())
