#!/usr/bin/env python3
"""A stack cut short always says so: a thread whose sp points at unmapped memory, or at
readable memory full of zeros, ends in [unknown] (text and JSON), and a stack deeper than the
frame cap ends in a `#N [truncated]` line in the text dump as in JSON."""
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

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-secstk-"))

BADSP = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static char zeros[1 << 16] __attribute__((aligned(64)));
static void *bad_sp(void *arg)
{
	__asm__ volatile("mov $0x1000, %%rsp\n\tmov $34, %%eax\n\tsyscall\n1:\tjmp 1b" ::: "memory");
	return NULL;
}
/* sp in the middle of zeroed memory: every word a "return address" of 0. */
static void *zero_sp(void *arg)
{
	__asm__ volatile("mov %0, %%rsp\n\tmov $34, %%eax\n\tsyscall\n1:\tjmp 1b"
			 :: "r"(zeros + sizeof(zeros) / 2) : "memory");
	return NULL;
}
int main(void)
{
	pthread_t t;

	pthread_create(&t, NULL, bad_sp, NULL);
	pthread_setname_np(t, "nosp");
	pthread_create(&t, NULL, zero_sp, NULL);
	pthread_setname_np(t, "zerosp");
	usleep(100000);
	printf("READY\n");
	fflush(stdout);
	pause();
	return 0;
}
"""


def thread_text(text, name):
    """The lines of the text dump's thread named name."""
    m = re.search(r'^thread \d+ "%s".*?(?=^thread |\Z)' % name, text, re.S | re.M)
    check(m, "no thread %s" % name, text[:2000])
    return m.group(0).rstrip("\n").splitlines()


def test_sp_nowhere():
    if not shutil.which("cc") or os.uname().machine != "x86_64":
        cplib.skip("needs cc on x86_64")
    (WORK / "badsp.c").write_text(BADSP)
    subprocess.run(["cc", "-O1", "-g", "-o", str(WORK / "badsp"), str(WORK / "badsp.c"),
                    "-lpthread"], check=True)
    with cplib.Target("badsp", path=WORK / "badsp") as t:
        p = cplib.run(["dump", "-p", t.pid], check_rc=0)
        lines = thread_text(p.stdout, "nosp")
        frames = [ln for ln in lines if ln.startswith("  #")]
        check(frames and frames[-1].split()[1] == "[unknown]", "no [unknown] end", lines)
        d = cplib.dump_json(t.pid)
        th = [x for x in d["threads"] if x["name"] == "nosp"][0]
        check(th["frames"] and th["frames"][-1]["function"] == "[unknown]",
              "JSON: no [unknown] end", th["frames"])
        # A 0 read as a return address is no end of stack: the walk stopped unexplained.
        lines = thread_text(p.stdout, "zerosp")
        frames = [ln for ln in lines if ln.startswith("  #")]
        check(frames and frames[-1].split()[1] == "[unknown]", "zeroed sp: no [unknown] end",
              lines)
        th = [x for x in d["threads"] if x["name"] == "zerosp"][0]
        check(th["frames"] and th["frames"][-1]["function"] == "[unknown]",
              "JSON, zeroed sp: no [unknown] end", th["frames"])
        cplib.assert_target_unharmed(t.pid)


def test_truncated_in_text():
    with cplib.Target("deep_stack") as t:
        rec = int(re.search(r"recurse=(\d+)", "\n".join(t.lines)).group(1))
        p = cplib.run(["dump", "-p", t.pid], check_rc=0)
        m = re.search(r"^thread %d .*?(?=^thread |\Z)" % rec, p.stdout, re.S | re.M)
        check(m, "no recursing thread", p.stdout[:1000])
        frames = [ln for ln in m.group(0).splitlines() if ln.startswith("  #")]
        check(frames[-1].split()[1] == "[truncated]", "text: no [truncated] end", frames[-3:])


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
