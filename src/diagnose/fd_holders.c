/*
 * Who holds a pipe's other end: every process's fd links, read from /proc (bounded), or an
 * index of them kept for a few seconds across the threads of one dump.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd_internal.h"
#include "util.h"

/* Caps of the walk over every process's fds. */
#define PIPE_SCAN_MAX_PROCS 32768
#define PIPE_SCAN_MAX_FDS 400000

/*
 * Visit the fds in the fd directory dfd (closed here): read with getdents64 straight into a
 * buffer, each link read relative to it. procfs fills the buffer as far as the directory
 * goes, so a short read is the end. *seen counts the fds found; false when a bound was reached.
 */
static bool scan_fd_dir(int dfd, int pid, char *buf, size_t size, size_t *fds, size_t *seen,
			void (*visit)(void *ctx, int pid, int fd, const char *link), void *ctx)
{
	bool more = true;

	while (more) {
		ssize_t n = getdents64(dfd, buf, size);

		if (n <= 0)
			break;
		more = (size_t)n > size / 2;
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *de = (const struct dirent64 *)(buf + off);
			char l[LINK_MAX];
			ssize_t len;

			off += de->d_reclen;
			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			(*seen)++;
			if (++*fds > PIPE_SCAN_MAX_FDS) {
				close(dfd);
				return false;
			}
			len = readlinkat(dfd, de->d_name, l, sizeof(l) - 1);
			if (len < 0 && (errno == EACCES || errno == EPERM)) {
				/* One fd refused is all of them refused (ptrace access). */
				more = false;
				break;
			}
			if (len < 0)
				continue;
			l[len] = '\0';
			visit(ctx, pid, atoi(de->d_name), l);
		}
	}
	close(dfd);
	return true;
}

/*
 * Visit the fds of one process: a process without fds (every kernel thread) costs an open,
 * one getdents64 and a close. A leader that has exited took /proc/PID/fd with it: then the
 * fds are those of a live thread's directory. false when a bound was reached.
 */
static bool scan_fds_of(int procfd, int pid, char *buf, size_t size, size_t *fds,
			void (*visit)(void *ctx, int pid, int fd, const char *link), void *ctx)
{
	char path[96];
	size_t seen = 0;
	int dfd;

	snprintf(path, sizeof(path), "%d/fd", pid);
	dfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0 && !scan_fd_dir(dfd, pid, buf, size, fds, &seen, visit, ctx))
		return false;
	if (seen || fd_proc_path(pid, "fd", -1, path, sizeof(path)) < 0 || !strstr(path, "/task/"))
		return true;
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dfd < 0 || scan_fd_dir(dfd, pid, buf, size, fds, &seen, visit, ctx);
}

/*
 * Call visit for every fd of every process but cprof, with its link. Bounded by
 * PIPE_SCAN_MAX_*; returns true when a bound (or an unreadable /proc) cut the walk short.
 */
static bool scan_all_fds(void (*visit)(void *ctx, int pid, int fd, const char *link),
			 void *ctx)
{
	const size_t size = 32768;
	char *buf = malloc(size);
	DIR *proc = opendir("/proc");
	struct dirent *pe;
	size_t procs = 0, fds = 0;
	bool cut = !proc || !buf;
	int me = getpid();

	while (!cut && (pe = readdir(proc))) {
		int pid;

		if (!isdigit((unsigned char)pe->d_name[0]))
			continue;
		pid = atoi(pe->d_name);
		if (pid <= 0 || pid == me)
			continue;
		if (++procs > PIPE_SCAN_MAX_PROCS)
			cut = true;
		else if (!scan_fds_of(dirfd(proc), pid, buf, size, &fds, visit, ctx))
			cut = true;	/* N/fd is opened relative to the listing's own fd */
	}
	if (proc)
		closedir(proc);
	free(buf);
	return cut;
}

/* Whether pid's fd is still link and open for the end we look for. */
static bool holds_end(int pid, int fd, const char *link, bool want_write)
{
	char lp[96], l[LINK_MAX], *fdinfo = NULL;
	long flags, acc;

	if (fd_proc_path(pid, "fd", fd, lp, sizeof(lp)) < 0 || fd_read_link(lp, l, sizeof(l)) < 0 ||
	    strcmp(l, link))
		return false;
	if (fd_read_info(pid, fd, &fdinfo) < 0)
		return false;
	flags = fd_info_flags(fdinfo);
	free(fdinfo);
	if (flags < 0)
		return false;
	acc = flags & O_ACCMODE;
	return acc == O_RDWR || (acc == O_WRONLY) == want_write;
}

