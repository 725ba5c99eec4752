#!/usr/bin/env python3
"""cprof without root: a user with CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH and CAP_PERFMON only
(setpriv, ambient capabilities) dumps another user's process in full; without
CAP_DAC_READ_SEARCH the /proc files of another user stay closed and cprof says why; the cache
is then the user's own (under its HOME), trusted and used."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-seccaps-"))


def as_user(caps, *args):
    home = WORK / "home"
    home.mkdir(exist_ok=True)
    os.chown(home, 65534, 65534)
    env = dict(os.environ, HOME=str(home), ASAN_OPTIONS="detect_leaks=0")
    env.pop("CPROF_CACHE_DIR", None)
    env.pop("XDG_CACHE_HOME", None)
    cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
           "--inh-caps", caps, "--ambient-caps", caps, cplib.CPROF] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_dump_with_capabilities_only():
    if not shutil.which("setpriv"):
        cplib.skip("needs setpriv (util-linux)")
    os.chmod(WORK, 0o755)
    exe = pathlib.Path(cplib.CPROF).resolve()
    probe = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                            str(exe), "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        cplib.skip("the cprof binary is not reachable by another user: %s" % probe.stderr)
    with cplib.Target("demo") as t:
        p = as_user("+sys_ptrace,+dac_read_search,+perfmon", "dump", "-v", "-p", t.pid)
        check(p.returncode == 0 and "#0 " in p.stdout and "main" in p.stdout,
              "dump with capabilities only", p.returncode, p.stderr[-2000:], p.stdout[:1000])
        check("cache off" not in p.stderr, "the user's own cache was not trusted", p.stderr)
        check(any((WORK / "home" / ".cache" / "cprof").rglob("*")), "no cache written")
        p = as_user("+sys_ptrace,+perfmon", "dump", "-p", t.pid)
        check(p.returncode != 0 and "need CAP_DAC_READ_SEARCH" in p.stderr,
              "without CAP_DAC_READ_SEARCH", p.returncode, p.stderr[-1000:])
        cplib.assert_target_unharmed(t.pid)


def test_not_dumpable_process_of_ones_own():
    # The same user, a process that made itself non-dumpable: the error names that control.
    if not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"):
        cplib.skip("needs setpriv and /usr/bin/python3")
    os.chmod(WORK, 0o755)
    t = subprocess.Popen(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          "/usr/bin/python3", "-c",
                          "import ctypes, sys, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
                          "print('READY', flush=True); time.sleep(120)"],
                         stdout=subprocess.PIPE, text=True)
    cplib._started.append(t)
    try:
        check(t.stdout.readline().startswith("READY"), "the non-dumpable target did not start")
        p = as_user("-all", "dump", "-p", t.pid)
        cplib.error_line(p, 1, r"cprof: pid \d+: permission denied: the process is not dumpable")
    finally:
        t.kill()
        t.wait()


def test_tracepoint_profiles_of_ones_own_command():
    # Without privileges, a profile that needs kernel tracepoints of one's own command is
    # refused for what it is (perf_event_paranoid), not for "another user".
    if not shutil.which("setpriv"):
        cplib.skip("needs setpriv (util-linux)")
    os.chmod(WORK, 0o755)
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    os.chown(out, 65534, 65534)
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        if int(f.read()) < 0:
            cplib.skip("kernel.perf_event_paranoid < 0 lets anyone read tracepoints")
    for kind in ("mutex", "threadcreate", "block"):
        p = as_user("-all", "record", "--profile", kind, "-o", out / "p.pb.gz", "--", "/bin/true")
        line = cplib.error_line(p, 1, r"cprof: pid \d+: perf events not allowed")
        check("perf_event_paranoid" in line and "another user" not in line,
              "%s: not the reason" % kind, line)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
