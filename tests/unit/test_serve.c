/*
 * Unit tests for src/serve: parameter, listen-address, Host and credential checks; the
 * endpoint table's answers that need no target or a gone one; the Prometheus exposition;
 * /proc metrics of this process; watch's thresholds and sizes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "metrics.h"
#include "proc.h"
#include "profile.h"
#include "serve_internal.h"
#include "watch.h"

static void test_params(void)
{
	char why[160];
	int v = -1;

	CHECK(cp_serve_param_seconds(NULL, 30, 300, &v, why, sizeof(why)) == 0 && v == 30);
	CHECK(cp_serve_param_seconds("", 30, 10, &v, why, sizeof(why)) == 0 && v == 10,
	      "the default is capped too");
	CHECK(cp_serve_param_seconds("5", 30, 300, &v, why, sizeof(why)) == 0 && v == 5);
	CHECK(cp_serve_param_seconds("0", 30, 300, &v, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "bad seconds '0'"), "%s", why);
	CHECK(cp_serve_param_seconds("-3", 30, 300, &v, why, sizeof(why)) == -EINVAL);
	CHECK(cp_serve_param_seconds("2x", 30, 300, &v, why, sizeof(why)) == -EINVAL);
	CHECK(cp_serve_param_seconds("301", 30, 300, &v, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "exceeds the limit of 300"), "%s", why);
	CHECK(!strchr(why, '\n'), "one line");
	CHECK(cp_serve_param_int("debug", "2", 0, 0, 2, &v, why, sizeof(why)) == 0 && v == 2);
	CHECK(cp_serve_param_int("debug", "3", 0, 0, 2, &v, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "bad debug '3'"), "%s", why);
}

static void test_listen(void)
{
	struct sockaddr_storage ss;
	bool lo = false;

	CHECK(cp_serve_parse_listen("127.0.0.1:6060", &ss, &lo) == 0 && lo &&
	      ss.ss_family == AF_INET);
	CHECK(cp_serve_parse_listen("localhost:0", &ss, &lo) == 0 && lo);
	CHECK(cp_serve_parse_listen("[::1]:6060", &ss, &lo) == 0 && lo && ss.ss_family == AF_INET6);
	CHECK(cp_serve_parse_listen("0.0.0.0:6060", &ss, &lo) == 0 && !lo);
	CHECK(cp_serve_parse_listen(":6060", &ss, &lo) == 0 && !lo, "empty host is every address");
	CHECK(cp_serve_parse_listen("[::]:1", &ss, &lo) == 0 && !lo);
	CHECK(cp_serve_parse_listen("10.1.2.3:80", &ss, &lo) == 0 && !lo);
	CHECK(cp_serve_parse_listen("127.0.0.1", &ss, &lo) == -EINVAL, "no port");
	CHECK(cp_serve_parse_listen("127.0.0.1:65536", &ss, &lo) == -EINVAL);
	CHECK(cp_serve_parse_listen("example.com:80", &ss, &lo) == -EINVAL, "names are not resolved");
	CHECK(cp_serve_parse_listen("[::1:80", &ss, &lo) == -EINVAL);
}

static void test_host(void)
{
	CHECK(cp_serve_host_allowed("127.0.0.1:6060", "127.0.0.1", false));
	CHECK(cp_serve_host_allowed("localhost:16060", "127.0.0.1", false), "ssh -L changes ports");
	CHECK(cp_serve_host_allowed("LOCALHOST", "127.0.0.1", false));
	CHECK(cp_serve_host_allowed("[::1]:6060", "127.0.0.1", false));
	CHECK(cp_serve_host_allowed("127.0.0.2", "127.0.0.1", false));
	CHECK(!cp_serve_host_allowed("evil.example:6060", "127.0.0.1", false), "DNS rebinding");
	CHECK(!cp_serve_host_allowed("localhost.evil.example", "127.0.0.1", false));
	CHECK(!cp_serve_host_allowed("10.0.0.1:6060", "127.0.0.1", false));
	CHECK(!cp_serve_host_allowed(NULL, "127.0.0.1", false), "HTTP/1.0 without Host");
	CHECK(!cp_serve_host_allowed("", "127.0.0.1", false));
	CHECK(cp_serve_host_allowed("10.0.0.1:6060", "10.0.0.1", false), "the listen address");
	CHECK(cp_serve_host_allowed("svc.example:6060", "0.0.0.0", true), "every address: any host");
}

static void test_credentials(void)
{
	char why[128], *c = NULL;

	CHECK(cp_serve_parse_credentials("alice:s3cr:et\n", &c, why, sizeof(why)) == 0);
	CHECK(c && !strcmp(c, "alice:s3cr:et"), "%s", c);
	CHECK(cp_serve_credentials_match(c, "alice", "s3cr:et"));
	CHECK(!cp_serve_credentials_match(c, "alice", "s3cr:eT"));
	CHECK(!cp_serve_credentials_match(c, "alice", "s3cr:e"), "a prefix");
	CHECK(!cp_serve_credentials_match(c, "alice", "s3cr:et!"), "longer");
	CHECK(!cp_serve_credentials_match(c, "alicE", "s3cr:et"));
	CHECK(!cp_serve_credentials_match(c, NULL, NULL), "no credentials sent");
	CHECK(!cp_serve_credentials_match(c, "", ""));
	free(c);
	CHECK(cp_serve_parse_credentials("nocolon\n", &c, why, sizeof(why)) == -EINVAL);
	CHECK(cp_serve_parse_credentials(":pass", &c, why, sizeof(why)) == -EINVAL, "empty user");
	CHECK(cp_serve_parse_credentials("alice:\n", &c, why, sizeof(why)) == -EINVAL, "empty password");
	CHECK(cp_serve_parse_credentials("a:b\nc:d\n", &c, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "more than one line"), "%s", why);
}

/* A request for the table alone: parameters from a NULL-terminated name/value list. */
struct fake {
	const char *const *kv;
};

