/* cprof attach: CPU-profile running processes with perf events for a while, then write it. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach_go.h"
#include "common.h"
#include "proc.h"
#include "profiling.h"
#include "sampler.h"
#include "session.h"
#include "util.h"

#define MAX_PIDS 64

static const char usage_text[] =
	"usage: cprof attach -p PID[,PID...] [--seconds N] [-F HZ] [--unwind dwarf|fp]\n"
	"                    [--profile cpu|wall|block|mutex|threadcreate|heap|allocs|goroutine]\n"
	"                    [--rate BYTES] [--native]\n"
	"                    [--format pprof|folded|svg|text] [-o FILE]\n"
	"\n"
	"CPU-profile running processes: sample every thread (including threads created while\n"
	"profiling) HZ times a second of CPU time, with perf events; unwind and symbolize each\n"
	"sample; write a pprof profile (or folded stacks, a flame graph, a top table). The\n"
	"targets are not stopped or traced. Ctrl-C ends early and still writes the profile.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID[,PID...]  the processes to profile\n"
	"  -s, --seconds N         how long to sample (default 10; decimals allowed); 0 with a\n"
	"                          Go program's heap, allocs, block or mutex: the records as\n"
	"                          they are now (else the difference over N s)\n"
	"  -F, --freq HZ           samples per second of CPU time per thread (default 99)\n"
	"  -u, --unwind MODE       dwarf (default): copy each sample's user stack and unwind it\n"
	"                          with DWARF CFI, complete through code without frame pointers;\n"
	"                          fp: the kernel's frame-pointer callchains (cheaper, shallower)\n"
	"      --stack-size BYTES  user stack copied per sample in dwarf mode (default 8192,\n"
	"                          512 to 65000); deeper stacks end in [truncated]: raise it\n"
	"                          for deep recursion (a larger copy costs the target more)\n"
	"      --no-kernel         leave out kernel frames\n"
	"      --profile TYPE      cpu (default): where CPU time goes; wall: every thread at\n"
	"                          -F Hz on CPU or not (label state); block: time off CPU, not\n"
	"                          preempted, at the blocking stack (label wait); threadcreate:\n"
	"                          the stacks that created threads (clone, clone3); mutex:\n"
	"                          waits for pthread mutexes and rwlocks, charged to the stack\n"
	"                          that released the lock (label waiter); heap: allocations\n"
	"                          made from now on that are still in use at the end (one\n"
	"                          process; loads cprof's sampler library into it, and turns\n"
	"                          it off at the end); allocs: the same, all allocations;\n"
	"                          goroutine: threads by stack. On a Go program, heap,\n"
	"                          allocs, block, mutex and goroutine are read from its\n"
	"                          runtime's own records, as its\n"
	"                          /debug/pprof would serve them (nothing is injected; block\n"
	"                          and mutex when the program enabled them)\n"
	"      --rate BYTES        heap, allocs: mean bytes allocated between samples\n"
	"                          (default 524288, Go's MemProfileRate; 1 = every allocation)\n"
	"      --mutex-waiters     mutex: charge the waits to the waiters' stacks instead\n"
	"      --native            block, mutex of a Go program: sample its threads as for a\n"
	"                          native program instead of reading its runtime\n"
	"  -f, --format FORMAT     pprof (default, gzipped profile.proto), folded, svg, text\n"
	"  -o, --output FILE       where to write (default cprof-PID-YYYYmmdd-HHMMSS.EXT; '-' =\n"
	"                          standard output)\n"
	"  -v, --verbose           print sampling statistics and cprof's own CPU cost\n"
	"  -h, --help              show this help\n"
	"\n"
	"Examples:\n"
	"  cprof attach -p 4242                         10 s profile to cprof-4242-*.pb.gz\n"
	"  cprof attach -p 4242 --seconds 30 -F 999 -o cpu.pb.gz\n"
	"  cprof attach -p 4242,4243 --format svg -o flame.svg\n"
	"  cprof attach -p 4242 --profile heap --seconds 60 -o heap.pb.gz\n"
	"  cprof attach -p 4242 --profile heap --seconds 0   a Go program's heap, at once\n"
	"  go tool pprof -http=: cpu.pb.gz\n";

/* The command line of cprof attach. */
struct attach_options {
	struct cp_prof_options prof;
	int pids[MAX_PIDS];	/* checked: exist, not zombies, not us; no duplicates */
	size_t npids;
};

static const struct option long_options[] = {
	{ "pid", required_argument, NULL, 'p' },
	CP_PROF_LONG_OPTS,
	{ NULL, 0, NULL, 0 },
};

/* The targets while they are sampled: which have exited. */
struct targets {
	const int *pids;
	size_t n;
	bool exited[MAX_PIDS];
	size_t nexited;
	char what[64];		/* "pid 4242" or "3 processes", for messages */
};

