#!/usr/bin/env python3
"""Run each libFuzzer target of a fuzz build (make fuzz) for a set time on a copy of its seed
corpus (tests/fuzz/corpus/NAME): exits 1 when a target found a crash, a leak, a hang or an
out-of-memory input (kept under tests/out/fuzz/), and prints how many runs each made."""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
TARGETS = ["fuzz_pprof", "fuzz_elf", "fuzz_sym_cache", "fuzz_proc"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-fuzz")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("targets", nargs="*", default=TARGETS)
    a = ap.parse_args()
    out = HERE.parent / "out" / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in a.targets:
        exe = pathlib.Path(a.build) / "tests" / "fuzz" / name
        seeds = HERE / "corpus" / name
        with tempfile.TemporaryDirectory(prefix="cprof-fuzz-") as work:
            for s in seeds.iterdir():
                shutil.copy(s, work)
            cmd = [str(exe), "-max_total_time=%d" % a.seconds, "-timeout=10",
                   "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1",
                   "-artifact_prefix=%s/%s-" % (out, name), work]
            p = subprocess.run(cmd, capture_output=True, text=True)
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", p.stderr)
        status = "ok" if p.returncode == 0 else "FOUND (exit %d)" % p.returncode
        print("%-16s %s, %s runs in %d s" % (name, status, runs.group(1) if runs else "?",
                                              a.seconds))
        if p.returncode != 0:
            failed += 1
            print("\n".join(p.stderr.splitlines()[-40:]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
