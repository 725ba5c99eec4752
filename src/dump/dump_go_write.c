/* Goroutines written as Go writes them: debug=2 text, debug=1 groups, and the JSON array. */
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "util.h"

/* The status Go's header shows: the wait reason of a waiting goroutine, else its status. */
static const char *header_status(const struct cp_dump_goroutine *g)
{
	if (g->wait_reason && g->status && !strcmp(g->status, "waiting"))
		return g->wait_reason;
	return g->status ? g->status : "???";
}

static void add_goroutine(struct cp_strbuf *sb, const struct cp_dump_goroutine *g)
{
	cp_strbuf_addf(sb, "\ngoroutine %lld [%s", (long long)g->id, header_status(g));
	if (g->wait_minutes >= 1)
		cp_strbuf_addf(sb, ", %lld minutes", (long long)g->wait_minutes);
	if (g->locked_to_thread)
		cp_strbuf_adds(sb, ", locked to thread");
	cp_strbuf_adds(sb, "]:\n");
	for (size_t i = 0; i < g->nframes; i++) {
		const struct cp_frame *f = &g->frames[i];

		cp_strbuf_addf(sb, "%s(...)\n\t%s:%d", f->function ? f->function : "?",
			       f->file ? f->file : "?", f->line);
		if (!f->inlined && f->entry_offset)
			cp_strbuf_addf(sb, " +%#llx", (unsigned long long)f->entry_offset);
		cp_strbuf_addc(sb, '\n');
	}
	if (!g->nframes && g->status && !strcmp(g->status, "running"))
		cp_strbuf_adds(sb, "\tgoroutine running on other thread; stack unavailable\n");
	if (g->created_by.function) {
		const struct cp_frame *c = &g->created_by;

		cp_strbuf_addf(sb, "created by %s", c->function);
		if (g->parent_id)
			cp_strbuf_addf(sb, " in goroutine %lld", (long long)g->parent_id);
		cp_strbuf_addf(sb, "\n\t%s:%d", c->file ? c->file : "?", c->line);
		if (c->entry_offset)
			cp_strbuf_addf(sb, " +%#llx", (unsigned long long)c->entry_offset);
		cp_strbuf_addc(sb, '\n');
	}
	if (g->torn)
		cp_strbuf_adds(sb, "\t(cprof: it moved while read, again and again: its stack may "
				   "be wrong)\n");
}

/* Goroutines with one stack (by the pcs Go's profile records), as Go's debug=1 counts them. */
struct go_group {
	size_t first, count;
};

static int cmp_stack(const void *pa, const void *pb, void *ctx)
{
	const struct cp_dump *dump = ctx;
	const struct cp_dump_goroutine *a = &dump->goroutines[*(const size_t *)pa];
	const struct cp_dump_goroutine *b = &dump->goroutines[*(const size_t *)pb];
	size_t n = a->nstack < b->nstack ? a->nstack : b->nstack;

	for (size_t i = 0; i < n; i++)
		if (a->stack[i].pc != b->stack[i].pc)
			return a->stack[i].pc < b->stack[i].pc ? -1 : 1;
	return a->nstack < b->nstack ? -1 : a->nstack > b->nstack;
}

/* Go's "@ 0x... 0x..." key of a goroutine's stack: the frames' pcs + 1, as it records them. */
static void stack_key(const struct cp_dump_goroutine *g, struct cp_strbuf *sb)
{
	cp_strbuf_adds(sb, "@");
	for (size_t i = 0; i < g->nstack; i++)
		cp_strbuf_addf(sb, " %#llx", (unsigned long long)g->stack[i].pc + 1);
}

/* Largest group first; equal counts in the order of their keys' text, as Go sorts them. */
static int cmp_group(const void *pa, const void *pb, void *ctx)
{
	const struct go_group *a = pa, *b = pb;
	const struct cp_dump *dump = ctx;
	struct cp_strbuf ka = CP_STRBUF_INIT, kb = CP_STRBUF_INIT;
	int c;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	stack_key(&dump->goroutines[a->first], &ka);
	stack_key(&dump->goroutines[b->first], &kb);
	c = strcmp(ka.buf ? ka.buf : "", kb.buf ? kb.buf : "");
	cp_strbuf_release(&ka);
	cp_strbuf_release(&kb);
	return c;
}

/*
 * One group as Go's printStackRecord: runtime.goexit and the runtime frames before the first
 * other one hidden (all shown, goexit aside, when nothing else would be).
 */
static void add_group(struct cp_strbuf *sb, const struct cp_dump *dump, const struct go_group *gr)
{
	const struct cp_dump_goroutine *g = &dump->goroutines[gr->first];
	bool show = true;

	cp_strbuf_addf(sb, "%zu ", gr->count);
	stack_key(g, sb);
	cp_strbuf_addc(sb, '\n');
	for (size_t i = 0; i < g->nstack; i++)
		if (g->stack[i].function && strncmp(g->stack[i].function, "runtime.", 8))
			show = false;
	for (size_t i = 0; i < g->nstack; i++) {
		const struct cp_frame *f = &g->stack[i];
		const char *fn = f->function ? f->function : "?";

		if (!strcmp(fn, "runtime.goexit"))
			continue;
		if (!show && !strncmp(fn, "runtime.", 8))
			continue;
		show = true;
		cp_strbuf_addf(sb, "#\t%#llx\t%s+%#llx\t%s:%d\n", (unsigned long long)f->pc, fn,
			       (unsigned long long)f->entry_offset, f->file ? f->file : "?",
			       f->line);
	}
	cp_strbuf_addc(sb, '\n');
}

