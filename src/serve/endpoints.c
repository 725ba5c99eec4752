/*
 * The endpoint table of cprof serve: Go's net/http/pprof paths, cprof's own, /metrics. A
 * profile type that cprof cannot take yet has its row with the reason it answers 501; the
 * issue that brings the type replaces the reason with a handler.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "go_serve.h"
#include "metrics.h"
#include "proc.h"
#include "profiles.h"
#include "serve_internal.h"
#include "util.h"

struct endpoint {
	const char *path;
	/* NULL: the type is not implemented; reason says why (501). */
	void (*fn)(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		   const struct endpoint *e);
	const char *query;	/* example query for the index ("seconds=30"), or "" */
	const char *summary;	/* one line for the index */
	const char *reason;	/* for fn == NULL */
};

void cp_serve_reply_text(struct cp_serve_reply *rp, int status, const char *fmt, ...)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	cp_strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	cp_strbuf_addc(&sb, '\n');
	free(rp->body);
	rp->content_type = CP_SERVE_TEXT;
	rp->attachment = false;
	rp->len = sb.len;
	rp->body = cp_strbuf_detach(&sb);
	rp->status = rp->body && !sb.err ? status : 500;
	if (!rp->body)
		rp->len = 0;
}

void cp_serve_reply_release(struct cp_serve_reply *rp)
{
	free(rp->body);
	memset(rp, 0, sizeof(*rp));
}

static void reply_body(struct cp_serve_reply *rp, const char *type, bool attachment, char *body,
		       size_t len)
{
	rp->status = 200;
	rp->content_type = type;
	rp->attachment = attachment;
	rp->body = body;
	rp->len = len;
}

/* The target the request names (?pid=N, else the first), alive; else an error reply and NULL. */
static struct cp_serve_target *pick_target(struct cp_serve_request *rq, struct cp_serve_reply *rp)
{
	struct cp_serve *srv = rq->srv;
	const char *v = rq->param(rq->ctx, "pid");
	struct cp_serve_target *t = NULL;
	char why[160];
	int pid;

	if (srv->ntargets == 0) {
		cp_serve_reply_text(rp, 404, "no target: start cprof serve with -p PID");
		return NULL;
	}
	if (cp_serve_param_int("pid", v, srv->targets[0].pid, 1, 1 << 30, &pid, why,
			       sizeof(why)) < 0) {
		cp_serve_reply_text(rp, 400, "%s", why);
		return NULL;
	}
	for (size_t i = 0; i < srv->ntargets; i++)
		if (srv->targets[i].pid == pid)
			t = &srv->targets[i];
	if (!t) {
		cp_serve_reply_text(rp, 400, "pid %d is not one of the targets given at start", pid);
		return NULL;
	}
	if (cp_proc_gone(pid, t->starttime)) {
		cp_serve_reply_text(rp, 410, "pid %d exited", pid);
		return NULL;
	}
	return t;
}

static bool acquire(struct cp_serve_target *t, enum cp_serve_kind kind, struct cp_serve_reply *rp)
{
	if (__atomic_exchange_n(&t->busy[kind], 1, __ATOMIC_ACQ_REL) == 0)
		return true;
	static const char *const what[CP_SERVE_KIND__COUNT] = {
		[CP_SERVE_KIND_CPU] = "CPU profile", [CP_SERVE_KIND_DUMP] = "thread dump",
		[CP_SERVE_KIND_BLOCK] = "block profile", [CP_SERVE_KIND_MUTEX] = "mutex profile",
		[CP_SERVE_KIND_THREADCREATE] = "threadcreate profile",
		[CP_SERVE_KIND_HEAP] = "heap or allocs profile",
	};

	cp_serve_reply_text(rp, 429, "a %s of pid %d is already running; retry when it ends",
			    what[kind], t->pid);
	return false;
}

static void release(struct cp_serve_target *t, enum cp_serve_kind kind)
{
	__atomic_store_n(&t->busy[kind], 0, __ATOMIC_RELEASE);
}

