/*
 * Naming what a file descriptor of another process is: sockets (through the target's own
 * network namespace), pipes (and who holds their other end), files (path, offset), eventfd,
 * timerfd, signalfd, epoll (and what it watches); and the socket timeouts a blocked read or
 * write would honour.
 */
#ifndef CP_FDINFO_H
#define CP_FDINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_fd_desc {
	char *object;		/* owned; the /proc/PID/fd link ("socket:[123]", "pipe:[77]", a path) */
	char *detail;		/* owned; readable ("TCP 127.0.0.1:40000 -> 127.0.0.1:8080 ESTABLISHED") */
	int64_t timeout_ns;	/* SO_RCVTIMEO / SO_SNDTIMEO for sockets; -1 = none (unbounded) */
	bool timeout_unknown;	/* could not read the socket's timeout */
	bool is_socket;
	bool is_pipe;
};

void cp_fd_desc_init(struct cp_fd_desc *d);
void cp_fd_desc_release(struct cp_fd_desc *d);

/*
 * Every anonymous pipe fd of the system by inode, to name who holds a pipe's other end. A
 * dump asks about many threads in a row, and on a process with hundreds of threads blocked on
 * pipes a walk of all of /proc per thread would dominate the dump: the index is built by one
 * walk on first use and rebuilt when a few seconds old. One user at a time.
 */
struct cp_pipe_index;
struct cp_net_index;

/* An empty index (built on first use); NULL when out of memory. */
struct cp_pipe_index *cp_pipe_index_new(void);
void cp_pipe_index_free(struct cp_pipe_index *ix);

/*
 * Describe fd of process pid. for_write selects SO_SNDTIMEO instead of SO_RCVTIMEO. pipes
 * (borrowed, may be NULL) answers who holds a pipe's other end; without it each pipe asked
 * about costs a walk of /proc. net (borrowed, may be NULL) likewise for sockets. 0 or -errno; d is always left releasable.
 */
int cp_fd_describe(int pid, int fd, bool for_write, struct cp_pipe_index *pipes,
		   struct cp_net_index *net, struct cp_fd_desc *d);

/*
 * The target's sockets by inode, read from /proc/PID/net once for many questions and rebuilt
 * when a few seconds old. One user at a time.
 */
struct cp_net_index;

/* An empty index (built on first use); NULL when out of memory. */
struct cp_net_index *cp_net_index_new(void);
void cp_net_index_free(struct cp_net_index *ix);

/*
 * The socket with inode ino in pid's network namespace, as one readable line. ix (borrowed,
 * may be NULL) saves reading the tables again for each socket. 0 or -errno.
 */
int cp_net_describe_socket(int pid, uint64_t ino, struct cp_net_index *ix, char *buf,
			   size_t size);

/* One entry of /proc/PID/net/{tcp,tcp6,udp,udp6,unix}, parsed (netinfo.c). */
enum cp_net_proto {
	CP_NET_TCP = 1,
	CP_NET_UDP,
	CP_NET_UNIX,
};

struct cp_net_sock {
	enum cp_net_proto proto;
	int family;		/* AF_INET, AF_INET6, AF_UNIX */
	uint8_t local[16];	/* network byte order; IPv4 in the first 4 bytes */
	uint8_t remote[16];
	uint16_t local_port;	/* host order */
	uint16_t remote_port;
	int state;		/* TCP_* state (inet), SS_* state (unix) */
	uint64_t inode;
	int unix_type;		/* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	bool unix_listening;	/* __SO_ACCEPTCON in the flags */
	char path[112];		/* unix path ("@name" for abstract), "" when unnamed */
};

/*
 * Parse one data line of /proc/net/tcp, tcp6, udp or udp6 (proto CP_NET_TCP or CP_NET_UDP,
 * ipv6 for the *6 files) or of /proc/net/unix. -EINVAL for the header line or garbage.
 */
int cp_net_parse_inet_line(const char *line, enum cp_net_proto proto, bool ipv6,
			   struct cp_net_sock *out);
int cp_net_parse_unix_line(const char *line, struct cp_net_sock *out);
/*
 * The same description from the socket itself (a copy of the target's fd): its family, type,
 * names and TCP state, without walking the system's socket tables as /proc/net does (all of
 * TCP's established hash for one line). inode is left 0. -errno for a socket /proc/net does
 * not list either (netlink, raw, SCTP...).
 */
int cp_net_from_socket(int sock, struct cp_net_sock *out);
/* "TCP 127.0.0.1:40000 -> 127.0.0.1:8080 ESTABLISHED", "TCP listening on 0.0.0.0:8080". */
int cp_net_format(const struct cp_net_sock *s, char *buf, size_t size);

/* Counts of the process's fds by kind, for the dump header. */
struct cp_fd_counts {
	int total;
	int socket;
	int pipe;
	int file;
	int anon;
	int other;
};
int cp_fd_count(int pid, struct cp_fd_counts *out);

#endif
