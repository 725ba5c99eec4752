"""Helpers for the CPU-profile tests (test_attach.py, test_record.py): run cprof in the
background, wait until it samples, read profiles back with `go tool pprof`."""
import os
import re
import signal
import subprocess
import tempfile
import time

import cplib
from cplib import check

_bg = []


def tmpdir():
    return tempfile.mkdtemp(prefix="cprof-prof-")


def start(args, env=None):
    """cprof ARGS in the background (killed by PID at exit if still running)."""
    p = subprocess.Popen([cplib.CPROF] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    cplib._started.append(p)
    return p


def perf_fds(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[perf_event]":
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def wait_sampling(p, timeout=30):
    """Wait until cprof process p has its perf events open (sampling has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            out, err = p.communicate()
            raise cplib.Failure("cprof exited %d before sampling: %s" % (p.returncode, err))
        if perf_fds(p.pid) > 0:
            return
        time.sleep(0.05)
    raise cplib.Failure("cprof %d did not open perf events within %ss" % (p.pid, timeout))


def target_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_target_cpu(pid, seconds, min_wall=0.0, timeout=60):
    """Wait until pid has used `seconds` more CPU time and at least min_wall seconds passed."""
    t0 = time.monotonic()
    start = target_cpu_seconds(pid)
    while time.monotonic() - t0 < timeout:
        if (target_cpu_seconds(pid) - start >= seconds and
                time.monotonic() - t0 >= min_wall):
            return
        time.sleep(0.1)


def finish(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def pprof(*args):
    """`go tool pprof ARGS` output; fails on a non-zero exit or anything on stderr but the
    usual header lines."""
    r = cplib.go_pprof(*args)
    check(r.returncode == 0, "go tool pprof %s failed: %s" % (" ".join(map(str, args)), r.stderr))
    # pprof prints nothing on stderr for a clean profile read into a report.
    warn = [l for l in r.stderr.splitlines() if l.strip()]
    check(not warn, "go tool pprof warned: %s" % warn[:5])
    return r.stdout


def traces(path):
    """[(count, [frames innermost first], {label: value})] from `go tool pprof -traces`."""
    return traces_of(path, "samples")


def traces_of(path, index):
    """traces() of the counts of sample type index (samples, contentions, threadcreate)."""
    out = pprof("-traces", "-sample_index=" + index, path)
    result = []
    for block in re.split(r"^-+\+-+$", out, flags=re.M)[1:]:
        labels, frames, count = {}, [], 0
        for line in block.splitlines():
            if not line.strip():
                continue
            m = re.match(r"^\s+(\w+):\s+(.*)$", line)
            if m and not frames and not re.match(r"^\s+\d", line):
                labels[m.group(1)] = m.group(2).strip()
                continue
            m = re.match(r"^\s+(\d+)\s+(.*)$", line)
            if m and not frames:
                count = int(m.group(1))
                frames.append(m.group(2).strip())
            else:
                frames.append(line.strip())
        if frames:
            result.append((count, frames, labels))
    return result


def total(tr, pred=lambda frames, labels: True):
    return sum(c for c, f, l in tr if pred(f, l))


def alive_and_running(pid):
    """The process exists, is not stopped or traced, and still gets CPU time."""
    cplib.assert_target_unharmed(pid)

    def cpu():
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])

    before = cpu()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if cpu() > before:
            return
    raise cplib.Failure("target %d made no progress after cprof ended" % pid)
