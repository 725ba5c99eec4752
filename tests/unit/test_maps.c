/* Unit tests for src/maps.c: parsing, lookup, and the path cprof opens for a mapping. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "maps.h"
#include "util.h"

static const char sample[] =
	"55d1c0a00000-55d1c0a02000 r--p 00000000 fd:01 1311234                    /usr/bin/app\n"
	"55d1c0a02000-55d1c0a05000 r-xp 00002000 fd:01 1311234                    /usr/bin/app\n"
	"55d1c0c04000-55d1c0c25000 rw-p 00000000 00:00 0                          [heap]\n"
	"7f3a1c200000-7f3a1c228000 r--p 00000000 fd:01 2490377                    /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f3a1c228000-7f3a1c3bd000 r-xp 00028000 fd:01 2490377                    /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f3a1c400000-7f3a1c401000 r-xp 00001000 08:10 77                         /tmp/my dir/lib x.so (deleted)\n"
	"7f3a1c500000-7f3a1c501000 rw-s 00000000 00:01 1025                       /memfd:jit (deleted)\n"
	"7f3a1c600000-7f3a1c700000 rw-p 00000000 00:00 0 \n"
	"7f3a1c700000-7f3a1c701000 rw-p 00000000 00:00 0\n"
	"7f3a1c800000-7f3a1c801000 r--s 00000000 00:05 9                          /dev/dri/card0\n"
	"7ffd5f380000-7ffd5f3a1000 rw-p 00000000 00:00 0                          [stack]\n"
	"7ffd5f3f0000-7ffd5f3f2000 r-xp 00000000 00:00 0                          [vdso]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static void test_parse(void)
{
	struct cp_maps m;
	const struct cp_map *e;

	CHECK(cp_maps_parse(sample, &m) == 0);
	CHECK(m.n == 13 && !m.truncated);
	if (m.n != 13) {
		cp_maps_release(&m);
		return;
	}
	e = &m.v[1];
	CHECK(e->start == 0x55d1c0a02000ull && e->end == 0x55d1c0a05000ull);
	CHECK(e->offset == 0x2000 && e->inode == 1311234);
	CHECK(e->dev_major == 0xfd && e->dev_minor == 1);
	CHECK(strcmp(e->perms, "r-xp") == 0);
	CHECK(strcmp(e->path, "/usr/bin/app") == 0 && !e->deleted);
	CHECK(cp_map_is_file(e));
	CHECK(strcmp(cp_map_basename(e), "app") == 0);

	e = &m.v[2];
	CHECK(strcmp(e->path, "[heap]") == 0 && !cp_map_is_file(e));
	CHECK(strcmp(cp_map_basename(e), "[heap]") == 0);

	e = &m.v[5];
	CHECK(strcmp(e->path, "/tmp/my dir/lib x.so") == 0 && e->deleted);
	CHECK(e->dev_major == 8 && e->dev_minor == 0x10);
	CHECK(cp_map_is_file(e));
	CHECK(strcmp(cp_map_basename(e), "lib x.so") == 0);

	e = &m.v[6];
	CHECK(strcmp(e->path, "/memfd:jit") == 0 && e->deleted && !cp_map_is_file(e));
	CHECK(strcmp(e->perms, "rw-s") == 0);

	e = &m.v[7];
	CHECK(strcmp(e->path, "") == 0 && !e->deleted && !cp_map_is_file(e));
	CHECK(strcmp(cp_map_basename(e), "[anon]") == 0);
	CHECK(strcmp(m.v[8].path, "") == 0);
	CHECK(!cp_map_is_file(&m.v[9]));
	CHECK(strcmp(m.v[11].path, "[vdso]") == 0);
	CHECK(m.v[12].start == 0xffffffffff600000ull && strcmp(m.v[12].perms, "--xp") == 0);

	/* Lookup: starts, last byte, ends (exclusive), gaps, below and above everything. */
	CHECK(cp_maps_find(&m, 0x55d1c0a00000ull) == &m.v[0]);
	CHECK(cp_maps_find(&m, 0x55d1c0a01fffull) == &m.v[0]);
	CHECK(cp_maps_find(&m, 0x55d1c0a02000ull) == &m.v[1]);
	CHECK(cp_maps_find(&m, 0x55d1c0a05000ull) == NULL);
	CHECK(cp_maps_find(&m, 0x7f3a1c228123ull) == &m.v[4]);
	CHECK(cp_maps_find(&m, 0x1000) == NULL);
	CHECK(cp_maps_find(&m, 0x7ffd5f3a0ff8ull) == &m.v[10]);
	CHECK(cp_maps_find(&m, 0xffffffffff600fffull) == &m.v[12]);
	CHECK(cp_maps_find(&m, UINT64_MAX) == NULL);
	CHECK(cp_maps_find(NULL, 0x1000) == NULL);

	cp_maps_release(&m);
	CHECK(m.v == NULL && m.n == 0);
	cp_maps_release(&m);
	cp_maps_release(NULL);
}

