#!/usr/bin/env python3
"""cprof dump end to end: C++ names and inlined frames, the text and JSON formats of
docs/FORMATS.md "Thread dump", --group, --kernel, -o and --stuck, on the demo and cppfix
fixtures."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import Target, check, run, dump_json, thread_by_name, line_of  # noqa: E402

CPPFIX = "tests/targets/cppfix.cpp"
DEMO = "tests/targets/demo.c"
WAIT_KINDS = {"running", "mutex", "rwlock", "condvar", "futex", "sleep", "poll", "io-read",
              "io-write", "accept", "connect", "wait-child", "signal", "disk", "stopped",
              "zombie", "syscall", "unknown"}


def frame_index(frames, pred, what):
    for i, f in enumerate(frames):
        if pred(f):
            return i
    raise cplib.Failure("no frame %s in %s" % (what, [(f["function"], f["line"]) for f in frames]))


def test_cpp_template_and_inlined_frame():
    with Target("cppfix") as t:
        d = dump_json(t.pid)
        th = thread_by_name(d, "cashier-0")
        fr = th["frames"]
        i_block = frame_index(fr, lambda f: f["function"] and "block_forever" in f["function"],
                              "block_forever")
        i_inl = frame_index(fr, lambda f: f["function"] and "wait_for_order" in f["function"],
                            "wait_for_order")
        i_serve = frame_index(fr, lambda f: f["function"] and
                              "shop::Counter<int>::serve" in f["function"], "Counter<int>::serve")
        check(i_block < i_inl < i_serve, "frames not innermost first", fr)
        check(fr[i_inl]["inlined"] is True, "wait_for_order not marked inlined", fr[i_inl])
        # No linkage name in DWARF for it (static inline): qualified by its namespace.
        check(fr[i_inl]["function"] == "shop::wait_for_order", "not qualified", fr[i_inl])
        check(fr[i_serve]["inlined"] is False, "serve marked inlined", fr[i_serve])
        check(fr[i_inl]["line"] == line_of(CPPFIX, "MARK: wait_for_order calls"),
              "inlined frame line", fr[i_inl])
        check(fr[i_serve]["line"] == line_of(CPPFIX, "MARK: serve calls"), "serve line",
              fr[i_serve])
        check(fr[i_block]["line"] == line_of(CPPFIX, "MARK: block_forever reads"),
              "block_forever line", fr[i_block])
        check(fr[i_serve]["file"].endswith("cppfix.cpp"), "serve file", fr[i_serve])
        check(not fr[i_serve]["function"].startswith("_Z"), "not demangled", fr[i_serve])
        # An inlined frame shares the pc of the real frame that contains it.
        check(fr[i_inl]["pc"] == fr[i_serve]["pc"], "inlined pc differs", fr[i_inl], fr[i_serve])
        check(th["wait"]["kind"] == "io-read", "cashier wait kind", th["wait"])
        # The text form marks the inlined frame.
        p = run(["dump", "-p", t.pid], check_rc=0)
        check(re.search(r"^  #\d+ \S*wait_for_order\S*  \S*cppfix\.cpp:%d \(inlined\)$"
                        % line_of(CPPFIX, "MARK: wait_for_order calls"), p.stdout, re.M),
              "no (inlined) line in text", p.stdout[:3000])
        check(re.search(r"^  #\d+ shop::Counter<int>::serve\(int\)  \S*cppfix\.cpp:\d+$",
                        p.stdout, re.M), "no demangled template method line", p.stdout[:3000])


def test_json_fields_exact():
    with Target("demo") as t:
        d = dump_json(t.pid)
        for k in ("pid", "exe", "cmdline", "time", "tracer", "threads", "groups", "deadlocks",
                  "fds", "summary"):
            check(k in d, "missing top-level field " + k)
        check(d["pid"] == t.pid, "pid")
        check(d["exe"].endswith("/demo"), "exe", d["exe"])
        check(d["cmdline"][0].endswith("demo"), "cmdline", d["cmdline"])
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["time"]), "time", d["time"])
        check(d["groups"] is None, "groups must be null without --group")
        check(d["tracer"] is None, "tracer must be null for an untraced process")
        tids = set(int(x) for x in os.listdir("/proc/%d/task" % t.pid))
        check({th["tid"] for th in d["threads"]} == tids, "threads differ from /proc",
              sorted(tids))
        for th in d["threads"]:
            check(set(th) == {"tid", "ns_tid", "name", "state", "wait", "stuck", "frames",
                              "kernel_frames", "capture_error"}, "thread fields", sorted(th))
            check(th["ns_tid"] is None, "ns_tid is null in cprof's own PID namespace", th)
            check(th["capture_error"] is None, "capture_error of a captured thread", th)
            check(set(th["wait"]) == {"kind", "detail", "syscall", "address", "owner_tid", "fd",
                                      "object", "timeout"}, "wait fields", th["wait"])
            check(th["wait"]["kind"] in WAIT_KINDS, "wait kind", th["wait"])
            check(th["stuck"] is None, "stuck must be null without --stuck")
            check(th["kernel_frames"] == [], "kernel_frames without --kernel")
            check(len(th["frames"]) >= 2, "short stack for " + th["name"], th["frames"])
            for f in th["frames"]:
                check(set(f) == {"pc", "function", "file", "line", "module", "offset",
                                 "inlined"}, "frame fields", f)
                if f["function"] in ("[truncated]", "[unknown]"):
                    check(f is th["frames"][-1] and f["pc"] is None, "end marker", f)
                    continue
                check(re.fullmatch(r"0x[0-9a-f]+", f["pc"]), "pc format", f)
                check(f["module"] is not None and f["offset"] is not None,
                      "module/offset missing", f)
        m = thread_by_name(d, "w-mutex")
        holder = thread_by_name(d, "w-holder")
        check(m["wait"]["kind"] == "mutex", "w-mutex kind", m["wait"])
        check(m["wait"]["owner_tid"] == holder["tid"], "w-mutex owner", m["wait"])
        fn = [f["function"] for f in m["frames"]]
        check("take_demo_lock" in fn and "mutex_main" in fn, "w-mutex stack", fn)
        tk = [f for f in m["frames"] if f["function"] == "take_demo_lock"][0]
        check(tk["line"] == line_of(DEMO, "BLOCK: mutex"), "take_demo_lock line", tk)
        hot = thread_by_name(d, "hot")
        fn = [f["function"] for f in hot["frames"]]
        check("hot_outer" in fn and "hot_main" in fn, "hot stack", fn)
        dl = {thread_by_name(d, "dl-1")["tid"], thread_by_name(d, "dl-2")["tid"]}
        check(any(set(x["tids"]) == dl and x["description"] for x in d["deadlocks"]),
              "deadlock dl-1/dl-2 not found", d["deadlocks"])
        s = d["summary"]
        check(s["threads"] == len(d["threads"]), "summary.threads")
        check(sum(s["by_wait"].values()) == len(d["threads"]), "by_wait sums", s)
        check(s["by_wait"].get("mutex") == 3, "3 mutex waiters", s)
        check(set(d["fds"]) == {"total", "socket", "pipe", "file", "anon"}, "fds", d["fds"])
        check(d["fds"]["socket"] >= 24, "demo has 24 sockets", d["fds"])


def test_text_format():
    with Target("demo") as t:
        p = run(["dump", "-p", t.pid], check_rc=0)
        out = p.stdout
        lines = out.splitlines()
        check("\033[" not in out, "colour escapes when not a terminal")
        m = re.fullmatch(r"process (\d+) \((.*)\) at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: (\d+) threads",
                         lines[0])
        check(m and int(m.group(1)) == t.pid, "header line", lines[0])
        check("demo" in m.group(2), "header cmdline", lines[0])
        n = int(m.group(3))
        check(n == len(os.listdir("/proc/%d/task" % t.pid)), "thread count", lines[0])
        check(re.fullmatch(r"  \d+ [a-z-]+(, \d+ [a-z-]+)*", lines[1]), "summary line", lines[1])
        counts = [int(x) for x in re.findall(r"(\d+) [a-z-]+", lines[1])]
        check(sum(counts) == n, "summary counts sum", lines[1])
        check(counts == sorted(counts, reverse=True), "summary not by count", lines[1])
        heads = re.findall(r'^thread (\d+) "([^"]*)" \[([a-z-]+)(: .*)?\]( \(stuck \d+s\))?:$',
                           out, re.M)
        check(len(heads) == n, "thread lines: %d of %d" % (len(heads), n), out[:3000])
        check(re.search(r'^thread \d+ "w-mutex" \[mutex: 0x[0-9a-f]+ held by thread \d+ '
                        r'"w-holder"\]:$', out, re.M), "w-mutex line", out[:4000])
        check(re.search(r"^  #\d+ take_demo_lock  \S*demo\.c:%d$" % line_of(DEMO, "BLOCK: mutex"),
                        out, re.M), "frame line with file:line")
        check(re.search(r"^  #\d+ \S+  [\w.+-]+\+0x[0-9a-f]+$", out, re.M) or
              re.search(r"^  #\d+ [\w.+-]+\+0x[0-9a-f]+$", out, re.M),
              "no module+0xoffset frame (e.g. _start)")
        check(re.search(r'^thread \d+ "w-pipe" \[io-read: .*no timeout.*\]:$', out, re.M),
              "w-pipe not flagged 'no timeout'")
        check(re.search(r'^thread \d+ "w-poll" \[poll', out, re.M) and
              not re.search(r'^thread \d+ "w-poll" .*no timeout', out, re.M),
              "w-poll has a timeout and must not be flagged")
        check(re.search(r"^DEADLOCK: .*dl-[12].*dl-[12]", out, re.M), "DEADLOCK line")
        # docs/FORMATS.md, Deadlocks: each link of a cycle on its own line, aligned under the first.
        check(re.search(r'^DEADLOCK: thread \d+ "dl-[12]" waits for mutex 0x[0-9a-f]+ held by '
                        r'thread \d+ "dl-[12]",\n {10}which waits for mutex 0x[0-9a-f]+ held by '
                        r'thread \d+ "dl-[12]"$', out, re.M), "DEADLOCK layout", out[-600:])
        # The demo's 12 conn threads are made at once: a pool, not a leak (no evidence).
        check("LEAK?" not in out, "a pool made at once flagged as a leak")
        check(re.search(r"^  #\d+ .* \(inlined\)$", out, re.M), "no (inlined) frame")


def test_group():
    with Target("cppfix") as t:
        d = dump_json(t.pid, "--group")
        cashiers = sorted(th["tid"] for th in d["threads"] if th["name"].startswith("cashier-"))
        check(len(cashiers) == 5, "5 cashiers", cashiers)
        # Threads with one stack share one frames array inside cprof: each must still show
        # its own full stack, the same for all five, and no other thread's.
        stacks = [th["frames"] for th in d["threads"] if th["name"].startswith("cashier-")]
        check(all(s == stacks[0] for s in stacks), "the 5 cashiers' frames differ", stacks)
        check(any(f["function"] and "Counter<int>::serve" in f["function"] for f in stacks[0]),
              "cashier frames", stacks[0])
        others = [th["frames"] for th in d["threads"] if not th["name"].startswith("cashier-")]
        check(all(s != stacks[0] for s in others), "a non-cashier shows a cashier's stack")
        check(isinstance(d["groups"], list), "groups must be a list with --group")
        check(sum(g["count"] for g in d["groups"]) == len(d["threads"]), "group counts sum")
        big = d["groups"][0]
        check(set(big) == {"count", "tids", "wait_kind", "frames"}, "group fields", big)
        check(big["count"] == 5 and sorted(big["tids"]) == cashiers, "cashier group", big)
        check(big["wait_kind"] == "io-read", "group kind", big)
        check(any(f["function"] and "Counter<int>::serve" in f["function"]
                  for f in big["frames"]), "group frames", big["frames"])
        p = run(["dump", "-p", t.pid, "--group"], check_rc=0)
        check(re.search(r"^5 threads \[io-read.*\]: \d+ \"cashier-", p.stdout, re.M), "text group line",
              p.stdout[:2000])
        check(len(re.findall(r"^#?\d+ threads? \[", p.stdout, re.M)) == len(d["groups"]),
              "one text entry per group", p.stdout[:2000])


def test_kernel_stacks():
    if os.geteuid() != 0:
        cplib.skip("reading /proc/PID/task/TID/stack needs root")
    with Target("cppfix") as t:
        tid = int(sorted(os.listdir("/proc/%d/task" % t.pid), key=int)[1])
        try:
            open("/proc/%d/task/%d/stack" % (t.pid, tid)).read()
        except OSError as e:
            cplib.skip("kernel stacks unreadable here: %s" % e)
        p = run(["dump", "-p", t.pid, "--kernel", "--format", "json"], check_rc=0)
        d = json.loads(p.stdout)
        th = thread_by_name(d, "cashier-0")
        check(th["kernel_frames"], "no kernel frames for a thread blocked in read", th)
        check(any("read" in k for k in th["kernel_frames"]), "kernel stack without read",
              th["kernel_frames"])
        check(not any(k.startswith("[<") for k in th["kernel_frames"]), "address prefix kept",
              th["kernel_frames"])
        p = run(["dump", "-p", t.pid, "--kernel"], check_rc=0)
        check(re.search(r"^  kernel:\n    \S+", p.stdout, re.M), "text kernel section")


def test_kernel_stacks_unreadable():
    """Without root, --kernel still dumps: empty kernel_frames and one note on stderr."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        cplib.skip("needs root and setpriv to run as another user")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.Popen(nobody + [str(cplib.TARGETS / "cppfix")], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    cplib._started.append(proc)
    line = proc.stdout.readline().decode()
    check("READY" in line, "fixture as nobody did not start", line)
    p = subprocess.run(nobody + [cplib.CPROF, "dump", "-p", str(proc.pid), "--kernel",
                                 "--format", "json"], capture_output=True, text=True, timeout=120)
    if p.returncode != 0 and "permission denied" in p.stderr:
        cplib.skip("ptrace between processes of one user is not allowed here")
    check(p.returncode == 0, "exit %d" % p.returncode, p.stderr)
    d = json.loads(p.stdout)
    check(all(th["kernel_frames"] == [] for th in d["threads"]), "kernel frames as nobody?")
    check(all(th["frames"] for th in d["threads"]), "user stacks missing")
    notes = [x for x in p.stderr.splitlines() if "kernel stacks" in x]
    check(len(notes) == 1 and notes[0].startswith("cprof: "), "one note expected", p.stderr)


