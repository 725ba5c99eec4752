/* The JSON thread dump (docs/FORMATS.md, "JSON"): every field present, null for no value. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "util.h"

static void add_hex(struct cp_strbuf *sb, uint64_t v)
{
	cp_strbuf_addc(sb, '"');
	cp_strbuf_add_hex(sb, v);
	cp_strbuf_addc(sb, '"');
}

static void add_int_or_null(struct cp_strbuf *sb, bool present, long long v)
{
	if (present)
		cp_strbuf_add_int(sb, v);
	else
		cp_strbuf_adds(sb, "null");
}

/*
 * A stack cut short ends in a pseudo-frame, as in profiles (docs/FORMATS.md, "Frames"):
 * "[truncated]" at the depth or stack-copy cap, "[unknown]" when unwinding failed part-way.
 * Its pc, module and offset are null: no real address stands behind it.
 */
static const char *stack_end_marker(const struct cp_dump_thread *th)
{
	if (!th || !th->nframes)
		return NULL;
	if (th->truncated)
		return "[truncated]";
	if (th->unwind_error && th->wait.kind != CP_WAIT_ZOMBIE)
		return "[unknown]";
	return NULL;
}

static void add_frames(struct cp_strbuf *sb, const struct cp_frame *fr, size_t n,
		       const char *end_marker)
{
	cp_strbuf_addc(sb, '[');
	for (size_t i = 0; i < n; i++) {
		const struct cp_frame *f = &fr[i];

		cp_strbuf_adds(sb, i ? ",\n        { \"pc\": " : "\n        { \"pc\": ");
		add_hex(sb, f->pc);
		cp_strbuf_adds(sb, ", \"function\": ");
		cp_strbuf_add_json_str(sb, f->function);
		cp_strbuf_adds(sb, ", \"file\": ");
		cp_strbuf_add_json_str(sb, f->file);
		cp_strbuf_adds(sb, ", \"line\": ");
		add_int_or_null(sb, f->line > 0, f->line);
		cp_strbuf_adds(sb, ", \"module\": ");
		cp_strbuf_add_json_str(sb, f->module);
		cp_strbuf_adds(sb, ", \"offset\": ");
		if (f->has_offset)
			add_hex(sb, f->offset);
		else
			cp_strbuf_adds(sb, "null");
		cp_strbuf_adds(sb, f->inlined ? ", \"inlined\": true }" : ", \"inlined\": false }");
	}
	if (end_marker && n) {
		cp_strbuf_adds(sb, ",\n        { \"pc\": null, \"function\": ");
		cp_strbuf_add_json_str(sb, end_marker);
		cp_strbuf_adds(sb, ", \"file\": null, \"line\": null, \"module\": null, "
				   "\"offset\": null, \"inlined\": false }");
	}
	cp_strbuf_adds(sb, n ? " ]" : "]");
}

void cp_dump_json_frame_list(struct cp_strbuf *sb, const struct cp_frame *fr, size_t n)
{
	add_frames(sb, fr, n, NULL);
}

static void add_tids(struct cp_strbuf *sb, const int *tids, size_t n)
{
	cp_strbuf_addc(sb, '[');
	for (size_t i = 0; i < n; i++)
		cp_strbuf_addf(sb, "%s%d", i ? ", " : "", tids[i]);
	cp_strbuf_addc(sb, ']');
}

static void add_wait(struct cp_strbuf *sb, const struct cp_wait *w)
{
	cp_strbuf_adds(sb, "{ \"kind\": ");
	cp_strbuf_add_json_str(sb, cp_wait_kind_name(w->kind));
	cp_strbuf_adds(sb, ", \"detail\": ");
	cp_strbuf_add_json_str(sb, w->detail);
	cp_strbuf_adds(sb, ", \"syscall\": ");
	cp_strbuf_add_json_str(sb, w->syscall);
	cp_strbuf_adds(sb, ", \"address\": ");
	if (w->has_address)
		add_hex(sb, w->address);
	else
		cp_strbuf_adds(sb, "null");
	cp_strbuf_adds(sb, ", \"owner_tid\": ");
	add_int_or_null(sb, w->owner_tid > 0, w->owner_tid);
	cp_strbuf_adds(sb, ", \"fd\": ");
	add_int_or_null(sb, w->fd >= 0, w->fd);
	cp_strbuf_adds(sb, ", \"object\": ");
	cp_strbuf_add_json_str(sb, w->object);
	cp_strbuf_adds(sb, ", \"timeout\": ");
	add_int_or_null(sb, w->timeout_ns >= 0, (long long)w->timeout_ns);
	cp_strbuf_adds(sb, " }");
}

