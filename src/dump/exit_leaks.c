/* The threads and fds a process leaves behind at its exit_group, and their text and JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exit_leaks.h"
#include "fdinfo.h"
#include "util.h"

/* Whether start (sorted by fd) held fd with the same link. */
static bool was_open(const struct cp_fd_entry *start, size_t n, const struct cp_fd_entry *e)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (start[mid].fd == e->fd)
			return !strcmp(start[mid].link, e->link);
		if (start[mid].fd < e->fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * Not a leak whatever its age: standard input, output and error (a child that redirects them
 * after its fork), and the file an interpreter reads its program from (bash keeps the script
 * open as fd 255 for its whole life), which is one of its arguments.
 */
static bool never_a_leak(const struct cp_fd_entry *e, char *const *cmdline)
{
	if (e->fd <= 2)
		return true;
	for (size_t i = 1; cmdline && cmdline[i]; i++)
		if (cmdline[i][0] == '/' && !strcmp(cmdline[i], e->link))
			return true;
	return false;
}

/* The fds of pid not open at its start, described. 0 or -errno. */
static int find_fds(int pid, const struct cp_tracer *tr, struct cp_exit_leaks *l)
{
	const struct cp_fd_entry *start;
	struct cp_fd_entry *now = NULL;
	size_t nstart, nnow = 0;
	int err;

	if (!cp_tracer_start_fds(tr, pid, &start, &nstart))
		return 0;
	err = cp_fd_entries_read(pid, &now, &nnow);
	if (err < 0)
		return err;
	l->fds_known = true;
	l->fds = calloc(nnow ? nnow : 1, sizeof(*l->fds));
	if (!l->fds) {
		cp_fd_entries_free(now, nnow);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nnow; i++) {
		struct cp_exit_fd *x;
		struct cp_fd_desc d;

		if (was_open(start, nstart, &now[i]) || never_a_leak(&now[i], l->dump.cmdline))
			continue;
		x = &l->fds[l->nfds++];
		x->fd = now[i].fd;
		x->object = now[i].link;
		now[i].link = NULL;
		cp_fd_desc_init(&d);
		if (cp_fd_describe(pid, x->fd, false, NULL, NULL, &d) == 0 && d.detail) {
			x->detail = d.detail;
			d.detail = NULL;
		}
		cp_fd_desc_release(&d);
	}
	cp_fd_entries_free(now, nnow);
	return 0;
}

/*
 * A Go program: some thread runs Go's runtime. Its runtime keeps its threads (Ms) for the
 * life of the process and never joins them, so they are no leak (a leaked goroutine is the
 * Go form, and lives on one of them).
 */
static bool is_go(const struct cp_dump *d)
{
	for (size_t i = 0; i < d->nthreads; i++)
		for (size_t j = 0; j < d->threads[i].nframes; j++) {
			const char *fn = d->threads[i].frames[j].function;

			if (fn && (!strcmp(fn, "runtime.main") || !strcmp(fn, "runtime.mstart") ||
				   !strcmp(fn, "runtime.goexit")))
				return true;
		}
	return false;
}

/* The threads other than the exiting one, still alive, each with its creation stack. */
static int find_threads(struct cp_exit_leaks *l, const int *creators)
{
	const struct cp_dump *d = &l->dump;

	l->go_runtime = is_go(d);
	if (l->go_runtime)
		return 0;
	l->threads = calloc(d->nthreads ? d->nthreads : 1, sizeof(*l->threads));
	if (!l->threads)
		return -ENOMEM;
	for (size_t i = 0; i < d->nthreads; i++) {
		const struct cp_dump_thread *th = &d->threads[i];
		struct cp_exit_thread *x;

		/* An exited thread not yet reaped (joined a moment ago) is no leak. */
		if (th->tid == l->tid || th->state == 'Z' || th->state == 'X')
			continue;
		x = &l->threads[l->nthreads++];
		x->index = i;
		for (size_t j = 0; j < d->nextra; j++) {
			if (d->extra[j].tid == th->tid) {
				x->created = &d->extra[j];
				x->creator = creators[j];
			}
		}
	}
	return 0;
}

/* Whether pid has a live thread besides tid (a zombie is one that exited, not reaped yet). */
static bool others_alive(int pid, int tid, const int *tids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct cp_task_stat st;

		if (tids[i] != tid && cp_proc_read_stat(pid, tids[i], &st) == 0 &&
		    st.state != 'Z' && st.state != 'X')
			return true;
	}
	return false;
}

