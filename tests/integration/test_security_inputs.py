#!/usr/bin/env python3
"""Hostile inputs cost bounded work: a gzip bomb handed to `cprof report` stops early with an
error, its memory near the input's size, never near 1 GB; a debug file found through the
target's own .gnu_debuglink whose compressed .debug_info inflates to 128 MiB is not read (the
dump says so and names the function from the symbol table)."""
import gzip
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-secin-"))


def report_rss(path):
    """(stderr, exit status, peak RSS in MB) of `cprof report path`."""
    # ASan keeps freed memory in a quarantine (256 MB by default): measure cprof, not it.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"),
                                               "quarantine_size_mb=16") if x)
    p = subprocess.Popen([cplib.CPROF, "report", str(path)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    return err, os.waitstatus_to_exitcode(status), ru.ru_maxrss // 1024


def test_gzip_bombs():
    """Empty samples ("12 00": 2 bytes, a struct of ~80 if decoded all at once): 240 MiB of
    them in 250 KB is refused as too large (it inflates past the cap); 16 MiB of them in 16 KB
    (under the cap) is read a sample at a time and refused for what it is, no profile (no
    string table); 4 Mi valid one-value samples in 16 MiB are read, merged into one: all well
    under 1 GB (this is the ASan build)."""
    valid = b"\x32\x00\x0a\x04\x08\x00\x10\x00" + b"\x12\x02\x10\x01" * ((4 << 20) - 16)
    cases = ((b"\x12\x00" * (120 << 20), 1, "too large to read"),
             (b"\x12\x00" * ((8 << 20) - 16), 1, "no pprof string table"),
             (valid, 0, ""))
    for data, want_rc, want_err in cases:
        bomb = WORK / "bomb.pb.gz"
        bomb.write_bytes(gzip.compress(data, 9))
        err, rc, rss = report_rss(bomb)
        check(rc == want_rc and want_err in err, "bomb: wrong outcome", rc, err)
        check(rc == 0 or len(err.strip().splitlines()) == 1, "not one line", err)
        check(rss < 700, "a %d-byte bomb took %d MB" % (bomb.stat().st_size, rss))


APP = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((noinline)) void bomb_wait(void) { for (;;) pause(); }
int main(void) { printf("READY\n"); fflush(stdout); bomb_wait(); }
"""


def test_debuglink_bomb():
    if not shutil.which("objcopy") or not shutil.which("cc"):
        cplib.skip("needs cc and objcopy")
    d = WORK / "bomb"
    d.mkdir()
    (d / "app.c").write_text(APP)
    app, dbg, big, zeros = d / "app", d / "app.debug", d / "app.big", d / "zeros"
    with open(zeros, "wb") as f:
        f.truncate(128 << 20)
    for cmd in (["cc", "-g", "-O1", "-o", app, d / "app.c"],
                ["objcopy", "--only-keep-debug", app, big],
                ["objcopy", "--strip-debug", app],
                ["objcopy", "--update-section", ".debug_info=%s" % zeros, big],
                ["objcopy", "--compress-debug-sections=zlib", big, dbg],
                ["objcopy", "--add-gnu-debuglink=%s" % dbg, app]):
        subprocess.run([str(c) for c in cmd], check=True, cwd=d)
    zeros.unlink()
    big.unlink()
    check(dbg.stat().st_size < (1 << 20), "the bomb is not small", dbg.stat().st_size)
    env = dict(os.environ, CPROF_CACHE_DIR="")
    with cplib.Target("app", path=app) as t:
        p = cplib.run(["dump", "-p", t.pid], env=env, check_rc=0)
        check("DWARF not read: its sections inflate to 128 MiB" in p.stderr,
              "the dump did not say so", p.stderr)
        check("bomb_wait" in p.stdout, "the symbol table did not name the frame", p.stdout)
        cplib.assert_target_unharmed(t.pid)


def _varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(num, payload):
    """A length-delimited field (bytes) or a varint field (int)."""
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _profile(strings, functions, locations, samples, mappings=()):
    """profile.proto: functions [(id, name)], locations [(id, mapping_id, [function ids])],
    samples [([location ids], value)], mappings [(id, filename)]."""
    pb = _field(1, _field(1, strings.index("samples")) + _field(2, strings.index("count")))
    for mid, fname in mappings:
        pb += _field(3, _field(1, mid) + _field(2, 0x1000) + _field(3, 0x2000) +
                     _field(5, strings.index(fname)))
    for lid, mid, fns in locations:
        body = _field(1, lid) + (_field(2, mid) if mid else b"") + _field(3, 0x1000 + lid)
        for fid in reversed(fns):
            body += _field(4, _field(1, fid))
        pb += _field(4, body)
    for fid, name in functions:
        pb += _field(5, _field(1, fid) + _field(2, strings.index(name)))
    for locs, value in samples:
        pb += _field(2, _field(1, b"".join(_varint(x) for x in locs)) +
                     _field(2, _varint(value)))
    for s in strings:
        pb += _field(6, s.encode())
    return pb


def report(data, *args):
    path = WORK / "in.pb"
    path.write_bytes(data)
    return cplib.run(["report", path, *args])


def test_readers_never_lie():
    """Sums past int64 are held at its limit and said; a folded line over the string cap
    ends in [truncated]; a location whose mapping id has no mapping is read (as go tool
    pprof reads it)."""
    big = (1 << 63) - 5
    pb = _profile(["", "samples", "count", "f", "g"], [(1, "f"), (2, "g")],
                  [(1, 0, [1]), (2, 0, [2])], [([1], big), ([1], big), ([2], 3)])
    p = report(pb, "--format", "folded")
    check(p.returncode == 0 and "f 9223372036854775807" in p.stdout.splitlines(),
          "the sum was not held at INT64_MAX", p.stdout, p.stderr)
    check("int64" in p.stderr, "saturation not said", p.stderr)
    p = report(pb)
    check(p.returncode == 0 and "int64" in p.stderr, "top table: saturation not said",
          p.stdout, p.stderr)

    names = ["fn_%04d_" % i + "x" * 40 for i in range(2000)]
    strings = ["", "samples", "count"] + names
    pb = _profile(strings, [(i + 1, n) for i, n in enumerate(names)],
                  [(i + 1, 0, [i + 1]) for i in range(2000)], [(list(range(1, 2001)), 1)])
    p = report(pb, "--format", "folded")
    lines = p.stdout.splitlines()
    check(p.returncode == 0 and len(lines) == 1 and lines[0].endswith(";[truncated] 1"),
          "a long folded line not marked", p.returncode, lines[0][-200:] if lines else "",
          p.stderr)

    pb = _profile(["", "samples", "count", "f", "/bin/app"], [(1, "f")], [(1, 7, [1])],
                  [([1], 4)], mappings=[(1, "/bin/app")])
    p = report(pb, "--format", "folded")
    check(p.returncode == 0 and p.stdout == "f 4\n", "a missing mapping id refused",
          p.stdout, p.stderr)
    if shutil.which("go"):
        g = cplib.go_pprof("-traces", WORK / "in.pb")
        check(g.returncode == 0, "go tool pprof refuses it too", g.stderr)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
