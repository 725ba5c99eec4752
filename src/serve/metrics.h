/*
 * Process and thread metrics read from /proc alone (no thread is stopped, no stack copied),
 * and their Prometheus text exposition (format 0.0.4): what `serve`'s /metrics answers and
 * what `watch` compares with its thresholds.
 */
#ifndef CP_SERVE_METRICS_H
#define CP_SERVE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "wait.h"

/* Thread states as /proc names them (R S D T t Z X I), and one for any other letter. */
enum cp_metrics_state {
	CP_STATE_RUNNING,
	CP_STATE_SLEEPING,
	CP_STATE_DISK_SLEEP,
	CP_STATE_STOPPED,
	CP_STATE_TRACING_STOP,
	CP_STATE_ZOMBIE,
	CP_STATE_DEAD,
	CP_STATE_IDLE,
	CP_STATE_OTHER,
	CP_STATE__COUNT,
};

/* "running", "sleeping", "disk-sleep", ...: the label values of cprof_threads{state}. */
const char *cp_metrics_state_name(enum cp_metrics_state s);
enum cp_metrics_state cp_metrics_state_of(char state);

enum cp_metrics_flags {
	CP_METRICS_WAITS = 1u << 0,	/* classify each thread's wait (syscall, wchan) */
	CP_METRICS_FDS = 1u << 1,	/* count open fds */
	CP_METRICS_STATES = 1u << 2,	/* count threads by state (implied by WAITS) */
};

struct cp_metrics {
	int pid;
	double cpu_seconds;		/* user + system, all threads */
	uint64_t rss_bytes;
	uint64_t vm_bytes;
	long open_fds;			/* -1 unreadable */
	long max_fds;			/* soft limit; -1 unreadable or unlimited */
	double start_time;		/* seconds since the epoch */
	long threads;
	size_t by_state[CP_STATE__COUNT];	/* with CP_METRICS_STATES */
	/* With CP_METRICS_WAITS: */
	size_t by_wait[CP_WAIT__COUNT];
	size_t unbounded_io;		/* socket/pipe/child waits without timeout */
	size_t deadlocked;		/* threads in a lock cycle or waiting on an exited owner */
	size_t blocked;			/* lock waits, disk sleep and unbounded I/O waits */
	bool waits;			/* the wait fields are set */
};

/*
 * Read pid's metrics. 0 or -errno (-ESRCH: the process is gone). Without /proc access to a
 * thread (it exited meanwhile) the thread is skipped.
 */
int cp_metrics_collect(int pid, unsigned int flags, struct cp_metrics *out);

/*
 * Append the exposition of n processes' metrics to sb: each metric family once (HELP, TYPE),
 * then one series per process (label pid) and per state / wait kind.
 */
void cp_metrics_write(struct cp_strbuf *sb, const struct cp_metrics *m, size_t n);

#endif
