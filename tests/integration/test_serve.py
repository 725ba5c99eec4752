#!/usr/bin/env python3
"""cprof serve through real clients: go tool pprof, promtool, a Prometheus server, curl-like
HTTP requests for the security cases (auth, Host, limits, exited targets, disconnects).

Every server and target a test starts is killed by PID when the test ends. Only loopback
addresses are used.
"""
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-serve-"))


class Serve:
    """A `cprof serve` on 127.0.0.1 and a port the kernel chose."""

    def __init__(self, *args, listen="127.0.0.1:0", tls=False):
        argv = [cplib.CPROF, "serve", "--listen", listen] + [str(a) for a in args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        cplib._started.append(self.proc)
        self.pid = self.proc.pid
        self.lines = []
        self.tls = tls
        deadline = time.monotonic() + 20
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"listening on https?://\S+:(\d+)/debug/pprof/", line)
            if m:
                self.port = int(m.group(1))
        check(self.port, "serve did not start", self.lines, self.proc.poll())

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % ("https" if self.tls else "http", self.port, path)

    def request(self, path, method="GET", host=None, headers=None, timeout=60):
        """(status, {header: value} lower-cased, body bytes)."""
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.putrequest(method, path, skip_host=True)
        c.putheader("Host", host or "127.0.0.1:%d" % self.port)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, body

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def go_env():
    home = WORK / "home"
    home.mkdir(exist_ok=True)
    return dict(os.environ, HOME=str(home), GOCACHE=str(WORK / "gocache"), PPROF_TMPDIR=str(WORK),
                GOFLAGS="", GOPROXY="off", GOTOOLCHAIN="local")


def go_pprof(*args, timeout=120):
    return subprocess.run(["go", "tool", "pprof"] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=go_env())


def error_reply(status, hdrs, body, want, what):
    check(status == want, "%s: status %d, expected %d" % (what, status, want), body[:300])
    check(hdrs.get("content-type", "").startswith("text/plain"), "%s: error not text/plain" % what,
          hdrs)
    text = body.decode()
    check(text.endswith("\n") and text.count("\n") == 1, "%s: not one line" % what, text)
    return text


def test_profile_go_tool_pprof():
    with cplib.Target("cpu_split") as t:
        s = Serve("-p", t.pid)
        p = go_pprof("-top", s.url("/debug/pprof/profile?seconds=2"))
        check(p.returncode == 0, "go tool pprof failed", p.stderr[-2000:])
        check("Type: cpu" in p.stdout, "not a CPU profile", p.stdout[:1500])
        check(re.search(r"spin_leaf|work_a|work_b", p.stdout), "no cpu_split function",
              p.stdout[:2000])
        status, hdrs, body = s.request("/debug/pprof/profile?seconds=1")
        check(status == 200 and body[:2] == b"\x1f\x8b", "profile not gzipped pprof", status)
        check(hdrs.get("content-type") == "application/octet-stream", "content type", hdrs)
        check(hdrs.get("content-disposition") == 'attachment; filename="profile"', "disposition",
              hdrs)
        check(hdrs.get("x-content-type-options") == "nosniff", "nosniff", hdrs)
        cplib.assert_target_unharmed(t.pid)
        check(s.stop() == 0, "serve did not exit 0 on SIGTERM")


def test_profile_of_a_stripped_binary():
    """pprof POSTs to /symbol for mappings without function names and gives up on an error."""
    src = WORK / "spin.c"
    src.write_text("static volatile long x;\n"
                   "__attribute__((noinline)) static void spin(void) { for (;;) x++; }\n"
                   "int main(void) { spin(); }\n")
    exe = WORK / "spin-stripped"
    p = subprocess.run(["gcc", "-O1", "-Wl,--build-id=none", "-s", str(src), "-o", str(exe)],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "gcc", p.stderr)
    t = subprocess.Popen([str(exe)], stdin=subprocess.DEVNULL)
    cplib._started.append(t)
    s = Serve("-p", t.pid)
    p = go_pprof("-top", s.url("/debug/pprof/profile?seconds=2"))
    check(p.returncode == 0 and "Type: cpu" in p.stdout, "go tool pprof on a stripped binary",
          p.stdout[-1000:], p.stderr[-1000:])
    # Words, not substrings: the saved profile's random folder name may hold "405".
    check(not re.search(r"\b405\b|(?i:\bsymbol)", p.stderr), "symbol lookup failed",
          p.stderr[-1000:])
    status, _, body = s.request("/debug/pprof/symbol", method="POST")
    check(status == 200 and body == b"num_symbols: 1\n", "POST symbol", status, body)


