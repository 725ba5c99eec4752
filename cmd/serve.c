/* cprof serve: Go's pprof endpoints and Prometheus metrics over HTTP for running processes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "serve.h"
#include "util.h"

static const char usage_text[] =
	"usage: cprof serve [-p PID[,PID...]] [--listen ADDR:PORT] [--auth-file FILE]\n"
	"                   [--tls-cert FILE --tls-key FILE | --insecure-http] [--max-seconds N]\n"
	"\n"
	"Answer Go's net/http/pprof paths and Prometheus /metrics for the given processes, so\n"
	"that go tool pprof, Prometheus and continuous-profiling scrapers work on native code.\n"
	"\n"
	"  -p, --pid PID[,PID...]  the processes to serve (fixed at start; ?pid=N picks one)\n"
	"  -l, --listen ADDR:PORT  address to listen on (default 127.0.0.1:6060; port 0: any)\n"
	"      --auth-file FILE    HTTP Basic auth: one user:password line, mode 0600 or stricter\n"
	"      --tls-cert FILE     serve HTTPS with this PEM certificate...\n"
	"      --tls-key FILE      ...and this PEM key\n"
	"      --insecure-http     allow plain HTTP on a non-loopback address (with --auth-file)\n"
	"      --max-seconds N     cap on ?seconds= of profiles (default 300)\n"
	"  -h, --help              this help\n"
	"\n"
	"A non-loopback address needs --auth-file and either TLS or --insecure-http.\n"
	"\n"
	"Examples:\n"
	"  cprof serve -p 4242\n"
	"  go tool pprof -top 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'\n"
	"  curl 'http://127.0.0.1:6060/debug/pprof/goroutine?debug=2'\n"
	"  curl http://127.0.0.1:6060/metrics\n";

struct serve_options {
	const char *pid_arg;
	const char *listen;
	const char *auth_file;
	const char *tls_cert;
	const char *tls_key;
	bool insecure_http;
	int max_seconds;
};

/* Parse -p's "PID[,PID...]" into pids; none is not an error (no -p). */
static int parse_pids(const char *arg, int *pids, size_t *npids)
{
	*npids = 0;
	if (!arg)
		return 0;
	return cp_cmd_parse_pids("serve", arg, pids, CP_SERVE_MAX_TARGETS, npids);
}

static int parse_options(int argc, char **argv, struct serve_options *o)
{
	static const struct option long_options[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "auth-file", required_argument, NULL, 'A' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "insecure-http", no_argument, NULL, 'I' },
		{ "max-seconds", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long v;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":p:l:h", long_options, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cp_cmd_pid_option("serve", optarg, &o->pid_arg))
				return CP_EXIT_USAGE;
			break;
		case 'l': o->listen = optarg; break;
		case 'A': o->auth_file = optarg; break;
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 'I': o->insecure_http = true; break;
		case 'M':
			if (cp_parse_long(optarg, 1, 86400, &v) < 0) {
				cp_error("serve", "invalid --max-seconds '%s': want 1 to 86400",
					 optarg);
				return CP_EXIT_USAGE;
			}
			o->max_seconds = (int)v;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case ':':
			cp_error("serve", "option '%s' needs a value", argv[optind - 1]);
			return CP_EXIT_USAGE;
		default:
			cp_error("serve", "unknown option '%s'", argv[optind - 1]);
			cp_hint("run 'cprof serve --help'");
			return CP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cp_error("serve", "unexpected argument '%s'", argv[optind]);
		return CP_EXIT_USAGE;
	}
	if (!o->tls_cert != !o->tls_key) {
		cp_error("serve", "--tls-cert and --tls-key go together");
		return CP_EXIT_USAGE;
	}
	return 0;
}

/* The auth file: a regular file that only its owner may read or write, one user:password. */
static int read_auth_file(const char *path, char **credentials)
{
	struct stat st;
	char buf[1024], why[128];
	size_t len;
	int err;

	if (stat(path, &st) < 0) {
		cp_error(path, "cannot read auth file: %s", strerror(errno));
		return CP_EXIT_FAILURE;
	}
	if (!S_ISREG(st.st_mode)) {
		cp_error(path, "auth file is not a regular file");
		return CP_EXIT_FAILURE;
	}
	if (st.st_mode & 077) {
		cp_error(path, "auth file mode %04o lets others read it: refused",
			 (unsigned int)(st.st_mode & 07777));
		cp_hint("chmod 600 %s", path);
		return CP_EXIT_FAILURE;
	}
	err = cp_read_file(path, buf, sizeof(buf), &len);
	if (err < 0) {
		cp_error(path, "cannot read auth file: %s", strerror(-err));
		return CP_EXIT_FAILURE;
	}
	err = cp_serve_parse_credentials(buf, credentials, why, sizeof(why));
	explicit_bzero(buf, sizeof(buf));
	if (err < 0) {
		cp_error(path, "bad auth file: %s", err == -ENOMEM ? "out of memory" : why);
		return CP_EXIT_FAILURE;
	}
	return 0;
}

