#!/usr/bin/env python3
"""Output files (-o) are written safely: no predictable temporary (nothing named in the folder
until the file is complete, nothing left when cprof is killed), an existing file keeps its
owner and mode, /proc is refused, a FIFO is said to be written in place, and a full disk is
reported as "No space left on device"."""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-secout-"))


def test_killed_writer_leaves_nothing():
    """While a --stuck dump runs, and after it is killed, the folder holds no temporary."""
    out = WORK / "killed" / "dump.txt"
    out.parent.mkdir()
    with cplib.Target("demo") as t:
        p = subprocess.Popen([cplib.CPROF, "dump", "--stuck", "3", "-o", str(out), "-p",
                              str(t.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        during = os.listdir(out.parent)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        check(during == [], "a named temporary while writing", during)
        check(os.listdir(out.parent) == [], "left behind by a killed cprof",
              os.listdir(out.parent))
        cplib.assert_target_unharmed(t.pid)


def test_existing_file_keeps_owner_and_mode():
    out = WORK / "theirs.txt"
    out.write_text("old\n")
    os.chown(out, 65534, 65534)
    os.chmod(out, 0o600)
    with cplib.Target("demo") as t:
        cplib.run(["dump", "-o", out, "-p", t.pid], check_rc=0)
    st = out.stat()
    check(st.st_uid == 65534 and st.st_gid == 65534 and (st.st_mode & 0o777) == 0o600,
          "owner or mode changed", st)
    check("Thread" in out.read_text() or "thread" in out.read_text(), "not the dump",
          out.read_text()[:300])
    check(sorted(os.listdir(WORK)) == ["killed", "theirs.txt"] or
          "theirs.txt" in os.listdir(WORK), "files left", os.listdir(WORK))


def test_proc_and_fifo():
    with cplib.Target("demo") as t:
        p = cplib.run(["dump", "-o", "/proc/self/comm", "-p", t.pid])
        cplib.error_line(p, 1, r"cprof: /proc/self/comm: cannot write: in /proc or /sys", hints=False)
        fifo = WORK / "fifo"
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
        reader.start()
        p = cplib.run(["dump", "-o", fifo, "-p", t.pid], check_rc=0)
        reader.join(timeout=30)
        check("a FIFO, not a regular file: written in place" in p.stderr, "no note", p.stderr)
        check(got and "demo" in got[0], "nothing read from the FIFO", got)


def test_full_disk():
    with cplib.Target("demo") as t:
        p = cplib.run(["dump", "-o", "/dev/full", "-p", t.pid])
        check(p.returncode == 1 and "No space left on device" in p.stderr, "/dev/full",
              p.returncode, p.stderr)
        mnt = WORK / "mnt"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mnt)]).returncode:
            cplib.skip("cannot mount a tmpfs")
        try:
            p = cplib.run(["dump", "-o", mnt / "d.txt", "-p", t.pid])
            check(p.returncode == 1 and "No space left on device" in p.stderr,
                  "full tmpfs", p.returncode, p.stderr)
            check(os.listdir(mnt) == [], "a partial file left", os.listdir(mnt))
            try:        # fill what is left
                with open(mnt / "filler", "wb") as f:
                    while True:
                        f.write(b"x" * 512)
                        f.flush()
            except OSError:
                pass
            p = cplib.run(["attach", "-p", t.pid, "--seconds", "1", "--format", "svg", "-o",
                           mnt / "p.svg"])
            check(p.returncode == 1 and "No space left on device" in p.stderr,
                  "attach to a full tmpfs", p.returncode, p.stderr)
            check(os.listdir(mnt) == ["filler"], "a partial profile left", os.listdir(mnt))
        finally:
            subprocess.run(["umount", str(mnt)])


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