/* Why th's stack was not captured: "traced by 4242 (gdb)", the errno's text, or null. */
static void add_capture_error(struct cp_strbuf *sb, const struct cp_dump_thread *th)
{
	char why[96];
	int e = -th->capture_error;

	if (!th->capture_error) {
		cp_strbuf_adds(sb, "null");
		return;
	}
	if (th->capture_error == -EBUSY && th->tracer_pid)
		snprintf(why, sizeof(why), "traced by %d (%s)", th->tracer_pid, th->tracer_name);
	else if (e > 0 && e < 200)
		snprintf(why, sizeof(why), "%s", strerror(e));
	else
		snprintf(why, sizeof(why), "error %d", th->capture_error);
	cp_strbuf_add_json_str(sb, why);
}

/* One thread; go: of a Go program (its "goroutine" field is present, null when none). */
static void add_thread(struct cp_strbuf *sb, const struct cp_dump_thread *th, bool go)
{
	char state[2] = { th->state ? th->state : '?', '\0' };

	cp_strbuf_adds(sb, "    { \"tid\": ");
	cp_strbuf_add_int(sb, th->tid);
	cp_strbuf_adds(sb, ", \"ns_tid\": ");
	add_int_or_null(sb, th->ns_tid > 0, th->ns_tid);
	cp_strbuf_adds(sb, ", \"name\": ");
	cp_strbuf_add_json_str(sb, th->name);
	cp_strbuf_adds(sb, ", \"state\": ");
	cp_strbuf_add_json_str(sb, state);
	cp_strbuf_adds(sb, ",\n      \"wait\": ");
	add_wait(sb, &th->wait);
	cp_strbuf_adds(sb, ",\n      \"stuck\": ");
	cp_strbuf_adds(sb, th->stuck < 0 ? "null" : th->stuck ? "true" : "false");
	cp_strbuf_adds(sb, ",\n      \"frames\": ");
	add_frames(sb, th->frames, th->nframes, stack_end_marker(th));
	cp_strbuf_adds(sb, ",\n      \"kernel_frames\": [");
	for (size_t i = 0; i < th->nkernel_frames; i++) {
		cp_strbuf_adds(sb, i ? ", " : "");
		cp_strbuf_add_json_str(sb, th->kernel_frames[i]);
	}
	cp_strbuf_adds(sb, "],\n      \"capture_error\": ");
	add_capture_error(sb, th);
	if (go) {
		cp_strbuf_adds(sb, ", \"goroutine\": ");
		add_int_or_null(sb, th->goroutine != 0, th->goroutine);
	}
	cp_strbuf_adds(sb, " }");
}

void cp_dump_json_thread(const struct cp_dump_thread *th, struct cp_strbuf *sb)
{
	add_thread(sb, th, false);
}

void cp_dump_json_frames(const struct cp_dump_thread *th, struct cp_strbuf *sb)
{
	add_frames(sb, th->frames, th->nframes, stack_end_marker(th));
}

static void add_groups(struct cp_strbuf *sb, const struct cp_dump *dump)
{
	if (!dump->groups) {
		cp_strbuf_adds(sb, "null");
		return;
	}
	cp_strbuf_addc(sb, '[');
	for (size_t i = 0; i < dump->ngroups; i++) {
		const struct cp_dump_group *g = &dump->groups[i];
		const struct cp_dump_thread *th =
			g->first < dump->nthreads ? &dump->threads[g->first] : NULL;

		cp_strbuf_addf(sb, "%s\n    { \"count\": %zu, \"tids\": ", i ? "," : "", g->count);
		add_tids(sb, g->tids, g->count);
		cp_strbuf_adds(sb, ", \"wait_kind\": ");
		cp_strbuf_add_json_str(sb, th ? cp_wait_kind_name(th->wait.kind) : NULL);
		cp_strbuf_adds(sb, ",\n      \"frames\": ");
		if (th)
			add_frames(sb, th->frames, th->nframes, stack_end_marker(th));
		else
			cp_strbuf_adds(sb, "[]");
		cp_strbuf_adds(sb, " }");
	}
	cp_strbuf_adds(sb, dump->ngroups ? " ]" : "]");
}

