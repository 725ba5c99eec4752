/*
 * Internals of cprof serve shared by its files: requests and replies as the endpoints see them
 * (no HTTP library types), the target set with its busy flags, and the checks on parameters,
 * hosts and credentials (unit-tested without a server).
 */
#ifndef CP_SERVE_INTERNAL_H
#define CP_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "serve.h"

struct cp_symbolizer;

/* What a target may be doing for one client at a time: a second request of a kind gets 429. */
enum cp_serve_kind {
	CP_SERVE_KIND_CPU,	/* profile, flame: a sampler on the target */
	CP_SERVE_KIND_DUMP,	/* goroutine, dump: the target's threads are captured */
	CP_SERVE_KIND_BLOCK,	/* block: a context-switch sampler */
	CP_SERVE_KIND_MUTEX,	/* mutex: futex tracepoints */
	CP_SERVE_KIND_THREADCREATE, /* threadcreate: clone tracepoints */
	CP_SERVE_KIND_HEAP,	/* heap, allocs: the allocation sampler (one per process), or a window
				   over a Go runtime's records */
	CP_SERVE_KIND__COUNT,
};

struct cp_serve_target {
	int pid;
	uint64_t starttime;	/* from stat at start: a reused pid is not the target */
	int busy[CP_SERVE_KIND__COUNT];	/* atomic flags */
	int go;			/* atomic: 1 a Go program (go_serve.c), -1 not, 0 not known yet */
};

struct cp_serve {
	struct cp_serve_target targets[CP_SERVE_MAX_TARGETS];
	size_t ntargets;
	int seconds_max;
	int hz;
	int port;
	char listen_host[64];	/* as given, without brackets */
	bool any_host;		/* listening on every address: any Host header (auth required) */
	char *credentials;	/* owned; NULL = no auth */
	int stopping;		/* atomic; set by cp_serve_stop: profiles in flight end now */
	int active;		/* atomic; requests not completed yet (cp_serve_stop waits) */
	/*
	 * Held while a dump or a metrics scrape reads the targets: the shared symbolizer and the
	 * diagnosis are used by one request at a time.
	 */
	pthread_mutex_t probe_lock;
	struct cp_symbolizer *sym;	/* owned; warm across dumps */
	void *daemon;			/* struct MHD_Daemon */
};

/* One request as an endpoint sees it. */
struct cp_serve_request {
	struct cp_serve *srv;
	const char *path;
	/* The query parameter name, or NULL. */
	const char *(*param)(void *ctx, const char *name);
	/* True when the client has gone (disconnected) or the server is stopping. */
	bool (*gone)(void *ctx);
	void *ctx;
};

/* An endpoint's answer; the HTTP layer adds the headers Go's net/http/pprof sets. */
struct cp_serve_reply {
	int status;
	const char *content_type;	/* static */
	bool attachment;		/* Content-Disposition: attachment; filename="profile" */
	char *body;			/* owned (malloc) */
	size_t len;
};

#define CP_SERVE_TEXT "text/plain; charset=utf-8"
#define CP_SERVE_BINARY "application/octet-stream"
#define CP_SERVE_HTML "text/html; charset=utf-8"
#define CP_SERVE_SVG "image/svg+xml"
#define CP_SERVE_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* Answer rq through the endpoint table into rp (always filled, errors included). */
void cp_serve_dispatch(struct cp_serve_request *rq, struct cp_serve_reply *rp);
/* A text/plain reply: the one-line message and a newline. -ENOMEM leaves a 500 without body. */
void cp_serve_reply_text(struct cp_serve_reply *rp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cp_serve_reply_release(struct cp_serve_reply *rp);

/*
 * The parameter checks. Each returns 0 with *out set (def when value is NULL or empty), or
 * -EINVAL with a one-line reason in why.
 */
int cp_serve_param_seconds(const char *value, int def, int max, int *out, char *why,
			   size_t size);
int cp_serve_param_int(const char *name, const char *value, int def, int min, int max, int *out,
		       char *why, size_t size);

/*
 * Whether a request with Host header host (may be NULL) may be answered by a server on
 * listen_host: loopback names and addresses, and the listen address itself; any host when
 * any_host. Ports are not compared (ssh -L and kubectl port-forward change them).
 */
bool cp_serve_host_allowed(const char *host, const char *listen_host, bool any_host);

/*
 * Compare "user:password" built from the request with the expected credentials in time that
 * depends only on the length of expected. user and pass may be NULL (no credentials sent).
 */
bool cp_serve_credentials_match(const char *expected, const char *user, const char *pass);

#endif
