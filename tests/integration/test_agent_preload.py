#!/usr/bin/env python3
"""The allocation sampler (libcprof-agent.so) preloaded into the 16-thread malloc stress
fixture, as record launches it, with this script as the ring's reader: records well formed
while every thread allocates, the fixture's block checks intact, and the sampler going OFF by
itself when its reader dies or asks it to stop, the fixture running on unharmed."""
import mmap
import os
import re
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

AGENT = os.environ.get("CPROF_AGENT_LIBRARY") or str(
    __import__("pathlib").Path(cplib.CPROF).resolve().parent.parent / "src" / "agent" /
    "libcprof-agent.so")

# struct cp_agent_header (src/agent/agent_proto.h)
HDR = struct.Struct("<QIIQQIiIIQQQQQQQQQQ128sQ")
FIELDS = ("magic version header_bytes ring_bytes rate stack_bytes reader_pid state pad0 "
          "generation reserved samples frees dropped untracked patched modules consumed "
          "heartbeat error skipped_modules").split()
MAGIC = 0x6670726F70616763
OFF_STATE = 40
OFF_CONSUMED = 112
COMMIT = 0x80000000
ALLOC_FIXED = 8 + 4 + 4 + 8 + 8 + 17 * 8 + 8


def start(reader_pid, rate=65536):
    env = dict(os.environ, LD_PRELOAD=AGENT,
               CPROF_AGENT="%d:%d:%d:%d" % (reader_pid, rate, 4096, 4 << 20))
    return cplib.Target("malloc_stress", env=env)


def region(pid, timeout=20):
    """The sampler's memfd in pid, mapped here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("/memfd:cprof-agent"):
                with open("/proc/%d/fd/%s" % (pid, fd), "r+b") as f:
                    return mmap.mmap(f.fileno(), 0)
        time.sleep(0.05)
    raise cplib.Failure("no cprof-agent memfd in %d" % pid)


def header(m):
    return dict(zip(FIELDS, HDR.unpack_from(m, 0)))


def drain(m, h, stats):
    """Read every committed record as cprof does (zero it, advance consumed)."""
    ring, rb = h["header_bytes"], h["ring_bytes"]
    while True:
        consumed = struct.unpack_from("<Q", m, OFF_CONSUMED)[0]
        off = ring + consumed % rb
        size, typ = struct.unpack_from("<IH", m, off)
        if not size & COMMIT:
            return
        size &= ~COMMIT
        check(size >= 8 and size % 8 == 0 and consumed % rb + size <= rb,
              "malformed record at %d: size %d" % (consumed, size))
        if typ == 1:
            tid, slen, addr, nbytes = struct.unpack_from("<iIQQ", m, off + 8)
            regs = struct.unpack_from("<17Q", m, off + 32)
            start = struct.unpack_from("<Q", m, off + 32 + 17 * 8)[0]
            check(tid > 0 and addr and 0 < nbytes <= 1 << 20 and slen <= size - ALLOC_FIXED
                  and start == regs[7], "bad ALLOC record", tid, addr, nbytes, slen)
            stats["allocs"] += 1
            stats["stack"] += slen > 0
        elif typ == 2:
            stats["frees"] += 1
        else:
            check(typ == 0, "record type %d" % typ)
        m[off:off + size] = bytes(size)
        struct.pack_into("<Q", m, OFF_CONSUMED, consumed + size)


def checked(t):
    os.kill(t.pid, signal.SIGUSR1)
    line = t.wait_for("CHECK", timeout=20)
    m = re.search(r"ops=(\d+) bad=(\d+)", line)
    check(m is not None, "bad CHECK line", line)
    return int(m.group(1)), int(m.group(2))


def wait_off(m, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = header(m)
        if h["state"] == 0:
            return h
        time.sleep(0.05)
    raise cplib.Failure("sampler still on after %ss: %s" % (timeout, header(m)))


def test_records_while_16_threads_allocate():
    t = start(os.getpid())
    m = region(t.pid)
    h = header(m)
    check(h["magic"] == MAGIC and h["version"] == 1 and h["state"] == 1, "header", h)
    check(h["patched"] > 0 and h["modules"] > 0, "nothing patched", h)
    stats = {"allocs": 0, "frees": 0, "stack": 0}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        drain(m, h, stats)
        time.sleep(0.01)
    ops, bad = checked(t)
    h = header(m)
    print("16 threads: %d ops, %d samples read, %d frees, %d dropped" %
          (ops, stats["allocs"], stats["frees"], h["dropped"]))
    check(bad == 0, "the fixture found %d damaged blocks" % bad)
    check(stats["allocs"] > 100 and stats["frees"] > 0, "too few records", stats)
    check(stats["stack"] == stats["allocs"], "samples without a stack copy", stats)
    check(h["samples"] >= stats["allocs"], "header counts fewer samples than read", h, stats)
    cplib.assert_target_unharmed(t.pid)
    t.kill()


READER = """
import os, subprocess, sys, time
env = dict(os.environ, LD_PRELOAD=sys.argv[1],
           CPROF_AGENT="%d:65536:4096:%d" % (os.getpid(), 4 << 20))
