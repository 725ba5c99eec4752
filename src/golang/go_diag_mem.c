/* Go diagnosis from the target's memory: channels' element types, netpoll waits, timers. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdinfo.h"
#include "go_diag.h"
#include "util.h"

/* tflagExtraStar: the name is stored with a '*' in front (type.go). */
#define TFLAG_EXTRA_STAR 0x2
#define TYPE_NAME_MAX 256
#define ALLP_MAX 4096
#define EPOLL_FDS_MAX 16

static int read_exact(const struct cp_mem *mem, uint64_t addr, void *buf, size_t len)
{
	long got = cp_mem_read(mem, addr, buf, len);

	if (got < 0)
		return (int)got;
	return (size_t)got == len ? 0 : -EFAULT;
}

static int read_u64(const struct cp_mem *mem, uint64_t addr, uint64_t *v)
{
	return read_exact(mem, addr, v, sizeof(*v));
}

/* The name of the runtime type at typ ("int", "main.job"): malloc'ed, or NULL. */
static char *type_name(const struct cp_go_diag_layout *lo, const struct cp_mem *mem, uint64_t types,
		       uint64_t typ)
{
	uint8_t tflag, buf[TYPE_NAME_MAX + 12];
	int32_t off;
	uint64_t len = 0;
	size_t i = 1;
	long got;
	char *s;

	if (!types || !typ || read_exact(mem, typ + lo->type_tflag, &tflag, 1) < 0 ||
	    read_exact(mem, typ + lo->type_str, &off, sizeof(off)) < 0 || off < 0)
		return NULL;
	got = cp_mem_read(mem, types + (uint64_t)off, buf, sizeof(buf));
	if (got < 2)
		return NULL;
	/* A name: one byte of flags, the length as a uvarint, the bytes. */
	for (unsigned int shift = 0; i < (size_t)got && shift < 28; i++, shift += 7) {
		len |= (uint64_t)(buf[i] & 0x7f) << shift;
		if (!(buf[i] & 0x80))
			break;
	}
	i++;
	if (len == 0 || len > TYPE_NAME_MAX || i + len > (size_t)got)
		return NULL;
	if ((tflag & TFLAG_EXTRA_STAR) && buf[i] == '*')
		i++, len--;
	s = malloc(len + 1);
	if (!s)
		return NULL;
	memcpy(s, buf + i, len);
	s[len] = '\0';
	/* The target's bytes: no control characters reach a terminal. */
	for (char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return s;
}

/* The element type names met so far, by type address: most channels share a few types. */
struct type_memo {
	uint64_t typ[16];
	char *name[16];
	size_t n, next;
};

static const char *memo_name(struct type_memo *m, const struct cp_go_diag_layout *lo,
			     const struct cp_mem *mem, uint64_t types, uint64_t typ)
{
	size_t slot;

	for (size_t i = 0; i < m->n; i++)
		if (m->typ[i] == typ)
			return m->name[i];
	slot = m->n < CP_ARRAY_SIZE(m->typ) ? m->n++ : m->next++ % CP_ARRAY_SIZE(m->typ);
	free(m->name[slot]);
	m->typ[slot] = typ;
	m->name[slot] = type_name(lo, mem, types, typ);
	return m->name[slot];
}

int cp_go_read_chans(struct cp_go_runtime *rt, const struct cp_go_diag_layout *lo,
		     const struct cp_mem *mem, struct cp_go_chan *c, size_t n)
{
	struct type_memo memo = { .n = 0 };
	uint64_t module = 0, types = 0;
	uint8_t buf[128];
	size_t len;
	int err = 0;

	if (!lo->have_chan)
		return -ENOTSUP;
	len = lo->chan_elemtype + 8;
	if (lo->chan_qcount + 8 > len || lo->chan_dataqsiz + 8 > len || lo->chan_closed + 4 > len ||
	    len > sizeof(buf))
		return -ENOTSUP;
	if (!lo->have_type || cp_go_global(rt, "runtime.firstmoduledata", &module) < 0 ||
	    read_u64(mem, module + lo->module_types, &types) < 0)
		types = 0;
	for (size_t i = 0; i < n && !err; i++) {
		uint64_t elemtype;
		uint32_t closed;
		const char *name;

		/* One read for the fields, which all lie before elemtype's end. */
		if (read_exact(mem, c[i].addr, buf, len) < 0)
			continue;
		memcpy(&c[i].queued, buf + lo->chan_qcount, 8);
		memcpy(&c[i].capacity, buf + lo->chan_dataqsiz, 8);
		memcpy(&closed, buf + lo->chan_closed, 4);
		memcpy(&elemtype, buf + lo->chan_elemtype, 8);
		c[i].have_state = true;
		c[i].closed = closed != 0;
		name = memo_name(&memo, lo, mem, types, elemtype);
		free(c[i].elem_type);
		c[i].elem_type = name ? strdup(name) : NULL;
		if (name && !c[i].elem_type)
			err = -ENOMEM;
	}
	for (size_t i = 0; i < memo.n; i++)
		free(memo.name[i]);
	return err;
}

long cp_go_count_timers(struct cp_go_runtime *rt, const struct cp_go_diag_layout *lo,
			const struct cp_mem *mem)
{
	uint64_t allp, slice[2], *ps;
	long total = 0;
	int err;

	if (!lo->have_timers)
		return -ENOTSUP;
	err = cp_go_global(rt, "runtime.allp", &allp);
	if (err < 0)
		return err;
	err = read_exact(mem, allp, slice, sizeof(slice));
	if (err < 0)
		return err;
	if (slice[1] == 0 || slice[1] > ALLP_MAX)
		return -EINVAL;
	ps = malloc(slice[1] * sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	err = read_exact(mem, slice[0], ps, slice[1] * sizeof(*ps));
	for (size_t i = 0; i < slice[1] && err >= 0; i++) {
		uint64_t len;

		if (!ps[i])
			continue;
		err = read_u64(mem, ps[i] + lo->p_timers_len, &len);
		if (err >= 0 && len > (uint64_t)(LONG_MAX - total))
			err = -EINVAL;
		if (err >= 0)
			total += (long)len;
	}
	free(ps);
	return err < 0 ? err : total;
}

/* One registration of an epoll instance: the fd watched and its data word. */
struct epoll_entry {
	int fd;
	uint64_t data;
};

/* The registrations of pid's epoll fd epfd, appended to (*v, *n, *alloc). 0 or -errno. */
static int read_epoll(int pid, int epfd, struct epoll_entry **v, size_t *n, size_t *alloc)
{
	char path[64], *text, *line, *save = NULL;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, epfd);
	err = cp_read_file_alloc(path, 16 << 20, &text, &len);
	if (err < 0)
		return err;
	for (line = strtok_r(text, "\n", &save); line && !err; line = strtok_r(NULL, "\n", &save)) {
		int fd;
		unsigned int events;
		uint64_t data;

		if (sscanf(line, "tfd: %d events: %x data: %" SCNx64, &fd, &events, &data) != 3)
			continue;
		err = cp_grow((void **)v, alloc, *n + 1, sizeof(**v));
		if (!err)
			(*v)[(*n)++] = (struct epoll_entry){ .fd = fd, .data = data };
	}
	free(text);
	return err;
}

/* Every registration of every epoll fd of pid (the runtime has one). 0, -ENOENT or -errno. */
static int epoll_entries(int pid, struct epoll_entry **v, size_t *n)
{
	char path[64], link[64];
	struct dirent *de;
	size_t alloc = 0, nep = 0;
	int err = 0;
	DIR *d;

	*v = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && !err && nep < EPOLL_FDS_MAX) {
		char fdpath[96];
		ssize_t l;
		long fd;

		if (cp_parse_long(de->d_name, 0, INT32_MAX, &fd) < 0)
			continue;
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%ld", pid, fd);
		l = readlink(fdpath, link, sizeof(link) - 1);
		if (l < 0)
			continue;
		link[l] = '\0';
		if (strcmp(link, "anon_inode:[eventpoll]"))
			continue;
		nep++;
		err = read_epoll(pid, (int)fd, v, n, &alloc);
		if (err == -ENOENT)
			err = 0;	/* closed meanwhile */
	}
	closedir(d);
	if (err < 0) {
		free(*v);
		*v = NULL;
		*n = 0;
		return err;
	}
	return nep ? 0 : -ENOENT;
}

