/*
 * The processes and threads a profiling session has seen, kept current from perf's records:
 * each process's module map (MMAP2, FORK copies the parent's, COMM with exec empties it), its
 * unwinder (dropped at EXIT), and thread names (COMM, FORK inherits the creator's).
 */
#ifndef CP_PROC_MODEL_H
#define CP_PROC_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maps.h"
#include "proc.h"
#include "util.h"

struct cp_sampler_mmap;
struct cp_unwinder;

/* Processes remembered; beyond that samples still count, without a module map. */
#define CP_PROCS_MAX 100000

/* A process seen in the records: its module map, kept current, and its unwinder. */
struct cp_proc {
	int pid;
	struct cp_maps maps;
	uint64_t *map_ids;	/* the owner's id per maps entry (profile mapping), 0 = none yet */
	struct cp_unwinder *uw;	/* made by the owner; kept in step with maps, freed at exit */
	bool maps_loaded;	/* /proc/PID/maps read (or inherited from the parent) */
	bool reread;		/* /proc/PID/maps re-read once for an address not in the map */
	bool gone;		/* /proc/PID no longer reaches its files: use our own root */
	bool uw_self;		/* uw opens files through our own root */
	bool sampled;		/* for the owner's statistics */
};

/* A thread seen in the records or the samples. */
struct cp_thread {
	int tid;
	int pid;
	bool sampled;		/* for the owner's statistics */
	/* Off CPU (wall and block sessions): since when, at which stack, why. */
	bool off;		/* switched out (or seeded blocked), not back yet */
	uint8_t off_kind;	/* enum cp_wait_kind; running when it was preempted */
	uint32_t off_node;	/* the stack (the profile's stack node) */
	uint64_t off_since;	/* CLOCK_MONOTONIC ns */
	uint64_t wall_carry;	/* wall: off-CPU ns not yet a whole sampling period */
	uint64_t off_futex;	/* mutex: the lock word it waits on */
	char name[CP_COMM_LEN];	/* "" until known */
};

/*
 * The table of processes and threads, embedded in its owner (cp_procs_init / _release).
 * Process pointers stay valid until release; thread pointers only until the next
 * cp_procs_thread_get or cp_procs_fork.
 */
struct cp_procs {
	struct cp_proc **proc;	/* owned, in order of arrival */
	size_t nprocs;
	size_t procs_cap;
	struct cp_htab proc_index;	/* pid -> proc[] */
	struct cp_thread *thread;
	size_t nthreads;
	size_t threads_cap;
	struct cp_htab thread_index;	/* tid -> thread[] */
};

void cp_procs_init(struct cp_procs *ps);
/* Frees every process (its maps and unwinder) and thread. */
void cp_procs_release(struct cp_procs *ps);

/* The process pid, or NULL. */
struct cp_proc *cp_procs_find(const struct cp_procs *ps, int pid);
/*
 * The process pid, added when new (its map read from /proc/PID/maps if load). NULL when out
 * of memory, pid <= 0 or CP_PROCS_MAX processes are known.
 */
struct cp_proc *cp_procs_get(struct cp_procs *ps, int pid, bool load);

/* The thread tid, or NULL. */
struct cp_thread *cp_procs_thread_find(const struct cp_procs *ps, int tid);
/*
 * The thread tid of process pid, added (nameless) when new. NULL when out of memory or
 * CP_MAX_THREADS threads are known.
 */
struct cp_thread *cp_procs_thread_get(struct cp_procs *ps, int pid, int tid);
/* Fill t->name from /proc (or the tid when unreadable). */
void cp_thread_read_name(struct cp_thread *t);

/* The pid through which to open a process's files: its own, or ours once it is gone. */
int cp_proc_file_pid(struct cp_proc *p);
/* Re-read the map from /proc/PID/maps (map_ids start over). 0 or -errno. */
int cp_proc_load_maps(struct cp_proc *p);
/*
 * The mapping holding addr, or NULL. An address outside the known map (a mapping whose MMAP2
 * record was missed: it predates the events, or raced) re-reads /proc/PID/maps once.
 */
const struct cp_map *cp_proc_find_map(struct cp_proc *p, uint64_t addr);

/*
 * An MMAP2 record: the mapping replaces what it covers in m->pid's map (the rest of the map is
 * read from /proc first if not known yet); for an executable file, its other PT_LOAD segments
 * are added where nothing is known. Returns the process's entry of the new mapping, or NULL
 * when the record was not applied (unknown process, empty range, out of memory).
 */
const struct cp_map *cp_procs_mmap(struct cp_procs *ps, const struct cp_sampler_mmap *m,
				   struct cp_proc **pp);
/* A COMM record: the thread's new name; with exec, the process's map starts empty. */
void cp_procs_comm(struct cp_procs *ps, int pid, int tid, const char *name, bool exec);
/*
 * A FORK record: a new process starts with a copy of its parent's map; a new thread with its
 * creator's name.
 */
void cp_procs_fork(struct cp_procs *ps, int pid, int tid, int ppid, int ptid);
/* An EXIT record: when a process's leader exits, its unwinder (the big part) is freed. */
void cp_procs_exit(struct cp_procs *ps, int pid, int tid);

#endif
