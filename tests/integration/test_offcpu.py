#!/usr/bin/env python3
"""cprof attach/record --profile wall and block (docs/FORMATS.md "Profile types"): where threads
wait, timed against the fixture's own pattern (tests/targets/offcpu.c)."""
import os
import re
import sys

import cplib
from cplib import check, Target
import profiles
from profiles import pprof


def profile(pid, kind, *extra, seconds=3):
    out = os.path.join(profiles.tmpdir(), "p.pb.gz")
    r = cplib.run(["attach", "-p", pid, "--profile", kind, "--seconds", seconds, "-o", out] +
                  list(extra), timeout=120)
    check(r.returncode == 0, "attach --profile %s exited %d" % (kind, r.returncode), r.stderr)
    return out


def ms_traces(path, index):
    """[(milliseconds, [frames innermost first], {label: value})] of sample type index."""
    out = pprof("-traces", "-sample_index=" + index, "-unit=ms", path)
    result = []
    for block in re.split(r"^-+\+-+$", out, flags=re.M)[1:]:
        labels, frames, value = {}, [], 0.0
        for line in block.splitlines():
            if not line.strip():
                continue
            m = re.match(r"^\s+(\w+):\s+(.*)$", line)
            if m and not frames:
                labels[m.group(1)] = m.group(2).strip()
                continue
            m = re.match(r"^\s*([\d.]+)ms\s+(.*)$", line)
            if m and not frames:
                value = float(m.group(1))
                frames.append(m.group(2).strip())
            else:
                frames.append(line.strip())
        if frames:
            result.append((value, frames, labels))
    return result


def duration_ms(path):
    m = re.search(r"^Duration: ([\d.]+)", pprof("-raw", path), re.M)
    check(m, "no Duration in -raw")
    return float(m.group(1)) * 1000


def by_thread(tr, name):
    return sum(v for v, f, l in tr if l.get("thread") == name)


def test_block_accuracy():
    with Target("offcpu") as t:
        out = profile(t.pid, "block", seconds=5)
        raw = pprof("-raw", out)
        check("contentions/count delay/nanoseconds[dflt]" in raw, "sample types wrong", raw[:300])
        check("PeriodType: contentions count" in raw and "Period: 1\n" in raw,
              "period type wrong", raw[:300])
        win = duration_ms(out)
        tr = ms_traces(out, "delay")
        sleeper, reader, spinner = (by_thread(tr, n) for n in ("sleeper", "reader", "spinner"))
        # A: nanosleep loop; B: blocked in read() since before the attach (seeded).
        check(abs(sleeper - win) <= 0.03 * win, "sleeper %.0f ms of %.0f" % (sleeper, win))
        check(abs(reader - win) <= 0.03 * win, "reader %.0f ms of %.0f" % (reader, win))
        check(spinner < 0.01 * win, "spinner %.0f ms blocked of %.0f" % (spinner, win))
        read = [x for x in tr if x[2].get("thread") == "reader"]
        check(read and any("read_idle_pipe" in f for f in read[0][1]),
              "reader's stack is not read_idle_pipe", read[:1])
        check(all(l.get("wait") == "io-read" for v, f, l in read), "reader not io-read", read)
        sl = [x for x in tr if x[2].get("thread") == "sleeper"]
        check(all(l.get("wait") == "sleep" and "sleep_step" in f for v, f, l in sl),
              "sleeper not in sleep_step with wait sleep", sl[:2])
        top = pprof("-top", out)
        check("read_idle_pipe" in top and "sleep_step" in top, "-top lacks the wait sites", top)
        cplib.assert_target_unharmed(t.pid)


def test_wall_every_thread():
    with Target("offcpu") as t:
        out = profile(t.pid, "wall", "-F", 99, seconds=3)
        raw = pprof("-raw", out)
        check("samples/count wall/nanoseconds[dflt]" in raw, "sample types wrong", raw[:300])
        check("PeriodType: wall nanoseconds" in raw, "period type wrong", raw[:300])
        win = duration_ms(out)
        tr = ms_traces(out, "wall")
        for name in ("sleeper", "reader", "spinner", "offcpu"):
            got = by_thread(tr, name)
            check(abs(got - win) <= 0.1 * win, "%s: %.0f ms of wall %.0f" % (name, got, win))
        states = {}
        for v, f, l in tr:
            states.setdefault(l.get("thread"), set()).add(l.get("state"))
        check(states.get("spinner") == {"running"}, "spinner states %r" % states.get("spinner"))
        check(states.get("reader") == {"io-read"}, "reader states %r" % states.get("reader"))
        check("sleep" in states.get("sleeper", ()), "sleeper states %r" % states.get("sleeper"))
        check(any("spin_forever" in f for v, f, l in tr), "no spin_forever stack")


def test_block_formats():
    with Target("offcpu") as t:
        for fmt in ("folded", "text", "svg"):
            out = os.path.join(profiles.tmpdir(), "p." + fmt)
            r = cplib.run(["attach", "-p", t.pid, "--profile", "block", "--seconds", 1,
                           "--format", fmt, "-o", out], timeout=60)
            check(r.returncode == 0, "--format %s exited %d" % (fmt, r.returncode), r.stderr)
            text = open(out).read()
            if fmt == "folded":
                line = [x for x in text.splitlines() if "read_idle_pipe" in x]
                check(line and int(line[0].rsplit(" ", 1)[1]) > 0.9e9,
                      "folded: read stack not ~1 s in ns", text)
            elif fmt == "text":
                check("Type: delay" in text and "__libc_read" in text, "text table", text)
            else:
                check(text.startswith("<?xml") or "<svg" in text[:500], "not an svg")
                check("read_idle_pipe" in text, "svg lacks the read stack")


def test_record_block():
    out = os.path.join(profiles.tmpdir(), "r.pb.gz")
    r = cplib.run(["record", "--profile", "block", "-o", out, "--", "sleep", "1"], timeout=60)
    check(r.returncode == 0, "record exited %d" % r.returncode, r.stderr)
    tr = ms_traces(out, "delay")
    slept = sum(v for v, f, l in tr if any("nanosleep" in x for x in f))
    check(950 <= slept <= 1100, "sleep 1 blocked %.0f ms" % slept, tr)


def test_threadcreate():
    with Target("offcpu", "spawn") as t:
        out = profile(t.pid, "threadcreate", seconds=2)
        raw = pprof("-raw", out)
        check("threadcreate/count" in raw and "PeriodType: threadcreate count" in raw,
              "sample types wrong", raw[:300])
        tr = profiles.traces_of(out, "threadcreate")
        n = sum(c for c, f, l in tr)
        win = duration_ms(out)
        # One thread every 20 ms plus the time pthread_create and join take.
        check(0.6 * win / 20 <= n <= win / 20 + 3, "%d threads created in %.0f ms" % (n, win))
        good = sum(c for c, f, l in tr if "spawn_one" in f and "main" in f and
                   f[0].startswith("__clone"))
        check(good == n, "%d of %d creations at __clone* <- spawn_one <- main" % (good, n),
              tr[:2])
        top = pprof("-top", out)
        check("spawn_one" in top, "-top lacks spawn_one", top)


def test_profile_option_errors():
    r = cplib.run(["attach", "-p", os.getpid(), "--profile", "heap"], timeout=30)
    check(r.returncode == 2 and "invalid --profile 'heap'" in r.stderr, "bad --profile",
          r.stderr)


if __name__ == "__main__":
    cplib.main(globals())
