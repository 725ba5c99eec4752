"""Helpers for integration tests: start fixtures, run cprof, check results.

A test script defines functions named test_*; cplib.main() runs them in order, prints
PASS/FAIL for each and exits 0 only when every check held. Processes a test starts are
killed by PID when it ends, whatever happens.
"""
import atexit
import json
import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import time
import traceback

CPROF = os.environ.get("CPROF") or str(pathlib.Path(__file__).resolve().parents[2] / "build" / "cprof")
TARGETS = pathlib.Path(os.environ.get("CPROF_TARGETS") or pathlib.Path(CPROF).parent / "tests" / "targets")
SRC = pathlib.Path(os.environ.get("CPROF_SRC") or pathlib.Path(__file__).resolve().parents[2])

_started = []

# The go command as the tests run it: the module proxy off, caches in /tmp, no cgo unless asked.
GO_ENV = dict(os.environ, HOME=os.environ.get("HOME", "/tmp"), GOCACHE="/tmp/cprof-gocache",
              GOPATH="/tmp/cprof-gopath", GOPROXY="off", GOFLAGS="", GO111MODULE="auto",
              CGO_ENABLED="0", GOTOOLCHAIN="local")


class Failure(Exception):
    pass


def check(cond, msg, *context):
    if not cond:
        extra = "".join("\n    " + str(c) for c in context)
        raise Failure(msg + extra)


def until(look, ok, tries=20, deadline=120, pause=0.2):
    """Call look() until ok(result) holds; returns the last result (the caller checks it).

    For a look that depends on scheduling (a thread on CPU at the moment of a dump): on a busy
    machine a single look may miss it, a few looks do not. Stops after `tries` looks or
    `deadline` seconds, whichever comes first."""
    end = time.monotonic() + deadline
    for i in range(tries):
        r = look()
        if ok(r) or i == tries - 1 or time.monotonic() > end:
            return r
        time.sleep(pause)


def skip(reason):
    print("skip: " + reason)
    sys.exit(77)


def _cleanup():
    for p in _started:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_cleanup)


