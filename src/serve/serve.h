/*
 * `cprof serve`: Go's net/http/pprof endpoints and Prometheus metrics for a fixed set of
 * processes, over HTTP (libmicrohttpd), with the limits and checks a network service needs.
 */
#ifndef CP_SERVE_H
#define CP_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_SERVE_DEFAULT_PORT 6060
#define CP_SERVE_SECONDS_DEFAULT 30
#define CP_SERVE_SECONDS_MAX_DEFAULT 300
#define CP_SERVE_MAX_TARGETS 64

struct cp_serve_opts {
	const int *pids;		/* borrowed; the fixed target set (may be empty) */
	size_t npids;
	const char *listen;		/* "ADDR:PORT"; NULL = 127.0.0.1:6060 */
	const char *credentials;	/* "user:password" for Basic auth; NULL = no auth */
	const char *tls_cert_pem;	/* borrowed PEM text; both or neither */
	const char *tls_key_pem;
	int seconds_max;		/* cap on ?seconds=; 0 = CP_SERVE_SECONDS_MAX_DEFAULT */
	int hz;				/* CPU sampling rate; 0 = 99 */
	unsigned int connection_limit;	/* 0 = 64 */
	unsigned int timeout_s;		/* idle connection timeout; 0 = 15 */
};

struct cp_serve;

/*
 * Start serving in background threads. 0 or -errno: -EINVAL bad listen address or options,
 * -ENOTSUP TLS asked but the library has none, -EADDRINUSE, -EACCES, -ENOMEM. *out is written
 * only on success.
 */
int cp_serve_start(const struct cp_serve_opts *opts, struct cp_serve **out);
/* The TCP port listened on (the one the kernel chose for port 0). */
int cp_serve_port(const struct cp_serve *srv);
/*
 * Stop accepting, end the profiles in flight (their samplers stop, nothing stays traced) and
 * free. NULL is a no-op.
 */
void cp_serve_stop(struct cp_serve *srv);

/*
 * Parse "ADDR:PORT" ("127.0.0.1:6060", "[::1]:6060", "0.0.0.0:0", ":6060" = all IPv4) into
 * a socket address. 0 or -EINVAL. *loopback tells whether only this host can connect.
 */
struct sockaddr_storage;
int cp_serve_parse_listen(const char *s, struct sockaddr_storage *ss, bool *loopback);

/*
 * Check the auth file's text: one "user:password" line (a final newline allowed), user
 * non-empty. 0 with *out the malloc'd credentials, or -EINVAL with a reason.
 */
int cp_serve_parse_credentials(const char *text, char **out, char *why, size_t size);

#endif