static void test_parse_bad(void)
{
	struct cp_maps m = { .pid = 77, .v = NULL, .n = 5 };
	struct cp_maps e;

	CHECK(cp_maps_parse("garbage\n", &m) == -EINVAL);
	CHECK(cp_maps_parse("1000-2000 r-xp\n", &m) == -EINVAL);
	CHECK(cp_maps_parse("1000-2000 r-xp 0 fd:01\n", &m) == -EINVAL);
	CHECK(cp_maps_parse("2000-1000 r-xp 0 fd:01 5 /x\n", &m) == -EINVAL);
	CHECK(cp_maps_parse("1000-2000 r-xp 0 fd:01 5x /x\n", &m) == -EINVAL);
	CHECK(cp_maps_parse("10000000000000000-2 r-xp 0 fd:01 5 /x\n", &m) == -EINVAL);
	/* A bad line after good ones fails the whole parse and leaks nothing. */
	CHECK(cp_maps_parse("1000-2000 r-xp 0 fd:01 5 /x\nzzz\n", &m) == -EINVAL);
	CHECK(m.pid == 77 && m.n == 5);
	CHECK(cp_maps_parse("", &e) == 0 && e.n == 0);
	cp_maps_release(&e);
	/* Not in address order (hand-made text): sorted so lookups still work. */
	CHECK(cp_maps_parse("3000-4000 r-xp 0 fd:01 5 /b\n1000-2000 r-xp 0 fd:01 5 /a", &e) == 0);
	CHECK(e.n == 2 && e.v[0].start == 0x1000 && cp_maps_find(&e, 0x3500) == &e.v[1]);
	cp_maps_release(&e);
}

static void test_cap(void)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	struct cp_maps m;
	size_t i;

	for (i = 0; i < CP_MAPS_MAX_ENTRIES + 10; i++)
		cp_strbuf_addf(&sb, "%zx-%zx rw-p 00000000 00:00 0\n", (i + 1) * 0x1000,
			       (i + 1) * 0x1000 + 0x800);
	CHECK(sb.err == 0);
	CHECK(cp_maps_parse(sb.buf, &m) == 0);
	CHECK(m.n == CP_MAPS_MAX_ENTRIES && m.truncated);
	cp_maps_release(&m);
	cp_strbuf_release(&sb);
}

static int probe_fn(void)
{
	return 42;
}

/*
 * cp_map_open: the mapped object itself through map_files, whatever its path names now; with
 * map_files out of reach (a mapping map_files does not know, as for a cprof without
 * CAP_SYS_ADMIN) the path only when its device and inode are the mapping's, and never a FIFO.
 */
static void test_map_open(const struct cp_map *mapped, const char *path, const char *dir)
{
	struct cp_map fake = *mapped;
	char buf[4200], fifo[300];
	struct stat st;
	int fd = cp_map_open(getpid(), mapped, buf, sizeof(buf));

	CHECK(fd >= 0 && strstr(buf, "/map_files/") && fstat(fd, &st) == 0 &&
	      st.st_ino == mapped->inode && st.st_size == 4096, "%d %s", fd, buf);
	if (fd >= 0)
		close(fd);
	/* No such mapping in map_files: the path names another file now (path is the new one). */
	fake.start = fake.end = 0x1000;
	CHECK(cp_map_open(getpid(), &fake, buf, sizeof(buf)) == -ESTALE, "%s", buf);
	/* The same, but the path is that file: taken. */
	CHECK(stat(path, &st) == 0);
	fake.inode = st.st_ino;
	fd = cp_map_open(getpid(), &fake, buf, sizeof(buf));
	CHECK(fd >= 0 && strstr(buf, "/root/"), "%d %s", fd, buf);
	if (fd >= 0)
		close(fd);
	/* A FIFO swapped in, even with the right inode: refused, without blocking. */
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	CHECK(mkfifo(fifo, 0600) == 0 && stat(fifo, &st) == 0);
	fake.path = fifo;
	fake.inode = st.st_ino;
	CHECK(cp_map_open(getpid(), &fake, buf, sizeof(buf)) == -ENOEXEC);
	unlink(fifo);
}

