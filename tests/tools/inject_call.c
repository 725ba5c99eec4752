/* Test tool: load a library into a live process with cp_inject_* and call one of its functions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inject.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int usage(void)
{
	fprintf(stderr, "usage: inject-call [--tid TID] [--timeout MS] [--repeat N] PID [LIBRARY "
		"[SYMBOL [ARG...]]]\n"
		"  Without LIBRARY: only check that PID can be called into.\n"
		"  Prints base, tid, ret, park_ms and call_ms lines; 'refused: WHY' (exit 2) or\n"
		"  'error: WHY' (exit 1).\n");
	return 1;
}

int main(int argc, char **argv)
{
	struct cp_inject_opts opts = { 0 };
	struct cp_inject *in;
	uint64_t args[6] = { 0 }, base = 0, fn = 0, ret = 0, t0;
	char why[512] = "";
	long repeat = 1;
	int i = 1, pid, err;
	size_t nargs = 0;

	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--tid") == 0)
			opts.tid = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--timeout") == 0)
			opts.timeout_ms = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--repeat") == 0)
			repeat = atol(argv[i + 1]);
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	pid = atoi(argv[i++]);
	err = cp_inject_open(pid, &opts, &in, why, sizeof(why));
	if (err < 0) {
		printf("refused: %s\n", why);
		return 2;
	}
	if (i >= argc) {
		printf("ok\n");
		cp_inject_close(in);
		return 0;
	}
	t0 = now_ns();
	err = cp_inject_load(in, argv[i], &base, why, sizeof(why));
	if (err < 0)
		goto fail;
	printf("base 0x%" PRIx64 "\nload_ms %.3f\n", base, (now_ns() - t0) / 1e6);
	if (++i < argc) {
		err = cp_inject_symbol(in, base, argv[i], &fn);
		if (err < 0) {
			snprintf(why, sizeof(why), "no symbol %s", argv[i]);
			goto fail;
		}
		for (i++; i < argc && nargs < 6; i++)
			args[nargs++] = strtoull(argv[i], NULL, 0);
		for (long r = 0; r < repeat; r++) {
			t0 = now_ns();
			err = cp_inject_call(in, fn, args, nargs, &ret, why, sizeof(why));
			if (err < 0)
				goto fail;
			printf("call_ms %.3f park_ms %.3f\n", (now_ns() - t0) / 1e6,
			       cp_inject_last_park_ns(in) / 1e6);
		}
		printf("ret %" PRId64 "\n", (int64_t)ret);
	}
	printf("tid %d\n", cp_inject_last_tid(in));
	cp_inject_close(in);
	return 0;
fail:
	printf("error: %s (%s)\n", why, strerror(-err));
	cp_inject_close(in);
	return 1;
}
