#!/usr/bin/env python3
"""A target that swaps its mapped library's path with a symbolic link to a root-only file
(renameat2 RENAME_EXCHANGE in a loop) never makes root cprof read that file: the root-only
copy names the same address CANARY_SYMBOL, which no dump may print."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-secrace-"))

LIB = r"""
#include <unistd.h>
__attribute__((noinline)) void FN(void)
{
	for (;;)
		pause();
}
"""

MAIN = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static const char *a, *b;
static void *swapper(void *arg)
{
	for (;;)
		renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
	return NULL;
}
int main(int argc, char **argv)
{
	pthread_t t;
	void *h = dlopen(argv[1], RTLD_NOW);
	void (*fn)(void) = h ? (void (*)(void))dlsym(h, "lib_wait") : NULL;

	if (!fn)
		return 1;
	a = argv[1];
	b = argv[2];
	pthread_create(&t, NULL, swapper, NULL);
	printf("READY\n");
	fflush(stdout);
	fn();
	return 0;
}
"""


def build():
    (WORK / "lib.c").write_text(LIB)
    (WORK / "main.c").write_text(MAIN)
    secret = WORK / "secret"
    secret.mkdir(mode=0o700)
    play = WORK / "play"
    play.mkdir()
    for out, fn in ((play / "lib.so", "lib_wait"), (secret / "secret.so", "CANARY_SYMBOL")):
        subprocess.run(["cc", "-O1", "-g", "-shared", "-fPIC", "-DFN=" + fn, "-o", str(out),
                        str(WORK / "lib.c")], check=True)
    subprocess.run(["cc", "-O1", "-o", str(WORK / "main"), str(WORK / "main.c"), "-ldl",
                    "-lpthread"], check=True)
    os.symlink(secret / "secret.so", play / "other")
    os.chmod(WORK, 0o755)
    os.chown(play, 65534, 65534)
    os.lchown(play / "other", 65534, 65534)
    os.chown(play / "lib.so", 65534, 65534)
    return play


def test_swapped_library_path():
    if not shutil.which("setpriv") or not shutil.which("cc"):
        cplib.skip("needs setpriv and cc")
    play = build()
    env = dict(os.environ, CPROF_CACHE_DIR="")
    seen = 0
    with cplib.Target("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                      WORK / "main", play / "lib.so", play / "other",
                      path=shutil.which("setpriv")) as t:
        for _ in range(40):
            p = cplib.run(["dump", "-p", t.pid], env=env, check_rc=0)
            check("CANARY_SYMBOL" not in p.stdout, "a root-only file was read", p.stdout)
            seen += "lib_wait" in p.stdout
        check(seen > 0, "the library was never named", p.stdout)
        print("lib_wait named in %d of 40 dumps" % seen)
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
