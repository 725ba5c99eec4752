#!/usr/bin/env python3
"""Hostile inputs cost bounded work: a gzip bomb handed to `cprof report` stops early with an
error, its memory near the input's size, never near 1 GB."""
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


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