static const char *fake_param(void *ctx, const char *name)
{
	struct fake *f = ctx;

	for (size_t i = 0; f->kv && f->kv[i]; i += 2)
		if (!strcmp(f->kv[i], name))
			return f->kv[i + 1];
	return NULL;
}

static bool fake_gone(void *ctx)
{
	return true;
}

static int ask(struct cp_serve *srv, const char *path, const char *const *kv,
	       struct cp_serve_reply *rp)
{
	struct fake f = { kv };
	struct cp_serve_request rq = { srv, path, fake_param, fake_gone, &f };

	cp_serve_dispatch(&rq, rp);
	return rp->status;
}

static void test_endpoints(void)
{
	struct cp_serve srv = { .seconds_max = 300, .hz = 99 };
	struct cp_serve_reply rp;
	struct cp_task_stat st;
	pid_t child;

	pthread_mutex_init(&srv.probe_lock, NULL);
	CHECK(ask(&srv, "/debug/pprof/trace", NULL, &rp) == 501);
	CHECK(rp.body && strstr(rp.body, "Go runtime feature") &&
	      !strcmp(rp.content_type, CP_SERVE_TEXT));
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/nosuch", NULL, &rp) == 404);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/symbol", NULL, &rp) == 200);
	CHECK(rp.body && !strcmp(rp.body, "num_symbols: 1\n"), "%s", rp.body);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/", NULL, &rp) == 200);
	CHECK(rp.body && strstr(rp.body, "/debug/pprof/goroutine?debug=2") &&
	      strstr(rp.body, "No target"));
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/cmdline", NULL, &rp) == 404, "no target given");
	cp_serve_reply_release(&rp);

	/* A target that exits: its paths answer 410. */
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	CHECK(cp_proc_read_stat(child, 0, &st) == 0);
	srv.targets[0] = (struct cp_serve_target){ .pid = child, .starttime = st.starttime };
	srv.ntargets = 1;
	CHECK(ask(&srv, "/debug/pprof/cmdline", NULL, &rp) == 200);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/profile", (const char *const[]){ "seconds", "0", NULL },
		  &rp) == 400);
	CHECK(rp.body && !strncmp(rp.body, "bad seconds", 11), "%s", rp.body);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/goroutine", (const char *const[]){ "debug", "9", NULL },
		  &rp) == 400);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/cprof/dump", (const char *const[]){ "format", "xml", NULL },
		  &rp) == 400);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/debug/pprof/cmdline", (const char *const[]){ "pid", "1", NULL }, &rp) ==
	      400, "a pid not given at start");
	CHECK(rp.body && strstr(rp.body, "not one of the targets"), "%s", rp.body);
	cp_serve_reply_release(&rp);
	srv.targets[0].busy[CP_SERVE_KIND_CPU] = 1;
	CHECK(ask(&srv, "/debug/pprof/profile", NULL, &rp) == 429, "one CPU profile at a time");
	cp_serve_reply_release(&rp);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	CHECK(ask(&srv, "/debug/pprof/cmdline", NULL, &rp) == 410);
	CHECK(rp.body && strstr(rp.body, "exited"), "%s", rp.body);
	cp_serve_reply_release(&rp);
	CHECK(ask(&srv, "/metrics", NULL, &rp) == 200, "metrics without live targets");
	cp_serve_reply_release(&rp);
	pthread_mutex_destroy(&srv.probe_lock);
}