/* Go's debug=1 form: "goroutine profile: total N", then each stack with its count. */
static void add_groups(struct cp_strbuf *sb, const struct cp_dump *dump)
{
	size_t *idx = malloc((dump->ngoroutines + 1) * sizeof(*idx)), ng = 0;
	struct go_group *groups = malloc((dump->ngoroutines + 1) * sizeof(*groups));

	cp_strbuf_addf(sb, "\ngoroutine profile: total %zu\n", dump->ngoroutines);
	if (!idx || !groups) {
		free(idx);
		free(groups);
		return;
	}
	for (size_t i = 0; i < dump->ngoroutines; i++)
		idx[i] = i;
	qsort_r(idx, dump->ngoroutines, sizeof(*idx), cmp_stack, (void *)dump);
	for (size_t i = 0; i < dump->ngoroutines; i++) {
		if (ng && cmp_stack(&idx[groups[ng - 1].first], &idx[i], (void *)dump) == 0) {
			groups[ng - 1].count++;
			continue;
		}
		groups[ng++] = (struct go_group){ i, 1 };
	}
	for (size_t i = 0; i < ng; i++)
		groups[i].first = idx[groups[i].first];
	qsort_r(groups, ng, sizeof(*groups), cmp_group, (void *)dump);
	for (size_t i = 0; i < ng; i++)
		add_group(sb, dump, &groups[i]);
	free(idx);
	free(groups);
}

void cp_dump_text_goroutines(const struct cp_dump *dump, struct cp_strbuf *sb)
{
	cp_strbuf_addf(sb, "\ngo %s: ", dump->go_version);
	if (dump->go_error) {
		cp_strbuf_addf(sb, "goroutines not shown: %s\n", dump->go_why);
		return;
	}
	cp_strbuf_addf(sb, "%zu goroutines (and %zu of the runtime's own, not shown)\n",
		       dump->ngoroutines, dump->go_hidden);
	if (dump->groups) {
		add_groups(sb, dump);
		return;
	}
	for (size_t i = 0; i < dump->ngoroutines; i++)
		add_goroutine(sb, &dump->goroutines[i]);
}

static void add_json(struct cp_strbuf *sb, const struct cp_dump_goroutine *g)
{
	cp_strbuf_addf(sb, "    { \"id\": %lld, \"status\": ", (long long)g->id);
	cp_strbuf_add_json_str(sb, g->status);
	cp_strbuf_adds(sb, ", \"wait_reason\": ");
	cp_strbuf_add_json_str(sb, g->wait_reason);
	cp_strbuf_adds(sb, ", \"wait_minutes\": ");
	if (g->wait_minutes >= 0)
		cp_strbuf_add_int(sb, g->wait_minutes);
	else
		cp_strbuf_adds(sb, "null");
	cp_strbuf_adds(sb, g->locked_to_thread ? ", \"locked_to_thread\": true" :
			   ", \"locked_to_thread\": false");
	cp_strbuf_adds(sb, ", \"thread\": ");
	if (g->tid > 0)
		cp_strbuf_add_int(sb, g->tid);
	else
		cp_strbuf_adds(sb, "null");
	cp_strbuf_adds(sb, ", \"waiting_on\": ");
	if (g->waiting_chan)
		cp_strbuf_addf(sb, "\"%#llx\"", (unsigned long long)g->waiting_chan);
	else
		cp_strbuf_adds(sb, "null");
	cp_strbuf_adds(sb, g->torn ? ", \"torn\": true" : ", \"torn\": false");
	cp_strbuf_adds(sb, ",\n      \"frames\": ");
	cp_dump_json_frame_list(sb, g->frames, g->nframes);
	cp_strbuf_adds(sb, ",\n      \"created_by\": ");
	if (g->created_by.function) {
		cp_strbuf_adds(sb, "{ \"function\": ");
		cp_strbuf_add_json_str(sb, g->created_by.function);
		cp_strbuf_adds(sb, ", \"file\": ");
		cp_strbuf_add_json_str(sb, g->created_by.file);
		cp_strbuf_adds(sb, ", \"line\": ");
		if (g->created_by.line > 0)
			cp_strbuf_add_int(sb, g->created_by.line);
		else
			cp_strbuf_adds(sb, "null");
		cp_strbuf_adds(sb, ", \"goroutine\": ");
		if (g->parent_id)
			cp_strbuf_add_int(sb, g->parent_id);
		else
			cp_strbuf_adds(sb, "null");
		cp_strbuf_adds(sb, " }");
	} else {
		cp_strbuf_adds(sb, "null");
	}
	cp_strbuf_adds(sb, " }");
}

void cp_dump_json_goroutines(const struct cp_dump *dump, struct cp_strbuf *sb)
{
	if (!dump->go_version || dump->go_error) {
		cp_strbuf_adds(sb, "null");
		return;
	}
	cp_strbuf_addc(sb, '[');
	for (size_t i = 0; i < dump->ngoroutines; i++) {
		cp_strbuf_adds(sb, i ? ",\n" : "\n");
		add_json(sb, &dump->goroutines[i]);
	}
	cp_strbuf_adds(sb, dump->ngoroutines ? " ]" : "]");
}