def test_goroutine_endpoints():
    with cplib.Target("leak", 20) as t:
        s = Serve("-p", t.pid)
        status, hdrs, body = s.request("/debug/pprof/goroutine?debug=2")
        text = body.decode()
        check(status == 200 and hdrs["content-type"].startswith("text/plain"), "debug=2", status)
        check(text.startswith("process %d " % t.pid), "not the text dump", text[:300])
        check(text.count('"conn-handler"') >= 20 and "handle_request" in text,
              "threads missing from the full dump", text[:2000])
        status, _, body = s.request("/debug/pprof/goroutine?debug=1")
        check(status == 200 and re.search(r"^20 threads \[io-read", body.decode(), re.M),
              "debug=1 is not grouped", body.decode()[:2000])
        p = go_pprof("-top", s.url("/debug/pprof/goroutine"))
        check(p.returncode == 0, "go tool pprof on goroutine failed", p.stderr[-2000:])
        check("Type: goroutine" in p.stdout, "sample type", p.stdout[:1000])
        check(re.search(r"^\s+0\s+0%\s+\S+\s+20\s+\S+%\s+handle_request", p.stdout, re.M),
              "20 threads in handle_request", p.stdout[:3000])
        # Mapping 1 is the executable's code, with its build ID, as in cprof's other profiles.
        raw = go_pprof("-raw", s.url("/debug/pprof/goroutine")).stdout
        m1 = raw[raw.index("Mappings"):].splitlines()[1]
        check(re.match(r"1: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ \S+/leak [0-9a-f]{40} ", m1),
              "mapping 1 is not the executable's code with its build ID", m1)
        status, hdrs, body = s.request("/debug/cprof/dump?format=json")
        check(status == 200 and hdrs["content-type"] == "application/json", "dump json", status)
        d = json.loads(body)
        check(d["pid"] == t.pid and len(d["threads"]) >= 21, "json dump", str(d)[:300])
        cplib.assert_target_unharmed(t.pid)


def test_block_mutex_threadcreate_go_tool_pprof():
    """The off-CPU profiles are served as Go serves its own: go tool pprof reads block, mutex
    and threadcreate profiles of native targets and shows their blocking, unlocking and
    thread-creating stacks."""
    with cplib.Target("offcpu", "spawn") as t:
        s = Serve("-p", t.pid)
        p = go_pprof("-top", s.url("/debug/pprof/block?seconds=2"))
        check(p.returncode == 0 and not p.stderr.strip().startswith("Local symbolization failed"),
              "block: go tool pprof failed", p.stderr[-2000:])
        check("Type: delay" in p.stdout, "block: not a delay profile", p.stdout[:1500])
        check(re.search(r"nanosleep|__libc_read|pause", p.stdout), "block: no blocking stack",
              p.stdout[:2000])
        p = go_pprof("-top", s.url("/debug/pprof/threadcreate?seconds=2"))
        check(p.returncode == 0 and "Type: threadcreate" in p.stdout,
              "threadcreate: not read", p.stdout[:1500], p.stderr[-1000:])
        check("spawn_one" in p.stdout, "threadcreate: no creating stack", p.stdout[:2000])
        cplib.assert_target_unharmed(t.pid)
        check(s.stop() == 0, "serve did not exit 0 on SIGTERM")
    with cplib.Target("mutexes") as t:
        s = Serve("-p", t.pid)
        p = go_pprof("-top", s.url("/debug/pprof/mutex?seconds=2"))
        check(p.returncode == 0 and "Type: delay" in p.stdout, "mutex: not read",
              p.stdout[:1500], p.stderr[-1000:])
        check("hold_and_release" in p.stdout or "unlock" in p.stdout,
              "mutex: not charged to the unlock", p.stdout[:2000])
        check(s.stop() == 0, "serve did not exit 0 on SIGTERM")


