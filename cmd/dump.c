/* cprof dump: every thread of a process, its stack and why it is blocked. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/syscall.h>

#include "common.h"
#include "dump.h"
#include "proc.h"
#include "symbolize.h"
#include "util.h"

/* --stuck longer than this is a typo, not a plan. */
#define STUCK_MAX_SECONDS 3600

static const char usage_text[] =
	"usage: cprof dump -p PID [--format text|json] [--group] [--kernel] [--stuck SECONDS]\n"
	"                  [-o FILE]\n"
	"\n"
	"Print every thread of a running process: its name, state, why it is blocked (mutex\n"
	"held by which thread, socket read without a timeout, sleep...) and its stack,\n"
	"symbolized from DWARF. Each thread is stopped only for the copy of its registers and\n"
	"stack, one at a time, then let go.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID          the process to dump\n"
	"  -f, --format FORMAT    text (default) or json\n"
	"  -g, --group            merge threads with the same stack and wait kind\n"
	"  -k, --kernel           add each thread's kernel stack (root only)\n"
	"  -s, --stuck SECONDS    look twice, SECONDS apart, and mark the threads that made\n"
	"                         no progress (no CPU time, no context switch) in between\n"
	"  -o, --output FILE      write to FILE instead of standard output ('-' = stdout)\n"
	"  -v, --verbose          print timings (wall time, per-thread stop time) on stderr\n"
	"  -h, --help             show this help\n"
	"\n"
	"Examples:\n"
	"  cprof dump -p 4242                      what is every thread doing?\n"
	"  cprof dump -p 4242 --group              one entry per distinct stack (leaks)\n"
	"  cprof dump -p 4242 --stuck 5            which threads are hung?\n"
	"  cprof dump -p 4242 --format json -o dump.json\n";

enum dump_format {
	FORMAT_TEXT,
	FORMAT_JSON,
};

struct dump_options {
	const char *pid_arg;
	enum dump_format format;
	bool group;
	bool kernel;
	int stuck_seconds;
	const char *output;
	bool verbose;
};

static const struct option long_options[] = {
	{ "pid", required_argument, NULL, 'p' },
	{ "format", required_argument, NULL, 'f' },
	{ "group", no_argument, NULL, 'g' },
	{ "kernel", no_argument, NULL, 'k' },
	{ "stuck", required_argument, NULL, 's' },
	{ "output", required_argument, NULL, 'o' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* 0, or the exit code for a bad command line (already reported). */
static int parse_options(int argc, char **argv, struct dump_options *o)
{
	int c;
	long v;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":p:f:gks:o:vh", long_options, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cp_cmd_pid_option("dump", optarg, &o->pid_arg))
				return CP_EXIT_USAGE;
			break;
		case 'f':
			if (!strcmp(optarg, "text")) {
				o->format = FORMAT_TEXT;
			} else if (!strcmp(optarg, "json")) {
				o->format = FORMAT_JSON;
			} else {
				cp_error("dump", "invalid --format '%s': expected text or json",
					 optarg);
				return CP_EXIT_USAGE;
			}
			break;
		case 'g':
			o->group = true;
			break;
		case 'k':
			o->kernel = true;
			break;
		case 's':
			if (cp_parse_long(optarg, 1, STUCK_MAX_SECONDS, &v) < 0) {
				cp_error("dump",
					 "invalid --stuck '%s': expected whole seconds, 1 to %d",
					 optarg, STUCK_MAX_SECONDS);
				return CP_EXIT_USAGE;
			}
			o->stuck_seconds = (int)v;
			break;
		case 'o':
			if (!*optarg) {
				cp_error("dump", "invalid -o '': expected a file name or '-'");
				return CP_EXIT_USAGE;
			}
			o->output = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case ':':
			cp_error("dump", "option '%s' needs a value", argv[optind - 1]);
			cp_hint("run 'cprof dump --help'");
			return CP_EXIT_USAGE;
		default:
			if (optopt)
				cp_error("dump", "unknown option '-%c'", optopt);
			else
				cp_error("dump", "unknown option '%s'", argv[optind - 1]);
			cp_hint("run 'cprof dump --help'");
			return CP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cp_error("dump", "unexpected argument '%s'", argv[optind]);
		cp_hint("run 'cprof dump --help'");
		return CP_EXIT_USAGE;
	}
	return 0;
}

