#!/usr/bin/env python3
"""Run every test: unit executables from the build and integration scripts.

Each test is a program: exit 0 passes, 77 skips (its last output line says why), anything
else fails. Output of each test goes to tests/out/NAME.log; failures print their tail.
The run ends with the line "N passed, N failed".
"""
import argparse
import concurrent.futures
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def discover(build, pattern):
    tests = []
    unit_dir = build / "tests" / "unit"
    if unit_dir.is_dir():
        for p in sorted(unit_dir.iterdir()):
            if p.name.startswith("test_") and os.access(p, os.X_OK) and p.is_file():
                tests.append(("unit/" + p.name, [str(p)]))
    for p in sorted((ROOT / "tests" / "integration").glob("test_*")):
        if p.suffix == ".py":
            tests.append(("integration/" + p.name, [sys.executable, str(p)]))
        elif p.suffix == ".sh":
            tests.append(("integration/" + p.name, ["bash", str(p)]))
    if pattern:
        tests = [t for t in tests if any(s in t[0] for s in pattern)]
    return tests


EXCLUSIVE_MARK = "# cprof-test: exclusive"


def exclusive(argv):
    """A test that loads the machine on purpose (it says so in its first lines) runs alone."""
    path = pathlib.Path(argv[-1])
    if path.suffix != ".py":
        return False
    with open(path, errors="replace") as f:
        return any(line.startswith(EXCLUSIVE_MARK) for _, line in zip(range(10), f))


def run_one(name, argv, env, outdir, timeout):
    log = outdir / (name.replace("/", "_") + ".log")
    start = time.monotonic()
    with open(log, "wb") as f:
        try:
            p = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                               cwd=str(ROOT), timeout=timeout, stdin=subprocess.DEVNULL)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return name, rc, time.monotonic() - start, log


def tail(path, n=30):
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return lines[-n:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("only", nargs="*", help="run tests whose name contains one of these")
    args = ap.parse_args()

    build = pathlib.Path(args.build).resolve()
    outdir = ROOT / "tests" / "out"
    outdir.mkdir(exist_ok=True)
    env = dict(os.environ)
    cprof = build / "cprof"
    if not cprof.exists():
        cprof = build / "cmd" / "cprof"
    env["CPROF"] = str(cprof)
    env["CPROF_BUILD"] = str(build)
    env["CPROF_TARGETS"] = str(build / "tests" / "targets")
    env["CPROF_SRC"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

    tests = discover(build, args.only)
    if not tests:
        print("no tests found (is the build at %s?)" % build)
        print("0 passed, 1 failed")
        return 1

    passed = failed = skipped = 0

    def report(name, rc, secs, log):
        nonlocal passed, failed, skipped
        if rc == 0:
            passed += 1
            print("PASS %-45s %6.1fs" % (name, secs), flush=True)
        elif rc == 77:
            skipped += 1
            why = (tail(log, 1) or ["no reason given"])[0]
            print("SKIP %-45s %s" % (name, why), flush=True)
        else:
            failed += 1
            print("FAIL %-45s %6.1fs (exit %s, log %s)" % (name, secs, rc, log), flush=True)
            for line in tail(log):
                print("    | " + line)

    shared = [t for t in tests if not exclusive(t[1])]
    alone = [t for t in tests if exclusive(t[1])]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, n, a, env, outdir, args.timeout) for n, a in shared]
        for fut in concurrent.futures.as_completed(futures):
            report(*fut.result())
    # Tests that load the machine on purpose run after the others, one at a time.
    for n, a in alone:
        report(*run_one(n, a, env, outdir, args.timeout))
    if skipped:
        print("%d skipped" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