static void test_metrics_format(void)
{
	struct cp_metrics m[2] = {
		{ .pid = 10, .cpu_seconds = 1.5, .rss_bytes = 4096, .vm_bytes = 8192, .open_fds = 7,
		  .max_fds = 1024, .start_time = 1700000000.25, .threads = 3, .waits = true,
		  .unbounded_io = 2, .deadlocked = 1 },
		{ .pid = 11, .open_fds = -1, .max_fds = -1, .threads = 1 },
	};
	struct cp_strbuf sb = CP_STRBUF_INIT;

	m[0].by_state[CP_STATE_SLEEPING] = 3;
	m[0].by_wait[CP_WAIT_IO_READ] = 2;
	cp_metrics_write(&sb, m, 2);
	CHECK(!sb.err && sb.buf);
	if (!sb.buf)
		return;
	CHECK(strstr(sb.buf, "# TYPE process_cpu_seconds_total counter\n"
			     "process_cpu_seconds_total{pid=\"10\"} 1.50\n"
			     "process_cpu_seconds_total{pid=\"11\"} 0.00\n"),
	      "%s", sb.buf);
	CHECK(strstr(sb.buf, "process_open_fds{pid=\"10\"} 7\n"));
	CHECK(!strstr(sb.buf, "process_open_fds{pid=\"11\"}"), "unreadable values are left out");
	CHECK(strstr(sb.buf, "cprof_threads{pid=\"10\",state=\"sleeping\"} 3\n"));
	CHECK(strstr(sb.buf, "cprof_threads_waiting{pid=\"10\",wait=\"io-read\"} 2\n"));
	CHECK(!strstr(sb.buf, "cprof_threads_waiting{pid=\"11\""), "no waits classified for 11");
	CHECK(strstr(sb.buf, "cprof_unbounded_io_waits{pid=\"10\"} 2\n"));
	CHECK(strstr(sb.buf, "cprof_deadlocked_threads{pid=\"10\"} 1\n"));
	/* Each family's HELP and TYPE once. */
	{
		const char *h = strstr(sb.buf, "# HELP cprof_threads ");

		CHECK(h && !strstr(h + 1, "# HELP cprof_threads "));
	}
	CHECK(sb.buf[sb.len - 1] == '\n');
	cp_strbuf_release(&sb);
}

static void test_metrics_self(void)
{
	struct cp_metrics m;
	size_t n = 0;

	CHECK(cp_metrics_collect(getpid(), CP_METRICS_WAITS | CP_METRICS_FDS | CP_METRICS_STATES,
				 &m) == 0);
	CHECK(m.threads >= 1 && m.rss_bytes > 0 && m.vm_bytes >= m.rss_bytes);
	CHECK(m.open_fds >= 3, "%ld", m.open_fds);
	CHECK(m.start_time > 1e9, "%f", m.start_time);
	CHECK(m.waits);
	for (int s = 0; s < CP_STATE__COUNT; s++)
		n += m.by_state[s];
	CHECK(n == (size_t)m.threads, "%zu of %ld", n, m.threads);
	CHECK(m.by_state[CP_STATE_RUNNING] >= 1, "this thread runs");
	CHECK(cp_metrics_collect(0x7ffffff0, 0, &m) == -ESRCH);
}

