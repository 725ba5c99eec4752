/* Names for JIT code: each process's /tmp/perf-PID.map, loaded on first use and kept fresh. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "perfmap.h"
#include "pidns.h"
#include "proc.h"
#include "sym_internal.h"
#include "util.h"

/* A map is looked at again (for code generated since) at most this often. */
#define JIT_RECHECK_NS 1000000000ull
/* Processes whose maps are kept; a profile of more processes reloads the oldest. */
#define JIT_PROCS 16

struct cp_sym_jit {
	int pid;
	struct cp_perfmap *map;		/* NULL: none (yet) */
	uint64_t checked_ns;
	off_t size;			/* of the file when it was loaded */
};

/* The map's file as the target names it (its own pid), and the uid that may own it. */
static int map_file_owner(int pid, int *ns_pid, uid_t *uid)
{
	char path[64], buf[4096];
	struct stat st;
	size_t len;
	int host;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (stat(path, &st) < 0)
		return -errno;
	*uid = st.st_uid;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (cp_read_file(path, buf, sizeof(buf), &len) < 0 ||
	    cp_pidns_parse_status(buf, &host, ns_pid) < 0)
		*ns_pid = pid;
	return 0;
}

static off_t map_file_size(int pid, int ns_pid)
{
	char path[96];
	struct stat st;

	if (cp_proc_dir(pid, path, sizeof(path)) < 0)
		return -1;
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/root/tmp/perf-%d.map",
		 ns_pid);
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
}

static struct cp_sym_jit *jit_slot(struct cp_symbolizer *sym, int pid)
{
	struct cp_sym_jit *j, *oldest = NULL;

	if (!sym->jit) {
		sym->jit = calloc(JIT_PROCS, sizeof(*sym->jit));
		if (!sym->jit)
			return NULL;
	}
	for (size_t i = 0; i < JIT_PROCS; i++) {
		j = &sym->jit[i];
		if (j->pid == pid)
			return j;
		if (!oldest || j->checked_ns < oldest->checked_ns)
			oldest = j;
	}
	cp_perfmap_free(oldest->map);
	*oldest = (struct cp_sym_jit){ .pid = pid, .size = -1 };
	return oldest;
}

const char *cp_sym_jit_lookup(struct cp_symbolizer *sym, int pid, uint64_t pc, uint64_t *off)
{
	struct cp_sym_jit *j = jit_slot(sym, pid);
	uint64_t now = cp_now_ns();
	int ns_pid;
	uid_t uid;

	if (!j)
		return NULL;
	if (!j->checked_ns || now - j->checked_ns > JIT_RECHECK_NS) {
		j->checked_ns = now;
		if (map_file_owner(pid, &ns_pid, &uid) == 0 &&
		    map_file_size(pid, ns_pid) != j->size) {
			struct cp_perfmap *m = NULL;

			/* Grown (or new): the runtime wrote more. A failed load keeps the old. */
			if (cp_perfmap_load(pid, ns_pid, uid, &m) == 0) {
				cp_perfmap_free(j->map);
				j->map = m;
				j->size = map_file_size(pid, ns_pid);
			}
		}
	}
	return cp_perfmap_lookup(j->map, pc, off);
}

void cp_sym_jit_free(struct cp_symbolizer *sym)
{
	if (!sym->jit)
		return;
	for (size_t i = 0; i < JIT_PROCS; i++)
		cp_perfmap_free(sym->jit[i].map);
	free(sym->jit);
	sym->jit = NULL;
}
