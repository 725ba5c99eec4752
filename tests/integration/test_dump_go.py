#!/usr/bin/env python3
"""cprof dump on a Go program (tests/targets/gowaits, built here with the go command): whole
stacks for parked threads and spinning goroutines that end where Go's traceback ends them,
no thread stopped for a cgo thread's start, a target left as it was, and the symbol cache of
a binary whose only build ID is Go's own, which spares later dumps its compressed DWARF."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-go-"))
CACHE = WORK / "cache"
GO_ENV = cplib.GO_ENV
ENV = dict(os.environ, CPROF_CACHE_DIR=str(CACHE), CPROF_STATS="1")

ROOTS = ("runtime.goexit", "runtime.mstart", "runtime.mcall")

_exe = {}


def gowaits(cgo=False):
    """The fixture, built once into WORK: pure Go, or with cgo (threads start in C's
    crosscall_amd64, which has no CFI)."""
    if cgo not in _exe:
        if not shutil.which("go"):
            check(False, "go is not installed (make test installs golang-go)")
        exe = WORK / ("gowaits-cgo" if cgo else "gowaits")
        env = dict(GO_ENV, CGO_ENABLED="1" if cgo else "0")
        p = subprocess.run(["go", "build", "-o", str(exe),
                            str(cplib.SRC / "tests" / "targets" / "gowaits" / "main.go")],
                           capture_output=True, text=True, timeout=300, env=env,
                           cwd=str(WORK))
        if cgo and p.returncode != 0:
            cplib.skip("go cannot build with cgo here: " + p.stderr[-500:])
        check(p.returncode == 0, "go build of gowaits failed", p.stderr)
        _exe[cgo] = exe
    return _exe[cgo]


def go_build_id(exe):
    p = subprocess.run(["go", "tool", "buildid", str(exe)], capture_output=True, text=True,
                       timeout=120, env=GO_ENV)
    check(p.returncode == 0, "go tool buildid failed", p.stderr)
    return p.stdout.strip()


def dump(pid):
    """The text dump and the CPROF_STATS numbers of one `cprof dump -p pid`."""
    p = cplib.run(["dump", "-p", pid], env=ENV, check_rc=0)
    m = re.search(r"stats: (.*)", p.stderr)
    check(m, "no stats line on stderr", p.stderr[-2000:])
    stats = dict(kv.split("=", 1) for kv in m.group(1).split())
    return p.stdout, stats


def threads(text):
    """{tid: (header, [function, ...], trailer lines)} of a text dump."""
    out = {}
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("thread "):
            continue
        tid = int(lines[0].split()[1])
        funcs = [ln.split()[1] for ln in lines[1:] if re.match(r"  #\d+ ", ln)]
        rest = [ln for ln in lines[1:] if ln.startswith("  ...")]
        out[tid] = (lines[0], funcs, rest)
    return out


def test_go_stacks_whole():
    """Parked Ms show the runtime's park chain, spinning goroutines main.spin down to
    runtime.goexit; every thread was captured and the target is neither stopped nor traced."""
    with cplib.Target("gowaits", 2, path=gowaits()) as t:
        # A spinner caught returning from Go's preemption signal (runtime.sigreturn: the walk
        # ends there, [truncated]) is more likely on a busy machine: look again, up to 10
        # times, for a dump without one, then check everything as before.
        text, stats = cplib.until(lambda: dump(t.pid), lambda r: not any(
            v[1][:1] and v[1][0].startswith("runtime.sig") for v in threads(r[0]).values()),
            tries=10)
        check(stats["captured"] == stats["threads"], "threads not captured", stats)
        th = threads(text)
        spinning = [v for v in th.values() if v[1][:1] == ["main.spin"]]
        check(len(spinning) >= 1, "no thread in main.spin", text[:3000])
        for head, funcs, _ in spinning:
            check(funcs[-1] == "runtime.goexit", "goroutine stack does not end in goexit",
                  head, funcs)
        parked = [v for v in th.values() if "runtime.notesleep" in v[1]]
        check(len(parked) >= 3, "fewer than 3 threads parked in notesleep", text[:3000])
        for head, funcs, _ in parked:
            i = funcs.index("runtime.notesleep")
            check(funcs[:i] == ["runtime.futex", "runtime.futexsleep"],
                  "parked thread's stack does not start in futexsleep", head, funcs)
        # Every stack ends where Go's own traceback ends it: nothing truncated, no error,
        # no stale words above runtime.mcall shown as frames.
        for head, funcs, rest in th.values():
            check(not rest, "stack with a trailer", head, funcs, rest)
            if "[running" not in head:
                check(funcs and funcs[-1] in ROOTS, "stack does not end at a Go root", head,
                      funcs)
        cplib.assert_target_unharmed(t.pid)


def test_go_cgo_threads_not_stopped():
    """With cgo a thread starts in crosscall_amd64 (no CFI; a walk past runtime.mstart would
    need rbp, which a live capture has not): the walk ends at runtime.mstart, so no blocked
    thread is stopped for its registers."""
    with cplib.Target("gowaits", 0, path=gowaits(cgo=True)) as t:
        text, stats = dump(t.pid)
        check(stats["captured"] == stats["threads"], "threads not captured", stats)
        check(stats["stopped"] == "0", "threads were stopped", stats, text[:3000])
        check("crosscall_amd64" not in text, "a walk went past runtime.mstart", text[:3000])
        th = threads(text)
        ends = [funcs[-1] if funcs else None for _, funcs, _ in th.values()]
        check("runtime.mstart" in ends, "no stack ends at runtime.mstart", text[:3000])
        for head, funcs, rest in th.values():
            check(not rest, "stack with a trailer", head, funcs, rest)
        cplib.assert_target_unharmed(t.pid)


def test_go_symbols_cached_by_go_build_id():
    """Without a GNU build ID, the symbol cache file is named by the Go build ID and the
    file's size, and a later dump takes its answers from it (a name changed in the file is
    what the second dump prints), not from the binary's DWARF again."""
    exe = gowaits()
    name = go_build_id(exe).encode().hex() + "%016x" % exe.stat().st_size
    with cplib.Target("gowaits", 1, path=exe) as t:
        shutil.rmtree(CACHE, ignore_errors=True)
        first, _ = dump(t.pid)
        cache = CACHE / "sym1" / name
        check(cache.exists(), "no cache file named by the Go build ID",
              sorted(os.listdir(CACHE / "sym1")) if (CACHE / "sym1").exists() else "no sym1")
        text = cache.read_text()
        check("runtime.futexsleep" in text, "futexsleep not in the cache file", text[:2000])
        cache.write_text(text.replace("runtime.futexsleep", "runtime.fromcache"))
        second, _ = dump(t.pid)
        check("runtime.futexsleep" in first and "runtime.futexsleep" not in second and
              "runtime.fromcache" in second, "the second dump did not read the cache file",
              second[:3000])
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
