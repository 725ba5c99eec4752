#!/usr/bin/env python3
"""Heap and allocs profiles of native processes (--profile heap|allocs): accuracy on a fixture
that leaks 200 x 1 MiB and churns 5 GB, attach and record, Ctrl-C and SIGKILL of cprof, the
refusals, serve's heap path (100 attach/detach cycles: test_heap_cycles.py)."""
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
import profiles  # noqa: E402
from cplib import check  # noqa: E402

AGENT = os.environ.get("CPROF_AGENT_LIBRARY") or str(
    __import__("pathlib").Path(cplib.CPROF).resolve().parent.parent / "src" / "agent" /
    "libcprof-agent.so")
MIB = 1 << 20


def pprof_flat(path, index):
    """{function: flat value} of `go tool pprof -top -sample_index=INDEX` (bytes or count)."""
    unit = ["-unit=B"] if index.endswith("space") else []
    p = cplib.go_pprof("-top", "-nodecount=1000", "-sample_index=" + index, *unit, path)
    check(p.returncode == 0, "pprof failed", p.stderr)
    check(not re.search(r"(?i)warn|error", p.stderr), "pprof warned", p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)(B?)\s+[\d.]+%\s+[\d.]+%\s+[\d.]+B?\s+[\d.]+%\s+(.+)$", line)
        if m:
            out[m.group(3).strip()] = float(m.group(1))
    return out


def check_leak_figures(path, rounds=1):
    inuse = pprof_flat(path, "inuse_space")
    alloc = pprof_flat(path, "alloc_space")
    leak = inuse.get("leak_a", 0) / MIB
    churn_inuse = inuse.get("churn_b", 0) / MIB
    churn = alloc.get("churn_b", 0) / MIB
    check(180 * rounds <= leak <= 220 * rounds, "inuse_space of leak_a %.1f MiB, expected %d +-10%%"
          % (leak, 200 * rounds), inuse)
    check(churn_inuse < 1, "inuse_space of churn_b %.2f MiB, expected < 1" % churn_inuse, inuse)
    check(4500 * rounds <= churn * MIB / 1e6 <= 5500 * rounds,
          "alloc_space of churn_b %.0f MB, expected 5000 MB +-10%%" % (churn * MIB / 1e6), alloc)
    return leak, churn * MIB / 1e9


def agent_control(pid):
    """The sampler's cprof_agent_control in pid: (magic, version, memfd, last_error, state,
    generation), or None when the library is not loaded."""
    base = None
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5].endswith("/libcprof-agent.so") and int(parts[2], 16) == 0:
                base = int(parts[0].split("-")[0], 16)
                path = parts[5]
                break
    if base is None:
        return None
    nm = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True)
    off = [int(l.split()[0], 16) for l in nm.stdout.splitlines() if l.endswith(" cprof_agent_control")]
    check(off, "no cprof_agent_control in " + path, nm.stdout)
    with open("/proc/%d/mem" % pid, "rb") as f:
        f.seek(base + off[0])
        return struct.unpack("<QIiiIQ", f.read(32))


def wait_sampler_off(pid, timeout=60):
    deadline = time.monotonic() + timeout
    c = agent_control(pid)
    while time.monotonic() < deadline:
        c = agent_control(pid)
        if c is None or c[4] == 0:
            return
        time.sleep(0.1)
    raise cplib.Failure("the sampler of pid %d is still on: %s" % (pid, c))


def start_heap_attach(pid, out, *extra, seconds=120):
    p = profiles.start(["attach", "-p", pid, "--profile", "heap", "--seconds", seconds, "-o",
                        out] + list(extra))
    line = ""
    while "allocation sampler started" not in line:
        line = p.stderr.readline()
        if not line:
            p.wait(timeout=30)
            raise cplib.Failure("cprof attach exited %s before starting: %s"
                                % (p.returncode, p.stderr.read()))
    return p