static int cmp_addr(const void *a, const void *b)
{
	uint64_t x = (*(const struct cp_goroutine *const *)a)->addr;
	uint64_t y = (*(const struct cp_goroutine *const *)b)->addr;

	return (x > y) - (x < y);
}

/* The goroutine whose g is at addr, among by_addr (sorted by addr); NULL when none. */
static const struct cp_goroutine *g_at(const struct cp_goroutine *const *by_addr, size_t n,
				       uint64_t addr)
{
	struct cp_goroutine key = { .addr = addr };
	const struct cp_goroutine *k = &key, *const *hit;

	hit = bsearch(&k, by_addr, n, sizeof(*by_addr), cmp_addr);
	return hit ? *hit : NULL;
}

/* The waits of one pollDesc at pd (registered for fd) appended to (*w, *n, *alloc). */
static int pd_waits(const struct cp_go_diag_layout *lo, const struct cp_mem *mem, int pid, int fd,
		    uint64_t pd, const struct cp_goroutine *const *by_addr, size_t ng,
		    struct cp_net_index *net, struct cp_go_netwait **w, size_t *n, size_t *alloc)
{
	int64_t now = cp_go_nanotime();
	uint8_t buf[512];
	uint64_t pdfd;
	int err = 0;

	if (lo->pd_size > sizeof(buf) || read_exact(mem, pd, buf, lo->pd_size) < 0)
		return 0;
	memcpy(&pdfd, buf + lo->pd_fd, sizeof(pdfd));
	if (pdfd != (uint64_t)fd)
		return 0;	/* not a pollDesc (the poller's own wake-up pipe) */
	for (int write = 0; write < 2 && !err; write++) {
		uint64_t gaddr;
		int64_t deadline;
		const struct cp_goroutine *g;
		struct cp_fd_desc desc;

		memcpy(&gaddr, buf + (write ? lo->pd_wg : lo->pd_rg), sizeof(gaddr));
		memcpy(&deadline, buf + (write ? lo->pd_wd : lo->pd_rd), sizeof(deadline));
		/* rg/wg: 0, pdReady (1), pdWait (2), or the parked goroutine's g. */
		g = gaddr > 2 ? g_at(by_addr, ng, gaddr) : NULL;
		if (!g)
			continue;
		err = cp_grow((void **)w, alloc, *n + 1, sizeof(**w));
		if (err)
			break;
		cp_fd_desc_init(&desc);
		cp_fd_describe(pid, fd, write, NULL, net, &desc);
		(*w)[*n] = (struct cp_go_netwait){ .goid = g->id, .fd = fd, .write = write,
						   .deadline_ns = deadline,
						   .object = desc.object, .detail = desc.detail };
		(*w)[*n].remaining_ns = deadline > now ? deadline - now : 0;
		(*w)[(*n)++].accept = !write && desc.detail &&
				      strstr(desc.detail, " listening on ") != NULL;
		desc.object = desc.detail = NULL;
		cp_fd_desc_release(&desc);
	}
	return err;
}

