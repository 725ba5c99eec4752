#!/usr/bin/env python3
"""cprof serve in a browser alone: headless Chromium renders the index page and the flame
graph (its script runs without an error), and every link of the index answers.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402
import test_serve  # noqa: E402
from test_serve import Serve  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-browser-"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url, budget_ms=3000):
    """The DOM Chromium built for url, and its log (console messages included)."""
    p = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
                        "--user-data-dir=%s" % (WORK / "profile"), "--enable-logging=stderr",
                        "--v=0", "--virtual-time-budget=%d" % budget_ms, "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "chromium failed on %s" % url, p.stderr[-2000:])
    return p.stdout, p.stderr


def test_index_renders_and_links_answer():
    with cplib.Target("cpu_split") as t:
        s = Serve("-p", t.pid)
        dom, log = render(s.url("/debug/pprof/"))
        check("<title>cprof serve</title>" in dom and "target pid %d" % t.pid in dom,
              "index not rendered", dom[:1000])
        links = re.findall(r'<a href="([^"]+)"', dom)
        check(len(links) >= 12, "links in the rendered index", links)
        for link in links:
            if "seconds=" in link:
                link = re.sub(r"seconds=\d+", "seconds=1", link)
            status, _, body = s.request(link)
            # heap, allocs: cpu_split's one thread never blocks in a system call, so the
            # allocation sampler cannot be loaded (503, "no thread at a safe point").
            ok = (200, 501, 503) if re.search(r"/(heap|allocs)\b", link) else (200, 501)
            check(status in ok, "link %s answers %d" % (link, status), body[:200])
        dom, log = render(s.url("/debug/pprof/goroutine?debug=2"))
        check("cpu_split" in dom and "spin_leaf" in dom, "the text dump in the browser",
              dom[:1000])


def test_flame_graph_renders():
    with cplib.Target("cpu_split") as t:
        s = Serve("-p", t.pid)
        dom, log = render(s.url("/debug/cprof/flame?seconds=2"), budget_ms=8000)
        check(dom.lstrip().startswith("<svg") and "spin_leaf" in dom, "flame graph DOM",
              dom[:1000])
        check(not re.search(r"Uncaught|SyntaxError|ReferenceError|TypeError", log),
              "script error in the flame graph",
              "\n".join(x for x in log.splitlines() if "CONSOLE" in x)[-2000:])


if __name__ == "__main__":
    if not CHROMIUM:
        cplib.skip("chromium not installed (make deps installs it)")
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
        shutil.rmtree(test_serve.WORK, ignore_errors=True)