def test_small_endpoints():
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid)
        status, hdrs, body = s.request("/debug/pprof/cmdline")
        check(status == 200 and body.split(b"\0")[0].endswith(b"waits"), "cmdline", body)
        status, _, body = s.request("/debug/pprof/symbol")
        check(status == 200 and body == b"num_symbols: 1\n", "symbol", body)
        text = error_reply(*s.request("/debug/pprof/trace"), 501, "trace")
        check("Go runtime feature" in text, "trace", text)
        error_reply(*s.request("/debug/pprof/nosuch"), 404, "unknown profile")
        status, hdrs, body = s.request("/debug/pprof/")
        check(status == 200 and hdrs["content-type"].startswith("text/html"), "index", status)
        links = re.findall(r'href="([^"]+)"', body.decode())
        check(len(links) >= 10, "index links", links)
        for link in links:
            if "profile" in link or "flame" in link or "seconds" in link:
                continue
            st, _, _ = s.request(link)
            check(st in (200, 501), "index link %s answers %d" % (link, st))
        status, hdrs, body = s.request("/debug/cprof/flame?seconds=1")
        check(status == 200 and hdrs["content-type"] == "image/svg+xml", "flame", status, hdrs)
        ET.fromstring(body)


def test_metrics_promtool():
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid)
        status, hdrs, body = s.request("/metrics")
        check(status == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4"),
              "metrics content type", hdrs)
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=60)
        check(p.returncode == 0, "promtool check metrics", p.stdout, p.stderr)
        text = body.decode()
        nthreads = len(os.listdir("/proc/%d/task" % t.pid))
        check('process_threads{pid="%d"} %d\n' % (t.pid, nthreads) in text, "process_threads",
              text[:3000])
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                     "process_start_time_seconds", "cprof_threads", "cprof_threads_waiting",
                     "cprof_unbounded_io_waits", "cprof_deadlocked_threads"):
            check(re.search(r"^%s\{pid=\"%d\"" % (name, t.pid), text, re.M), name, text[:500])
        check(re.search(r'cprof_threads_waiting\{pid="%d",wait="sleep"\} [1-9]' % t.pid, text),
              "the sleeping thread of waits", text)
        check(cplib.tracer_pid(t.pid) == 0, "metrics traced the target")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_prometheus_scrapes():
    check(shutil.which("prometheus"), "prometheus not installed (make deps installs it)")
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid)
        pport = free_port()
        cfg = WORK / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                       "scrape_configs:\n  - job_name: cprof\n    static_configs:\n"
                       "      - targets: ['127.0.0.1:%d']\n" % s.port)
        prom = subprocess.Popen(["prometheus", "--config.file=%s" % cfg,
                                 "--storage.tsdb.path=%s" % (WORK / "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % pport],
                                stdout=subprocess.DEVNULL, stderr=open(WORK / "prom.log", "w"),
                                stdin=subprocess.DEVNULL)
        cplib._started.append(prom)
        query = urllib.parse.quote('process_threads{pid="%d"}' % t.pid)
        deadline = time.monotonic() + 90
        result = None
        while time.monotonic() < deadline and not result:
            time.sleep(1)
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=%s" %
                                            (pport, query), timeout=5) as r:
                    result = json.load(r)["data"]["result"]
            except OSError:
                pass
            check(prom.poll() is None, "prometheus exited",
                  (WORK / "prom.log").read_text()[-2000:])
        check(result, "no process_threads series in Prometheus",
              (WORK / "prom.log").read_text()[-2000:])
        check(result[0]["metric"]["job"] == "cprof" and int(result[0]["value"][1]) >= 1,
              "series", result)
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=%s" % (
                pport, urllib.parse.quote("cprof_threads_waiting")), timeout=5) as r:
            check(json.load(r)["data"]["result"], "cprof_threads_waiting not scraped")
        prom.terminate()
        prom.wait(timeout=30)


def test_auth():
    cred = WORK / "auth"
    cred.write_text("alice:s3cret\n")
    os.chmod(cred, 0o600)
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid, "--auth-file", cred)
        status, hdrs, body = s.request("/metrics")
        error_reply(status, hdrs, body, 401, "no credentials")
        check(hdrs.get("www-authenticate") == 'Basic realm="cprof"', "WWW-Authenticate", hdrs)
        import base64
        bad = base64.b64encode(b"alice:s3creT").decode()
        status, hdrs, body = s.request("/metrics", headers={"Authorization": "Basic " + bad})
        check(status == 401 and "www-authenticate" in hdrs, "wrong password", status)
        good = base64.b64encode(b"alice:s3cret").decode()
        status, _, _ = s.request("/metrics", headers={"Authorization": "Basic " + good})
        check(status == 200, "right password", status)
        status, _, _ = s.request("/debug/pprof/", headers={"Authorization": "Basic " + good})
        check(status == 200, "index with credentials", status)
        p = go_pprof("-top", "http://alice:s3cret@127.0.0.1:%d/debug/pprof/goroutine" % s.port)
        check(p.returncode == 0 and "Type: goroutine" in p.stdout, "go tool pprof with auth",
              p.stderr[-1000:])