/* The process's exe and command line alone, for a report of fds without a dump. */
static int read_identity(int pid, struct cp_dump *d)
{
	char exe[4096];
	size_t argc = 0;

	memset(d, 0, sizeof(*d));
	d->pid = pid;
	if (cp_proc_read_exe(pid, exe, sizeof(exe)) == 0 && !(d->exe = strdup(exe)))
		return -ENOMEM;
	if (cp_proc_read_cmdline(pid, &d->cmdline, &argc) < 0 || !d->cmdline)
		d->cmdline = calloc(1, sizeof(char *));
	return d->cmdline ? 0 : -ENOMEM;
}

/* Dump pid with the creation stacks of its threads other than l->tid. 0 or -errno. */
static int dump_with_creators(int pid, const struct cp_tracer *tr, struct cp_symbolizer *sym,
			      const int *tids, size_t ntids, struct cp_exit_leaks *l)
{
	const struct cp_thread_snap **extra = calloc(ntids + 1, sizeof(*extra));
	int *creators = calloc(ntids + 1, sizeof(*creators));
	struct cp_dump_opts o = { 0 };
	int err = -ENOMEM;
	size_t n = 0;

	if (!extra || !creators)
		goto out;
	for (size_t i = 0; i < ntids; i++) {
		int creator = 0;
		const struct cp_thread_snap *s = tids[i] == l->tid ? NULL :
			cp_tracer_creation(tr, tids[i], &creator);

		if (s) {
			extra[n] = s;
			creators[n++] = creator;
		}
	}
	o.extra = (const struct cp_thread_snap *const *)extra;
	o.nextra = n;
	err = cp_dump_take(pid, &o, sym, &l->dump);
	if (err < 0)
		goto out;
	l->has_dump = true;
	/* The snapshots are of the creators; name each extra stack by the thread it created. */
	for (size_t i = 0, j = 0; i < ntids && j < l->dump.nextra; i++) {
		int creator;

		if (tids[i] != l->tid && cp_tracer_creation(tr, tids[i], &creator))
			l->dump.extra[j++].tid = tids[i];
	}
	err = find_threads(l, creators);
out:
	free(extra);
	free(creators);
	return err;
}

int cp_exit_leaks_take(int pid, int tid, int code, const struct cp_tracer *tr,
		       struct cp_symbolizer *sym, struct cp_exit_leaks *out)
{
	int *tids = NULL, err;
	size_t ntids = 0;

	memset(out, 0, sizeof(*out));
	out->pid = pid;
	out->tid = tid;
	out->code = code;
	/*
	 * The dump, which costs milliseconds, only when a thread is left: most processes leave
	 * nothing, and their exit must not wait for more than a listing of their threads and fds.
	 */
	err = cp_proc_list_tasks(pid, &tids, &ntids);
	if (err < 0)
		return err;
	if (others_alive(pid, tid, tids, ntids)) {
		err = dump_with_creators(pid, tr, sym, tids, ntids, out);
	} else {
		err = read_identity(pid, &out->dump);
		out->has_dump = err == 0;
	}
	if (err == 0)
		err = find_fds(pid, tr, out);
	free(tids);
	return err;
}

void cp_exit_leaks_release(struct cp_exit_leaks *l)
{
	if (l->has_dump)
		cp_dump_release(&l->dump);
	free(l->threads);
	for (size_t i = 0; i < l->nfds; i++) {
		free(l->fds[i].object);
		free(l->fds[i].detail);
	}
	free(l->fds);
	memset(l, 0, sizeof(*l));
}

static const char *thread_name(const struct cp_dump *d, int tid)
{
	for (size_t i = 0; i < d->nthreads; i++)
		if (d->threads[i].tid == tid)
			return d->threads[i].name;
	return NULL;
}

/* "process 4242 (./app --flag)" */
static void add_process(struct cp_strbuf *sb, const struct cp_exit_leaks *l)
{
	const struct cp_dump *d = &l->dump;

	cp_strbuf_addf(sb, "process %d (", l->pid);
	for (size_t i = 0; d->cmdline && d->cmdline[i]; i++) {
		if (i)
			cp_strbuf_addc(sb, ' ');
		for (const char *p = d->cmdline[i]; *p; p++)
			cp_strbuf_addc(sb, (unsigned char)*p < 0x20 ? '?' : *p);
	}
	cp_strbuf_addc(sb, ')');
}

