/*
 * A thread dump: the model, how it is taken (capture every thread, then unwind, symbolize and
 * classify the copies), and its writers (text and JSON, docs/FORMATS.md "Thread dump").
 */
#ifndef CP_DUMP_H
#define CP_DUMP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "deadlock.h"
#include "fdinfo.h"
#include "go_diag.h"
#include "leak.h"
#include "proc.h"
#include "strtab.h"
#include "wait.h"

struct cp_frame {
	uint64_t pc;		/* as unwound (return address for caller frames) */
	const char *function;	/* borrowed from the symbolizer; NULL = null */
	const char *file;
	int line;		/* 0 = null */
	const char *module;	/* path of the mapped file (in cp_dump.strings); NULL = null */
	uint64_t offset;	/* file offset of pc in module */
	bool has_offset;
	bool inlined;
	uint64_t entry_offset;	/* Go frames: pc - its function's entry (Go's "+0x"), else 0 */
};

struct cp_dump_thread {
	int tid;
	int ns_tid;		/* its id in the process's own PID namespace; 0: same as tid */
	/*
	 * For a lock that records no owner (wait.owner_unrecorded): another waiting thread whose
	 * stack holds a reference to the lock, the likely holder; 0 when none.
	 */
	int inferred_owner_tid;
	char name[CP_COMM_LEN];
	char state;
	struct cp_wait wait;
	int stuck;		/* -1 = null, 0 = false, 1 = true */
	struct cp_frame *frames;	/* owned array, unless frames_shared */
	size_t nframes;
	bool frames_shared;	/* frames borrowed from an earlier thread with the same stack */
	bool truncated;		/* depth cap or stack copy cap reached */
	int unwind_error;	/* 0, or why the stack ends early (no frames: capture failed) */
	char **kernel_frames;	/* owned; with --kernel */
	size_t nkernel_frames;
	bool stopped;		/* cprof stopped it to capture it */
	uint64_t stopped_ns;	/* for how long */
	bool sampled;		/* captured from a perf sample while it ran (never stopped) */
	int capture_error;	/* 0 captured (or a zombie); else why not: -EBUSY traced */
	int tracer_pid;		/* with -EBUSY: the process that traces it, and its name */
	char tracer_name[CP_COMM_LEN];
	int64_t goroutine;	/* Go: the goroutine this thread runs or is locked to; 0 = none */
};

/* A goroutine of a Go program (docs/FORMATS.md, "Go programs"). Strings in cp_dump.strings. */
struct cp_dump_goroutine {
	int64_t id;
	const char *status;		/* the target's gStatusStrings: "waiting", "running" */
	const char *wait_reason;	/* the target's waitReasonStrings; NULL when none */
	int64_t wait_minutes;		/* as Go's dump counts them; -1 when unknown */
	bool locked_to_thread;
	int tid;			/* the thread running it, in a syscall or locked; 0 = null */
	struct cp_frame *frames;	/* owned; as Go's dump shows them (runtime internals hidden) */
	size_t nframes;
	/*
	 * With --group: owned; every frame but wrappers, as Go's goroutine profile records them
	 * (pc: runtime.CallersFrames' Frame.PC, entry_offset from the physical function's entry).
	 */
	struct cp_frame *stack;
	size_t nstack;
	struct cp_frame created_by;	/* function NULL: none */
	int64_t parent_id;		/* the goroutine that created it; 0 = unknown */
	uint64_t waiting_chan;		/* the channel it waits on, 0 = none */
	bool torn;			/* it moved while read, again and again: frames may be wrong */
	bool from_thread;		/* running: frames from its thread's stack */
};

struct cp_dump_group {
	size_t count;
	int *tids;		/* owned */
	size_t first;		/* index of a representative thread */
};

/* A group of threads with one stack that looks like a leak, with the evidence. */
struct cp_dump_leak {
	size_t first;		/* index of a representative thread */
	size_t count;
	int *tids;		/* owned */
	struct cp_leak_verdict verdict;
	size_t grown;		/* threads the group gained since the first look of --stuck */
};

