/*
 * Unit tests for src/base: file reads, strbuf and JSON escaping, integer parsing, clocks, hash
 * tables, the string interner, the cache folder and atomic file replacement.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "cache_dir.h"
#include "check.h"
#include "strtab.h"
#include "util.h"

static void check_json(const char *in, const char *want)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	char *got;

	cp_strbuf_add_json_str(&sb, in);
	got = cp_strbuf_detach(&sb);
	if (!got || strcmp(got, want) != 0) {
		FAIL("json: got %s want %s", got ? got : "(null)", want);
	}
	free(got);
}

static void test_json(void)
{
	check_json(NULL, "null");
	check_json("", "\"\"");
	check_json("plain", "\"plain\"");
	check_json("a\"b\\c", "\"a\\\"b\\\\c\"");
	check_json("l1\nl2\tx\r\b\f", "\"l1\\nl2\\tx\\r\\b\\f\"");
	check_json("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
	/* Valid UTF-8 passes through untouched. */
	check_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* Invalid: stray continuation, truncated sequence, overlong, surrogate, > U+10FFFF. */
	check_json("\x80", "\"\\ufffd\"");
	check_json("a\xc3", "\"a\\ufffd\"");
	check_json("\xe2\x82", "\"\\ufffd\\ufffd\"");
	check_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	check_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	check_json("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	check_json("\xff" "ok", "\"\\ufffdok\"");
}

/* The printf-free integer formatting against printf itself, at the edges. */
static void test_strbuf_numbers(void)
{
	static const long long ints[] = { 0, 1, -1, 9, 10, -10, 12345, INT_MAX, INT_MIN,
					  LLONG_MAX, LLONG_MIN };
	static const unsigned long long hexes[] = { 0, 1, 0xf, 0x10, 0x7f1048876e90ull,
						    0xffffffffffffffffull };
	char want[64];

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		struct cp_strbuf sb = CP_STRBUF_INIT;

		cp_strbuf_add_int(&sb, ints[i]);
		snprintf(want, sizeof(want), "%lld", ints[i]);
		CHECK(sb.buf && strcmp(sb.buf, want) == 0, "int %s: got %s", want,
		      sb.buf ? sb.buf : "(null)");
		cp_strbuf_release(&sb);
	}
	for (size_t i = 0; i < sizeof(hexes) / sizeof(hexes[0]); i++) {
		struct cp_strbuf sb = CP_STRBUF_INIT;

		cp_strbuf_add_hex(&sb, hexes[i]);
		snprintf(want, sizeof(want), "0x%llx", hexes[i]);
		CHECK(sb.buf && strcmp(sb.buf, want) == 0, "hex %s: got %s", want,
		      sb.buf ? sb.buf : "(null)");
		cp_strbuf_release(&sb);
	}
}

/* Flushing in pieces writes the same bytes as one write of the whole, and keeps the buffer. */
static void test_strbuf_flush(void)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	char *text = NULL;
	size_t size = 0, total = 0;
	FILE *f = open_memstream(&text, &size);

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(cp_strbuf_flush(&sb, f) == 0);	/* empty, never allocated */
	for (int i = 0; i < 20000; i++) {
		cp_strbuf_add_int(&sb, i);
		cp_strbuf_addc(&sb, '\n');
		if (sb.len >= CP_STRBUF_FLUSH_AT) {
			total += sb.len;
			CHECK(cp_strbuf_flush(&sb, f) == 0);
			CHECK(sb.len == 0 && sb.buf && sb.buf[0] == '\0');
		}
	}
	total += sb.len;
	CHECK(cp_strbuf_flush(&sb, f) == 0);
	CHECK(sb.alloc <= 2 * CP_STRBUF_FLUSH_AT, "buffer grew to %zu", sb.alloc);
	fclose(f);
	CHECK(size == total && size > 3 * CP_STRBUF_FLUSH_AT);
	CHECK(text && !strncmp(text, "0\n1\n2\n", 6) && !strcmp(text + size - 6, "19999\n"));
	free(text);
	/* An allocation failure recorded in sb is reported, nothing written. */
	sb.err = -ENOMEM;
	CHECK(cp_strbuf_flush(&sb, stdout) == -ENOMEM);
	cp_strbuf_release(&sb);
}

