/* cprof attach: CPU-profile running processes with perf events; shared attach/record plumbing. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "proc.h"
#include "profiling.h"
#include "sampler.h"
#include "session.h"
#include "util.h"

#define MAX_PIDS 64

static const char usage_text[] =
	"usage: cprof attach -p PID[,PID...] [--seconds N] [-F HZ] [--unwind dwarf|fp]\n"
	"                    [--format pprof|folded|svg|text] [-o FILE]\n"
	"\n"
	"CPU-profile running processes: sample every thread (including threads created while\n"
	"profiling) HZ times a second of CPU time, with perf events; unwind and symbolize each\n"
	"sample; write a pprof profile (or folded stacks, a flame graph, a top table). The\n"
	"targets are not stopped or traced. Ctrl-C ends early and still writes the profile.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID[,PID...]  the processes to profile\n"
	"  -s, --seconds N         how long to sample (default 10; decimals allowed)\n"
	"  -F, --freq HZ           samples per second of CPU time per thread (default 99)\n"
	"  -u, --unwind MODE       dwarf (default): copy each sample's user stack and unwind it\n"
	"                          with DWARF CFI, complete through code without frame pointers;\n"
	"                          fp: the kernel's frame-pointer callchains (cheaper, shallower)\n"
	"      --stack-size BYTES  user stack copied per sample in dwarf mode (default 8192,\n"
	"                          512 to 65000); deeper stacks end in [truncated]: raise it\n"
	"                          for deep recursion (a larger copy costs the target more)\n"
	"      --no-kernel         leave out kernel frames\n"
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
	"  go tool pprof -http=: cpu.pb.gz\n";

static volatile sig_atomic_t stop_count;
static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
	stop_count++;
}

static const char *format_ext(enum cp_profile_format f)
{
	switch (f) {
	case CP_PROFILE_FOLDED:
		return "folded";
	case CP_PROFILE_SVG:
		return "svg";
	case CP_PROFILE_TEXT:
		return "txt";
	default:
		return "pb.gz";
	}
}

static int parse_seconds(const char *cmd, const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (end == arg || *end || errno || !(v > 0) || v > CP_PROF_SECONDS_MAX) {
		cp_error(cmd, "invalid --seconds '%s': expected a positive number of seconds "
			      "up to %.0f",
			 arg, CP_PROF_SECONDS_MAX);
		return CP_EXIT_USAGE;
	}
	*out = v;
	return 0;
}

static int max_sample_rate(void)
{
	char buf[32];

	if (cp_read_file("/proc/sys/kernel/perf_event_max_sample_rate", buf, sizeof(buf), NULL) <
	    0)
		return CP_SAMPLER_HZ_MAX;
	return atoi(buf) > 0 ? atoi(buf) : CP_SAMPLER_HZ_MAX;
}

int cp_prof_option_error(const char *cmd, int c, char **argv)
{
	if (c == ':')
		cp_error(cmd, "option '%s' needs a value", argv[optind - 1]);
	else if (optopt)
		cp_error(cmd, "unknown option '-%c'", optopt);
	else
		cp_error(cmd, "unknown option '%s'", argv[optind - 1]);
	cp_hint("run 'cprof %s --help'", cmd);
	return CP_EXIT_USAGE;
}

int cp_prof_parse_option(const char *cmd, int c, const char *arg, struct cp_prof_options *o)
{
	long v;

	switch (c) {
	case 's':
		return parse_seconds(cmd, arg, &o->seconds);
	case 'F': {
		int max = max_sample_rate();

		if (max > CP_SAMPLER_HZ_MAX)
			max = CP_SAMPLER_HZ_MAX;
		if (cp_parse_long(arg, 1, max, &v) < 0) {
			cp_error(cmd, "invalid -F '%s': expected samples per second from 1 to %d",
				 arg, max);
			if (cp_parse_long(arg, 1, 1000000000, &v) == 0 && v > max)
				cp_hint("the kernel allows at most %d "
					"(kernel.perf_event_max_sample_rate)",
					max);
			return CP_EXIT_USAGE;
		}
		o->hz = (int)v;
		return 0;
	}
	case 'u':
		if (!strcmp(arg, "dwarf")) {
			o->dwarf = true;
		} else if (!strcmp(arg, "fp")) {
			o->dwarf = false;
		} else {
			cp_error(cmd, "invalid --unwind '%s': expected dwarf or fp", arg);
			return CP_EXIT_USAGE;
		}
		return 0;
	case 'f':
		if (!strcmp(arg, "pprof")) {
			o->format = CP_PROFILE_PPROF;
		} else if (!strcmp(arg, "folded")) {
			o->format = CP_PROFILE_FOLDED;
		} else if (!strcmp(arg, "svg")) {
			o->format = CP_PROFILE_SVG;
		} else if (!strcmp(arg, "text")) {
			o->format = CP_PROFILE_TEXT;
		} else {
			cp_error(cmd, "invalid --format '%s': expected pprof, folded, svg or text",
				 arg);
			return CP_EXIT_USAGE;
		}
		return 0;
	case 'o':
		if (!*arg) {
			cp_error(cmd, "invalid -o '': expected a file name or '-'");
			return CP_EXIT_USAGE;
		}
		o->output = arg;
		return 0;
	case 'S':
		if (cp_parse_long(arg, CP_SAMPLER_STACK_MIN, CP_SAMPLER_STACK_MAX, &v) < 0) {
			cp_error(cmd, "invalid --stack-size '%s': expected bytes from %u to %u",
				 arg, CP_SAMPLER_STACK_MIN, CP_SAMPLER_STACK_MAX);
			return CP_EXIT_USAGE;
		}
		o->stack_size = (size_t)v;
		return 0;
	case 'K':
		o->kernel = false;
		return 0;
	case 'v':
		o->verbose = true;
		return 0;
	default:
		return -1;
	}
}

void cp_prof_explain_open_error(const char *cmd, int pid, int err, const struct cp_prof_options *o)
{
	char what[64], buf[32];
	int paranoid = 2;

	snprintf(what, sizeof(what), "pid %d", pid);
	if (cp_read_file("/proc/sys/kernel/perf_event_paranoid", buf, sizeof(buf), NULL) == 0)
		paranoid = atoi(buf);
	switch (err) {
	case -EACCES:
	case -EPERM:
		if (geteuid() != 0 && paranoid > 2) {
			cp_error(what, "perf events not allowed: kernel.perf_event_paranoid=%d "
				       "forbids them to unprivileged users",
				 paranoid);
			cp_hint("sudo sysctl kernel.perf_event_paranoid=2 (user-space profiling "
				"of your own processes), or run as root or with CAP_PERFMON");
		} else if (geteuid() != 0) {
			cp_error(what, "perf events not allowed on this process (%s): it belongs "
				       "to another user, or kernel.perf_event_paranoid=%d",
				 strerror(-err), paranoid);
			cp_hint("run as root or with CAP_PERFMON, or lower "
				"kernel.perf_event_paranoid with sysctl");
		} else {
			cp_error(what, "perf events refused (%s) although running as root",
				 strerror(-err));
			cp_hint("check seccomp, LSM policy (SELinux, AppArmor) and container "
				"limits on perf_event_open");
		}
		break;
	case -ESRCH:
	case -ENOENT:
		cp_error(what, "process exited before sampling started");
		break;
	case -EMFILE:
	case -ENFILE:
		cp_error(what, "too many threads to sample: one perf event per thread per CPU "
			       "exceeds the open file limit");
		cp_hint("raise it with 'ulimit -n', or profile with fewer CPUs (taskset)");
		break;
	case -EOPNOTSUPP:
	case -ENODEV:
		cp_error(what, "this kernel has no cpu-clock perf event (%s)", strerror(-err));
		break;
	case -EINVAL:
		cp_error(what, "the kernel rejected the perf event settings (%s)%s", strerror(-err),
			 o->dwarf ? "; try --unwind fp or a smaller --stack-size" : "");
		break;
	default:
		cp_error(what, "cannot start sampling: %s", strerror(-err));
		break;
	}
	(void)cmd;
}

static bool progress_shown;

void cp_prof_progress(const char *what, double left, const struct cp_session *s)
{
	struct cp_session_stats st;

	if (!cp_stderr_is_tty())
		return;
	cp_session_get_stats(s, &st);
	if (left >= 0)
		fprintf(stderr, "\r\033[Kcprof: sampling %s: %ld s left, %llu samples", what,
			(long)(left + 0.999), (unsigned long long)st.samples);
	else
		fprintf(stderr, "\r\033[Kcprof: sampling %s: %llu samples", what,
			(unsigned long long)st.samples);
	fflush(stderr);
	progress_shown = true;
}

void cp_prof_progress_clear(void)
{
	if (progress_shown) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
		progress_shown = false;
	}
}

int cp_prof_check_output(const char *cmd, const struct cp_prof_options *o, int pid)
{
	struct cp_output out;
	char *def = NULL;
	int err;

	if (o->output && !strcmp(o->output, "-"))
		return 0;
	if (!o->output) {
		def = cp_default_output_name(pid, format_ext(o->format));
		if (!def) {
			cp_error(cmd, "out of memory");
			return -ENOMEM;
		}
	}
	/* Create (and remove) the temporary file now: a bad path fails before any sampling. */
	err = cp_output_open(&out, cmd, o->output ? o->output : def);
	if (err == 0)
		cp_output_abort(&out);
	free(def);
	return err;
}

