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
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-secin-"))


def report_rss(path):
    """(stderr, exit status, peak RSS in MB) of `cprof report path`."""
    p = subprocess.Popen([cplib.CPROF, "report", str(path)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    return err, os.waitstatus_to_exitcode(status), ru.ru_maxrss // 1024


def test_gzip_bombs():
    """Empty samples ("12 00": 2 bytes, a struct of ~80 once decoded), 240 MiB of them in
    250 KB, and 16 MiB of them in 16 KB (inflates under the floor, stopped by the decode
    budget): both refused as too large, well under 1 GB (this is the ASan build)."""
    for n in (120 << 20, (8 << 20) - 16):
        bomb = WORK / "bomb.pb.gz"
        bomb.write_bytes(gzip.compress(b"\x12\x00" * n, 9))
        t0 = time.monotonic()
        err, rc, rss = report_rss(bomb)
        check(rc == 1 and "too large to read" in err, "bomb not refused", rc, err)
        check(rss < 700, "a %d-byte bomb took %d MB" % (bomb.stat().st_size, rss))
        check(time.monotonic() - t0 < 20, "the bomb took %.1f s" % (time.monotonic() - t0))


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
        t0 = time.monotonic()
        p = cplib.run(["dump", "-p", t.pid], env=env, check_rc=0)
        took = time.monotonic() - t0
        check("DWARF not read: its sections inflate to 128 MiB" in p.stderr,
              "the dump did not say so", p.stderr)
        check("bomb_wait" in p.stdout, "the symbol table did not name the frame", p.stdout)
        check(took < 10, "the dump took %.1f s" % took)
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