static void test_strbuf(void)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	char *s;
	int i;

	s = cp_strbuf_detach(&sb);
	CHECK(s && strcmp(s, "") == 0);
	free(s);

	cp_strbuf_adds(&sb, "x=");
	cp_strbuf_addf(&sb, "%d,%s", 42, "y");
	cp_strbuf_addc(&sb, '!');
	cp_strbuf_add(&sb, "abc", 2);
	CHECK(sb.err == 0);
	CHECK(sb.len == strlen("x=42,y!ab"));
	CHECK(strcmp(sb.buf, "x=42,y!ab") == 0);
	/* Growth over many appends keeps the content and the terminator. */
	for (i = 0; i < 10000; i++)
		cp_strbuf_addf(&sb, "%04d", i % 10000);
	CHECK(sb.len == 9 + 40000);
	CHECK(sb.buf[sb.len] == '\0');
	CHECK(memcmp(sb.buf + 9, "000000010002", 12) == 0);
	CHECK(memcmp(sb.buf + sb.len - 4, "9999", 4) == 0);
	cp_strbuf_release(&sb);
	CHECK(sb.buf == NULL && sb.len == 0);
	cp_strbuf_release(&sb);
	cp_strbuf_release(NULL);

	/* A formatted piece longer than the room left is formatted again after growing. */
	{
		char big[5000];

		memset(big, 'z', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		cp_strbuf_adds(&sb, "ab");
		cp_strbuf_addf(&sb, "<%s>%d", big, 7);
		CHECK(sb.err == 0 && sb.len == 2 + 1 + 4999 + 2);
		CHECK(sb.buf[2] == '<' && sb.buf[3] == 'z' && !strcmp(sb.buf + sb.len - 2, ">7"));
		cp_strbuf_release(&sb);
	}

	/* After an error, appends are ignored and detach reports it with NULL. */
	cp_strbuf_adds(&sb, "keep");
	sb.err = -ENOMEM;
	cp_strbuf_adds(&sb, "more");
	CHECK(sb.len == 4);
	CHECK(cp_strbuf_detach(&sb) == NULL);
	CHECK(sb.buf == NULL && sb.err == 0);
}

static void test_parse_long(void)
{
	long v = 7;

	CHECK(cp_parse_long("123", 0, 1000, &v) == 0 && v == 123);
	CHECK(cp_parse_long("-5", -10, 10, &v) == 0 && v == -5);
	CHECK(cp_parse_long("+5", -10, 10, &v) == 0 && v == 5);
	v = 7;
	CHECK(cp_parse_long("", 0, 10, &v) == -EINVAL);
	CHECK(cp_parse_long(" 1", 0, 10, &v) == -EINVAL);
	CHECK(cp_parse_long("1 ", 0, 10, &v) == -EINVAL);
	CHECK(cp_parse_long("12abc", 0, 100, &v) == -EINVAL);
	CHECK(cp_parse_long("0x10", 0, 100, &v) == -EINVAL);
	CHECK(cp_parse_long("-", 0, 100, &v) == -EINVAL);
	CHECK(cp_parse_long(NULL, 0, 100, &v) == -EINVAL);
	CHECK(cp_parse_long("11", 0, 10, &v) == -ERANGE);
	CHECK(cp_parse_long("-1", 0, 10, &v) == -ERANGE);
	CHECK(cp_parse_long("99999999999999999999999", LONG_MIN, LONG_MAX, &v) == -ERANGE);
	CHECK(v == 7);
}

