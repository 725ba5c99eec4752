#!/usr/bin/env python3
"""A real program built with frame pointers: a PostgreSQL 15 backend (Debian's build) waiting
on a row lock shows the whole chain gdb and eu-stack show, from epoll_wait through
XactLockTableWait and heap_update to PostgresMain and main, captured without a stop, and its
rewritten argv shows without padding."""
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"
CHAIN = ["WaitEventSetWait", "WaitLatch", "ProcSleep", "LockAcquireExtended",
         "XactLockTableWait", "heap_update", "standard_ExecutorRun", "PortalRun",
         "PostgresMain", "PostmasterMain", "main"]


def as_postgres(args, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args, capture_output=True,
                          text=True, timeout=120, **kw)


def psql(port, sql, background=False):
    args = ["runuser", "-u", "postgres", "--", PGBIN + "/psql", "-h", "/tmp", "-p", str(port),
            "-U", "postgres", "-q", "-At", "-c", sql]
    if background:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cplib._started.append(p)
        return p
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.strip()


def test_backend_waiting_on_a_row_lock():
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        check(False, "user postgres missing: is Debian's postgresql package installed?")
    check(os.path.exists(PGBIN + "/postgres"), "PostgreSQL 15 not installed")
    tmp = tempfile.mkdtemp(prefix="cprof-pg-")
    os.chmod(tmp, 0o755)
    shutil.chown(tmp, "postgres")
    data = os.path.join(tmp, "data")
    port = cplib.free_port()
    r = as_postgres([PGBIN + "/initdb", "-D", data, "-A", "trust"])
    check(r.returncode == 0, "initdb failed", r.stderr)
    r = as_postgres([PGBIN + "/pg_ctl", "-D", data, "-w", "-l", os.path.join(tmp, "log"), "-o",
                     "-p %d -k /tmp -c listen_addresses=''" % port, "start"])
    check(r.returncode == 0, "postgres did not start", r.stderr)
    try:
        psql(port, "create table t(id int primary key, v int); insert into t values (1, 0);")
        psql(port, "begin; update t set v = 1 where id = 1; select pg_sleep(60); commit;",
             background=True)
        time.sleep(0.5)
        psql(port, "update t set v = 2 where id = 1;", background=True)
        backend = ""
        for _ in range(100):
            backend = psql(port, "select pid from pg_stat_activity where wait_event_type = 'Lock'")
            if backend:
                break
            time.sleep(0.1)
        check(backend.isdigit(), "no backend waiting on a lock", backend)
        env = dict(os.environ, CPROF_STATS="1")
        p = cplib.run(["dump", "-p", backend, "--format", "json"], check_rc=0, env=env)
        d = __import__("json").loads(p.stdout)
        funcs = [f["function"] for f in d["threads"][0]["frames"]]
        at = 0
        for fn in CHAIN:
            check(fn in funcs[at:], "%s missing from the backend's stack" % fn, funcs)
            at = funcs.index(fn, at) + 1
        check(len(funcs) >= 20, "stack shorter than eu-stack's 24 frames", funcs)
        check(re.search(r"stopped=0\b", p.stderr), "the backend was stopped", p.stderr)
        text = cplib.run(["dump", "-p", backend], check_rc=0).stdout
        head = text.splitlines()[0]
        check(re.search(r"waiting\) at ", head), "header padded or wrong", repr(head))
        check(d["cmdline"] and d["cmdline"][-1] != "", "cmdline ends in empty strings",
              d["cmdline"])
        cplib.assert_target_unharmed(int(backend))
    finally:
        as_postgres([PGBIN + "/pg_ctl", "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    cplib.main(globals())
