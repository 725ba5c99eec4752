/* Rust v0 symbol demangling ("_R..."), after the grammar in rustc's symbol-mangling v0 docs. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "demangle_rust.h"

/*
 * Limits for hostile names: the nesting the parser follows (backreferences included), the
 * length of the demangled text, and the parse steps taken (backreferences can make a short
 * name print exponentially long: every step either prints or consumes input, so the output
 * cap bounds the work; the step cap bounds it again without that argument).
 */
#define MAX_DEPTH 200
#define MAX_OUT 16384
#define MAX_STEPS (1u << 20)
/* Code points a punycode identifier may decode to. */
#define MAX_PUNY 256

struct v0 {
	const char *in;		/* the name after "_R": backreferences count from here */
	size_t len;
	size_t pos;
	char *out;		/* NULL until something is printed */
	size_t olen;
	size_t ocap;
	unsigned depth;
	unsigned steps;
	unsigned skip;		/* > 0: parse without printing (impl paths, instantiating crate) */
	uint64_t bound_lt;	/* lifetimes bound by the enclosing for<...> binders */
};

struct ident {
	const char *ascii;	/* the part before the punycode delimiter, or all of it */
	size_t nascii;
	const char *puny;	/* the punycode part ("u" identifiers), NULL when none */
	size_t npuny;
};

static bool path(struct v0 *d, bool in_value);
static bool type(struct v0 *d);
static bool konst(struct v0 *d);

static char peek(const struct v0 *d)
{
	return d->pos < d->len ? d->in[d->pos] : '\0';
}

static bool eat(struct v0 *d, char c)
{
	if (peek(d) != c || c == '\0')
		return false;
	d->pos++;
	return true;
}

static char next(struct v0 *d)
{
	return d->pos < d->len ? d->in[d->pos++] : '\0';
}

static bool emit(struct v0 *d, const char *s, size_t n)
{
	if (d->skip)
		return true;
	if (d->olen + n + 1 > MAX_OUT)
		return false;
	if (d->olen + n + 1 > d->ocap) {
		size_t cap = d->ocap ? d->ocap : 2 * d->len + 16;	/* most names fit at once */
		char *p;

		while (cap < d->olen + n + 1)
			cap *= 2;
		if (cap > MAX_OUT)
			cap = MAX_OUT;
		p = realloc(d->out, cap);
		if (!p)
			return false;
		d->out = p;
		d->ocap = cap;
	}
	memcpy(d->out + d->olen, s, n);
	d->olen += n;
	d->out[d->olen] = '\0';
	return true;
}

static bool emits(struct v0 *d, const char *s)
{
	return emit(d, s, strlen(s));
}

static bool emit_u64(struct v0 *d, uint64_t v)
{
	char buf[24];
	size_t i = sizeof(buf);

	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return emit(d, buf + i, sizeof(buf) - i);
}

/* Enter one level of nesting; false past the depth or step limit. leave() undoes it. */
static bool enter(struct v0 *d)
{
	if (d->depth >= MAX_DEPTH || ++d->steps > MAX_STEPS)
		return false;
	d->depth++;
	return true;
}

static bool leave(struct v0 *d, bool ok)
{
	d->depth--;
	return ok;
}

/* base-62-number: "_" is 0, digits then "_" are their value plus one. */
static bool base62(struct v0 *d, uint64_t *v)
{
	uint64_t x = 0;

	if (eat(d, '_')) {
		*v = 0;
		return true;
	}
	for (;;) {
		char c = next(d);
		unsigned digit;

		if (c == '_')
			break;
		if (c >= '0' && c <= '9')
			digit = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'z')
			digit = 10 + (unsigned)(c - 'a');
		else if (c >= 'A' && c <= 'Z')
			digit = 36 + (unsigned)(c - 'A');
		else
			return false;
		if (x > (UINT64_MAX - digit) / 62)
			return false;
		x = x * 62 + digit;
	}
	if (x == UINT64_MAX)
		return false;
	*v = x + 1;
	return true;
}

