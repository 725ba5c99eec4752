#!/usr/bin/env python3
"""cprof dump on the locks fixture: mutex owners of every kind, rwlock writers, deadlock cycles,
leaked owners, and no deadlock where the owner is merely busy."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402


def fixture_info(t):
    """{'TID': {name: tid}, 'MUTEX': {label: addr}} from the fixture's output."""
    return {"TID": t.tagged("TID"), "MUTEX": t.tagged("MUTEX", 16)}


def addr(wait):
    return int(wait["address"], 16) if wait["address"] else None


def check_waits_for(dump, info, waiter, mutex, owner, kind="mutex"):
    t = cplib.thread_by_name(dump, waiter)
    w = t["wait"]
    check(w["kind"] == kind, "%s: kind %s, expected %s" % (waiter, w["kind"], kind), w)
    check(addr(w) == info["MUTEX"][mutex],
          "%s: address %s, expected %#x (%s)" % (waiter, w["address"], info["MUTEX"][mutex], mutex), w)
    check(w["owner_tid"] == info["TID"][owner],
          "%s: owner_tid %s, expected %d (%s)" % (waiter, w["owner_tid"], info["TID"][owner], owner), w)


def desc(info, a, ma, b, mb):
    """docs/FORMATS.md's sentence ("Deadlocks") for a two-thread cycle."""
    return ('thread %d "%s" waits for mutex %#x held by thread %d "%s", which waits for mutex %#x '
            'held by thread %d "%s"' % (info["TID"][a], a, info["MUTEX"][ma], info["TID"][b], b,
                                        info["MUTEX"][mb], info["TID"][a], a))


def test_abba_deadlock():
    with cplib.Target("locks", "abba") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        check_waits_for(d, info, "abba-1", "abba-b", "abba-2")
        check_waits_for(d, info, "abba-2", "abba-a", "abba-1")
        check(len(d["deadlocks"]) == 1, "one deadlock expected", d["deadlocks"])
        dl = d["deadlocks"][0]
        t1, t2 = info["TID"]["abba-1"], info["TID"]["abba-2"]
        check(dl["tids"] == [t1, t2], "cycle tids %s, expected %s" % (dl["tids"], [t1, t2]))
        want = desc(info, "abba-1", "abba-b", "abba-2", "abba-a")
        check(dl["description"] == want, "description", dl["description"], want)

        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        joined = " ".join(text.split())
        check("DEADLOCK:" in text, "text dump has a DEADLOCK line", text[-1500:])
        check(" ".join(want.split()) in joined, "text DEADLOCK line carries the description",
              text[-1500:])
        cplib.assert_target_unharmed(t.pid)


def test_three_thread_cycle():
    with cplib.Target("locks", "cycle3") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        check(len(d["deadlocks"]) == 1, "one deadlock", d["deadlocks"])
        tids = [info["TID"][n] for n in ("cyc-1", "cyc-2", "cyc-3")]
        check(d["deadlocks"][0]["tids"] == tids, "cycle order %s, expected %s" %
              (d["deadlocks"][0]["tids"], tids))
        s = d["deadlocks"][0]["description"]
        for i, n in enumerate(("cyc-1", "cyc-2", "cyc-3")):
            check('thread %d "%s"' % (info["TID"][n], n) in s, "%s named" % n, s)
            check("mutex %#x" % info["MUTEX"]["cyc-m%d" % (i + 1)] in s, "mutex %d named" % i, s)
        check(s.count("which waits for") == 2, "three links in the sentence", s)


def test_leaked_owner():
    with cplib.Target("locks", "leaked") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        owner = info["TID"]["leak-owner"]
        waiter = info["TID"]["leak-wait"]
        check(owner not in [x["tid"] for x in d["threads"]], "the owner thread has exited")
        check_waits_for(d, info, "leak-wait", "leak-m", "leak-owner")
        check(len(d["deadlocks"]) == 1, "the leaked lock is reported", d["deadlocks"])
        dl = d["deadlocks"][0]
        check(waiter in dl["tids"], "waiter in tids", dl)
        want = ('thread %d "leak-wait" waits for mutex %#x held by thread %d, which has exited' %
                (waiter, info["MUTEX"]["leak-m"], owner))
        check(dl["description"] == want, "leaked description", dl["description"], want)
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check("which has exited" in text and "DEADLOCK" in text, "text reports it", text[-1000:])


def test_live_owner_is_not_a_deadlock():
    with cplib.Target("locks", "live") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        check_waits_for(d, info, "live-wait", "live-m", "live-owner")
        check(d["deadlocks"] == [], "no deadlock behind a live owner", d["deadlocks"])
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check("DEADLOCK" not in text, "no DEADLOCK line", text[-1000:])


def test_timed_wait_names_the_owner():
    with cplib.Target("locks", "timed") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        check_waits_for(d, info, "timed-wait", "timed-m", "timed-owner")
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        line = [l for l in text.splitlines() if '"timed-wait"' in l]
        check(line and re.search(r'held by thread \d+ "timed-owner", [\d.]+s remaining',
                                 line[0]), "the owner's name is not in the timed wait", line)


def test_mutex_kinds():
    with cplib.Target("locks", "robust", "recursive", "errorcheck", "pi", "self") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        check_waits_for(d, info, "rob-wait", "robust-m", "rob-own")
        check_waits_for(d, info, "rec-wait", "recursive-m", "rec-own")
        check_waits_for(d, info, "ec-wait", "errorcheck-m", "ec-own")
        check_waits_for(d, info, "pi-wait", "pi-m", "pi-own")
        # Only the self-deadlock is a deadlock here: the other owners are alive and asleep.
        check_waits_for(d, info, "self-lock", "self-m", "self-lock")
        check(len(d["deadlocks"]) == 1 and d["deadlocks"][0]["tids"] == [info["TID"]["self-lock"]],
              "only the self-deadlock", d["deadlocks"])
        cplib.assert_target_unharmed(t.pid)


def test_rwlock_writer():
    with cplib.Target("locks", "rwlock") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        for waiter in ("rw-reader", "rw-wwait"):
            check_waits_for(d, info, waiter, "rw-lock", "rw-writer", kind="rwlock")
        check(d["deadlocks"] == [], "writer is alive: no deadlock", d["deadlocks"])


def test_everything_at_once():
    with cplib.Target("locks") as t:
        info = fixture_info(t)
        d = cplib.dump_json(t.pid)
        groups = sorted(sorted(x["tids"]) for x in d["deadlocks"])
        tid = info["TID"]
        want = sorted([sorted([tid["abba-1"], tid["abba-2"]]),
                       sorted([tid["cyc-1"], tid["cyc-2"], tid["cyc-3"]]),
                       [tid["self-lock"]]])
        cycles = [g for g in groups if tid["leak-wait"] not in g]
        check(cycles == want, "cycles %s, expected %s" % (cycles, want))
        check(len(groups) == 4, "three cycles and one leaked lock", d["deadlocks"])
        for name in ("live-wait", "rob-wait", "rec-wait", "ec-wait", "pi-wait", "rw-reader"):
            check(not any(tid[name] in g for g in groups), "%s is in no deadlock" % name)
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    cplib.main(globals())
