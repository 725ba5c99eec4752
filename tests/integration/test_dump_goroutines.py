#!/usr/bin/env python3
"""cprof dump's goroutines against Go's own: the gogoroutines fixture (plain and stripped
builds) writes pprof.Lookup("goroutine").WriteTo(w, 2) on SIGUSR1, Debian's prometheus serves
/debug/pprof/goroutine?debug=2; cprof's dump must have the same goroutine ids and statuses and
at least 99% of the same frames (function, file:line). Also the JSON fields of section "Go
programs", threads tied to their goroutines, --group in Go's debug=1 form."""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-goroutines-"))
PROMETHEUS = "/usr/bin/prometheus"
RECEIVERS = 1000
HEADER = re.compile(r"^goroutine (\d+) \[([^\]]*)\]:$")

_exe = {}


def fixture(stripped, cgo=False, pie=False):
    """gogoroutines built once into WORK, with or without -ldflags='-s -w', pure Go or with
    cgo (linked with libc: threads started by pthread_create), position-dependent or not."""
    if (stripped, cgo, pie) not in _exe:
        if not shutil.which("go"):
            check(False, "go is not installed (make test installs golang-go)")
        exe = WORK / ("gogoroutines%s%s%s" % ("-s" if stripped else "", "-cgo" if cgo else "",
                                              "-pie" if pie else ""))
        flags = (["-ldflags=-s -w"] if stripped else []) + (["-buildmode=pie"] if pie else [])
        env = dict(cplib.GO_ENV, CGO_ENABLED="1" if cgo else "0")
        p = subprocess.run(["go", "build"] + flags + ["-o", str(exe),
                            str(cplib.SRC / "tests" / "targets" / "gogoroutines" / "main.go")],
                           capture_output=True, text=True, timeout=300, env=env,
                           cwd=str(WORK))
        check(p.returncode == 0, "go build failed", p.stderr)
        _exe[(stripped, cgo, pie)] = exe
    return _exe[(stripped, cgo, pie)]


def parse(text):
    """{id: (status words, [(function, file:line)], created_by)} of Go's debug=2 text."""
    out, cur = {}, None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = HEADER.match(lines[i])
        if m:
            words = [w for w in m.group(2).split(", ") if not w.endswith("minutes")]
            cur = (words, [], [])
            out[int(m.group(1))] = cur
        elif cur is not None and lines[i] and not lines[i].startswith("\t") and \
                i + 1 < len(lines) and lines[i + 1].startswith("\t"):
            loc = lines[i + 1].strip().split(" +")[0]
            if lines[i].startswith("created by "):
                cur[2].append((lines[i][len("created by "):].split(" in goroutine")[0], loc))
            else:
                cur[1].append((lines[i][:lines[i].rindex("(")], loc))
            i += 1
        elif not lines[i]:
            cur = None
        i += 1
    return out


def groups1(text):
    """The blocks of a debug=1 text ("N @ pcs" and its "#" lines), runs of tabs as one."""
    text = text[text.index("goroutine profile: total"):]
    text = text[text.index("\n") + 1:]
    return [re.sub(r"\t+", "\t", b.strip()) for b in text.split("\n\n") if b.strip()]


def cprof_goroutines(text):
    """The goroutine part of a cprof text dump (after its "go goX:" line)."""
    m = re.search(r"^go (go[0-9.]+|unknown): (.*)$", text, re.M)
    check(m, "no go line in the dump", text[-2000:])
    return parse(text[m.end():]), m


def compare(ours, theirs, skip=()):
    """Ids, statuses and frames of two parsed dumps: (missing, extra, bad statuses, frames
    equal, frames in theirs)."""
    ids_o = set(ours) - set(skip)
    ids_t = set(theirs) - set(skip)
    same = ids_o & ids_t
    bad = [(i, ours[i][0], theirs[i][0]) for i in same if ours[i][0] != theirs[i][0]]
    equal = total = 0
    for i in same:
        fo, ft = ours[i][1] + ours[i][2], theirs[i][1] + theirs[i][2]
        total += len(ft)
        equal += sum(1 for a, b in zip(fo, ft) if a == b)
    return ids_t - ids_o, ids_o - ids_t, bad, equal, total