/* SIGINT, SIGTERM and SIGHUP: the first ends sampling early, the second abandons the file. */
static volatile sig_atomic_t stop_count;
static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
	stop_count++;
}

static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP };

static void catch_stop_signals(struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < CP_ARRAY_SIZE(stop_signals); i++)
		sigaction(stop_signals[i], &sa, &old[i]);
}

static void restore_stop_signals(const struct sigaction *old)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(stop_signals); i++)
		sigaction(stop_signals[i], &old[i], NULL);
}

/* Parse -p's "PID[,PID...]" into pids. 0 or an exit code (reported). */
static int parse_pids(const char *arg, int *pids, size_t *npids)
{
	if (!arg) {
		cp_error("attach", "missing -p PID");
		cp_hint("run 'cprof attach --help'");
		return CP_EXIT_USAGE;
	}
	return cp_cmd_parse_pids("attach", arg, pids, MAX_PIDS, npids);
}

/* A target has exited: gone, or a zombie waiting for its parent. */
static bool target_exited(int pid)
{
	return cp_proc_gone(pid, 0);
}

/*
 * An empty profile is valid but puzzling: say why. A stopped target (kill -STOP, a debugger)
 * runs no code, so cpu-clock events never fire.
 */
static void explain_no_samples(const int *pids, size_t npids, const bool *exited,
			       bool interrupted)
{
	bool said = false;

	for (size_t i = 0; i < npids; i++) {
		struct cp_task_stat st;

		if (exited[i] || cp_proc_read_stat(pids[i], 0, &st) < 0)
			continue;
		if (st.state == 'T' || st.state == 't') {
			cp_note("pid %d is stopped (state %c): it used no CPU while sampled",
				pids[i], st.state);
			said = true;
		}
	}
	if (said)
		return;
	if (interrupted)
		cp_note("no samples: stopped before the target used any CPU under sampling");
	else
		cp_note("no samples: the target used no CPU");
}

/* 0, -1 after --help, or the exit code for a bad command line (already reported). */
static int parse_options(int argc, char **argv, struct attach_options *o)
{
	const char *pid_arg = NULL;
	int c, rc;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":p:" CP_PROF_SHORT_OPTS, long_options, NULL)) != -1) {
		if (c == 'p') {
			rc = cp_cmd_pid_option("attach", optarg, &pid_arg);
			if (rc)
				return rc;
			continue;
		}
		if (c == 'h') {
			fputs(usage_text, stdout);
			return -1;
		}
		if (c == ':')
			return cp_prof_option_error("attach", c, argv);
		rc = cp_prof_parse_option("attach", c, optarg, &o->prof);
		if (rc > 0)
			return rc;
		if (rc < 0)
			return cp_prof_option_error("attach", c, argv);
	}
	if (optind < argc) {
		cp_error("attach", "unexpected argument '%s'", argv[optind]);
		cp_hint("to profile a command, use 'cprof record -- COMMAND'");
		return CP_EXIT_USAGE;
	}
	rc = cp_prof_check_options("attach", &o->prof);
	if (rc)
		return rc;
	rc = parse_pids(pid_arg, o->pids, &o->npids);
	if (rc == 0 && o->npids > 1 && cp_prof_is_heap(&o->prof)) {
		cp_error("attach", "--profile heap and allocs take one process (-p PID)");
		return CP_EXIT_USAGE;
	}
	return rc;
}

static void targets_init(struct targets *t, const int *pids, size_t n)
{
	memset(t, 0, sizeof(*t));
	t->pids = pids;
	t->n = n;
	if (n == 1)
		snprintf(t->what, sizeof(t->what), "pid %d", pids[0]);
	else
		snprintf(t->what, sizeof(t->what), "%zu processes", n);
}

/* Look at the targets again: true when all have exited. */
static bool targets_all_exited(struct targets *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (!t->exited[i] && target_exited(t->pids[i])) {
			t->exited[i] = true;
			t->nexited++;
		}
	}
	return t->nexited == t->n;
}

/*
 * Sample until the deadline, a stop signal or the exit of every target; then read what the
 * rings still hold, unless asked a second time to stop. 0 or -errno (reported).
 */
