/* The bodies of serve's profile endpoints, made without any HTTP type (CPU profile, dumps). */
#ifndef CP_SERVE_PROFILES_H
#define CP_SERVE_PROFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profile.h"
#include "session.h"

struct cp_symbolizer;

struct cp_serve_cpu_req {
	int pid;
	uint64_t starttime;		/* the target's, to tell that it exited (pid reused) */
	int seconds;
	int hz;
	enum cp_session_type type;	/* CP_SESSION_CPU, BLOCK, MUTEX, THREADCREATE, HEAP... */
	enum cp_profile_format format;	/* PPROF or SVG */
	bool (*gone)(void *ctx);	/* polled a few times a second: true abandons the profile */
	void *ctx;
	const int *stopping;		/* may be NULL; atomic: set, the window ends now */
	char why[256];			/* out: a failure's one-line reason (heap), or "" */
};

/*
 * Sample req->pid for req->seconds (less when it exits) and write the profile into *body
 * (malloc'd). 0 or -errno: -ECANCELED when gone() said so (the sampler is closed before
 * returning), or cp_session_new's errors (req->why may then say why).
 */
int cp_serve_cpu_profile(struct cp_serve_cpu_req *req, char **body, size_t *len);

enum cp_serve_dump_form {
	CP_SERVE_DUMP_TEXT,	/* goroutine?debug=2, dump?format=text */
	CP_SERVE_DUMP_GROUPED,	/* goroutine?debug=1 */
	CP_SERVE_DUMP_JSON,	/* dump?format=json */
	CP_SERVE_DUMP_PPROF,	/* goroutine?debug=0: goroutine/count by stack */
};

/*
 * Take a dump of pid and write it in form into *body (malloc'd). sym is borrowed and used by
 * one caller at a time. 0 or -errno as cp_dump_take.
 */
int cp_serve_dump(int pid, enum cp_serve_dump_form form, struct cp_symbolizer *sym, char **body,
		  size_t *len);

/*
 * A native program's threads as Go's goroutine profile (goroutine/count by stack, threads of
 * one stack merged), from a dump of pid. sym is borrowed. 0 or -errno as cp_dump_take; *out
 * is written only on success (the caller frees it).
 */
int cp_serve_thread_profile(int pid, struct cp_symbolizer *sym, struct cp_profile **out);

/* prof written in format into a malloc'd *body of *len bytes. 0 or -errno. */
int cp_serve_profile_body(const struct cp_profile *prof, enum cp_profile_format format,
			  char **body, size_t *len);

#endif