int cp_prof_write(const char *cmd, struct cp_session *s, const struct cp_prof_options *o, int pid,
		  const volatile sig_atomic_t *stops)
{
	struct cp_session_stats st;
	struct cp_output out;
	struct cp_profile *prof;
	char *def = NULL;
	const char *path = o->output;
	int err;

	if (!path) {
		def = cp_default_output_name(pid, format_ext(o->format));
		if (!def) {
			cp_error(cmd, "out of memory");
			return -ENOMEM;
		}
		path = def;
	}
	prof = cp_session_profile(s);
	err = cp_output_open(&out, cmd, path);
	if (err < 0)
		goto done;
	err = cp_profile_write(prof, o->format, out.f, 0);
	if (err < 0) {
		cp_error(strcmp(path, "-") ? path : "standard output", "cannot write profile: %s",
			 strerror(-err));
		cp_output_abort(&out);
		goto done;
	}
	if (stops && *stops >= 2) {
		/* Asked twice to stop: leave no file rather than make the user wait. */
		cp_output_abort(&out);
		err = -EINTR;
		goto done;
	}
	err = cp_output_commit(&out, cmd);
	if (err < 0)
		goto done;
	cp_session_get_stats(s, &st);
	cp_note("%llu samples (%llu lost) from %zu thread%s of %zu process%s; wrote %s",
		(unsigned long long)st.samples, (unsigned long long)st.lost, st.threads,
		st.threads == 1 ? "" : "s", st.processes, st.processes == 1 ? "" : "es",
		strcmp(path, "-") ? path : "to standard output");
	if (o->verbose) {
		cp_note("stats: %zu events, %zu rings of %zu KiB; %zu locations, %llu stacks ended "
			"[unknown], %llu [truncated]; cprof CPU %.1f ms, %.1f us per sample",
			st.events, st.rings, st.ring_bytes >> 10, st.locations,
			(unsigned long long)st.unknown, (unsigned long long)st.truncated,
			st.cpu_ns / 1e6, st.samples ? st.cpu_ns / 1e3 / st.samples : 0.0);
	}
done:
	free(def);
	return err;
}