def heap_attach_around(t, out, done, *extra):
    """cprof attach --profile heap on fixture t while it works: SIGUSR1 starts the work, its
    line `done` ends it, then Ctrl-C writes the profile to out (cprof must exit 0)."""
    p = start_heap_attach(t.pid, out, *extra)
    os.kill(t.pid, signal.SIGUSR1)
    t.wait_for(done, timeout=120)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    check(p.returncode == 0, "attach failed", err)
    return err


def record_leak_figures(out, env=None):
    """record --profile heap -v of heap_leak --now into out; which fast paths ran."""
    r = cplib.run(["record", "--profile", "heap", "-v", "-o", out, "--",
                   cplib.TARGETS / "heap_leak", "--now"], timeout=300, env=env)
    check(r.returncode == 0, "record failed", r.stderr)
    check(re.search(r"cprof: \d+ allocation samples \(0 lost\)", r.stderr), "summary", r.stderr)
    m = re.search(r"malloc and free's fast paths (generated next to the allocator|compiled)",
                  r.stderr)
    check(m, "which fast paths ran is said under -v", r.stderr)
    leak, churn = check_leak_figures(out)
    return m.group(1), leak, churn


def test_record_accuracy():
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    out = os.path.join(d, "rec.pb.gz")
    paths, leak, churn = record_leak_figures(out)
    # This machine has room next to libc: the generated fast paths are the ones measured.
    check(paths.startswith("generated"), "malloc and free ran the compiled hooks", paths)
    print("record: leak_a %.1f MiB in use, churn_b %.2f GB allocated" % (leak, churn))
    # The compiled hooks, used where no page near the allocator can be had, count the same.
    paths, leak, churn = record_leak_figures(out, dict(os.environ, CPROF_AGENT_COMPILED_HOOKS="1"))
    check(paths == "compiled", "CPROF_AGENT_COMPILED_HOOKS=1 ignored", paths)
    print("record, compiled hooks: leak_a %.1f MiB in use, churn_b %.2f GB allocated" %
          (leak, churn))
    # allocs: the same values, alloc_space the default.
    out2 = os.path.join(d, "allocs.pb.gz")
    r = cplib.run(["record", "--profile", "allocs", "--rate", "1048576", "-o", out2, "--",
                   cplib.TARGETS / "heap_leak", "--now", "--churn-mb", "500"], timeout=300)
    check(r.returncode == 0, "record allocs failed", r.stderr)
    p = cplib.go_pprof("-top", out2)
    check("Type: alloc_space" in p.stdout and "churn_b" in p.stdout, "allocs default", p.stdout)
    p = cplib.go_pprof("-raw", out2)
    check("bytes:[64]" in p.stdout.replace(" ", "") or re.search(r"bytes:\[?64", p.stdout),
          "bytes label", p.stdout[:2000])
    check("Period: 1048576" in p.stdout or "period: 1048576" in p.stdout.lower(), "period = rate",
          p.stdout[:500])


def test_ring_full_is_said():
    # Every allocation sampled (--rate 1): the ring cannot keep up, and the profile says where
    # the records were lost (the sampler's ring, not the kernel).
    out = os.path.join(tempfile.mkdtemp(prefix="cprof-heap-"), "full.pb.gz")
    r = cplib.run(["record", "--profile", "allocs", "--rate", 1, "-o", out, "--",
                   cplib.TARGETS / "malloc_stress", "--pairs", 200000], timeout=120)
    m = re.search(r"\((\d+) lost\)", r.stderr)
    check(r.returncode == 0 and m and int(m.group(1)) > 0, "no records lost", r.stderr)
    raw = cplib.go_pprof("-raw", out).stdout
    check("lost samples: %s (the sampler's ring was full)" % m.group(1) in raw,
          "the comment does not say the ring was full", raw[:600])