/* A failure to take a profile or dump of t, as a reply. */
static void reply_error(struct cp_serve_reply *rp, const struct cp_serve_target *t, int err)
{
	switch (err) {
	case -ESRCH:
		cp_serve_reply_text(rp, 410, "pid %d exited", t->pid);
		break;
	case -EBUSY:
		cp_serve_reply_text(rp, 503, "pid %d is traced by another process", t->pid);
		break;
	case -EPERM:
	case -EACCES:
		cp_serve_reply_text(rp, 503, "pid %d: not permitted (%s)", t->pid, strerror(-err));
		break;
	default:
		cp_serve_reply_text(rp, 500, "pid %d: %s", t->pid, strerror(-err));
	}
}

/*
 * The profile of type from the runtime of a Go target: at once, or over ?seconds=N as Go's
 * own handlers do. False when the target is not a Go program (or, for block and mutex, does
 * not record them): the caller answers as for a native target.
 */
static bool go_profile(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		       enum cp_go_profile_type type, enum cp_serve_kind kind)
{
	struct cp_serve_target *t;
	char why[512], *body = NULL;
	size_t len = 0;
	int seconds, err;

	if (rq->srv->ntargets == 0)
		return false;
	if (cp_serve_param_seconds(rq->param(rq->ctx, "seconds"), 0, rq->srv->seconds_max,
				   &seconds, why, sizeof(why)) < 0) {
		cp_serve_reply_text(rp, 400, "%s", why);
		return true;
	}
	t = pick_target(rq, rp);
	if (!t)
		return true;
	if (!cp_serve_is_go(rq->srv, t))
		return false;
	if (!acquire(t, kind, rp))
		return true;
	err = cp_serve_go_profile(rq, t, type, seconds, &body, &len, why, sizeof(why));
	release(t, kind);
	if (err == -ENOTSUP && type >= CP_GO_PROFILE_BLOCK)
		return false;
	if (err == -ECANCELED)
		cp_serve_reply_text(rp, 503, "profile abandoned: the client left or serve is stopping");
	else if (err == -ENOTSUP || err == -ENOENT)
		cp_serve_reply_text(rp, 404, "pid %d: %s", t->pid, why);
	else if (err < 0)
		reply_error(rp, t, err);
	else
		reply_body(rp, CP_SERVE_BINARY, true, body, len);
	return true;
}

/* A profile of type (served as kind) for ?seconds=N, as pprof or an SVG flame graph. */
static void profile(struct cp_serve_request *rq, struct cp_serve_reply *rp, bool svg,
		    enum cp_session_type type, enum cp_serve_kind kind)
{
	struct cp_serve_target *t;
	struct cp_serve_cpu_req req = { .hz = rq->srv->hz, .gone = rq->gone, .ctx = rq->ctx,
					.stopping = &rq->srv->stopping,
					.type = type,
					.format = svg ? CP_PROFILE_SVG : CP_PROFILE_PPROF };
	char why[160], *body = NULL;
	size_t len = 0;
	int err;

	if (cp_serve_param_seconds(rq->param(rq->ctx, "seconds"), CP_SERVE_SECONDS_DEFAULT,
				   rq->srv->seconds_max, &req.seconds, why, sizeof(why)) < 0) {
		cp_serve_reply_text(rp, 400, "%s", why);
		return;
	}
	t = pick_target(rq, rp);
	if (!t || !acquire(t, kind, rp))
		return;
	req.pid = t->pid;
	req.starttime = t->starttime;
	err = cp_serve_cpu_profile(&req, &body, &len);
	release(t, kind);
	if (err == -ECANCELED)
		cp_serve_reply_text(rp, 503, "profile abandoned: the client left or serve is stopping");
	else if (err < 0 && err != -ESRCH && req.why[0])
		cp_serve_reply_text(rp, 503, "pid %d: %s", t->pid, req.why);
	else if (err < 0)
		reply_error(rp, t, err);
	else
		reply_body(rp, svg ? CP_SERVE_SVG : CP_SERVE_BINARY, !svg, body, len);
}

static void ep_profile(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		       const struct endpoint *e)
{
	profile(rq, rp, false, CP_SESSION_CPU, CP_SERVE_KIND_CPU);
}

