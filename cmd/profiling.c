/* What cprof attach and record share: their options, the progress line, the profile's file. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "profiling.h"
#include "sampler.h"
#include "session.h"
#include "util.h"

/* The profile formats by their --format name, with the extension of the default file name. */
static const struct {
	const char *name;
	enum cp_profile_format format;
	const char *ext;
} formats[] = {
	{ "pprof", CP_PROFILE_PPROF, "pb.gz" },
	{ "folded", CP_PROFILE_FOLDED, "folded" },
	{ "svg", CP_PROFILE_SVG, "svg" },
	{ "text", CP_PROFILE_TEXT, "txt" },
};

int cp_prof_format_parse(const char *name, enum cp_profile_format *out)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(formats); i++) {
		if (!strcmp(name, formats[i].name)) {
			*out = formats[i].format;
			return 0;
		}
	}
	return -EINVAL;
}

/* The profile types by their --profile name. */
static const struct {
	const char *name;
	enum cp_session_type type;
} types[] = {
	{ "cpu", CP_SESSION_CPU },
	{ "wall", CP_SESSION_WALL },
	{ "block", CP_SESSION_BLOCK },
	{ "threadcreate", CP_SESSION_THREADCREATE },
	{ "mutex", CP_SESSION_MUTEX },
	{ "goroutine", CP_SESSION_GOROUTINE },
	{ "heap", CP_SESSION_HEAP },
	{ "allocs", CP_SESSION_ALLOCS },
};

static const char *type_name(enum cp_session_type t)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(types); i++)
		if (types[i].type == t)
			return types[i].name;
	return "this";
}

/* The reason a session gave for not starting (cp_session_opts.why). */
static char session_why[256];

static const char *format_ext(enum cp_profile_format f)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(formats); i++)
		if (formats[i].format == f)
			return formats[i].ext;
	return "pb.gz";
}

