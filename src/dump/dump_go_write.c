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

/* Goroutine indexes by stack (their pcs), largest group first. */
struct go_group {
	size_t first, count;
};

static int cmp_pcs(const void *pa, const void *pb, void *ctx)
{
	const struct cp_dump *dump = ctx;
	const struct cp_dump_goroutine *a = &dump->goroutines[*(const size_t *)pa];
	const struct cp_dump_goroutine *b = &dump->goroutines[*(const size_t *)pb];
	size_t n = a->npcs < b->npcs ? a->npcs : b->npcs;

	for (size_t i = 0; i < n; i++)
		if (a->pcs[i] != b->pcs[i])
			return a->pcs[i] < b->pcs[i] ? -1 : 1;
	return a->npcs < b->npcs ? -1 : a->npcs > b->npcs;
}

static int cmp_count(const void *pa, const void *pb)
{
	const struct go_group *a = pa, *b = pb;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return a->first < b->first ? -1 : a->first > b->first;
}

/* One group as Go's printStackRecord: leading runtime frames and runtime.goexit hidden. */
static void add_group(struct cp_strbuf *sb, const struct cp_dump *dump, const struct go_group *gr)
{
	const struct cp_dump_goroutine *g = &dump->goroutines[gr->first];

	cp_strbuf_addf(sb, "%zu @", gr->count);
	for (size_t i = 0; i < g->npcs; i++)
		cp_strbuf_addf(sb, " %#llx", (unsigned long long)g->pcs[i]);
	cp_strbuf_addc(sb, '\n');
	for (size_t i = 0; i < g->nframes; i++) {
		const struct cp_frame *f = &g->frames[i];
		uint64_t pc = f->pc - (f->pc && (i > 0 || !g->from_thread) ? 1 : 0);
		uint64_t off = f->entry_offset ? f->entry_offset - (f->pc - pc) : 0;

		cp_strbuf_addf(sb, "#\t%#llx\t%s+%#llx\t%s:%d\n", (unsigned long long)pc,
			       f->function ? f->function : "?", (unsigned long long)off,
			       f->file ? f->file : "?", f->line);
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
	qsort_r(idx, dump->ngoroutines, sizeof(*idx), cmp_pcs, (void *)dump);
	for (size_t i = 0; i < dump->ngoroutines; i++) {
		if (ng && cmp_pcs(&idx[groups[ng - 1].first], &idx[i], (void *)dump) == 0) {
			groups[ng - 1].count++;
			continue;
		}
		groups[ng++] = (struct go_group){ i, 1 };
	}
	for (size_t i = 0; i < ng; i++)
		groups[i].first = idx[groups[i].first];
	qsort(groups, ng, sizeof(*groups), cmp_count);
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
