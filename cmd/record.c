/* cprof record: run a command under the CPU profiler and pass its exit status through. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "common.h"
#include "heap_agent.h"
#include "inject.h"
#include "profiling.h"
#include "record_watch.h"
#include "sampler.h"
#include "tracer.h"
#include "session.h"
#include "util.h"

static const char usage_text[] =
	"usage: cprof record [--seconds N] [-F HZ] [--unwind dwarf|fp]\n"
	"                    [--profile cpu|wall|block|mutex|threadcreate|heap|allocs|none]\n"
	"                    [--rate BYTES]\n"
	"                    [--format pprof|folded|svg|text] [-o FILE]\n"
	"                    [--timeout S [--kill-after S2]] [--leaks] [--leaks-json FILE]\n"
	"                    [--fail-on-leak] -- COMMAND [ARGS...]\n"
	"\n"
	"Run COMMAND and CPU-profile it, its threads and the processes it starts, until it\n"
	"exits (or --seconds pass: then the profile is written and cprof waits for COMMAND).\n"
	"COMMAND's standard input, output and error are its own, except with '-o -': then\n"
	"the profile alone goes to standard output and COMMAND's output to standard error.\n"
	"cprof exits with COMMAND's exit status (128+N if it died of signal N), so it can\n"
	"wrap commands in CI scripts.\n"
	"\n"
	"Options:\n"
	"  -s, --seconds N         stop profiling after N seconds (default: when COMMAND exits)\n"
	"  -F, --freq HZ           samples per second of CPU time per thread (default 99)\n"
	"  -u, --unwind MODE       dwarf (default) or fp; see 'cprof attach --help'\n"
	"      --stack-size BYTES  user stack copied per sample in dwarf mode (default 8192,\n"
	"                          512 to 65000); deeper stacks end in [truncated]\n"
	"      --no-kernel         leave out kernel frames\n"
	"      --profile TYPE      cpu (default): where CPU time goes; wall: every thread at\n"
	"                          -F Hz on CPU or not (label state); block: time off CPU, not\n"
	"                          preempted, at the blocking stack (label wait); threadcreate:\n"
	"                          the stacks that created threads (clone, clone3); mutex:\n"
	"                          waits for pthread mutexes and rwlocks, charged to the stack\n"
	"                          that released the lock (label waiter); heap: COMMAND's\n"
	"                          allocations still in use at the end, allocs: all of them\n"
	"                          (COMMAND's own process, from its start: cprof's sampler\n"
	"                          library is preloaded); none: no profile, only --timeout\n"
	"                          and --leaks\n"
	"      --rate BYTES        heap, allocs: mean bytes allocated between samples\n"
	"                          (default 524288; 1 = every allocation)\n"
	"      --mutex-waiters     mutex: charge the waits to the waiters' stacks instead\n"
	"  -f, --format FORMAT     pprof (default), folded, svg, text\n"
	"  -o, --output FILE       where to write (default cprof-PID-YYYYmmdd-HHMMSS.EXT in the\n"
	"                          current directory; '-' = standard output)\n"
	"      --timeout S         after S seconds dump every thread of every process of\n"
	"                          COMMAND's tree (stderr; JSON in NAME.hang.json next to the\n"
	"                          profile), send SIGTERM, and exit 124 as timeout(1)\n"
	"      --kill-after S2     then SIGKILL after S2 more seconds (default 10)\n"
	"      --leaks             as each process of COMMAND exits, report the threads still\n"
	"                          alive (never joined), with the stacks that created them, and\n"
	"                          the fds opened since it started (traces COMMAND with ptrace;\n"
	"                          COMMAND does not outlive cprof)\n"
	"      --leaks-json FILE   also write the leaks as JSON (implies --leaks)\n"
	"      --fail-on-leak      exit 3 when something leaked and COMMAND succeeded\n"
	"  -v, --verbose           print sampling statistics and cprof's own CPU cost\n"
	"  -h, --help              show this help\n"
	"\n"
	"Examples:\n"
	"  cprof record -o prof.pb.gz -- ./bench --iterations 1000\n"
	"  cprof record --format svg -o flame.svg -- make -j4\n"
	"  cprof record --seconds 30 -- ./server      profile the first 30 s of a server\n"
	"  cprof record --profile heap -o heap.pb.gz -- ./server\n"
	"  cprof record --timeout 600 --leaks --fail-on-leak -o prof.pb.gz -- ./unit_tests\n";

/* The command line of cprof record. */
struct record_options {
	struct cp_prof_options prof;
	bool profile;		/* false with --profile none: no profile is taken */
	struct record_watch watch;	/* --timeout, --kill-after, --leaks... */
	char **command;		/* COMMAND [ARGS...], from argv */
	/* heap, allocs: LD_PRELOAD=... and CPROF_AGENT=... for COMMAND, else empty */
	char preload[4200];
	char agent_env[160];
	/* heap, allocs: the socketpair the sampler hands its region over (ours, COMMAND's) */
	int agent_sock[2];
};