static void test_files(void)
{
	char dir[] = "/tmp/cp_test_util.XXXXXX";
	char path[128], buf[8], *big;
	size_t len = 0;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	big = malloc(20000);
	memset(big, 'z', 20000);
	memcpy(big, "hello", 5);
	CHECK(cp_write_all(fd, big, 20000) == 0);
	close(fd);

	/* Bounded read truncates to size - 1 and terminates. */
	CHECK(cp_read_file(path, buf, sizeof(buf), &len) == 0);
	CHECK(len == 7 && strcmp(buf, "hellozz") == 0);
	CHECK(cp_read_file("/nonexistent/x", buf, sizeof(buf), NULL) == -ENOENT);

	{
		char *out = NULL;

		CHECK(cp_read_file_alloc(path, 1 << 20, &out, &len) == 0);
		CHECK(out && len == 20000 && out[20000] == '\0' && memcmp(out, "hello", 5) == 0);
		free(out);
		out = NULL;
		CHECK(cp_read_file_alloc(path, 19999, &out, &len) == -EFBIG);
		CHECK(out == NULL);
		CHECK(cp_read_file_alloc(path, 20000, &out, &len) == 0);
		free(out);
		/* /proc files have no size: the growing read must still get all of them. */
		CHECK(cp_read_file_alloc("/proc/self/maps", 1 << 24, &out, &len) == 0);
		CHECK(out && len > 0 && strlen(out) == len);
		free(out);
	}
	CHECK(cp_write_all(-1, "x", 1) == -EBADF);
	free(big);
	unlink(path);
	rmdir(dir);
}

static void test_misc(void)
{
	uint64_t a = cp_now_ns(), b = cp_now_ns();
	char *s;

	CHECK(a > 0 && b >= a);
	/* 2020-01-01 in ns: a sanity bound on the wall clock. */
	CHECK(cp_wall_ns() > 1577836800ull * 1000000000ull);
	CHECK(cp_strdup_or_null(NULL) == NULL);
	s = cp_strdup_or_null("x");
	CHECK(s && strcmp(s, "x") == 0);
	free(s);
}

static void test_strtab(void)
{
	struct cp_strtab t;
	const char *a, *b;
	char key[32];
	int64_t i;

	/* Raw: bytes kept as they are, one copy each, pointers stable while the table grows. */
	CHECK(cp_strtab_init(&t, 0) == 0 && t.n == 1 && !strcmp(t.v[0], ""));
	a = cp_strtab_str(&t, "a\xff" "b");
	CHECK(a && !strcmp(a, "a\xff" "b"));
	for (int k = 0; k < 1000; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		CHECK(cp_strtab_intern(&t, key) == k + 2);
	}
	b = cp_strtab_str(&t, "a\xff" "b");
	CHECK(a == b && t.n == 1002);
	CHECK(cp_strtab_lookup(&t, "k999") == 1001 && cp_strtab_lookup(&t, "nope") == -1);
	CHECK(cp_strtab_intern(&t, NULL) == 0);
	cp_strtab_release(&t);
	/* UTF-8: a bad byte becomes U+FFFD. */
	CHECK(cp_strtab_init(&t, CP_STRTAB_UTF8) == 0);
	i = cp_strtab_intern(&t, "a\xff" "b");
	CHECK(i == 1 && !strcmp(t.v[1], "a\xef\xbf\xbd" "b"));
	cp_strtab_release(&t);
}

struct itab_fixture {
	uint32_t v[5000];
};

static uint32_t itab_hash(const void *ctx, uint32_t idx)
{
	return (uint32_t)cp_hash_mix(0, ((const struct itab_fixture *)ctx)->v[idx]);
}

static bool itab_eq(const void *ctx, uint32_t idx, const void *key)
{
	return ((const struct itab_fixture *)ctx)->v[idx] == *(const uint32_t *)key;
}

