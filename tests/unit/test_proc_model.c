/*
 * Unit tests for src/profile/proc_model.c: the process/thread model fed by synthetic MMAP2,
 * COMM, FORK and EXIT records (a pid above the kernel's pid_max, so no /proc entry interferes).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "proc_model.h"
#include "sampler.h"
#include "unwind.h"

/* Above the largest pid_max (4194304): never a live process. */
#define FAKE_PID 5000000

static void mmap_rec(struct cp_sampler_mmap *m, int pid, uint64_t start, uint64_t len,
		     uint64_t pgoff, unsigned prot, const char *path)
{
	memset(m, 0, sizeof(*m));
	m->pid = pid;
	m->tid = pid;
	m->start = start;
	m->len = len;
	m->pgoff = pgoff;
	m->prot = prot;
	m->flags = MAP_PRIVATE;
	m->path = path;
}

static void test_mmap_cuts_and_inserts(struct cp_procs *ps)
{
	struct cp_sampler_mmap m;
	struct cp_proc *p = NULL;
	const struct cp_map *in;

	/* A new program: its map starts empty, MMAP2 records fill it. */
	cp_procs_comm(ps, FAKE_PID, FAKE_PID, "prog", true);
	p = cp_procs_find(ps, FAKE_PID);
	CHECK(p && p->maps_loaded && p->maps.n == 0);

	mmap_rec(&m, FAKE_PID, 0x10000, 0x10000, 0x1000, PROT_READ, "/nonexistent/lib.so");
	in = cp_procs_mmap(ps, &m, &p);
	CHECK(in && in->start == 0x10000 && in->end == 0x20000 && in->offset == 0x1000);
	CHECK(p && p->pid == FAKE_PID && p->maps.n == 1);

	/* A mapping inside it: three pieces, the outer ones keep their file offsets. */
	mmap_rec(&m, FAKE_PID, 0x14000, 0x4000, 0, PROT_READ | PROT_WRITE, "//anon");
	in = cp_procs_mmap(ps, &m, &p);
	CHECK(in && in->start == 0x14000 && in->path && !strcmp(in->path, ""),
	      "//anon is the anonymous mapping \"\"");
	CHECK(p->maps.n == 3, "%zu entries", p->maps.n);
	if (p->maps.n == 3) {
		CHECK(p->maps.v[0].start == 0x10000 && p->maps.v[0].end == 0x14000 &&
		      p->maps.v[0].offset == 0x1000);
		CHECK(p->maps.v[1].start == 0x14000 && p->maps.v[1].end == 0x18000 &&
		      p->maps.v[1].perms[1] == 'w');
		CHECK(p->maps.v[2].start == 0x18000 && p->maps.v[2].end == 0x20000 &&
		      p->maps.v[2].offset == 0x1000 + 0x8000);
	}

	/* " (deleted)" leaves the path and sets the flag. */
	mmap_rec(&m, FAKE_PID, 0x30000, 0x1000, 0, PROT_READ, "/tmp/gone.so (deleted)");
	in = cp_procs_mmap(ps, &m, &p);
	CHECK(in && in->deleted && !strcmp(in->path, "/tmp/gone.so"));
	CHECK(p->maps.n == 4 && p->maps.v[3].start == 0x30000, "appended in address order");

	/* An empty range is not applied. */
	mmap_rec(&m, FAKE_PID, 0x40000, 0, 0, PROT_READ, "/x");
	CHECK(cp_procs_mmap(ps, &m, &p) == NULL && p->maps.n == 4);

	CHECK(cp_proc_file_pid(p) == (int)getpid() && p->gone, "a dead pid opens through ours");
}

static void test_fork_comm_exit(struct cp_procs *ps)
{
	struct cp_proc *parent = cp_procs_find(ps, FAKE_PID), *child;
	struct cp_thread *t;

	/* A thread of the process takes its creator's name until renamed. */
	cp_procs_fork(ps, FAKE_PID, FAKE_PID + 1, FAKE_PID, FAKE_PID);
	t = cp_procs_thread_find(ps, FAKE_PID + 1);
	CHECK(t && t->pid == FAKE_PID && !strcmp(t->name, "prog"), "%s", t ? t->name : "-");
	cp_procs_comm(ps, FAKE_PID, FAKE_PID + 1, "worker", false);
	t = cp_procs_thread_find(ps, FAKE_PID + 1);
	CHECK(t && !strcmp(t->name, "worker"));
	CHECK(cp_procs_find(ps, FAKE_PID) == parent && parent->maps.n == 4,
	      "a thread's COMM without exec leaves the map");

	/* A new process: a copy of the parent's map. */
	cp_procs_fork(ps, FAKE_PID + 2, FAKE_PID + 2, FAKE_PID, FAKE_PID + 1);
	child = cp_procs_find(ps, FAKE_PID + 2);
	CHECK(child && child->maps_loaded && child->maps.n == parent->maps.n);
	if (child && child->maps.n == parent->maps.n) {
		for (size_t i = 0; i < child->maps.n; i++)
			CHECK(child->maps.v[i].start == parent->maps.v[i].start &&
			      child->maps.v[i].path != parent->maps.v[i].path &&
			      !strcmp(child->maps.v[i].path, parent->maps.v[i].path));
	}
	t = cp_procs_thread_find(ps, FAKE_PID + 2);
	CHECK(t && !strcmp(t->name, "worker"), "named after the thread that forked");

	/* exec: the child's map starts over; the parent's is untouched. */
	cp_procs_comm(ps, FAKE_PID + 2, FAKE_PID + 2, "other", true);
	CHECK(child && child->maps.n == 0 && parent->maps.n == 4);

	/* EXIT of the leader frees the unwinder; of another thread, nothing. */
	parent->uw = cp_unwind_new(getpid(), &parent->maps, false);
	CHECK(parent->uw != NULL);
	cp_procs_exit(ps, FAKE_PID, FAKE_PID + 1);
	CHECK(parent->uw != NULL);
	cp_procs_exit(ps, FAKE_PID, FAKE_PID);
	CHECK(parent->uw == NULL);
}

