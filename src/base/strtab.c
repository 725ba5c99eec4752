/* The string interner (see strtab.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "strtab.h"

struct strkey {
	const char *s;
	size_t len;
};

static bool str_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_strtab *t = ctx;
	const struct strkey *k = key;

	return strncmp(t->v[idx], k->s, k->len) == 0 && t->v[idx][k->len] == '\0';
}

int cp_strtab_init(struct cp_strtab *t, unsigned flags)
{
	memset(t, 0, sizeof(*t));
	t->flags = flags;
	return cp_strtab_intern(t, "") == 0 ? 0 : -ENOMEM;
}

void cp_strtab_release(struct cp_strtab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	cp_htab_release(&t->h);
	memset(t, 0, sizeof(*t));
}

size_t cp_utf8_len(const unsigned char *s)
{
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* A NUL fails this check, so a truncated sequence never reads past the string. */
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

/* A copy of s[0..len) with each byte that is not part of valid UTF-8 replaced by U+FFFD. */
static char *utf8_fix(const char *s, size_t len)
{
	char *out = malloc(3 * len + 1), *o = out;
	size_t i = 0;

	if (!out)
		return NULL;
	while (i < len) {
		size_t n = cp_utf8_len((const unsigned char *)s + i);

		if (n == 0 || i + n > len) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, s + i, n);
		o += n;
		i += n;
	}
	*o = '\0';
	return out;
}

static bool utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = cp_utf8_len((const unsigned char *)s + i);

		if (n == 0 || i + n > len)
			return false;
		i += n;
	}
	return true;
}

/* The key for s as the table stores it: whole, or cut to CP_STRTAB_UTF8_MAX under UTF8. */
static struct strkey key_of(const struct cp_strtab *t, const char *s)
{
	struct strkey k = { s ? s : "", 0 };

	if (!(t->flags & CP_STRTAB_UTF8)) {
		k.len = strlen(k.s);
		return k;
	}
	k.len = strnlen(k.s, CP_STRTAB_UTF8_MAX);
	/* Never cut a UTF-8 sequence in half: back up to the start of the last character. */
	if (k.len == CP_STRTAB_UTF8_MAX)
		while (k.len > 0 && ((unsigned char)k.s[k.len] & 0xc0) == 0x80)
			k.len--;
	return k;
}

int64_t cp_strtab_lookup(const struct cp_strtab *t, const char *s)
{
	struct strkey k = key_of(t, s);

	return cp_htab_find(&t->h, cp_hash_bytes(k.s, k.len, 0), str_eq, t, &k);
}

int64_t cp_strtab_intern(struct cp_strtab *t, const char *s)
{
	struct strkey k = key_of(t, s);
	char *fixed, *copy;
	uint32_t hash;
	int64_t idx;

	if ((t->flags & CP_STRTAB_UTF8) && !utf8_valid(k.s, k.len)) {
		fixed = utf8_fix(k.s, k.len);
		if (!fixed)
			return -ENOMEM;
		idx = cp_strtab_intern(t, fixed);
		free(fixed);
		return idx;
	}
	hash = cp_hash_bytes(k.s, k.len, 0);
	idx = cp_htab_find(&t->h, hash, str_eq, t, &k);
	if (idx >= 0)
		return idx;
	if (t->n >= CP_STRTAB_MAX_ENTRIES)
		return -E2BIG;
	if (cp_grow((void **)&t->v, &t->alloc, t->n + 1, sizeof(*t->v)) < 0)
		return -ENOMEM;
	copy = strndup(k.s, k.len);
	if (!copy)
		return -ENOMEM;
	if (cp_htab_insert(&t->h, hash, (uint32_t)t->n) < 0) {
		free(copy);
		return -ENOMEM;
	}
	t->v[t->n] = copy;
	return (int64_t)t->n++;
}

const char *cp_strtab_str(struct cp_strtab *t, const char *s)
{
	int64_t idx = cp_strtab_intern(t, s);

	return idx < 0 ? NULL : t->v[idx];
}
