#!/usr/bin/env python3
"""Frames nothing can name (a stripped binary's static functions) read the same everywhere:
the thread dump and the folded profile print one module+0xoffset for one frame (the pc as
unwound, a return address for callers), and pprof keeps them apart, one function per address,
instead of merging a module's unnamed functions into one "[module]"."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

NAME = "cpu_split-stripped"


def stripped_copy(tmp):
    exe = os.path.join(tmp, NAME)
    shutil.copy(str(cplib.TARGETS / "cpu_split"), exe)
    # Without its build ID too: cprof would find the unstripped file's DWARF by it.
    r = subprocess.run(["objcopy", "--strip-all", "--remove-section=.note.gnu.build-id", exe],
                       capture_output=True, text=True)
    check(r.returncode == 0, "objcopy failed", r.stderr)
    return exe


def test_dump_and_profiles_agree():
    with tempfile.TemporaryDirectory() as tmp:
        exe = stripped_copy(tmp)
        with cplib.Target(NAME, "--seconds", "30", path=exe, ready=None) as t:
            time.sleep(0.3)
            dumped = set()
            for _ in range(5):
                text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
                # Caller frames (#1 and deeper) in the stripped module.
                dumped |= set(re.findall(r"^  #[1-9]\d* (%s\+0x[0-9a-f]+)$" % re.escape(NAME),
                                         text, re.M))
            check(dumped, "no unnamed caller frame in the dumps", text)
            folded = os.path.join(tmp, "p.folded")
            pb = os.path.join(tmp, "p.pb.gz")
            cplib.run(["attach", "-p", t.pid, "--seconds", "2", "--format", "folded",
                       "-o", folded], check_rc=0)
            cplib.run(["attach", "-p", t.pid, "--seconds", "2", "-o", pb], check_rc=0)
        with open(folded) as f:
            names = set(re.findall(r"%s\+0x[0-9a-f]+" % re.escape(NAME), f.read()))
        check(dumped & names, "dump and folded profile name the same frames differently",
              sorted(dumped), sorted(names))
        top = cplib.go_pprof("-top", "-nodecount=50", pb)
        check(top.returncode == 0 and not top.stderr.strip(), "pprof failed or warned", top.stderr)
        check("[%s]" % NAME not in top.stdout, "unnamed functions merged into one", top.stdout)
        distinct = set(re.findall(r"%s\+0x[0-9a-f]+" % re.escape(NAME), top.stdout))
        check(len(distinct) >= 2, "pprof shows fewer than 2 distinct unnamed functions",
              top.stdout)
        # Nothing resolved in the stripped module: its mapping claims no functions, so that
        # pprof may still symbolize it from a binary with symbols.
        raw = cplib.go_pprof("-raw", pb).stdout
        mapping = [l for l in raw[raw.index("Mappings"):].splitlines() if NAME in l]
        check(mapping and "[FN]" not in mapping[0], "the stripped mapping claims functions",
              mapping)


if __name__ == "__main__":
    cplib.main(globals())
