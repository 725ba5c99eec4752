#!/usr/bin/env python3
"""cprof record in CI: --timeout dumps a hung command's process tree and stops it (exit 124),
--leaks reports the threads and fds each process leaves at its exit, --fail-on-leak exits 3
(docs/CI.md, docs/FORMATS.md "CI: leaks and hangs")."""
import json
import os
import shutil
import subprocess
import time

import cplib
from cplib import check
import profiles


def target(name):
    return str(cplib.TARGETS / name)


def record(*args, rc=0, timeout=120, cwd=None, env=None):
    r = subprocess.run([cplib.CPROF, "record"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    check(r.returncode == rc, "record %s exited %d, expected %d" % (args, r.returncode, rc),
          r.stderr[-3000:])
    return r


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] in "ZX"
    except OSError:
        return True


def dumped_pids(text):
    return [int(l.split()[1]) for l in text.splitlines() if l.startswith("process ")]


def test_timeout_dumps_the_deadlock_and_stops_the_command():
    d = profiles.tmpdir()
    out = os.path.join(d, "prof.pb.gz")
    t0 = time.monotonic()
    r = record("--timeout", 2, "--kill-after", 2, "-o", out, "--", target("hang_suite"), rc=124)
    # Margin, not timing: 4 s expected, a hang would last until the 120 s timeout.
    check(time.monotonic() - t0 < 60, "took %.1f s" % (time.monotonic() - t0))
    err = r.stderr
    check("DEADLOCK: thread" in err, "no DEADLOCK line", err[-2000:])
    for fn in ("test_transfer", "transfer_a_to_b", "transfer_b_to_a", "main"):
        check(" %s " % fn in err, "frame %s missing from the hang dump" % fn, err[-2000:])
    pids = dumped_pids(err)
    check(len(pids) == 1 and gone(pids[0]), "the hung command is still there", pids)
    check(os.path.getsize(out) > 0, "no profile written")
    with open(os.path.join(d, "prof.hang.json")) as f:
        hang = json.load(f)
    check(hang["timeout_seconds"] == 2 and len(hang["processes"]) == 1, "hang JSON", hang.keys())
    p = hang["processes"][0]
    check(p["pid"] == pids[0] and len(p["deadlocks"]) == 1, "JSON deadlocks", p["deadlocks"])
    names = [f["function"] for t in p["threads"] for f in t["frames"]]
    check("test_transfer" in names, "JSON frames lack test_transfer", names)


def test_timeout_without_profiling_dumps_every_process():
    d = profiles.tmpdir()
    r = record("--profile", "none", "--timeout", 2, "--kill-after", 1, "--",
               target("hang_suite"), "--fork", rc=124, cwd=d)
    pids = dumped_pids(r.stderr)
    check(len(pids) == 2, "expected the runner and the hung test's process", r.stderr[-2000:])
    check("DEADLOCK: thread" in r.stderr and "wait-child" in r.stderr, "dump", r.stderr[-2000:])
    check(all(gone(p) for p in pids), "processes left running", pids)
    files = os.listdir(d)
    check(len(files) == 1 and files[0].endswith(".hang.json"), "expected only the hang JSON",
          files)


def test_timeout_default_names_pair_up():
    # Without -o the profile and the hang JSON share one name: NAME.pb.gz, NAME.hang.json,
    # even when the timeout falls in another second than the start.
    d = profiles.tmpdir()
    record("--timeout", 1.5, "--kill-after", 1, "--", target("hang_suite"), rc=124, cwd=d)
    files = sorted(os.listdir(d))
    names = {f.split(".", 1)[0] for f in files}
    check(len(files) == 2 and len(names) == 1 and
          {f.split(".", 1)[1] for f in files} == {"pb.gz", "hang.json"},
          "profile and hang JSON not named alike", files)


def test_timeout_not_reached_passes_the_status_through():
    r = record("--profile", "none", "--timeout", 30, "--", "sh", "-c", "exit 5", rc=5)
    check("timeout" not in r.stderr, "a timeout note without a timeout", r.stderr)


def leaks(mode, *extra, rc=0):
    d = profiles.tmpdir()
    js = os.path.join(d, "leaks.json")
    r = record("--profile", "none", "--leaks-json", js, *extra, "--", target("exit_leak"),
               *mode, rc=rc)
    with open(js) as f:
        return r, json.load(f)


def check_leaked(mode):
    r, j = leaks([mode])
    err = r.stderr
    check("LEAKED at exit of process" in err, "no leak report (%s)" % mode, err)
    check("leaked_worker" in err and "created by thread" in err, "leaked thread", err)
    created = err[err.index("created by thread"):]
    check("spawn_worker" in created and "main" in created, "creation stack", created)
    check("io-read" in err and "no timeout" in err, "wait kind of the leaked thread", err)
    check(err.count("\nfd ") == 4 and "socket:[" in err and "pipe:[" in err, "leaked fds", err)
    check(j["leaked"] is True and j["processes_checked"] == 1, "JSON summary", j)
    p = j["processes"][0]
    check(p["exit_code"] == 0 and len(p["threads"]) == 1 and len(p["fds"]) == 4, "JSON", p)
    th = p["threads"][0]
    fns = [f["function"] for f in th["thread"]["frames"]]
    cfns = [f["function"] for f in th["created_by"]["frames"]]
    check("leaked_worker" in fns and "spawn_worker" in cfns, "JSON stacks", fns, cfns)
    check(th["thread"]["wait"]["kind"] == "io-read", "JSON wait", th["thread"]["wait"])
    check(th["created_by"]["tid"] == p["pid"], "creator tid", th["created_by"]["tid"])
    kinds = sorted(f["object"].split(":")[0] for f in p["fds"])
    check(kinds == ["pipe", "pipe", "socket", "socket"], "fd objects", p["fds"])


def test_leaks_exit():
    check_leaked("exit")


def test_leaks_return_from_main():
    check_leaked("return")


def test_leaks_underscore_exit():
    check_leaked("_exit")


def test_leaks_with_profiling():
    """--leaks and the CPU profile together: both written, the status passed through."""
    d = profiles.tmpdir()
    out = os.path.join(d, "p.pb.gz")
    r = record("--leaks", "-F", 499, "-o", out, "--", target("exit_leak"), "exit", rc=0)
    check("LEAKED at exit" in r.stderr and "leaked_worker" in r.stderr, "leak report", r.stderr)
    check(os.path.getsize(out) > 0 and "wrote " + out in r.stderr, "profile", r.stderr)
    profiles.pprof("-raw", out)


def test_fail_on_leak():
    r, j = leaks(["exit"], "--fail-on-leak", rc=3)
    check(j["leaked"], "leaked false")


def test_clean_program_shows_nothing():
    for mode in ("exit", "return", "_exit"):
        r, j = leaks([mode, "clean"], "--fail-on-leak", rc=0)
        check("LEAKED" not in r.stderr, "a clean program reported leaks", r.stderr)
        check(j == {"processes": [], "processes_checked": 1, "leaked": False}, "JSON", j)


def test_leaks_keep_status_signals_and_children():
    record("--profile", "none", "--leaks", "--", "sh", "-c", "exit 7", rc=7)
    record("--profile", "none", "--leaks", "--", "sh", "-c", "kill -TERM $$", rc=143)
    # Children and grandchildren run, are waited for and checked as they exit.
    r = record("--profile", "none", "--leaks", "--", "sh", "-c",
               "sh -c 'sleep 0.1; echo grandchild' ; echo done", rc=0)
    check("processes checked" in r.stderr, "no summary", r.stderr)
    # Stopped and continued: the job-control stop is kept, not swallowed (a traced process in
    # its group stop shows state t, not T).
    r = record("--profile", "none", "--leaks", "--", "sh", "-c",
               "sleep 5 & p=$!; kill -STOP $p; sleep 0.2; "
               "grep -q '^State:.[Tt]' /proc/$p/status && echo stopped; kill -CONT $p; kill $p; "
               "wait $p; echo $?", rc=0)
    check(r.stdout.split() == ["stopped", "143"], "job control under --leaks", r.stdout)


def test_go_test_binary():
    """A go test binary: its runtime's threads are not leaks; a failing test's status passes."""
    if not shutil.which("go"):
        cplib.skip("no go")
    d = profiles.tmpdir()
    with open(os.path.join(d, "go.mod"), "w") as f:
        f.write("module cigo\ngo 1.19\n")
    with open(os.path.join(d, "x_test.go"), "w") as f:
        f.write('package cigo\nimport (\n"os"\n"testing"\n)\n'
                'func TestOK(t *testing.T) {}\n'
                'func TestFail(t *testing.T) { if os.Getenv("CIGO_FAIL") != "" '
                '{ t.Fatal("asked to fail") } }\n')
    env = dict(os.environ, GOCACHE="/tmp/cprof-gocache", GOFLAGS="-mod=mod", GOPROXY="off")
    subprocess.run(["go", "test", "-c", "-o", "cigo.test", "."], cwd=d, env=env, check=True,
                   capture_output=True, timeout=300)
    r = record("--profile", "none", "--timeout", 120, "--fail-on-leak", "--",
               os.path.join(d, "cigo.test"), rc=0)
    check("LEAKED" not in r.stderr and "1 process checked" in r.stderr, "go test", r.stderr)
    env["CIGO_FAIL"] = "1"
    record("--profile", "none", "--fail-on-leak", "--", os.path.join(d, "cigo.test"), rc=1,
           env=env)


def test_python_thread_left_running():
    """A Python test that leaves a daemon thread (what a pytest test leaks): reported at the
    interpreter's exit with the native stack that created it; wrappers (pyenv's shell scripts)
    report nothing."""
    d = profiles.tmpdir()
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write("import threading, time\n"
                "threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()\n"
                "print('ok')\n")
    r = record("--profile", "none", "--fail-on-leak", "--", "python3", script, rc=3)
    check(r.stderr.count("LEAKED at exit") == 1 and "python" in r.stderr, "one leak", r.stderr)
    created = r.stderr[r.stderr.index("created by thread"):]
    check("pthread_create" in created, "creation stack", created[:1500])


def test_pytest_leaving_a_thread():
    """python3 -m pytest (Debian's) on a test that starts a thread it never joins: the
    interpreter's exit shows the thread with the stack that created it; --fail-on-leak turns a
    passing run into exit 3, and a suite that joins its threads passes untouched."""
    py = "/usr/bin/python3"
    check(subprocess.run([py, "-m", "pytest", "--version"], capture_output=True).returncode
          == 0, "Debian's python3-pytest missing (make test installs it)")
    d = profiles.tmpdir()
    with open(os.path.join(d, "test_leaky.py"), "w") as f:
        f.write("import threading, time\n\n\n"
                "def test_starts_a_worker():\n"
                "    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n")
    with open(os.path.join(d, "test_clean.py"), "w") as f:
        f.write("import threading\n\n\n"
                "def test_joins_its_worker():\n"
                "    t = threading.Thread(target=sum, args=([1, 2],))\n"
                "    t.start()\n"
                "    t.join()\n")
    env_args = ["-p", "no:cacheprovider", "-q"]
    r = record("--profile", "none", "--fail-on-leak", "--", py, "-m", "pytest", *env_args,
               os.path.join(d, "test_leaky.py"), rc=3, timeout=200)
    check(r.stderr.count("LEAKED at exit") == 1, "one leak reported", r.stderr[-2000:])
    check("pthread_create" in r.stderr[r.stderr.index("created by thread"):],
          "creation stack", r.stderr[-2000:])
    r = record("--profile", "none", "--fail-on-leak", "--", py, "-m", "pytest", *env_args,
               os.path.join(d, "test_clean.py"), rc=0, timeout=200)
    check("LEAKED" not in r.stderr, "a clean suite reported", r.stderr[-2000:])


def test_meson_test_wrapper():
    """meson test --wrapper runs each test under cprof record --timeout (this project's own)."""
    build = os.environ.get("CPROF_BUILD") or str(cplib.SRC / "build")
    if not shutil.which("meson") or not os.path.exists(os.path.join(build, "build.ninja")):
        check(False, "no meson or no build directory (make test installs and builds both)")
    wrapper = "%s record --profile none --timeout 300 --" % cplib.CPROF
    r = subprocess.run(["meson", "test", "-C", build, "--no-rebuild", "--suite", "unit",
                        "--wrapper", wrapper, "test_util", "test_leak"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, MESON_TESTTHREADS="1"))
    check(r.returncode == 0, "meson test --wrapper failed", r.stdout[-2000:], r.stderr[-2000:])
    check("Ok:                 2" in r.stdout or "Ok: 2" in " ".join(r.stdout.split()),
          "expected 2 tests ok", r.stdout[-1000:])


def test_ctest_under_record():
    """ctest run under cprof record: every test process is followed, a leaking test reported."""
    if not shutil.which("cmake") or not shutil.which("ctest"):
        check(False, "no cmake (make test installs it)")
    d = profiles.tmpdir()
    with open(os.path.join(d, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.10)\nproject(t NONE)\nenable_testing()\n"
                "add_test(NAME clean COMMAND %s exit clean)\n"
                "add_test(NAME leaky COMMAND %s exit)\n" % (target("exit_leak"),
                                                           target("exit_leak")))
    subprocess.run(["cmake", "-S", d, "-B", os.path.join(d, "b")], capture_output=True,
                   check=True, timeout=120)
    r = record("--profile", "none", "--timeout", 120, "--fail-on-leak", "--", "ctest",
               "--test-dir", os.path.join(d, "b"), rc=3, timeout=200)
    check(r.stderr.count("LEAKED at exit") == 1 and "exit_leak exit)" in r.stderr,
          "expected one leaking test", r.stderr[-2000:])


if __name__ == "__main__":
    cplib.main(globals())