static void ep_flame(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		     const struct endpoint *e)
{
	profile(rq, rp, true, CP_SESSION_CPU, CP_SERVE_KIND_CPU);
}

static void ep_block(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		     const struct endpoint *e)
{
	if (!go_profile(rq, rp, CP_GO_PROFILE_BLOCK, CP_SERVE_KIND_BLOCK))
		profile(rq, rp, false, CP_SESSION_BLOCK, CP_SERVE_KIND_BLOCK);
}

static void ep_mutex(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		     const struct endpoint *e)
{
	if (!go_profile(rq, rp, CP_GO_PROFILE_MUTEX, CP_SERVE_KIND_MUTEX))
		profile(rq, rp, false, CP_SESSION_MUTEX, CP_SERVE_KIND_MUTEX);
}


static void ep_threadcreate(struct cp_serve_request *rq, struct cp_serve_reply *rp,
			    const struct endpoint *e)
{
	profile(rq, rp, false, CP_SESSION_THREADCREATE, CP_SERVE_KIND_THREADCREATE);
}

/*
 * heap, allocs of a native target: the allocation sampler is loaded into it for ?seconds=N
 * (default 30, as profile: a native heap has no record of what was allocated before), then
 * turned off. A Go target's heap is its runtime's own record (issue 15): that branch, taken
 * at once without seconds, belongs at the top of this function.
 */
static void heap(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		 enum cp_session_type type)
{
	/* A Go program: its runtime's records, as its own handler would answer. */
	if (!go_profile(rq, rp, type == CP_SESSION_ALLOCS ? CP_GO_PROFILE_ALLOCS :
							     CP_GO_PROFILE_HEAP,
			CP_SERVE_KIND_HEAP))
		profile(rq, rp, false, type, CP_SERVE_KIND_HEAP);
}

static void ep_heap(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		    const struct endpoint *e)
{
	heap(rq, rp, CP_SESSION_HEAP);
}

static void ep_allocs(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		      const struct endpoint *e)
{
	heap(rq, rp, CP_SESSION_ALLOCS);
}

static void dump(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		 enum cp_serve_dump_form form)
{
	struct cp_serve_target *t = pick_target(rq, rp);
	char *body = NULL;
	size_t len = 0;
	int err;

	if (!t || !acquire(t, CP_SERVE_KIND_DUMP, rp))
		return;
	pthread_mutex_lock(&rq->srv->probe_lock);
	err = cp_serve_dump(t->pid, form, rq->srv->sym, &body, &len);
	pthread_mutex_unlock(&rq->srv->probe_lock);
	release(t, CP_SERVE_KIND_DUMP);
	if (err < 0)
		reply_error(rp, t, err);
	else if (form == CP_SERVE_DUMP_PPROF)
		reply_body(rp, CP_SERVE_BINARY, true, body, len);
	else
		reply_body(rp, form == CP_SERVE_DUMP_JSON ? "application/json" : CP_SERVE_TEXT,
			   false, body, len);
}

static void ep_goroutine(struct cp_serve_request *rq, struct cp_serve_reply *rp,
			 const struct endpoint *e)
{
	static const enum cp_serve_dump_form forms[] = { CP_SERVE_DUMP_PPROF, CP_SERVE_DUMP_GROUPED,
							 CP_SERVE_DUMP_TEXT };
	char why[160];
	int debug;

	if (cp_serve_param_int("debug", rq->param(rq->ctx, "debug"), 0, 0, 2, &debug, why,
			       sizeof(why)) < 0) {
		cp_serve_reply_text(rp, 400, "%s", why);
		return;
	}
	if (debug == 0 && go_profile(rq, rp, CP_GO_PROFILE_GOROUTINE, CP_SERVE_KIND_DUMP))
		return;
	dump(rq, rp, forms[debug]);
}