/* decimal-number: "0", or digits without a leading zero; capped at the name's length. */
static bool decimal(struct v0 *d, uint64_t *v)
{
	uint64_t x = 0;
	char c = peek(d);

	if (c < '0' || c > '9')
		return false;
	d->pos++;
	if (c == '0') {
		*v = 0;
		return true;
	}
	x = (uint64_t)(c - '0');
	while ((c = peek(d)) >= '0' && c <= '9') {
		x = x * 10 + (uint64_t)(c - '0');
		if (x > d->len)
			return false;
		d->pos++;
	}
	*v = x;
	return true;
}

/* disambiguator: absent is 0, "s" base-62-number is that number plus one. */
static bool disambiguator(struct v0 *d, uint64_t *v)
{
	uint64_t x;

	if (!eat(d, 's')) {
		*v = 0;
		return true;
	}
	if (!base62(d, &x) || x == UINT64_MAX)
		return false;
	*v = x + 1;
	return true;
}

static bool is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* undisambiguated-identifier: ["u"] decimal ["_"] bytes, which are letters, digits and '_'. */
static bool ident_raw(struct v0 *d, struct ident *id)
{
	bool puny = eat(d, 'u');
	uint64_t n;
	const char *s;

	if (!decimal(d, &n))
		return false;
	eat(d, '_');
	if (n > d->len - d->pos)
		return false;
	s = d->in + d->pos;
	d->pos += n;
	for (size_t i = 0; i < n; i++)
		if (!is_ident_char(s[i]))
			return false;
	memset(id, 0, sizeof(*id));
	if (!puny) {
		id->ascii = s;
		id->nascii = n;
		return true;
	}
	/* Punycode with '_' for '-': the basic code points end at the last '_'. */
	const char *us = NULL;

	for (size_t i = n; i > 0; i--) {
		if (s[i - 1] == '_') {
			us = s + i - 1;
			break;
		}
	}
	if (us) {
		id->ascii = s;
		id->nascii = (size_t)(us - s);
		id->puny = us + 1;
		id->npuny = n - id->nascii - 1;
	} else {
		id->ascii = s;
		id->puny = s;
		id->npuny = n;
	}
	return id->npuny > 0;
}

static int puny_digit(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '0' && c <= '9')
		return 26 + (c - '0');
	return -1;
}

static uint32_t puny_adapt(uint32_t delta, uint32_t npoints, bool first)
{
	uint32_t k = 0;

	delta = first ? delta / 700 : delta / 2;
	delta += delta / npoints;
	while (delta > ((36 - 1) * 26) / 2) {
		delta /= 36 - 1;
		k += 36;
	}
	return k + (36 * delta) / (delta + 38);
}

/* RFC 3492 decoding of id into code points cp (at most MAX_PUNY); the count, or -1. */
static int puny_decode(const struct ident *id, uint32_t *cp)
{
	uint32_t n = 128, bias = 72, i = 0, len = 0;
	size_t p = 0;

	if (id->nascii > MAX_PUNY)
		return -1;
	for (size_t k = 0; k < id->nascii; k++)
		cp[len++] = (unsigned char)id->ascii[k];
	while (p < id->npuny) {
		uint32_t old_i = i, w = 1;

		for (uint32_t k = 36;; k += 36) {
			int digit = p < id->npuny ? puny_digit(id->puny[p++]) : -1;
			uint32_t t;

			if (digit < 0 || (uint32_t)digit > (UINT32_MAX - i) / w)
				return -1;
			i += (uint32_t)digit * w;
			t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
			if ((uint32_t)digit < t)
				break;
			if (w > UINT32_MAX / (36 - t))
				return -1;
			w *= 36 - t;
		}
		if (len >= MAX_PUNY)
			return -1;
		bias = puny_adapt(i - old_i, len + 1, old_i == 0);
		if (i / (len + 1) > UINT32_MAX - n)
			return -1;
		n += i / (len + 1);
		i %= len + 1;
		if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff))
			return -1;
		memmove(cp + i + 1, cp + i, (len - i) * sizeof(*cp));
		cp[i++] = n;
		len++;
	}
	return (int)len;
}

