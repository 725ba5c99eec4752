/* The process/thread model fed by perf records (MMAP2, COMM, FORK, EXIT): see proc_model.h. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proc_model.h"
#include "sampler.h"
#include "unwind.h"

/* --- the tables --- */

/* A bijection of the id, so equal hashes mean equal ids; spreads consecutive ids. */
static uint32_t id_hash(int id)
{
	return (uint32_t)id * 2654435761u;
}

static bool proc_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_procs *ps = ctx;

	return ps->proc[idx]->pid == *(const int *)key;
}

static bool thread_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_procs *ps = ctx;

	return ps->thread[idx].tid == *(const int *)key;
}

void cp_procs_init(struct cp_procs *ps)
{
	memset(ps, 0, sizeof(*ps));
}

static void proc_free(struct cp_proc *p)
{
	cp_unwind_free(p->uw);
	cp_maps_release(&p->maps);
	free(p->map_ids);
	free(p);
}

void cp_procs_release(struct cp_procs *ps)
{
	for (size_t i = 0; i < ps->nprocs; i++)
		proc_free(ps->proc[i]);
	free(ps->proc);
	cp_htab_release(&ps->proc_index);
	free(ps->thread);
	cp_htab_release(&ps->thread_index);
	memset(ps, 0, sizeof(*ps));
}

struct cp_proc *cp_procs_find(const struct cp_procs *ps, int pid)
{
	int64_t i = cp_htab_find(&ps->proc_index, id_hash(pid), proc_eq, ps, &pid);

	return i < 0 ? NULL : ps->proc[i];
}

struct cp_proc *cp_procs_get(struct cp_procs *ps, int pid, bool load)
{
	struct cp_proc *p = cp_procs_find(ps, pid);

	if (p || pid <= 0 || ps->nprocs >= CP_PROCS_MAX)
		return p;
	if (cp_grow((void **)&ps->proc, &ps->procs_cap, ps->nprocs + 1, sizeof(*ps->proc)) < 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->maps.pid = pid;
	if (cp_htab_insert(&ps->proc_index, id_hash(pid), (uint32_t)ps->nprocs) < 0) {
		free(p);
		return NULL;
	}
	ps->proc[ps->nprocs++] = p;
	if (load)
		cp_proc_load_maps(p);
	return p;
}

struct cp_thread *cp_procs_thread_find(const struct cp_procs *ps, int tid)
{
	int64_t i = cp_htab_find(&ps->thread_index, id_hash(tid), thread_eq, ps, &tid);

	return i < 0 ? NULL : &ps->thread[i];
}

struct cp_thread *cp_procs_thread_get(struct cp_procs *ps, int pid, int tid)
{
	struct cp_thread *t = cp_procs_thread_find(ps, tid);

