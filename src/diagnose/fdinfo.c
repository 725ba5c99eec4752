/* What a file descriptor of another process is, from /proc/PID/fd, fdinfo and a dup of it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "fd_internal.h"
#include "fdinfo.h"
#include "proc.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* Caps: fdinfo of an epoll fd lists every watched fd; a process may have many fds. */
#define FDINFO_MAX_BYTES (1u << 20)
#define FD_SCAN_MAX_FDS 1000000
/* The search for a pipe's other end walks every process: bound it. */
#define PIPE_HOLDERS_SHOWN 4
#define EPOLL_FDS_SHOWN 8

void cp_fd_desc_init(struct cp_fd_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->timeout_ns = -1;
}

void cp_fd_desc_release(struct cp_fd_desc *d)
{
	if (!d)
		return;
	free(d->object);
	free(d->detail);
	cp_fd_desc_init(d);
}

int fd_read_link(const char *path, char *buf, size_t size)
{
	ssize_t n = readlink(path, buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* The value after "key:" in fdinfo text, or NULL. */
const char *fd_info_field(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ':') {
			p += klen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* DIR/fd/FD or DIR/fdinfo/FD (fd < 0: DIR/fd) of pid's /proc directory (cp_proc_dir). */
int fd_proc_path(int pid, const char *kind, long fd, char *buf, size_t size)
{
	size_t len;
	int n, err = cp_proc_dir(pid, buf, size);

	if (err < 0)
		return err;
	len = strlen(buf);
	if (fd < 0)
		n = snprintf(buf + len, size - len, "/%s", kind);
	else
		n = snprintf(buf + len, size - len, "/%s/%ld", kind, fd);
	return n < 0 || (size_t)n >= size - len ? -ENAMETOOLONG : 0;
}

int fd_read_info(int pid, int fd, char **text)
{
	char path[96];
	size_t len;
	int err = fd_proc_path(pid, "fdinfo", fd, path, sizeof(path));

	if (err < 0)
		return err;
	return cp_read_file_alloc(path, FDINFO_MAX_BYTES, text, &len);
}

/* fdinfo "flags:" is octal open flags. -1 when unreadable. */
long fd_info_flags(const char *text)
{
	const char *v = text ? fd_info_field(text, "flags") : NULL;
	char *end;
	long f;

	if (!v)
		return -1;
	errno = 0;
	f = strtol(v, &end, 8);
	if (errno || end == v)
		return -1;
	return f;
}

bool fd_link_inode(const char *link, const char *prefix, uint64_t *ino)
{
	size_t plen = strlen(prefix);
	char *end;

	if (strncmp(link, prefix, plen) || link[plen] != '[')
		return false;
	errno = 0;
	*ino = strtoull(link + plen + 1, &end, 10);
	return !errno && *end == ']' && end[1] == '\0';
}

static void comm_of(int pid, char *buf, size_t size)
{
	char path[64];
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (cp_read_file(path, buf, size, &len) < 0) {
		snprintf(buf, size, "?");
		return;
	}
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
}

/*
 * Duplicate the target's fd into cprof (pidfd_getfd needs PTRACE_MODE_ATTACH) to ask the
 * socket itself. The fd may have been closed and reused since /proc was read, so the dup
 * must be the same inode. Returns the new fd or -errno.
 */
static int dup_target_socket(int pid, int fd, uint64_t ino)
{
	struct stat st;
	int pidfd, dup;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	dup = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (dup < 0) {
		int err = -errno;

		close(pidfd);
		return err;
	}
	close(pidfd);
	if (fstat(dup, &st) < 0 || !S_ISSOCK(st.st_mode) || (uint64_t)st.st_ino != ino) {
		close(dup);
		return -ESTALE;
	}
	return dup;
}

static int socket_timeout(int sock, bool for_write, int64_t *ns)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if (getsockopt(sock, SOL_SOCKET, for_write ? SO_SNDTIMEO : SO_RCVTIMEO, &tv, &len) < 0)
		return -errno;
	if (len != sizeof(tv) || tv.tv_sec < 0 || tv.tv_usec < 0)
		return -EINVAL;
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		*ns = -1;	/* 0 means block forever */
	else
		*ns = (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
	return 0;
}

/* A fallback description from the socket itself, for families /proc/net does not list. */
static void describe_socket_fd(int sock, char *buf, size_t size)
{
	int domain = -1, type = -1;
	socklen_t len = sizeof(int);

	getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &len);
	len = sizeof(int);
	getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len);
	snprintf(buf, size, "socket (domain %d, type %d)", domain, type);
}

/*
 * The socket behind pid's fd (inode ino) as one readable line: asked of a copy of the fd
 * (pidfd_getfd), else found in /proc/PID/net, else named by what little is known. *sock_out,
 * when given, receives the copy (or -1) for the caller to ask more and close.
 */
static void socket_line(int pid, int fd, uint64_t ino, struct cp_net_index *net, char *line,
			size_t size, int *sock_out)
{
	int rc = -ENOENT, sock = dup_target_socket(pid, fd, ino);

	if (sock >= 0) {
		struct cp_net_sock ns;

		if (cp_net_from_socket(sock, &ns) == 0)
			rc = cp_net_format(&ns, line, size);
		/*
		 * A connect in progress (SYN_SENT) has no peer to getpeername yet: the kernel's
		 * table has the address it is connecting to.
		 */
		if (rc >= 0 && ns.proto == CP_NET_TCP && ns.state == TCP_SYN_SENT &&
		    cp_net_describe_socket(pid, ino, net, line, size) < 0)
			rc = cp_net_format(&ns, line, size);
	}
	/* Without a copy of the fd (an older kernel, no permission): /proc/PID/net. */
	if (rc < 0)
		rc = cp_net_describe_socket(pid, ino, net, line, size);
	if (rc < 0) {
		if (sock >= 0)
			describe_socket_fd(sock, line, size);
		else
			snprintf(line, size, "socket:[%" PRIu64 "]", ino);
	}
	if (sock_out)
		*sock_out = sock;
	else if (sock >= 0)
		close(sock);
}

static void describe_socket(int pid, int fd, uint64_t ino, bool for_write,
			    struct cp_net_index *net, struct cp_fd_desc *d, struct cp_strbuf *sb)
{
	char line[256];
	int sock;

	d->is_socket = true;
	socket_line(pid, fd, ino, net, line, sizeof(line), &sock);
	cp_strbuf_adds(sb, line);
	/* The wait's detail says "timeout unknown" from the flag; not repeated here. */
	if (sock < 0 || socket_timeout(sock, for_write, &d->timeout_ns) < 0) {
		d->timeout_ns = -1;
		d->timeout_unknown = true;
	}
	if (sock >= 0)
		close(sock);
}

static void describe_pipe(int pid, int fd, const char *link, const char *fdinfo,
			  struct cp_pipe_index *pipes, struct cp_fd_desc *d, struct cp_strbuf *sb)
{
	struct pipe_holder h[PIPE_HOLDERS_SHOWN];
	long flags = fd_info_flags(fdinfo);
	bool want_write, incomplete, all_self = true;
	const char *other;
	size_t n, total, i;

	d->is_pipe = true;
	cp_strbuf_adds(sb, link);
	if (flags < 0)
		return;
	/* A read end waits for writers; a write end waits for readers. */
	want_write = (flags & O_ACCMODE) == O_RDONLY;
	other = want_write ? "write end" : "read end";
	n = fd_find_pipe_holders(pipes, link, want_write, fd, pid, h, PIPE_HOLDERS_SHOWN, &total,
			      &incomplete);
	if (total == 0) {
		cp_strbuf_addf(sb, ", %s %s", other,
			       incomplete ? "holder not found (search cut short)"
					  : "not held by any process");
		return;
	}
	for (i = 0; i < n; i++)
		if (h[i].pid != pid)
			all_self = false;
	if (all_self && total == n) {
		cp_strbuf_addf(sb, ", %s held only by this process, fd", other);
		for (i = 0; i < n; i++)
			cp_strbuf_addf(sb, "%s %d", i ? "," : "", h[i].fd);
	} else {
		cp_strbuf_addf(sb, ", %s held by", other);
		for (i = 0; i < n; i++) {
			char comm[CP_COMM_LEN];

			if (h[i].pid == pid) {
				cp_strbuf_addf(sb, "%s this process, fd %d", i ? ";" : "", h[i].fd);
				continue;
			}
			comm_of(h[i].pid, comm, sizeof(comm));
			cp_strbuf_addf(sb, "%s process %d (%s), fd %d", i ? ";" : "", h[i].pid,
				       comm, h[i].fd);
		}
		if (total > n)
			cp_strbuf_addf(sb, " and %zu more", total - n);
	}
	if (incomplete)
		cp_strbuf_adds(sb, " (search cut short)");
}

/*
 * What an epoll instance watches: up to EPOLL_FDS_SHOWN fds, sockets described as a recv on
 * them would be (TCP 127.0.0.1:6379 LISTEN), others by their /proc link, then "and N more".
 */
static void describe_epoll(int pid, const char *fdinfo, struct cp_net_index *net,
			   struct cp_strbuf *sb)
{
	const char *p = fdinfo;
	size_t n = 0;

	cp_strbuf_adds(sb, "epoll");
	while (p && (p = strstr(p, "tfd:"))) {
		char lp[96], l[LINK_MAX], line[256];
		uint64_t ino;
		char *end;
		long tfd;

		p += 4;
		errno = 0;
		tfd = strtol(p, &end, 10);
		if (errno || end == p || tfd < 0 || tfd > INT_MAX)
			break;
		p = end;
		if (n < EPOLL_FDS_SHOWN) {
			if (fd_proc_path(pid, "fd", tfd, lp, sizeof(lp)) < 0 ||
			    fd_read_link(lp, l, sizeof(l)) < 0)
				snprintf(l, sizeof(l), "closed");
			if (fd_link_inode(l, "socket:", &ino)) {
				socket_line(pid, (int)tfd, ino, net, line, sizeof(line), NULL);
				cp_strbuf_addf(sb, "%s fd %ld (%s)", n ? "," : " watching", tfd, line);
			} else {
				cp_strbuf_addf(sb, "%s fd %ld (%s)", n ? "," : " watching", tfd, l);
			}
		}
		n++;
	}
	if (n == 0)
		cp_strbuf_adds(sb, " watching no fds");
	else if (n > EPOLL_FDS_SHOWN)
		cp_strbuf_addf(sb, " and %zu more", n - EPOLL_FDS_SHOWN);
}

static void describe_timerfd(const char *fdinfo, struct cp_strbuf *sb)
{
	const char *clk = fd_info_field(fdinfo, "clockid");
	const char *val = fd_info_field(fdinfo, "it_value");
	const char *ival = fd_info_field(fdinfo, "it_interval");
	unsigned long long vs = 0, vn = 0, is = 0, in = 0;
	int clockid = clk ? atoi(clk) : -1;
	const char *cname = clockid == 0 ? "CLOCK_REALTIME" : clockid == 1 ? "CLOCK_MONOTONIC" :
			    clockid == 7 ? "CLOCK_BOOTTIME" : "clock";

	cp_strbuf_addf(sb, "timerfd (%s)", cname);
	if (!val || sscanf(val, "(%llu, %llu)", &vs, &vn) != 2)
		return;
	if (ival)
		sscanf(ival, "(%llu, %llu)", &is, &in);
	if (vs == 0 && vn == 0) {
		cp_strbuf_adds(sb, ", disarmed");
		return;
	}
	cp_strbuf_addf(sb, ", next expiry in %llu.%03llus", vs, vn / 1000000);
	if (is || in)
		cp_strbuf_addf(sb, ", interval %llu.%03llus", is, in / 1000000);
}

static void describe_signalfd(const char *fdinfo, struct cp_strbuf *sb)
{
	const char *v = fd_info_field(fdinfo, "sigmask");
	unsigned long long mask;
	char *end;
	int sig, shown = 0;

	cp_strbuf_adds(sb, "signalfd");
	if (!v)
		return;
	errno = 0;
	mask = strtoull(v, &end, 16);
	if (errno || end == v)
		return;
	for (sig = 1; sig <= 64; sig++) {
		const char *abbrev;

		if (!(mask & (1ull << (sig - 1))))
			continue;
		abbrev = sigabbrev_np(sig);
		if (abbrev)
			cp_strbuf_addf(sb, "%sSIG%s", shown ? ", " : " for ", abbrev);
		else
			cp_strbuf_addf(sb, "%s%d", shown ? ", " : " for signal ", sig);
		shown++;
	}
}

static void describe_eventfd(const char *fdinfo, struct cp_strbuf *sb)
{
	const char *v = fd_info_field(fdinfo, "eventfd-count");
	unsigned long long cnt;
	char *end;

	cp_strbuf_adds(sb, "eventfd");
	if (!v)
		return;
	/* The kernel prints the counter with %16llx. */
	errno = 0;
	cnt = strtoull(v, &end, 16);
	if (!errno && end != v)
		cp_strbuf_addf(sb, ", count %llu", cnt);
}

static void describe_path(int pid, int fd, const char *link, const char *fdinfo,
			  struct cp_strbuf *sb)
{
	const char *pos = fdinfo ? fd_info_field(fdinfo, "pos") : NULL;
	char lp[96];
	struct stat st;

	cp_strbuf_adds(sb, link);
	/* An offset only means something for regular files (and block devices). */
	if (pos && fd_proc_path(pid, "fd", fd, lp, sizeof(lp)) == 0 && stat(lp, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		cp_strbuf_addf(sb, ", offset %lld", strtoll(pos, NULL, 10));
}

int cp_fd_describe(int pid, int fd, bool for_write, struct cp_pipe_index *pipes,
		   struct cp_net_index *net, struct cp_fd_desc *d)
{
	struct cp_strbuf sb = CP_STRBUF_INIT;
	char lp[96], link[LINK_MAX], *fdinfo = NULL, *detail;
	struct stat st;
	uint64_t ino;
	int rc;

	if (!d)
		return -EINVAL;
	cp_fd_desc_init(d);
	if (pid <= 0 || fd < 0)
		return -EINVAL;
	rc = fd_proc_path(pid, "fd", fd, lp, sizeof(lp));
	if (rc == 0)
		rc = fd_read_link(lp, link, sizeof(link));
	if (rc == -ENOENT || rc == -ESRCH) {
		/* Either the fd was closed or the whole process is gone: say which. */
		snprintf(lp, sizeof(lp), "/proc/%d", pid);
		return access(lp, F_OK) < 0 ? -ESRCH : -EBADF;
	}
	if (rc < 0)
		return rc;
	/* fdinfo is optional: without it a description is shorter, not wrong. */
	fd_read_info(pid, fd, &fdinfo);

	if (fd_link_inode(link, "socket:", &ino)) {
		describe_socket(pid, fd, ino, for_write, net, d, &sb);
	} else if (fd_link_inode(link, "pipe:", &ino)) {
		describe_pipe(pid, fd, link, fdinfo, pipes, d, &sb);
	} else if (!strcmp(link, "anon_inode:[eventpoll]")) {
		describe_epoll(pid, fdinfo, net, &sb);
	} else if (!strcmp(link, "anon_inode:[eventfd]")) {
		describe_eventfd(fdinfo, &sb);
	} else if (!strcmp(link, "anon_inode:[timerfd]")) {
		describe_timerfd(fdinfo, &sb);
	} else if (!strcmp(link, "anon_inode:[signalfd]")) {
		describe_signalfd(fdinfo, &sb);
	} else if (link[0] == '/' && stat(lp, &st) == 0 && S_ISFIFO(st.st_mode)) {
		/* A named pipe: the same search, by path. */
		describe_pipe(pid, fd, link, fdinfo, pipes, d, &sb);
	} else if (link[0] == '/') {
		describe_path(pid, fd, link, fdinfo, &sb);
	} else {
		cp_strbuf_adds(&sb, link);
	}
	free(fdinfo);

	if (sb.err) {
		cp_strbuf_release(&sb);
		cp_fd_desc_release(d);
		return sb.err;
	}
	detail = cp_strbuf_detach(&sb);
	d->object = strdup(link);
	if (!detail || !d->object) {
		free(detail);
		cp_fd_desc_release(d);
		return -ENOMEM;
	}
	d->detail = detail;
	return 0;
}

int cp_fd_count(int pid, struct cp_fd_counts *out)
{
	struct cp_fd_counts c = { 0 };
	char path[96];
	struct dirent *e;
	DIR *dir;
	int err;

	if (!out || pid <= 0)
		return -EINVAL;
	err = fd_proc_path(pid, "fd", -1, path, sizeof(path));
	if (err < 0)
		return err;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		char lp[352], link[LINK_MAX];

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (c.total >= FD_SCAN_MAX_FDS)
			break;
		snprintf(lp, sizeof(lp), "%s/%s", path, e->d_name);
		if (fd_read_link(lp, link, sizeof(link)) < 0)
			continue;	/* closed while we looked */
		c.total++;
		if (!strncmp(link, "socket:", 7))
			c.socket++;
		else if (!strncmp(link, "pipe:", 5))
			c.pipe++;
		else if (link[0] == '/')
			c.file++;
		else if (!strncmp(link, "anon_inode:", 11))
			c.anon++;
		else
			c.other++;
	}
	closedir(dir);
	*out = c;
	return 0;
}