static bool emit_utf8(struct v0 *d, uint32_t c)
{
	char b[4];

	if (c < 0x80) {
		b[0] = (char)c;
		return emit(d, b, 1);
	}
	if (c < 0x800) {
		b[0] = (char)(0xc0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3f));
		return emit(d, b, 2);
	}
	if (c < 0x10000) {
		b[0] = (char)(0xe0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (char)(0x80 | (c & 0x3f));
		return emit(d, b, 3);
	}
	b[0] = (char)(0xf0 | (c >> 18));
	b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	b[3] = (char)(0x80 | (c & 0x3f));
	return emit(d, b, 4);
}

/* An identifier as UTF-8; punycode that does not decode is shown as "punycode{...}". */
static bool emit_ident(struct v0 *d, const struct ident *id)
{
	uint32_t cp[MAX_PUNY];
	int n;

	if (!id->puny)
		return emit(d, id->ascii, id->nascii);
	if (d->skip)
		return true;
	n = puny_decode(id, cp);
	if (n < 0) {
		size_t whole = (size_t)(id->puny + id->npuny - id->ascii);

		return emits(d, "punycode{") && emit(d, id->ascii, whole) && emits(d, "}");
	}
	for (int k = 0; k < n; k++)
		if (!emit_utf8(d, cp[k]))
			return false;
	return true;
}

static bool ident_empty(const struct ident *id)
{
	return id->nascii == 0 && !id->puny;
}

/*
 * backref: "B" base-62-number, an offset into the name that lies before the "B". Followed
 * with fn (which must read one item there) unless printing is off: skipped text needs only
 * the reference itself read.
 */
static bool backref(struct v0 *d, bool (*fn)(struct v0 *, void *), void *arg)
{
	size_t start = d->pos;
	uint64_t to;
	size_t saved;
	bool ok;

	if (!eat(d, 'B') || !base62(d, &to) || to >= start)
		return false;
	if (d->skip)
		return true;
	if (!enter(d))
		return false;
	saved = d->pos;
	d->pos = (size_t)to;
	ok = fn(d, arg);
	d->pos = saved;
	return leave(d, ok);
}

static bool lifetime(struct v0 *d, uint64_t lt)
{
	uint64_t depth;

	if (lt == 0)
		return emits(d, "'_");
	if (lt > d->bound_lt)
		return false;
	depth = d->bound_lt - lt;
	if (depth < 26) {
		char s[2] = { '\'', (char)('a' + depth) };

		return emit(d, s, 2);
	}
	return emits(d, "'_") && emit_u64(d, depth);
}

/* binder: "G" base-62-number binds that many plus one lifetimes: "for<'a, 'b> ". */
static bool binder(struct v0 *d)
{
	uint64_t n;

	if (!eat(d, 'G'))
		return true;
	if (!base62(d, &n) || n >= MAX_DEPTH || !emits(d, "for<"))
		return false;
	for (uint64_t i = 0; i <= n; i++) {
		d->bound_lt++;
		if ((i && !emits(d, ", ")) || !lifetime(d, 1))
			return false;
	}
	return emits(d, "> ");
}

static bool generic_arg(struct v0 *d)
{
	uint64_t lt;

	if (eat(d, 'L'))
		return base62(d, &lt) && lifetime(d, lt);
	if (eat(d, 'K'))
		return konst(d);
	return type(d);
}

/* {generic-arg} "E", printed as "<a, b>" (the '<' already printed unless open). */
static bool generic_args(struct v0 *d, bool close)
{
	for (unsigned i = 0; !eat(d, 'E'); i++) {
		if (!peek(d) || (i && !emits(d, ", ")) || !generic_arg(d))
			return false;
	}
	return !close || emits(d, ">");
}