	if (t || ps->nthreads >= CP_MAX_THREADS)
		return t;
	if (cp_grow((void **)&ps->thread, &ps->threads_cap, ps->nthreads + 1,
		    sizeof(*ps->thread)) < 0)
		return NULL;
	if (cp_htab_insert(&ps->thread_index, id_hash(tid), (uint32_t)ps->nthreads) < 0)
		return NULL;
	t = &ps->thread[ps->nthreads++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->pid = pid;
	return t;
}

void cp_thread_read_name(struct cp_thread *t)
{
	char path[64];
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", t->pid, t->tid);
	if (cp_read_file(path, t->name, sizeof(t->name), &len) == 0) {
		while (len > 0 && t->name[len - 1] == '\n')
			t->name[--len] = '\0';
	}
	if (!t->name[0])
		snprintf(t->name, sizeof(t->name), "%d", t->tid);
}

/* --- a process's map --- */

/* Whether the process's own files are still reachable through its /proc directory. */
static bool proc_alive(int pid)
{
	char path[64], buf[8];

	if (cp_proc_dir(pid, path, sizeof(path) - 5) < 0)
		return false;
	strcat(path, "/root");
	return readlink(path, buf, sizeof(buf)) > 0;
}

int cp_proc_file_pid(struct cp_proc *p)
{
	if (!p->gone && !proc_alive(p->pid))
		p->gone = true;
	return p->gone ? (int)getpid() : p->pid;
}

/* The unwinder follows the map. */
static void proc_maps_changed(struct cp_proc *p)
{
	if (p->uw)
		cp_unwind_set_maps(p->uw, &p->maps);
}

static int proc_set_maps(struct cp_proc *p, struct cp_maps *maps)
{
	uint64_t *ids = calloc(maps->n ? maps->n : 1, sizeof(*ids));

	if (!ids) {
		cp_maps_release(maps);
		return -ENOMEM;
	}
	cp_maps_release(&p->maps);
	free(p->map_ids);
	p->maps = *maps;
	p->maps.pid = p->pid;
	p->map_ids = ids;
	proc_maps_changed(p);
	return 0;
}

int cp_proc_load_maps(struct cp_proc *p)
{
	struct cp_maps maps;
	int err;

	memset(&maps, 0, sizeof(maps));
	err = cp_maps_read(p->pid, &maps);
	if (err < 0)
		return err;
	p->maps_loaded = true;
	return proc_set_maps(p, &maps);
}

static int proc_copy_maps(struct cp_proc *dst, const struct cp_proc *src)
{
	struct cp_maps maps;

	memset(&maps, 0, sizeof(maps));
	maps.v = calloc(src->maps.n ? src->maps.n : 1, sizeof(*maps.v));
	if (!maps.v)
		return -ENOMEM;
	for (size_t i = 0; i < src->maps.n; i++) {
		maps.v[i] = src->maps.v[i];
		maps.v[i].path = strdup(src->maps.v[i].path ? src->maps.v[i].path : "");
		if (!maps.v[i].path) {
			maps.n = i;
			cp_maps_release(&maps);
			return -ENOMEM;
		}
	}
	maps.n = src->maps.n;
	dst->maps_loaded = true;
	return proc_set_maps(dst, &maps);
}

/* Append to v[*n] the part [start, end) of src, at file offset offset, with a copy of its path. */
static int push_copy(struct cp_map *v, size_t *n, const struct cp_map *src, uint64_t start,
		     uint64_t end, uint64_t offset)
{
	v[*n] = *src;
	v[*n].start = start;
	v[*n].end = end;
	v[*n].offset = offset;
	v[*n].path = strdup(src->path);
	if (!v[*n].path)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/*
 * Apply an mmap to the map: entries it overlaps are cut (or removed), and it is inserted in
 * address order, as the kernel itself replaces the covered part of older mappings.
 */
static int proc_apply_mmap(struct cp_proc *p, const struct cp_map *m)
{
	size_t cap = p->maps.n + 3;
	struct cp_map *v = calloc(cap, sizeof(*v));
	uint64_t *ids = calloc(cap, sizeof(*ids));
	size_t n = 0;
	bool inserted = false;

	if (!v || !ids)
		goto nomem;
	for (size_t i = 0; i < p->maps.n; i++) {
		struct cp_map *o = &p->maps.v[i];

		if (!inserted && o->start >= m->start) {
			if (push_copy(v, &n, m, m->start, m->end, m->offset) < 0)
				goto nomem;
			inserted = true;
		}
		if (o->end <= m->start || o->start >= m->end) {
			v[n] = *o;
			ids[n++] = p->map_ids[i];
			o->path = NULL;
			continue;
		}
		/* Overlap: keep the parts outside [m->start, m->end). */
		if (o->start < m->start) {
			if (push_copy(v, &n, o, o->start, m->start, o->offset) < 0)
				goto nomem;
			if (!inserted) {
				if (push_copy(v, &n, m, m->start, m->end, m->offset) < 0)
					goto nomem;
				inserted = true;
			}
		}
		if (o->end > m->end &&
		    push_copy(v, &n, o, m->end, o->end, o->offset + (m->end - o->start)) < 0)
			goto nomem;
	}
	if (!inserted && push_copy(v, &n, m, m->start, m->end, m->offset) < 0)
		goto nomem;
	/* Entries moved into v had their paths handed over (set to NULL above). */
	cp_maps_release(&p->maps);
	free(p->map_ids);
	p->maps.v = v;
	p->maps.n = n;
	p->map_ids = ids;
	proc_maps_changed(p);
	return 0;
nomem:
	/* Give back the moved paths so that neither array leaks nor double-frees. */
	for (size_t i = 0, j = 0; i < p->maps.n && v; i++) {
		if (p->maps.v[i].path)
			continue;
		while (j < n && !(v[j].start == p->maps.v[i].start && v[j].end == p->maps.v[i].end))
			j++;
		if (j < n) {
			p->maps.v[i].path = v[j].path;
			v[j].path = NULL;
		}
	}
	for (size_t i = 0; v && i < n; i++)
		free(v[i].path);
	free(v);
	free(ids);
	return -ENOMEM;
}

/* Whether [start, end) overlaps any known mapping of p. */
static bool maps_overlap(const struct cp_proc *p, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < p->maps.n; i++)
		if (p->maps.v[i].start < end && start < p->maps.v[i].end)
			return true;
	return false;
}

/*
 * MMAP2 records come only for executable mappings (mmap_data=0), but unwinding also reads
 * the file's read-only segment (.eh_frame_hdr, .eh_frame) and .data. Add the other PT_LOAD
 * segments of the file where they must be, from its program headers and the executable
 * mapping's place, unless something is already known there. Works after the process exits.
 */
static void add_elf_segments(struct cp_proc *p, const struct cp_map *exec_map)
{
	char path[4096];
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	const Elf64_Phdr *text = NULL;
	uint64_t bias;
	size_t nph;
	int fd;

	if (cp_map_open_path(cp_proc_file_pid(p), exec_map, path, sizeof(path)) < 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > CP_ARRAY_SIZE(ph)) {
		close(fd);
		return;
	}
	nph = eh.e_phnum;
	if (pread(fd, ph, nph * sizeof(ph[0]), (off_t)eh.e_phoff) !=
	    (ssize_t)(nph * sizeof(ph[0]))) {
		close(fd);
		return;
	}
	close(fd);
	for (size_t i = 0; i < nph && !text; i++)
		if (ph[i].p_type == PT_LOAD && (ph[i].p_offset & ~4095ull) == exec_map->offset)
			text = &ph[i];
	if (!text)
		return;
	bias = exec_map->start - exec_map->offset - (text->p_vaddr - text->p_offset);
	for (size_t i = 0; i < nph; i++) {
		struct cp_map m;
		uint64_t start, end;

		if (ph[i].p_type != PT_LOAD || &ph[i] == text || !ph[i].p_filesz)
			continue;
		start = (ph[i].p_vaddr + bias) & ~4095ull;
		end = (ph[i].p_vaddr + bias + ph[i].p_filesz + 4095) & ~4095ull;
		if (end <= start || maps_overlap(p, start, end))
			continue;
		m = *exec_map;
		m.start = start;
		m.end = end;
		m.offset = ph[i].p_offset & ~4095ull;
		m.perms[0] = ph[i].p_flags & PF_R ? 'r' : '-';
		m.perms[1] = ph[i].p_flags & PF_W ? 'w' : '-';
		m.perms[2] = ph[i].p_flags & PF_X ? 'x' : '-';
		m.perms[3] = 'p';
		if (proc_apply_mmap(p, &m) < 0)
			return;
	}
}


const struct cp_map *cp_proc_find_map(struct cp_proc *p, uint64_t addr)
{
	const struct cp_map *map = cp_maps_find(&p->maps, addr);

	if (!map && !p->reread && !p->gone) {
		p->reread = true;
		if (cp_proc_load_maps(p) == 0)
			map = cp_maps_find(&p->maps, addr);
	}
	return map;
}

/* --- the records --- */

const struct cp_map *cp_procs_mmap(struct cp_procs *ps, const struct cp_sampler_mmap *m,
				   struct cp_proc **pp)
{
	struct cp_proc *p = cp_procs_get(ps, m->pid, false);
	struct cp_map map;
	char path[4096];
	size_t len;

