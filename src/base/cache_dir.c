/* Where the on-disk caches live, and whether they can be trusted (see cache_dir.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_dir.h"

/* Say why path[0..len) is not trusted ("PATH: WHY"); -EPERM. */
__attribute__((format(printf, 5, 6)))
static int untrusted(char *why, size_t size, const char *path, size_t len, const char *fmt, ...)
{
	if (why && size) {
		int n = snprintf(why, size, "%.*s: ", (int)(len ? len : 1), len ? path : "/");
		va_list ap;

		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < size)
			vsnprintf(why + n, size - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EPERM;
}

/* Whether st, the directory path[0..len), may hold the cache (own: it is the cache's). */
static int check_dir(const struct stat *st, bool own, const char *path, size_t len, char *why,
		     size_t size)
{
	uid_t me = geteuid();

	if (!S_ISDIR(st->st_mode))
		return untrusted(why, size, path, len, "not a directory");
	if (own && st->st_uid != me)
		return untrusted(why, size, path, len, "owned by uid %lu, not by the effective user",
				 (unsigned long)st->st_uid);
	if (st->st_uid != me && st->st_uid != 0)
		return untrusted(why, size, path, len, "owned by uid %lu (not root, not the "
				 "effective user)", (unsigned long)st->st_uid);
	if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	if (!own && st->st_uid == 0 && (st->st_mode & S_ISVTX))
		return 0;		/* /tmp: others cannot rename or remove what is ours */
	return untrusted(why, size, path, len, "writable by group or others (mode %04lo)",
			 (unsigned long)(st->st_mode & 07777));
}

/* Open component name under dfd as a directory, never through a link, making it if asked. */
static int open_component(int dfd, const char *name, bool create)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

int cp_cache_walk(const char *path, size_t cache_start, bool create, char *why, size_t why_size)
{
	char name[256];
	struct stat st;
	size_t i = 0, len = strlen(path);
	int dfd, err = 0;

	if (path[0] != '/')
		return untrusted(why, why_size, path, len, "not an absolute path");
	dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fstat(dfd, &st) < 0 || (err = check_dir(&st, false, path, 0, why, why_size)) < 0)
		goto out;
	while (i < len) {
		size_t start, n;
		int fd;

		while (i < len && path[i] == '/')
			i++;
		start = i;
		while (i < len && path[i] != '/')
			i++;
		n = i - start;
		if (n == 0)
			break;
		if (n >= sizeof(name)) {
			err = -ENAMETOOLONG;
			goto out;
		}
		memcpy(name, path + start, n);
		name[n] = '\0';
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			err = untrusted(why, why_size, path, i, "'.' or '..' in the path");
			goto out;
		}
		fd = open_component(dfd, name, create);
		if (fd == -ELOOP || fd == -ENOTDIR)
			err = untrusted(why, why_size, path, i, "a symbolic link or not a directory");
		else if (fd < 0)
			err = fd;
		if (err < 0)
			goto out;
		close(dfd);
		dfd = fd;
		if (fstat(dfd, &st) < 0) {
			err = -errno;
			goto out;
		}
		err = check_dir(&st, i >= cache_start, path, i, why, why_size);
		if (err < 0)
			goto out;
	}
out:
	close(dfd);
	return err;
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

/* The length of the cache directory's path in buf, trailing slashes dropped. */
static size_t cache_len(char *buf)
{
	size_t len = strlen(buf);

	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	return len;
}

int cp_cache_check(char *why, size_t why_size)
{
	char buf[4096];
	int err = cp_cache_dir(buf, sizeof(buf));

	if (why && why_size)
		why[0] = '\0';
	if (err == -ENAMETOOLONG && why)
		snprintf(why, why_size, "the cache directory's path is too long");
	if (err < 0)
		return err;
	err = cp_cache_walk(buf, cache_len(buf), true, why, why_size);
	if (err < 0 && err != -EPERM && why && why_size)
		snprintf(why, why_size, "%s: %s", buf, strerror(-err));
	return err;
}

int cp_cache_path(char *buf, size_t size, const char *sub, const char *name, bool create_dir)
{
	size_t dlen, start;
	int n, err = cp_cache_dir(buf, size);

	if (err < 0)
		return err;
	start = dlen = cache_len(buf);
	if (sub) {
		n = snprintf(buf + dlen, size - dlen, "/%s", sub);
		if (n < 0 || (size_t)n >= size - dlen)
			return -ENAMETOOLONG;
		dlen += (size_t)n;
	}
	n = snprintf(buf + dlen, size - dlen, "/%s", name);
	if (n < 0 || (size_t)n >= size - dlen)
		return -ENAMETOOLONG;
	buf[dlen] = '\0';
	err = cp_cache_walk(buf, start, create_dir, NULL, 0);
	buf[dlen] = '/';
	return err;
}