static void test_tables(void)
{
	static struct itab_fixture fx;
	struct cp_itab it = { 0 };
	struct cp_htab ht = { 0 };
	uint32_t miss = 8;	/* even: not in the table */
	bool ok = true;

	for (uint32_t i = 0; i < CP_ARRAY_SIZE(fx.v); i++) {
		fx.v[i] = i * 2 + 1;
		ok = ok && cp_itab_insert(&it, itab_hash(&fx, i), i, itab_hash, &fx) == 0;
		ok = ok && cp_htab_insert(&ht, itab_hash(&fx, i), i) == 0;
	}
	CHECK(ok && it.n == CP_ARRAY_SIZE(fx.v) && ht.n == it.n);
	/* The 4-byte slots at 3/4 load: a quarter of cp_htab's 8-byte slots at 1/2. */
	CHECK(it.cap * sizeof(*it.slot) * 4 <= ht.cap * sizeof(*ht.slot));
	for (uint32_t i = 0; i < CP_ARRAY_SIZE(fx.v); i++) {
		uint32_t key = i * 2 + 1;

		ok = ok && cp_itab_find(&it, itab_hash(&fx, i), itab_eq, &fx, &key) == i;
		ok = ok && cp_htab_find(&ht, itab_hash(&fx, i), itab_eq, &fx, &key) == i;
	}
	CHECK(ok);
	CHECK(cp_itab_find(&it, (uint32_t)cp_hash_mix(0, miss), itab_eq, &fx, &miss) == -1);
	cp_itab_release(&it);
	cp_htab_release(&ht);
}

static void test_cache_dir(void)
{
	char buf[4096], why[512], dir[] = "/tmp/cprof-test-cachedir-XXXXXX", sub[4200];
	struct stat st;

	CHECK(mkdtemp(dir) != NULL);
	setenv("CPROF_CACHE_DIR", dir, 1);
	CHECK(cp_cache_path(buf, sizeof(buf), "sub", "name", false) == -ENOENT);
	CHECK(cp_cache_path(buf, sizeof(buf), NULL, "n.debug", false) == 0 &&
	      !strncmp(buf, dir, strlen(dir)) && !strcmp(buf + strlen(dir), "/n.debug"));
	CHECK(cp_cache_path(buf, 8, "sub", "name", false) == -ENAMETOOLONG);
	setenv("CPROF_CACHE_DIR", "", 1);
	CHECK(cp_cache_path(buf, sizeof(buf), "sub", "name", false) == -ENOENT);
	CHECK(cp_cache_check(why, sizeof(why)) == -ENOENT);
	unsetenv("CPROF_CACHE_DIR");
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	CHECK(cp_cache_dir(buf, sizeof(buf)) == 0 && !strcmp(buf, "/xdg/cprof"));
	unsetenv("XDG_CACHE_HOME");
	/* create_dir makes the folders, not the file. */
	setenv("CPROF_CACHE_DIR", dir, 1);
	CHECK(cp_cache_check(why, sizeof(why)) == 0, "%s", why);
	CHECK(cp_cache_path(buf, sizeof(buf), "a/b", "f", true) == 0);
	CHECK(stat(buf, &st) < 0);
	*strrchr(buf, '/') = '\0';
	CHECK(stat(buf, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	/* A folder others may write into, or another user's: the cache is off, and why. */
	CHECK(chmod(buf, 0777) == 0);
	CHECK(cp_cache_path(sub, sizeof(sub), "a/b", "f", false) == -EPERM);
	CHECK(cp_cache_walk(buf, strlen(dir), false, why, sizeof(why)) == -EPERM &&
	      strstr(why, "writable by group or others"), "%s", why);
	CHECK(chmod(buf, 0700) == 0 && cp_cache_path(sub, sizeof(sub), "a/b", "f", false) == 0);
	if (geteuid() == 0) {
		CHECK(chown(buf, 65534, 65534) == 0);
		CHECK(cp_cache_walk(buf, strlen(dir), false, why, sizeof(why)) == -EPERM &&
		      strstr(why, "owned by uid 65534"), "%s", why);
		CHECK(chown(buf, 0, 0) == 0);
	}
	rmdir(buf);
	/* A planted link is never followed, nor is anything made through it. */
	*strrchr(buf, '/') = '\0';
	snprintf(sub, sizeof(sub), "%s/b", buf);
	CHECK(symlink("/tmp", sub) == 0);
	CHECK(cp_cache_path(buf, sizeof(buf), "a/b", "f", true) == -EPERM);
	snprintf(buf, sizeof(buf), "%s/a", dir);
	CHECK(cp_cache_walk(sub, strlen(dir), true, why, sizeof(why)) == -EPERM &&
	      strstr(why, "symbolic link"), "%s", why);
	unlink(sub);
	rmdir(buf);
	/* The cache directory itself writable by others: cp_cache_check says so. */
	CHECK(chmod(dir, 0777) == 0);
	CHECK(cp_cache_check(why, sizeof(why)) == -EPERM && strstr(why, dir), "%s", why);
	CHECK(cp_cache_walk("/tmp/../etc", 4, false, why, sizeof(why)) == -EPERM);
	rmdir(dir);
	unsetenv("CPROF_CACHE_DIR");
}

/* The names in dir other than "out" (temporaries left behind). */
static int stray_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "out");
	if (d)
		closedir(d);
	return n;
}

