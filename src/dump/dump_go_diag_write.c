/* The Go diagnosis written: LEAK?, no-deadline, channel and DEADLOCK lines; its JSON fields. */
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "util.h"

/* Ids listed in text at most; the rest are counted. */
#define IDS_SHOWN 16
/* Channels listed in text at most, those with the most waiters first. */
#define CHANS_SHOWN 32

static const struct cp_dump_goroutine *goroutine(const struct cp_dump *d, int64_t id)
{
	for (size_t i = 0; i < d->ngoroutines; i++)
		if (d->goroutines[i].id == id)
			return &d->goroutines[i];
	return NULL;
}

/* Free text from the target (names, paths) with control bytes shown as '?'. */
static void add_safe(struct cp_strbuf *sb, const char *s)
{
	for (; s && *s; s++)
		cp_strbuf_addc(sb, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void add_ids(struct cp_strbuf *sb, const int64_t *ids, size_t n)
{
	for (size_t i = 0; i < n && i < IDS_SHOWN; i++)
		cp_strbuf_addf(sb, "%s%lld", i ? ", " : "", (long long)ids[i]);
	if (n > IDS_SHOWN)
		cp_strbuf_addf(sb, " and %zu more", n - IDS_SHOWN);
}

static void add_duration(struct cp_strbuf *sb, int64_t ns)
{
	char buf[32];

	cp_leak_format_duration(ns > 0 ? (uint64_t)ns : 0, buf, sizeof(buf));
	cp_strbuf_adds(sb, buf);
}

static void add_leak_line(struct cp_strbuf *sb, const struct cp_dump *d, size_t k)
{
	const struct cp_go_leak *l = &d->go_leaks[k];
	const struct cp_frame *site = &d->go_leak_sites[k];

	cp_strbuf_addf(sb, "  LEAK? %zu of %zu goroutines (%zu%%) [", l->count,
		       d->ngoroutines, d->ngoroutines ? l->count * 100 / d->ngoroutines : 0);
	add_safe(sb, l->wait_reason);
	cp_strbuf_addc(sb, ']');
	if (site->function) {
		cp_strbuf_adds(sb, " created by ");
		add_safe(sb, site->function);
		cp_strbuf_adds(sb, " at ");
		add_safe(sb, site->file ? site->file : "?");
		cp_strbuf_addf(sb, ":%d", site->line);
	}
	if (l->by_growth)
		cp_strbuf_addf(sb, ", grew from %zu to %zu in %d s (%zu new)", l->before, l->count,
			       d->stuck_seconds, l->grown);
	if (l->by_age) {
		cp_strbuf_adds(sb, ", waiting ");
		add_duration(sb, l->wait_ns);
		cp_strbuf_adds(sb, " (median) while the other goroutines wait ");
		add_duration(sb, l->others_wait_ns);
	}
	cp_strbuf_adds(sb, ": goroutines ");
	add_ids(sb, l->ids, l->count);
	cp_strbuf_addc(sb, '\n');
}

static void add_netwait_line(struct cp_strbuf *sb, const struct cp_go_netwait *w)
{
	cp_strbuf_addf(sb, "  NO DEADLINE: goroutine %lld [IO wait] %s fd %d", (long long)w->goid,
		       w->write ? "writing" : "reading", w->fd);
	if (w->detail || w->object) {
		cp_strbuf_adds(sb, " (");
		add_safe(sb, w->detail ? w->detail : w->object);
		cp_strbuf_addc(sb, ')');
	}
	cp_strbuf_addf(sb, " with no %s deadline\n", w->write ? "write" : "read");
}

void cp_dump_text_go_diag_head(const struct cp_dump *dump, struct cp_strbuf *sb)
{
	if (!dump->go_diagnosed)
		return;
	for (size_t k = 0; k < dump->ngo_leaks; k++)
		add_leak_line(sb, dump, k);
	for (size_t i = 0; i < dump->ngo_netwaits; i++)
		if (dump->go_netwaits[i].deadline_ns == 0 && !dump->go_netwaits[i].accept)
			add_netwait_line(sb, &dump->go_netwaits[i]);
	if (dump->go_deadlock)
		cp_strbuf_adds(sb, "  all goroutines are asleep: see DEADLOCK at the end\n");
}

static size_t waiters(const struct cp_go_chan *c)
{
	return c->nreceivers + c->nsenders + c->nselecting;
}

static int cmp_waiters(const void *pa, const void *pb, void *ctx)
{
	const struct cp_go_chan *c = ctx;
	size_t a = waiters(&c[*(const size_t *)pa]), b = waiters(&c[*(const size_t *)pb]);

	if (a != b)
		return a > b ? -1 : 1;
	return (*(const size_t *)pa > *(const size_t *)pb) - (*(const size_t *)pa <
							       *(const size_t *)pb);
}

static void add_chan_line(struct cp_strbuf *sb, const struct cp_go_chan *c)
{
	static const char *const roles[] = { "receivers", "senders", "in select" };
	const int64_t *ids[] = { c->receivers, c->senders, c->selecting };
	size_t n[] = { c->nreceivers, c->nsenders, c->nselecting };
	bool first = true;

	cp_strbuf_addf(sb, "  %#llx chan %s", (unsigned long long)c->addr,
		       c->elem_type ? c->elem_type : "?");
	if (c->have_state && c->capacity)
		cp_strbuf_addf(sb, " (%llu of %llu queued%s)", (unsigned long long)c->queued,
			       (unsigned long long)c->capacity, c->closed ? ", closed" : "");
	else if (c->have_state)
		cp_strbuf_addf(sb, " (unbuffered%s)", c->closed ? ", closed" : "");
	cp_strbuf_adds(sb, ":");
	for (size_t r = 0; r < 3; r++) {
		if (!n[r])
			continue;
		cp_strbuf_addf(sb, "%s %s ", first ? "" : ";", roles[r]);
		add_ids(sb, ids[r], n[r]);
		first = false;
	}
	cp_strbuf_addc(sb, '\n');
}

static void add_chans(struct cp_strbuf *sb, const struct cp_dump *d)
{
	size_t *ix = malloc((d->ngo_chans ? d->ngo_chans : 1) * sizeof(*ix));

	if (!ix || !d->ngo_chans) {
		free(ix);
		return;
	}
	for (size_t i = 0; i < d->ngo_chans; i++)
		ix[i] = i;
	qsort_r(ix, d->ngo_chans, sizeof(*ix), cmp_waiters, d->go_chans);
	cp_strbuf_addf(sb, "\nchannels waited on: %zu\n", d->ngo_chans);
	for (size_t i = 0; i < d->ngo_chans && i < CHANS_SHOWN; i++)
		add_chan_line(sb, &d->go_chans[ix[i]]);
	if (d->ngo_chans > CHANS_SHOWN)
		cp_strbuf_addf(sb, "  ... and %zu more\n", d->ngo_chans - CHANS_SHOWN);
	free(ix);
}

/* "goroutine 1 [semacquire], goroutine 18 [sync.Mutex.Lock] and 3 more" */
static void add_deadlock_description(struct cp_strbuf *sb, const struct cp_dump *d)
{
	cp_strbuf_addf(sb, "all %zu goroutines are asleep: ", d->ngo_deadlock);
	for (size_t i = 0; i < d->ngo_deadlock && i < IDS_SHOWN; i++) {
		const struct cp_dump_goroutine *g = goroutine(d, d->go_deadlock[i]);

		cp_strbuf_addf(sb, "%sgoroutine %lld [", i ? ", " : "",
			       (long long)d->go_deadlock[i]);
		add_safe(sb, g && g->wait_reason ? g->wait_reason :
			 g && g->status ? g->status : "?");
		cp_strbuf_addc(sb, ']');
		/* The one asleep goroutine not parked: os/signal's, in signal_recv. */
		if (g && !g->wait_reason)
			cp_strbuf_adds(sb, " (os/signal's watcher)");
	}
	if (d->ngo_deadlock > IDS_SHOWN)
		cp_strbuf_addf(sb, " and %zu more", d->ngo_deadlock - IDS_SHOWN);
	cp_strbuf_adds(sb, "; none can run, none sleeps or waits on the network, no timer is "
			   "pending: nothing but a signal can wake them");
}

void cp_dump_text_go_diag_tail(const struct cp_dump *dump, struct cp_strbuf *sb)
{
	if (!dump->go_diagnosed)
		return;
	add_chans(sb, dump);
	if (dump->go_deadlock) {
		cp_strbuf_adds(sb, "\nDEADLOCK: ");
		add_deadlock_description(sb, dump);
		cp_strbuf_addc(sb, '\n');
	}
}

static void add_json_ids(struct cp_strbuf *sb, const int64_t *ids, size_t n)
{
	cp_strbuf_addc(sb, '[');
	for (size_t i = 0; i < n; i++)
		cp_strbuf_addf(sb, "%s%lld", i ? ", " : "", (long long)ids[i]);
	cp_strbuf_addc(sb, ']');
}

static void add_json_ns(struct cp_strbuf *sb, int64_t ns)
{
	if (ns >= 0)
		cp_strbuf_add_int(sb, ns);
	else
		cp_strbuf_adds(sb, "null");
}

static void add_json_leak(struct cp_strbuf *sb, const struct cp_dump *d, size_t k)
{
	const struct cp_go_leak *l = &d->go_leaks[k];
	const struct cp_frame *site = &d->go_leak_sites[k];

	cp_strbuf_adds(sb, "    { \"wait_reason\": ");
	cp_strbuf_add_json_str(sb, l->wait_reason);
	cp_strbuf_adds(sb, ", \"created_by\": ");
	if (site->function) {
		cp_strbuf_adds(sb, "{ \"function\": ");
		cp_strbuf_add_json_str(sb, site->function);
		cp_strbuf_adds(sb, ", \"file\": ");
		cp_strbuf_add_json_str(sb, site->file);
		cp_strbuf_adds(sb, ", \"line\": ");
		if (site->line > 0)
			cp_strbuf_add_int(sb, site->line);
		else
			cp_strbuf_adds(sb, "null");
		cp_strbuf_adds(sb, " }");
	} else {
		cp_strbuf_adds(sb, "null");
	}
	cp_strbuf_addf(sb, ", \"count\": %zu, \"before\": ", l->count);
	if (d->go_watched)
		cp_strbuf_addf(sb, "%zu, \"grown\": %zu", l->before, l->grown);
	else
		cp_strbuf_adds(sb, "null, \"grown\": null");
	cp_strbuf_addf(sb, ", \"by_growth\": %s, \"by_age\": %s, \"wait_ns\": ",
		       l->by_growth ? "true" : "false", l->by_age ? "true" : "false");
	add_json_ns(sb, l->wait_ns);
	cp_strbuf_adds(sb, ", \"others_wait_ns\": ");
	add_json_ns(sb, l->others_wait_ns);
	cp_strbuf_adds(sb, ",\n      \"goroutines\": ");
	add_json_ids(sb, l->ids, l->count);
	cp_strbuf_adds(sb, " }");
}

static void add_json_chan(struct cp_strbuf *sb, const struct cp_go_chan *c)
{
	cp_strbuf_addf(sb, "    { \"address\": \"%#llx\", \"elem_type\": ",
		       (unsigned long long)c->addr);
	cp_strbuf_add_json_str(sb, c->elem_type);
	if (c->have_state)
		cp_strbuf_addf(sb, ", \"capacity\": %llu, \"queued\": %llu, \"closed\": %s",
			       (unsigned long long)c->capacity, (unsigned long long)c->queued,
			       c->closed ? "true" : "false");
	else
		cp_strbuf_adds(sb, ", \"capacity\": null, \"queued\": null, \"closed\": null");
	cp_strbuf_adds(sb, ",\n      \"receivers\": ");
	add_json_ids(sb, c->receivers, c->nreceivers);
	cp_strbuf_adds(sb, ", \"senders\": ");
	add_json_ids(sb, c->senders, c->nsenders);
	cp_strbuf_adds(sb, ", \"selecting\": ");
	add_json_ids(sb, c->selecting, c->nselecting);
	cp_strbuf_adds(sb, " }");
}

static void add_json_netwait(struct cp_strbuf *sb, const struct cp_go_netwait *w)
{
	cp_strbuf_addf(sb, "    { \"goroutine\": %lld, \"fd\": %d, \"op\": \"%s\", \"object\": ",
		       (long long)w->goid, w->fd,
		       w->write ? "write" : w->accept ? "accept" : "read");
	cp_strbuf_add_json_str(sb, w->object);
	cp_strbuf_adds(sb, ", \"detail\": ");
	cp_strbuf_add_json_str(sb, w->detail);
	cp_strbuf_addf(sb, ", \"deadline\": %s, \"timeout\": ",
		       w->deadline_ns == 0 ? "false" : "true");
	if (w->deadline_ns == 0)
		cp_strbuf_adds(sb, "null");
	else
		cp_strbuf_add_int(sb, w->remaining_ns);
	cp_strbuf_adds(sb, " }");
}

void cp_dump_json_go_diag(const struct cp_dump *dump, struct cp_strbuf *sb)
{
	const bool on = dump->go_diagnosed;

	cp_strbuf_adds(sb, ",\n  \"go_leaks\": ");
	if (on) {
		cp_strbuf_addc(sb, '[');
		for (size_t k = 0; k < dump->ngo_leaks; k++) {
			cp_strbuf_adds(sb, k ? ",\n" : "\n");
			add_json_leak(sb, dump, k);
		}
		cp_strbuf_adds(sb, dump->ngo_leaks ? " ]" : "]");
	} else {
		cp_strbuf_adds(sb, "null");
	}
	cp_strbuf_adds(sb, ",\n  \"go_channels\": ");
	if (on) {
		cp_strbuf_addc(sb, '[');
		for (size_t i = 0; i < dump->ngo_chans; i++) {
			cp_strbuf_adds(sb, i ? ",\n" : "\n");
			add_json_chan(sb, &dump->go_chans[i]);
		}
		cp_strbuf_adds(sb, dump->ngo_chans ? " ]" : "]");
	} else {
		cp_strbuf_adds(sb, "null");
	}
	cp_strbuf_adds(sb, ",\n  \"go_net_waits\": ");
	if (on) {
		cp_strbuf_addc(sb, '[');
		for (size_t i = 0; i < dump->ngo_netwaits; i++) {
			cp_strbuf_adds(sb, i ? ",\n" : "\n");
			add_json_netwait(sb, &dump->go_netwaits[i]);
		}
		cp_strbuf_adds(sb, dump->ngo_netwaits ? " ]" : "]");
	} else {
		cp_strbuf_adds(sb, "null");
	}
}

void cp_dump_json_go_deadlock(const struct cp_dump *dump, struct cp_strbuf *sb, bool first)
{
	struct cp_strbuf desc = CP_STRBUF_INIT;

	if (!dump->go_deadlock)
		return;
	add_deadlock_description(&desc, dump);
	cp_strbuf_adds(sb, first ? "\n    { \"tids\": [], \"goroutines\": " :
			   ",\n    { \"tids\": [], \"goroutines\": ");
	add_json_ids(sb, dump->go_deadlock, dump->ngo_deadlock);
	cp_strbuf_adds(sb, ", \"description\": ");
	cp_strbuf_add_json_str(sb, desc.buf ? desc.buf : "");
	cp_strbuf_adds(sb, " }");
	cp_strbuf_release(&desc);
}
