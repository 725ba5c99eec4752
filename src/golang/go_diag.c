/* Go diagnosis from goroutines alone: leak groups, "all goroutines are asleep", channel waiters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "go_diag.h"

int64_t cp_go_nanotime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void sort_ids(int64_t *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_i64);
}

static const char *reason_of(const struct cp_goroutine *g)
{
	return g->wait_reason ? g->wait_reason : "";
}

/* A goroutine a leak can be made of: a user goroutine parked by the runtime. */
static bool parked_user(const struct cp_goroutine *g)
{
	return !g->system && g->status == CP_GO_WAITING;
}

/* Order of groups: creation site, then wait reason. */
static int cmp_group_key(const struct cp_goroutine *a, const struct cp_goroutine *b)
{
	if (a->gopc != b->gopc)
		return a->gopc < b->gopc ? -1 : 1;
	return strcmp(reason_of(a), reason_of(b));
}

static int cmp_ptr(const void *a, const void *b)
{
	return cmp_group_key(*(const struct cp_goroutine *const *)a,
			     *(const struct cp_goroutine *const *)b);
}

/* The parked user goroutines of g (n), sorted into groups; *nout of them. */
static const struct cp_goroutine **group_order(const struct cp_goroutine *g, size_t n,
					       size_t *nout)
{
	const struct cp_goroutine **ix = malloc((n ? n : 1) * sizeof(*ix));
	size_t k = 0;

	if (!ix)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (parked_user(&g[i]))
			ix[k++] = &g[i];
	if (k > 1)
		qsort(ix, k, sizeof(*ix), cmp_ptr);
	*nout = k;
	return ix;
}

static int64_t wait_of(const struct cp_goroutine *g, int64_t now_ns)
{
	/* The runtime sets waitsince when a GC first sees the goroutine parked: 0 = since then. */
	if (g->wait_since_ns <= 0 || g->wait_since_ns > now_ns)
		return 0;
	return now_ns - g->wait_since_ns;
}

static int64_t median(int64_t *v, size_t n)
{
	if (!n)
		return -1;
	sort_ids(v, n);
	return v[n / 2];
}

/* One cp_go_find_leaks: the goroutines in group order, the first look, the clock. */
struct leak_scan {
	const struct cp_goroutine **ix;	/* the parked user goroutines, grouped */
	size_t k;
	const struct cp_goroutine *before;	/* the first look, NULL without one */
	size_t nbefore;
	int64_t *before_ids;		/* the first look's ids, sorted */
	size_t nbefore_ids;
	int64_t now_ns;
	int64_t *scratch;		/* room for k waits */
};

/* Members of the group [lo, hi) that were not there at the first look. */
static size_t count_new(const struct leak_scan *s, size_t lo, size_t hi)
{
	size_t grown = 0;

	for (size_t i = lo; i < hi; i++)
		if (!bsearch(&s->ix[i]->id, s->before_ids, s->nbefore_ids, sizeof(int64_t),
			     cmp_i64))
			grown++;
	return grown;
}

/* How many of the first look (parked user goroutines) share the group key of key. */
static size_t count_same(const struct leak_scan *s, const struct cp_goroutine *key)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nbefore; i++)
		if (parked_user(&s->before[i]) && !cmp_group_key(&s->before[i], key))
			k++;
	return k;
}

/* The median wait of the parked user goroutines outside the group [lo, hi). */
static int64_t others_median(const struct leak_scan *s, size_t lo, size_t hi)
{
	size_t m = 0;

	for (size_t i = 0; i < s->k; i++)
		if (i < lo || i >= hi)
			s->scratch[m++] = wait_of(s->ix[i], s->now_ns);
	return median(s->scratch, m);
}