/* Parse "PID[,PID...]" into pids (checked: exist, not zombies, not us). 0 or an exit code. */
static int parse_pids(const char *arg, int *pids, size_t *npids)
{
	char *copy, *tok, *save = NULL;
	int rc = 0;

	if (!arg) {
		cp_error("attach", "missing -p PID");
		cp_hint("run 'cprof attach --help'");
		return CP_EXIT_USAGE;
	}
	/* strtok_r would skip empty items silently: "1,,2" or ",1" is a typo, not a list. */
	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,")) {
		cp_error("attach", "invalid PID list '%s': empty item (usage: -p PID[,PID...])",
			 arg);
		return CP_EXIT_USAGE;
	}
	copy = strdup(arg);
	if (!copy) {
		cp_error("attach", "out of memory");
		return CP_EXIT_FAILURE;
	}
	*npids = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int pid;
		bool dup = false;

		rc = cp_cmd_check_pid("attach", tok, false, &pid);
		if (rc)
			break;
		for (size_t i = 0; i < *npids; i++)
			dup |= pids[i] == pid;
		if (dup)
			continue;
		if (*npids == MAX_PIDS) {
			cp_error("attach", "too many PIDs: at most %d", MAX_PIDS);
			rc = CP_EXIT_USAGE;
			break;
		}
		pids[(*npids)++] = pid;
	}
	if (!rc && !*npids) {
		cp_error("attach", "invalid PID list '%s'", arg);
		rc = CP_EXIT_USAGE;
	}
	free(copy);
	return rc;
}