struct cp_dump {
	int pid;
	int ns_pid;		/* pid in the process's own PID namespace; 0: same as pid */
	char *exe;
	char **cmdline;		/* NULL-terminated */
	uint64_t time_ns;	/* wall clock at the start of the dump */
	struct cp_dump_thread *threads;
	size_t nthreads;
	struct cp_dump_group *groups;	/* NULL unless grouped */
	size_t ngroups;
	struct cp_dump_leak *leaks;	/* owned; groups judged leaks (text dump's LEAK? lines) */
	size_t nleaks, leaks_alloc;
	struct cp_deadlock *deadlocks;	/* owned */
	size_t ndeadlocks;
	struct cp_fd_counts fds;
	bool has_fds;
	int stuck_seconds;	/* 0 unless --stuck */
	bool process_exited;	/* the target exited during the dump */
	int tracer_pid;		/* another process traced it (gdb, strace): its pid, or 0 */
	char tracer_name[CP_COMM_LEN];
	uint64_t max_stop_ns;	/* longest single-thread stop */
	uint64_t total_stop_ns;
	size_t ncaptured;	/* threads whose registers and stack were copied */
	uint64_t capture_ns;	/* wall time of the capture phase (first to last capture) */
	uint64_t unwind_ns;	/* wall time of the unwinding, symbolizing, classifying */
	uint64_t symbolize_ns;
	uint64_t classify_ns;
	bool switch_records;	/* captures trusted the CPUs' context-switch records */
	int kernel_error;	/* --kernel: 0, or why /proc/.../stack could not be read */
	struct cp_strtab strings;	/* module paths the frames point to */
	bool has_strings;
	/*
	 * The stacks of cp_dump_opts.extra, unwound and symbolized against this dump's maps:
	 * tid, frames, truncated and unwind_error set; owned; NULL when none were given.
	 */
	struct cp_dump_thread *extra;
	size_t nextra;
	/*
	 * Go programs: the runtime's version (NULL: not Go) and the goroutines Go's own dump
	 * shows, in the runtime's order; go_error says why they could not be read (go_why).
	 */
	const char *go_version;
	struct cp_dump_goroutine *goroutines;
	size_t ngoroutines;
	size_t go_hidden;	/* runtime goroutines left out, as Go's dump leaves them */
	uint64_t go_ns;		/* wall time of reading the runtime and its goroutines */
	int go_error;
	char go_why[160];
	/*
	 * The diagnosis of a Go program's goroutines (dump_go_diag.c, docs/FORMATS.md): likely
	 * leaks (with the frame that created each group), the channels waited on, the network
	 * waits, and the goroutines all asleep for good (NULL when not). Owned.
	 */
	struct cp_go_leak *go_leaks;
	struct cp_frame *go_leak_sites;
	size_t ngo_leaks;
	struct cp_go_chan *go_chans;
	size_t ngo_chans;
	struct cp_go_netwait *go_netwaits;
	size_t ngo_netwaits;
	int64_t *go_deadlock;
	size_t ngo_deadlock;
	long go_timers;		/* timers pending in the runtime; -errno when unknown */
	bool go_watched;	/* --stuck: the goroutines were read at the first look too */
	bool go_diagnosed;	/* the fields above were filled */
};

enum cp_dump_flags {
	CP_DUMP_KERNEL = 1u << 0,	/* read kernel stacks */
	CP_DUMP_GROUP = 1u << 1,	/* build groups */
	CP_DUMP_STOP_ALL = 1u << 2,	/* stop every thread to capture it */
	/* Judge large groups of threads with one stack as leaks (leaks, the text's LEAK?). */
	CP_DUMP_LEAKS = 1u << 3,
};

struct cp_dump_opts {
	unsigned int flags;		/* enum cp_dump_flags */
	int stuck_seconds;		/* 0 = off */
	size_t stack_max;		/* 0 = default */
	/*
	 * Borrowed, may be NULL. Set (by a signal handler) to abandon the dump: cp_dump_take
	 * then lets every thread go and returns -EINTR.
	 */
	volatile sig_atomic_t *cancel;
	/*
	 * Borrowed, may be NULL: copies of stacks taken earlier in this process (the stacks
	 * that created its threads, for record --leaks), to unwind and symbolize as the dump's
	 * own (cp_dump.extra).
	 */
	const struct cp_thread_snap *const *extra;
	size_t nextra;
};

struct cp_symbolizer;
struct cp_thread_snap;

