/* cprof watch: sample a process from /proc and dump its threads when a threshold is crossed. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "dump.h"
#include "metrics.h"
#include "symbolize.h"
#include "util.h"
#include "watch.h"

static const char usage_text[] =
	"usage: cprof watch -p PID [--threads N] [--fds N] [--blocked N] [--rss SIZE]\n"
	"                   [--interval S] [-o DIR]\n"
	"\n"
	"Sample a process from /proc every interval; when a value goes above its threshold,\n"
	"write a thread dump (text and JSON) to DIR as cprof-PID-TIME-REASON.txt/.json, once per\n"
	"crossing (again only after the value has fallen back to the threshold or below).\n"
	"Runs until the process exits or SIGINT/SIGTERM (exit status 0).\n"
	"\n"
	"  -p, --pid PID        the process to watch\n"
	"      --threads N      more than N threads\n"
	"      --fds N          more than N open file descriptors\n"
	"      --blocked N      more than N threads blocked (lock waits, disk sleep, socket, pipe\n"
	"                       or child waits without a timeout)\n"
	"      --rss SIZE       resident memory above SIZE (bytes, or with K, M, G, T)\n"
	"  -i, --interval S     seconds between samples (default 1; decimals allowed)\n"
	"  -o, --output DIR     where to write the dumps (default: the current directory)\n"
	"  -h, --help           this help\n"
	"\n"
	"Example:\n"
	"  cprof watch -p 4242 --threads 500 --rss 2G -o /var/tmp/cprof\n";

struct watch_options {
	const char *pid_arg;
	double interval;
	const char *dir;
	struct cp_watch w;
};

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static int parse_threshold(const char *opt, const char *arg, enum cp_watch_metric m,
			   struct cp_watch *w)
{
	uint64_t v;
	long n;

	if (m == CP_WATCH_RSS) {
		if (cp_watch_parse_size(arg, &v) < 0) {
			cp_error("watch", "invalid %s '%s': want a size (bytes, or with K, M, G)",
				 opt, arg);
			return CP_EXIT_USAGE;
		}
	} else {
		if (cp_parse_long(arg, 0, 100000000, &n) < 0) {
			cp_error("watch", "invalid %s '%s': want a count from 0", opt, arg);
			return CP_EXIT_USAGE;
		}
		v = (uint64_t)n;
	}
	cp_watch_set(w, m, v);
	return 0;
}

static int parse_options(int argc, char **argv, struct watch_options *o)
{
	static const struct option long_options[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 'T' },
		{ "fds", required_argument, NULL, 'F' },
		{ "blocked", required_argument, NULL, 'B' },
		{ "rss", required_argument, NULL, 'R' },
		{ "interval", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c, rc = 0;
	bool any = false;

	opterr = 0;
	optind = 1;
	while (!rc && (c = getopt_long(argc, argv, ":p:i:o:h", long_options, NULL)) != -1) {
		switch (c) {
		case 'p': rc = cp_cmd_pid_option("watch", optarg, &o->pid_arg); break;
		case 'T': rc = parse_threshold("--threads", optarg, CP_WATCH_THREADS, &o->w); break;
		case 'F': rc = parse_threshold("--fds", optarg, CP_WATCH_FDS, &o->w); break;
		case 'B': rc = parse_threshold("--blocked", optarg, CP_WATCH_BLOCKED, &o->w); break;
		case 'R': rc = parse_threshold("--rss", optarg, CP_WATCH_RSS, &o->w); break;
		case 'i':
			errno = 0;
			o->interval = strtod(optarg, &end);
			if (errno || *end || !isfinite(o->interval) || o->interval < 0.01 ||
			    o->interval > 86400) {
				cp_error("watch", "invalid --interval '%s': want seconds from 0.01 "
						  "to 86400",
					 optarg);
				return CP_EXIT_USAGE;
			}
			break;
		case 'o': o->dir = optarg; break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case ':':
			cp_error("watch", "option '%s' needs a value", argv[optind - 1]);
			return CP_EXIT_USAGE;
		default:
			cp_error("watch", "unknown option '%s'", argv[optind - 1]);
			cp_hint("run 'cprof watch --help'");
			return CP_EXIT_USAGE;
		}
	}
	if (rc)
		return rc;
	if (optind < argc) {
		cp_error("watch", "unexpected argument '%s'", argv[optind]);
		return CP_EXIT_USAGE;
	}
	for (int m = 0; m < CP_WATCH__COUNT; m++)
		any |= o->w.enabled[m];
	if (!any) {
		cp_error("watch", "no threshold: give --threads, --fds, --blocked or --rss");
		return CP_EXIT_USAGE;
	}
	return 0;
}

/* Write the dump as DIR/cprof-PID-STAMP-REASON.EXT, atomically. 0 or -errno (reported). */
static int write_one(const struct cp_dump *d, const char *dir, const char *stamp,
		     const char *reason, bool json, char **path)
{
	struct cp_output out;
	int err;

	if (asprintf(path, "%s/cprof-%d-%s-%s.%s", dir, d->pid, stamp, reason,
		     json ? "json" : "txt") < 0) {
		*path = NULL;
		cp_error("watch", "out of memory");
		return -ENOMEM;
	}
	err = cp_output_open(&out, "watch", *path);
	if (err < 0)
		return err;
	err = json ? cp_dump_write_json(d, out.f) : cp_dump_write_text(d, out.f, false);
	if (err < 0) {
		cp_error(*path, "write failed: %s", strerror(-err));
		cp_output_abort(&out);
		return err;
	}
	return cp_output_commit(&out, "watch");
}