static int read_pem(const char *path, char **out)
{
	size_t len;
	int err = cp_read_file_alloc(path, 1u << 20, out, &len);

	if (err < 0) {
		cp_error(path, "cannot read: %s", strerror(-err));
		return CP_EXIT_FAILURE;
	}
	return 0;
}

/* The refusals of an exposed address: credentials, and TLS unless plain HTTP is asked for. */
static int check_exposure(const struct serve_options *o, bool loopback)
{
	if (loopback)
		return 0;
	if (!o->auth_file) {
		cp_error("serve", "listening on %s (not loopback) needs --auth-file", o->listen);
		cp_hint("or listen on 127.0.0.1 and reach it through ssh -L or kubectl "
			"port-forward");
		return CP_EXIT_USAGE;
	}
	if (!o->tls_cert && !o->insecure_http) {
		cp_error("serve", "listening on %s (not loopback) needs --tls-cert/--tls-key, or "
				  "--insecure-http to send credentials and profiles in clear",
			 o->listen);
		return CP_EXIT_USAGE;
	}
	return 0;
}

static void report_start_error(const struct serve_options *o, int err)
{
	if (err == -ENOTSUP)
		cp_error("serve", "this libmicrohttpd has no TLS support");
	else if (err == -ESRCH)
		cp_error("serve", "a target exited before serve started");
	else if (err == -EINVAL && o->tls_cert)
		cp_error("serve", "cannot listen on %s: bad address, or TLS certificate and key "
				  "rejected",
			 o->listen);
	else
		cp_error("serve", "cannot listen on %s: %s", o->listen, strerror(-err));
}

/* Where to point a browser or go tool pprof (the address given, loopback for "any"). */
static void print_address(const struct sockaddr_storage *ss, bool tls, int port)
{
	const char *scheme = tls ? "https" : "http";
	bool v6 = ss->ss_family == AF_INET6;
	const void *a = v6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr :
			     (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
	char host[INET6_ADDRSTRLEN] = "";

	inet_ntop(ss->ss_family, a, host, sizeof(host));
	if (!strcmp(host, "0.0.0.0"))
		strcpy(host, "127.0.0.1");
	else if (!strcmp(host, "::"))
		strcpy(host, "::1");
	cp_note("listening on %s://%s%s%s:%d/debug/pprof/", scheme, v6 ? "[" : "", host,
		v6 ? "]" : "", port);
	cp_note("try: go tool pprof -top '%s://%s%s%s:%d/debug/pprof/profile?seconds=10'", scheme,
		v6 ? "[" : "", host, v6 ? "]" : "", port);
}

int cmd_serve(int argc, char **argv)
{
	struct serve_options o = { .listen = "127.0.0.1:6060" };
	struct cp_serve_opts so = { 0 };
	struct cp_serve *srv = NULL;
	struct sockaddr_storage ss;
	char *credentials = NULL, *cert = NULL, *key = NULL;
	int pids[CP_SERVE_MAX_TARGETS], rc, err, sig;
	size_t npids = 0;
	sigset_t set, old;
	bool loopback;

	rc = parse_options(argc, argv, &o);
	if (rc)
		return rc < 0 ? CP_EXIT_OK : rc;
	if (cp_serve_parse_listen(o.listen, &ss, &loopback) < 0) {
		cp_error("serve", "invalid --listen '%s': want ADDR:PORT (127.0.0.1:6060, "
				  "[::1]:6060)",
			 o.listen);
		return CP_EXIT_USAGE;
	}
	rc = check_exposure(&o, loopback);
	if (rc)
		return rc;
	rc = parse_pids(o.pid_arg, pids, &npids);
	if (rc)
		return rc;
	if (o.auth_file && (rc = read_auth_file(o.auth_file, &credentials)))
		goto done;
	if (o.tls_cert && ((rc = read_pem(o.tls_cert, &cert)) || (rc = read_pem(o.tls_key, &key))))
		goto done;

	/* Blocked before the server's threads exist, so that they inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	signal(SIGPIPE, SIG_IGN);
	so = (struct cp_serve_opts){ .pids = pids, .npids = npids, .listen = o.listen,
				     .credentials = credentials, .tls_cert_pem = cert,
				     .tls_key_pem = key, .seconds_max = o.max_seconds };
	err = cp_serve_start(&so, &srv);
	if (err < 0) {
		report_start_error(&o, err);
		rc = CP_EXIT_FAILURE;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		goto done;
	}
	for (size_t i = 0; i < npids; i++)
		cp_note("serving pid %d", pids[i]);
	print_address(&ss, cert != NULL, cp_serve_port(srv));
	while (sigwait(&set, &sig) != 0)
		;
	cp_note("stopping (%s)", strsignal(sig));
	cp_serve_stop(srv);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rc = CP_EXIT_OK;
done:
	if (credentials) {
		explicit_bzero(credentials, strlen(credentials));
		free(credentials);
	}
	free(cert);
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
	return rc;
}