static bool path_value_cb(struct v0 *d, void *arg)
{
	(void)arg;
	return path(d, true);
}

static bool path_type_cb(struct v0 *d, void *arg)
{
	(void)arg;
	return path(d, false);
}

static bool skipped_path(struct v0 *d)
{
	bool ok;

	d->skip++;
	ok = path(d, false);
	d->skip--;
	return ok;
}

/* Namespace-qualified item: "::name", or "::{closure#N}", "::{shim:name#N}" for special ones. */
static bool nested(struct v0 *d, bool in_value)
{
	char ns = next(d);
	uint64_t dis;
	struct ident id;

	if (!((ns >= 'a' && ns <= 'z') || (ns >= 'A' && ns <= 'Z')))
		return false;
	if (!path(d, in_value) || !disambiguator(d, &dis) || !ident_raw(d, &id))
		return false;
	if (ns >= 'a' && ns <= 'z')
		return ident_empty(&id) || (emits(d, "::") && emit_ident(d, &id));
	if (!emits(d, "::{"))
		return false;
	if (ns == 'C' ? !emits(d, "closure") : ns == 'S' ? !emits(d, "shim") : !emit(d, &ns, 1))
		return false;
	if (!ident_empty(&id) && (!emits(d, ":") || !emit_ident(d, &id)))
		return false;
	return emits(d, "#") && emit_u64(d, dis) && emits(d, "}");
}

static bool path_inner(struct v0 *d, bool in_value)
{
	uint64_t dis;
	struct ident id;

	switch (next(d)) {
	case 'C':	/* crate root; its disambiguator is the crate hash, not shown */
		return disambiguator(d, &dis) && ident_raw(d, &id) && emit_ident(d, &id);
	case 'M':	/* inherent impl: <Type> */
		return disambiguator(d, &dis) && skipped_path(d) && emits(d, "<") && type(d) &&
		       emits(d, ">");
	case 'X':	/* trait impl: <Type as Trait> */
		if (!disambiguator(d, &dis) || !skipped_path(d))
			return false;
		/* fall through */
	case 'Y':	/* trait definition: <Type as Trait> */
		return emits(d, "<") && type(d) && emits(d, " as ") && path(d, false) &&
		       emits(d, ">");
	case 'N':
		return nested(d, in_value);
	case 'I':	/* generic arguments; "::<" in expressions */
		return path(d, in_value) && emits(d, in_value ? "::<" : "<") &&
		       generic_args(d, true);
	case 'B':
		d->pos--;
		return backref(d, in_value ? path_value_cb : path_type_cb, NULL);
	default:
		return false;
	}
}

static bool path(struct v0 *d, bool in_value)
{
	return enter(d) && leave(d, path_inner(d, in_value));
}

/* Basic types by their tag letter. */
static const char *basic_type(char c)
{
	static const char *const names[26] = {
		['a' - 'a'] = "i8",   ['b' - 'a'] = "bool",  ['c' - 'a'] = "char", ['d' - 'a'] = "f64",
		['e' - 'a'] = "str",  ['f' - 'a'] = "f32",   ['h' - 'a'] = "u8",   ['i' - 'a'] = "isize",
		['j' - 'a'] = "usize", ['l' - 'a'] = "i32",  ['m' - 'a'] = "u32",  ['n' - 'a'] = "i128",
		['o' - 'a'] = "u128", ['p' - 'a'] = "_",     ['s' - 'a'] = "i16",  ['t' - 'a'] = "u16",
		['u' - 'a'] = "()",   ['v' - 'a'] = "...",   ['x' - 'a'] = "i64",  ['y' - 'a'] = "u64",
		['z' - 'a'] = "!",
	};

	return c >= 'a' && c <= 'z' ? names[c - 'a'] : NULL;
}

