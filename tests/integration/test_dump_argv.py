#!/usr/bin/env python3
"""A target that rewrote its argv area (PostgreSQL, redis): the text header shows its title
without a run of trailing spaces, and JSON `cmdline` has no trailing empty strings."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

ARGS = ["x" * 40, "y" * 40, "z" * 40]


def check_dump(fill):
    with cplib.Target("argv_title", fill, *ARGS) as t:
        d = cplib.dump_json(t.pid)
        cmd = d["cmdline"]
        check(cmd and cmd[0].startswith("argv_title: worker waiting"), "title lost", cmd)
        check(cmd[-1] != "", "%s: cmdline ends in empty strings" % fill, cmd)
        if fill == "nul":
            check(cmd == ["argv_title: worker waiting"], "nul: extra arguments", cmd)
        head = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout.splitlines()[0]
        check(re.match(r"process \d+ \(argv_title: worker waiting\) at ", head),
              "%s: header not trimmed" % fill, repr(head))


def test_nul_filled():
    check_dump("nul")


def test_space_filled():
    check_dump("space")


if __name__ == "__main__":
    cplib.main(globals())