static void ep_dump(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		    const struct endpoint *e)
{
	const char *f = rq->param(rq->ctx, "format");

	if (f && *f && strcmp(f, "text") && strcmp(f, "json")) {
		cp_serve_reply_text(rp, 400, "bad format '%.32s': want text or json", f);
		return;
	}
	dump(rq, rp, f && !strcmp(f, "json") ? CP_SERVE_DUMP_JSON : CP_SERVE_DUMP_TEXT);
}

static void ep_cmdline(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		       const struct endpoint *e)
{
	struct cp_serve_target *t = pick_target(rq, rp);
	char path[64], *buf = NULL;
	size_t len = 0;
	int err;

	if (!t)
		return;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", t->pid);
	err = cp_read_file_alloc(path, 1u << 20, &buf, &len);
	if (err < 0) {
		reply_error(rp, t, err == -ENOENT ? -ESRCH : err);
		return;
	}
	/* Go answers os.Args joined by NUL bytes: the kernel's layout less the final NUL. */
	if (len && buf[len - 1] == 0)
		len--;
	reply_body(rp, CP_SERVE_TEXT, false, buf, len);
}

static void ep_symbol(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		      const struct endpoint *e)
{
	/*
	 * Go's protocol: GET tells that symbols are served; a POST of addresses (go tool pprof,
	 * for mappings without names) gets no symbol lines: cprof named what it could.
	 */
	cp_serve_reply_text(rp, 200, "num_symbols: 1");
}

static void ep_metrics(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		       const struct endpoint *e)
{
	struct cp_serve *srv = rq->srv;
	struct cp_metrics m[CP_SERVE_MAX_TARGETS];
	struct cp_strbuf sb = CP_STRBUF_INIT;
	size_t n = 0;

	pthread_mutex_lock(&srv->probe_lock);
	for (size_t i = 0; i < srv->ntargets; i++) {
		/* An exited target (a zombie, its reused pid) has no series. */
		if (cp_proc_gone(srv->targets[i].pid, srv->targets[i].starttime))
			continue;
		if (cp_metrics_collect(srv->targets[i].pid, CP_METRICS_WAITS | CP_METRICS_FDS | CP_METRICS_STATES,
				       &m[n]) == 0)
			n++;
	}
	pthread_mutex_unlock(&srv->probe_lock);
	cp_metrics_write(&sb, m, n);
	cp_serve_go_metrics(srv, &sb);
	if (sb.err) {
		cp_strbuf_release(&sb);
		cp_serve_reply_text(rp, 500, "out of memory");
		return;
	}
	reply_body(rp, CP_SERVE_METRICS, false, NULL, sb.len);
	rp->body = cp_strbuf_detach(&sb);
}

static void ep_index(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		     const struct endpoint *e);

static const struct endpoint endpoints[] = {
	{ "/debug/pprof/", ep_index, "", "this page", NULL },
	{ "/debug/pprof/profile", ep_profile, "seconds=30",
	  "CPU profile (pprof): samples of every thread's stack for N seconds", NULL },
	{ "/debug/pprof/goroutine", ep_goroutine, "debug=2",
	  "every thread's stack and why it waits: debug=2 full text, debug=1 grouped, debug=0 "
	  "pprof of threads by stack", NULL },
	{ "/debug/pprof/cmdline", ep_cmdline, "", "the target's command line", NULL },
	{ "/debug/pprof/symbol", ep_symbol, "",
	  "symbol lookup (profiles come symbolized; a POST names nothing more)", NULL },
	{ "/debug/pprof/heap", ep_heap, "seconds=30",
	  "heap profile (pprof): allocations sampled for N seconds that are still in use; a Go "
	  "program's from its runtime (as of the last GC, or over N seconds)", NULL },
	{ "/debug/pprof/allocs", ep_allocs, "seconds=30",
	  "allocs profile (pprof): every allocation sampled for N seconds; a Go program's from its "
	  "runtime", NULL },
	{ "/debug/pprof/block", ep_block, "seconds=30",
	  "block profile (pprof): time threads spent off CPU, not preempted, where they blocked",
	  NULL },
	{ "/debug/pprof/mutex", ep_mutex, "seconds=30",
	  "mutex profile (pprof): lock waits, charged to the stack that released the lock", NULL },
	{ "/debug/pprof/threadcreate", ep_threadcreate, "seconds=30",
	  "threadcreate profile (pprof): the stacks that created threads in N seconds", NULL },
	{ "/debug/pprof/trace", NULL, "", "Go execution trace",
	  "execution traces are a Go runtime feature; cprof has none" },
	{ "/debug/cprof/dump", ep_dump, "format=text",
	  "thread dump with wait diagnosis: format=text or format=json", NULL },
	{ "/debug/cprof/flame", ep_flame, "seconds=30",
	  "interactive SVG flame graph of a CPU profile of N seconds", NULL },
	{ "/metrics", ep_metrics, "", "Prometheus metrics (process, threads, waits), from /proc",
	  NULL },
};