static void add_deadlocks(struct cp_strbuf *sb, const struct cp_dump *dump)
{
	cp_strbuf_addc(sb, '[');
	for (size_t i = 0; i < dump->ndeadlocks; i++) {
		const struct cp_deadlock *dl = &dump->deadlocks[i];

		cp_strbuf_adds(sb, i ? ",\n    { \"tids\": " : "\n    { \"tids\": ");
		add_tids(sb, dl->tids, dl->ntids);
		cp_strbuf_adds(sb, ", \"goroutines\": null, \"description\": ");
		cp_strbuf_add_json_str(sb, dl->description);
		cp_strbuf_adds(sb, " }");
	}
	cp_dump_json_go_deadlock(dump, sb, dump->ndeadlocks == 0);
	cp_strbuf_adds(sb, dump->ndeadlocks || dump->go_deadlock ? " ]" : "]");
}

int cp_dump_write_json(const struct cp_dump *dump, FILE *f)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	struct cp_dump_wait_count counts[CP_WAIT__COUNT];
	size_t nc = cp_dump_count_by_wait(dump, counts);
	char when[64];
	int err = 0;

	cp_dump_format_time(dump->time_ns, when, sizeof(when));
	cp_strbuf_addf(&sb, "{ \"pid\": %d, \"exe\": ", dump->pid);
	cp_strbuf_add_json_str(&sb, dump->exe);
	cp_strbuf_adds(&sb, ", \"cmdline\": [");
	for (size_t i = 0; dump->cmdline && dump->cmdline[i]; i++) {
		cp_strbuf_adds(&sb, i ? ", " : "");
		cp_strbuf_add_json_str(&sb, dump->cmdline[i]);
	}
	cp_strbuf_adds(&sb, "],\n  \"time\": ");
	cp_strbuf_add_json_str(&sb, when);
	cp_strbuf_adds(&sb, ",\n  \"tracer\": ");
	if (dump->tracer_pid) {
		cp_strbuf_addf(&sb, "{ \"pid\": %d, \"name\": ", dump->tracer_pid);
		cp_strbuf_add_json_str(&sb, dump->tracer_name);
		cp_strbuf_adds(&sb, " }");
	} else {
		cp_strbuf_adds(&sb, "null");
	}
	cp_strbuf_adds(&sb, ",\n  \"threads\": [");
	for (size_t i = 0; i < dump->nthreads && !err; i++) {
		cp_strbuf_adds(&sb, i ? ",\n" : "\n");
		add_thread(&sb, &dump->threads[i], dump->go_version != NULL);
		if (sb.len >= CP_STRBUF_FLUSH_AT)
			err = cp_strbuf_flush(&sb, f);
	}
	cp_strbuf_adds(&sb, dump->nthreads ? " ],\n  \"groups\": " : "],\n  \"groups\": ");
	add_groups(&sb, dump);
	cp_strbuf_adds(&sb, ",\n  \"deadlocks\": ");
	add_deadlocks(&sb, dump);
	cp_strbuf_adds(&sb, ",\n  \"go_version\": ");
	cp_strbuf_add_json_str(&sb, dump->go_version);
	cp_strbuf_adds(&sb, ",\n  \"go_error\": ");
	cp_strbuf_add_json_str(&sb, dump->go_error ? dump->go_why : NULL);
	cp_strbuf_adds(&sb, ",\n  \"goroutines\": ");
	cp_dump_json_goroutines(dump, &sb);
	cp_dump_json_go_diag(dump, &sb);
	cp_strbuf_adds(&sb, ",\n  \"fds\": ");
	if (dump->has_fds)
		cp_strbuf_addf(&sb,
			       "{ \"total\": %d, \"socket\": %d, \"pipe\": %d, \"file\": %d, "
			       "\"anon\": %d }",
			       dump->fds.total, dump->fds.socket, dump->fds.pipe, dump->fds.file,
			       dump->fds.anon);
	else
		cp_strbuf_adds(&sb, "null");
	cp_strbuf_addf(&sb, ",\n  \"summary\": { \"threads\": %zu, \"by_wait\": {", dump->nthreads);
	for (size_t i = 0; i < nc; i++) {
		cp_strbuf_adds(&sb, i ? ", " : " ");
		cp_strbuf_add_json_str(&sb, cp_wait_kind_name(counts[i].kind));
		cp_strbuf_addf(&sb, ": %zu", counts[i].count);
	}
	cp_strbuf_adds(&sb, nc ? " } } }\n" : "} } }\n");
	if (!err)
		err = cp_strbuf_flush(&sb, f);
	cp_strbuf_release(&sb);
	return err;
}
