#!/usr/bin/env python3
"""cprof dump --format json on the waits fixture: every thread's wait kind, syscall, fd,
object, timeout and lock owner, its blocking frame at the marker line, and a target that
is neither stopped nor traced afterwards."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

FIXTURE = "tests/targets/waits.c"
SEC = 1000000000
WAIT_FIELDS = {"kind", "detail", "syscall", "address", "owner_tid", "fd", "object", "timeout"}

# thread name -> (kind, syscall or None, fixture function, marker or None)
EXPECTED = {
    "waits": ("signal", "pause", "block_main", "BLOCK:main"),
    "w-running": ("running", None, "block_running", None),
    "w-mutex": ("mutex", "futex", "block_mutex", "BLOCK:mutex"),
    "w-rwlock": ("rwlock", "futex", "block_rwlock", "BLOCK:rwlock"),
    "w-condvar": ("condvar", "futex", "block_condvar", "BLOCK:condvar"),
    "w-futex": ("futex", "futex", "block_futex", "BLOCK:futex"),
    "w-nanosleep": ("sleep", "clock_nanosleep", "block_nanosleep", "BLOCK:nanosleep"),
    "w-clocksleep": ("sleep", "clock_nanosleep", "block_clock_nanosleep",
                     "BLOCK:clock_nanosleep"),
    "w-poll": ("poll", "poll", "block_poll", "BLOCK:poll"),
    "w-epoll": ("poll", "epoll_wait", "block_epoll", "BLOCK:epoll"),
    "w-select": ("poll", "pselect6", "block_select", "BLOCK:select"),
    "w-read": ("io-read", "read", "block_read", "BLOCK:read"),
    "w-recv": ("io-read", "recvfrom", "block_recv", "BLOCK:recv"),
    "w-tcp-read": ("io-read", "read", "block_tcp_read", "BLOCK:tcp-read"),
    "w-write": ("io-write", "write", "block_write", "BLOCK:write"),
    "w-accept": ("accept", "accept", "block_accept", "BLOCK:accept"),
    "w-connect": ("connect", "connect", "block_connect", "BLOCK:connect"),
    "w-waitpid": ("wait-child", "wait4", "block_waitpid", "BLOCK:waitpid"),
    "w-sigwait": ("signal", "rt_sigtimedwait", "block_sigwaitinfo", "BLOCK:sigwaitinfo"),
    "w-sigtimedwait": ("signal", "rt_sigtimedwait", "block_sigtimedwait",
                       "BLOCK:sigtimedwait"),
    # A vfork parent sleeps uninterruptibly. Such a thread cannot be stopped, so only RSP and
    # RIP are known and the unwind may end in __vfork (which keeps its return address in RDI):
    # the frame is not checked.
    "w-vfork": ("disk", "vfork", None, None),
}


def start():
    t = cplib.Target("waits")
    keys = {}
    for line in t.lines:
        k, sep, v = line.partition("=")
        if sep:
            keys[k] = v
    return t, keys


def waits_of(dump):
    return {t["name"]: t for t in dump["threads"]}


def check_thread(t, name):
    kind, syscall, function, marker = EXPECTED[name]
    w = t["wait"]
    check(set(w) >= WAIT_FIELDS, "%s: wait lacks fields %s" % (name, WAIT_FIELDS - set(w)))
    check(w["kind"] == kind, "%s: kind %r, expected %r" % (name, w["kind"], kind), w)
    if syscall:
        check(w["syscall"] == syscall,
              "%s: syscall %r, expected %r" % (name, w["syscall"], syscall), w)
    check(isinstance(w["detail"], str) and w["detail"], "%s: no detail" % name, w)
    if function is None:
        return
    frames = [f for f in t["frames"] if f["function"] == function]
    check(frames, "%s: %s not in the stack" % (name, function),
          [f["function"] for f in t["frames"]])
    f = frames[0]
    check(f["file"] and f["file"].endswith("waits.c"),
          "%s: %s file %r" % (name, function, f["file"]))
    if marker:
        want = cplib.line_of(FIXTURE, marker)
        check(f["line"] == want, "%s: %s at line %r, expected %d (%s)" %
              (name, function, f["line"], want, marker))


def test_every_wait_kind():
    target, keys = start()
    pid = target.pid
    dump = cplib.dump_json(pid)
    cplib.assert_target_unharmed(pid)
    threads = waits_of(dump)
    check(set(threads) == set(EXPECTED),
          "threads %s, expected %s" % (sorted(threads), sorted(EXPECTED)))
    for name in EXPECTED:
        check_thread(threads[name], name)
    w = {name: t["wait"] for name, t in threads.items()}

    # Locks: the main thread holds the mutex and the rwlock's write side.
    mutex = int(keys["mutex"], 16)
    check(int(w["w-mutex"]["address"], 16) == mutex, "mutex address", w["w-mutex"], hex(mutex))
    check(w["w-mutex"]["owner_tid"] == pid,
          "mutex owner %r, expected %d" % (w["w-mutex"]["owner_tid"], pid))
    check(w["w-mutex"]["detail"] == "%s held by thread %d" % (w["w-mutex"]["address"], pid),
          "mutex detail", w["w-mutex"]["detail"])
    check(w["w-rwlock"]["owner_tid"] == pid, "rwlock writer %r, expected %d" %
          (w["w-rwlock"]["owner_tid"], pid), w["w-rwlock"])
    check(int(w["w-rwlock"]["address"], 16) == int(keys["rwlock"], 16),
          "rwlock address is the object's", w["w-rwlock"], keys["rwlock"])
    check(w["w-condvar"]["address"] is not None and w["w-condvar"]["timeout"] is None,
          "condvar", w["w-condvar"])
    check(int(w["w-futex"]["address"], 16) == int(keys["sem"], 16), "sem address", w["w-futex"])
    check("sem_wait" in w["w-futex"]["detail"], "futex detail names sem_wait", w["w-futex"])

    # Timeouts, in nanoseconds; null when unbounded.
    check(w["w-poll"]["timeout"] == 600 * SEC, "poll timeout", w["w-poll"])
    check(w["w-epoll"]["timeout"] is None, "epoll timeout", w["w-epoll"])
    check(w["w-epoll"]["fd"] == int(keys["epoll"]), "epoll fd", w["w-epoll"])
    check(w["w-epoll"]["object"] == "anon_inode:[eventpoll]", "epoll object", w["w-epoll"])
    # select's timeout is rewritten by the kernel when the call restarts: what is left.
    check(0 < w["w-select"]["timeout"] <= 450 * SEC, "select timeout", w["w-select"])
    check(w["w-nanosleep"]["timeout"] == 500 * SEC, "nanosleep timeout", w["w-nanosleep"])
    check(0 < w["w-clocksleep"]["timeout"] <= 600 * SEC, "clock_nanosleep remaining",
          w["w-clocksleep"])
    check("remaining" in w["w-clocksleep"]["detail"], "absolute sleep says remaining",
          w["w-clocksleep"])
    check(w["w-sigtimedwait"]["timeout"] == 800 * SEC, "sigtimedwait timeout", w["w-sigtimedwait"])
    check(w["w-sigwait"]["timeout"] is None and "SIGUSR1" in w["w-sigwait"]["detail"],
          "sigwaitinfo", w["w-sigwait"])
    check("vfork" in w["w-vfork"]["detail"] and "uninterruptible" in w["w-vfork"]["detail"],
          "vfork detail", w["w-vfork"])
    for name in ("w-mutex", "w-futex", "w-waitpid", "waits"):
        check(w[name]["timeout"] is None, "%s timeout" % name, w[name])

    # fd waits: fd, object, readable detail, socket timeouts.
    def fd_wait(name, fd, prefix):
        x = w[name]
        check(x["fd"] == fd, "%s fd %r, expected %d" % (name, x["fd"], fd), x)
        check(x["object"] and x["object"].startswith(prefix),
              "%s object %r" % (name, x["object"]), x)
        return x

    x = fd_wait("w-read", int(keys["idle_pipe_read"]), "pipe:[")
    check(x["timeout"] is None and "no timeout" in x["detail"], "pipe read timeout", x)
    check(x["detail"].startswith("read fd %d pipe:[" % x["fd"]), "pipe read detail", x)
    x = fd_wait("w-write", int(keys["full_pipe_write"]), "pipe:[")
    check(x["timeout"] is None, "pipe write timeout", x)
    x = fd_wait("w-recv", int(keys["pair_read"]), "socket:[")
    check(x["timeout"] == 700 * SEC, "SO_RCVTIMEO of the socketpair", x)
    x = fd_wait("w-tcp-read", int(keys["tcp_read"]), "socket:[")
    check(x["timeout"] is None and "no timeout" in x["detail"], "tcp read timeout", x)
    check("TCP" in x["detail"] and "ESTABLISHED" in x["detail"], "tcp read detail", x)
    x = fd_wait("w-accept", int(keys["listen"]), "socket:[")
    check(x["object"].startswith("socket:["), "accept object", x)
    x = w["w-connect"]
    check(isinstance(x["fd"], int) and x["fd"] >= 0 and x["object"].startswith("socket:["),
          "connect fd/object", x)
    # In SYN_SENT there is no peer to ask for: the address being connected to is named.
    check("-> %s SYN_SENT" % keys["connect_to"] in x["detail"], "connect's destination", x)
    check("child %s" % keys["child"] in w["w-waitpid"]["detail"], "waitpid names the child",
          w["w-waitpid"])

    # The summary counts agree with the threads.
    by = dump["summary"]["by_wait"]
    check(by.get("poll") == 3 and by.get("io-read") == 3 and by.get("signal") == 3,
          "summary by_wait", by)
    cplib.assert_target_unharmed(pid)
    check(target.alive(), "fixture died")


def test_second_dump_after_restart():
    """The first dump's stop makes sleeps and polls continue in restart_syscall; a second
    dump must still see them for what they are."""
    target, _ = start()
    cplib.dump_json(target.pid)
    dump = cplib.dump_json(target.pid)
    cplib.assert_target_unharmed(target.pid)
    threads = waits_of(dump)
    for name in ("w-nanosleep", "w-clocksleep", "w-poll", "w-epoll", "w-select", "w-mutex",
                 "w-condvar", "w-futex", "w-read", "w-sigtimedwait", "w-waitpid"):
        check(name in threads, "%s missing in the second dump" % name)
        check_thread(threads[name], name)
    check(threads["w-nanosleep"]["wait"]["timeout"] == 500 * SEC, "restarted nanosleep timeout",
          threads["w-nanosleep"]["wait"])


def test_stopped_process():
    """A process stopped by SIGSTOP (read before cprof touches it) is 'stopped' throughout."""
    target, _ = start()
    os.kill(target.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while (time.monotonic() < deadline and
               set(cplib.thread_states(target.pid).values()) != {"T", "D"}):
            time.sleep(0.05)
        dump = cplib.dump_json(target.pid)
    finally:
        os.kill(target.pid, signal.SIGCONT)
    kinds = {t["name"]: t["wait"]["kind"] for t in dump["threads"]}
    # The vfork parent's killable sleep does not enter the group stop.
    check(kinds.pop("w-vfork", None) == "disk", "vfork parent while stopped", kinds)
    check(set(kinds.values()) == {"stopped"}, "kinds of a stopped process", kinds)
    time.sleep(0.2)
    cplib.assert_target_unharmed(target.pid)
    # Woken again, the threads go back to their waits.
    dump = cplib.dump_json(target.pid)
    check(waits_of(dump)["w-poll"]["wait"]["kind"] == "poll", "poll after SIGCONT",
          waits_of(dump)["w-poll"]["wait"])


def test_text_dump():
    target, _ = start()
    p = cplib.run(["dump", "-p", target.pid], check_rc=0)
    cplib.assert_target_unharmed(target.pid)
    for name, (kind, _, _, _) in EXPECTED.items():
        check('"%s" [%s' % (name, kind) in p.stdout, "text dump: %s as %s" % (name, kind),
              p.stdout[:3000])


if __name__ == "__main__":
    cplib.main(globals())
