/* serve for Go targets: their profiles and goroutine metrics read from the Go runtime. */
#ifndef CP_SERVE_GO_SERVE_H
#define CP_SERVE_GO_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "go_profile.h"
#include "serve_internal.h"
#include "util.h"

/* Whether t is a Go program whose runtime cprof reads (learned once, then remembered). */
bool cp_serve_is_go(struct cp_serve *srv, struct cp_serve_target *t);

/*
 * The profile of type of Go target t as pprof into *body (malloc'd): at once when seconds is
 * 0, else the difference over seconds (as Go's ?seconds=N). 0, or -errno: -ENOENT (not a Go
 * program), -ENOTSUP (the program does not record that profile: why says how to enable it),
 * -ECANCELED (the client left: rq->gone), -ESRCH (exited).
 */
int cp_serve_go_profile(struct cp_serve_request *rq, struct cp_serve_target *t,
			enum cp_go_profile_type type, int seconds, char **body, size_t *len,
			char *why, size_t whylen);

/* Append go_goroutines{pid} and cprof_goroutines{pid,wait_reason} of the Go targets to sb. */
void cp_serve_go_metrics(struct cp_serve *srv, struct cp_strbuf *sb);

#endif
