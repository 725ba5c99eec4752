/* Mapping thread ids between a target's PID namespace and cprof's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pidns.h"
#include "proc.h"
#include "util.h"

int cp_pidns_parse_status(const char *status, int *host, int *ns)
{
	const char *p = status ? strstr(status, "\nNSpid:") : NULL;
	long first = -1, last = -1;
	char *end;

	if (!p)
		return -ENOENT;
	p += strlen("\nNSpid:");
	for (;;) {
		long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			break;
		v = strtol(p, &end, 10);
		if (v <= 0 || v > 0x7fffffff)
			return -ENOENT;
		if (first < 0)
			first = v;
		last = v;
		p = end;
	}
	if (first < 0)
		return -ENOENT;
	*host = (int)first;
	*ns = (int)last;
	return 0;
}

static bool same_pid_ns(int pid)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	/* Unreadable (no privilege over the target): assume the ordinary case. */
	if (stat(path, &a) < 0 || stat("/proc/self/ns/pid", &b) < 0)
		return true;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int cmp_ns_tid(const void *a, const void *b)
{
	const struct cp_pidns_tid *x = a, *y = b;

	return (x->ns_tid > y->ns_tid) - (x->ns_tid < y->ns_tid);
}

static int cmp_tid(const void *a, const void *b)
{
	const struct cp_pidns_tid *x = a, *y = b;

	return (x->tid > y->tid) - (x->tid < y->tid);
}

int cp_pidns_map_read(int pid, struct cp_pidns_map *out)
{
	struct cp_pidns_map m = { 0 };
	char path[64], buf[4096];
	int *tids = NULL, err;
	size_t n = 0, len;

	if (same_pid_ns(pid)) {
		m.same_ns = true;
		*out = m;
		return 0;
	}
	err = cp_proc_list_tasks(pid, &tids, &n);
	if (err < 0)
		return err;
	m.v = calloc(n ? n : 1, sizeof(*m.v));
	m.by_tid = calloc(n ? n : 1, sizeof(*m.by_tid));
	if (!m.v || !m.by_tid) {
		free(tids);
		cp_pidns_map_release(&m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		int host, ns;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tids[i]);
		/* A thread that exits meanwhile is simply not mapped. */
		if (cp_read_file(path, buf, sizeof(buf), &len) < 0 ||
		    cp_pidns_parse_status(buf, &host, &ns) < 0)
			continue;
		m.v[m.n++] = (struct cp_pidns_tid){ .ns_tid = ns, .tid = tids[i] };
	}
	free(tids);
	/* The task list is in tid order already; sorting keeps that a promise. */
	memcpy(m.by_tid, m.v, m.n * sizeof(*m.v));
	qsort(m.by_tid, m.n, sizeof(*m.by_tid), cmp_tid);
	qsort(m.v, m.n, sizeof(*m.v), cmp_ns_tid);
	*out = m;
	return 0;
}

int cp_pidns_to_host(const struct cp_pidns_map *m, int ns_tid)
{
	struct cp_pidns_tid key = { .ns_tid = ns_tid }, *hit;

	if (!m || m->same_ns)
		return ns_tid;
	hit = bsearch(&key, m->v, m->n, sizeof(*m->v), cmp_ns_tid);
	return hit ? hit->tid : -1;
}

int cp_pidns_to_ns(const struct cp_pidns_map *m, int tid)
{
	struct cp_pidns_tid key = { .tid = tid }, *hit;

	if (!m || m->same_ns)
		return tid;
	hit = m->by_tid ? bsearch(&key, m->by_tid, m->n, sizeof(*m->by_tid), cmp_tid) : NULL;
	return hit ? hit->ns_tid : -1;
}

void cp_pidns_map_release(struct cp_pidns_map *m)
{
	if (!m)
		return;
	free(m->v);
	free(m->by_tid);
	m->v = NULL;
	m->by_tid = NULL;
	m->n = 0;
}
