#!/usr/bin/env python3
"""Block profiles of real servers under load open in go tool pprof without warnings and show
their main wait sites: redis-server under redis-benchmark (its event loop in epoll_wait),
PostgreSQL backends under pgbench (the latch: WaitEventSetWait)."""
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
import profiles  # noqa: E402
import test_real_postgres as pg  # noqa: E402


def test_redis_block_profile():
    exe, bench = shutil.which("redis-server"), shutil.which("redis-benchmark")
    check(exe and bench, "redis-server / redis-benchmark not installed (make test installs them)")
    p, port, tmp = cplib.start_redis(exe)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists("/proc/%d/task" % p.pid):
        time.sleep(0.05)
    time.sleep(0.5)
    b = subprocess.Popen([bench, "-p", str(port), "-n", "100000000", "-c", "4", "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    cplib._started.append(b)
    time.sleep(0.5)
    out = os.path.join(profiles.tmpdir(), "redis.pb.gz")
    r = cplib.run(["attach", "-p", p.pid, "--profile", "block", "--seconds", 2, "-o", out],
                  timeout=120)
    check(r.returncode == 0, "attach exited %d" % r.returncode, r.stderr)
    top = profiles.pprof("-top", out)
    tags = profiles.pprof("-tags", out)
    check("epoll_wait" in top and "aeMain" in profiles.pprof("-traces", out),
          "no event loop in epoll_wait (aeMain)", top)
    check(re.search(r"^\s+[\d.]+\w*s \(\s*[\d.]+%\): poll$", tags, re.M), "no wait=poll", tags)


def test_postgres_block_profile():
    check(os.path.exists(pg.PGBIN + "/postgres") and os.path.exists(pg.PGBIN + "/pgbench"),
          "PostgreSQL 15 not installed")
    tmp = tempfile.mkdtemp(prefix="cprof-pgb-")
    os.chmod(tmp, 0o755)
    shutil.chown(tmp, "postgres")
    data = os.path.join(tmp, "data")
    port = cplib.free_port()
    r = pg.as_postgres([pg.PGBIN + "/initdb", "-D", data, "-A", "trust"])
    check(r.returncode == 0, "initdb failed", r.stderr)
    r = pg.as_postgres([pg.PGBIN + "/pg_ctl", "-D", data, "-w", "-l", os.path.join(tmp, "log"),
                        "-o", "-p %d -k /tmp -c listen_addresses=''" % port, "start"])
    check(r.returncode == 0, "postgres did not start", r.stderr)
    try:
        bench = ["runuser", "-u", "postgres", "--", pg.PGBIN + "/pgbench", "-h", "/tmp", "-p",
                 str(port), "-U", "postgres", "postgres"]
        r = subprocess.run(bench[:-1] + ["-i", "-s", "1", "postgres"], capture_output=True,
                           text=True, timeout=120)
        check(r.returncode == 0, "pgbench -i failed", r.stderr)
        b = subprocess.Popen(bench[:-1] + ["-c", "4", "-T", "20", "postgres"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cplib._started.append(b)
        pids = ""
        for _ in range(100):
            pids = pg.psql(port, "select string_agg(pid::text, ',') from pg_stat_activity "
                                 "where application_name = 'pgbench'")
            if pids and pids.count(",") >= 3:
                break
            time.sleep(0.1)
        check(pids, "no pgbench backends")
        out = os.path.join(profiles.tmpdir(), "pg.pb.gz")
        r = cplib.run(["attach", "-p", pids, "--profile", "block", "--seconds", 2, "-o", out],
                      timeout=120)
        check(r.returncode == 0, "attach exited %d" % r.returncode, r.stderr)
        tr = profiles.pprof("-traces", out)
        profiles.pprof("-top", out)
        check("WaitEventSetWait" in tr and "PostgresMain" in tr,
              "no backend waiting on its latch (WaitEventSetWait <- PostgresMain)", tr[:2000])
    finally:
        pg.as_postgres([pg.PGBIN + "/pg_ctl", "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    cplib.main(globals())
