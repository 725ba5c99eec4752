/*
 * What `cprof attach` and `cprof record` share: their common options, the sampling loop's
 * progress line, and writing the profile (cmd/profiling.c).
 */
#ifndef CP_CMD_PROFILING_H
#define CP_CMD_PROFILING_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "profile.h"
#include "session.h"

#define CP_PROF_SECONDS_MAX 86400.0

struct cp_prof_options {
	enum cp_session_type type;	/* --profile */
	bool waiters;			/* --mutex-waiters */
	bool native;			/* --native: sample a Go program's threads instead */
	double seconds;			/* 0 = until the command exits (record only) */
	int hz;
	bool dwarf;
	size_t stack_size;
	bool kernel;
	enum cp_profile_format format;
	const char *output;		/* NULL = default name */
	bool verbose;
	uint64_t rate;			/* --rate: heap, allocs; 0 = 524288 */
};

/*
 * Options that only one profile type reads, given with another (--rate with cpu, say): a
 * user who asked for them would not get what they asked. 0, or CP_EXIT_USAGE (reported).
 */
int cp_prof_check_options(const char *cmd, const struct cp_prof_options *o);

/* The format named name ("pprof", "folded", "svg", "text"). 0 or -EINVAL. */
int cp_prof_format_parse(const char *name, enum cp_profile_format *out);

/* Long options shared by attach and record, and their short letters. */
#define CP_PROF_SHORT_OPTS "s:F:u:f:o:vh"
#define CP_PROF_LONG_OPTS                                         \
	{ "seconds", required_argument, NULL, 's' },              \
	{ "freq", required_argument, NULL, 'F' },                 \
	{ "frequency", required_argument, NULL, 'F' },            \
	{ "unwind", required_argument, NULL, 'u' },               \
	{ "format", required_argument, NULL, 'f' },               \
	{ "output", required_argument, NULL, 'o' },               \
	{ "stack-size", required_argument, NULL, 'S' },           \
	{ "profile", required_argument, NULL, 'P' },              \
	{ "mutex-waiters", no_argument, NULL, 'W' },              \
	{ "native", no_argument, NULL, 'N' },                     \
	{ "rate", required_argument, NULL, 'R' },                 \
	{ "no-kernel", no_argument, NULL, 'K' },                  \
	{ "verbose", no_argument, NULL, 'v' },                    \
	{ "help", no_argument, NULL, 'h' }

/*
 * Apply option c (one of the shared ones) with value arg. Returns 0, CP_EXIT_USAGE after
 * reporting a bad value, or -1 when c is not a shared option.
 */
int cp_prof_parse_option(const char *cmd, int c, const char *arg, struct cp_prof_options *o);
/*
 * Report a getopt_long result that is not an option of cmd: a missing value (c == ':') or an
 * unknown option. argv and optind as getopt_long left them. Returns CP_EXIT_USAGE.
 */
int cp_prof_option_error(const char *cmd, int c, char **argv);

/* Whether o profiles allocations (heap, allocs): one process, the sampler library. */
bool cp_prof_is_heap(const struct cp_prof_options *o);
/* The session options that come from o (the caller sets the targets). */
void cp_prof_session_opts(const struct cp_prof_options *o, struct cp_session_opts *so);
/* Say so when kernel frames were asked for and refused. */
void cp_prof_note_kernel_refused(const struct cp_session *s, const struct cp_prof_options *o);

/*
 * Report a failure to start sampling pid (perf_event_open refused, the sampler not loaded,
 * ...), with the session's own reason when it gave one.
 */
void cp_prof_explain_open_error(const char *cmd, int pid, int err, const struct cp_prof_options *o);

/* The progress line on a terminal: "sampling pid 4242: 7 s left, 1234 samples". */
void cp_prof_progress(const char *what, double left, const struct cp_session *s);
void cp_prof_progress_clear(void);

/* The default output name for pid's profile in o's format (malloc'd; NULL: no memory). */
char *cp_prof_default_name(const struct cp_prof_options *o, int pid);

/* Check early that the output can be created (reported). 0 or -errno. */
int cp_prof_check_output(const char *cmd, const struct cp_prof_options *o, int pid);

/*
 * Write prof to o->output (or the default name for pid) atomically; *written receives what
 * to call it in the summary line (malloc'd: the path, or "to standard output"). When
 * *stop_count (may be NULL) reaches 2 while writing, the file is abandoned (-EINTR). 0 or
 * -errno (reported).
 */
int cp_prof_write_file(const char *cmd, const struct cp_profile *prof,
		       const struct cp_prof_options *o, int pid,
		       const volatile sig_atomic_t *stop_count, char **written);
/*
 * Write the session's profile to o->output (or the default name for pid) atomically, then
 * the one-line summary. When *stop_count (may be NULL) reaches 2 while writing, the file is
 * abandoned (-EINTR). 0 or -errno (reported).
 */
int cp_prof_write(const char *cmd, struct cp_session *s, const struct cp_prof_options *o, int pid,
		  const volatile sig_atomic_t *stop_count);

#endif
