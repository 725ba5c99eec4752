/*
 * Thread ids across PID namespaces. A process in a container numbers its threads in its own
 * PID namespace, and what it stores in memory (a mutex's owner, glibc's TID fields) uses those
 * numbers; /proc, and so cprof, uses the host's.
 */
#ifndef CP_PIDNS_H
#define CP_PIDNS_H

#include <stdbool.h>
#include <stddef.h>

struct cp_pidns_tid {
	int ns_tid;		/* as the target's own namespace numbers it */
	int tid;		/* as cprof's /proc numbers it */
};

struct cp_pidns_map {
	bool same_ns;		/* the target shares cprof's PID namespace: ids are the same */
	struct cp_pidns_tid *v;	/* sorted by ns_tid; empty when same_ns */
	struct cp_pidns_tid *by_tid;	/* the same pairs sorted by tid */
	size_t n;
};

/*
 * Read how process pid's threads are numbered in its own PID namespace (the last NSpid field
 * of each /proc/PID/task/TID/status). When pid shares cprof's namespace nothing is read and
 * same_ns is set. 0 with *out filled (release it with cp_pidns_map_release), or -errno.
 */
int cp_pidns_map_read(int pid, struct cp_pidns_map *out);

/* The host tid of a tid as the target's namespace numbers it; -1 when no thread has it. */
int cp_pidns_to_host(const struct cp_pidns_map *m, int ns_tid);

/* The target's own number for host tid tid (tid itself in the same namespace), or -1. */
int cp_pidns_to_ns(const struct cp_pidns_map *m, int tid);

void cp_pidns_map_release(struct cp_pidns_map *m);

/* Parse a status file's "NSpid:" line: the first (*host) and last (*ns) ids. 0 or -ENOENT. */
int cp_pidns_parse_status(const char *status, int *host, int *ns);

#endif
