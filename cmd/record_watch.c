/* cprof record --timeout and --leaks: a hung command's threads, and what each process leaks. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump.h"
#include "exit_leaks.h"
#include "proc.h"
#include "record_watch.h"
#include "symbolize.h"
#include "tracer.h"
#include "util.h"

#define TREE_MAX 4096

int record_watch_start(struct record_watch *w, int root)
{
	int err;

	w->root = root;
	if (!w->leaks)
		return 0;
	err = cp_tracer_new(root, &w->tracer);
	if (err < 0) {
		cp_error("record", "--leaks: cannot trace the command: %s", strerror(-err));
		if (err == -EPERM)
			cp_hint("ptrace is refused (kernel.yama.ptrace_scope, seccomp or a container "
				"policy); run without --leaks");
		return CP_EXIT_FAILURE;
	}
	if (w->leaks_json) {
		if (cp_output_open(&w->json, "record", w->leaks_json) < 0)
			return CP_EXIT_FAILURE;
		w->json_open = true;
		fputs("{ \"processes\": [", w->json.f);
	}
	return 0;
}

/* Every live process whose parent chain reaches root, root first. Returns how many. */
static size_t process_tree(int root, int *out, size_t max)
{
	struct { int pid, ppid; } *all = NULL;
	size_t n = 0, alloc = 0, k = 0;
	struct dirent *de;
	DIR *dir;

	out[k++] = root;
	dir = opendir("/proc");
	if (!dir)
		return k;
	while ((de = readdir(dir))) {
		struct cp_task_stat st;
		long pid;

		if (cp_parse_long(de->d_name, 1, 1 << 30, &pid) < 0 ||
		    cp_proc_read_stat((int)pid, 0, &st) < 0 || st.state == 'Z')
			continue;
		if (cp_grow((void **)&all, &alloc, n + 1, sizeof(*all)) < 0)
			break;
		all[n].pid = (int)pid;
		all[n++].ppid = st.ppid;
	}
	closedir(dir);
	/* Breadth first: each process found adds its children. */
	for (size_t i = 0; i < k; i++)
		for (size_t j = 0; j < n && k < max; j++)
			if (all[j].ppid == out[i] && all[j].pid != root)
				out[k++] = all[j].pid;
	free(all);
	return k;
}

static struct cp_symbolizer *symbolizer(struct record_watch *w)
{
	if (!w->sym)
		w->sym = cp_sym_new();
	return w->sym;
}

/* The hang dump: every process of the tree, text on stderr, JSON to w->hang_json. */
static void dump_tree(struct record_watch *w, const int *pids, size_t n)
{
	struct cp_dump_opts o = { .flags = CP_DUMP_LEAKS };
	struct cp_output out;
	bool json = w->hang_json && cp_output_open(&out, "record", w->hang_json) == 0;
	size_t ndumped = 0;

	cp_note("timeout: %s (pid %d) ran %g s; dumping %zu process%s",
		w->name ? w->name : "the command", w->root, w->timeout, n, n == 1 ? "" : "es");
	if (json)
		fprintf(out.f, "{ \"timeout_seconds\": %g, \"processes\": [", w->timeout);
	for (size_t i = 0; i < n; i++) {
		struct cp_dump d;

		if (cp_dump_take(pids[i], &o, symbolizer(w), &d) < 0)
			continue;
		fflush(stderr);
		cp_dump_write_text(&d, stderr, false);
		if (json) {
			fputs(ndumped ? ",\n" : "\n", out.f);
			cp_dump_write_json(&d, out.f);
		}
		ndumped++;
		cp_dump_release(&d);
	}
	if (json) {
		fputs("] }\n", out.f);
		if (cp_output_commit(&out, "record") == 0)
			cp_note("wrote the hang dump to %s", w->hang_json);
	}
}

static void signal_tree(int root, int sig)
{
	int pids[TREE_MAX];
	size_t n = process_tree(root, pids, TREE_MAX);

	/* Children first, so that a parent does not see them die before it is told to stop. */
	while (n--)
		kill(pids[n], sig);
}

static void check_timeout(struct record_watch *w, uint64_t now)
{
	if (!w->timeout)
		return;
	if (!w->timed_out && now - w->start_ns >= (uint64_t)(w->timeout * 1e9)) {
		int pids[TREE_MAX];
		size_t n = process_tree(w->root, pids, TREE_MAX);

		w->timed_out = true;
		dump_tree(w, pids, n);
		cp_note("timeout: sending SIGTERM, SIGKILL in %g s", w->kill_after);
		signal_tree(w->root, SIGTERM);
		w->term_ns = cp_now_ns();
	} else if (w->timed_out && !w->killed &&
		   now - w->term_ns >= (uint64_t)(w->kill_after * 1e9)) {
		w->killed = true;
		cp_note("timeout: sending SIGKILL");
		signal_tree(w->root, SIGKILL);
	}
}

/* A process of the tree entering exit_group: what it leaves behind. */
static void on_exiting(struct record_watch *w, const struct cp_trace_event *ev)
{
	struct cp_exit_leaks l;
	int err;

	w->nchecked++;
	err = cp_exit_leaks_take(ev->pid, ev->tid, ev->code, w->tracer, symbolizer(w), &l);
	if (err < 0) {
		cp_error("record", "--leaks: cannot look at process %d as it exits: %s", ev->pid,
			 strerror(-err));
	} else if (cp_exit_leaks_any(&l)) {
		w->nleaked++;
		fflush(stderr);
		cp_exit_leaks_write_text(&l, stderr);
		if (w->json_open) {
			fputs(w->nleaked > 1 ? ",\n" : "\n", w->json.f);
			cp_exit_leaks_write_json(&l, w->json.f);
		}
	}
	cp_exit_leaks_release(&l);
	cp_tracer_resume(w->tracer, ev);
}

void record_watch_tick(struct record_watch *w, uint64_t now, bool *reaped, int *status)
{
	struct cp_trace_event ev;

	while (w->tracer && !*reaped && cp_tracer_next(w->tracer, &ev) == 1) {
		if (ev.kind == CP_TRACE_EXITING) {
			on_exiting(w, &ev);
		} else if (ev.kind == CP_TRACE_ROOT_GONE) {
			*reaped = true;
			*status = ev.status;
		}
	}
	check_timeout(w, now);
}

int record_watch_wait_ms(const struct record_watch *w, uint64_t now)
{
	uint64_t at;

	if (!w->timeout || w->killed)
		return -1;
	at = w->timed_out ? w->term_ns + (uint64_t)(w->kill_after * 1e9)
			  : w->start_ns + (uint64_t)(w->timeout * 1e9);
	return at <= now ? 0 : (int)((at - now + 999999) / 1000000);
}

int record_watch_finish(struct record_watch *w)
{
	int err = 0;

	if (w->finished)
		return 0;
	w->finished = true;
	if (w->json_open) {
		fprintf(w->json.f, "%s], \"processes_checked\": %zu, \"leaked\": %s }\n",
			w->nleaked ? " " : "", w->nchecked, w->nleaked ? "true" : "false");
		err = cp_output_commit(&w->json, "record");
		w->json_open = false;
	}
	if (w->leaks && !w->nleaked)
		cp_note("leaks: none (%zu process%s checked at exit)", w->nchecked,
			w->nchecked == 1 ? "" : "es");
	cp_tracer_free(w->tracer);
	w->tracer = NULL;
	if (w->sym)
		cp_sym_free(w->sym);
	w->sym = NULL;
	return err;
}