	*pp = p;
	if (!p)
		return NULL;
	if (!p->maps_loaded && !p->gone)
		cp_proc_load_maps(p);	/* the rest of the map, then this mapping on top */
	memset(&map, 0, sizeof(map));
	map.start = m->start;
	map.end = m->start + m->len;
	map.offset = m->pgoff;
	map.inode = m->inode;
	map.dev_major = m->dev_major;
	map.dev_minor = m->dev_minor;
	map.perms[0] = m->prot & PROT_READ ? 'r' : '-';
	map.perms[1] = m->prot & PROT_WRITE ? 'w' : '-';
	map.perms[2] = m->prot & PROT_EXEC ? 'x' : '-';
	map.perms[3] = m->flags & MAP_SHARED ? 's' : 'p';
	snprintf(path, sizeof(path), "%s", m->path);
	len = strlen(path);
	if (len > 10 && !strcmp(path + len - 10, " (deleted)")) {
		path[len - 10] = '\0';
		map.deleted = true;
	}
	/* perf names anonymous executable memory (JIT code) "//anon"; /proc/PID/maps "". */
	if (!strcmp(path, "//anon") || !strcmp(path, "//anon (deleted)"))
		path[0] = '\0';
	map.path = path;
	if (map.end <= map.start || proc_apply_mmap(p, &map) < 0)
		return NULL;
	if ((m->prot & PROT_EXEC) && cp_map_is_file(&map))
		add_elf_segments(p, &map);
	return cp_maps_find(&p->maps, map.start);
}

void cp_procs_comm(struct cp_procs *ps, int pid, int tid, const char *name, bool exec)
{
	struct cp_thread *t = cp_procs_thread_get(ps, pid, tid);

	if (t) {
		t->pid = pid;
		snprintf(t->name, sizeof(t->name), "%s", name);
	}
	if (exec) {
		struct cp_proc *p = cp_procs_get(ps, pid, false);
		struct cp_maps empty;

		/* A new program: the old address space is gone, MMAP2 records rebuild it. */
		memset(&empty, 0, sizeof(empty));
		if (p) {
			proc_set_maps(p, &empty);
			p->maps_loaded = true;
			p->reread = false;
		}
	}
}

void cp_procs_fork(struct cp_procs *ps, int pid, int tid, int ppid, int ptid)
{
	struct cp_thread *t, *parent;

	if (pid != ppid && pid == tid) {
		/* A new process: a copy of its parent's address space until it execs. */
		struct cp_proc *pp = cp_procs_find(ps, ppid);
		struct cp_proc *p = cp_procs_get(ps, pid, false);

		if (p && pp && pp->maps_loaded && !p->maps_loaded)
			proc_copy_maps(p, pp);
	}
	t = cp_procs_thread_get(ps, pid, tid);
	if (t) {
		/* Looked up after the insertion, which may move the threads. */
		parent = cp_procs_thread_find(ps, ptid);
		t->pid = pid;
		/* The kernel copies the creator's name; a later COMM record renames it. */
		if (parent && parent != t && parent->name[0] && !t->name[0])
			snprintf(t->name, sizeof(t->name), "%s", parent->name);
	}
}

void cp_procs_exit(struct cp_procs *ps, int pid, int tid)
{
	struct cp_proc *p;

	if (pid != tid)
		return;
	/*
	 * The process (its leader) exited: drop its unwinder's module cache, the big part of
	 * its state, so that a long record of many short processes stays bounded. The map stays
	 * for samples still in the rings; an unwinder is made again if one needs it.
	 */
	p = cp_procs_find(ps, pid);
	if (p && p->uw) {
		cp_unwind_free(p->uw);
		p->uw = NULL;
	}
}