static void install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a read of /proc or a sleep should end early when asked to stop. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void report_take_error(int pid, int err)
{
	char what[64];

	snprintf(what, sizeof(what), "pid %d", pid);
	switch (err) {
	case -ESRCH:
	case -ENOENT:
		cp_error(what, "no such process (it exited before any thread was captured)");
		break;
	case -EINVAL:
		cp_error(what, "is a kernel thread: it has no user stack to dump");
		break;
	case -EINTR:
		cp_error("dump", "interrupted by %s; every thread was let go, nothing written",
			 stop_signal == SIGINT	  ? "SIGINT"
			 : stop_signal == SIGTERM ? "SIGTERM"
			 : stop_signal == SIGHUP  ? "SIGHUP"
						  : "a signal");
		break;
	case -EPERM:
	case -EACCES:
		cp_cmd_explain_attach_error("dump", pid, err, 0);
		break;
	default:
		cp_error(what, "cannot dump: %s", strerror(-err));
		break;
	}
}

/*
 * For bench/run.py: CPROF_STATS=1 prints one machine-readable line per dump, and
 * CPROF_BENCH_REPEAT=N takes the dump N times in one process (warm symbol caches).
 */
static int bench_repeat(void)
{
	const char *s = getenv("CPROF_BENCH_REPEAT");
	long n;

	if (!s || cp_parse_long(s, 1, 100, &n) < 0)
		return 1;
	return (int)n;
}

/*
 * Ask for a short time slice (a normal task's sched_runtime, Linux 6.12+): a dump works for
 * tens of milliseconds without sleeping, and on a machine with few CPUs the target's threads
 * that wake meanwhile would wait for a CPU; with it they get one within 100 us. Older kernels
 * ignore or refuse it, which changes nothing else.
 */
static void short_time_slice(void)
{
	/* struct sched_attr of sched_setattr(2); <linux/sched/types.h> clashes with <sched.h>. */
	struct {
		uint32_t size;
		uint32_t sched_policy;
		uint64_t sched_flags;
		int32_t sched_nice;
		uint32_t sched_priority;
		uint64_t sched_runtime;
		uint64_t sched_deadline;
		uint64_t sched_period;
	} a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.sched_policy = SCHED_OTHER;
	a.sched_runtime = 100000;
	(void)syscall(SYS_sched_setattr, 0, &a, 0);
}

/*
 * Heap a dump of pid will touch, roughly: 512 KiB (symbolizer tables, output buffers) and
 * 2 KiB a thread (its results; stack copies are reused batch after batch). It errs low: a
 * page populated but never touched is pure cost.
 */
static size_t heap_estimate(int pid)
{
	char path[64], text[4096];
	const char *p;
	long threads = 1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (cp_read_file(path, text, sizeof(text), NULL) == 0 &&
	    (p = strstr(text, "\nThreads:\t")) != NULL)
		threads = strtol(p + 10, NULL, 10);
	if (threads < 1 || threads > CP_MAX_THREADS)
		threads = 1;
	return (512u << 10) + (size_t)threads * (2u << 10);
}

static void print_stats(const struct cp_dump *d, uint64_t wall_ns)
{
	size_t stopped = 0, sampled = 0;

	for (size_t i = 0; i < d->nthreads; i++) {
		stopped += d->threads[i].stopped;
		sampled += d->threads[i].sampled;
	}
	cp_note("stats: dump_us=%llu threads=%zu captured=%zu max_stop_us=%llu avg_stop_us=%llu "
		"stopped=%zu sampled=%zu capture_us=%llu unwind_us=%llu symbolize_us=%llu classify_us=%llu "
		"heap_kb=%zu switch_records=%d go_us=%llu goroutines=%zu",
		(unsigned long long)(wall_ns / 1000), d->nthreads, d->ncaptured,
		(unsigned long long)(d->max_stop_ns / 1000),
		(unsigned long long)(stopped ? d->total_stop_ns / stopped / 1000 : 0), stopped, sampled,
		(unsigned long long)(d->capture_ns / 1000),
		(unsigned long long)(d->unwind_ns / 1000),
		(unsigned long long)(d->symbolize_ns / 1000),
		(unsigned long long)(d->classify_ns / 1000),
		(mallinfo2().arena + mallinfo2().hblkhd) >> 10, d->switch_records,
		(unsigned long long)(d->go_ns / 1000), d->ngoroutines);
}

static int write_dump(const struct cp_dump *dump, const struct dump_options *o,
		      struct cp_output *out)
{
	bool color = false;
	int err;

	if (o->format == FORMAT_TEXT && out->f == stdout && !getenv("NO_COLOR"))
		color = isatty(STDOUT_FILENO) == 1;
	if (o->format == FORMAT_JSON)
		err = cp_dump_write_json(dump, out->f);
	else
		err = cp_dump_write_text(dump, out->f, color);
	return err;
}

/* What the symbolizer left undone and why (a module whose DWARF was too large to read). */
static void print_sym_notes(const struct cp_symbolizer *sym)
{
	const char *notes[8];
	size_t n = cp_sym_notes(sym, notes, CP_ARRAY_SIZE(notes));

	for (size_t i = 0; i < n && i < CP_ARRAY_SIZE(notes); i++)
		cp_note("note: %s", notes[i]);
}