static void test_watch(void)
{
	struct cp_watch w = { 0 };
	uint64_t v[CP_WATCH__COUNT] = { 0 }, sz = 0;

	cp_watch_set(&w, CP_WATCH_THREADS, 10);
	cp_watch_set(&w, CP_WATCH_RSS, 1000);
	v[CP_WATCH_THREADS] = 10;
	CHECK(cp_watch_check(&w, v) == 0, "at the threshold is not above");
	v[CP_WATCH_THREADS] = 11;
	CHECK(cp_watch_check(&w, v) == 1u << CP_WATCH_THREADS);
	v[CP_WATCH_THREADS] = 50;
	CHECK(cp_watch_check(&w, v) == 0, "once per crossing");
	v[CP_WATCH_THREADS] = 5;
	v[CP_WATCH_FDS] = 1u << 20;
	CHECK(cp_watch_check(&w, v) == 0, "fds not watched");
	v[CP_WATCH_THREADS] = 12;
	v[CP_WATCH_RSS] = 2000;
	CHECK(cp_watch_check(&w, v) == ((1u << CP_WATCH_THREADS) | (1u << CP_WATCH_RSS)),
	      "re-armed below");
	CHECK(!strcmp(cp_watch_metric_name(CP_WATCH_BLOCKED), "blocked"));
	CHECK(cp_watch_metrics_flags(&w) == 0);
	cp_watch_set(&w, CP_WATCH_BLOCKED, 1);
	CHECK(cp_watch_metrics_flags(&w) & CP_METRICS_WAITS);

	CHECK(cp_watch_parse_size("4096", &sz) == 0 && sz == 4096);
	CHECK(cp_watch_parse_size("2G", &sz) == 0 && sz == 2ull << 30);
	CHECK(cp_watch_parse_size("512MiB", &sz) == 0 && sz == 512ull << 20);
	CHECK(cp_watch_parse_size("100k", &sz) == 0 && sz == 100ull << 10);
	CHECK(cp_watch_parse_size("1X", &sz) == -EINVAL);
	CHECK(cp_watch_parse_size("-1", &sz) == -EINVAL);
	CHECK(cp_watch_parse_size("99999999999T", &sz) == -ERANGE);
}

/* The goroutine/count profile that goroutine?debug=0 sends. */
static void test_count_profile(void)
{
	struct cp_profile *prof = cp_profile_new_count("goroutine", "count"), *back = NULL;
	struct cp_profile *cpu = cp_profile_new();
	struct cp_profile_line line = { .function = "handle_request", .file = "leak.c", .line = 25 };
	uint64_t loc = 0;
	char *buf = NULL, *text = NULL;
	size_t len = 0, tlen = 0;
	FILE *f;

	CHECK(prof && cpu);
	if (!prof || !cpu)
		return;
	CHECK(cp_profile_add_location(prof, 42, 0x1000, 0, &line, 1, &loc) == 0 && loc);
	CHECK(cp_profile_add_count(prof, &loc, 1, 42, 0, NULL, 3) == 0);
	CHECK(cp_profile_add_count(prof, &loc, 1, 42, 0, NULL, 2) == 0, "merged");
	CHECK(cp_profile_add_count(prof, &loc, 1, 42, 43, "one", 1) == 0);
	CHECK(cp_profile_sample_total(prof) == 6, "%llu",
	      (unsigned long long)cp_profile_sample_total(prof));
	CHECK(cp_profile_add_sample(prof, &loc, 1, 42, 43, "x", 1) == -EINVAL, "not a CPU profile");
	CHECK(cp_profile_add_count(cpu, NULL, 0, 42, 0, NULL, 1) == -EINVAL, "not a count profile");
	f = open_memstream(&buf, &len);
	CHECK(f && cp_profile_write(prof, CP_PROFILE_PPROF, f, 0) == 0);
	if (f)
		fclose(f);
	CHECK(buf && cp_profile_read(buf, len, &back) == 0, "pprof reads back");
	f = open_memstream(&text, &tlen);
	CHECK(f && back && cp_profile_write(back, CP_PROFILE_TEXT, f, 0) == 0);
	if (f)
		fclose(f);
	CHECK(text && strstr(text, "Type: goroutine") && strstr(text, "handle_request"), "%s",
	      text);
	free(buf);
	free(text);
	cp_profile_free(back);
	cp_profile_free(cpu);
	cp_profile_free(prof);
}

int main(void)
{
	test_params();
	test_listen();
	test_host();
	test_credentials();
	test_endpoints();
	test_metrics_format();
	test_metrics_self();
	test_watch();
	test_count_profile();
	return check_done("test_serve");
}