/*
 * Take a dump of pid. sym is borrowed (its cache may be shared across dumps) and must outlive
 * the dump: frames point to its strings. Threads are sorted by tid.
 * Returns 0 or -errno: -ESRCH no such process, -EPERM not allowed, -EINVAL kernel thread,
 * -EINTR cancelled through opts->cancel. A process another one traces (gdb, strace) is dumped
 * without any stop (tracer_pid says by whom): a thread that ran throughout, which only a stop
 * could take, is listed without a stack (capture_error -EBUSY). out is written only on
 * success; on every path no thread is left stopped or traced (by cprof). A process that exits during the dump still gives a dump (process_exited set) when
 * at least one thread was captured.
 */
int cp_dump_take(int pid, const struct cp_dump_opts *opts, struct cp_symbolizer *sym,
		 struct cp_dump *out);
void cp_dump_release(struct cp_dump *dump);

/* Merge threads with identical stacks and wait kind (--group; docs/FORMATS.md). */
int cp_dump_group(struct cp_dump *dump);
/*
 * The same grouping without touching dump: *out (caller frees each tids, then the array) is
 * sorted by count, largest first. 0 or -ENOMEM.
 */
int cp_dump_group_compute(const struct cp_dump *dump, struct cp_dump_group **out, size_t *nout);
/* Same wait kind and the same pcs, frame by frame. */
bool cp_dump_same_stack(const struct cp_dump_thread *a, const struct cp_dump_thread *b);
/*
 * Find deadlock cycles and locks held by vanished owners among the threads' lock waits
 * (cp_deadlock_find); earlier findings are replaced. 0, -EINVAL (dump NULL) or -ENOMEM.
 */
int cp_dump_find_deadlocks(struct cp_dump *dump);

/* Helpers the writers share. */
struct cp_dump_wait_count {
	enum cp_wait_kind kind;
	size_t count;
};
/* Threads per wait kind, most frequent first; out has room for CP_WAIT__COUNT. Returns n. */
size_t cp_dump_count_by_wait(const struct cp_dump *dump, struct cp_dump_wait_count *out);
/* "2026-11-27T15:00:00Z" */
void cp_dump_format_time(uint64_t wall_ns, char *buf, size_t size);
/* An unbounded wait on a socket, pipe or child: the classic cause of leaked threads. */
bool cp_dump_wait_unbounded(const struct cp_wait *w);

/*
 * One thread of dump as the text dump shows it (its line and frames), and its frames alone
 * (as the JSON's "frames" array), appended to sb: for writers built on dumps (leaks at exit).
 */
struct cp_strbuf;
void cp_dump_text_thread(const struct cp_dump *dump, const struct cp_dump_thread *th,
			 struct cp_strbuf *sb);
void cp_dump_text_frames(const struct cp_dump_thread *th, struct cp_strbuf *sb);
/* The JSON object of one thread (section "JSON"), and the frames array alone. */
void cp_dump_json_thread(const struct cp_dump_thread *th, struct cp_strbuf *sb);
void cp_dump_json_frames(const struct cp_dump_thread *th, struct cp_strbuf *sb);

/* Go programs: the goroutines as Go's debug=2 text, or with --group its debug=1 form. */
void cp_dump_text_goroutines(const struct cp_dump *dump, struct cp_strbuf *sb);
/* The JSON "goroutines" array (null when not a Go program). */
void cp_dump_json_goroutines(const struct cp_dump *dump, struct cp_strbuf *sb);
/*
 * The Go diagnosis in text: the likely leaks and network waits without a deadline (after the
 * header), the channels and the deadlock (at the end); nothing when not a Go program.
 */
void cp_dump_text_go_diag_head(const struct cp_dump *dump, struct cp_strbuf *sb);
void cp_dump_text_go_diag_tail(const struct cp_dump *dump, struct cp_strbuf *sb);
/* The JSON fields go_leaks, go_channels and go_net_waits (each null when not Go). */
void cp_dump_json_go_diag(const struct cp_dump *dump, struct cp_strbuf *sb);
/* The deadlock entry of the goroutines (after a comma when first is false); none: nothing. */
void cp_dump_json_go_deadlock(const struct cp_dump *dump, struct cp_strbuf *sb, bool first);
/* The JSON frame list of section "JSON" for any frames. */
void cp_dump_json_frame_list(struct cp_strbuf *sb, const struct cp_frame *fr, size_t n);

/* Writers. color: ANSI colours (text only). 0 or -errno. */
int cp_dump_write_text(const struct cp_dump *dump, FILE *f, bool color);
int cp_dump_write_json(const struct cp_dump *dump, FILE *f);

#endif
