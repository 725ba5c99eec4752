/*
 * Unit tests for the profile model's sample storage: the stack trie (distinct stacks sharing
 * prefixes, as a recursive merge sort makes them), merging of identical samples, label sets
 * that keep threads apart, memory per distinct stack, and the round trip through pprof.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "maps.h"
#include "profile.h"
#include "profile_internal.h"

#define PERIOD 1001001 /* 999 Hz */
/* Recursion levels of the fake merge sort: 2^LEVELS distinct stacks a thread. */
#define LEVELS 12
#define NTHREADS 3

/* Locations: start, worker, sort, and per level the two recursive call sites, then a leaf. */
struct locs {
	uint64_t start, worker, sort, site[2], leaf[2];
};

static void add_locations(struct cp_profile *prof, struct locs *l)
{
	struct cp_map map = { 0x400000, 0x500000, 0, 1, 1, 1, "r-xp", (char *)"/bin/sorter",
			      false };
	struct cp_profile_line line = { NULL, NULL, "sort.c", 0, 0 };
	const char *names[] = { "start", "worker", "msort", "msort", "msort", "cmp", "memcpy" };
	uint64_t *ids[] = { &l->start, &l->worker, &l->sort, &l->site[0], &l->site[1],
			    &l->leaf[0], &l->leaf[1] };
	uint64_t mid;
	int err;

	err = cp_profile_add_mapping(prof, 1, &map, NULL, true, true, &mid);
	CHECK(err == 0, "mapping: %d", err);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		line.function = names[i];
		line.line = 10 + (int64_t)i;
		err = cp_profile_add_location(prof, 1, 0x401000 + i * 0x40, mid, &line, 1, ids[i]);
		CHECK(err == 0, "location %zu: %d", i, err);
	}
}

/*
 * Stack number k (0 <= k < 2^LEVELS * 2), innermost first: the bits of k pick the recursive
 * call site at each level, the last bit the leaf. Returns the depth.
 */
static size_t make_stack(const struct locs *l, unsigned k, uint64_t *st)
{
	size_t n = 0;

	st[n++] = l->leaf[k & 1];
	for (int lev = LEVELS - 1; lev >= 0; lev--)
		st[n++] = l->site[(k >> (lev + 1)) & 1];
	st[n++] = l->sort;
	st[n++] = l->worker;
	st[n++] = l->start;
	return n;
}

