#!/usr/bin/env python3
"""cprof dump on the rust_locks fixture (rustc, v0 symbol names): every frame of every thread is
named in Rust's own syntax, none by its raw mangled name, each thread blocked in std's locks
and channels shows std's frames under the fixture's own function and the wait kind glibc's
locks get (mutex, condvar, rwlock, futex for a channel), and the two threads that take two
Mutexes in opposite orders are reported as a deadlock, said to be inferred: Rust's lock word
records no owner."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

# Thread name: (the fixture's function it blocks in, a pattern for std's frame below it). The
# std frames are named as std's own mangling gives them: legacy names in Debian's rustc 1.63
# ("std::sys::unix::locks::futex::Mutex::lock_contended"), v0 in later ones
# ("<std::sys::sync::mutex::futex::Mutex>::lock_contended").
EXPECTED = {
    "mutex-wait": ("rust_locks::block_mutex", r"^<?std::sys::.*Mutex>?::lock_contended$"),
    "abba-1": ("rust_locks::lock_in_order", r"^<?std::sys::.*Mutex>?::lock_contended$"),
    "abba-2": ("rust_locks::lock_in_order", r"^<?std::sys::.*Mutex>?::lock_contended$"),
    "cv-wait": ("rust_locks::block_condvar", r"^<?std::sys::.*Condvar>?::wait"),
    "rw-writer": ("rust_locks::block_rwlock_write", r"^<?std::sys::.*RwLock>?::write_contended$"),
    "mpsc-recv": ("rust_locks::block_recv", r"^<?std::sync::mpsc::.*recv"),
    "mutex-holder": ("rust_locks::hold_forever", r"^std::thread::.*sleep$"),
    "rw-reader": ("rust_locks::hold_forever", r"^std::thread::.*sleep$"),
}
# A raw Rust name: v0 (_R + an upper-case tag) or legacy (_ZN ... 17h<hash>E).
RAW = re.compile(r"(^|[^A-Za-z0-9_])(_R[A-Z]|_ZN\w*17h[0-9a-f]{16}E)")


def functions(thread):
    return [f["function"] for f in thread["frames"] if f.get("function")]


def test_v0_names_demangled():
    with cplib.Target("rust_locks") as t:
        tids = t.tagged("TID")
        d = cplib.dump_json(t.pid)
        cplib.assert_target_unharmed(t.pid)
        names = {x["name"]: x for x in d["threads"]}
        for name in EXPECTED:
            check(name in names, "thread %s in the dump" % name, sorted(names))
            check(names[name]["tid"] == tids[name], "%s: tid" % name, names[name]["tid"])
        for th in d["threads"]:
            for f in functions(th):
                check(not RAW.search(f), "%s: raw mangled name %r" % (th["name"], f))
        for name, (own, std) in EXPECTED.items():
            fns = functions(names[name])
            check(own in fns, "%s: frame %s" % (name, own), fns[:16])
            i = fns.index(own)
            check(any(re.search(std, f) for f in fns[:i]),
                  "%s: a frame matching %s above %s" % (name, std, own), fns[:i + 1])
        # Closures, generic arguments and the main function keep Rust's syntax.
        main = names["rust_locks"] if "rust_locks" in names else d["threads"][0]
        check("rust_locks::main" in functions(main), "main thread: rust_locks::main",
              functions(main))
        spawned = functions(names["mutex-wait"])
        check(any(re.fullmatch(r"rust_locks::main::\{closure#\d+\}", f) for f in spawned),
              "mutex-wait: the spawning closure as rust_locks::main::{closure#N}", spawned)


def test_text_dump():
    with cplib.Target("rust_locks") as t:
        p = cplib.run(["dump", "-p", t.pid], check_rc=0)
        cplib.assert_target_unharmed(t.pid)
        check("rust_locks::block_rwlock_write" in p.stdout, "text dump names the Rust frame",
              p.stdout[:3000])
        raw = [line for line in p.stdout.splitlines() if RAW.search(line)]
        check(not raw, "text dump: raw mangled names", raw[:5])



KINDS = {"mutex-wait": ("mutex", "std::sync::Mutex::lock"),
         "mutex-wait2": ("mutex", "std::sync::Mutex::lock"),
         "abba-1": ("mutex", "std::sync::Mutex::lock"),
         "abba-2": ("mutex", "std::sync::Mutex::lock"),
         "cv-wait": ("condvar", "std::sync::Condvar::wait"),
         "rw-writer": ("rwlock", "std::sync::RwLock::write"),
         "mpsc-recv": ("futex", "std::sync::mpsc::Receiver::recv")}


def test_wait_kinds_and_deadlock():
    with cplib.Target("rust_locks") as t:
        tids = t.tagged("TID")
        d = cplib.dump_json(t.pid)
        names = {x["name"]: x for x in d["threads"]}
        for name, (kind, label) in KINDS.items():
            w = names[name]["wait"]
            check(w["kind"] == kind, "%s: kind %s" % (name, kind), w)
            check(label in (w["detail"] or ""), "%s: detail names %s" % (name, label), w)
            if kind in ("mutex", "rwlock"):
                check(w["owner_tid"] is None, "%s: an owner made up" % name, w)
                check("no owner recorded" in w["detail"], "%s: says no owner" % name, w)
        abba = sorted([tids["abba-1"], tids["abba-2"]])
        cycles = [x for x in d["deadlocks"] if sorted(x["tids"]) == abba]
        check(len(cycles) == 1, "the abba deadlock", d["deadlocks"])
        check("no owner recorded" in cycles[0]["description"], "inferred, and said so",
              cycles[0])
        for name in ("mutex-wait", "mutex-wait2"):
            check(not any(tids[name] in x["tids"] for x in d["deadlocks"]),
                  "%s: two waits on a sleeping holder are no deadlock" % name, d["deadlocks"])
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check(re.search(r"^DEADLOCK: .*abba-[12].*no owner recorded", text, re.M),
              "DEADLOCK line", text[-1500:])

if __name__ == "__main__":
    cplib.main(globals())
