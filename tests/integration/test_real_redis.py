#!/usr/bin/env python3
"""A real server in epoll with a thread pool: redis-server. Its event loop says which
sockets epoll watches as a direct accept or recv would (TCP listening on 127.0.0.1:PORT, and
a client's ESTABLISHED connection), its three bio threads (a fixed pool) raise no LEAK? hint, and its
rewritten argv shows without padding."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402


def test_redis_event_loop_and_pool():
    exe = shutil.which("redis-server")
    check(exe is not None, "redis-server not installed (make test installs it)")
    p, port, tmp = cplib.start_redis(exe)
    client = None
    try:
        for _ in range(100):
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        check(client is not None, "redis did not listen")
        client.sendall(b"PING\r\n")
        check(client.recv(64).startswith(b"+PONG"), "no PONG")
        # redis wakes every 100 ms (its cron): dump until its main thread is caught asleep.
        for _ in range(20):
            time.sleep(0.2)
            text = cplib.run(["dump", "-p", p.pid], check_rc=0).stdout
            if re.search(r"^thread %d .*\[poll: epoll_wait" % p.pid, text, re.M):
                break
        check("LEAK?" not in text, "a fixed pool of 3 bio threads flagged as a leak", text)
        head = text.splitlines()[0]
        check(re.search(r"\(\S*redis-server 127\.0\.0\.1:%d\) at " % port, head),
              "header padded", repr(head))
        main = text[text.index("thread %d " % p.pid):].split("\n")[0]
        check("epoll_wait" in main, "main thread not in epoll_wait", main)
        # The same words a thread blocked in accept or recv on those sockets gets.
        check("TCP listening on 127.0.0.1:%d" % port in main, "listening socket not described",
              main)
        check(re.search(r"TCP 127\.0\.0\.1:%d -> 127\.0\.0\.1:\d+ ESTABLISHED" % port, main),
              "client connection not described", main)
        cplib.assert_target_unharmed(p.pid)
    finally:
        if client:
            client.close()
        p.kill()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    cplib.main(globals())
