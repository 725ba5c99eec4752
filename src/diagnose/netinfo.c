/* Sockets named from the target's own network namespace: /proc/PID/net/{tcp,udp,unix}[6]. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdinfo.h"
#include "util.h"

/* Caps on what we accept from the target's /proc/net files. */
#define NET_MAX_LINES 1000000
#define NET_MAX_LINE_LEN 4096

/* TCP states as numbered by the kernel (include/net/tcp_states.h). */
static const char *const tcp_states[] = {
	[1] = "ESTABLISHED", [2] = "SYN_SENT",	 [3] = "SYN_RECV",   [4] = "FIN_WAIT1",
	[5] = "FIN_WAIT2",   [6] = "TIME_WAIT",	 [7] = "CLOSE",	     [8] = "CLOSE_WAIT",
	[9] = "LAST_ACK",    [10] = "LISTEN",	 [11] = "CLOSING",   [12] = "NEW_SYN_RECV",
};

#define TCP_STATE_LISTEN 10
#define TCP_STATE_CLOSE 7
#define UNIX_ACCEPTCON 0x10000	/* __SO_ACCEPTCON in the Flags column */
/* The socket states (SS_*) of /proc/net/unix's St column. */
#define UNIX_SS_UNCONNECTED 1
#define UNIX_SS_CONNECTED 3