subprocess.Popen([sys.argv[2]], env=env)
time.sleep(1000)
"""


def wait_line(p, text, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = __import__("select").select([p.stdout], [], [], 0.2)
        if r:
            line = p.stdout.readline()
            if text in line:
                return line
    raise cplib.Failure("no %r within %ss" % (text, timeout))


def test_off_when_reader_dies():
    # The sampler starts in a direct child of its reader: a process that launches the fixture
    # plays the reader, and dies.
    reader = subprocess.Popen([sys.executable, "-c", READER, AGENT,
                               str(cplib.TARGETS / "malloc_stress")],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    cplib._started.append(reader)
    pid = int(re.search(r"pid=(\d+)", wait_line(reader, "READY")).group(1))
    try:
        m = region(pid)
        check(header(m)["state"] == 1, "not on", header(m))
        reader.kill()
        reader.wait()
        h = wait_off(m)
        check(h["error"].rstrip(b"\0") == b"reader exited", "error", h["error"])
        counts = []
        for _ in range(2):
            os.kill(pid, signal.SIGUSR1)
            line = wait_line(reader, "CHECK")
            counts.append(tuple(int(x) for x in re.search(r"ops=(\d+) bad=(\d+)", line).groups()))
            time.sleep(0.5)
        check(counts[0][1] == 0 and counts[1][1] == 0, "damaged blocks", counts)
        check(counts[1][0] > counts[0][0], "the fixture stopped allocating", counts)
        cplib.assert_target_unharmed(pid)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_off_when_reader_asks():
    t = start(os.getpid())
    m = region(t.pid)
    check(header(m)["state"] == 1, "not on", header(m))
    struct.pack_into("<I", m, OFF_STATE, 2)
    h = wait_off(m)
    check(h["error"].rstrip(b"\0") == b"", "error", h["error"])
    ops, bad = checked(t)
    check(bad == 0 and ops > 0, "fixture", ops, bad)
    cplib.assert_target_unharmed(t.pid)
    t.kill()


def test_starts_in_direct_children_only():
    """record's rule: the command cprof starts samples (also after it execs through a shell);
    processes it starts in turn keep the library idle."""
    env = dict(os.environ, LD_PRELOAD=AGENT,
               CPROF_AGENT="%d:65536:4096:%d" % (os.getpid(), 1 << 20))
    ls = "ls -l /proc/self/fd"
    execd = subprocess.run(["sh", "-c", "exec " + ls], env=env, capture_output=True, text=True,
                           timeout=60)
    check(execd.returncode == 0 and "cprof-agent" in execd.stdout,
          "the program a direct child execs has no sampler", execd.stdout, execd.stderr)
    forked = subprocess.run(["sh", "-c", ls + "; true"], env=env, capture_output=True,
                            text=True, timeout=60)
    check(forked.returncode == 0 and "/proc/self/fd" not in forked.stderr, "ls failed",
          forked.stderr)
    check("cprof-agent" not in forked.stdout, "a grandchild started a sampler", forked.stdout)
    check("CPROF_AGENT" in subprocess.run(["sh", "-c", "env"], env=env, capture_output=True,
                                          text=True, timeout=60).stdout,
          "the environment of the command was changed")


PY_SELF_CHECK = r"""
import json, os, struct, mmap
n = len(json.dumps([str(i) * 50 for i in range(100000)]))
for fd in os.listdir("/proc/self/fd"):
    try:
        link = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        continue
    if link.startswith("/memfd:cprof-agent"):
        with open("/proc/self/fd/" + fd, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            h = struct.unpack_from("<QIIQQIiIIQQQQQQQQQQ128sQ", m, 0)
            print("sampler state=%d samples=%d" % (h[7], h[11]))
            break
print(n)
"""


def test_real_programs_unchanged():
    """Programs run with the sampler at a high rate (bash, perl, sort, cmake: C++) print what
    they print without it; Debian's python3.11 (built without -pie: its PLT entry is malloc's
    canonical address) samples itself."""
    env = dict(os.environ, LD_PRELOAD=AGENT,
               CPROF_AGENT="%d:4096:8192:%d" % (os.getpid(), 8 << 20))
    cmds = [["bash", "-c", "for i in $(seq 1 3000); do x=$x$i; done; echo ${#x}"],
            ["perl", "-e", "my %h; $h{$_} = $_ x 20 for 1..100000; print scalar(keys %h)"],
            ["sort", "/etc/services"], ["cmake", "--help-command", "add_library"]]
    py = "/usr/bin/python3.11"
    if os.path.exists(py):
        out = subprocess.run([py, "-c", PY_SELF_CHECK], env=env, capture_output=True, text=True,
                             timeout=120)
        check(out.returncode == 0, "python3.11 failed under the sampler", out.returncode,
              out.stderr[-500:])
        m = re.search(r"sampler state=(\d+) samples=(\d+)", out.stdout)
        check(m and m.group(1) == "1" and int(m.group(2)) > 0, "python3.11 not sampled",
              out.stdout)
    for c in cmds:
        if not os.path.exists(c[0]) and not __import__("shutil").which(c[0]):
            continue
        plain = subprocess.run(c, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        sampled = subprocess.run(c, env=env, capture_output=True, timeout=120,
                                 stdin=subprocess.DEVNULL)
        check(sampled.returncode == plain.returncode, "exit status changed", c,
              sampled.returncode, sampled.stderr[-300:])
        check(sampled.stdout == plain.stdout, "output changed", c)


if __name__ == "__main__":
    cplib.main(globals())