/* Long options of record alone (letters no shared option uses). */
enum {
	OPT_TIMEOUT = 0x100,
	OPT_KILL_AFTER,
	OPT_LEAKS,
	OPT_LEAKS_JSON,
	OPT_FAIL_ON_LEAK,
};

static const struct option long_options[] = {
	CP_PROF_LONG_OPTS,
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "kill-after", required_argument, NULL, OPT_KILL_AFTER },
	{ "leaks", no_argument, NULL, OPT_LEAKS },
	{ "leaks-json", required_argument, NULL, OPT_LEAKS_JSON },
	{ "fail-on-leak", no_argument, NULL, OPT_FAIL_ON_LEAK },
	{ NULL, 0, NULL, 0 },
};

/* A number of seconds for option name: > 0 (>= 0 with zero_ok), at most a day. */
static int parse_secs(const char *name, const char *arg, bool zero_ok, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (end == arg || *end || errno || v < 0 || (!zero_ok && v == 0) ||
	    v > CP_PROF_SECONDS_MAX) {
		cp_error("record", "invalid %s '%s': expected a %snumber of seconds up to %.0f",
			 name, arg, zero_ok ? "" : "positive ", CP_PROF_SECONDS_MAX);
		return CP_EXIT_USAGE;
	}
	*out = v;
	return 0;
}

/* Apply one of record's own options. 0, CP_EXIT_USAGE (reported), or -1: not one of them. */
static int parse_own_option(int c, const char *arg, struct record_options *o)
{
	switch (c) {
	case 'P':
		/* none is record's alone: the types are the shared option's. */
		o->profile = strcmp(arg, "none") != 0;
		return o->profile ? -1 : 0;
	case OPT_TIMEOUT:
		return parse_secs("--timeout", arg, false, &o->watch.timeout);
	case OPT_KILL_AFTER:
		return parse_secs("--kill-after", arg, true, &o->watch.kill_after);
	case OPT_LEAKS:
		o->watch.leaks = true;
		return 0;
	case OPT_LEAKS_JSON:
		o->watch.leaks = true;
		o->watch.leaks_json = arg;
		return 0;
	case OPT_FAIL_ON_LEAK:
		o->watch.leaks = true;
		o->watch.fail_on_leak = true;
		return 0;
	default:
		return -1;
	}
}

/* The command run under the profiler. */
struct child {
	pid_t pid;
	int go_fd;		/* one byte written here lets it exec; -1 once closed */
	int err_fd;		/* the exec's errno arrives here; EOF when the exec succeeded */
	int status;		/* its wait status once reaped */
	bool reaped;
	bool started;		/* it exec'd COMMAND */
};

static volatile sig_atomic_t stop_count;
static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t child_pid;

static void on_signal(int sig)
{
	stop_sig = sig;
	stop_count++;
	/*
	 * Ctrl-C reaches the command through the terminal by itself; a TERM or HUP sent to cprof
	 * alone is meant for the command too.
	 */
	if (sig != SIGINT && child_pid > 0)
		kill((pid_t)child_pid, sig);
}