int cmd_dump(int argc, char **argv)
{
	struct dump_options o = {
		.pid_arg = NULL,
		.format = FORMAT_TEXT,
		.output = "-",
	};
	struct cp_dump dump = { 0 };
	struct cp_output out = { 0 };
	struct cp_symbolizer *sym = NULL;
	struct cp_dump_opts dopts = { 0 };
	bool opened = false;
	uint64_t t0 = 0;
	int pid = 0, repeat, rc, err = 0;

	rc = parse_options(argc, argv, &o);
	if (rc)
		goto done;	/* -1: --help */
	/* Before anything that needs undoing (the temporary output file, stopped threads). */
	install_handlers();
	rc = cp_cmd_check_pid("dump", o.pid_arg, true, &pid);
	if (rc)
		goto done;

	/* Open the output first: an unwritable path fails before any thread is touched. */
	rc = CP_EXIT_FAILURE;
	if (cp_output_open(&out, "dump", o.output) < 0)
		goto done;
	opened = true;
	if (o.verbose)
		cp_cmd_note_cache();
	sym = cp_sym_new();
	if (!sym) {
		cp_error("dump", "out of memory");
		goto done;
	}
	/*
	 * The dump's helper threads each allocate a stack copy per thread they capture; in
	 * arenas of their own glibc grows the heap a page at a time (an mprotect each). One
	 * arena, grown in large steps, is cheaper for this short-lived process.
	 */
	mallopt(M_ARENA_MAX, 1);
	short_time_slice();
	cp_heap_prefault(heap_estimate(pid));
	dopts.flags = (o.group ? CP_DUMP_GROUP : 0) | (o.kernel ? CP_DUMP_KERNEL : 0) |
		      (o.format == FORMAT_TEXT ? CP_DUMP_LEAKS : 0);
	dopts.stuck_seconds = o.stuck_seconds;
	dopts.cancel = &stop_signal;
	if (o.stuck_seconds && cp_stderr_is_tty())
		cp_note("watching pid %d for %d s...", pid, o.stuck_seconds);
	repeat = bench_repeat();
	for (int i = 0; i < repeat; i++) {
		/* Bench runs take it again with the warm symbolizer; the last one is written. */
		cp_dump_release(&dump);
		t0 = cp_now_ns();
		err = cp_dump_take(pid, &dopts, sym, &dump);
		if (err < 0) {
			report_take_error(pid, err);
			goto done;
		}
		if (getenv("CPROF_STATS"))
			print_stats(&dump, cp_now_ns() - t0);
	}
	if (o.verbose) {
		uint64_t wall = cp_now_ns() - t0 - (uint64_t)o.stuck_seconds * 1000000000ull;
		size_t nstopped = 0;

		for (size_t i = 0; i < dump.nthreads; i++)
			nstopped += dump.threads[i].stopped;

		cp_note("dump of %zu threads (%zu captured) took %.1f ms (captures %.1f ms); "
			"stop per thread: max %.1f us, avg %.1f us",
			dump.nthreads, dump.ncaptured, wall / 1e6, dump.capture_ns / 1e6,
			dump.max_stop_ns / 1e3,
			nstopped ? dump.total_stop_ns / 1e3 / nstopped : 0.0);
	}
	if (stop_signal) {
		report_take_error(pid, -EINTR);
		goto done;
	}
	if (o.kernel && dump.kernel_error)
		cp_note("note: kernel stacks unavailable (/proc/%d/task/*/stack: %s)%s", pid,
			strerror(-dump.kernel_error),
			geteuid() != 0 ? "; reading them needs root" : "");
	print_sym_notes(sym);
	if (dump.process_exited)
		cp_note("pid %d: process exited during the dump; showing the threads captured "
			"before",
			pid);
	if (write_dump(&dump, &o, &out) < 0) {
		cp_error(strcmp(o.output, "-") ? o.output : "standard output", "write failed: %s",
			 strerror(out.err ? -out.err : EIO));
		goto done;
	}
	opened = false;
	if (cp_output_commit(&out, "dump") < 0)
		goto done;
	if (strcmp(o.output, "-"))
		cp_note("wrote %s", o.output);
	rc = CP_EXIT_OK;
done:
	if (opened)
		cp_output_abort(&out);
	cp_dump_release(&dump);
	cp_sym_free(sym);
	/*
	 * The handlers stay until cprof exits: a signal that lands between a complete output and
	 * the exit must not turn a success into death by signal.
	 */
	return rc < 0 ? CP_EXIT_OK : rc;
}