static int cmp_netwait(const void *a, const void *b)
{
	const struct cp_go_netwait *x = a, *y = b;

	if (x->goid != y->goid)
		return x->goid < y->goid ? -1 : 1;
	return x->write - y->write;
}

int cp_go_find_netwaits(const struct cp_go_diag_layout *lo, const struct cp_mem *mem, int pid,
			const struct cp_goroutine *g, size_t n, struct cp_go_netwait **out,
			size_t *nout)
{
	const struct cp_goroutine **by_addr = NULL;
	struct cp_go_netwait *w = NULL;
	struct cp_net_index *net = NULL;
	struct epoll_entry *e = NULL;
	size_t ne = 0, nw = 0, alloc = 0;
	int err;

	if (!lo->have_pd)
		return -ENOTSUP;
	err = epoll_entries(pid, &e, &ne);
	if (err < 0)
		return err;
	by_addr = malloc((n ? n : 1) * sizeof(*by_addr));
	net = cp_net_index_new();
	if (!by_addr || !net) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		by_addr[i] = &g[i];
	qsort(by_addr, n, sizeof(*by_addr), cmp_addr);
	for (size_t i = 0; i < ne && !err; i++)
		err = pd_waits(lo, mem, pid, e[i].fd, e[i].data, by_addr, n, net, &w, &nw, &alloc);
	if (err) {
		cp_go_netwaits_free(w, nw);
		goto out;
	}
	if (nw)
		qsort(w, nw, sizeof(*w), cmp_netwait);
	*out = w;
	*nout = nw;
out:
	cp_net_index_free(net);
	free(by_addr);
	free(e);
	return err;
}

void cp_go_netwaits_free(struct cp_go_netwait *w, size_t n)
{
	for (size_t i = 0; w && i < n; i++) {
		free(w[i].object);
		free(w[i].detail);
	}
	free(w);
}
