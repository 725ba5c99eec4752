/* Unit tests for src/util.c: file reads, strbuf and JSON escaping, integer parsing, clocks. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
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

int main(void)
{
	test_json();
	test_strbuf();
	test_strbuf_numbers();
	test_strbuf_flush();
	test_parse_long();
	test_files();
	test_misc();
	return check_done("util");
}
