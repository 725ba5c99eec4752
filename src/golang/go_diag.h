/*
 * Why a Go program's goroutines wait, and what is wrong with it: goroutine leaks (groups by wait
 * reason and creation site that grew between two looks, or that have waited far longer than the
 * rest), "all goroutines are asleep" deadlocks the runtime itself did not catch, goroutines
 * blocked on the network with no deadline, and channels with the goroutines waiting on them.
 * The judgements (go_diag.c) work on goroutines as cp_go_goroutines read them; the facts they
 * need from the target's memory (go_diag_mem.c) are read with the runtime handle.
 */
#ifndef CP_GO_DIAG_H
#define CP_GO_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "goruntime.h"
#include "mem.h"

/* A group smaller than this is never called a leak (as for threads, leak.h). */
#define CP_GO_LEAK_MIN 10
/* By age: the group's median wait is at least this long... */
#define CP_GO_LEAK_MIN_WAIT_NS (60ll * 1000000000ll)
/* ...and at least this many times the median wait of the other waiting goroutines. */
#define CP_GO_LEAK_AGE_FACTOR 10

/* The runtime's status values (runtime2.go, stable since Go 1.0). */
enum cp_go_status {
	CP_GO_IDLE = 0,
	CP_GO_RUNNABLE = 1,
	CP_GO_RUNNING = 2,
	CP_GO_SYSCALL = 3,
	CP_GO_WAITING = 4,
	CP_GO_DEAD = 6,
	CP_GO_COPYSTACK = 8,
	CP_GO_PREEMPTED = 9,
};

/* A group of waiting goroutines (one wait reason, one creation site) judged a likely leak. */
struct cp_go_leak {
	const char *wait_reason;	/* borrowed from the goroutines judged */
	uint64_t gopc;			/* the go statement that created them all */
	size_t count;			/* goroutines in the group now */
	size_t before;			/* in the group at the first look; 0 without one */
	size_t grown;			/* members that were not there at the first look */
	int64_t wait_ns;		/* the group's median wait; -1 unknown */
	int64_t others_wait_ns;		/* the other parked goroutines' median wait; -1 */
	bool by_growth;			/* the group grew between the looks */
	bool by_age;			/* it waited far longer than the rest */
	int64_t *ids;			/* owned, ascending */
};

/*
 * Judge the waiting user goroutines of now (n) by group: a leak when the group has at least
 * CP_GO_LEAK_MIN members and grew since before (nbefore; before NULL: no first look), or
 * waited far longer than the rest (CP_GO_LEAK_MIN_WAIT_NS, CP_GO_LEAK_AGE_FACTOR; waits from
 * wait_since_ns against now_ns, the runtime's clock). *out (free with cp_go_leaks_free) is
 * sorted by count, largest first. 0 or -ENOMEM; out written only on success.
 */
int cp_go_find_leaks(const struct cp_goroutine *now, size_t n, const struct cp_goroutine *before,
		     size_t nbefore, int64_t now_ns, struct cp_go_leak **out, size_t *nout);
void cp_go_leaks_free(struct cp_go_leak *leaks, size_t n);

/*
 * Whether every user goroutine is asleep for good, as Go's own "all goroutines are asleep -
 * deadlock!" says when it can (it cannot while anything else keeps an M busy: a signal watcher,
 * a cgo call, a network poller): each one waits on a channel, a select, a sync lock or a
 * semaphore, or is os/signal's watcher (only a signal wakes it); none runs, is runnable, is in
 * a system call, sleeps, or waits on the network; and no timer is pending (timers: how many
 * the runtime holds; a negative count, unknown, never yields a deadlock). name(arg, pc) (may
 * be NULL; may return NULL) names a creation site, to know os/signal's watcher. 1 with *ids
 * (malloc'ed, ascending) and *nids set, 0 when not, -ENOMEM.
 */
int cp_go_find_deadlock(const struct cp_goroutine *g, size_t n, long timers,
			const char *(*name)(void *arg, uint64_t pc), void *arg, int64_t **ids,
			size_t *nids);

/* Whether reason is a wait that only another goroutine can end (a channel, lock, select). */
bool cp_go_wait_is_sync(const char *reason);

/*
 * Where the fields the diagnosis reads lie in the target's runtime structures: hchan, the type
 * descriptor's name, moduledata.types, pollDesc, p's timers. A part is used only when its
 * have_ flag is set.
 */
