#!/usr/bin/env python3
"""cprof dump on the sockets fixture: sockets named from the target's /proc/net, SO_RCVTIMEO
read from the socket, unbounded waits flagged, pipe writers named, accept and epoll details,
and the fd counts."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402


def fixture_info(t):
    info = {"FD": t.tagged("FD"), "TID": t.tagged("TID")}
    for tag in ("PORT", "PORT6", "CHILD"):
        info[tag] = t.number(tag)
    return info


def wait_of(dump, name):
    return cplib.thread_by_name(dump, name)["wait"]


def thread_header(text, name):
    """The header line of the thread called name in a text dump."""
    for line in text.splitlines():
        if line.startswith("thread ") and '"%s"' % name in line:
            return line
    raise cplib.Failure("no thread %s in text dump" % name)


def test_sockets_and_timeouts():
    with cplib.Target("sockets") as t:
        info = fixture_info(t)
        port = info["PORT"]
        d = cplib.dump_json(t.pid)

        w = wait_of(d, "recv-timeo")
        check(w["kind"] == "io-read", "recv is io-read", w)
        check(w["fd"] == info["FD"]["recv-timeo"], "fd", w)
        check(re.match(r"socket:\[\d+\]$", w["object"] or ""), "object is the socket", w)
        check(re.search(r"TCP 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d ESTABLISHED" % port,
                        w["detail"] or ""), "TCP endpoints in detail", w)
        check(w["timeout"] == 7000000000, "SO_RCVTIMEO 7 s reported as 7e9 ns", w)

        w = wait_of(d, "recv-notimeo")
        check(w["kind"] == "io-read" and w["timeout"] is None, "unbounded recv: null timeout", w)
        check("ESTABLISHED" in (w["detail"] or ""), "detail names the connection", w)

        w = wait_of(d, "acceptor")
        check(w["kind"] == "accept", "accept kind", w)
        check("TCP listening on 127.0.0.1:%d" % port in (w["detail"] or ""), "listening detail", w)

        if info.get("PORT6"):
            w = wait_of(d, "recv6")
            check("TCP [::1]:" in (w["detail"] or "") and "-> [::1]:%d" % info["PORT6"] in w["detail"],
                  "IPv6 endpoints", w)

        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check("no timeout" in thread_header(text, "recv-notimeo"), "text flags the unbounded recv",
              thread_header(text, "recv-notimeo"))
        check("no timeout" not in thread_header(text, "recv-timeo"),
              "the bounded recv is not flagged", thread_header(text, "recv-timeo"))
        cplib.assert_target_unharmed(t.pid)


def test_pipes_epoll_and_counts():
    with cplib.Target("sockets") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)

        w = wait_of(d, "pipe-self")
        check(w["kind"] == "io-read" and re.match(r"pipe:\[\d+\]$", w["object"] or ""), "pipe read", w)
        want = "write end held only by this process, fd %d" % info["FD"]["pipe-self-w"]
        check(want in (w["detail"] or ""), "writer in this process named", w, want)
        check(w["timeout"] is None, "pipes have no timeout", w)

        w = wait_of(d, "pipe-child")
        want = "write end held by process %d (pipe-writer)" % info["CHILD"]
        check(want in (w["detail"] or ""), "writer in the child process named", w, want)

        w = wait_of(d, "epoller")
        check(w["kind"] == "poll", "epoll_wait is poll", w)
        # Pipes by their link; sockets as a recv on them would describe them.
        for label, text in (("epoll-pipe-r", "pipe:["), ("recv-notimeo-peer", "TCP 127.0.0.1:")):
            want = "fd %d (%s" % (info["FD"][label], text)
            check(want in (w["detail"] or ""), "epoll detail lists %s" % label, w, want)

        fds = d["fds"]
        check(fds is not None, "fds present")
        n = len(os.listdir("/proc/%d/fd" % t.pid))
        check(fds["total"] == n, "total %s, /proc says %d" % (fds["total"], n))
        # 3 TCP pairs + listener (+ v6 listener): at least 6; 3 pipes, 2 ends each kept open
        # (the child's write end was closed here): at least 5; eventfd, timerfd, signalfd,
        # epoll; the fixture's own binary and stdio.
        check(fds["socket"] >= 6 and fds["pipe"] >= 5 and fds["anon"] == 4 and fds["file"] >= 1,
              "counts by kind", fds)
        check(fds["socket"] + fds["pipe"] + fds["anon"] + fds["file"] <= fds["total"],
              "kinds do not exceed the total", fds)


if __name__ == "__main__":
    cplib.main(globals())