def test_lost_counted_after_exit():
    # A burst faster than the reader (about 9,500 samples in a tenth of a second) from a
    # process that is gone before cprof's last look: every sample is in the profile or counted
    # lost, in the summary and the profile's comment (the count was read from the sampler's
    # header only while its memory was still mapped: "0 lost" with 6,000 lost).
    out = os.path.join(tempfile.mkdtemp(prefix="cprof-heap-"), "burst.pb.gz")
    r = cplib.run(["record", "--profile", "allocs", "-v", "-o", out, "--",
                   cplib.TARGETS / "alloc_burst", 2000000], timeout=120)
    check(r.returncode == 0, "record failed", r.stderr)
    total = int(re.search(r"bytes=(\d+)", r.stdout).group(1))
    m = re.search(r"(\d+) allocation samples \((\d+) lost\)", r.stderr)
    check(m, "summary", r.stderr)
    seen, lost = int(m.group(1)), int(m.group(2))
    want = total / 524288
    check(abs(seen + lost - want) < 0.1 * want, "%d samples + %d lost, expected about %.0f" %
          (seen, lost, want), r.stderr)
    check("GOT entries redirected in 0 modules" not in r.stderr, "stats of a let-go region",
          r.stderr)
    if lost:
        raw = cplib.go_pprof("-raw", out).stdout
        check("lost samples: %d (the sampler's ring was full)" % lost in raw,
              "the profile's comment", raw[:600])


