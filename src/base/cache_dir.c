/* Where the on-disk caches live (see cache_dir.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache_dir.h"

int cp_cache_mkdir(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cp_cache_dir(char *buf, size_t size)
{
	const char *env = getenv("CPROF_CACHE_DIR");
	int n;

	if (env) {
		if (!*env)
			return -ENOENT;
		n = snprintf(buf, size, "%s", env);
	} else if ((env = getenv("XDG_CACHE_HOME")) && *env == '/') {
		n = snprintf(buf, size, "%s/cprof", env);
	} else if ((env = getenv("HOME")) && *env == '/') {
		n = snprintf(buf, size, "%s/.cache/cprof", env);
	} else {
		return -ENOENT;
	}
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cp_cache_path(char *buf, size_t size, const char *sub, const char *name, bool create_dir)
{
	size_t dlen;
	int n, err = cp_cache_dir(buf, size);

	if (err < 0)
		return err;
	dlen = strlen(buf);
	if (sub) {
		n = snprintf(buf + dlen, size - dlen, "/%s", sub);
		if (n < 0 || (size_t)n >= size - dlen)
			return -ENAMETOOLONG;
		dlen += (size_t)n;
	}
	if (create_dir && (err = cp_cache_mkdir(buf)) < 0)
		return err;
	n = snprintf(buf + dlen, size - dlen, "/%s", name);
	return n < 0 || (size_t)n >= size - dlen ? -ENAMETOOLONG : 0;
}