/* Judge the group [lo, hi); fills *l (ids owned) and returns 1 when a leak, 0, -ENOMEM. */
static int judge_group(const struct leak_scan *s, size_t lo, size_t hi, struct cp_go_leak *l)
{
	const struct cp_goroutine *first = s->ix[lo];
	struct cp_go_leak v = { .wait_reason = reason_of(first), .gopc = first->gopc,
				.count = hi - lo };

	if (s->before) {
		v.before = count_same(s, first);
		v.grown = count_new(s, lo, hi);
		v.by_growth = v.count > v.before && v.grown > 0;
	}
	for (size_t i = lo; i < hi; i++)
		s->scratch[i - lo] = wait_of(s->ix[i], s->now_ns);
	v.wait_ns = median(s->scratch, hi - lo);
	v.others_wait_ns = others_median(s, lo, hi);
	v.by_age = v.others_wait_ns >= 0 && v.wait_ns >= CP_GO_LEAK_MIN_WAIT_NS &&
		   v.wait_ns >= CP_GO_LEAK_AGE_FACTOR * v.others_wait_ns;
	if (!v.by_growth && !v.by_age)
		return 0;
	v.ids = malloc(v.count * sizeof(*v.ids));
	if (!v.ids)
		return -ENOMEM;
	for (size_t i = lo; i < hi; i++)
		v.ids[i - lo] = s->ix[i]->id;
	sort_ids(v.ids, v.count);
	*l = v;
	return 1;
}

static int cmp_leak(const void *a, const void *b)
{
	const struct cp_go_leak *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return (x->ids[0] > y->ids[0]) - (x->ids[0] < y->ids[0]);
}

int cp_go_find_leaks(const struct cp_goroutine *now, size_t n, const struct cp_goroutine *before,
		     size_t nbefore, int64_t now_ns, struct cp_go_leak **out, size_t *nout)
{
	struct leak_scan s = { .before = before, .nbefore = before ? nbefore : 0,
			       .now_ns = now_ns };
	struct cp_go_leak *leaks = NULL, l;
	size_t nleaks = 0;
	int err = -ENOMEM;

	s.ix = group_order(now, n, &s.k);
	s.scratch = malloc((s.k ? s.k : 1) * sizeof(*s.scratch));
	s.before_ids = malloc((s.nbefore ? s.nbefore : 1) * sizeof(*s.before_ids));
	if (!s.ix || !s.scratch || !s.before_ids)
		goto out;
	for (size_t i = 0; i < s.nbefore; i++)
		s.before_ids[s.nbefore_ids++] = before[i].id;
	sort_ids(s.before_ids, s.nbefore_ids);
	err = 0;
	for (size_t lo = 0, hi; lo < s.k && err >= 0; lo = hi) {
		for (hi = lo + 1; hi < s.k && !cmp_group_key(s.ix[lo], s.ix[hi]); hi++)
			;
		if (hi - lo < CP_GO_LEAK_MIN)
			continue;
		err = judge_group(&s, lo, hi, &l);
		if (err <= 0)
			continue;
		struct cp_go_leak *grown = realloc(leaks, (nleaks + 1) * sizeof(*leaks));

		if (!grown) {
			free(l.ids);
			err = -ENOMEM;
			break;
		}
		leaks = grown;
		leaks[nleaks++] = l;
	}
	if (err < 0) {
		cp_go_leaks_free(leaks, nleaks);
		goto out;
	}
	if (nleaks)
		qsort(leaks, nleaks, sizeof(*leaks), cmp_leak);
	*out = leaks;
	*nout = nleaks;
	err = 0;
out:
	free(s.before_ids);
	free(s.scratch);
	free(s.ix);
	return err;
}

void cp_go_leaks_free(struct cp_go_leak *leaks, size_t n)
{
	for (size_t i = 0; leaks && i < n; i++)
		free(leaks[i].ids);
	free(leaks);
}

bool cp_go_wait_is_sync(const char *reason)
{
	static const char *const sync_waits[] = {
		"chan receive", "chan send", "chan receive (nil chan)", "chan send (nil chan)",
		"select", "select (no cases)", "sync.Mutex.Lock", "sync.RWMutex.RLock",
		"sync.RWMutex.Lock", "sync.Cond.Wait", "semacquire", "sync.WaitGroup.Wait",
	};

	if (!reason)
		return false;
	for (size_t i = 0; i < sizeof(sync_waits) / sizeof(sync_waits[0]); i++)
		if (!strcmp(reason, sync_waits[i]))
			return true;
	return false;
}

