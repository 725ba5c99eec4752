/*
 * cprof serve's HTTP side, on libmicrohttpd: one thread per connection (a profile blocks its
 * connection for its seconds), a cap on connections, on each connection's memory and idle
 * time; GET only, the Host check, Basic auth, and the headers Go's net/http/pprof sets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include "proc.h"
#include "serve_internal.h"
#include "symbolize.h"

#define CONNECTION_LIMIT 64
#define CONNECTION_MEMORY (32u << 10)
#define CONNECTION_TIMEOUT_S 15
#define SYMBOL_BODY_MAX (1u << 20)
/* How long a stopping server waits for the answers in flight (profiles cut short). */
#define STOP_WAIT_MS 5000

struct conn {
	struct cp_serve *srv;
	struct MHD_Connection *c;
};

static const char *param(void *ctx, const char *name)
{
	struct conn *k = ctx;

	return MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, name);
}

/* The peer has closed its end (or reset it), or the server is stopping. */
static bool gone(void *ctx)
{
	struct conn *k = ctx;
	const union MHD_ConnectionInfo *ci;
	struct pollfd p = { .events = POLLRDHUP };

	if (__atomic_load_n(&k->srv->stopping, __ATOMIC_ACQUIRE))
		return true;
	ci = MHD_get_connection_info(k->c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return false;
	p.fd = ci->connect_fd;
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static enum MHD_Result queue(struct MHD_Connection *c, const struct cp_serve_reply *rp,
			     char *body, bool auth_fail)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(rp->len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", rp->content_type ? rp->content_type :
								      CP_SERVE_TEXT);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (rp->attachment)
		MHD_add_response_header(r, "Content-Disposition",
					"attachment; filename=\"profile\"");
	if (rp->status >= 400)
		MHD_add_response_header(r, "X-Go-Pprof", "1");
	if (rp->status == 405)
		MHD_add_response_header(r, "Allow", "GET");
	if (auth_fail)
		ret = MHD_queue_basic_auth_fail_response(c, "cprof", r);
	else
		ret = MHD_queue_response(c, (unsigned int)rp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, struct cp_serve_reply *rp, bool auth_fail)
{
	char *body = rp->body;

	rp->body = NULL;
	if (!body) {
		body = strdup("");
		rp->len = 0;
		if (!body)
			return MHD_NO;
	}
	return queue(c, rp, body, auth_fail);
}

static bool authorized(struct cp_serve *srv, struct MHD_Connection *c)
{
	char *pass = NULL, *user;
	bool ok;

	if (!srv->credentials)
		return true;
	user = MHD_basic_auth_get_username_password(c, &pass);
	ok = cp_serve_credentials_match(srv->credentials, user, pass);
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (user)
		MHD_free(user);
	return ok;
}

/*
 * The one request other than GET: go tool pprof POSTs the addresses of mappings whose
 * functions a profile does not name to .../symbol, and gives up on the whole profile when that
 * fails. cprof named every function it could, so the answer names none (pprof then shows
 * module+offset); the body is read, capped, and never parsed.
 */
static bool symbol_post(const char *url, const char *method)
{
	return !strcmp(method, MHD_HTTP_METHOD_POST) && !strcmp(url, "/debug/pprof/symbol");
}

/* Free what on_request kept for the connection's request. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct cp_serve *srv = cls;

	if (*con_cls)
		__atomic_fetch_sub(&srv->active, 1, __ATOMIC_RELEASE);
	if (*con_cls && *con_cls != cls)
		free(*con_cls);
	*con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct cp_serve *srv = cls;
	struct cp_serve_reply rp = { 0 };
	struct conn k = { srv, c };
	struct cp_serve_request rq = { srv, url, param, gone, &k };
	enum MHD_Result ret;

	/* The first call only sees the headers; answer on the second (MHD's protocol). */
	if (!*con_cls) {
		if (symbol_post(url, method)) {
			*con_cls = calloc(1, sizeof(size_t));
			if (*con_cls)
				__atomic_fetch_add(&srv->active, 1, __ATOMIC_ACQ_REL);
			return *con_cls ? MHD_YES : MHD_NO;
		}
		*con_cls = srv;
		__atomic_fetch_add(&srv->active, 1, __ATOMIC_ACQ_REL);
		if (strcmp(method, MHD_HTTP_METHOD_GET)) {
			cp_serve_reply_text(&rp, 405, "method %.16s not allowed: only GET", method);
			return reply(c, &rp, false);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Only a symbol POST gets here: its body is counted and dropped. */
		size_t *got = *con_cls;

		if (*con_cls == srv || (*got += *upload_data_size) > SYMBOL_BODY_MAX)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!cp_serve_host_allowed(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host"),
				   srv->listen_host, srv->any_host)) {
		cp_serve_reply_text(&rp, 403, "host not allowed: use localhost or the listen "
					      "address (DNS rebinding protection)");
		return reply(c, &rp, false);
	}
	if (!authorized(srv, c)) {
		cp_serve_reply_text(&rp, 401, "unauthorized");
		return reply(c, &rp, true);
	}
	cp_serve_dispatch(&rq, &rp);
	ret = reply(c, &rp, false);
	cp_serve_reply_release(&rp);
	return ret;
}

/*
 * Paths and query values unescaped as libmicrohttpd does, except that an escaped NUL ("%00")
 * cannot cut one short ("cmdline%00junk" served as cmdline, "seconds=5%00x" as 5): it leaves
 * a byte no path or value accepts.
 */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	size_t len = MHD_http_unescape(s);

	if (memchr(s, '\0', len)) {
		s[0] = '\x7f';
		s[1] = '\0';
		return 1;
	}
	return len;
}

/* libmicrohttpd's own messages would go to stderr: the library layer prints nothing. */
static void quiet(void *cls, const char *fmt, va_list ap)
{
}

static int add_targets(struct cp_serve *srv, const struct cp_serve_opts *opts)
{
	if (opts->npids > CP_SERVE_MAX_TARGETS)
		return -E2BIG;
	for (size_t i = 0; i < opts->npids; i++) {
		struct cp_task_stat st;
		int err = cp_proc_read_stat(opts->pids[i], 0, &st);

		if (err < 0)
			return err == -ENOENT ? -ESRCH : err;
		srv->targets[i].pid = opts->pids[i];
		srv->targets[i].starttime = st.starttime;
	}
	srv->ntargets = opts->npids;
	return 0;
}

static void listen_host(struct cp_serve *srv, const struct sockaddr_storage *ss)
{
	const void *a = ss->ss_family == AF_INET ?
				(const void *)&((const struct sockaddr_in *)ss)->sin_addr :
				(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	inet_ntop(ss->ss_family, a, srv->listen_host, sizeof(srv->listen_host));
	srv->any_host = ss->ss_family == AF_INET ?
				((const struct sockaddr_in *)ss)->sin_addr.s_addr == INADDR_ANY :
				IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int start_daemon(struct cp_serve *srv, const struct cp_serve_opts *opts,
			struct sockaddr_storage *ss)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			     MHD_USE_POLL;
	struct MHD_OptionItem tls[3] = { { MHD_OPTION_END, 0, NULL } };
	const union MHD_DaemonInfo *di;
	struct MHD_Daemon *d;

	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (opts->tls_cert_pem) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
			return -ENOTSUP;
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0,
						  (void *)opts->tls_cert_pem };
		tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0,
						  (void *)opts->tls_key_pem };
	}
	errno = 0;
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
			     MHD_OPTION_CONNECTION_LIMIT,
			     opts->connection_limit ? opts->connection_limit : CONNECTION_LIMIT,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
			     MHD_OPTION_CONNECTION_TIMEOUT,
			     opts->timeout_s ? opts->timeout_s : CONNECTION_TIMEOUT_S,
			     MHD_OPTION_EXTERNAL_LOGGER, quiet, NULL,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
			     MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
			     MHD_OPTION_ARRAY, tls,
			     MHD_OPTION_END);
	if (!d)
		return errno ? -errno : -EINVAL;
	srv->daemon = d;
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : 0;
	return 0;
}