/*
 * A crossing in the same second as an earlier one for the same reason: STAMP-2, STAMP-3, ...,
 * so that no dump replaces another.
 */
static void unique_stamp(const char *dir, int pid, const char *reason, char *stamp, size_t size)
{
	char base[24], path[PATH_MAX];

	snprintf(base, sizeof(base), "%.20s", stamp);
	for (int n = 2; n < 1000; n++) {
		snprintf(path, sizeof(path), "%s/cprof-%d-%s-%s.txt", dir, pid, stamp, reason);
		if (access(path, F_OK) != 0)
			return;
		snprintf(stamp, size, "%s-%d", base, n);
	}
}

/* Dump pid's threads for the crossings in mask. 0, or -ESRCH when the target is gone. */
static int dump_for(int pid, unsigned int mask, const uint64_t *values, const struct cp_watch *w,
		    const char *dir, struct cp_symbolizer *sym)
{
	/* Leak evidence for the text file (the JSON has no such lines). */
	struct cp_dump_opts opts = { .flags = CP_DUMP_LEAKS, .cancel = &stop_signal };
	struct cp_dump d = { 0 };
	char reason[64] = "", stamp[32], what[256] = "", *txt = NULL, *json = NULL;
	time_t now = time(NULL);
	struct tm tm;
	int err;

	for (int m = 0; m < CP_WATCH__COUNT; m++) {
		if (!(mask & (1u << m)))
			continue;
		snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason), "%s%s",
			 *reason ? "+" : "", cp_watch_metric_name(m));
		snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s %llu > %llu",
			 *what ? ", " : "", cp_watch_metric_name(m), (unsigned long long)values[m],
			 (unsigned long long)w->threshold[m]);
	}
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	unique_stamp(dir, pid, reason, stamp, sizeof(stamp));
	err = cp_dump_take(pid, &opts, sym, &d);
	if (err == -ESRCH || err == -EINTR)
		return err;
	if (err < 0) {
		cp_cmd_explain_attach_error("watch", pid, err, 0);
		return 0;
	}
	if (write_one(&d, dir, stamp, reason, false, &txt) == 0 &&
	    write_one(&d, dir, stamp, reason, true, &json) == 0)
		cp_note("pid %d: %s: wrote %s and %s", pid, what, txt, json);
	free(txt);
	free(json);
	cp_dump_release(&d);
	return 0;
}

/* The values of the watched metrics. 0 or -errno (-ESRCH: gone). */
static int sample(int pid, const struct cp_watch *w, uint64_t *values)
{
	struct cp_metrics m;
	int err = cp_metrics_collect(pid, cp_watch_metrics_flags(w), &m);

	if (err < 0)
		return err;
	values[CP_WATCH_THREADS] = (uint64_t)m.threads;
	values[CP_WATCH_FDS] = m.open_fds > 0 ? (uint64_t)m.open_fds : 0;
	values[CP_WATCH_BLOCKED] = m.blocked;
	values[CP_WATCH_RSS] = m.rss_bytes;
	return 0;
}

/* Sleep ms or until the target exits (its pidfd becomes readable) or a signal arrives. */
static void wait_interval(int pidfd, int ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	if (pidfd >= 0)
		poll(&p, 1, ms);
	else
		poll(NULL, 0, ms);
}

int cmd_watch(int argc, char **argv)
{
	struct watch_options o = { .interval = 1.0, .dir = "." };
	struct cp_symbolizer *sym = NULL;
	struct sigaction sa = { .sa_handler = on_stop };
	struct stat st;
	uint64_t values[CP_WATCH__COUNT];
	int pid = 0, pidfd, rc, err;

	rc = parse_options(argc, argv, &o);
	if (rc)
		return rc < 0 ? CP_EXIT_OK : rc;
	rc = cp_cmd_check_pid("watch", o.pid_arg, false, &pid);
	if (rc)
		return rc;
	if (stat(o.dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(o.dir, W_OK) < 0) {
		cp_error(o.dir, "not a writable directory");
		return CP_EXIT_FAILURE;
	}
	sym = cp_sym_new();
	if (!sym) {
		cp_error("watch", "out of memory");
		return CP_EXIT_FAILURE;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	cp_note("watching pid %d every %g s", pid, o.interval);
	rc = CP_EXIT_OK;
	while (!stop_signal) {
		unsigned int crossed;

		err = sample(pid, &o.w, values);
		if (err == -ESRCH)
			break;
		if (err < 0) {
			cp_error("watch", "pid %d: cannot read /proc: %s", pid, strerror(-err));
			rc = CP_EXIT_FAILURE;
			break;
		}
		crossed = cp_watch_check(&o.w, values);
		if (crossed && dump_for(pid, crossed, values, &o.w, o.dir, sym) == -ESRCH)
			break;
		wait_interval(pidfd, (int)(o.interval * 1000));
	}
	if (stop_signal)
		cp_note("stopped by %s", strsignal(stop_signal));
	else if (rc == CP_EXIT_OK)
		cp_note("pid %d exited", pid);
	if (pidfd >= 0)
		close(pidfd);
	cp_sym_free(sym);
	return rc;
}
