/* The text thread dump (docs/FORMATS.md "Text"), modelled on Go's goroutine dump. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dump.h"
#include "util.h"

/* Thread ids listed on one group or leak line before "and N more". */
#define TIDS_SHOWN 16

#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_DIM "\033[2m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_BLUE "\033[34m"
#define C_MAGENTA "\033[35m"
#define C_CYAN "\033[36m"

struct out {
	struct cp_strbuf sb;
	bool color;
};

static const char *col(const struct out *o, const char *code)
{
	return o->color ? code : "";
}

static const char *kind_color(enum cp_wait_kind k)
{
	switch (k) {
	case CP_WAIT_RUNNING:
		return C_GREEN;
	case CP_WAIT_MUTEX:
	case CP_WAIT_RWLOCK:
	case CP_WAIT_DISK:
		return C_RED;
	case CP_WAIT_IO_READ:
	case CP_WAIT_IO_WRITE:
	case CP_WAIT_ACCEPT:
	case CP_WAIT_CONNECT:
	case CP_WAIT_POLL:
		return C_CYAN;
	case CP_WAIT_STOPPED:
	case CP_WAIT_ZOMBIE:
		return C_MAGENTA;
	default:
		return C_BLUE;
	}
}

void cp_dump_format_time(uint64_t wall_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(wall_ns / 1000000000ull);
	struct tm tm;

	if (!gmtime_r(&secs, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "unknown");
}

static int cmp_count(const void *pa, const void *pb)
{
	const struct cp_dump_wait_count *a = pa, *b = pb;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return (a->kind > b->kind) - (a->kind < b->kind);
}

size_t cp_dump_count_by_wait(const struct cp_dump *dump, struct cp_dump_wait_count *out)
{
	size_t counts[CP_WAIT__COUNT] = { 0 };
	size_t n = 0;

	for (size_t i = 0; i < dump->nthreads; i++) {
		enum cp_wait_kind k = dump->threads[i].wait.kind;

		counts[(unsigned int)k < CP_WAIT__COUNT ? k : CP_WAIT_UNKNOWN]++;
	}
	for (int k = 0; k < CP_WAIT__COUNT; k++) {
		if (!counts[k])
			continue;
		out[n].kind = (enum cp_wait_kind)k;
		out[n].count = counts[k];
		n++;
	}
	qsort(out, n, sizeof(*out), cmp_count);
	return n;
}

bool cp_dump_wait_unbounded(const struct cp_wait *w)
{
	if (w->timeout_ns != -1 || w->timeout_unknown)
		return false;
	switch (w->kind) {
	case CP_WAIT_ACCEPT:
	case CP_WAIT_CONNECT:
	case CP_WAIT_WAIT_CHILD:
		return true;
	case CP_WAIT_IO_READ:
	case CP_WAIT_IO_WRITE:
		return w->object &&
		       (!strncmp(w->object, "socket:", 7) || !strncmp(w->object, "pipe:", 5));
	default:
		return false;
	}
}

/*
 * A thread name in quotes. Names are chosen by the target and may hold any byte but NUL:
 * escape what would break the one-line-per-thread format or the terminal.
 */
static void add_name(struct out *o, const char *name)
{
	cp_strbuf_addc(&o->sb, '"');
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p == '"' || *p == '\\')
			cp_strbuf_addf(&o->sb, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			cp_strbuf_addf(&o->sb, "\\x%02x", *p);
		else
			cp_strbuf_addc(&o->sb, (char)*p);
	}
	cp_strbuf_addc(&o->sb, '"');
}

/* Free text from elsewhere (wait details, kernel frames) on one line: no control bytes. */
static void add_text(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	/* Runs of printable bytes go in whole; each control byte becomes '?'. */
	while (*p) {
		const unsigned char *run = p;

		while (*p >= 0x20 && *p != 0x7f)
			p++;
		cp_strbuf_add(&o->sb, run, (size_t)(p - run));
		if (*p) {
			cp_strbuf_addc(&o->sb, '?');
			p++;
		}
	}
}