class Target:
    """A fixture process. It prints a line containing READY on stdout when set up."""

    def __init__(self, name, *args, ready="READY", timeout=20, env=None, path=None):
        exe = str(path or (TARGETS / name))
        self.proc = subprocess.Popen([exe] + [str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        _started.append(self.proc)
        self.pid = self.proc.pid
        self.lines = []
        self._rest = b""
        if ready:
            self.wait_for(ready, timeout)

    def wait_for(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            # Lines read with an earlier match are kept for the next call, not dropped.
            while b"\n" in self._rest:
                line, self._rest = self._rest.split(b"\n", 1)
                line = line.decode(errors="replace")
                self.lines.append(line)
                if text in line:
                    return line
            if time.monotonic() >= deadline:
                break
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self._rest += chunk
        raise Failure("fixture %d did not print %r in %ss (exit %s): %s" %
                      (self.pid, text, timeout, self.proc.poll(), self.lines[-5:]))

    def tagged(self, tag, base=10):
        """{key: number} of the lines "TAG key number" the fixture printed."""
        out = {}
        for line in self.lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == tag:
                out[parts[1]] = int(parts[2], base)
        return out

    def number(self, tag):
        """The number of the line "TAG number" the fixture printed."""
        for line in self.lines:
            parts = line.split()
            if len(parts) == 2 and parts[0] == tag:
                return int(parts[1])
        raise Failure("fixture %d printed no %s line: %s" % (self.pid, tag, self.lines[-5:]))

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def run(args, timeout=120, check_rc=None, stdin=None, env=None):
    """Run cprof with args; returns CompletedProcess with text stdout/stderr."""
    p = subprocess.run([CPROF] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                       env=env)
    if check_rc is not None:
        check(p.returncode == check_rc, "cprof %s exited %d, expected %d" %
              (" ".join(map(str, args)), p.returncode, check_rc), "stderr: " + p.stderr[-2000:])
    return p


def error_line(p, rc, pattern=None, hints=True):
    """cprof (the CompletedProcess p) failed as it should: exit status rc, nothing on stdout,
    and on stderr one 'cprof: WHAT: WHY' line, matching the regular expression pattern when
    given, then only 'cprof: hint: ' lines (none at all when hints is False). Returns the line."""
    what = "cprof " + " ".join(map(str, p.args[1:]))
    check(p.returncode == rc, "%s exited %d, expected %d" % (what, p.returncode, rc), p.stderr)
    check(p.stdout == "", "%s: output on stdout despite the error" % what, p.stdout[:500])
    lines = p.stderr.splitlines()
    check(lines, "%s: no error message" % what)
    check(re.fullmatch(r"cprof: [^:]+: .+", lines[0]), "not 'cprof: WHAT: WHY'", lines[0])
    if pattern is not None:
        check(re.match(pattern, lines[0]), "%s: error not matching %r" % (what, pattern), lines[0])
    check(all(x.startswith("cprof: hint: ") for x in lines[1:]) and (hints or len(lines) == 1),
          "%s: more than one error line" % what, p.stderr)
    return lines[0]


def dump_json(pid, *extra, timeout=120):
    p = run(["dump", "-p", pid, "--format", "json"] + list(extra), timeout=timeout, check_rc=0)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise Failure("dump output is not JSON: %s\n%s" % (e, p.stdout[:2000]))


def thread_by_name(dump, name):
    for t in dump["threads"]:
        if t["name"] == name:
            return t
    raise Failure("no thread named %r in dump: %s" % (name, [t["name"] for t in dump["threads"]]))


def line_of(path, marker):
    """Line number of the first line of path containing marker."""
    path = pathlib.Path(path)
    if not path.is_absolute():
        path = SRC / path
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if marker in line:
            return i
    raise Failure("marker %r not in %s" % (marker, path))


def proc_status(pid, tid=None):
    """{field: value} of /proc/PID/status, or of thread tid's status."""
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    fields = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def tracer_pid(pid):
    return int(proc_status(pid)["TracerPid"])


def thread_states(pid):
    """{tid: state letter} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
            out[int(tid)] = s[s.rindex(")") + 2]
        except (OSError, ValueError):
            pass
    return out


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(exe):
    """A throw-away redis-server on a free loopback port, no persistence, killed at the end of
    the test: (process, port, its directory). Not waited for: each test knows what ready means."""
    import tempfile
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="cprof-redis-")
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    _started.append(p)
    return p, port, tmp


def eintr_count(t):
    """The EINTRs a counting fixture (eintr_counter, fp_waits) has seen: SIGUSR1, "COUNT"."""
    os.kill(t.pid, signal.SIGUSR1)
    line = t.wait_for("COUNT", timeout=20)
    m = re.search(r"eintr=(\d+)", line)
    check(m is not None, "bad COUNT line", line)
    return int(m.group(1))


def assert_target_unharmed(pid):
    """Not traced, no thread stopped (t/T), and the process is alive."""
    check(os.path.exists("/proc/%d" % pid), "target %d vanished" % pid)
    check(tracer_pid(pid) == 0, "target %d still traced by %d" % (pid, tracer_pid(pid)))
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            st = proc_status(pid, int(tid))
        except OSError:
            continue
        check(int(st["TracerPid"]) == 0, "thread %s traced by %s" % (tid, st["TracerPid"]))
        check(st["State"][0] not in "tT", "thread %s left %s" % (tid, st["State"]))


def go_pprof(*args, timeout=120):
    """Run `go tool pprof ARGS`; returns CompletedProcess. Fails the test on any warning."""
    env = dict(os.environ)
    env.setdefault("HOME", "/tmp")
    env["PPROF_TMPDIR"] = "/tmp"
    env.setdefault("GOCACHE", "/tmp/cprof-gocache")
    p = subprocess.run(["go", "tool", "pprof"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, env=env)
    return p


def main(namespace):
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
            print("PASS %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
        except Failure as e:
            failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s: exception" % name, flush=True)
            traceback.print_exc(file=sys.stdout)
        finally:
            _cleanup()
            _started.clear()
    print("%d/%d checks passed" % (len(tests) - failed, len(tests)))
    sys.exit(1 if failed else 0)