/* A target has exited: gone, or a zombie waiting for its parent. */
static bool target_exited(int pid)
{
	struct cp_task_stat st;

	if (cp_proc_read_stat(pid, 0, &st) < 0)
		return true;
	return st.state == 'Z' || st.state == 'X';
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

int cmd_attach(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "pid", required_argument, NULL, 'p' },
		CP_PROF_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cp_prof_options o = {
		.seconds = 10,
		.hz = 99,
		.dwarf = true,
		.kernel = true,
		.format = CP_PROFILE_PPROF,
	};
	struct cp_session_opts so = { 0 };
	struct cp_session *sess = NULL;
	struct cp_session_stats st;
	struct sigaction sa, old_int, old_term, old_hup;
	const char *pid_arg = NULL;
	int pids[MAX_PIDS];
	size_t npids = 0, nexited = 0;
	bool exited[MAX_PIDS] = { false };
	char what[64];
	uint64_t start, deadline, next_check, wait;
	int c, rc, err;
	bool busy = false;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":p:" CP_PROF_SHORT_OPTS, long_options, NULL)) != -1) {
		if (c == 'p') {
			pid_arg = optarg;
			continue;
		}
		if (c == 'h') {
			fputs(usage_text, stdout);
			return CP_EXIT_OK;
		}
		if (c == ':')
			return cp_prof_option_error("attach", c, argv);
		rc = cp_prof_parse_option("attach", c, optarg, &o);
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
	rc = parse_pids(pid_arg, pids, &npids);
	if (rc)
		return rc;
	if (npids == 1)
		snprintf(what, sizeof(what), "pid %d", pids[0]);
	else
		snprintf(what, sizeof(what), "%zu processes", npids);

	if (cp_prof_check_output("attach", &o, pids[0]) < 0)
		return CP_EXIT_FAILURE;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);

	rc = CP_EXIT_FAILURE;
	so.pids = pids;
	so.npids = npids;
	so.hz = o.hz;
	so.dwarf = o.dwarf;
	so.stack_size = o.stack_size;
	so.kernel = o.kernel;
	err = cp_session_new(&so, &sess);
	if (err < 0) {
		cp_prof_explain_open_error("attach", pids[0], err, &o);
		goto done;
	}
	cp_session_get_stats(sess, &st);
	if (st.kernel_refused && o.kernel)
		cp_note("note: kernel frames not permitted (kernel.perf_event_paranoid); sampling "
			"user space only");

	/* The events have counted since they were opened, before the setup that followed. */
	start = cp_session_start_ns(sess);
	deadline = start + (uint64_t)(o.seconds * 1e9);
	next_check = 0;
	while (!stop_count) {
		uint64_t now = cp_now_ns();

		if (now >= deadline)
			break;
		if (now >= next_check) {
			for (size_t i = 0; i < npids; i++) {
				if (!exited[i] && target_exited(pids[i])) {
					exited[i] = true;
					nexited++;
				}
			}
			if (nexited == npids)
				break;
			cp_prof_progress(what, (double)(deadline - now) / 1e9, sess);
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
			cp_error("attach", "reading samples failed: %s", strerror(-err));
			goto done;
		}
	}
	/* Read what the rings still hold, unless asked a second time to stop. */
	cp_session_disable(sess);
	while (stop_count < 2 && cp_session_poll(sess, 0) == 1)
		;
	cp_prof_progress_clear();
	cp_session_get_stats(sess, &st);
	if (stop_count >= 2) {
		cp_error("attach", "interrupted twice by %s: stopped without writing a profile",
			 strsignal(stop_sig));
		rc = 128 + stop_sig;
		goto done;
	}
	if (stop_count)
		cp_note("stopped by %s after %.1f s", strsignal(stop_sig),
			(cp_now_ns() - start) / 1e9);
	for (size_t i = 0; i < npids; i++)
		if (exited[i])
			cp_note("pid %d exited during profiling; the profile covers its life "
				"until then",
				pids[i]);
	if (nexited == npids && st.samples == 0) {
		cp_error(what, "exited before any sample was captured; nothing written");
		goto done;
	}
	if (st.samples == 0)
		explain_no_samples(pids, npids, exited, stop_count != 0);
	if (cp_prof_write("attach", sess, &o, pids[0], &stop_count) < 0) {
		if (stop_count >= 2)
			rc = 128 + stop_sig;
		goto done;
	}
	rc = CP_EXIT_OK;
done:
	cp_session_free(sess);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	return rc;
}
