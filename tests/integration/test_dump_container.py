#!/usr/bin/env python3
"""cprof dump of a process in PID and mount namespaces of its own (a container): lock owners,
which glibc stores as the target's namespace numbers them, are mapped to host thread ids (the
DEADLOCK line names live threads, the namespace's numbers are shown beside them), and a binary
that exists only inside the mount namespace is still symbolized."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

UNSHARE = shutil.which("unshare")


class Contained(cplib.Target):
    """A fixture run by `unshare --fork --pid --mount-proc [...]`; pid is the fixture's host pid
    (unshare's child, pid 1 in the new namespace)."""

    def __init__(self, cmd, mount=False):
        args = ["--fork", "--kill-child", "--pid", "--mount-proc"] + (["--mount"] if mount else [])
        super().__init__("unshare", *(args + cmd), path=UNSHARE)
        self.unshare_pid = self.pid
        kids = []
        for tid in os.listdir("/proc/%d/task" % self.unshare_pid):
            with open("/proc/%d/task/%s/children" % (self.unshare_pid, tid)) as f:
                kids += [int(x) for x in f.read().split()]
        check(len(kids) == 1, "unshare %d has one child" % self.unshare_pid, kids)
        self.pid = kids[0]

    def host_tids(self):
        """{namespace tid: host tid} from NSpid of every thread, as the kernel tells it."""
        out = {}
        for tid in os.listdir("/proc/%d/task" % self.pid):
            ids = cplib.proc_status(self.pid, int(tid))["NSpid"].split()
            out[int(ids[-1])] = int(ids[0])
        return out

    def kill(self):
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def usable():
    if not UNSHARE:
        cplib.skip("no unshare(1)")
    p = subprocess.run([UNSHARE, "--fork", "--pid", "--mount-proc", "true"], capture_output=True)
    if p.returncode != 0:
        cplib.skip("cannot create PID namespaces here: " + p.stderr.decode(errors="replace"))


def check_abba(d, text, t, ns_of):
    """The abba deadlock, told in host tids; ns_of: {name: namespace tid} from the fixture."""
    host = t.host_tids()
    check(all(n != h for n, h in host.items()), "namespace numbers differ from the host's", host)
    h1, h2 = host[ns_of["abba-1"]], host[ns_of["abba-2"]]
    for th in d["threads"]:
        check(th["tid"] in host.values(), "thread %d is a live thread" % th["tid"], host)
        check(host.get(th["ns_tid"]) == th["tid"], "ns_tid of %d is its NSpid" % th["tid"], th,
              host)
    for waiter, owner in (("abba-1", h2), ("abba-2", h1)):
        w = cplib.thread_by_name(d, waiter)["wait"]
        check(w["kind"] == "mutex" and w["owner_tid"] == owner,
              "%s waits for a mutex held by host thread %d" % (waiter, owner), w)
        check("has exited" not in w["detail"], "the owner is alive", w)
    check(len(d["deadlocks"]) == 1 and d["deadlocks"][0]["tids"] == sorted([h1, h2]),
          "one deadlock between host threads %d and %d" % (h1, h2), d["deadlocks"])

    check("DEADLOCK:" in text and "has exited" not in text, "a DEADLOCK line, no exited owner",
          text[-1500:])
    joined = " ".join(text.split())
    check('DEADLOCK: thread %d "abba-1" waits for mutex' % h1 in joined, "DEADLOCK in host tids",
          text[-1500:])
    for name, other in (("abba-1", "abba-2"), ("abba-2", "abba-1")):
        line = 'thread %d (%d in its namespace) "%s" [mutex: ' % (host[ns_of[name]], ns_of[name],
                                                                   name)
        held = 'held by thread %d (%d in its namespace) "%s"]' % (host[ns_of[other]],
                                                                  ns_of[other], other)
        check(any(x.startswith(line) and held in x for x in text.splitlines()),
              "thread line of %s with both numbers" % name, line + "... " + held, text[:2000])
    check("in its own PID namespace as process 1" in text, "header names its own pid",
          text[:500])


def test_deadlock_in_pid_namespace():
    usable()
    with Contained([cplib.TARGETS / "locks", "abba"]) as t:
        ns_of = t.tagged("TID")
        d = cplib.dump_json(t.pid)
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check_abba(d, text, t, ns_of)
        cplib.assert_target_unharmed(t.pid)


def test_leaked_owner_in_pid_namespace():
    """An owner that exited has no host number: the namespace's is shown, never a host tid."""
    usable()
    with Contained([cplib.TARGETS / "locks", "leaked"]) as t:
        ns_owner = t.tagged("TID")["leak-owner"]
        d = cplib.dump_json(t.pid)
        w = cplib.thread_by_name(d, "leak-wait")["wait"]
        check(w["kind"] == "mutex" and w["owner_tid"] is None, "no host tid for the owner", w)
        check("held by thread %d in its namespace, not a thread of this process" % ns_owner
              in w["detail"], "the namespace's number of the owner", w)


def test_binary_only_in_mount_namespace():
    usable()
    fixture = cplib.TARGETS / "locks"
    with tempfile.TemporaryDirectory() as where, tempfile.TemporaryDirectory() as cache:
        exe = os.path.join(where, "locks")
        script = "mount -t tmpfs none %s && cp %s %s && exec %s abba" % (where, fixture, exe, exe)
        with Contained(["sh", "-c", script], mount=True) as t:
            ns_of = t.tagged("TID")
            check(os.listdir(where) == [], "the host does not see the binary", os.listdir(where))
            # A fresh cache: the symbols must come from the file inside the namespace.
            env = dict(os.environ, CPROF_CACHE_DIR=cache)
            p = cplib.run(["dump", "-p", t.pid, "--format", "json"], check_rc=0, env=env)
            d = __import__("json").loads(p.stdout)
            check(d["exe"] == exe, "exe is the path inside the namespace", d["exe"])
            frames = cplib.thread_by_name(d, "abba-1")["frames"]
            mine = [f for f in frames if f["module"] == exe]
            check(mine, "frames in the namespace's binary", frames)
            line = cplib.line_of("tests/targets/locks.c", "BLOCK:mutex")
            check(any(f["function"] == "block_on" and f["file"].endswith("tests/targets/locks.c")
                      and f["line"] == line for f in mine),
                  "block_on at locks.c:%d, from the binary's DWARF" % line, mine)
            check(any(f["function"] == "main" for f in
                      cplib.thread_by_name(d, "locks")["frames"]), "main named")
            text = cplib.run(["dump", "-p", t.pid], check_rc=0, env=env).stdout
            check_abba(d, text, t, ns_of)


if __name__ == "__main__":
    cplib.main(globals())
