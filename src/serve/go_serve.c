/* serve for Go targets: their profiles and goroutine metrics read from the Go runtime. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "go_serve.h"
#include "proc.h"
#include "profiles.h"

/* Look at the client and the target this often (ms) during a window. */
#define CHECK_MS 200

bool cp_serve_is_go(struct cp_serve *srv, struct cp_serve_target *t)
{
	struct cp_go_profiler *gp = NULL;
	char why[256];
	int known = __atomic_load_n(&t->go, __ATOMIC_ACQUIRE), err;

	if (known)
		return known > 0;
	(void)srv;
	err = cp_go_profiler_open(t->pid, NULL, &gp, why, sizeof(why));
	cp_go_profiler_free(gp);
	if (err == 0 || err == -ENOENT || err == -ENOTSUP)
		__atomic_store_n(&t->go, err == 0 ? 1 : -1, __ATOMIC_RELEASE);
	return err == 0;
}

static bool exited(const struct cp_serve_target *t)
{
	return cp_proc_gone(t->pid, t->starttime);
}

/* Wait seconds unless the client leaves (-ECANCELED) or the target exits (-ESRCH). */
static int wait_window(struct cp_serve_request *rq, const struct cp_serve_target *t,
		       int seconds)
{
	uint64_t deadline = cp_now_ns() + (uint64_t)seconds * 1000000000ull;

	while (cp_now_ns() < deadline) {
		struct timespec ts = { 0, CHECK_MS * 1000000L };

		/* serve is stopping: the window ends here and its profile is sent. */
		if (__atomic_load_n(&rq->srv->stopping, __ATOMIC_ACQUIRE))
			return 0;
		if (rq->gone(rq->ctx))
			return -ECANCELED;
		if (exited(t))
			return -ESRCH;
		nanosleep(&ts, NULL);
	}
	return 0;
}

int cp_serve_go_profile(struct cp_serve_request *rq, struct cp_serve_target *t,
			enum cp_go_profile_type type, int seconds, char **body, size_t *len,
			char *why, size_t whylen)
{
	struct cp_serve *srv = rq->srv;
	struct cp_go_profiler *gp = NULL;
	struct cp_profile *prof = NULL;
	int err;

	err = cp_go_profiler_open(t->pid, srv->sym, &gp, why, whylen);
	if (err < 0)
		return err;
	if (seconds > 0 && type != CP_GO_PROFILE_GOROUTINE) {
		err = cp_go_profiler_begin(gp, type, why, whylen);
		if (err == 0)
			err = wait_window(rq, t, seconds);
	}
	if (err == 0) {
		/* The shared symbolizer serves one request at a time. */
		pthread_mutex_lock(&srv->probe_lock);
		err = cp_go_profiler_take(gp, type, &prof, why, whylen);
		pthread_mutex_unlock(&srv->probe_lock);
	}
	if (err >= 0)
		err = cp_serve_profile_body(prof, CP_PROFILE_PPROF, body, len);
	cp_profile_free(prof);
	cp_go_profiler_free(gp);
	return err;
}

/* Prometheus label values escape backslash, quote and newline. */
static void label_value(struct cp_strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			cp_strbuf_addc(sb, '\\');
		if (*s == '\n')
			cp_strbuf_adds(sb, "\\n");
		else
			cp_strbuf_addc(sb, *s);
	}
}

void cp_serve_go_metrics(struct cp_serve *srv, struct cp_strbuf *sb)
{
	struct cp_go_state_count *states[CP_SERVE_MAX_TARGETS] = { 0 };
	size_t nstates[CP_SERVE_MAX_TARGETS] = { 0 }, totals[CP_SERVE_MAX_TARGETS] = { 0 };
	bool have[CP_SERVE_MAX_TARGETS] = { 0 }, any = false;
	struct cp_go_profiler *gps[CP_SERVE_MAX_TARGETS] = { 0 };

	for (size_t i = 0; i < srv->ntargets; i++) {
		struct cp_serve_target *t = &srv->targets[i];
		char why[256];

		if (exited(t) || !cp_serve_is_go(srv, t) ||
		    cp_go_profiler_open(t->pid, srv->sym, &gps[i], why, sizeof(why)) < 0)
			continue;
		have[i] = cp_go_profiler_states(gps[i], &states[i], &nstates[i], &totals[i]) == 0;
		any |= have[i];
	}
	if (any) {
		cp_strbuf_adds(sb, "# HELP go_goroutines Number of goroutines that currently exist.\n"
				   "# TYPE go_goroutines gauge\n");
		for (size_t i = 0; i < srv->ntargets; i++)
			if (have[i])
				cp_strbuf_addf(sb, "go_goroutines{pid=\"%d\"} %zu\n",
					       srv->targets[i].pid, totals[i]);
		cp_strbuf_adds(sb, "# HELP cprof_goroutines Goroutines by wait reason (their status "
				   "when not waiting), read from the Go runtime.\n"
				   "# TYPE cprof_goroutines gauge\n");
	}
	for (size_t i = 0; i < srv->ntargets; i++) {
		for (size_t k = 0; have[i] && k < nstates[i]; k++) {
			cp_strbuf_addf(sb, "cprof_goroutines{pid=\"%d\",wait_reason=\"",
				       srv->targets[i].pid);
			label_value(sb, states[i][k].state);
			cp_strbuf_addf(sb, "\"} %zu\n", states[i][k].n);
		}
		free(states[i]);
		cp_go_profiler_free(gps[i]);
	}
}