def test_record_through_exec():
    # A shell script that waits, then execs the program (as a shim does): cprof reads the
    # shell's sampler, then follows the exec to the program's.
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    script = os.path.join(d, "wrap.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\nsleep 0.3\nexec "%s" "$@"\n' % (cplib.TARGETS / "heap_leak"))
    os.chmod(script, 0o755)
    out = os.path.join(d, "exec.pb.gz")
    # The program runs long enough (its 2 GB churn) to be found after its exec.
    r = cplib.run(["record", "--profile", "heap", "-o", out, "--", script, "--now",
                   "--churn-mb", "2000"], timeout=300)
    check(r.returncode == 0 and "DONE 1" in r.stdout, "record through exec failed", r.stderr)
    leak = pprof_flat(out, "inuse_space").get("leak_a", 0) / MIB
    check(180 <= leak <= 220, "leak_a after an exec: %.1f MiB" % leak)


def test_record_short_commands():
    # A command of a few milliseconds (heap_leak with a 1 MB churn: its 200 leaks and exit)
    # is profiled whole: its sampler hands the ring over as it starts and waits until cprof
    # has its module map, so the stacks are named although the process is gone.
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    out = os.path.join(d, "short.pb.gz")
    t0 = time.monotonic()
    r = cplib.run(["record", "--profile", "heap", "-o", out, "--", cplib.TARGETS / "heap_leak",
                   "--now", "--churn-mb", "1"], timeout=120)
    check(r.returncode == 0 and "DONE 1" in r.stdout, "record of a short command", r.stderr)
    check("never started" not in r.stderr, "sampler said not started", r.stderr)
    leak = pprof_flat(out, "inuse_space").get("leak_a", 0) / MIB
    check(180 <= leak <= 220, "leak_a of a short command: %.1f MiB" % leak)
    print("short command: leak_a %.1f MiB, record took %.2f s" % (leak, time.monotonic() - t0))
    # Through two execs of short programs (a shell's exec, then env's): every region is read
    # to its end, and the last program is the profile's main binary.
    out = os.path.join(d, "chain.pb.gz")
    r = cplib.run(["record", "--profile", "heap", "-o", out, "--", "sh", "-c",
                   'exec env "$0" --now --churn-mb 1', cplib.TARGETS / "heap_leak"],
                  timeout=120)
    check(r.returncode == 0 and "DONE 1" in r.stdout, "record through execs", r.stderr)
    leak = pprof_flat(out, "inuse_space").get("leak_a", 0) / MIB
    check(180 <= leak <= 220, "leak_a after two execs: %.1f MiB" % leak)
    p = cplib.go_pprof("-top", out)
    check(re.search(r"(?m)^File: heap_leak$", p.stdout), "main binary not the last program",
          p.stdout[:300])
    # A command that allocates (almost) nothing: said, not mistaken for a sampler that never
    # started.
    r = cplib.run(["record", "--profile", "heap", "-o", os.path.join(d, "true.pb.gz"), "--",
                   "true"], timeout=60)
    check(r.returncode == 0, "record true", r.stderr)
    check("no allocation sampled" in r.stderr and "never started" not in r.stderr,
          "note for a command that allocated nothing", r.stderr)


HOSTILE_SENDER = r"""
import array, os, socket, struct, sys
fd = int(os.environ["CPROF_AGENT"].split(":")[4])
s = socket.socket(fileno=os.dup(fd))
MAGIC = 0x6670726f70616763
def send(payload, fds):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    s.sendmsg([payload], anc)
f1, f2 = os.open("/etc/passwd", os.O_RDONLY), os.open("/dev/null", os.O_RDWR)
send(b"garbage", [f1])                                        # wrong size
send(struct.pack("<QiiQ", 1, os.getpid(), 3, 1), [f1])       # wrong magic
send(struct.pack("<QiiQ", MAGIC, os.getpid(), 3, 1), [f1, f2])  # two fds
send(struct.pack("<QiiQ", MAGIC, 1, 3, 1), [f2])             # another pid
send(struct.pack("<QiiQ", MAGIC, os.getpid(), 3, 1), [f1])   # not a region
send(struct.pack("<QiiQ", MAGIC, os.getpid(), -22, 1), [])   # a failed start? not ours
keep = [bytearray(1 << 20) for _ in range(64)]               # 64 MiB allocated after it
print("SENT", len(keep))
"""


def test_record_handover_hostile():
    # The command writes garbage on the handover socket after its sampler's genuine handover:
    # cprof keeps reading the genuine region, keeps no fd it was sent, and writes a profile.
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    script = os.path.join(d, "hostile.py")
    with open(script, "w") as f:
        f.write(HOSTILE_SENDER)
    out = os.path.join(d, "hostile.pb.gz")
    r = cplib.run(["record", "--profile", "heap", "-o", out, "--", sys.executable, script],
                  timeout=120)
    check(r.returncode == 0 and "SENT 64" in r.stdout, "record of the hostile sender", r.stderr)
    check("cprof: record:" not in r.stderr and "error" not in r.stderr.lower(),
          "the garbage was taken for a region", r.stderr)
    total = sum(pprof_flat(out, "alloc_space").values()) / MIB
    print("hostile sender: %.1f MiB allocated in the profile" % total)
    # 64 MiB of bytearrays after the garbage: the genuine region was read to the end.
    check(total >= 58, "the genuine region was dropped: %.1f MiB allocated" % total, r.stderr)


REUSED_FD = r"""
import os, socket, sys, time
fd = int(os.environ["CPROF_AGENT"].split(":")[4])
mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
os.dup2(mine.fileno(), fd)              # the program's own socket now has cprof's fd number
if os.fork() == 0:                      # a watcher counts what arrives on the other end
    parent, got = os.getppid(), 0
    theirs.settimeout(0.2)
    while os.getppid() == parent:
        try:
            got += len(theirs.recv(4096))
        except socket.timeout:
            pass
    open(sys.argv[1], "w").write(str(got))
    os._exit(0)
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_record_reused_handover_fd():
    # The command closes the inherited socket, gives its number to a socket of its own, then
    # execs: the sampler of the program it becomes must send nothing there (the fd's peer is
    # not cprof) and cprof finds that sampler in /proc instead.
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    script, count = os.path.join(d, "reuse.py"), os.path.join(d, "count")
    with open(script, "w") as f:
        f.write(REUSED_FD)
    out = os.path.join(d, "reuse.pb.gz")
    r = cplib.run(["record", "--profile", "heap", "-o", out, "--", sys.executable, script, count,
                   str(cplib.TARGETS / "heap_leak"), "--now", "--churn-mb", "2000"], timeout=300)
    check(r.returncode == 0 and "DONE 1" in r.stdout, "record through a reused fd", r.stderr)
    for _ in range(50):
        if os.path.exists(count) and open(count).read():
            break
        time.sleep(0.1)
    check(open(count).read() == "0", "bytes sent to the program's own socket: %s"
          % open(count).read())
    leak = pprof_flat(out, "inuse_space").get("leak_a", 0) / MIB
    check(180 <= leak <= 220, "leak_a after the exec, found in /proc: %.1f MiB" % leak)


def test_attach_accuracy_and_ctrl_c():
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    out = os.path.join(d, "attach.pb.gz")
    with cplib.Target("heap_leak") as t:
        heap_attach_around(t, out, "DONE 1")
        leak, churn = check_leak_figures(out)
        print("attach: leak_a %.1f MiB in use, churn_b %.2f GB allocated" % (leak, churn))
        cplib.assert_target_unharmed(t.pid)
        c = agent_control(t.pid)
        check(c is not None and c[4] == 0, "sampler not off after attach", c)
        check_released(t.pid)
        # The target still works, unprofiled.
        os.kill(t.pid, signal.SIGUSR1)
        t.wait_for("DONE 2", timeout=120)
        check(agent_control(t.pid)[4] == 0, "sampler back on")


def test_attach_library_loaded_later():
    # A library dlopen()ed after the sampler started: its GOT is redirected, and its frames
    # (which the module map read at the start lacks) are unwound and named.
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    out = os.path.join(d, "dl.pb.gz")
    with cplib.Target("dlopen_burn", "--leak", 64) as t:
        heap_attach_around(t, out, "LEAKED")
        inuse = pprof_flat(out, "inuse_space")
        lib = inuse.get("library_leak_inner", 0) / MIB
        check(57 <= lib <= 71, "library_leak_inner %.1f MiB in use, expected 64 +-10%%" % lib,
              inuse)
        check(not any(k.startswith("hook_") for k in inuse), "the sampler's frames shown",
              inuse)
        tr = profiles.traces_of(out, "inuse_objects")
        named = profiles.total(tr, lambda f, l: f[:3] == ["library_leak_inner",
                                                          "leak_in_library", "main"])
        check(named >= 0.95 * profiles.total(tr, lambda f, l: "library_leak_inner" in f),
              "stacks of the library's allocations not unwound to main", tr[:4])
        cplib.assert_target_unharmed(t.pid)


def test_sigkill_leaves_sampler_off():
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    with cplib.Target("heap_leak", "--churn-mb", "200") as t:
        p = start_heap_attach(t.pid, os.path.join(d, "k.pb.gz"))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        # It notices its reader gone at its next sample at the latest.
        os.kill(t.pid, signal.SIGUSR1)
        t.wait_for("DONE 1", timeout=120)
        wait_sampler_off(t.pid)
        cplib.assert_target_unharmed(t.pid)
        os.kill(t.pid, signal.SIGUSR1)
        t.wait_for("DONE 2", timeout=120)
        check(not os.path.exists(os.path.join(d, "k.pb.gz")), "half profile left")
        # Nothing of the dead reader's is kept: its pidfd closed, the ring's memory given back.
        check_released(t.pid)


def fd_links(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out


def check_released(pid):
    """After a session: no pidfd of cprof's left in the target, and the sampler's shared
    region (its ring) holds no more than a few pages."""
    check(not any("pidfd" in l for l in fd_links(pid)), "a pidfd left in the target",
          fd_links(pid))
    shmem = int(cplib.proc_status(pid)["RssShmem"].split()[0])
    check(shmem < 1024, "the sampler's ring still resident: RssShmem %d kB" % shmem)


def test_sigterm_writes_and_turns_off():
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    out = os.path.join(d, "t.pb.gz")
    with cplib.Target("heap_leak", "--churn-mb", "200") as t:
        p = start_heap_attach(t.pid, out)
        os.kill(t.pid, signal.SIGUSR1)
        t.wait_for("DONE 1", timeout=120)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
        check(p.returncode == 0 and os.path.exists(out), "SIGTERM: no profile", err)
        check(agent_control(t.pid)[4] == 0, "sampler on after SIGTERM")
        cplib.assert_target_unharmed(t.pid)


def test_refusals():
    # Static: no dynamic loader to load the sampler with.
    with cplib.Target("heap_leak_static") as t:
        r = cplib.run(["attach", "-p", t.pid, "--profile", "heap", "--seconds", 1], timeout=60)
        cplib.error_line(r, 1, r"cprof: pid \d+: static binary")
        check(agent_control(t.pid) is None, "loaded into a static binary")
        cplib.assert_target_unharmed(t.pid)
    # record of a static or musl binary: the preload cannot work; refused before it runs,
    # no file (musl's loader would even refuse to start the program with the sampler).
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    for name, why in (("heap_leak_static", "static binary"), ("inject_musl", "musl libc")):
        out = os.path.join(d, name + ".pb.gz")
        r = cplib.run(["record", "--profile", "heap", "-o", out, "--", cplib.TARGETS / name,
                       "--now", "--churn-mb", "10"], timeout=120)
        cplib.error_line(r, 1, r"cprof: \S*%s: %s" % (name, why))
        check(not os.path.exists(out), "%s: a profile written" % name)
    # Already traced: named, nothing loaded.
    with cplib.Target("heap_leak") as t:
        s = subprocess.Popen(["strace", "-p", str(t.pid), "-o", "/dev/null"],
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        cplib._started.append(s)
        deadline = time.monotonic() + 30
        while cplib.tracer_pid(t.pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        r = cplib.run(["attach", "-p", t.pid, "--profile", "heap", "--seconds", 1], timeout=60)
        cplib.error_line(r, 1, r"cprof: pid \d+: .*traced")
        check(agent_control(t.pid) is None, "loaded into a traced process")
        s.terminate()
        s.wait(timeout=30)
    # A seccomp filter (cprof cannot tell what it forbids): refused, nothing loaded.
    with cplib.Target("inject_refuse", "seccomp") as t:
        r = cplib.run(["attach", "-p", t.pid, "--profile", "heap", "--seconds", 1], timeout=60)
        cplib.error_line(r, 1, r"cprof: pid \d+: .*seccomp")
        check(agent_control(t.pid) is None, "loaded into a process with a seccomp filter")
        cplib.assert_target_unharmed(t.pid)
    # Two processes: one at a time.
    r = cplib.run(["attach", "-p", "%d,%d" % (os.getpid(), os.getppid()), "--profile", "heap"])
    cplib.error_line(r, 2, r"cprof: attach: .*one process")
    r = cplib.run(["attach", "-p", os.getpid(), "--profile", "heap", "--rate", "0"])
    cplib.error_line(r, 2, r"cprof: attach: invalid --rate")


def test_serve_heap():
    with cplib.Target("heap_leak", "--churn-mb", "500") as t:
        port = cplib.free_port()
        s = profiles.start(["serve", "-p", t.pid, "--listen", "127.0.0.1:%d" % port])
        try:
            deadline = time.monotonic() + 30
            while "listening" not in s.stderr.readline() and time.monotonic() < deadline:
                pass
            d = tempfile.mkdtemp(prefix="cprof-heap-")
            out = os.path.join(d, "serve.pb.gz")
            curl = subprocess.Popen(["curl", "-s", "-o", out, "-w", "%{http_code}",
                                     "http://127.0.0.1:%d/debug/pprof/heap?seconds=10" % port],
                                    stdout=subprocess.PIPE, text=True)
            cplib._started.append(curl)
            deadline = time.monotonic() + 30
            while (agent_control(t.pid) or (0, 0, 0, 0, 0))[4] != 1:
                check(time.monotonic() < deadline, "serve did not start the sampler")
                time.sleep(0.05)
            os.kill(t.pid, signal.SIGUSR1)
            t.wait_for("DONE 1", timeout=120)
            code = curl.communicate(timeout=120)[0]
            check(code == "200", "heap answered %s" % code)
            inuse = pprof_flat(out, "inuse_space")
            check(180 <= inuse.get("leak_a", 0) / MIB <= 220, "serve heap leak_a", inuse)
            wait_sampler_off(t.pid)
            cplib.assert_target_unharmed(t.pid)
        finally:
            s.send_signal(signal.SIGTERM)
            s.wait(timeout=30)


if __name__ == "__main__":
    cplib.main(globals())
