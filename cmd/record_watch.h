/*
 * What `cprof record` does around the command besides profiling it (cmd/record_watch.c):
 * --timeout (dump the command's process tree, then SIGTERM, then SIGKILL) and --leaks (each
 * process of the tree looked at as it calls exit_group).
 */
#ifndef CP_CMD_RECORD_WATCH_H
#define CP_CMD_RECORD_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

/* Exit status when --timeout ended the command, as timeout(1) has it. */
#define CP_EXIT_TIMEOUT 124
/* Exit status with --fail-on-leak when something leaked and the command succeeded. */
#define CP_EXIT_LEAKED 3

struct cp_tracer;
struct cp_symbolizer;

struct record_watch {
	/* Options */
	double timeout;			/* 0 = none */
	double kill_after;		/* seconds from SIGTERM to SIGKILL */
	bool leaks;
	const char *leaks_json;		/* NULL = none */
	bool fail_on_leak;
	const char *hang_json;		/* where the hang dump's JSON goes (malloc'd by caller) */
	/* State */
	const char *name;		/* the command, for messages */
	int root;
	uint64_t start_ns;
	uint64_t term_ns;		/* when SIGTERM was sent; 0 not yet */
	bool timed_out;
	bool killed;
	struct cp_tracer *tracer;
	struct cp_symbolizer *sym;
	size_t nleaked;			/* processes that leaked something */
	size_t nchecked;		/* processes seen exiting */
	struct cp_output json;		/* --leaks-json, open while the command runs */
	bool json_open;
	bool finished;			/* record_watch_finish ran */
};

/* Start following the command (root, not yet exec'd) for --leaks. 0 or an exit code (reported). */
int record_watch_start(struct record_watch *w, int root);
/*
 * Handle what is pending: tracer events (with --leaks), the --timeout deadline. Sets
 * *reaped and *status when the command was reaped here (with --leaks, only here).
 */
void record_watch_tick(struct record_watch *w, uint64_t now, bool *reaped, int *status);
/* Milliseconds until the watch needs the loop again (-1: never). */
int record_watch_wait_ms(const struct record_watch *w, uint64_t now);
/* Close the JSON and free everything. 0, or -errno when the JSON could not be written. */
int record_watch_finish(struct record_watch *w);

#endif