static void html_escape(struct cp_strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			cp_strbuf_adds(sb, "&lt;");
		else if (*s == '>')
			cp_strbuf_adds(sb, "&gt;");
		else if (*s == '&')
			cp_strbuf_adds(sb, "&amp;");
		else if (*s == '"')
			cp_strbuf_adds(sb, "&quot;");
		else
			cp_strbuf_addc(sb, *s);
	}
}

static void ep_index(struct cp_serve_request *rq, struct cp_serve_reply *rp,
		     const struct endpoint *e)
{
	struct cp_serve *srv = rq->srv;
	struct cp_strbuf sb = CP_STRBUF_INIT;

	cp_strbuf_adds(&sb, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			    "<title>cprof serve</title></head><body>\n<h1>cprof serve</h1>\n<p>");
	if (srv->ntargets == 0)
		cp_strbuf_adds(&sb, "No target: start cprof serve with -p PID.");
	for (size_t i = 0; i < srv->ntargets; i++)
		cp_strbuf_addf(&sb, "%starget pid %d%s", i ? ", " : "", srv->targets[i].pid,
			       i == 0 && srv->ntargets > 1 ? " (default; others with ?pid=N)" : "");
	cp_strbuf_adds(&sb, "</p>\n<table>\n");
	for (size_t i = 1; i < CP_ARRAY_SIZE(endpoints); i++) {
		const struct endpoint *p = &endpoints[i];

		cp_strbuf_adds(&sb, "<tr><td><a href=\"");
		html_escape(&sb, p->path);
		if (*p->query)
			cp_strbuf_addf(&sb, "?%s", p->query);
		cp_strbuf_adds(&sb, "\">");
		html_escape(&sb, p->path);
		cp_strbuf_adds(&sb, "</a></td><td>");
		html_escape(&sb, p->summary);
		if (!p->fn)
			cp_strbuf_adds(&sb, " (not implemented yet: 501)");
		cp_strbuf_adds(&sb, "</td></tr>\n");
	}
	cp_strbuf_adds(&sb, "</table>\n<p>Use: <code>go tool pprof http://HOST:PORT/debug/pprof/"
			    "profile?seconds=30</code></p>\n</body></html>\n");
	if (sb.err) {
		cp_strbuf_release(&sb);
		cp_serve_reply_text(rp, 500, "out of memory");
		return;
	}
	reply_body(rp, CP_SERVE_HTML, false, NULL, sb.len);
	rp->body = cp_strbuf_detach(&sb);
}

void cp_serve_dispatch(struct cp_serve_request *rq, struct cp_serve_reply *rp)
{
	const char *path = rq->path;

	memset(rp, 0, sizeof(*rp));
	if (!strcmp(path, "/debug/pprof") || !strcmp(path, "/"))
		path = "/debug/pprof/";
	for (size_t i = 0; i < CP_ARRAY_SIZE(endpoints); i++) {
		const struct endpoint *e = &endpoints[i];

		if (strcmp(path, e->path))
			continue;
		if (!e->fn) {
			cp_serve_reply_text(rp, 501, "%s", e->reason);
			return;
		}
		e->fn(rq, rp, e);
		return;
	}
	if (!strncmp(path, "/debug/pprof/", 13))
		cp_serve_reply_text(rp, 404, "Unknown profile");
	else
		cp_serve_reply_text(rp, 404, "404 page not found");
}
