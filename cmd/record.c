/* cprof record: run a command under the CPU profiler and pass its exit status through. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "profiling.h"
#include "session.h"
#include "util.h"

static const char usage_text[] =
	"usage: cprof record [--seconds N] [-F HZ] [--unwind dwarf|fp]\n"
	"                    [--format pprof|folded|svg|text] [-o FILE] -- COMMAND [ARGS...]\n"
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
	"  -f, --format FORMAT     pprof (default), folded, svg, text\n"
	"  -o, --output FILE       where to write (default cprof-PID-YYYYmmdd-HHMMSS.EXT in the\n"
	"                          current directory; '-' = standard output)\n"
	"  -v, --verbose           print sampling statistics and cprof's own CPU cost\n"
	"  -h, --help              show this help\n"
	"\n"
	"Examples:\n"
	"  cprof record -o prof.pb.gz -- ./bench --iterations 1000\n"
	"  cprof record --format svg -o flame.svg -- make -j4\n"
	"  cprof record --seconds 30 -- ./server      profile the first 30 s of a server\n";

/* The command line of cprof record. */
struct record_options {
	struct cp_prof_options prof;
	char **command;		/* COMMAND [ARGS...], from argv */
};

static const struct option long_options[] = {
	CP_PROF_LONG_OPTS,
	{ NULL, 0, NULL, 0 },
};