/* os/signal's watcher: in a system call that only a signal ends, made by signal.Notify. */
static bool signal_watcher(const struct cp_goroutine *g,
			   const char *(*name)(void *arg, uint64_t pc), void *arg)
{
	const char *fn = name && g->gopc ? name(arg, g->gopc) : NULL;

	return g->status == CP_GO_SYSCALL && fn && !strncmp(fn, "os/signal.", 10);
}

int cp_go_find_deadlock(const struct cp_goroutine *g, size_t n, long timers,
			const char *(*name)(void *arg, uint64_t pc), void *arg, int64_t **ids,
			size_t *nids)
{
	size_t k = 0, asleep = 0;
	int64_t *v;

	if (timers != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (g[i].system || g[i].status == CP_GO_DEAD || g[i].status == CP_GO_IDLE)
			continue;
		k++;
		if (g[i].status == CP_GO_WAITING && cp_go_wait_is_sync(g[i].wait_reason))
			asleep++;
		else if (!signal_watcher(&g[i], name, arg))
			return 0;
	}
	if (!asleep)
		return 0;
	v = malloc(k * sizeof(*v));
	if (!v)
		return -ENOMEM;
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (!g[i].system && g[i].status != CP_GO_DEAD && g[i].status != CP_GO_IDLE)
			v[k++] = g[i].id;
	sort_ids(v, k);
	*ids = v;
	*nids = k;
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Append id to the list (*v, *nv). 0 or -ENOMEM. */
static int push_id(int64_t **v, size_t *nv, int64_t id)
{
	int64_t *grown = realloc(*v, (*nv + 1) * sizeof(**v));

	if (!grown)
		return -ENOMEM;
	grown[(*nv)++] = id;
	*v = grown;
	return 0;
}

/* Add g to the waiters of c by its wait reason. 0 or -ENOMEM. */
static int add_waiter(struct cp_go_chan *c, const struct cp_goroutine *g)
{
	const char *r = reason_of(g);

	if (!strncmp(r, "chan receive", 12))
		return push_id(&c->receivers, &c->nreceivers, g->id);
	if (!strncmp(r, "chan send", 9))
		return push_id(&c->senders, &c->nsenders, g->id);
	return push_id(&c->selecting, &c->nselecting, g->id);
}

int cp_go_find_chans(const struct cp_goroutine *g, size_t n, struct cp_go_chan **out,
		     size_t *nout)
{
	uint64_t *addrs = malloc((n ? n : 1) * sizeof(*addrs));
	struct cp_go_chan *c = NULL;
	size_t na = 0, nc = 0;
	int err = 0;

	if (!addrs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (g[i].waiting_chan && g[i].status == CP_GO_WAITING && !g[i].system)
			addrs[na++] = g[i].waiting_chan;
	if (na > 1)
		qsort(addrs, na, sizeof(*addrs), cmp_u64);
	for (size_t i = 0; i < na; i++)
		if (!nc || addrs[i] != addrs[nc - 1])
			addrs[nc++] = addrs[i];
	c = calloc(nc ? nc : 1, sizeof(*c));
	if (!c) {
		free(addrs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nc; i++)
		c[i].addr = addrs[i];
	free(addrs);
	for (size_t i = 0; i < n && !err; i++) {
		long at;

		if (!g[i].waiting_chan || g[i].status != CP_GO_WAITING || g[i].system)
			continue;
		at = cp_go_chan_index(c, nc, g[i].waiting_chan);
		if (at >= 0)
			err = add_waiter(&c[at], &g[i]);
	}
	if (err) {
		cp_go_chans_free(c, nc);
		return err;
	}
	for (size_t i = 0; i < nc; i++) {
		sort_ids(c[i].receivers, c[i].nreceivers);
		sort_ids(c[i].senders, c[i].nsenders);
		sort_ids(c[i].selecting, c[i].nselecting);
	}
	*out = c;
	*nout = nc;
	return 0;
}

long cp_go_chan_index(const struct cp_go_chan *c, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c[mid].addr == addr)
			return (long)mid;
		if (c[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void cp_go_chans_free(struct cp_go_chan *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		free(c[i].elem_type);
		free(c[i].receivers);
		free(c[i].senders);
		free(c[i].selecting);
	}
	free(c);
}