static const struct cp_dump_thread *find_thread(const struct cp_dump *dump, int tid)
{
	size_t lo = 0, hi = dump->nthreads;

	/* Threads are sorted by tid; fall back to a scan if someone built one unsorted. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (dump->threads[mid].tid == tid)
			return &dump->threads[mid];
		if (dump->threads[mid].tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = 0; i < dump->nthreads; i++)
		if (dump->threads[i].tid == tid)
			return &dump->threads[i];
	return NULL;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

/* "[mutex: 0x.. held by thread 42 "name", no timeout]" */
static void add_wait(struct out *o, const struct cp_dump *dump, const struct cp_dump_thread *th,
		     bool with_detail)
{
	const struct cp_wait *w = &th->wait;
	/* The classifier may have said it already. */
	bool unbounded = cp_dump_wait_unbounded(w) &&
			 !(with_detail && w->detail && strstr(w->detail, "no timeout"));

	cp_strbuf_addf(&o->sb, "[%s%s%s", col(o, kind_color(w->kind)), cp_wait_kind_name(w->kind),
		       col(o, C_RESET));
	if (with_detail && w->detail && *w->detail) {
		/* The owner's name helps more than its number: it follows "thread N". */
		const struct cp_dump_thread *owner =
			w->owner_tid > 0 ? find_thread(dump, w->owner_tid) : NULL;
		const char *at = NULL;
		char tail[64];
		size_t tl = 0;

		if (owner) {
			/* In a PID namespace of its own, the owner's number there follows. */
			if (owner->ns_tid > 0)
				tl = (size_t)snprintf(tail, sizeof(tail),
						      "thread %d (%d in its namespace)",
						      w->owner_tid, owner->ns_tid);
			else
				tl = (size_t)snprintf(tail, sizeof(tail), "thread %d",
						      w->owner_tid);
			for (at = strstr(w->detail, tail); at && at[tl] && at[tl] != ',';
			     at = strstr(at + 1, tail))
				;
		}
		cp_strbuf_adds(&o->sb, ": ");
		if (at) {
			char *head = strndup(w->detail, (size_t)(at - w->detail) + tl);

			add_text(o, head ? head : "");
			free(head);
			cp_strbuf_addc(&o->sb, ' ');
			add_name(o, owner->name);
			add_text(o, at + tl);
		} else {
			add_text(o, w->detail);
		}
	}
	if (unbounded)
		cp_strbuf_addf(&o->sb, "%s%sno timeout%s", (with_detail && w->detail && *w->detail)
								   ? ", " : ": ",
			       col(o, C_YELLOW), col(o, C_RESET));
	cp_strbuf_addc(&o->sb, ']');
}

static void add_frames(struct out *o, const struct cp_dump_thread *th)
{
	for (size_t i = 0; i < th->nframes; i++) {
		const struct cp_frame *f = &th->frames[i];

		/* Names and paths come from the target's files: no control bytes through. */
		cp_strbuf_adds(&o->sb, "  #");
		cp_strbuf_add_int(&o->sb, (long long)i);
		cp_strbuf_addc(&o->sb, ' ');
		if (f->function) {
			cp_strbuf_adds(&o->sb, col(o, C_BOLD));
			add_text(o, f->function);
			cp_strbuf_adds(&o->sb, col(o, C_RESET));
			cp_strbuf_adds(&o->sb, "  ");
		}
		if (f->function && f->file) {
			cp_strbuf_adds(&o->sb, col(o, C_DIM));
			add_text(o, f->file);
			if (f->line > 0) {
				cp_strbuf_addc(&o->sb, ':');
				cp_strbuf_add_int(&o->sb, f->line);
			}
			cp_strbuf_adds(&o->sb, col(o, C_RESET));
		} else if (f->module && f->has_offset) {
			cp_strbuf_adds(&o->sb, col(o, C_DIM));
			add_text(o, basename_of(f->module));
			cp_strbuf_addc(&o->sb, '+');
			cp_strbuf_add_hex(&o->sb, f->offset);
			cp_strbuf_adds(&o->sb, col(o, C_RESET));
		} else {
			cp_strbuf_add_hex(&o->sb, f->pc);
		}
		if (f->inlined)
			cp_strbuf_adds(&o->sb, " (inlined)");
		cp_strbuf_addc(&o->sb, '\n');
	}
	if (th->truncated)
		cp_strbuf_addf(&o->sb,
			       "  #%zu [truncated]\n  ... stack truncated after %zu frames (frame cap "
			       "or stack copy limit)\n",
			       th->nframes, th->nframes);
	if (th->unwind_error && th->wait.kind != CP_WAIT_ZOMBIE) {
		/* Errno values read well; libunwind's own codes are only numbers. */
		int e = -th->unwind_error;
		char why[96];

		if (e > 0 && e < 200)
			snprintf(why, sizeof(why), "%s", strerror(e));
		else
			snprintf(why, sizeof(why), "error %d", th->unwind_error);
		if (!th->nframes && th->capture_error == -EBUSY && th->tracer_pid) {
			cp_strbuf_addf(&o->sb, "  (stack not captured: traced by %d (",
				       th->tracer_pid);
			add_text(o, th->tracer_name);
			/* Only a thread that ran through every look is left to a stop. */
			cp_strbuf_adds(&o->sb, ") and running)\n");
		} else if (!th->nframes && th->unwind_error == -EBUSY)
			cp_strbuf_adds(&o->sb,
				       "  (no stack: the thread is traced by another process)\n");
		else if (!th->nframes)
			cp_strbuf_addf(&o->sb, "  (no stack: %s)\n", why);
		else if (!th->truncated)
			/* As in JSON and in profiles: an explicit frame where the stack ends. */
			cp_strbuf_addf(&o->sb, "  #%zu [unknown]\n  ... unwinding stopped early (%s)\n",
				       th->nframes, why);
	}
	if (th->nkernel_frames) {
		cp_strbuf_adds(&o->sb, "  kernel:\n");
		for (size_t i = 0; i < th->nkernel_frames; i++) {
			cp_strbuf_adds(&o->sb, "    ");
			add_text(o, th->kernel_frames[i]);
			cp_strbuf_addc(&o->sb, '\n');
		}
	}
}

static void add_tids(struct out *o, const struct cp_dump *dump, const int *tids, size_t n)
{
	for (size_t i = 0; i < n && i < TIDS_SHOWN; i++) {
		const struct cp_dump_thread *th = find_thread(dump, tids[i]);

		cp_strbuf_addf(&o->sb, "%s%d", i ? ", " : "", tids[i]);
		if (th && th->name[0]) {
			cp_strbuf_addc(&o->sb, ' ');
			add_name(o, th->name);
		}
	}
	if (n > TIDS_SHOWN)
		cp_strbuf_addf(&o->sb, " and %zu more", n - TIDS_SHOWN);
}

static void add_stuck(struct out *o, const struct cp_dump *dump, const struct cp_dump_thread *th)
{
	if (th->stuck == 1)
		cp_strbuf_addf(&o->sb, " %s(stuck %ds)%s", col(o, C_YELLOW), dump->stuck_seconds,
			       col(o, C_RESET));
}

static void add_thread(struct out *o, const struct cp_dump *dump, const struct cp_dump_thread *th)
{
	cp_strbuf_addf(&o->sb, "\n%sthread %d ", col(o, C_BOLD), th->tid);
	if (th->ns_tid > 0)
		cp_strbuf_addf(&o->sb, "(%d in its namespace) ", th->ns_tid);
	add_name(o, th->name);
	cp_strbuf_addf(&o->sb, "%s ", col(o, C_RESET));
	add_wait(o, dump, th, true);
	add_stuck(o, dump, th);
	if (th->goroutine)
		cp_strbuf_addf(&o->sb, " (goroutine %lld)", (long long)th->goroutine);
	cp_strbuf_adds(&o->sb, ":\n");
	add_frames(o, th);
}

static bool same_detail(const struct cp_dump *dump, const struct cp_dump_group *g)
{
	const char *d0 = dump->threads[g->first].wait.detail;

	for (size_t i = 0; i < g->count; i++) {
		const struct cp_dump_thread *th = find_thread(dump, g->tids[i]);
		const char *di = th ? th->wait.detail : NULL;

		if ((d0 == NULL) != (di == NULL) || (d0 && strcmp(d0, di)))
			return false;
	}
	return true;
}

static void add_group(struct out *o, const struct cp_dump *dump, const struct cp_dump_group *g)
{
	const struct cp_dump_thread *th = &dump->threads[g->first];
	size_t nstuck = 0;

	for (size_t i = 0; i < g->count; i++) {
		const struct cp_dump_thread *t = find_thread(dump, g->tids[i]);

		nstuck += t && t->stuck == 1;
	}
	cp_strbuf_addf(&o->sb, "\n%s%zu thread%s%s ", col(o, C_BOLD), g->count,
		       g->count == 1 ? "" : "s", col(o, C_RESET));
	add_wait(o, dump, th, same_detail(dump, g));
	if (nstuck == g->count)
		add_stuck(o, dump, th);
	else if (nstuck)
		cp_strbuf_addf(&o->sb, " %s(%zu stuck %ds)%s", col(o, C_YELLOW), nstuck,
			       dump->stuck_seconds, col(o, C_RESET));
	cp_strbuf_adds(&o->sb, ": ");
	add_tids(o, dump, g->tids, g->count);
	cp_strbuf_addc(&o->sb, '\n');
	add_frames(o, th);
}

static bool is_runtime_module(const char *module)
{
	static const char *const prefixes[] = { "libc.", "libc-", "ld-linux", "libpthread",
						"libstdc++", "libgcc" };
	const char *base;

	if (!module)
		return false;
	base = basename_of(module);
	for (size_t i = 0; i < CP_ARRAY_SIZE(prefixes); i++)
		if (!strncmp(base, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

/* The function a group of threads is stuck in: the first frame outside libc and friends. */
static const char *telling_function(const struct cp_dump_thread *th)
{
	for (size_t i = 0; i < th->nframes; i++) {
		const struct cp_frame *f = &th->frames[i];

		if (f->function && !is_runtime_module(f->module))
			return f->function;
	}
	for (size_t i = 0; i < th->nframes; i++)
		if (th->frames[i].function)
			return th->frames[i].function;
	return NULL;
}

static int add_leaks(struct out *o, const struct cp_dump *dump)
{
	for (size_t i = 0; i < dump->nleaks; i++) {
		const struct cp_dump_leak *lk = &dump->leaks[i];
		const struct cp_dump_thread *th = &dump->threads[lk->first];
		const char *fn = telling_function(th);
		char span[32], age[32];

		cp_strbuf_addf(&o->sb, "  %sLEAK?%s %zu of %zu threads (%zu%%) share one stack, "
				       "waiting in %s",
			       col(o, C_YELLOW C_BOLD), col(o, C_RESET), lk->count, dump->nthreads,
			       lk->count * 100 / dump->nthreads, cp_wait_kind_name(th->wait.kind));
		if (fn) {
			cp_strbuf_adds(&o->sb, " at ");
			add_text(o, fn);
		}
		if (cp_dump_wait_unbounded(&th->wait))
			cp_strbuf_adds(&o->sb, " with no timeout");
		if (lk->verdict.span_ns) {
			cp_leak_format_duration(lk->verdict.span_ns, span, sizeof(span));
			cp_leak_format_duration(lk->verdict.newest_age_ns, age, sizeof(age));
			cp_strbuf_addf(&o->sb, ", created over %s, the last %s ago", span, age);
		}
		if (lk->grown)
			cp_strbuf_addf(&o->sb, ", grew by %zu in %d s", lk->grown,
				       dump->stuck_seconds);
		cp_strbuf_adds(&o->sb, ": ");
		add_tids(o, dump, lk->tids, lk->count);
		cp_strbuf_addc(&o->sb, '\n');
	}
	return 0;
}

static void add_header(struct out *o, const struct cp_dump *dump)
{
	struct cp_dump_wait_count counts[CP_WAIT__COUNT];
	size_t nc = cp_dump_count_by_wait(dump, counts);
	char when[64];

	cp_dump_format_time(dump->time_ns, when, sizeof(when));
	cp_strbuf_addf(&o->sb, "%sprocess %d (", col(o, C_BOLD), dump->pid);
	/* The target chose its argv: keep the header one line and the terminal unharmed. */
	if (dump->cmdline && dump->cmdline[0]) {
		size_t start = o->sb.len;

		for (size_t i = 0; dump->cmdline[i]; i++) {
			cp_strbuf_adds(&o->sb, i ? " " : "");
			add_text(o, dump->cmdline[i]);
		}
		/* Programs that rewrite their argv (PostgreSQL, redis) pad it with spaces. */
		while (o->sb.len > start + 1 && o->sb.buf[o->sb.len - 1] == ' ')
			o->sb.buf[--o->sb.len] = '\0';
	} else if (dump->exe) {
		add_text(o, dump->exe);
	} else {
		/* A zombie has neither: its name is what is left, bracketed like ps does. */
		cp_strbuf_addc(&o->sb, '[');
		add_text(o, dump->nthreads ? dump->threads[0].name : "?");
		cp_strbuf_addc(&o->sb, ']');
	}
	cp_strbuf_addf(&o->sb, ") at %s: %zu thread%s%s\n", when, dump->nthreads,
		       dump->nthreads == 1 ? "" : "s", col(o, C_RESET));
	cp_strbuf_adds(&o->sb, " ");
	for (size_t i = 0; i < nc; i++)
		cp_strbuf_addf(&o->sb, "%s %zu %s", i ? "," : "", counts[i].count,
			       cp_wait_kind_name(counts[i].kind));
	cp_strbuf_addc(&o->sb, '\n');
	if (dump->ns_pid > 0)
		cp_strbuf_addf(&o->sb, "  in its own PID namespace as process %d (thread numbers "
				       "there in parentheses)\n", dump->ns_pid);
	if (dump->tracer_pid) {
		cp_strbuf_addf(&o->sb, "  traced by process %d (", dump->tracer_pid);
		add_text(o, dump->tracer_name);
		cp_strbuf_adds(&o->sb, "): captured without stopping any thread\n");
	}
	if (dump->has_fds)
		cp_strbuf_addf(&o->sb,
			       "  fds: %d (%d socket, %d pipe, %d file, %d anon, %d other)\n",
			       dump->fds.total, dump->fds.socket, dump->fds.pipe, dump->fds.file,
			       dump->fds.anon, dump->fds.other);
	if (dump->stuck_seconds) {
		size_t n = 0;

		for (size_t i = 0; i < dump->nthreads; i++)
			n += dump->threads[i].stuck == 1;
		cp_strbuf_addf(&o->sb,
			       "  watched for %ds: %zu thread%s made no progress (no CPU time, no "
			       "context switch), marked (stuck %ds)\n",
			       dump->stuck_seconds, n, n == 1 ? "" : "s", dump->stuck_seconds);
	}
	if (dump->ndeadlocks)
		cp_strbuf_addf(&o->sb, "  %s%zu deadlock%s%s: see DEADLOCK at the end\n",
			       col(o, C_RED C_BOLD), dump->ndeadlocks,
			       dump->ndeadlocks == 1 ? "" : "s", col(o, C_RESET));
	if (dump->process_exited)
		cp_strbuf_adds(&o->sb, "  the process exited during the dump: these are the "
				       "threads captured before it did\n");
}

/*
 * One DEADLOCK sentence. A cycle reads "A waits for X held by B, which waits for Y held by
 * A": each ", which waits" link starts a line of its own, aligned under the first, so that a
 * long cycle stays readable within 100 columns.
 */
static void add_deadlock(struct out *o, const char *desc)
{
	static const char link[] = ", which waits ";
	const char *p = desc ? desc : "(no description)", *next;

	cp_strbuf_addf(&o->sb, "%sDEADLOCK:%s ", col(o, C_RED C_BOLD), col(o, C_RESET));
	while ((next = strstr(p, link)) != NULL) {
		cp_strbuf_add(&o->sb, p, (size_t)(next - p));
		cp_strbuf_adds(&o->sb, ",\n          ");
		p = next + 2;	/* "which waits ..." */
	}
	cp_strbuf_adds(&o->sb, p);
	cp_strbuf_addc(&o->sb, '\n');
}

void cp_dump_text_thread(const struct cp_dump *dump, const struct cp_dump_thread *th,
			 struct cp_strbuf *sb)
{
	struct out o = { .sb = *sb, .color = false };

	add_thread(&o, dump, th);
	*sb = o.sb;
}

void cp_dump_text_frames(const struct cp_dump_thread *th, struct cp_strbuf *sb)
{
	struct out o = { .sb = *sb, .color = false };

	add_frames(&o, th);
	*sb = o.sb;
}

int cp_dump_write_text(const struct cp_dump *dump, FILE *f, bool color)
{
	struct out o = { .sb = CP_STRBUF_INIT, .color = color };
	size_t n = dump->groups ? dump->ngroups : dump->nthreads;
	int err;

	add_header(&o, dump);
	err = add_leaks(&o, dump);
	cp_dump_text_go_diag_head(dump, &o.sb);
	for (size_t i = 0; i < n && err == 0; i++) {
		if (dump->groups)
			add_group(&o, dump, &dump->groups[i]);
		else
			add_thread(&o, dump, &dump->threads[i]);
		if (o.sb.len >= CP_STRBUF_FLUSH_AT)
			err = cp_strbuf_flush(&o.sb, f);
	}
	if (err == 0 && dump->ndeadlocks)
		cp_strbuf_addc(&o.sb, '\n');
	for (size_t i = 0; i < dump->ndeadlocks && err == 0; i++)
		add_deadlock(&o, dump->deadlocks[i].description);
	if (err == 0 && dump->go_version)
		cp_dump_text_goroutines(dump, &o.sb);
	if (err == 0)
		cp_dump_text_go_diag_tail(dump, &o.sb);
	if (err == 0)
		err = cp_strbuf_flush(&o.sb, f);
	cp_strbuf_release(&o.sb);
	return err;
}