def test_tls():
    check(shutil.which("openssl"), "openssl not installed (make deps installs it)")
    key, cert = WORK / "key.pem", WORK / "cert.pem"
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "openssl", p.stderr)
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid, "--tls-cert", cert, "--tls-key", key, tls=True)
        status, _, body = s.request("/debug/pprof/symbol")
        check(status == 200 and body == b"num_symbols: 1\n", "https", status, body)


def test_refusals():
    with cplib.Target("waits") as t:
        p = cplib.run(["serve", "-p", t.pid, "--listen", "0.0.0.0:0"], timeout=30)
        cplib.error_line(p, 2, r"cprof: serve: listening on 0\.0\.0\.0:0 \(not loopback\) "
                               r"needs --auth-file")
        cred = WORK / "auth644"
        cred.write_text("u:p\n")
        os.chmod(cred, 0o644)
        p = cplib.run(["serve", "-p", t.pid, "--listen", "0.0.0.0:0", "--auth-file", cred,
                       "--insecure-http"], timeout=30)
        cplib.error_line(p, 1, r"cprof: .*auth644: auth file mode 0644 lets others read it")
        os.chmod(cred, 0o600)
        p = cplib.run(["serve", "-p", t.pid, "--listen", "0.0.0.0:0", "--auth-file", cred],
                      timeout=30)
        cplib.error_line(p, 2, r"cprof: serve: .*needs --tls-cert/--tls-key, or --insecure-http")
        p = cplib.run(["serve", "-p", t.pid, "--listen", "nohost"], timeout=30)
        cplib.error_line(p, 2, r"cprof: serve: invalid --listen")
        p = cplib.run(["serve", "-p", "999999999"], timeout=30)
        check(p.returncode in (1, 2), "bad pid", p.stderr)


def test_host_and_method():
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid)
        text = error_reply(*s.request("/metrics", host="evil.example:%d" % s.port), 403,
                           "foreign Host")
        check("host not allowed" in text, "reason", text)
        status, _, _ = s.request("/metrics", host="localhost:%d" % (s.port + 1))
        check(status == 200, "localhost with another port (ssh -L)", status)
        status, hdrs, body = s.request("/debug/pprof/cmdline", method="POST")
        check(status == 405 and hdrs.get("allow") == "GET", "POST refused", status, hdrs)
        status, hdrs, body = s.request("/debug/pprof/symbol", method="DELETE")
        check(status == 405, "DELETE refused", status)


def test_bad_parameters():
    with cplib.Target("waits") as t:
        s = Serve("-p", t.pid, "--max-seconds", "5")
        for q, why in (("seconds=abc", "bad seconds"), ("seconds=0", "bad seconds"),
                       ("seconds=6", "exceeds the limit of 5")):
            text = error_reply(*s.request("/debug/pprof/profile?" + q), 400, q)
            check(why in text, q, text)
        error_reply(*s.request("/debug/pprof/goroutine?debug=5"), 400, "debug=5")
        error_reply(*s.request("/debug/cprof/dump?format=yaml"), 400, "format=yaml")
        text = error_reply(*s.request("/debug/pprof/cmdline?pid=1"), 400, "pid=1")
        check("not one of the targets" in text, "pid", text)
        # An escaped NUL cuts nothing short: not a path, not a value.
        error_reply(*s.request("/debug/pprof/cmdline%00x"), 404, "cmdline%00x")
        error_reply(*s.request("/debug/pprof/profile?seconds=1%00x"), 400, "seconds=1%00x")
        status, _, _ = s.request("/debug/pprof/cmdline%3F")
        check(status == 404, "an escaped '?' is part of the path", status)
        status, _, body = s.request("/debug/pprof/cmd%6Cine")
        check(status == 200 and b"waits" in body, "other escapes still decode", status, body)