int cp_exit_leaks_write_text(const struct cp_exit_leaks *l, FILE *f)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	const struct cp_dump *d = &l->dump;
	int err;

	if (!cp_exit_leaks_any(l))
		return 0;
	cp_strbuf_adds(&sb, "LEAKED at exit of ");
	add_process(&sb, l);
	cp_strbuf_addf(&sb, ", exit_group(%d) by thread %d: %zu thread%s and %zu fd%s still open\n",
		       l->code, l->tid, l->nthreads, l->nthreads == 1 ? "" : "s", l->nfds,
		       l->nfds == 1 ? "" : "s");
	for (size_t i = 0; i < l->nthreads; i++) {
		const struct cp_exit_thread *x = &l->threads[i];
		const char *name = x->creator ? thread_name(d, x->creator) : NULL;

		cp_dump_text_thread(d, &d->threads[x->index], &sb);
		if (!x->created) {
			cp_strbuf_adds(&sb, "  created by: unknown (not seen being created)\n");
			continue;
		}
		cp_strbuf_addf(&sb, "  created by thread %d%s%s%s at:\n", x->creator,
			       name ? " \"" : "", name ? name : "", name ? "\"" : "");
		cp_dump_text_frames(x->created, &sb);
	}
	if (l->nfds)
		cp_strbuf_addc(&sb, '\n');
	for (size_t i = 0; i < l->nfds; i++) {
		cp_strbuf_addf(&sb, "fd %d: %s", l->fds[i].fd, l->fds[i].object);
		if (l->fds[i].detail)
			cp_strbuf_addf(&sb, " (%s)", l->fds[i].detail);
		cp_strbuf_addc(&sb, '\n');
	}
	cp_strbuf_addc(&sb, '\n');
	err = cp_strbuf_flush(&sb, f);
	cp_strbuf_release(&sb);
	return err;
}

int cp_exit_leaks_write_json(const struct cp_exit_leaks *l, FILE *f)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	const struct cp_dump *d = &l->dump;
	int err;

	cp_strbuf_addf(&sb, "{ \"pid\": %d, \"exe\": ", l->pid);
	cp_strbuf_add_json_str(&sb, d->exe);
	cp_strbuf_adds(&sb, ", \"cmdline\": [");
	for (size_t i = 0; d->cmdline && d->cmdline[i]; i++) {
		cp_strbuf_adds(&sb, i ? ", " : "");
		cp_strbuf_add_json_str(&sb, d->cmdline[i]);
	}
	cp_strbuf_addf(&sb, "], \"exit_code\": %d, \"exiting_tid\": %d, \"go_runtime\": %s,\n"
			    "  \"threads\": [",
		       l->code, l->tid, l->go_runtime ? "true" : "false");
	for (size_t i = 0; i < l->nthreads; i++) {
		const struct cp_exit_thread *x = &l->threads[i];

		cp_strbuf_adds(&sb, i ? ",\n  { \"thread\":\n" : "\n  { \"thread\":\n");
		cp_dump_json_thread(&d->threads[x->index], &sb);
		cp_strbuf_adds(&sb, ",\n    \"created_by\": ");
		if (!x->created) {
			cp_strbuf_adds(&sb, "null }");
			continue;
		}
		cp_strbuf_addf(&sb, "{ \"tid\": %d, \"frames\": ", x->creator);
		cp_dump_json_frames(x->created, &sb);
		cp_strbuf_adds(&sb, " } }");
	}
	cp_strbuf_adds(&sb, l->nthreads ? " ],\n  \"fds\": " : "],\n  \"fds\": ");
	if (!l->fds_known)
		cp_strbuf_adds(&sb, "null");
	else
		cp_strbuf_addc(&sb, '[');
	for (size_t i = 0; l->fds_known && i < l->nfds; i++) {
		cp_strbuf_addf(&sb, "%s{ \"fd\": %d, \"object\": ", i ? ", " : " ", l->fds[i].fd);
		cp_strbuf_add_json_str(&sb, l->fds[i].object);
		cp_strbuf_adds(&sb, ", \"detail\": ");
		cp_strbuf_add_json_str(&sb, l->fds[i].detail);
		cp_strbuf_adds(&sb, " }");
	}
	if (l->fds_known)
		cp_strbuf_adds(&sb, l->nfds ? " ]" : "]");
	cp_strbuf_adds(&sb, " }");
	err = cp_strbuf_flush(&sb, f);
	cp_strbuf_release(&sb);
	return err;
}