static void test_live(void)
{
	char dir[] = "/tmp/cp_test_maps.XXXXXX";
	char path[256], buf[512], want[256];
	struct cp_maps m;
	const struct cp_map *e, *self;
	int stack_var = 0, fd;
	void *p;

	CHECK(cp_maps_read(getpid(), &m) == 0);
	CHECK(m.pid == getpid() && m.n > 5);
	self = cp_maps_find(&m, (uint64_t)(uintptr_t)&probe_fn);
	CHECK(self && strchr(self->perms, 'x') && strstr(self->path, "test_maps"));
	e = cp_maps_find(&m, (uint64_t)(uintptr_t)&stack_var);
	CHECK(e && strcmp(e->path, "[stack]") == 0);
	if (self) {
		CHECK(cp_map_open_path(getpid(), self, buf, sizeof(buf)) == 0);
		snprintf(want, sizeof(want), "/proc/%d/root%s", getpid(), self->path);
		CHECK(strcmp(buf, want) == 0);
		CHECK(access(buf, R_OK) == 0);
		CHECK(cp_map_open_path(getpid(), self, buf, 10) == -ENAMETOOLONG);
	}
	CHECK(cp_map_open_path(getpid(), e, buf, sizeof(buf)) == -ENOENT);
	cp_maps_release(&m);
	CHECK(cp_maps_read(999999999, &m) == -ESRCH);

	/* A mapped file that was deleted, and one that was replaced by another file. */
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/lib with space.so", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
	p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED);
	close(fd);

	CHECK(cp_maps_read(getpid(), &m) == 0);
	e = cp_maps_find(&m, (uint64_t)(uintptr_t)p);
	CHECK(e && strcmp(e->path, path) == 0 && !e->deleted);
	CHECK(e && cp_map_open_path(getpid(), e, buf, sizeof(buf)) == 0 && strstr(buf, "/root/"));
	cp_maps_release(&m);

	/* Replaced: a new file under the same name; the mapping still shows the old inode. */
	{
		char tmp[300];

		snprintf(tmp, sizeof(tmp), "%s.new", path);
		fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0);
		close(fd);
		CHECK(rename(tmp, path) == 0);
	}
	CHECK(cp_maps_read(getpid(), &m) == 0);
	e = cp_maps_find(&m, (uint64_t)(uintptr_t)p);
	CHECK(e && e->deleted);
	if (e) {
		/* The kernel marks a renamed-over file deleted too; either way map_files. */
		snprintf(want, sizeof(want), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, getpid(),
			 e->start, e->end);
		CHECK(cp_map_open_path(getpid(), e, buf, sizeof(buf)) == 0);
		CHECK(strcmp(buf, want) == 0);
		CHECK(access(buf, F_OK) == 0);
	}
	/* Not marked deleted, but the inode at the path differs (a bind mount, or /proc/PID/root
	 * showing another file): map_files too. */
	if (e) {
		struct cp_map fake = *e;

		fake.deleted = false;
		CHECK(cp_map_open_path(getpid(), &fake, buf, sizeof(buf)) == 0);
		CHECK(strcmp(buf, want) == 0);
		test_map_open(&fake, path, dir);
	}
	cp_maps_release(&m);
	munmap(p, 4096);
	unlink(path);
	rmdir(dir);
}


/*
 * cp_maps_read parses the file as it reads it, in 64 KiB pieces: with enough mappings for
 * many pieces, it must see exactly what parsing the whole text sees.
 */
static void test_read_in_pieces(void)
{
	const size_t nmaps = 3000;
	struct cp_maps whole = { 0 }, pieces = { 0 };
	char path[64], *text = NULL;
	size_t len = 0;
	char *area;

	/* Alternate protections so that neighbouring pages stay separate mappings. */
	area = mmap(NULL, nmaps * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED);
	for (size_t i = 0; i < nmaps; i += 2)
		CHECK(mprotect(area + i * 4096, 4096, PROT_READ | PROT_WRITE) == 0);
	snprintf(path, sizeof(path), "/proc/%d/maps", getpid());
	CHECK(cp_read_file_alloc(path, CP_MAPS_MAX_BYTES, &text, &len) == 0);
	CHECK(len > 2 * (64u << 10));	/* three pieces at least */
	CHECK(cp_maps_parse(text, &whole) == 0);
	CHECK(cp_maps_read(getpid(), &pieces) == 0);
	/* Other mappings may come and go between the two reads (the allocator's); ours stay. */
	CHECK(whole.n > nmaps && pieces.n > nmaps);
	for (size_t i = 0; i < nmaps; i++) {
		uint64_t addr = (uint64_t)(uintptr_t)(area + i * 4096);
		const struct cp_map *a = cp_maps_find(&whole, addr), *b = cp_maps_find(&pieces, addr);

		CHECK(a && b && a->start == addr && b->start == addr && a->end == b->end &&
		      a->offset == b->offset && a->inode == b->inode && !strcmp(a->perms, b->perms) &&
		      !strcmp(a->perms, i % 2 ? "r--p" : "rw-p") && !strcmp(a->path, b->path));
	}
	/* And the last mapping of the file (the vsyscall page or the stack) is there too. */
	CHECK(whole.v[whole.n - 1].start == pieces.v[pieces.n - 1].start);
	cp_maps_release(&whole);
	cp_maps_release(&pieces);
	free(text);
	munmap(area, nmaps * 4096);
}

int main(void)
{
	test_read_in_pieces();
	test_parse();
	test_parse_bad();
	test_cap();
	test_live();
	return check_done("maps");
}