/* fn-sig: [binder] ["U"] ["K" abi] {type} "E" type. */
static bool fn_sig(struct v0 *d)
{
	uint64_t saved = d->bound_lt;
	bool ok = binder(d);

	if (ok && eat(d, 'U'))
		ok = emits(d, "unsafe ");
	if (ok && eat(d, 'K')) {
		struct ident abi;

		ok = emits(d, "extern \"");
		if (ok && eat(d, 'C')) {
			ok = emits(d, "C");
		} else if (ok && (ok = ident_raw(d, &abi) && !abi.puny)) {
			/* '-' in an ABI name ("system-unwind") is mangled as '_'. */
			for (size_t i = 0; ok && i < abi.nascii; i++)
				ok = emit(d, abi.ascii[i] == '_' ? "-" : abi.ascii + i, 1);
		}
		ok = ok && emits(d, "\" ");
	}
	ok = ok && emits(d, "fn(");
	for (unsigned i = 0; ok && !eat(d, 'E'); i++)
		ok = peek(d) && (!i || emits(d, ", ")) && type(d);
	ok = ok && emits(d, ")");
	if (ok && !eat(d, 'u'))
		ok = emits(d, " -> ") && type(d);
	d->bound_lt = saved;
	return ok;
}

/* A trait path whose generic arguments stay open for associated type bindings. */
static bool dyn_trait_path(struct v0 *d, void *open)
{
	*(bool *)open = false;
	if (peek(d) == 'B')
		return backref(d, dyn_trait_path, open);
	if (!eat(d, 'I'))
		return path(d, false);
	if (!enter(d))
		return false;
	*(bool *)open = true;
	return leave(d, path(d, false) && emits(d, "<") && generic_args(d, false));
}

/* dyn-bounds: [binder] {path {"p" name type}} "E", then the object lifetime. */
static bool dyn_bounds(struct v0 *d)
{
	uint64_t saved = d->bound_lt, lt;
	bool ok = emits(d, "dyn ") && binder(d);

	for (unsigned i = 0; ok && !eat(d, 'E'); i++) {
		bool open = false;

		ok = peek(d) && (!i || emits(d, " + ")) && dyn_trait_path(d, &open);
		while (ok && eat(d, 'p')) {
			struct ident name;

			ok = emits(d, open ? ", " : "<") && ident_raw(d, &name) &&
			     emit_ident(d, &name) && emits(d, " = ") && type(d);
			open = true;
		}
		if (ok && open)
			ok = emits(d, ">");
	}
	d->bound_lt = saved;
	if (!ok || !eat(d, 'L') || !base62(d, &lt))
		return false;
	return lt == 0 || (emits(d, " + ") && lifetime(d, lt));
}

static bool type_cb(struct v0 *d, void *arg)
{
	(void)arg;
	return type(d);
}

static bool type_inner(struct v0 *d)
{
	char c = next(d);
	const char *basic = basic_type(c);
	uint64_t lt;

	if (basic)
		return emits(d, basic);
	switch (c) {
	case 'R':
	case 'Q':
		if (!emits(d, "&"))
			return false;
		if (eat(d, 'L')) {
			if (!base62(d, &lt))
				return false;
			if (lt && (!lifetime(d, lt) || !emits(d, " ")))
				return false;
		}
		return (c == 'R' || emits(d, "mut ")) && type(d);
	case 'P':
		return emits(d, "*const ") && type(d);
	case 'O':
		return emits(d, "*mut ") && type(d);
	case 'A':
		return emits(d, "[") && type(d) && emits(d, "; ") && konst(d) && emits(d, "]");
	case 'S':
		return emits(d, "[") && type(d) && emits(d, "]");
	case 'T': {
		unsigned i;

		if (!emits(d, "("))
			return false;
		for (i = 0; !eat(d, 'E'); i++)
			if (!peek(d) || (i && !emits(d, ", ")) || !type(d))
				return false;
		return (i != 1 || emits(d, ",")) && emits(d, ")");
	}
	case 'F':
		return fn_sig(d);
	case 'D':
		return dyn_bounds(d);
	case 'B':
		d->pos--;
		return backref(d, type_cb, NULL);
	default:
		d->pos--;
		return path(d, false);
	}
}