/* Split line into at most max whitespace-separated tokens (in place). */
static size_t tokenize(char *line, char **tok, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (n < max) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		tok[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static int parse_hex_u32(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (len == 0 || len > 8)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -EINVAL;
		v = (v << 4) | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/*
 * "0100007F:1F90" or 32 hex digits ":" port. The kernel prints each 32-bit word of the
 * address with %08X as the host reads it, i.e. the network-order bytes reinterpreted as a
 * native integer; copying the parsed integer back into memory restores network order on
 * the host the file came from (and cprof only reads its own host's /proc).
 */
static int parse_inet_addr(const char *s, bool ipv6, uint8_t *addr, uint16_t *port)
{
	size_t hexlen = ipv6 ? 32 : 8, i;
	uint32_t word, p;

	if (strlen(s) != hexlen + 5 || s[hexlen] != ':')
		return -EINVAL;
	memset(addr, 0, 16);
	for (i = 0; i < hexlen / 8; i++) {
		if (parse_hex_u32(s + 8 * i, 8, &word) < 0)
			return -EINVAL;
		memcpy(addr + 4 * i, &word, 4);
	}
	if (parse_hex_u32(s + hexlen + 1, 4, &p) < 0)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

int cp_net_parse_inet_line(const char *line, enum cp_net_proto proto, bool ipv6,
			   struct cp_net_sock *out)
{
	char copy[NET_MAX_LINE_LEN];
	char *tok[12], *end;
	struct cp_net_sock s = { .proto = proto, .family = ipv6 ? AF_INET6 : AF_INET };
	uint32_t st;
	unsigned long long ino;
	size_t n;

	if (!line || !out || (proto != CP_NET_TCP && proto != CP_NET_UDP))
		return -EINVAL;
	if (strlen(line) >= sizeof(copy))
		return -EINVAL;
	strcpy(copy, line);
	/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ... */
	n = tokenize(copy, tok, sizeof(tok) / sizeof(tok[0]));
	if (n < 10)
		return -EINVAL;
	if (tok[0][strlen(tok[0]) - 1] != ':' || !isdigit((unsigned char)tok[0][0]))
		return -EINVAL;
	if (parse_inet_addr(tok[1], ipv6, s.local, &s.local_port) < 0 ||
	    parse_inet_addr(tok[2], ipv6, s.remote, &s.remote_port) < 0)
		return -EINVAL;
	if (strlen(tok[3]) != 2 || parse_hex_u32(tok[3], 2, &st) < 0)
		return -EINVAL;
	s.state = (int)st;
	errno = 0;
	ino = strtoull(tok[9], &end, 10);
	if (errno || *end || end == tok[9])
		return -EINVAL;
	s.inode = ino;
	*out = s;
	return 0;
}

int cp_net_parse_unix_line(const char *line, struct cp_net_sock *out)
{
	char copy[NET_MAX_LINE_LEN];
	char *tok[8], *end, *path;
	struct cp_net_sock s = { .proto = CP_NET_UNIX, .family = AF_UNIX };
	uint32_t flags, type, st;
	unsigned long long ino;
	size_t n, len;

	if (!line || !out)
		return -EINVAL;
	len = strlen(line);
	if (len >= sizeof(copy))
		return -EINVAL;
	strcpy(copy, line);
	while (len && (copy[len - 1] == '\n' || copy[len - 1] == '\r'))
		copy[--len] = '\0';
	/* Num: RefCount Protocol Flags Type St Inode [Path]; the path is the rest of the line. */
	n = tokenize(copy, tok, 7);
	if (n < 7)
		return -EINVAL;
	if (tok[0][strlen(tok[0]) - 1] != ':')
		return -EINVAL;
	if (parse_hex_u32(tok[3], strlen(tok[3]), &flags) < 0 ||
	    parse_hex_u32(tok[4], strlen(tok[4]), &type) < 0 ||
	    parse_hex_u32(tok[5], strlen(tok[5]), &st) < 0)
		return -EINVAL;
	errno = 0;
	ino = strtoull(tok[6], &end, 10);
	if (errno || end == tok[6])
		return -EINVAL;
	/* tokenize cut the line after the inode; the path, if any, follows. */
	path = tok[6] + strlen(tok[6]);
	if (path < copy + len) {
		path++;
		while (*path == ' ')
			path++;
		snprintf(s.path, sizeof(s.path), "%s", path);
	}
	s.unix_type = (int)type;
	s.state = (int)st;
	s.unix_listening = (flags & UNIX_ACCEPTCON) != 0;
	s.inode = ino;
	*out = s;
	return 0;
}

static void format_endpoint(const struct cp_net_sock *s, const uint8_t *addr, uint16_t port,
			    char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (s->family == AF_INET6) {
		if (!inet_ntop(AF_INET6, addr, a, sizeof(a)))
			snprintf(a, sizeof(a), "?");
		snprintf(buf, size, "[%s]:%u", a, port);
	} else {
		if (!inet_ntop(AF_INET, addr, a, sizeof(a)))
			snprintf(a, sizeof(a), "?");
		snprintf(buf, size, "%s:%u", a, port);
	}
}

static const char *unix_type_name(int type)
{
	switch (type) {
	case SOCK_STREAM:
		return "stream";
	case SOCK_DGRAM:
		return "dgram";
	case SOCK_SEQPACKET:
		return "seqpacket";
	default:
		return "socket";
	}
}

static const char *unix_state_name(int st)
{
	static const char *const names[] = { "FREE", "UNCONNECTED", "CONNECTING", "CONNECTED",
					     "DISCONNECTING" };

	if (st >= 0 && (size_t)st < sizeof(names) / sizeof(names[0]))
		return names[st];
	return "?";
}

int cp_net_format(const struct cp_net_sock *s, char *buf, size_t size)
{
	static const uint8_t zero[16];
	char l[64], r[64], st[16];
	const char *state;
	int n;

	if (!s || !buf || !size)
		return -EINVAL;
	if (s->proto == CP_NET_UNIX) {
		const char *path = s->path[0] ? s->path : "(unnamed)";

		if (s->unix_listening)
			n = snprintf(buf, size, "UNIX %s listening on %s",
				     unix_type_name(s->unix_type), path);
		else
			n = snprintf(buf, size, "UNIX %s %s %s", unix_type_name(s->unix_type), path,
				     unix_state_name(s->state));
		return n < 0 ? -EINVAL : 0;
	}

	format_endpoint(s, s->local, s->local_port, l, sizeof(l));
	format_endpoint(s, s->remote, s->remote_port, r, sizeof(r));
	if (s->proto == CP_NET_TCP) {
		if (s->state == TCP_STATE_LISTEN)
			return snprintf(buf, size, "TCP listening on %s", l) < 0 ? -EINVAL : 0;
		if (s->state > 0 && (size_t)s->state < sizeof(tcp_states) / sizeof(tcp_states[0]))
			state = tcp_states[s->state];
		else {
			snprintf(st, sizeof(st), "state %d", s->state);
			state = st;
		}
		n = snprintf(buf, size, "TCP %s -> %s %s", l, r, state);
		return n < 0 ? -EINVAL : 0;
	}
	/* UDP: unconnected sockets have no peer worth printing. */
	if (s->remote_port == 0 && !memcmp(s->remote, zero, 16))
		n = snprintf(buf, size, "UDP %s", l);
	else
		n = snprintf(buf, size, "UDP %s -> %s", l, r);
	return n < 0 ? -EINVAL : 0;
}

/*
 * Parse every entry of one /proc/PID/net file, calling visit until it returns true.
 * 1 when visit stopped the walk, 0 at the end, -errno when the file cannot be read.
 */
static int walk_file(int pid, const char *name, enum cp_net_proto proto, bool ipv6,
		     bool (*visit)(void *ctx, const struct cp_net_sock *s), void *ctx)
{
	char path[64];
	char *line = NULL;
	size_t cap = 0, lines = 0;
	ssize_t len;
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while ((len = getline(&line, &cap, f)) >= 0 && lines++ < NET_MAX_LINES) {
		struct cp_net_sock s;
		int rc;

		if (len >= NET_MAX_LINE_LEN)
			continue;
		if (proto == CP_NET_UNIX)
			rc = cp_net_parse_unix_line(line, &s);
		else
			rc = cp_net_parse_inet_line(line, proto, ipv6, &s);
		if (rc < 0 || s.inode == 0)
			continue;
		if (visit(ctx, &s)) {
			ret = 1;
			break;
		}
	}
	free(line);
	fclose(f);
	return ret;
}

static const struct {
	const char *name;
	enum cp_net_proto proto;
	bool ipv6;
} net_files[] = {
	{ "tcp", CP_NET_TCP, false }, { "tcp6", CP_NET_TCP, true },
	{ "udp", CP_NET_UDP, false }, { "udp6", CP_NET_UDP, true },
	{ "unix", CP_NET_UNIX, false },
};

/* Walk all files; 1 stopped, 0 done, -errno when no file could be read at all. */
static int walk_all(int pid, bool (*visit)(void *ctx, const struct cp_net_sock *s), void *ctx)
{
	int err = -ENOENT, ok = 0;
	size_t i;

	for (i = 0; i < sizeof(net_files) / sizeof(net_files[0]); i++) {
		int rc = walk_file(pid, net_files[i].name, net_files[i].proto, net_files[i].ipv6,
				   visit, ctx);

		if (rc > 0)
			return 1;
		/* A missing file (no IPv6 in this kernel) is not an error of the others. */
		if (rc == 0)
			ok = 1;
		else if (rc != -ENOENT)
			err = rc;
	}
	return ok ? 0 : err;
}

struct find_ctx {
	uint64_t ino;
	struct cp_net_sock found;
};

static bool visit_find(void *ctx, const struct cp_net_sock *s)
{
	struct find_ctx *fc = ctx;

	if (s->inode != fc->ino)
		return false;
	fc->found = *s;
	return true;
}

/*
 * The target's sockets by inode. A dump describes many sockets of one process in a row (a
 * thread leak means hundreds of threads each on its own connection), and re-reading
 * /proc/net/tcp for each would cost threads x connections; one read serves the questions of
 * NET_INDEX_TTL_NS. A miss rebuilds once (the socket may be newer than the index).
 */
#define NET_INDEX_TTL_NS (3ull * 1000000000)
#define NET_INDEX_MAX 262144

struct cp_net_index {
	int pid;
	uint64_t built_ns;
	struct cp_net_sock *v;
	size_t n, alloc;
	bool full;
};

struct cp_net_index *cp_net_index_new(void)
{
	return calloc(1, sizeof(struct cp_net_index));
}

void cp_net_index_free(struct cp_net_index *ix)
{
	if (!ix)
		return;
	free(ix->v);
	free(ix);
}

static bool visit_index(void *ctx, const struct cp_net_sock *s)
{
	struct cp_net_index *ix = ctx;

	if (ix->n == ix->alloc) {
		size_t na = ix->alloc ? ix->alloc * 2 : 256;
		struct cp_net_sock *nv;

		if (na > NET_INDEX_MAX) {
			ix->full = true;
			return true;
		}
		nv = realloc(ix->v, na * sizeof(*nv));
		if (!nv) {
			ix->full = true;
			return true;
		}
		ix->v = nv;
		ix->alloc = na;
	}
	ix->v[ix->n++] = *s;
	return false;
}

static int cmp_sock_ino(const void *a, const void *b)
{
	const struct cp_net_sock *x = a, *y = b;

	return (x->inode > y->inode) - (x->inode < y->inode);
}

/* 1 found (*out set), 0 not there, -errno; -EOVERFLOW when too many sockets to index. */
static int index_find(struct cp_net_index *ix, int pid, uint64_t ino, struct cp_net_sock *out)
{
	struct cp_net_sock key = { .inode = ino };
	const struct cp_net_sock *hit;
	bool fresh = false;

	for (;;) {
		if (ix->pid != pid || !ix->built_ns ||
		    cp_now_ns() - ix->built_ns > NET_INDEX_TTL_NS) {
			int rc;

			ix->n = 0;
			ix->full = false;
			ix->built_ns = 0;
			rc = walk_all(pid, visit_index, ix);
			if (rc < 0 || ix->full)
				return rc < 0 ? rc : -EOVERFLOW;
			qsort(ix->v, ix->n, sizeof(*ix->v), cmp_sock_ino);
			ix->pid = pid;
			ix->built_ns = cp_now_ns();
			fresh = true;
		}
		hit = ix->n ? bsearch(&key, ix->v, ix->n, sizeof(key), cmp_sock_ino) : NULL;
		if (hit) {
			*out = *hit;
			return 1;
		}
		if (fresh)
			return 0;
		ix->built_ns = 0;
	}
}

/* The address of sa (from getsockname or getpeername) into addr and port, as /proc shows them. */
static void inet_endpoint(const struct sockaddr_storage *sa, uint8_t *addr, uint16_t *port)
{
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		memcpy(addr, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(addr, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
	}
}

static int sockopt_int(int sock, int level, int name, int *v)
{
	socklen_t len = sizeof(*v);

	return getsockopt(sock, level, name, v, &len) < 0 ? -errno : 0;
}

int cp_net_from_socket(int sock, struct cp_net_sock *out)
{
	struct cp_net_sock s = { 0 };
	struct sockaddr_storage sa;
	socklen_t len;
	int domain, type, protocol, v;

	if (sockopt_int(sock, SOL_SOCKET, SO_DOMAIN, &domain) < 0 ||
	    sockopt_int(sock, SOL_SOCKET, SO_TYPE, &type) < 0 ||
	    sockopt_int(sock, SOL_SOCKET, SO_PROTOCOL, &protocol) < 0)
		return -ENOTSOCK;
	s.family = domain;
	if (domain == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&sa;
		size_t off = offsetof(struct sockaddr_un, sun_path), n, i;

		s.proto = CP_NET_UNIX;
		s.unix_type = type;
		s.unix_listening = sockopt_int(sock, SOL_SOCKET, SO_ACCEPTCONN, &v) == 0 && v;
		len = sizeof(sa);
		memset(&sa, 0, sizeof(sa));
		if (getsockname(sock, (struct sockaddr *)&sa, &len) < 0)
			return -errno;
		/* /proc/net/unix writes an abstract name's NUL bytes as '@'. */
		n = len > off ? len - off : 0;
		if (n && un->sun_path[0] && !un->sun_path[n - 1])
			n--;		/* a path name's terminating NUL */
		for (i = 0; i < n && i + 1 < sizeof(s.path); i++)
			s.path[i] = un->sun_path[i] ? un->sun_path[i] : '@';
		s.path[i] = '\0';
		len = sizeof(sa);
		s.state = getpeername(sock, (struct sockaddr *)&sa, &len) == 0 ? UNIX_SS_CONNECTED
									      : UNIX_SS_UNCONNECTED;
		*out = s;
		return 0;
	}
	if (domain != AF_INET && domain != AF_INET6)
		return -EAFNOSUPPORT;
	if (type == SOCK_STREAM && protocol == IPPROTO_TCP) {
		struct tcp_info ti;

		s.proto = CP_NET_TCP;
		len = sizeof(ti);
		if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
			return -errno;
		s.state = ti.tcpi_state;
	} else if (type == SOCK_DGRAM && protocol == IPPROTO_UDP) {
		s.proto = CP_NET_UDP;
	} else {
		return -EPROTONOSUPPORT;
	}
	len = sizeof(sa);
	if (getsockname(sock, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	inet_endpoint(&sa, s.local, &s.local_port);
	len = sizeof(sa);
	if (getpeername(sock, (struct sockaddr *)&sa, &len) == 0)
		inet_endpoint(&sa, s.remote, &s.remote_port);
	*out = s;
	return 0;
}

int cp_net_describe_socket(int pid, uint64_t ino, struct cp_net_index *ix, char *buf,
			   size_t size)
{
	struct find_ctx fc = { .ino = ino };
	char path[32];
	int rc;

	if (!buf || !size || pid <= 0 || ino == 0)
		return -EINVAL;
	rc = ix ? index_find(ix, pid, ino, &fc.found) : -EOVERFLOW;
	if (rc == -EOVERFLOW)
		rc = walk_all(pid, visit_find, &fc);
	if (rc > 0)
		return cp_net_format(&fc.found, buf, size);
	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (access(path, F_OK) < 0)
		return -ESRCH;
	return rc < 0 ? rc : -ENOENT;
}
