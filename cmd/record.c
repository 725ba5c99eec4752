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
 * How long to wait for samples before looking again. Each wakeup costs tens of microseconds
 * of CPU on a virtual machine (a 99 Hz record of a few seconds woke 45 times at 100 ms), so
 * as long as nothing needs us: the rings wake us when half full, the command's exit through
 * its pidfd, a signal interrupts the wait. The progress line on a terminal is redrawn every
 * 250 ms; without a pidfd (Linux before 5.3) the exit is seen by looking every 100 ms.
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

int cmd_record(int argc, char **argv)
{
	static const struct option long_options[] = {
		CP_PROF_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cp_prof_options o = {
		.seconds = 0,
		.hz = 99,
		.dwarf = true,
		.kernel = true,
		.format = CP_PROFILE_PPROF,
	};
	struct cp_session_opts so = { 0 };
	struct cp_session *sess = NULL;
	struct cp_session_stats st;
	struct sigaction sa, old_int, old_term, old_hup, old_chld;
	int gopipe[2] = { -1, -1 }, errpipe[2] = { -1, -1 };
	char **cmd;
	pid_t pid;
	int c, rc, err, status = 0, exec_err = 0, pidfd = -1;
	bool reaped = false, started = false, busy = false;
	uint64_t start, deadline = 0;
	char what[64];
	ssize_t n;

	opterr = 0;
	optind = 1;
	/* '+': options end at COMMAND, whose own options are its business. */
	while ((c = getopt_long(argc, argv, "+:" CP_PROF_SHORT_OPTS, long_options, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return CP_EXIT_OK;
		}
		if (c == ':')
			return cp_prof_option_error("record", c, argv);
		rc = cp_prof_parse_option("record", c, optarg, &o);
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
	cmd = argv + optind;
	/* The default name needs the command's pid; an explicit path can be checked now. */
	if (o.output && cp_prof_check_output("record", &o, 0) < 0)
		return CP_EXIT_FAILURE;

	if (pipe2(gopipe, O_CLOEXEC) < 0 || pipe2(errpipe, O_CLOEXEC) < 0) {
		cp_error("record", "cannot create a pipe: %s", strerror(errno));
		if (gopipe[0] >= 0) {
			close(gopipe[0]);
			close(gopipe[1]);
		}
		return CP_EXIT_FAILURE;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		cp_error("record", "cannot fork: %s", strerror(errno));
		close(gopipe[0]);
		close(gopipe[1]);
		close(errpipe[0]);
		close(errpipe[1]);
		return CP_EXIT_FAILURE;
	}
	if (pid == 0) {
		close(gopipe[1]);
		close(errpipe[0]);
		child_main(gopipe[0], errpipe[1], cmd, o.output && !strcmp(o.output, "-"));
	}
	close(gopipe[0]);
	close(errpipe[1]);
	child_pid = pid;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, &old_chld);

	rc = CP_EXIT_FAILURE;
	so.pids = &pid;
	so.npids = 1;
	so.hz = o.hz;
	so.dwarf = o.dwarf;
	so.stack_size = o.stack_size;
	so.kernel = o.kernel;
	so.follow_children = true;
	so.enable_on_exec = true;
	err = cp_session_new(&so, &sess);
	if (err < 0) {
		/* The command never runs: closing the pipe makes the child exit. */
		close(gopipe[1]);
		gopipe[1] = -1;
		waitpid(pid, &status, 0);
		reaped = true;
		cp_prof_explain_open_error("record", pid, err, &o);
		goto done;
	}
	cp_session_get_stats(sess, &st);
	if (st.kernel_refused && o.kernel)
		cp_note("note: kernel frames not permitted (kernel.perf_event_paranoid); sampling "
			"user space only");

	/* Go: the events count from the exec on. */
	if (write(gopipe[1], "g", 1) != 1) {
		cp_error("record", "cannot start the command: %s", strerror(errno));
		goto done;
	}
	close(gopipe[1]);
	gopipe[1] = -1;
	do {
		n = read(errpipe[0], &exec_err, sizeof(exec_err));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(exec_err)) {
		waitpid(pid, &status, 0);
		reaped = true;
		if (exec_err == ENOENT) {
			cp_error(cmd[0], "command not found");
			rc = 127;
		} else {
			cp_error(cmd[0], "cannot run: %s", strerror(exec_err));
			rc = 126;
		}
		goto done;
	}

	started = true;
	/* Readable when the command exits: ends a long wait for samples at once. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0)
		cp_session_wake_on(sess, pidfd);
	snprintf(what, sizeof(what), "%s (pid %d)", cmd[0], (int)pid);
	/* The events count from the exec: so do the countdown and the profile's duration. */
	cp_session_mark_start(sess);
	start = cp_session_start_ns(sess);
	if (o.seconds > 0)
		deadline = start + (uint64_t)(o.seconds * 1e9);
	for (uint64_t last = 0;;) {
		uint64_t now = cp_now_ns();
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid) {
			reaped = true;
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
		err = cp_session_poll(sess, busy ? 0 : wait_ms(now, deadline, pidfd >= 0));
		busy = err == 1;
		if (err < 0) {
			cp_prof_progress_clear();
			cp_error("record", "reading samples failed: %s", strerror(-err));
			break;
		}
	}
	cp_session_stop(sess);
	cp_prof_progress_clear();
	if (!reaped && cp_stderr_is_tty())
		cp_note("stopped profiling after %.1f s; %s keeps running",
			(cp_now_ns() - start) / 1e9, cmd[0]);
	err = cp_prof_write("record", sess, &o, pid, NULL);
	/* The profile is written: nothing of ours is left attached to the command. */
	cp_session_free(sess);
	sess = NULL;
	while (!reaped) {
		pid_t w = waitpid(pid, &status, 0);

		if (w == pid) {
			reaped = true;
		} else if (w < 0 && errno == EINTR) {
			if (stop_count >= 2)
				break;	/* asked twice: leave it running, as a shell would */
		} else {
			break;
		}
	}
	if (!reaped) {
		cp_error("record", "interrupted by %s; %s (pid %d) left running",
			 strsignal(stop_sig), cmd[0], (int)pid);
		rc = 128 + stop_sig;
	} else if (err < 0 && status_code(status) == 0) {
		rc = CP_EXIT_FAILURE;	/* the profile was asked for and is not there */
	} else {
		rc = status_code(status);
	}
done:
	if (!reaped && !started) {
		/* The command never ran: without the go byte the child exits at once. */
		if (gopipe[1] >= 0)
			close(gopipe[1]);
		gopipe[1] = -1;
		waitpid(pid, &status, 0);
	}
	cp_session_free(sess);
	if (pidfd >= 0)
		close(pidfd);
	if (gopipe[1] >= 0)
		close(gopipe[1]);
	close(errpipe[0]);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	return rc;
}