static void test_many(struct cp_procs *ps)
{
	struct cp_proc *first = cp_procs_get(ps, 7000000, false);
	bool ok = true;

	CHECK(cp_procs_get(ps, 0, false) == NULL && cp_procs_get(ps, -1, false) == NULL);
	CHECK(cp_procs_find(ps, 7000001) == NULL && cp_procs_thread_find(ps, 7000001) == NULL);
	/* Past several growths of both tables: every entry is found again, pointers stay. */
	for (int i = 1; i < 3000; i++) {
		struct cp_thread *t = cp_procs_thread_get(ps, 7000000 + i % 7, 7000000 + i);

		ok &= cp_procs_get(ps, 7000000 + i, false) != NULL;
		ok &= t && t->tid == 7000000 + i && !t->name[0];
		if (t)
			snprintf(t->name, sizeof(t->name), "t%d", i);
	}
	CHECK(ok);
	CHECK(cp_procs_find(ps, 7000000) == first);
	for (int i = 1; i < 3000 && ok; i++) {
		struct cp_proc *p = cp_procs_find(ps, 7000000 + i);
		struct cp_thread *t = cp_procs_thread_find(ps, 7000000 + i);
		char want[16];

		snprintf(want, sizeof(want), "t%d", i);
		ok = p && p->pid == 7000000 + i && t && t->pid == 7000000 + i % 7 &&
		     !strcmp(t->name, want);
		CHECK(ok, "entry %d", i);
	}
	CHECK(cp_procs_thread_get(ps, 1, 7000005) == cp_procs_thread_find(ps, 7000005),
	      "an existing thread is returned, not added");
}

/* Our own executable's mapping as an MMAP2 record: its other PT_LOAD segments are added. */
static void test_elf_segments(struct cp_procs *ps)
{
	struct cp_maps self;
	const struct cp_map *text = NULL, *in;
	struct cp_sampler_mmap m;
	struct cp_proc *p;
	size_t ro = 0;

	memset(&self, 0, sizeof(self));
	if (cp_maps_read(getpid(), &self) < 0) {
		FAIL("cannot read our own maps");
		return;
	}
	text = cp_maps_find(&self, (uint64_t)(uintptr_t)&test_elf_segments);
	CHECK(text && text->perms[2] == 'x' && cp_map_is_file(text));
	if (!text) {
		cp_maps_release(&self);
		return;
	}
	cp_procs_comm(ps, FAKE_PID + 3, FAKE_PID + 3, "self", true);
	mmap_rec(&m, FAKE_PID + 3, text->start, text->end - text->start, text->offset,
		 PROT_READ | PROT_EXEC, text->path);
	m.inode = text->inode;
	m.dev_major = text->dev_major;
	m.dev_minor = text->dev_minor;
	in = cp_procs_mmap(ps, &m, &p);
	CHECK(in && in->start == text->start && in->perms[2] == 'x');
	CHECK(p && p->maps.n > 1, "segments beside the text: %zu entries", p ? p->maps.n : 0);
	for (size_t i = 0; p && i < p->maps.n; i++) {
		const struct cp_map *a = &p->maps.v[i];

		if (a->perms[2] == 'x')
			continue;
		CHECK(!strcmp(a->path, text->path));
		/* Where the kernel put the same segment in our own process. */
		for (size_t j = 0; j < self.n; j++)
			if (self.v[j].start == a->start && self.v[j].offset == a->offset &&
			    !strcmp(self.v[j].path, text->path))
				ro++;
	}
	CHECK(ro > 0, "a segment placed as the kernel placed it");
	cp_maps_release(&self);
}

/* An address outside the known map re-reads /proc/PID/maps once. */
static void test_reread(struct cp_procs *ps)
{
	struct cp_proc *p = cp_procs_get(ps, getpid(), false);
	const struct cp_map *map;

	CHECK(p && p->maps.n == 0 && !p->reread);
	if (!p)
		return;
	map = cp_proc_find_map(p, (uint64_t)(uintptr_t)&test_reread);
	CHECK(map && map->perms[2] == 'x' && p->reread && p->maps_loaded);
	CHECK(cp_proc_find_map(p, 8) == NULL, "the null page is mapped nowhere");
}

int main(void)
{
	struct cp_procs ps;

	cp_procs_init(&ps);
	test_mmap_cuts_and_inserts(&ps);
	test_fork_comm_exit(&ps);
	test_many(&ps);
	test_elf_segments(&ps);
	test_reread(&ps);
	cp_procs_release(&ps);
	cp_procs_release(&ps);	/* idempotent on a released table */
	return check_done("proc_model");
}