/* The command run under the profiler. */
struct child {
	pid_t pid;
	int go_fd;		/* one byte written here lets it exec; -1 once closed */
	int err_fd;		/* the exec's errno arrives here; EOF when the exec succeeded */
	int pidfd;		/* readable once it exits; -1 without pidfd_open */
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

static void on_child(int sig)
{
	(void)sig;	/* only to interrupt poll() */
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
	sa.sa_flags = SA_NOCLDSTOP;
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
 * wakeup costs CPU. The rings wake us when half full, the command's exit through its pidfd, a
 * signal interrupts the wait. The progress line on a terminal is redrawn every 250 ms; without
 * a pidfd (Linux before 5.3) the exit is seen by looking every 100 ms.
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
static void child_main(int gofd, int errfd, char **cmd, bool out_to_err)
{
	char go;
	int e;

	if (read(gofd, &go, 1) != 1)
		_exit(127);
	close(gofd);
	/* With '-o -' our stdout carries the profile: the command's output must not mix in. */
	if (out_to_err && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		_exit(126);
	execvp(cmd[0], cmd);
	e = errno;
	if (write(errfd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(e == ENOENT ? 127 : 126);
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
		rc = cp_prof_parse_option("record", c, optarg, &o->prof);
		if (rc > 0)
			return rc;
		if (rc < 0)
			return cp_prof_option_error("record", c, argv);
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
		child_main(gopipe[0], errpipe[1], o->command,
			   o->prof.output && !strcmp(o->prof.output, "-"));
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
		waitpid(c->pid, &c->status, 0);
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
		waitpid(c->pid, &c->status, 0);
	c->reaped = true;
}

/*
 * Sample until the command exits, a signal asks to stop, or --seconds pass; then read what
 * the rings hold and stop the session. Read errors are reported.
 */
static void profile_command(struct cp_session *sess, const struct record_options *o,
			    struct child *c)
{
	uint64_t start, deadline = 0;
	char what[64];
	bool busy = false;
	int err;

	/* Readable when the command exits: ends a long wait for samples at once. */
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd >= 0)
		cp_session_wake_on(sess, c->pidfd);
	snprintf(what, sizeof(what), "%s (pid %d)", o->command[0], (int)c->pid);
	/* The events count from the exec: so do the countdown and the profile's duration. */
	cp_session_mark_start(sess);
	start = cp_session_start_ns(sess);
	if (o->prof.seconds > 0)
		deadline = start + (uint64_t)(o->prof.seconds * 1e9);
	for (uint64_t last = 0;;) {
		uint64_t now = cp_now_ns();

		if (waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
			c->reaped = true;
			break;
		}
		if (stop_count || (deadline && now >= deadline))
			break;
		if (now - last >= 250000000ull) {
			double left = deadline ? (double)(deadline - now) / 1e9 : -1;

			cp_prof_progress(what, left, sess);
			last = now;
		}
		/* No waiting while records are left over from the last call. */
		err = cp_session_poll(sess, busy ? 0 : wait_ms(now, deadline, c->pidfd >= 0));
		busy = err == 1;
		if (err < 0) {
			cp_prof_progress_clear();
			cp_error("record", "reading samples failed: %s", strerror(-err));
			break;
		}
	}
	cp_session_stop(sess);
	cp_prof_progress_clear();
	if (!c->reaped && cp_stderr_is_tty())
		cp_note("stopped profiling after %.1f s; %s keeps running",
			(cp_now_ns() - start) / 1e9, o->command[0]);
}

/*
 * Wait for the command to end (it runs on after --seconds). cprof's exit code: the command's,
 * unless the profile (write_err) failed where the command succeeded.
 */
static int wait_command(struct child *c, const char *name, int write_err)
{
	while (!c->reaped) {
		pid_t w = waitpid(c->pid, &c->status, 0);

		if (w == c->pid) {
			c->reaped = true;
		} else if (w < 0 && errno == EINTR) {
			if (stop_count >= 2)
				break;	/* asked twice: leave it running, as a shell would */
		} else {
			break;
		}
	}
	if (!c->reaped) {
		cp_error("record", "interrupted by %s; %s (pid %d) left running",
			 strsignal(stop_sig), name, (int)c->pid);
		return 128 + stop_sig;
	}
	if (write_err < 0 && status_code(c->status) == 0)
		return CP_EXIT_FAILURE;	/* the profile was asked for and is not there */
	return status_code(c->status);
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
	};
	struct child c = { .pid = -1, .go_fd = -1, .err_fd = -1, .pidfd = -1 };
	struct cp_session_opts so = { 0 };
	struct cp_session *sess = NULL;
	struct sigaction old[CP_ARRAY_SIZE(caught_signals)];
	bool caught = false;
	int rc, err;

	rc = parse_options(argc, argv, &o);
	if (rc)
		goto out;
	/* The default name needs the command's pid; an explicit path can be checked now. */
	if (o.prof.output && cp_prof_check_output("record", &o.prof, 0) < 0) {
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	rc = spawn(&o, &c);
	if (rc)
		goto out;
	catch_signals(old);
	caught = true;
	so.pids = &c.pid;
	so.npids = 1;
	cp_prof_session_opts(&o.prof, &so);
	if (o.prof.verbose)
		cp_cmd_note_cache();
	so.follow_children = true;
	so.enable_on_exec = true;
	err = cp_session_new(&so, &sess);
	if (err < 0) {
		abandon(&c);	/* the command never runs */
		cp_prof_explain_open_error("record", c.pid, err, &o.prof);
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	cp_prof_note_kernel_refused(sess, &o.prof);
	/* Go: the events count from the exec on. */
	rc = start(&c, o.command);
	if (rc)
		goto out;
	profile_command(sess, &o, &c);
	err = cp_prof_write("record", sess, &o.prof, c.pid, NULL);
	/* The profile is written: nothing of ours is left attached to the command. */
	cp_session_free(sess);
	sess = NULL;
	rc = wait_command(&c, o.command[0], err);
out:
	if (c.pid > 0 && !c.started)
		abandon(&c);
	cp_session_free(sess);
	if (c.pidfd >= 0)
		close(c.pidfd);
	if (c.go_fd >= 0)
		close(c.go_fd);
	if (c.err_fd >= 0)
		close(c.err_fd);
	if (caught)
		restore_signals(old);
	return rc < 0 ? CP_EXIT_OK : rc;
}