def test_busy_and_exit():
    a = cplib.Target("waits")
    b = cplib.Target("cpu_split")
    s = Serve("-p", "%d,%d" % (a.pid, b.pid))
    results = {}

    def long_profile():
        results["first"] = s.request("/debug/pprof/profile?seconds=3&pid=%d" % b.pid)

    th = threading.Thread(target=long_profile)
    th.start()
    time.sleep(1)
    text = error_reply(*s.request("/debug/pprof/profile?seconds=1&pid=%d" % b.pid), 429,
                       "second profile")
    check("already running" in text, "429 reason", text)
    status, _, _ = s.request("/debug/pprof/profile?seconds=1&pid=%d" % a.pid)
    check(status == 200, "another pid is not busy", status)
    th.join(30)
    check(results.get("first", (0,))[0] == 200, "first profile", results.get("first"))
    status, _, body = s.request("/debug/pprof/cmdline?pid=%d" % b.pid)
    check(status == 200 and b"cpu_split" in body, "cmdline of the second pid", body)
    b.kill()
    text = error_reply(*s.request("/debug/pprof/goroutine?debug=2&pid=%d" % b.pid), 410,
                       "exited target")
    check("exited" in text, "410 reason", text)
    status, _, _ = s.request("/debug/pprof/goroutine?debug=1&pid=%d" % a.pid)
    check(status == 200 and s.alive(), "serve goes on with the other target", status)
    status, _, body = s.request("/metrics")
    check(status == 200 and ('pid="%d"' % b.pid).encode() not in body, "exited target's series")
    a.kill()


def test_sigterm_ends_profiles_in_flight():
    # SIGTERM while a 60 s profile runs: the profile ends there and is sent (200, readable),
    # then serve exits 0; the target runs on, untraced.
    t = cplib.Target("cpu_split", "--seconds", "120")
    s = Serve("-p", t.pid)
    results = {}

    def long_profile():
        results["r"] = s.request("/debug/pprof/profile?seconds=60")

    th = threading.Thread(target=long_profile)
    th.start()
    time.sleep(2)
    s.proc.send_signal(signal.SIGTERM)
    th.join(30)
    status, _, body = results.get("r", (0, None, b""))
    check(status == 200, "the profile in flight got no answer", status, body[:200])
    path = os.path.join(tempfile.mkdtemp(prefix="cprof-serve-"), "p.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    top = go_pprof("-top", path)
    check(top.returncode == 0 and "spin_leaf" in top.stdout, "the cut profile", top.stdout,
          top.stderr)
    check(s.proc.wait(timeout=30) == 0, "serve exit status", s.proc.returncode)
    cplib.assert_target_unharmed(t.pid)
    t.kill()


def test_many_connections_and_disconnect():
    with cplib.Target("cpu_split") as t:
        s = Serve("-p", t.pid)
        # 200 connections at once, most of them idle (slowloris-like): serve stays up.
        socks = []
        for _ in range(200):
            try:
                c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                c.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0")
                socks.append(c)
            except OSError:
                pass
        time.sleep(1)
        check(s.alive(), "serve died under 200 connections")
        check(len(socks) >= 64, "connections refused before the limit: %d" % len(socks))
        for c in socks:
            c.close()
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status, _, _ = s.request("/metrics", timeout=5)
            except OSError:
                time.sleep(0.5)
        check(status == 200, "serve does not answer after the connection storm", status)
        # 200 full requests at once: those over the connection limit are refused, not queued
        # forever; the others are answered; serve stays up.
        answers = []

        def one():
            try:
                answers.append(s.request("/metrics", timeout=30)[0])
            except OSError:
                answers.append(None)

        threads = [threading.Thread(target=one) for _ in range(200)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        check(len(answers) == 200 and answers.count(200) >= 64 and
              all(a in (200, None) for a in answers),
              "200 concurrent requests: %d answered" % answers.count(200))
        check(s.alive(), "serve died under 200 concurrent requests")
        # A client that leaves in the middle of a profile: the sampler ends soon.
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"GET /debug/pprof/profile?seconds=60 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(1.5)
        c.close()
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            status, _, _ = s.request("/debug/pprof/profile?seconds=1")
            if status == 200:
                break
            time.sleep(0.5)
        check(status == 200, "the abandoned profile still holds the target (429)", status)
        check(s.alive(), "serve died")
        cplib.assert_target_unharmed(t.pid)
        check(s.stop() == 0, "serve exit status")


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
