/* The checks of cprof serve that need no server: parameters, listen address, Host, credentials. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "serve_internal.h"
#include "util.h"

int cp_serve_param_int(const char *name, const char *value, int def, int min, int max, int *out,
		       char *why, size_t size)
{
	long v;

	if (!value || !*value) {
		*out = def;
		return 0;
	}
	if (cp_parse_long(value, min, max, &v) < 0) {
		snprintf(why, size, "bad %s '%.32s': want an integer from %d to %d", name, value, min,
			 max);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

int cp_serve_param_seconds(const char *value, int def, int max, int *out, char *why,
			   size_t size)
{
	long v;

	if (!value || !*value) {
		*out = def < max ? def : max;
		return 0;
	}
	if (cp_parse_long(value, 1, 1L << 30, &v) < 0) {
		snprintf(why, size, "bad seconds '%.32s': want a whole number of seconds, 1 or more",
			 value);
		return -EINVAL;
	}
	if (v > max) {
		snprintf(why, size, "seconds %ld exceeds the limit of %d (serve --max-seconds)", v,
			 max);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

int cp_serve_parse_listen(const char *s, struct sockaddr_storage *ss, bool *loopback)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[64];
	const char *colon, *port;
	size_t hl;
	long p;

	if (!s)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hl);
		host[hl] = 0;
		port = end + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hl);
		host[hl] = 0;
		port = colon + 1;
		if (!*host)
			strcpy(host, "0.0.0.0");
		else if (!strcmp(host, "localhost"))
			strcpy(host, "127.0.0.1");
	}
	if (cp_parse_long(port, 0, 65535, &p) < 0)
		return -EINVAL;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		return 0;
	}
	return -EINVAL;
}

/* The host part of a Host header ("example:6060" -> "example", "[::1]:6060" -> "::1"). */
static int host_part(const char *host, char *buf, size_t size)
{
	const char *end;
	size_t n;

	if (*host == '[') {
		end = strchr(host, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		host++;
	} else {
		end = strchr(host, ':');
		if (!end)
			end = host + strlen(host);
	}
	n = (size_t)(end - host);
	if (n == 0 || n >= size)
		return -EINVAL;
	memcpy(buf, host, n);
	buf[n] = 0;
	return 0;
}

bool cp_serve_host_allowed(const char *host, const char *listen_host, bool any_host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char h[256];

	if (!host || host_part(host, h, sizeof(h)) < 0)
		return false;
	if (any_host)
		return true;
	if (!strcasecmp(h, "localhost") || !strcasecmp(h, listen_host))
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, h, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

int cp_serve_parse_credentials(const char *text, char **out, char *why, size_t size)
{
	size_t n = strlen(text);
	const char *colon;

	if (n && text[n - 1] == '\n')
		n--;
	if (n && text[n - 1] == '\r')
		n--;
	if (memchr(text, '\n', n) || memchr(text, '\r', n)) {
		snprintf(why, size, "more than one line: want one user:password line");
		return -EINVAL;
	}
	colon = memchr(text, ':', n);
	if (!colon || colon == text) {
		snprintf(why, size, "want one user:password line");
		return -EINVAL;
	}
	if (colon == text + n - 1) {
		snprintf(why, size, "empty password: want one user:password line");
		return -EINVAL;
	}
	*out = strndup(text, n);
	return *out ? 0 : -ENOMEM;
}

bool cp_serve_credentials_match(const char *expected, const char *user, const char *pass)
{
	size_t n = strlen(expected), ul = user ? strlen(user) : 0, pl = pass ? strlen(pass) : 0;
	size_t given = ul + 1 + pl;
	volatile unsigned char diff = (unsigned char)(!user || !pass || given != n);

	/* Every byte of expected is compared, whatever differs first: no early exit. */
	for (size_t i = 0; i < n; i++) {
		unsigned char g;

		if (i < ul)
			g = (unsigned char)user[i];
		else if (i == ul)
			g = ':';
		else if (i - ul - 1 < pl)
			g = (unsigned char)pass[i - ul - 1];
		else
			g = 0;
		diff |= g ^ (unsigned char)expected[i];
	}
	return diff == 0;
}
