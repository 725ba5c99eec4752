/* cprof attach for profiles that are snapshots: a Go program's runtime records, threads by stack. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attach_go.h"
#include "common.h"
#include "go_profile.h"
#include "proc.h"
#include "profiles.h"
#include "symbolize.h"
#include "util.h"

static bool snapshot_type(enum cp_session_type t, enum cp_go_profile_type *gt)
{
	switch (t) {
	case CP_SESSION_GOROUTINE:
		*gt = CP_GO_PROFILE_GOROUTINE;
		return true;
	case CP_SESSION_HEAP:
		*gt = CP_GO_PROFILE_HEAP;
		return true;
	case CP_SESSION_ALLOCS:
		*gt = CP_GO_PROFILE_ALLOCS;
		return true;
	case CP_SESSION_BLOCK:
		*gt = CP_GO_PROFILE_BLOCK;
		return true;
	case CP_SESSION_MUTEX:
		*gt = CP_GO_PROFILE_MUTEX;
		return true;
	default:
		return false;
	}
}

static const char *type_name(enum cp_go_profile_type t)
{
	static const char *const names[] = { "goroutine", "heap", "allocs", "block", "mutex" };

	return names[t];
}

static bool gone(int pid)
{
	return cp_proc_gone(pid, 0);
}

/* Wait o->seconds unless stopped or the target exits: 0, or -ESRCH when it exited. */
static int wait_window(const struct cp_prof_options *o, int pid,
		       const volatile sig_atomic_t *stops)
{
	uint64_t deadline = cp_now_ns() + (uint64_t)(o->seconds * 1e9), now;
	bool tty = cp_stderr_is_tty();
	int err = 0;

	while (!*stops && (now = cp_now_ns()) < deadline) {
		struct timespec ts = { 0, 250000000 };

		if (gone(pid)) {
			err = -ESRCH;
			break;
		}
		if (tty)
			fprintf(stderr, "\r\033[Kcprof: pid %d: %ld s left", pid,
				(long)((deadline - now) / 1000000000ull + 1));
		nanosleep(&ts, NULL);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	return err;
}

static int write_it(const char *what, struct cp_profile *prof, const struct cp_prof_options *o,
		    int pid, const volatile sig_atomic_t *stops, const char *summary)
{
	char *path = NULL;

	if (cp_prof_write_file("attach", prof, o, pid, stops, &path) < 0)
		return CP_EXIT_FAILURE;
	cp_note("%s: %s; wrote %s", what, summary, path);
	free(path);
	return CP_EXIT_OK;
}

/* A native program's goroutine profile: its threads by stack, as serve's goroutine?debug=0. */
static int native_goroutines(const char *what, const struct cp_prof_options *o, int pid,
			     const volatile sig_atomic_t *stops)
{
	struct cp_symbolizer *sym = cp_sym_new();
	struct cp_profile *prof = NULL;
	char summary[128];
	int err, rc;

	if (!sym) {
		cp_error(what, "out of memory");
		return CP_EXIT_FAILURE;
	}
	err = cp_serve_thread_profile(pid, sym, &prof);
	if (err < 0) {
		cp_error(what, "cannot dump its threads: %s", strerror(-err));
		cp_sym_free(sym);
		return CP_EXIT_FAILURE;
	}
	snprintf(summary, sizeof(summary), "not a Go program: its %llu threads by stack",
		 (unsigned long long)cp_profile_sample_total(prof));
	rc = write_it(what, prof, o, pid, stops, summary);
	cp_profile_free(prof);
	cp_sym_free(sym);
	return rc;
}

/* The profile of a Go program, from its runtime. An exit code. */
static int go_profile(const char *what, struct cp_go_profiler *gp, enum cp_go_profile_type gt,
		      const struct cp_prof_options *o, int pid, const volatile sig_atomic_t *stops)
{
	struct cp_profile *prof = NULL;
	char why[512], summary[256];
	bool window = gt != CP_GO_PROFILE_GOROUTINE && o->seconds > 0;
	int err, rc;

	if (window) {
		err = cp_go_profiler_begin(gp, gt, why, sizeof(why));
		if (err == 0)
			err = wait_window(o, pid, stops);
		if (err == -ESRCH) {
			cp_error(what, "exited during the profile; nothing written");
			return CP_EXIT_FAILURE;
		}
	} else {
		err = 0;
	}
	if (err == 0)
		err = cp_go_profiler_take(gp, gt, &prof, why, sizeof(why));
	if (err < 0) {
		cp_error(what, "%s", why[0] ? why : strerror(-err));
		if (err == -ENOTSUP && gt >= CP_GO_PROFILE_BLOCK)
			cp_hint("or profile its threads from the outside: 'cprof attach -p %d "
				"--profile %s --native'",
				pid, type_name(gt));
		return CP_EXIT_FAILURE;
	}
	if (err == 1)
		cp_note("note: %s", why);
	if (o->rate && (gt == CP_GO_PROFILE_HEAP || gt == CP_GO_PROFILE_ALLOCS))
		cp_note("note: --rate is not used: a Go program samples at its own "
			"runtime.MemProfileRate");
	if (gt == CP_GO_PROFILE_GOROUTINE) {
		size_t all, user;

		cp_go_profiler_goroutine_counts(gp, &all, &user);
		snprintf(summary, sizeof(summary),
			 "%zu goroutines (%zu more of the runtime's own not counted, as Go does) "
			 "from the runtime of %s",
			 user, all - user, cp_go_profiler_version(gp));
	} else {
		snprintf(summary, sizeof(summary), "%s profile from the runtime's records of %s "
			 "(%s)",
			 type_name(gt), cp_go_profiler_version(gp),
			 window ? "the difference over the window" :
			 gt <= CP_GO_PROFILE_ALLOCS ? "as of its last GC" : "since it enabled them");
	}
	rc = write_it(what, prof, o, pid, stops, summary);
	cp_profile_free(prof);
	return rc;
}

int cp_attach_snapshot(const struct cp_prof_options *o, const int *pids, size_t npids,
		       const volatile sig_atomic_t *stops)
{
	enum cp_go_profile_type gt;
	struct cp_go_profiler *gp = NULL;
	char what[64], why[512];
	int err, rc;

	if (!snapshot_type(o->type, &gt) || o->native)
		return -1;
	if (npids != 1) {
		if (gt != CP_GO_PROFILE_GOROUTINE)
			return -1;
		cp_error("attach", "--profile %s takes one -p PID", type_name(gt));
		return CP_EXIT_USAGE;
	}
	snprintf(what, sizeof(what), "pid %d", pids[0]);
	err = cp_go_profiler_open(pids[0], NULL, &gp, why, sizeof(why));
	if (err == -ENOENT) {
		if (gt == CP_GO_PROFILE_GOROUTINE)
			return native_goroutines(what, o, pids[0], stops);
		/* heap, allocs: the allocation sampler; block, mutex: perf events. */
		return -1;
	}
	if (err < 0) {
		cp_error(what, "cannot read its Go runtime: %s", why[0] ? why : strerror(-err));
		if (gt >= CP_GO_PROFILE_BLOCK)
			cp_hint("profile its threads from the outside with --native");
		return CP_EXIT_FAILURE;
	}
	rc = go_profile(what, gp, gt, o, pids[0], stops);
	cp_go_profiler_free(gp);
	return rc;
}