def test_output_file():
    with Target("cppfix") as t, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dump.json")
        p = run(["dump", "-p", t.pid, "--format", "json", "-o", path], check_rc=0)
        check(p.stdout == "", "stdout not empty with -o", p.stdout[:200])
        check(path in p.stderr, "path written not said on stderr", p.stderr)
        d = json.load(open(path))
        check(d["pid"] == t.pid and len(d["threads"]) == 6, "file content", d["pid"])
        check(os.listdir(tmp) == ["dump.json"], "leftover files", os.listdir(tmp))
        txt = os.path.join(tmp, "dump.txt")
        run(["dump", "-p", t.pid, "-o", txt], check_rc=0)
        check(open(txt).read().startswith("process %d " % t.pid), "text file header")


def test_hostile_names():
    """The target picks its argv and thread name: control bytes must not break the one-line
    header and thread lines, nor reach the terminal (an escape sequence)."""
    code = ('import ctypes, time\n'
            'ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b"n\\x1b[31m\\ny"), 0, 0, 0)\n'
            'print("READY", flush=True)\n'
            'time.sleep(600)\n')
    with Target("python", "-c", code, "arg\x1b]0;title\x07\nnext", path=sys.executable) as t:
        out = run(["dump", "-p", t.pid], check_rc=0).stdout
        check("\x1b" not in out and "\x07" not in out, "control bytes in the text dump",
              repr(out[:400]))
        lines = out.splitlines()
        check(lines[0].startswith("process %d (" % t.pid) and "next) at " in lines[0] and
              lines[0].endswith(": 1 thread"), "header not one line", lines[:3])
        check(re.search(r'^thread %d "n\\x1b\[31m\\x0ay" \[' % t.pid, out, re.M),
              "thread name not escaped", repr(out[:600]))