static bool same_stack(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* Sample i has the labels thread=name, tid, pid. */
static bool has_labels(const struct cp_profile *prof, size_t i, const char *name, int tid)
{
	size_t n;
	const struct cp_plabel *lab = cp_profile_sample_labels(prof, i, &n);

	return n == 3 && lab[0].key == prof->s_thread &&
	       !strcmp(prof->str.v[lab[0].str], name) && lab[1].key == prof->s_tid &&
	       lab[1].num == tid && lab[2].key == prof->s_pid && lab[2].num == 1;
}

static char *render(const struct cp_profile *prof, enum cp_profile_format format, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int err;

	if (!f) {
		FAIL("open_memstream");
		exit(1);
	}
	err = cp_profile_write(prof, format, f, 0);
	CHECK(err == 0, "write format %d: %d", (int)format, err);
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

static void test_trie(void)
{
	const unsigned nstacks = 2u << LEVELS;
	const char *tnames[NTHREADS] = { "sorter", "sorter", "other" };
	struct cp_profile *prof = cp_profile_new();
	uint64_t st[LEVELS + 8], *got = NULL;
	size_t got_alloc = 0, frames = 0;
	struct locs l;
	int err;

	CHECK(prof, "cp_profile_new");
	if (!prof)
		return;
	add_locations(prof, &l);
	/* Every stack on every thread, twice: the second round only adds to the counts. */
	for (int round = 0; round < 2; round++) {
		for (unsigned k = 0; k < nstacks; k++) {
			size_t n = make_stack(&l, k, st);

			for (int t = 0; t < NTHREADS; t++) {
				err = cp_profile_add_sample(prof, st, n, 1, 100 + t, tnames[t],
							    1 + (uint64_t)t);
				if (err) {
					FAIL("sample %u thread %d: %d", k, t, err);
					goto out;
				}
				frames += n;
			}
		}
	}
	/* An empty stack: one sample, merged with itself too. */
	CHECK(cp_profile_add_sample(prof, NULL, 0, 1, 100, "sorter", 5) == 0, "empty stack");
	CHECK(cp_profile_add_sample(prof, NULL, 0, 1, 100, "sorter", 5) == 0, "empty stack");
	/* An unknown location id is refused, and adds nothing. */
	st[0] = 999;
	CHECK(cp_profile_add_sample(prof, st, 1, 1, 100, "sorter", 1) == -EINVAL, "bad location");

	/*
	 * Identical (stack, labels) merged; the same stack on another tid, even with the same
	 * thread name, is another sample.
	 */
	CHECK(prof->nsamples == (size_t)nstacks * NTHREADS + 1, "%zu samples, want %u",
	      prof->nsamples, nstacks * NTHREADS + 1);
	CHECK(prof->nlabelsets == NTHREADS, "%zu label sets, want %d", prof->nlabelsets,
	      NTHREADS);
	CHECK(cp_profile_sample_total(prof) == 2 * (uint64_t)nstacks * (1 + 2 + 3) + 10,
	      "total %lu", (unsigned long)cp_profile_sample_total(prof));
	/*
	 * Shared prefixes: the trie holds each distinct prefix once: the root and the three
	 * common outer frames, 2 + 4 + ... + 2^LEVELS call sites, 2^(LEVELS + 1) leaves; far
	 * fewer than the frames of the distinct stacks.
	 */
	CHECK(prof->nnodes == (4u << LEVELS) + 2, "%zu trie nodes, want %u", prof->nnodes,
	      (4u << LEVELS) + 2);
	CHECK(prof->nnodes * 8 < frames / 4, "trie nodes %zu for %zu frames added", prof->nnodes,
	      frames);

	/* Every sample gives back its stack, innermost first, its labels and its values. */
	for (size_t i = 0; i < prof->nsamples; i++) {
		int64_t n = cp_profile_sample_locations(prof, i, &got, &got_alloc);
		unsigned k;
		int t;

		if (i == (size_t)nstacks * NTHREADS) {
			CHECK(n == 0, "empty stack gave %ld locations", (long)n);
			/* Before set_meta, the period is 99 Hz's. */
			CHECK(prof->values[i * 2] == 10 &&
				      prof->values[i * 2 + 1] == 10 * (1000000000 / 99),
			      "empty stack values %ld %ld", (long)prof->values[i * 2],
			      (long)prof->values[i * 2 + 1]);
			continue;
		}
		k = (unsigned)(i / NTHREADS);
		t = (int)(i % NTHREADS);
		if (!same_stack(got, n > 0 ? (size_t)n : 0, st, make_stack(&l, k, st)) ||
		    !has_labels(prof, i, tnames[t], 100 + t) ||
		    prof->values[i * 2] != 2 * (1 + t)) {
			FAIL("sample %zu: stack %u thread %d not given back", i, k, t);
			break;
		}
	}
out:
	free(got);
	cp_profile_free(prof);
}

/* cpu = count * period holds for samples added before the period was known. */
static void test_period(void)
{
	struct cp_profile *prof = cp_profile_new();
	struct cp_profile_meta meta = { 1, 2, PERIOD, 0, NULL, NULL };
	uint64_t st[LEVELS + 8];
	struct locs l;

	if (!prof) {
		FAIL("cp_profile_new");
		return;
	}
	add_locations(prof, &l);
	for (unsigned k = 0; k < 64; k++)
		CHECK(cp_profile_add_sample(prof, st, make_stack(&l, k, st), 1, 7, "t", 3) == 0,
		      "sample %u", k);
	cp_profile_set_meta(prof, &meta);
	for (size_t i = 0; i < prof->nsamples; i++)
		CHECK(prof->values[i * 2 + 1] == 3 * PERIOD, "sample %zu cpu %ld", i,
		      (long)prof->values[i * 2 + 1]);
	CHECK(prof->totals[1] == 64 * 3 * (int64_t)PERIOD, "cpu total %ld",
	      (long)prof->totals[1]);
	cp_profile_free(prof);
}

/*
 * Written as pprof and read back: the same samples in the same order, the same stacks and
 * labels; written again, the same bytes; and the text formats the same from both.
 */
static void test_round_trip(void)
{
	struct cp_profile *prof = cp_profile_new(), *back = NULL;
	struct cp_profile_meta meta = { 1700000000000000000ull, 5000000000ull, PERIOD, 0,
					"stacks", NULL };
	uint64_t st[LEVELS + 8], *a = NULL, *b = NULL;
	size_t a_alloc = 0, b_alloc = 0, len1, len2;
	char *pb1, *pb2, *t1, *t2;
	struct locs l;
	int err;

	if (!prof) {
		FAIL("cp_profile_new");
		return;
	}
	add_locations(prof, &l);
	for (unsigned k = 0; k < (2u << LEVELS); k += 3)
		CHECK(cp_profile_add_sample(prof, st, make_stack(&l, k, st), 1, 10 + (int)(k % 2),
					    k % 2 ? "odd" : "even", 1 + k % 5) == 0,
		      "sample %u", k);
	CHECK(cp_profile_add_sample(prof, NULL, 0, 1, 10, "even", 2) == 0, "empty stack");
	cp_profile_set_meta(prof, &meta);

	pb1 = render(prof, CP_PROFILE_PPROF, &len1);
	err = cp_profile_read(pb1, len1, &back);
	CHECK(err == 0, "read back: %d", err);
	if (err)
		goto out;
	CHECK(back->nsamples == prof->nsamples, "%zu samples read, %zu written", back->nsamples,
	      prof->nsamples);
	for (size_t i = 0; i < prof->nsamples && i < back->nsamples; i++) {
		int64_t na = cp_profile_sample_locations(prof, i, &a, &a_alloc);
		int64_t nb = cp_profile_sample_locations(back, i, &b, &b_alloc);
		size_t nla, nlb;
		const struct cp_plabel *la = cp_profile_sample_labels(prof, i, &nla);
		const struct cp_plabel *lb = cp_profile_sample_labels(back, i, &nlb);
		bool labels_same = nla == nlb;

		/* Location ids are kept: the reader numbers them as the file does. */
		for (size_t j = 0; labels_same && j < nla; j++)
			labels_same = !strcmp(prof->str.v[la[j].key], back->str.v[lb[j].key]) &&
				      !strcmp(prof->str.v[la[j].str], back->str.v[lb[j].str]) &&
				      la[j].num == lb[j].num;
		if (na < 0 || nb < 0 || !same_stack(a, (size_t)na, b, (size_t)nb) ||
		    !labels_same || memcmp(&prof->values[i * 2], &back->values[i * 2], 16)) {
			FAIL("sample %zu differs after the round trip", i);
			break;
		}
	}
	pb2 = render(back, CP_PROFILE_PPROF, &len2);
	CHECK(len1 == len2 && memcmp(pb1, pb2, len1) == 0, "pprof rewritten: %zu vs %zu bytes",
	      len1, len2);
	free(pb2);
	for (int fmt = CP_PROFILE_FOLDED; fmt <= CP_PROFILE_TEXT; fmt++) {
		t1 = render(prof, (enum cp_profile_format)fmt, NULL);
		t2 = render(back, (enum cp_profile_format)fmt, NULL);
		CHECK(!strcmp(t1, t2), "format %d differs after the round trip", fmt);
		free(t1);
		free(t2);
	}
	/* More samples after a text write: the writers' per-sample state follows. */
	for (unsigned k = 1; k < 200; k += 3)
		CHECK(cp_profile_add_sample(prof, st, make_stack(&l, k, st), 1, 12, "late", 1) == 0,
		      "late sample %u", k);
	t1 = render(prof, CP_PROFILE_TEXT, NULL);
	CHECK(strstr(t1, "msort") != NULL, "text after more samples");
	free(t1);
out:
	free(pb1);
	free(a);
	free(b);
	cp_profile_free(back);
	cp_profile_free(prof);
}

/*
 * Memory per distinct stack: 2^16 distinct deep stacks (depth 20) of one thread cost the
 * sample storage (key, values, hash slots) and the new trie nodes, nowhere near a copy of
 * each stack (160 bytes of location ids alone).
 */
static void test_bytes_per_stack(void)
{
	struct cp_profile *prof = cp_profile_new();
	uint64_t st[32], loc[64];
	size_t bytes, nstacks = 1u << 16;
	struct cp_map map = { 0x1000, 0x100000, 0, 1, 1, 1, "r-xp", (char *)"/bin/x", false };
	struct cp_profile_line line = { "f", NULL, NULL, 0, 0 };
	uint64_t mid;

	if (!prof) {
		FAIL("cp_profile_new");
		return;
	}
	CHECK(cp_profile_add_mapping(prof, 1, &map, NULL, true, false, &mid) == 0, "mapping");
	for (int i = 0; i < 64; i++)
		CHECK(cp_profile_add_location(prof, 1, 0x2000 + (uint64_t)i * 16, mid, &line, 1,
					      &loc[i]) == 0,
		      "location %d", i);
	for (size_t k = 0; k < nstacks; k++) {
		/* Four common outer frames, then 16 frames chosen by the bits of k. */
		for (int j = 0; j < 16; j++)
			st[j] = loc[4 + 2 * j + ((k >> j) & 1)];
		for (int j = 0; j < 4; j++)
			st[16 + j] = loc[3 - j];
		if (cp_profile_add_sample(prof, st, 20, 1, 1, "t", 1)) {
			FAIL("sample %zu", k);
			break;
		}
	}
	CHECK(prof->nsamples == nstacks, "%zu samples", prof->nsamples);
	bytes = prof->sample_keys_alloc * sizeof(*prof->sample_keys) +
		prof->values_alloc * sizeof(*prof->values) +
		prof->sample_h.cap * sizeof(*prof->sample_h.slot) +
		prof->nodes_alloc * sizeof(*prof->nodes) +
		prof->node_h.cap * sizeof(*prof->node_h.slot);
	/* Each stack adds about two nodes here (the last bits split late, as in a sort). */
	printf("%zu distinct stacks: %zu trie nodes, %.1f bytes per stack\n", nstacks,
	       prof->nnodes, (double)bytes / (double)nstacks);
	/* The old storage (a copy of each stack, its labels, 8-byte hash slots) took 290. */
	CHECK(bytes / nstacks <= 96, "%zu bytes per distinct stack", bytes / nstacks);
	cp_profile_free(prof);
}

int main(void)
{
	test_trie();
	test_period();
	test_round_trip();
	test_bytes_per_stack();
	return check_done("profile_stacks");
}
