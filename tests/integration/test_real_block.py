#!/usr/bin/env python3
"""A block profile of a real server under load: redis-server under redis-benchmark opens in
go tool pprof without warnings and shows its event loop waiting in epoll_wait."""
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


def test_redis_block_profile():
    exe, bench = shutil.which("redis-server"), shutil.which("redis-benchmark")
    check(exe and bench, "redis-server / redis-benchmark not installed (make test installs them)")
    port = 57000 + os.getpid() % 1000
    tmp = tempfile.mkdtemp(prefix="cprof-redis-")
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    cplib._started.append(p)
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
    check(re.search(r"^\s+[\d.]+\w*s \([\d.]+%\): poll$", tags, re.M), "no wait=poll", tags)


if __name__ == "__main__":
    cplib.main(globals())