struct cp_go_diag_layout {
	bool have_chan, have_type, have_pd, have_timers;
	uint32_t chan_qcount, chan_dataqsiz, chan_closed, chan_elemtype;
	uint32_t type_tflag, type_str, module_types;
	uint32_t pd_fd, pd_rg, pd_wg, pd_rd, pd_wd, pd_size;
	uint32_t p_timers_len;		/* the number of timers in a p */
};

/*
 * The layout for rt's Go version: from a table (Go 1.19), else from the binary's DWARF.
 * 0 or -ENOTSUP (neither knows it).
 */
int cp_go_diag_layout(struct cp_go_runtime *rt, struct cp_go_diag_layout *out);
/* The layout from DWARF alone (what the table was made from). 0 or -ENOTSUP. */
int cp_go_diag_layout_dwarf(struct cp_go_runtime *rt, struct cp_go_diag_layout *out);

/* A channel some goroutines wait on. */
struct cp_go_chan {
	uint64_t addr;
	char *elem_type;	/* owned; the element type ("int", "main.job"); NULL unknown */
	bool have_state;	/* the fields below were read */
	uint64_t capacity;	/* 0: unbuffered */
	uint64_t queued;
	bool closed;
	int64_t *receivers;	/* owned, ascending: goroutines in "chan receive" on it */
	size_t nreceivers;
	int64_t *senders;	/* "chan send" */
	size_t nsenders;
	int64_t *selecting;	/* in a select that includes it */
	size_t nselecting;
};

/*
 * The channels the user goroutines g wait on (waiting_chan), each with its waiters, in order
 * of address (only addresses and waiters: cp_go_read_chans adds the rest). *out: free with
 * cp_go_chans_free. 0 or -ENOMEM.
 */
int cp_go_find_chans(const struct cp_goroutine *g, size_t n, struct cp_go_chan **out,
		     size_t *nout);
/*
 * Read each channel's element type and state through rt, its layout lo and mem (borrowed). A
 * channel that cannot be read keeps have_state false. 0, -ENOTSUP (no hchan layout), -ENOMEM.
 */
int cp_go_read_chans(struct cp_go_runtime *rt, const struct cp_go_diag_layout *lo,
		     const struct cp_mem *mem, struct cp_go_chan *c, size_t n);
void cp_go_chans_free(struct cp_go_chan *c, size_t n);
/* The index in c of the channel at addr, -1 when none. */
long cp_go_chan_index(const struct cp_go_chan *c, size_t n, uint64_t addr);

/* A goroutine parked by the network poller on one fd (its pollDesc). */
struct cp_go_netwait {
	int64_t goid;
	int fd;
	bool write;		/* waiting to write, else to read */
	bool accept;		/* on a listening socket: an accept (no deadline is usual) */
	int64_t deadline_ns;	/* pollDesc's rd (wd): 0 none, -1 expired, else runtime time */
	int64_t remaining_ns;	/* the deadline's time left when read; 0: none or expired */
	char *object;		/* owned: the fd's link ("socket:[123]"); NULL unknown */
	char *detail;		/* owned: the socket in words; NULL unknown */
};

/*
 * The goroutines of pid parked in the network poller, found through the netpoller's epoll
 * registrations (each holds its pollDesc's address) and the pollDescs' waiting goroutines
 * (matched by their g's address), with each fd described (cp_fd_describe). Sorted by goid.
 * -ENOTSUP without a pollDesc layout in lo, -ENOENT when the process has no epoll fd.
 * *out: free with cp_go_netwaits_free. 0 or -errno.
 */
int cp_go_find_netwaits(const struct cp_go_diag_layout *lo, const struct cp_mem *mem, int pid,
			const struct cp_goroutine *g, size_t n, struct cp_go_netwait **out,
			size_t *nout);
void cp_go_netwaits_free(struct cp_go_netwait *w, size_t n);

/* Timers pending in the runtime (every P's heap), or -errno (-ENOTSUP: layout unknown). */
long cp_go_count_timers(struct cp_go_runtime *rt, const struct cp_go_diag_layout *lo,
			const struct cp_mem *mem);

/* The runtime's clock (nanotime: CLOCK_MONOTONIC) now, for wait_since_ns. */
int64_t cp_go_nanotime(void);

#endif