def woken_ids(bad):
    """The goroutines Go's dump found runnable or running (woken by the request itself)."""
    return {b[0] for b in bad if b[2] in (["runnable"], ["running"])}


def go_dump(t, path):
    """The fixture's own debug=2 dump, written on SIGUSR1."""
    if path.exists():
        path.unlink()
    os.kill(t.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not path.exists():
        check(time.monotonic() < deadline, "the fixture wrote no goroutine dump")
        time.sleep(0.05)
    return path.read_text()


def agreement(stripped, cgo=False, pie=False, path=None):
    dumpfile = WORK / ("go-dump-%d%d%d%d.txt" % (stripped, cgo, pie, path is not None))
    with cplib.Target("gogoroutines", RECEIVERS, dumpfile,
                      path=path or fixture(stripped, cgo, pie)) as t:
        # Both dumps are taken again (15 times at most) while a goroutine is not at rest in
        # one of them: the signal that makes Go write its own wakes the runtime's signal
        # goroutine, and main may still be leaving the write of its READY line. On a busy
        # machine a woken goroutine may take long to be scheduled and park again: the pause
        # between tries grows.
        for i in range(15):
            theirs = parse(go_dump(t, dumpfile))
            # Go's first goroutine is the one writing the dump: running there, in a channel
            # receive (os/signal) here.
            writer = [i for i, g in theirs.items() if g[0] == ["running"]]
            check(len(writer) == 1, "not one running goroutine in Go's dump", writer)
            p = cplib.run(["dump", "-p", t.pid], check_rc=0, timeout=120)
            ours, m = cprof_goroutines(p.stdout)
            missing, extra, bad, equal, total = compare(ours, theirs, skip=writer)
            if not (missing or extra or bad):
                break
            time.sleep(0.2 * (i + 1))
        check(re.match(r"go\d+\.", m.group(1)), "no Go version", m.group(0))
        check(not missing and not extra, "goroutine ids differ", sorted(missing)[:20],
              sorted(extra)[:20])
        check(not bad, "statuses differ", bad[:20])
        check(total > 2 * RECEIVERS and equal >= 0.99 * total,
              "frames differ: %d of %d equal" % (equal, total))
        waits = {}
        for g in ours.values():
            waits[g[0][0]] = waits.get(g[0][0], 0) + 1
        check(waits.get("chan receive", 0) >= RECEIVERS + 1 and waits.get("select") == 10 and
              waits.get("semacquire") == 5 and waits.get("IO wait") == 1 and
              waits.get("sleep") == 1, "wait reasons", waits)
        check(any(g[0] == ["chan receive", "locked to thread"] and
                  g[1][0][0] == "main.lockedWaiter" for g in ours.values()),
              "no locked goroutine in main.lockedWaiter")
        print("%s%s%s: %d goroutines, same ids and statuses, %d of %d frames equal" %
              ("stripped" if stripped else "plain", " cgo" if cgo else "", " pie" if pie else "",
               len(ours), equal, total))
        cplib.assert_target_unharmed(t.pid)
        return p.stdout


def test_agreement_plain():
    """The plain build (DWARF, .symtab): layouts from DWARF, globals from .symtab."""
    agreement(False)


def test_agreement_stripped():
    """The -s -w build: layouts from the Go 1.19 table, globals from the runtime's code."""
    agreement(True)


def test_agreement_stripped_pie():
    """A stripped position-independent build: the globals the code gives are moved by the
    load bias."""
    agreement(True, pie=True)


def test_agreement_cgo():
    """A cgo build (libc, threads from pthread_create): the threads are listed with their C
    and Go frames, and after them the goroutines, which agree with Go's own as above."""
    if not shutil.which("gcc"):
        check(False, "gcc is not installed")
    text = agreement(False, cgo=True)
    heads = re.findall(r'^thread \d+ .*$', text, re.M)
    check(len(heads) >= 3, "few threads", text[:2000])
    check(re.search(r"^  #\d+ runtime\.\w+  \S+:\d+$", text, re.M), "no named Go frame in the "
          "threads", text[:3000])
    interp = subprocess.run(["readelf", "-lW", str(fixture(False, True))], capture_output=True,
                            text=True).stdout
    check("Requesting program interpreter" in interp, "the cgo build is not linked with libc")


def test_running_goroutine():
    """A goroutine spinning in main.spin is shown running at its thread's stack: its thread
    is named, and that thread names it back."""
    with cplib.Target("gogoroutines", 10, "-", "spin", path=fixture(True)) as t:
        for _ in range(20):
            d = cplib.dump_json(t.pid)
            run = [g for g in d["goroutines"] if g["status"] == "running"]
            if run:
                break
        check(len(run) == 1, "no running goroutine", [g["status"] for g in d["goroutines"]])
        g = run[0]
        check(g["thread"] and any(f["function"] == "main.spin" for f in g["frames"]),
              "running goroutine without its thread's frames", g)
        th = [x for x in d["threads"] if x["tid"] == g["thread"]]
        check(th and th[0]["goroutine"] == g["id"], "its thread does not name it", th)
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check(re.search(r"^thread \d+ .*\(goroutine \d+\):$", text, re.M),
              "no thread line names its goroutine", text[:2000])
        cplib.assert_target_unharmed(t.pid)


def test_cpu_profile_stripped_named():
    """A CPU profile of the stripped build spinning in main.spin: Go's names from .gopclntab,
    in pprof as go tool pprof reads it, no frame left as module+0x..."""
    out = WORK / "spin.pb.gz"
    with cplib.Target("gogoroutines", 10, "-", "spin", path=fixture(True)) as t:
        cplib.run(["attach", "-p", t.pid, "--seconds", "2", "-o", out], check_rc=0)
        cplib.assert_target_unharmed(t.pid)
    p = cplib.go_pprof("-top", "-nodecount=200", out)
    check(p.returncode == 0 and not p.stderr.strip(), "go tool pprof failed", p.stderr)
    check(re.search(r"\bmain\.spin\b", p.stdout), "main.spin not in the profile", p.stdout)
    check("gogoroutines-s+0x" not in p.stdout, "unnamed frames", p.stdout)


def test_moving_goroutines():
    """Goroutines that move all the time (a token ring, short-lived goroutines): ten dumps,
    each a whole JSON document; every goroutine not marked torn and not running has named
    frames down to its own function, and the target is left as it was."""
    with cplib.Target("gogoroutines", 10, "-", "churn", path=fixture(True)) as t:
        torn = seen = 0
        for _ in range(10):
            d = cplib.dump_json(t.pid)
            for g in d["goroutines"]:
                seen += 1
                if g["torn"]:
                    torn += 1
                    continue
                if g["status"] in ("running", "runnable") or g["id"] == 1:
                    continue
                check(g["frames"] and all(f["function"] and f["file"] and f["line"]
                                          for f in g["frames"]),
                      "goroutine with unnamed frames", g)
                check(g["frames"][-1]["function"].startswith("main."),
                      "goroutine whose stack does not reach main.*", g)
        print("moving goroutines: %d seen in 10 dumps, %d torn" % (seen, torn))
        # How many are torn depends on the machine's load; the parked ones never are.
        check(torn < seen, "every goroutine torn", torn, seen)
        cplib.assert_target_unharmed(t.pid)


def test_json_and_threads():
    """JSON goroutines with the fields of section "Go programs"; the locked goroutine names
    its thread, and that thread names its goroutine; running goroutines name theirs."""
    with cplib.Target("gogoroutines", 100, path=fixture(True)) as t:
        d = cplib.dump_json(t.pid)
        check(d["go_version"].startswith("go1.") and d["go_error"] is None, "go_version",
              d["go_version"], d["go_error"])
        gs = d["goroutines"]
        check(len(gs) >= 100 + 18, "few goroutines", len(gs))
        fields = {"id", "status", "wait_reason", "wait_minutes", "locked_to_thread", "thread",
                  "frames", "created_by", "waiting_on", "torn"}
        for g in gs:
            check(set(g) == fields, "goroutine fields", sorted(g))
        recv = [g for g in gs if g["wait_reason"] == "chan receive" and g["frames"] and
                g["frames"][0]["function"] == "main.receiver"]
        check(len(recv) == 100, "receivers", len(recv))
        r = recv[0]
        # waitsince is set by the first GC that scans the parked goroutine: null until then.
        check(r["status"] == "waiting" and r["wait_minutes"] in (None, 0) and
              r["thread"] is None, "receiver", r)
        check(r["frames"][0]["file"].endswith("gogoroutines/main.go") and
              r["frames"][0]["line"] > 0 and r["frames"][0]["module"].endswith("gogoroutines-s"),
              "receiver frame", r["frames"][0])
        check(r["created_by"]["function"] == "main.main" and r["created_by"]["line"] > 0,
              "created_by", r["created_by"])
        check(len({g["waiting_on"] for g in recv}) == 1 and recv[0]["waiting_on"],
              "the receivers wait on one channel", {g["waiting_on"] for g in recv})
        locked = [g for g in gs if g["locked_to_thread"]]
        check(len(locked) == 1 and locked[0]["thread"], "locked goroutine", locked)
        tids = {th["tid"]: th for th in d["threads"]}
        th = tids.get(locked[0]["thread"])
        check(th and th["goroutine"] == locked[0]["id"], "the locked thread's goroutine", th)
        check(all("goroutine" in th for th in d["threads"]), "threads without goroutine field")
        for g in gs:
            if g["thread"]:
                check(tids.get(g["thread"], {}).get("goroutine") == g["id"],
                      "thread and goroutine not tied", g["id"], g["thread"])
        cplib.assert_target_unharmed(t.pid)


def future_fixture():
    """The stripped fixture with go1.19.8 patched to go9.99.9 in .go.buildinfo: a version
    cprof has no table for."""
    exe = WORK / "gogoroutines-future"
    if not exe.exists():
        data = fixture(True).read_bytes()
        i = data.index(b"\xff Go buildinf:")
        j = data.index(b"go1.19.8", i)
        check(j - i < 64, "the version is not inline in .go.buildinfo")
        exe.write_bytes(data[:j] + b"go9.99.9" + data[j + 8:])
        exe.chmod(0o755)
    return exe


def test_unknown_version_learned():
    """A stripped binary of a Go version cprof has no table for: the layout of g is learned
    from the goroutines themselves, and the dump agrees with Go's own as the others do
    (ids, statuses with "locked to thread", frames)."""
    text = agreement(True, path=future_fixture())
    check(re.search(r"^go go9\.99\.9: \d+ goroutines", text, re.M), "no go line", text[-300:])
    with cplib.Target("gogoroutines", 10, path=future_fixture()) as t:
        d = cplib.dump_json(t.pid)
        check(d["go_version"] == "go9.99.9" and d["go_error"] is None and d["goroutines"],
              "JSON", d["go_version"], d["go_error"])
        check(any(g["waiting_on"] for g in d["goroutines"]), "no channel learned")


def test_group_debug1():
    """--group prints Go's debug=1 form: the total, then COUNT @ pcs and # frame lines; the
    receivers are one group of 100, named main.receiver at main.go."""
    with cplib.Target("gogoroutines", 100, path=fixture(False)) as t:
        p = cplib.run(["dump", "-p", t.pid, "--group"], check_rc=0)
        m = re.search(r"^goroutine profile: total (\d+)$", p.stdout, re.M)
        check(m and int(m.group(1)) >= 118, "no total line", p.stdout[-3000:])
        groups = re.findall(r"^(\d+) @( 0x[0-9a-f]+)+\n((?:#\t.*\n)+)", p.stdout, re.M)
        big = [g for g in groups if g[0] == "100"]
        check(big and re.search(r"^#\t0x[0-9a-f]+\tmain\.receiver\+0x[0-9a-f]+\t\S+/main\.go:\d+$",
                                big[0][2], re.M), "no group of 100 receivers", groups[:5])


def test_prometheus_agreement():
    """Debian's prometheus (stripped) against its own /debug/pprof/goroutine?debug=2: the
    goroutines present in both cprof dumps (taken before and after Go's) are in Go's, with
    the same statuses and at least 99% of the same frames."""
    if not os.access(PROMETHEUS, os.X_OK):
        cplib.skip("prometheus is not installed")
    port = cplib.free_port()
    conf = WORK / "prometheus.yml"
    conf.write_text("global:\n  scrape_interval: 1h\n")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=%s" % conf,
                             "--web.listen-address=127.0.0.1:%d" % port,
                             "--storage.tsdb.path=%s" % (WORK / "tsdb")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    cplib._started.append(proc)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 60
        while True:
            check(proc.poll() is None, "prometheus exited", proc.returncode)
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            check(time.monotonic() < deadline, "prometheus not ready in 60 s")
            time.sleep(0.3)
        time.sleep(1)
        before, _ = cprof_goroutines(cplib.run(["dump", "-p", proc.pid], check_rc=0).stdout)
        with urllib.request.urlopen(url + "/debug/pprof/goroutine?debug=2", timeout=30) as r:
            theirs = parse(r.read().decode())
        after, _ = cprof_goroutines(cplib.run(["dump", "-p", proc.pid], check_rc=0).stdout)
        stable = {i: g for i, g in after.items() if i in before and before[i] == g}
        check(len(stable) >= 20, "few stable goroutines", len(stable), len(before))
        # Go's dump holds the goroutines serving its own request, which ours cannot.
        missing, extra, bad, equal, total = compare(stable, theirs,
                                                    skip=set(theirs) - set(before))
        check(not extra, "goroutines in cprof's dumps but not in Go's", sorted(extra))
        check(len(missing) <= 2, "goroutines missing", sorted(missing))
        # The request wakes the listener's accept loop: runnable in Go's dump, IO wait before
        # and after it.
        woken = [b for b in bad if b[2] in (["runnable"], ["running"])]
        check(len(bad) - len(woken) == 0 and len(woken) <= 2, "statuses differ", bad[:10])
        # A woken goroutine is elsewhere in Go's dump too: its frames are not compared.
        if woken:
            _, _, _, equal, total = compare(stable, theirs,
                                            skip=(set(theirs) - set(before)) | woken_ids(bad))
        check(total >= 40 and equal >= 0.99 * total,
              "frames differ: %d of %d equal" % (equal, total))
        print("prometheus: %d goroutines, %d stable, %d of %d frames equal" %
              (len(theirs), len(stable), equal, total))
        # --group against debug=1: the same blocks (stack, "#" lines), tabs aside.
        ours1 = groups1(cplib.run(["dump", "-p", proc.pid, "--group"], check_rc=0).stdout)
        with urllib.request.urlopen(url + "/debug/pprof/goroutine?debug=1", timeout=30) as r:
            theirs1 = groups1(r.read().decode())
        same = [b for b in ours1 if b in theirs1]
        check(len(ours1) >= 10 and len(same) >= 0.9 * len(ours1),
              "debug=1 blocks differ: %d of %d the same" % (len(same), len(ours1)),
              [b for b in ours1 if b not in theirs1][:3])
        print("prometheus debug=1: %d of %d groups the same" % (len(same), len(ours1)))
        cplib.assert_target_unharmed(proc.pid)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