/* Written by on_child, read (non-blocking) by the loop: no SIGCHLD is missed before a poll. */
static int wake_pipe[2] = { -1, -1 };

static void on_child(int sig)
{
	int e = errno;

	(void)sig;
	if (wake_pipe[1] >= 0 && write(wake_pipe[1], "c", 1) < 0) {
		/* full: a wakeup is pending anyway */
	}
	errno = e;
}

/* The signals caught while the command runs; SIGCHLD last. */
static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGCHLD };

static void catch_signals(struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	for (size_t i = 0; i + 1 < CP_ARRAY_SIZE(caught_signals); i++)
		sigaction(caught_signals[i], &sa, &old[i]);
	sa.sa_handler = on_child;
	/* Also the stops of a traced command (--leaks), which wait for cprof. */
	sa.sa_flags = 0;
	sigaction(SIGCHLD, &sa, &old[CP_ARRAY_SIZE(caught_signals) - 1]);
}

static void restore_signals(const struct sigaction *old)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(caught_signals); i++)
		sigaction(caught_signals[i], &old[i], NULL);
}

/* The exit code a shell would give for status. */
static int status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return CP_EXIT_FAILURE;
}

/*
 * How long to wait for samples before looking again: as long as nothing needs us, since every
 * wakeup costs CPU. The rings wake us when half full, the command's exit (SIGCHLD) through the
 * wake pipe, a signal interrupts the wait. The progress line on a terminal is redrawn every
 * 250 ms; without the pipe the exit is seen by looking every 100 ms.
 */
static int wait_ms(uint64_t now, uint64_t deadline, bool have_pidfd)
{
	uint64_t ms = !have_pidfd ? 100 : cp_stderr_is_tty() ? 250 : 1000;

	if (deadline && deadline > now && (deadline - now + 999999) / 1000000 < ms)
		ms = (deadline - now + 999999) / 1000000;
	return (int)ms;
}

/*
 * The child: wait for the go byte (events are set up by then), exec. On failure the errno
 * goes back through errfd (close-on-exec, so a successful exec closes it with nothing).
 */