static void test_atomic_file(void)
{
	char dir[] = "/tmp/cprof-test-atomic-XXXXXX", path[128], got[16];
	struct cp_atomic_file af;
	struct stat st;
	size_t len;
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/out", dir);
	CHECK(cp_write_all(fd = open(path, O_WRONLY | O_CREAT, 0600), "old", 3) == 0);
	close(fd);
	/* Until the commit readers see the old file, and no name is taken meanwhile. */
	CHECK(cp_atomic_file_open(&af, path, 0644) == 0 && cp_write_all(af.fd, "new", 3) == 0);
	CHECK(cp_read_file(path, got, sizeof(got), &len) == 0 && !strcmp(got, "old"));
	CHECK(stray_files(dir) == 0);
	CHECK(cp_atomic_file_commit(&af) == 0 && af.tmp == NULL);
	CHECK(cp_read_file(path, got, sizeof(got), &len) == 0 && !strcmp(got, "new"));
	/* The replaced file's mode is kept (0600, not the 0644 asked for a new one). */
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "%o", st.st_mode);
	CHECK(stray_files(dir) == 0);
	/* Abort leaves the destination alone and nothing behind. */
	CHECK(cp_atomic_file_open(&af, path, 0600) == 0);
	cp_atomic_file_abort(&af);
	CHECK(stray_files(dir) == 0 && cp_read_file(path, got, sizeof(got), &len) == 0 &&
	      !strcmp(got, "new"));
	cp_atomic_file_abort(&af);	/* twice is harmless */
	/* Another user's file keeps its owner (root may give it back). */
	if (geteuid() == 0) {
		CHECK(chown(path, 65534, 65534) == 0);
		CHECK(cp_atomic_file_open(&af, path, 0644) == 0 && cp_atomic_file_commit(&af) == 0);
		CHECK(stat(path, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534 &&
		      (st.st_mode & 0777) == 0600);
	}
	/* Not a regular file: not replaced. */
	CHECK(cp_atomic_file_open(&af, dir, 0600) == -EISDIR);
	CHECK(cp_atomic_file_open(&af, "/dev/null", 0600) == -EEXIST);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_json();
	test_strbuf();
	test_strbuf_numbers();
	test_strbuf_flush();
	test_parse_long();
	test_files();
	test_misc();
	test_strtab();
	test_tables();
	test_cache_dir();
	test_atomic_file();
	return check_done("util");
}