def test_stuck():
    with Target("demo") as t:
        p = run(["dump", "-p", t.pid, "--format", "json", "--stuck", "2"], check_rc=0, timeout=180)
        d = json.loads(p.stdout)
        check(all(th["stuck"] in (True, False) for th in d["threads"]), "stuck must be a bool")
        check(thread_by_name(d, "w-pipe")["stuck"] is True, "blocked w-pipe not stuck")
        check(thread_by_name(d, "w-mutex")["stuck"] is True, "blocked w-mutex not stuck")
        check(thread_by_name(d, "hot")["stuck"] is False, "spinning hot thread marked stuck")
        check(thread_by_name(d, "ticker")["stuck"] is False, "ticking thread marked stuck")
        p = run(["dump", "-p", t.pid, "--stuck", "1"], check_rc=0, timeout=180)
        check(re.search(r'^thread \d+ "w-pipe" \[.*\] \(stuck 1s\):$', p.stdout, re.M),
              "text stuck mark", p.stdout[:3000])
        check(not re.search(r'^thread \d+ "hot" .*stuck', p.stdout, re.M), "hot marked stuck")
        check(re.search(r"watched for 1s", p.stdout), "watch duration not said")



def test_truncated_stack_marked_in_json():
    """A stack deeper than the frame cap ends in a "[truncated]" pseudo-frame, in JSON too."""
    with Target("deep_stack") as t:
        rec = int(re.search(r"recurse=(\d+)", "\n".join(t.lines)).group(1))
        d = dump_json(t.pid)
        th = [x for x in d["threads"] if x["tid"] == rec][0]
        last = th["frames"][-1]
        check(last["function"] == "[truncated]" and last["pc"] is None, "no [truncated] end",
              last)
        check(sum(1 for f in th["frames"] if f["function"] == "deep_recurse") > 100,
              "recursion frames missing")
        main = [x for x in d["threads"] if x["tid"] == t.pid][0]
        check(all(f["function"] != "[truncated]" for f in main["frames"]),
              "a complete stack marked truncated", main["frames"][-3:])


if __name__ == "__main__":
    cplib.main(globals())