static int parse_seconds(const char *cmd, const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	/* 0: a snapshot at once (attach on a Go program), or until the command exits (record). */
	if (end == arg || *end || errno || !(v >= 0) || v > CP_PROF_SECONDS_MAX) {
		cp_error(cmd, "invalid --seconds '%s': expected a number of seconds from 0 "
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
		if (cp_prof_format_parse(arg, &o->format) < 0) {
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
	case 'P':
		for (size_t i = 0; i < CP_ARRAY_SIZE(types); i++) {
			if (!strcmp(arg, types[i].name)) {
				o->type = types[i].type;
				return 0;
			}
		}
		cp_error(cmd, "invalid --profile '%s': expected cpu, wall, block, mutex, "
			      "threadcreate, heap, allocs or goroutine",
			 arg);
		return CP_EXIT_USAGE;
	case 'R':
		if (cp_parse_long(arg, 1, 1L << 40, &v) < 0) {
			cp_error(cmd, "invalid --rate '%s': expected mean bytes between allocation "
				      "samples, from 1 to %ld",
				 arg, 1L << 40);
			return CP_EXIT_USAGE;
		}
		o->rate = (uint64_t)v;
		return 0;
	case 'W':
		o->waiters = true;
		return 0;
	case 'N':
		o->native = true;
		return 0;
	case 'v':
		o->verbose = true;
		return 0;
	default:
		return -1;
	}
}

/* Whether pid runs as our user (its /proc directory is ours). */
static bool owned_by_us(int pid)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	return stat(path, &st) == 0 && st.st_uid == geteuid();
}

void cp_prof_explain_open_error(const char *cmd, int pid, int err, const struct cp_prof_options *o)
{
	char what[64], buf[32];
	int paranoid = 2;

	snprintf(what, sizeof(what), "pid %d", pid);
	if (session_why[0]) {
		cp_error(what, "%s", session_why);
		if (err == -ENOENT && cp_prof_is_heap(o))
			cp_hint("build it with cprof (meson builds src/agent), or point "
				"CPROF_AGENT_LIBRARY at it");
		return;
	}
	if (cp_read_file("/proc/sys/kernel/perf_event_paranoid", buf, sizeof(buf), NULL) == 0)
		paranoid = atoi(buf);
	if (err == -EOPNOTSUPP && o->type != CP_SESSION_CPU) {
		cp_error(what, "no syscalls:sys_enter_%s tracepoint (a kernel without "
			       "CONFIG_FTRACE_SYSCALLS, or tracefs not mountable)",
			 o->type == CP_SESSION_MUTEX ? "futex" : "clone3");
		cp_hint("as root: mount -t tracefs nodev /sys/kernel/tracing");
		return;
	}
	switch (err) {
	case -EACCES:
	case -EPERM:
		if (geteuid() != 0 && paranoid > 2) {
			cp_error(what, "perf events not allowed: kernel.perf_event_paranoid=%d "
				       "forbids them to unprivileged users",
				 paranoid);
			cp_hint("sudo sysctl kernel.perf_event_paranoid=2 (user-space profiling "
				"of your own processes), or run as root or with CAP_PERFMON");
		} else if (geteuid() != 0 && !owned_by_us(pid)) {
			cp_error(what, "perf events not allowed on this process (%s): it belongs "
				       "to another user",
				 strerror(-err));
			cp_hint("run as root, as the target's user, or with CAP_PERFMON");
		} else if (geteuid() != 0 && o->type != CP_SESSION_CPU) {
			cp_error(what, "perf events not allowed (%s): %s profiles read kernel "
				       "tracepoints (scheduler switches, system calls), which "
				       "kernel.perf_event_paranoid=%d keeps for root and CAP_PERFMON",
				 strerror(-err), type_name(o->type), paranoid);
			cp_hint("run as root or with CAP_PERFMON, or sudo sysctl "
				"kernel.perf_event_paranoid=-1");
		} else if (geteuid() != 0) {
			cp_error(what, "perf events not allowed on this process (%s): "
				       "kernel.perf_event_paranoid=%d",
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

int cp_prof_check_options(const char *cmd, const struct cp_prof_options *o)
{
	if (o->rate && !cp_prof_is_heap(o)) {
		cp_error(cmd, "--rate is for --profile heap or allocs, not %s", type_name(o->type));
		return CP_EXIT_USAGE;
	}
	if (o->waiters && o->type != CP_SESSION_MUTEX) {
		cp_error(cmd, "--mutex-waiters is for --profile mutex, not %s", type_name(o->type));
		return CP_EXIT_USAGE;
	}
	return 0;
}

char *cp_prof_default_name(const struct cp_prof_options *o, int pid)
{
	return cp_default_output_name(pid, format_ext(o->format));
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

int cp_prof_write_file(const char *cmd, const struct cp_profile *prof,
		       const struct cp_prof_options *o, int pid, const volatile sig_atomic_t *stops,
		       char **written)
{
	struct cp_output out;
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
	err = cp_output_open(&out, cmd, path);
	if (err < 0)
		goto done;
	err = cp_profile_write(prof, o->format, out.f, 0);
	if (err < 0) {
		/* The stream's first write error (ENOSPC) says more than the writer's -EIO. */
		cp_error(strcmp(path, "-") ? path : "standard output", "cannot write profile: %s",
			 strerror(out.err ? -out.err : -err));
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
	if (err == 0) {
		*written = strdup(strcmp(path, "-") ? path : "to standard output");
		if (!*written)
			err = -ENOMEM;
	}
done:
	free(def);
	return err;
}

int cp_prof_write(const char *cmd, struct cp_session *s, const struct cp_prof_options *o, int pid,
		  const volatile sig_atomic_t *stops)
{
	struct cp_session_stats st;
	char *path = NULL;
	int err;

	err = cp_prof_write_file(cmd, cp_session_profile(s), o, pid, stops, &path);
	if (err < 0)
		return err;
	cp_session_get_stats(s, &st);
	cp_note("%llu %s (%llu lost) from %zu thread%s of %zu process%s; wrote %s",
		(unsigned long long)st.samples,
		cp_prof_is_heap(o) ? "allocation samples" : "samples", (unsigned long long)st.lost,
		st.threads, st.threads == 1 ? "" : "s", st.processes, st.processes == 1 ? "" : "es",
		path);
	if (cp_prof_is_heap(o) && !st.heap_connected)
		cp_note("note: the allocation sampler never started (a static binary, or a program "
			"that clears LD_PRELOAD): no allocation was seen");
	else if (cp_prof_is_heap(o) && st.samples == 0)
		cp_note("note: no allocation sampled: the target allocated less than about --rate "
			"bytes (%llu) through the malloc family while profiled",
			(unsigned long long)(o->rate ? o->rate : 524288));
	if (o->verbose) {
		cp_note("stats: %zu events, %zu rings of %zu KiB; %zu locations, %llu stacks ended "
			"[unknown], %llu [truncated]; cprof CPU %.1f ms, %.1f us per sample",
			st.events, st.rings, st.ring_bytes >> 10, st.locations,
			(unsigned long long)st.unknown, (unsigned long long)st.truncated,
			st.cpu_ns / 1e6, st.samples ? st.cpu_ns / 1e3 / st.samples : 0.0);
		if (cp_prof_is_heap(o))
			cp_note("stats: %llu frees of sampled blocks, %zu sampled blocks live, %llu "
				"untracked; ring of %zu KiB; %llu GOT entries redirected in %llu "
				"modules, %llu modules left alone; malloc and free's fast paths %s",
				(unsigned long long)st.heap_frees, st.heap_live,
				(unsigned long long)st.heap_untracked, st.ring_bytes >> 10,
				(unsigned long long)st.heap_patched,
				(unsigned long long)st.heap_modules,
				(unsigned long long)st.heap_skipped,
				st.heap_fast_paths ? "generated next to the allocator" : "compiled");
		if (o->type == CP_SESSION_MUTEX)
			cp_note("stats: %llu woken lock waits left out (their wake was not seen)",
				(unsigned long long)st.unmatched);
	}
	free(path);
	return 0;
}

bool cp_prof_is_heap(const struct cp_prof_options *o)
{
	return o->type == CP_SESSION_HEAP || o->type == CP_SESSION_ALLOCS;
}

void cp_prof_session_opts(const struct cp_prof_options *o, struct cp_session_opts *so)
{
	session_why[0] = '\0';
	so->why = session_why;
	so->whylen = sizeof(session_why);
	so->rate = o->rate;
	so->type = o->type;
	so->waiters = o->waiters;
	so->hz = o->hz;
	so->dwarf = o->dwarf;
	so->stack_size = o->stack_size;
	so->kernel = o->kernel;
}

void cp_prof_note_kernel_refused(const struct cp_session *s, const struct cp_prof_options *o)
{
	struct cp_session_stats st;

	cp_session_get_stats(s, &st);
	if (st.kernel_refused && o->kernel)
		cp_note("note: kernel frames not permitted (kernel.perf_event_paranoid); sampling "
			"user space only");
}