static void child_main(int gofd, int errfd, const struct record_options *o, bool out_to_err,
		       bool leaks)
{
	char **cmd = o->command;
	char go;
	int e;

	if (read(gofd, &go, 1) != 1)
		_exit(127);
	close(gofd);
	/* With '-o -' our stdout carries the profile: the command's output must not mix in. */
	if (out_to_err && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		_exit(126);
	/* --leaks: exit_group stops for cprof from now on, so leave by SYS_exit below. */
	if (leaks && (e = -cp_tracer_child_prepare()) > 0)
		goto fail;
	/* heap: the sampler starts in COMMAND's constructors, for cprof to find. */
	if (o->preload[0] && (putenv((char *)o->preload) || putenv((char *)o->agent_env))) {
		e = ENOMEM;
		goto fail;
	}
	/* The sampler's end of the handover socket stays open across the exec. */
	if (o->agent_sock[1] >= 0 && fcntl(o->agent_sock[1], F_SETFD, 0) < 0) {
		e = errno;
		goto fail;
	}
	execvp(cmd[0], cmd);
	e = errno;
fail:
	if (write(errfd, &e, sizeof(e)) < 0)
		syscall(SYS_exit, 127);
	syscall(SYS_exit, e == ENOENT ? 127 : 126);
	_exit(126);
}

/* 0, -1 after --help, or the exit code for a bad command line (already reported). */
static int parse_options(int argc, char **argv, struct record_options *o)
{
	int c, rc;

	opterr = 0;
	optind = 1;
	/* '+': options end at COMMAND, whose own options are its business. */
	while ((c = getopt_long(argc, argv, "+:" CP_PROF_SHORT_OPTS, long_options, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return -1;
		}
		if (c == ':')
			return cp_prof_option_error("record", c, argv);
		rc = parse_own_option(c, optarg, o);
		if (rc >= 0) {
			if (rc)
				return rc;
			continue;
		}
		rc = cp_prof_parse_option("record", c, optarg, &o->prof);
		if (rc > 0)
			return rc;
		if (rc < 0)
			return cp_prof_option_error("record", c, argv);
	}
	rc = cp_prof_check_options("record", &o->prof);
	if (rc)
		return rc;
	if (o->prof.type == CP_SESSION_GOROUTINE) {
		cp_error("record", "--profile goroutine is a snapshot of a running program");
		cp_hint("take it with 'cprof attach -p PID --profile goroutine'");
		return CP_EXIT_USAGE;
	}
	if (optind >= argc) {
		cp_error("record", "missing COMMAND to run");
		cp_hint("usage: cprof record [OPTIONS] -- COMMAND [ARGS...]");
		return CP_EXIT_USAGE;
	}
	o->command = argv + optind;
	return 0;
}

/* Fork the child that will exec the command once told to. 0 or an exit code (reported). */
static int spawn(const struct record_options *o, struct child *c)
{
	int gopipe[2] = { -1, -1 }, errpipe[2] = { -1, -1 };

	if (pipe2(gopipe, O_CLOEXEC) < 0 || pipe2(errpipe, O_CLOEXEC) < 0) {
		cp_error("record", "cannot create a pipe: %s", strerror(errno));
		if (gopipe[0] >= 0) {
			close(gopipe[0]);
			close(gopipe[1]);
		}
		return CP_EXIT_FAILURE;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		cp_error("record", "cannot fork: %s", strerror(errno));
		close(gopipe[0]);
		close(gopipe[1]);
		close(errpipe[0]);
		close(errpipe[1]);
		return CP_EXIT_FAILURE;
	}
	if (c->pid == 0) {
		close(gopipe[1]);
		close(errpipe[0]);
		child_main(gopipe[0], errpipe[1], o,
			   o->prof.output && !strcmp(o->prof.output, "-"), o->watch.leaks);
	}
	close(gopipe[0]);
	close(errpipe[1]);
	c->go_fd = gopipe[1];
	c->err_fd = errpipe[0];
	child_pid = c->pid;
	return 0;
}

/* Let the child exec the command. 0, or the exit code after saying why it did not run. */
static int start(struct child *c, char **cmd)
{
	int exec_err = 0;
	ssize_t n;

	if (write(c->go_fd, "g", 1) != 1) {
		cp_error("record", "cannot start the command: %s", strerror(errno));
		return CP_EXIT_FAILURE;
	}
	close(c->go_fd);
	c->go_fd = -1;
	do {
		n = read(c->err_fd, &exec_err, sizeof(exec_err));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(exec_err)) {
		/* __WALL: a traced child (--leaks) is waited for like a thread. */
		while (waitpid(c->pid, &c->status, __WALL) == c->pid && WIFSTOPPED(c->status))
			ptrace(PTRACE_CONT, c->pid, NULL, NULL);
		c->reaped = true;
		if (exec_err == ENOENT) {
			cp_error(cmd[0], "command not found");
			return 127;
		}
		cp_error(cmd[0], "cannot run: %s", strerror(exec_err));
		return 126;
	}
	c->started = true;
	return 0;
}

/* A child that never exec'd: without the go byte it exits at once; reap it. */
static void abandon(struct child *c)
{
	if (c->go_fd >= 0)
		close(c->go_fd);
	c->go_fd = -1;
	if (!c->reaped)
		while (waitpid(c->pid, &c->status, __WALL) == c->pid && WIFSTOPPED(c->status))
			ptrace(PTRACE_CONT, c->pid, NULL, NULL);
	c->reaped = true;
}

/* Drain the wake pipe: a SIGCHLD since the last look. */
static void drain_wake(void)
{
	char buf[64];

	while (wake_pipe[0] >= 0 && read(wake_pipe[0], buf, sizeof(buf)) > 0)
		;
}

/* Wait for a signal (SIGCHLD writes to the wake pipe) up to ms. */
static void idle(int ms)
{
	struct pollfd p = { .fd = wake_pipe[0], .events = POLLIN };

	if (ms != 0)
		poll(&p, wake_pipe[0] >= 0 ? 1 : 0, ms);
}

/* Is the command over? Reaps it (through the watch with --leaks). */
static bool command_done(struct record_watch *w, struct child *c, uint64_t now)
{
	drain_wake();
	if (!w->tracer && !c->reaped && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->reaped = true;
	record_watch_tick(w, now, &c->reaped, &c->status);
	return c->reaped;
}

/*
 * Stop sampling and write the profile: at once when a signal or --seconds ends the profile of a
 * command that keeps running (the user waits for the file, not for the command), else when it
 * has exited. 0 or -errno (reported).
 */
static int finish_profile(struct cp_session *sess, const struct record_options *o,
			  const struct child *c)
{
	cp_session_stop(sess);
	cp_prof_progress_clear();
	return cp_prof_write("record", sess, &o->prof, c->pid, &stop_count);
}

/*
 * Run until the command exits, sampling (sess may be NULL) until it exits, a signal asks to
 * stop or --seconds pass, then writing the profile (*write_err: its result); --timeout and
 * --leaks are handled on the way. Read errors are reported. Asked twice to stop, cprof leaves
 * the command running (as a shell would).
 */
static void run_command(struct cp_session *sess, const struct record_options *o, struct child *c,
			struct record_watch *w, int *write_err)
{
	uint64_t start, deadline = 0;
	char what[64];
	bool busy = false;
	int err;

	if (sess)
		cp_session_wake_on(sess, wake_pipe[0]);
	snprintf(what, sizeof(what), "%s (pid %d)", o->command[0], (int)c->pid);
	/* The events count from the exec: so do the countdown and the profile's duration. */
	if (sess)
		cp_session_mark_start(sess);
	start = sess ? cp_session_start_ns(sess) : cp_now_ns();
	w->start_ns = start;
	if (o->prof.seconds > 0)
		deadline = start + (uint64_t)(o->prof.seconds * 1e9);
	for (uint64_t last = 0;;) {
		uint64_t now = cp_now_ns();
		int ms, wms;

		if (command_done(w, c, now))
			break;
		if (sess && (stop_count || (deadline && now >= deadline))) {
			if (cp_stderr_is_tty())
				cp_note("stopped profiling after %.1f s; %s keeps running",
					(cp_now_ns() - start) / 1e9, o->command[0]);
			*write_err = finish_profile(sess, o, c);
			sess = NULL;
		}
		if (stop_count >= 2)
			break;
		ms = wait_ms(now, sess ? deadline : 0, wake_pipe[0] >= 0);
		wms = record_watch_wait_ms(w, now);
		if (wms >= 0 && wms < ms)
			ms = wms;
		if (!sess) {
			idle(ms);
			continue;
		}
		if (now - last >= 250000000ull) {
			double left = deadline ? (double)(deadline - now) / 1e9 : -1;

			cp_prof_progress(what, left, sess);
			last = now;
		}
		/* No waiting while records are left over from the last call. */
		err = cp_session_poll(sess, busy ? 0 : ms);
		busy = err == 1;
		if (err < 0) {
			cp_prof_progress_clear();
			cp_error("record", "reading samples failed: %s",
				 cp_session_error(sess) ? cp_session_error(sess) : strerror(-err));
			*write_err = finish_profile(sess, o, c);
			sess = NULL;
		}
	}
	if (sess)
		*write_err = finish_profile(sess, o, c);
	cp_prof_progress_clear();
}

/*
 * cprof's exit code: 124 after --timeout; the command's, unless the profile (write_err)
 * failed where the command succeeded; 3 with --fail-on-leak when it leaked and succeeded.
 */
static int exit_code(struct child *c, const char *name, int write_err,
		     const struct record_watch *w)
{
	if (!c->reaped) {
		/* Traced for --leaks, it cannot outlive cprof (see src/target/tracer.h). */
		cp_error("record", "interrupted by %s; %s (pid %d) %s", strsignal(stop_sig), name,
			 (int)c->pid, w->leaks ? "killed with cprof (--leaks)" : "left running");
		return 128 + stop_sig;
	}
	if (w->timed_out)
		return CP_EXIT_TIMEOUT;
	if (write_err < 0 && status_code(c->status) == 0)
		return CP_EXIT_FAILURE;	/* the profile was asked for and is not there */
	if (w->fail_on_leak && w->nleaked && status_code(c->status) == 0)
		return CP_EXIT_LEAKED;
	return status_code(c->status);
}

/* NAME.hang.json next to the profile (-o NAME.EXT), else the default name with that suffix. */
static char *hang_json_name(const struct record_options *o, int pid)
{
	static const char *const exts[] = { ".pb.gz", ".folded", ".svg", ".txt", ".gz", ".pb" };
	const char *out = o->prof.output;
	size_t len;
	char *name;

	if (!out || !strcmp(out, "-"))
		return cp_default_output_name(pid, "hang.json");
	len = strlen(out);
	for (size_t i = 0; i < CP_ARRAY_SIZE(exts); i++) {
		size_t el = strlen(exts[i]);

		if (len > el && !strcmp(out + len - el, exts[i])) {
			len -= el;
			break;
		}
	}
	name = malloc(len + sizeof(".hang.json"));
	if (name)
		sprintf(name, "%.*s.hang.json", (int)len, out);
	return name;
}

/* The file execvp would run for name (PATH searched when it has no '/'). 0 or -ENOENT. */
static int command_path(const char *name, char *buf, size_t size)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(name, '/')) {
		snprintf(buf, size, "%s", name);
		return 0;
	}
	for (p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin"; *p; p = end) {
		int n;

		end = strchrnul(p, ':');
		n = snprintf(buf, size, "%.*s%s%s", (int)(end - p), p, end > p ? "/" : "", name);
		if (*end)
			end++;
		if (n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/*
 * heap, allocs: COMMAND's environment preloads the sampler library (ahead of any preload it
 * has) and tells it who reads it. 0 or an exit code (reported).
 */
static int heap_preload(struct record_options *o)
{
	const char *old = getenv("LD_PRELOAD");
	char path[4096], why[256];
	int n;

	/* Refused as attach refuses, before anything runs: a loader that is not glibc's. */
	if (command_path(o->command[0], path, sizeof(path)) == 0 &&
	    cp_inject_check_program(path, why, sizeof(why)) < 0) {
		cp_error(o->command[0], "%s", why);
		return CP_EXIT_FAILURE;
	}

	if (cp_heap_agent_path(path, sizeof(path)) < 0) {
		cp_error("record", "%s not found (next to cprof, or set CPROF_AGENT_LIBRARY)",
			 CP_AGENT_LIBRARY);
		return CP_EXIT_FAILURE;
	}
	n = snprintf(o->preload, sizeof(o->preload), "LD_PRELOAD=%s%s%s", path,
		     old && old[0] ? ":" : "", old ? old : "");
	if (n < 0 || (size_t)n >= sizeof(o->preload)) {
		cp_error("record", "LD_PRELOAD too long to add %s", CP_AGENT_LIBRARY);
		return CP_EXIT_FAILURE;
	}
	/*
	 * The sampler hands its region over this socketpair as it starts: cprof then reads a
	 * command that exits within milliseconds. Without it, cprof looks in /proc.
	 */
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, o->agent_sock) < 0)
		o->agent_sock[0] = o->agent_sock[1] = -1;
	n = snprintf(o->agent_env, sizeof(o->agent_env), "%s=", CP_AGENT_ENV);
	cp_heap_agent_env(o->agent_env + n, sizeof(o->agent_env) - (size_t)n,
			  o->prof.rate ? o->prof.rate : 524288,
			  o->prof.stack_size ? (uint32_t)o->prof.stack_size :
					       CP_SAMPLER_STACK_DEFAULT,
			  o->agent_sock[1]);
	return 0;
}

/* Start sampling the spawned command. 0 or an exit code (reported). */
static int open_session(struct record_options *o, struct child *c, struct cp_session **sess)
{
	struct cp_session_opts so = { 0 };
	int err;

	so.pids = &c->pid;
	so.npids = 1;
	cp_prof_session_opts(&o->prof, &so);
	if (o->prof.verbose)
		cp_cmd_note_cache();
	so.follow_children = true;
	so.enable_on_exec = true;
	so.has_agent_sock = o->agent_sock[0] >= 0;
	so.agent_sock = o->agent_sock[0];
	err = cp_session_new(&so, sess);
	if (err < 0) {
		cp_prof_explain_open_error("record", c->pid, err, &o->prof);
		return CP_EXIT_FAILURE;
	}
	cp_prof_note_kernel_refused(*sess, &o->prof);
	return 0;
}

int cmd_record(int argc, char **argv)
{
	struct record_options o = {
		.prof = {
			.seconds = 0,
			.hz = 99,
			.dwarf = true,
			.kernel = true,
			.format = CP_PROFILE_PPROF,
		},
		.profile = true,
		.watch = { .kill_after = 10 },
		.agent_sock = { -1, -1 },
	};
	struct child c = { .pid = -1, .go_fd = -1, .err_fd = -1 };
	struct cp_session *sess = NULL;
	struct sigaction old[CP_ARRAY_SIZE(caught_signals)];
	char *hang_json = NULL, *default_out = NULL;
	bool caught = false;
	int rc, err = 0;

	rc = parse_options(argc, argv, &o);
	if (rc)
		goto out;
	/* The default name needs the command's pid; an explicit path can be checked now. */
	if (o.profile && o.prof.output && cp_prof_check_output("record", &o.prof, 0) < 0) {
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	if (o.profile && cp_prof_is_heap(&o.prof)) {
		rc = heap_preload(&o);
		if (rc)
			goto out;
	}
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		wake_pipe[0] = wake_pipe[1] = -1;
	rc = spawn(&o, &c);
	if (o.agent_sock[1] >= 0)
		close(o.agent_sock[1]);	/* the command's end, in the child now */
	o.agent_sock[1] = -1;
	if (rc)
		goto out;
	catch_signals(old);
	caught = true;
	/* One name from the start: NAME.hang.json goes next to NAME.pb.gz. */
	if (o.profile && !o.prof.output && (default_out = cp_prof_default_name(&o.prof, c.pid)))
		o.prof.output = default_out;
	if (o.watch.timeout) {
		hang_json = hang_json_name(&o, c.pid);
		o.watch.hang_json = hang_json;
	}
	o.watch.name = o.command[0];
	rc = record_watch_start(&o.watch, c.pid);
	if (rc == 0 && o.profile)
		rc = open_session(&o, &c, &sess);
	if (rc) {
		abandon(&c);	/* the command never runs */
		goto out;
	}
	/* Go: the events count from the exec on. */
	rc = start(&c, o.command);
	if (rc)
		goto out;
	run_command(sess, &o, &c, &o.watch, &err);
	/* The profile is written: nothing of ours is left attached to the command. */
	cp_session_free(sess);
	sess = NULL;
	if (record_watch_finish(&o.watch) < 0 && err == 0)
		err = -EIO;
	rc = exit_code(&c, o.command[0], err, &o.watch);
out:
	if (c.pid > 0 && !c.started)
		abandon(&c);
	cp_session_free(sess);
	record_watch_finish(&o.watch);
	free(hang_json);
	free(default_out);
	if (c.go_fd >= 0)
		close(c.go_fd);
	if (c.err_fd >= 0)
		close(c.err_fd);
	if (caught)
		restore_signals(old);
	for (int i = 0; i < 2; i++) {
		if (wake_pipe[i] >= 0)
			close(wake_pipe[i]);
		if (o.agent_sock[i] >= 0)
			close(o.agent_sock[i]);
	}
	wake_pipe[0] = wake_pipe[1] = -1;
	return rc < 0 ? CP_EXIT_OK : rc;
}
