#!/usr/bin/env python3
"""The source tree keeps the layout rules (tests/check_layout.py): file and function sizes,
no document outside the repository cited, includes only from the layers below."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "..", "check_layout.py")


def main():
    if subprocess.run(["git", "rev-parse", "--git-dir"], cwd=HERE, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        print("skip: not a git checkout (the checker lists files with git ls-files)")
        return 77
    p = subprocess.run([sys.executable, CHECKER, "--all"], cwd=HERE, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        print("FAIL: the layout rules are broken (see the lines above)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