int cp_serve_start(const struct cp_serve_opts *opts, struct cp_serve **out)
{
	struct sockaddr_storage ss;
	struct cp_serve *srv;
	bool loopback;
	int err;

	if (cp_serve_parse_listen(opts->listen ? opts->listen : "127.0.0.1:6060", &ss,
				  &loopback) < 0 ||
	    !opts->tls_cert_pem != !opts->tls_key_pem)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	pthread_mutex_init(&srv->probe_lock, NULL);
	srv->seconds_max = opts->seconds_max > 0 ? opts->seconds_max : CP_SERVE_SECONDS_MAX_DEFAULT;
	srv->hz = opts->hz > 0 ? opts->hz : 99;
	listen_host(srv, &ss);
	err = add_targets(srv, opts);
	if (err < 0)
		goto fail;
	err = -ENOMEM;
	srv->sym = cp_sym_new();
	if (!srv->sym)
		goto fail;
	if (opts->credentials && !(srv->credentials = strdup(opts->credentials)))
		goto fail;
	err = start_daemon(srv, opts, &ss);
	if (err < 0)
		goto fail;
	*out = srv;
	return 0;
fail:
	cp_serve_stop(srv);
	return err;
}

int cp_serve_port(const struct cp_serve *srv)
{
	return srv->port;
}

void cp_serve_stop(struct cp_serve *srv)
{
	if (!srv)
		return;
	__atomic_store_n(&srv->stopping, 1, __ATOMIC_RELEASE);
	/*
	 * The profiles in flight end at their next look (at most CHECK_MS) and are written and
	 * sent: wait for those requests (boundedly: a slow client) before the daemon closes
	 * every connection.
	 */
	for (int i = 0; srv->daemon && i < STOP_WAIT_MS / 10 &&
			__atomic_load_n(&srv->active, __ATOMIC_ACQUIRE) > 0; i++) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
	}
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	cp_sym_free(srv->sym);
	if (srv->credentials) {
		explicit_bzero(srv->credentials, strlen(srv->credentials));
		free(srv->credentials);
	}
	pthread_mutex_destroy(&srv->probe_lock);
	free(srv);
}