static bool type(struct v0 *d)
{
	return enter(d) && leave(d, type_inner(d));
}

/* The hex digits of const-data up to "_", as a number (only when it fits in 64 bits). */
static bool const_hex(struct v0 *d, const char **digits, size_t *n, uint64_t *v, bool *fits)
{
	*digits = d->in + d->pos;
	*n = 0;
	*v = 0;
	*fits = true;
	for (char c; (c = next(d)) != '_'; (*n)++) {
		unsigned x;

		if (c >= '0' && c <= '9')
			x = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x = 10 + (unsigned)(c - 'a');
		else
			return false;
		if (*v >> 60)
			*fits = false;
		*v = (*v << 4) | x;
	}
	/* Zero is "0_"; other values have no leading zeros. */
	return *n > 0 && (*n == 1 || **digits != '0');
}

static bool const_char(struct v0 *d, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char buf[16];
	int n = 0;

	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return false;
	switch (v) {
	case '\'': return emits(d, "'\\''");
	case '\\': return emits(d, "'\\\\'");
	case '\t': return emits(d, "'\\t'");
	case '\r': return emits(d, "'\\r'");
	case '\n': return emits(d, "'\\n'");
	default: break;
	}
	if (v >= 0x20 && v < 0x7f) {
		char s[3] = { '\'', (char)v, '\'' };

		return emit(d, s, 3);
	}
	for (uint64_t x = v; x; x >>= 4)
		buf[n++] = hex[x & 15];
	if (!emits(d, "'\\u{"))
		return false;
	if (!n && !emits(d, "0"))
		return false;
	while (n)
		if (!emit(d, &buf[--n], 1))
			return false;
	return emits(d, "}'");
}

static bool konst_cb(struct v0 *d, void *arg)
{
	(void)arg;
	return konst(d);
}

/* const: "p" (a placeholder), a backref, or an integer, bool or char type and its value. */
static bool konst_inner(struct v0 *d)
{
	char t = next(d);
	const char *digits;
	size_t n;
	uint64_t v;
	bool neg = false, fits;

	if (t == 'p')
		return emits(d, "_");
	if (t == 'B') {
		d->pos--;
		return backref(d, konst_cb, NULL);
	}
	if (t == '\0' || !strchr("hmtyojalsxnibc", t))
		return false;
	if (strchr("alsxni", t))
		neg = eat(d, 'n');
	if (!const_hex(d, &digits, &n, &v, &fits))
		return false;
	if (t == 'b') {
		if (!fits || v > 1)
			return false;
		return emits(d, v ? "true" : "false");
	}
	if (t == 'c')
		return fits && const_char(d, v);
	if (neg && !emits(d, "-"))
		return false;
	if (fits)
		return emit_u64(d, v);
	return emits(d, "0x") && emit(d, digits, n);
}

static bool konst(struct v0 *d)
{
	return enter(d) && leave(d, konst_inner(d));
}

char *cp_sym_demangle_rust_v0(const char *s)
{
	struct v0 d;

	if (!s || strncmp(s, "_R", 2) != 0)
		return NULL;
	memset(&d, 0, sizeof(d));
	d.in = s + 2;
	d.len = strlen(d.in);
	/* A leading decimal number is an encoding version newer than v0. */
	if (d.len == 0 || (d.in[0] >= '0' && d.in[0] <= '9'))
		return NULL;
	if (!path(&d, true))
		goto fail;
	/* The instantiating crate, not shown. */
	if (d.pos < d.len && d.in[d.pos] >= 'A' && d.in[d.pos] <= 'Z' && !skipped_path(&d))
		goto fail;
	/* A vendor suffix (".llvm.1234"), dropped. */
	if (d.pos < d.len && d.in[d.pos] != '.' && d.in[d.pos] != '$')
		goto fail;
	if (!d.out)
		goto fail;
	return d.out;
fail:
	free(d.out);
	return NULL;
}
