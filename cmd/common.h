/* What every subcommand shares: exit codes, the one-line error format, PID checks, output. */
#ifndef CP_CMD_COMMON_H
#define CP_CMD_COMMON_H

#include <stdbool.h>
#include <stdio.h>

#include "atomic_file.h"

enum cp_exit {
	CP_EXIT_OK = 0,
	CP_EXIT_FAILURE = 1,	/* run-time failure */
	CP_EXIT_USAGE = 2,	/* bad command line */
};

/* "cprof: WHAT: WHY" on stderr. what may be NULL ("cprof: WHY"). */
void cp_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "cprof: hint: ..." — a second line that tells how to fix it. */
void cp_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "cprof: ..." informational line on stderr (paths written, notes). */
void cp_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Parse and check a target PID for subcommand cmd: a number, exists, not cprof itself, not a
 * kernel thread. Reports the error itself and returns the exit code to use (>0), or 0 with
 * *pid set. allow_zombie: dump reports zombies, attach refuses them.
 */
int cp_cmd_check_pid(const char *cmd, const char *arg, bool allow_zombie, int *pid);
/*
 * Parse "PID[,PID...]" into pids (at most max, duplicates dropped, each checked as
 * cp_cmd_check_pid does). 0, or an exit code after reporting the problem for cmd.
 */
int cp_cmd_parse_pids(const char *cmd, const char *arg, int *pids, size_t max, size_t *npids);
/*
 * The value of -p as getopt gave it: *out = arg, 0; or, when arg is the next option ("-p
 * --seconds 5": the PID was left out), the error said and CP_EXIT_USAGE.
 */
int cp_cmd_pid_option(const char *cmd, const char *arg, const char **out);

/*
 * Explain a failure to attach to pid (errno-style err from ptrace or perf) with the control
 * that blocks it (not root, ptrace_scope, perf_event_paranoid, an existing tracer).
 */
void cp_cmd_explain_attach_error(const char *cmd, int pid, int err, int tracer);

/*
 * Output files are written to an unnamed file next to the destination (atomic_file.h) and put
 * in place only when complete, so a failed or interrupted run never leaves a partial file
 * presented as complete; a replaced file keeps its owner and mode. path "-" is standard
 * output; FIFOs and devices are written in place; /proc and /sys are refused.
 */
struct cp_output {
	FILE *f;
	int fd;			/* what f writes to (a dup of file.fd, or the file in place) */
	int err;		/* the first write error (-errno), 0 if none */
	char *path;		/* final path, or "-" */
	struct cp_atomic_file file;	/* the new file; file.open false when written in place */
	char *buf;		/* f's buffer (NULL: stdio's own); freed after f is closed */
};

/* 0 or -errno (error already reported). */
int cp_output_open(struct cp_output *out, const char *cmd, const char *path);
/* Flush, fsync-free close and rename into place. 0 or -errno (reported). */
int cp_output_commit(struct cp_output *out, const char *cmd);
/* Remove the temporary file (failure path). Safe on an unopened output. */
void cp_output_abort(struct cp_output *out);

/* Default file name "cprof-PID-YYYYmmdd-HHMMSS.EXT" in the current directory (malloc'd). */
char *cp_default_output_name(int pid, const char *ext);

/* -v: say when the on-disk cache is off for this run, and why (cache_dir.h). */
void cp_cmd_note_cache(void);

/* True when stderr is a terminal (progress output). */
bool cp_stderr_is_tty(void);

/* The subcommands. */
int cmd_dump(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_watch(int argc, char **argv);

#endif
