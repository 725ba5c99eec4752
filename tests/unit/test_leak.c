/* Unit tests of the leak evidence: pools stay quiet, steady growth and --stuck growth do not. */
#include <string.h>

#include "check.h"
#include "leak.h"

#define SEC 1000000000ull

static struct cp_leak_verdict judge(size_t count, const uint64_t *t, size_t n, size_t grown,
				    uint64_t now)
{
	struct cp_leak_group g = { .count = count, .start_ns = t, .nstart = n, .grown = grown };
	struct cp_leak_verdict v;

	memset(&v, 0xff, sizeof(v));
	CHECK(cp_leak_judge(&g, now, &v) == 0);
	return v;
}

int main(void)
{
	uint64_t t[64];
	struct cp_leak_verdict v;
	char buf[32];

	/* A fixed pool of 40 threads made in one burst at start-up, hours ago: quiet. */
	for (int i = 0; i < 40; i++)
		t[i] = 100 * SEC + (uint64_t)i * 1000000;
	v = judge(40, t, 40, 0, 20000 * SEC);
	CHECK(!v.leak);
	CHECK(v.span_ns == 39 * 1000000ull);

	/* One a second for 30 s, the last 4 s ago: a leak, and what to say about it. */
	for (int i = 0; i < 30; i++)
		t[29 - i] = 1000 * SEC + (uint64_t)i * SEC;	/* unsorted on purpose */
	v = judge(30, t, 30, 0, 1033 * SEC);
	CHECK(v.leak && !v.by_growth);
	CHECK(v.span_ns == 29 * SEC && v.newest_age_ns == 4 * SEC);

	/* Three threads created far apart: too few to call (redis' bio threads). */
	t[0] = 0, t[1] = 100 * SEC, t[2] = 200 * SEC;
	CHECK(!judge(3, t, 3, 0, 300 * SEC).leak);

	/* A pool of 20 made in a burst, plus 4 added later: the burst holds more than half. */
	for (int i = 0; i < 20; i++)
		t[i] = 50 * SEC + (uint64_t)i;
	for (int i = 20; i < 24; i++)
		t[i] = 500 * SEC + (uint64_t)i * 10 * SEC;
	CHECK(!judge(24, t, 24, 0, 2000 * SEC).leak);

	/* Growth between the two looks of --stuck is evidence on its own, for a large group. */
	v = judge(12, NULL, 0, 2, 0);
	CHECK(v.leak && v.by_growth);
	CHECK(!judge(4, NULL, 0, 2, 0).leak);
	/* No start times, no growth: no evidence. */
	CHECK(!judge(500, NULL, 0, 0, 0).leak);

	cp_leak_format_duration(850 * 1000000ull, buf, sizeof(buf));
	CHECK(!strcmp(buf, "850ms"), "%s", buf);
	cp_leak_format_duration(4 * SEC + 200000000ull, buf, sizeof(buf));
	CHECK(!strcmp(buf, "4.2s"), "%s", buf);
	cp_leak_format_duration((3 * 3600 + 12 * 60 + 5) * SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "3h12m"), "%s", buf);
	cp_leak_format_duration(125 * SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "2m05s"), "%s", buf);
	cp_leak_format_duration(90000 * SEC, buf, sizeof(buf));
	CHECK(!strcmp(buf, "1d01h"), "%s", buf);
	return check_done("leak");
}
