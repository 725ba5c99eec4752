#!/usr/bin/env python3
"""Heap profiles of real programs: redis-server (Debian's, allocating through the shared
libjemalloc) while redis-cli loads 100k keys shows redis' own allocation sites; a C++ program
(operator new and delete through libstdc++); python3.11 growing a list of bytearrays."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
import profiles  # noqa: E402
from cplib import check  # noqa: E402
from test_heap import (MIB, agent_control, heap_attach_around, pprof_flat,  # noqa: E402
                       start_heap_attach, wait_sampler_off)


def pprof_cum(path, index):
    """{function: cum value} of `go tool pprof -top -cum`."""
    p = cplib.go_pprof("-top", "-cum", "-nodecount=1000", "-sample_index=" + index, "-unit=B",
                       path)
    check(p.returncode == 0 and "warn" not in p.stderr.lower(), "pprof", p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[3].endswith("B") and parts[4].endswith("%"):
            out[" ".join(parts[5:])] = float(parts[3].rstrip("B"))
    return out


def test_redis_100k_keys():
    exe = shutil.which("redis-server")
    check(exe is not None, "redis-server not installed (make test installs it)")
    check("libjemalloc" in subprocess.run(["ldd", exe], capture_output=True, text=True).stdout,
          "this redis-server does not use the shared libjemalloc")
    p, port, tmp = cplib.start_redis(exe)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    out = os.path.join(tmp, "redis.pb.gz")
    a = start_heap_attach(p.pid, out, seconds=600)
    cmds = "".join("*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$100\r\n%s\r\n"
                   % (len("key:%d" % i), i, "v" * 100) for i in range(100000))
    r = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=cmds, text=True,
                       capture_output=True, timeout=300)
    check("errors: 0, replies: 100000" in r.stdout, "redis-cli --pipe exited %d" % r.returncode,
          r.stdout, r.stderr)
    a.send_signal(signal.SIGINT)
    _, err = a.communicate(timeout=120)
    check(a.returncode == 0, "attach failed", err)
    cum = pprof_cum(out, "inuse_space")
    flat = pprof_flat(out, "inuse_space")
    total = sum(flat.values())
    # Keys, values and dict entries of 100k SETs: about 20 MB in use.
    check(5 * MIB < total < 100 * MIB, "inuse_space total %.1f MiB" % (total / MIB), flat)
    own = [f for f in ("zmalloc", "zmalloc_usable", "zcalloc", "createStringObject",
                       "sdsnewlen", "_sdsnewlen", "dictAddRaw", "dbAdd", "setCommand",
                       "processCommand") if cum.get(f, 0) > 0]
    check(len(own) >= 3, "redis' own allocation sites missing", sorted(cum)[:40])
    check(not all("jemalloc" in f or f.startswith("je_") for f in flat), "only jemalloc", flat)
    print("redis: %.1f MiB in use after 100k SETs; sites %s" % (total / MIB, own))
    wait_sampler_off(p.pid)
    cplib.assert_target_unharmed(p.pid)
    r = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True, text=True,
                       timeout=60)
    check(r.stdout.strip() == "100000", "redis lost keys", r.stdout)


def test_cxx_new_delete():
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    out = os.path.join(d, "cxx.pb.gz")
    r = cplib.run(["record", "--profile", "heap", "-o", out, "--",
                   cplib.TARGETS / "heap_cxx", "--now"], timeout=300)
    check(r.returncode == 0, "record failed", r.stderr)
    inuse = pprof_cum(out, "inuse_space")
    alloc = pprof_cum(out, "alloc_space")
    grow = inuse.get("demo::Cache::grow()", 0) / MIB
    check(80 <= grow <= 120, "inuse_space of Cache::grow %.1f MiB, expected 100" % grow, inuse)
    check(inuse.get("operator new(unsigned long)", 0) > 0, "operator new not on top", inuse)
    churn = alloc.get("demo::churn_strings(unsigned long)", 0) / 1e6
    check(200 <= churn <= 330, "alloc_space of churn_strings %.0f MB, expected 266" % churn,
          alloc)
    check(inuse.get("demo::churn_strings(unsigned long)", 0) < MIB, "strings still in use", inuse)


PY_SCRIPT = """
import signal
cache = []
def grow_cache():
    for _ in range(1000):
        cache.append(bytearray(100000))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
print("READY", flush=True)
signal.sigwait([signal.SIGUSR1])
grow_cache()
print("DONE", flush=True)
signal.sigwait([signal.SIGUSR1])
"""


def test_python311():
    exe = "/usr/bin/python3.11"
    check(os.path.exists(exe), "Debian's python3.11 not installed")
    d = tempfile.mkdtemp(prefix="cprof-heap-")
    script = os.path.join(d, "grow.py")
    with open(script, "w") as f:
        f.write(PY_SCRIPT)
    out = os.path.join(d, "py.pb.gz")
    with cplib.Target("python3.11", script, path=exe) as t:
        heap_attach_around(t, out, "DONE")
        cum = pprof_cum(out, "inuse_space")
        grow = cum.get("PyByteArray_Resize", 0) / MIB
        # 1000 bytearrays of 100 kB: 95.4 MiB.
        check(75 <= grow <= 115, "inuse_space under PyByteArray_Resize %.1f MiB" % grow,
              sorted(cum.items(), key=lambda kv: -kv[1])[:12])
        check(cum.get("_PyEval_EvalFrameDefault", 0) > 0, "no interpreter frames", cum)
        wait_sampler_off(t.pid)
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    cplib.main(globals())