struct holder_search {
	const char *link;
	bool want_write;
	int self_fd, target;
	struct pipe_holder *out;
	size_t max, n, total;
};

static void add_holder(struct holder_search *hs, int pid, int fd)
{
	if (pid == hs->target && fd == hs->self_fd)
		return;
	if (!holds_end(pid, fd, hs->link, hs->want_write))
		return;
	if (hs->n < hs->max) {
		hs->out[hs->n].pid = pid;
		hs->out[hs->n].fd = fd;
		hs->n++;
	}
	hs->total++;
}

static void visit_match(void *ctx, int pid, int fd, const char *link)
{
	struct holder_search *hs = ctx;

	if (!strcmp(link, hs->link))
		add_holder(hs, pid, fd);
}

/*
 * One walk of /proc serves every question asked within PIPE_INDEX_TTL_NS. Matches are
 * re-checked against /proc when used, so a stale entry costs nothing but a readlink; only a
 * holder that appeared since the walk can be missed.
 */
#define PIPE_INDEX_TTL_NS (3ull * 1000000000)

struct pipe_ent {
	uint64_t ino;
	int pid;
	int fd;
};

struct cp_pipe_index {
	uint64_t built_ns;	/* 0: not built */
	struct pipe_ent *v;
	size_t n, alloc;
	bool cut, oom;
};

struct cp_pipe_index *cp_pipe_index_new(void)
{
	return calloc(1, sizeof(struct cp_pipe_index));
}

void cp_pipe_index_free(struct cp_pipe_index *ix)
{
	if (!ix)
		return;
	free(ix->v);
	free(ix);
}

static void visit_index(void *ctx, int pid, int fd, const char *link)
{
	struct cp_pipe_index *pipe_index = ctx;
	uint64_t ino;

	if (!fd_link_inode(link, "pipe:", &ino))
		return;
	if (pipe_index->n == pipe_index->alloc) {
		size_t na = pipe_index->alloc ? pipe_index->alloc * 2 : 256;
		struct pipe_ent *nv = realloc(pipe_index->v, na * sizeof(*nv));

		if (!nv) {
			pipe_index->oom = true;
			return;
		}
		pipe_index->v = nv;
		pipe_index->alloc = na;
	}
	pipe_index->v[pipe_index->n++] = (struct pipe_ent){ .ino = ino, .pid = pid, .fd = fd };
}

static int cmp_pipe_ent(const void *a, const void *b)
{
	const struct pipe_ent *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->pid != y->pid)
		return (x->pid > y->pid) - (x->pid < y->pid);
	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* Rebuild the index when it is old. false when it could not be built. */
static bool index_refresh(struct cp_pipe_index *pipe_index)
{
	uint64_t now = cp_now_ns();

	if (pipe_index->built_ns && now - pipe_index->built_ns <= PIPE_INDEX_TTL_NS)
		return true;
	pipe_index->n = 0;
	pipe_index->oom = false;
	pipe_index->cut = scan_all_fds(visit_index, pipe_index);
	if (pipe_index->oom) {
		pipe_index->built_ns = 0;
		return false;
	}
	qsort(pipe_index->v, pipe_index->n, sizeof(*pipe_index->v), cmp_pipe_ent);
	pipe_index->built_ns = cp_now_ns();
	return true;
}

/* Look ino up in the index (rebuilt when old). false when the index could not be built. */
static bool index_lookup(struct cp_pipe_index *pipe_index, uint64_t ino,
			 struct holder_search *hs, bool *cut)
{
	size_t lo, hi;

	if (!index_refresh(pipe_index))
		return false;
	/* First entry with this inode. */
	lo = 0;
	hi = pipe_index->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pipe_index->v[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < pipe_index->n && pipe_index->v[lo].ino == ino; lo++)
		add_holder(hs, pipe_index->v[lo].pid, pipe_index->v[lo].fd);
	*cut = pipe_index->cut;
	return true;
}

size_t fd_find_pipe_holders(struct cp_pipe_index *pipes, const char *link, bool want_write,
			    int self_fd, int target, struct pipe_holder *out, size_t max,
			    size_t *total, bool *incomplete)
{
	struct holder_search hs = { .link = link, .want_write = want_write, .self_fd = self_fd,
				    .target = target, .out = out, .max = max };
	uint64_t ino;

	/* Named pipes (FIFOs) are rare: look for their path directly. */
	if (!pipes || !fd_link_inode(link, "pipe:", &ino) ||
	    !index_lookup(pipes, ino, &hs, incomplete))
		*incomplete = scan_all_fds(visit_match, &hs);
	*total = hs.total;
	return hs.n;
}