static int sample(struct cp_session *sess, const struct attach_options *o, struct targets *t)
{
	/* The events have counted since they were opened, before the setup that followed. */
	uint64_t deadline = cp_session_start_ns(sess) + (uint64_t)(o->prof.seconds * 1e9);
	uint64_t next_check = 0, now, wait;
	bool busy = false;
	int err;

	while (!stop_count) {
		now = cp_now_ns();
		if (now >= deadline)
			break;
		if (now >= next_check) {
			if (targets_all_exited(t))
				break;
			cp_prof_progress(t->what, (double)(deadline - now) / 1e9, sess);
			next_check = now + 250000000ull;
		}
		/*
		 * No waiting while records are left over from the last call; else until the
		 * next look at the targets (every wakeup costs CPU: the rings wake us when
		 * half full, and a signal interrupts the wait).
		 */
		now = cp_now_ns();
		wait = next_check > now ? (next_check - now + 999999) / 1000000 : 0;
		if (deadline > now && (deadline - now + 999999) / 1000000 < wait)
			wait = (deadline - now + 999999) / 1000000;
		err = cp_session_poll(sess, busy ? 0 : (int)wait);
		busy = err == 1;
		if (err < 0) {
			cp_prof_progress_clear();
			cp_error("attach", "reading samples failed: %s",
				 cp_session_error(sess) ? cp_session_error(sess) : strerror(-err));
			return err;
		}
	}
	cp_session_disable(sess);
	while (stop_count < 2 && cp_session_poll(sess, 0) == 1)
		;
	cp_prof_progress_clear();
	return 0;
}

/* Say how the sampling ended and write the profile. The exit code. */
static int finish(struct cp_session *sess, const struct attach_options *o,
		  const struct targets *t)
{
	struct cp_session_stats st;

	cp_session_get_stats(sess, &st);
	if (stop_count >= 2) {
		cp_error("attach", "interrupted twice by %s: stopped without writing a profile",
			 strsignal(stop_sig));
		return 128 + stop_sig;
	}
	if (stop_count)
		cp_note("stopped by %s after %.1f s", strsignal(stop_sig),
			(cp_now_ns() - cp_session_start_ns(sess)) / 1e9);
	/* All gone before anything was captured: one error line, no note that contradicts it. */
	if (t->nexited == t->n && st.samples == 0) {
		cp_error(t->what, "exited before any sample was captured; nothing written");
		return CP_EXIT_FAILURE;
	}
	for (size_t i = 0; i < t->n; i++)
		if (t->exited[i])
			cp_note("pid %d exited during profiling; the profile covers its life "
				"until then",
				t->pids[i]);
	if (st.samples == 0 && o->prof.type == CP_SESSION_CPU)
		explain_no_samples(t->pids, t->n, t->exited, stop_count != 0);
	if (cp_prof_write("attach", sess, &o->prof, t->pids[0], &stop_count) < 0)
		return stop_count >= 2 ? 128 + stop_sig : CP_EXIT_FAILURE;
	return CP_EXIT_OK;
}

int cmd_attach(int argc, char **argv)
{
	struct attach_options o = {
		.prof = {
			.seconds = 10,
			.hz = 99,
			.dwarf = true,
			.kernel = true,
			.format = CP_PROFILE_PPROF,
		},
	};
	struct cp_session_opts so = { 0 };
	struct cp_session *sess = NULL;
	struct sigaction old[CP_ARRAY_SIZE(stop_signals)];
	struct targets t;
	bool caught = false;
	int rc, err;

	rc = parse_options(argc, argv, &o);
	if (rc)
		goto out;
	targets_init(&t, o.pids, o.npids);
	if (cp_prof_check_output("attach", &o.prof, o.pids[0]) < 0) {
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	catch_stop_signals(old);
	caught = true;
	rc = cp_attach_snapshot(&o.prof, o.pids, o.npids, &stop_count);
	if (rc >= 0)
		goto out;
	if (o.prof.seconds == 0) {
		cp_error("attach", "invalid --seconds '0': only a snapshot is taken at once (a Go "
				   "program's heap, allocs, block or mutex profile, or goroutine)");
		rc = CP_EXIT_USAGE;
		goto out;
	}
	so.pids = o.pids;
	so.npids = o.npids;
	cp_prof_session_opts(&o.prof, &so);
	if (o.prof.verbose)
		cp_cmd_note_cache();
	err = cp_session_new(&so, &sess);
	if (err < 0) {
		cp_prof_explain_open_error("attach", o.pids[0], err, &o.prof);
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	cp_prof_note_kernel_refused(sess, &o.prof);
	if (cp_prof_is_heap(&o.prof))
		cp_note("allocation sampler started in pid %d: one sample every %llu bytes on "
			"average, for %g s",
			o.pids[0], (unsigned long long)(o.prof.rate ? o.prof.rate : 524288),
			o.prof.seconds);
	rc = sample(sess, &o, &t) < 0 ? CP_EXIT_FAILURE : finish(sess, &o, &t);
out:
	cp_session_free(sess);
	if (caught)
		restore_stop_signals(old);
	return rc < 0 ? CP_EXIT_OK : rc;
}
