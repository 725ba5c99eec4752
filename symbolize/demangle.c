/* Demangling of C++ (Itanium ABI, through libstdc++) and Rust symbol names (legacy and v0). */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "demangle_rust.h"
#include "symbolize.h"
#include "util.h"

/*
 * libstdc++'s demangler. Declared here rather than through <cxxabi.h> because this is C; the
 * ABI of this function has been stable since GCC 3.
 */
char *__cxa_demangle(const char *mangled, char *out, size_t *len, int *status);

/* Mangled names come from other people's binaries: refuse absurd ones instead of working. */
#define MAX_MANGLED_LEN 8192

/* Rust's legacy escapes inside an identifier: "$LT$" is '<' and so on. */
/* Output buffer sized up front: a demangled Rust name is at most twice its mangled form. */
struct outbuf {
	char *buf;
	size_t len;
	size_t cap;
};

static void out_add(struct outbuf *o, const char *s, size_t len)
{
	if (o->len + len >= o->cap)	/* cannot happen given the sizing; be safe anyway */
		len = o->cap - o->len - 1;
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	o->buf[o->len] = '\0';
}

static void out_addc(struct outbuf *o, char c)
{
	out_add(o, &c, 1);
}

static const struct {
	const char *code;
	char c;
} rust_escapes[] = {
	{ "SP", '@' }, { "BP", '*' }, { "RF", '&' }, { "LT", '<' },
	{ "GT", '>' }, { "LP", '(' }, { "RP", ')' }, { "C", ',' },
};

static bool is_rust_hash(const char *s, size_t len)
{
	if (len != 17 || s[0] != 'h')
		return false;
	for (size_t i = 1; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Append one identifier with its escapes decoded. false when the escapes are not Rust's. */
static bool rust_add_ident(struct outbuf *sb, const char *s, size_t len)
{
	size_t i = 0;

	/* An identifier that starts with '$' is written "_$..." so that it stays a C name. */
	if (len >= 2 && s[0] == '_' && s[1] == '$')
		i = 1;
	while (i < len) {
		if (s[i] == '.') {
			if (i + 1 < len && s[i + 1] == '.') {
				out_add(sb, "::", 2);
				i += 2;
			} else {
				out_addc(sb, '.');
				i++;
			}
			continue;
		}
		if (s[i] != '$') {
			out_addc(sb, s[i++]);
			continue;
		}
		const char *end = memchr(s + i + 1, '$', len - i - 1);
		if (!end)
			return false;
		size_t clen = (size_t)(end - (s + i + 1));
		const char *code = s + i + 1;
		bool done = false;

		for (size_t k = 0; k < CP_ARRAY_SIZE(rust_escapes); k++) {
			if (strlen(rust_escapes[k].code) == clen &&
			    !memcmp(rust_escapes[k].code, code, clen)) {
				out_addc(sb, rust_escapes[k].c);
				done = true;
				break;
			}
		}
		if (!done && clen >= 2 && clen <= 7 && code[0] == 'u') {
			/* $uXX$: a code point in hex; only ASCII is printed as itself. */
			unsigned long cpt = 0;

			for (size_t k = 1; k < clen; k++) {
				if (!isxdigit((unsigned char)code[k]))
					return false;
				cpt = cpt * 16 + (unsigned long)(isdigit((unsigned char)code[k]) ?
						code[k] - '0' : (tolower((unsigned char)code[k]) - 'a' + 10));
			}
			if (cpt >= 0x20 && cpt < 0x7f)
				out_addc(sb, (char)cpt);
			else
				out_add(sb, s + i, clen + 2);
			done = true;
		}
		if (!done)
			return false;
		i += clen + 2;
	}
	return true;
}

/*
 * Rust legacy mangling is Itanium-shaped: _ZN <len><ident>... 17h<16 hex digits> E, maybe
 * followed by a ".llvm.NNN" suffix. The last identifier is a hash that users never want to
 * see, so it is dropped. Returns NULL when s is not such a name.
 */
static char *rust_legacy_demangle(const char *s)
{
	struct outbuf sb;
	const char *p;
	bool hashed = false;
	size_t nident = 0;

	if (strncmp(s, "_ZN", 3) != 0)
		return NULL;
	sb.cap = 2 * strlen(s) + 1;
	sb.len = 0;
	sb.buf = malloc(sb.cap);
	if (!sb.buf)
		return NULL;
	sb.buf[0] = '\0';
	p = s + 3;
	while (*p && *p != 'E') {
		size_t len = 0;

		if (!isdigit((unsigned char)*p))
			goto fail;
		while (isdigit((unsigned char)*p)) {
			len = len * 10 + (size_t)(*p - '0');
			if (len > MAX_MANGLED_LEN)
				goto fail;
			p++;
		}
		if (len == 0 || strnlen(p, len) < len)
			goto fail;
		if (is_rust_hash(p, len) && p[len] == 'E') {
			hashed = true;
		} else {
			if (nident++)
				out_add(&sb, "::", 2);
			if (!rust_add_ident(&sb, p, len))
				goto fail;
		}
		p += len;
	}
	/* Without the hash this is a C++ name that happens to look like this: not ours. */
	if (*p != 'E' || !hashed || nident == 0)
		goto fail;
	p++;
	if (*p && *p != '.')
		goto fail;
	return sb.buf;
fail:
	free(sb.buf);
	return NULL;
}

char *cp_sym_demangle(const char *s)
{
	char *out;
	int status = 0;

	if (!s || strnlen(s, MAX_MANGLED_LEN + 1) > MAX_MANGLED_LEN)
		return NULL;
	if (strncmp(s, "_R", 2) == 0)
		return cp_sym_demangle_rust_v0(s);
	if (strncmp(s, "_Z", 2) != 0)
		return NULL;
	out = rust_legacy_demangle(s);
	if (out)
		return out;
	out = __cxa_demangle(s, NULL, NULL, &status);
	if (status != 0) {
		free(out);
		return NULL;
	}
	return out;
}
