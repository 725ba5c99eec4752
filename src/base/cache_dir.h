/* The cache folder every on-disk cache of cprof lives in, and paths inside it. */
#ifndef CP_CACHE_DIR_H
#define CP_CACHE_DIR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The cache directory: $CPROF_CACHE_DIR, else $XDG_CACHE_HOME/cprof, else $HOME/.cache/cprof.
 * Writes into buf; -ENOENT when caching is off (CPROF_CACHE_DIR set to "" or no home),
 * -ENAMETOOLONG. Only names it: cp_cache_path() is what checks that it can be trusted.
 */
int cp_cache_dir(char *buf, size_t size);

/*
 * Walk path from "/" one component at a time (openat with O_NOFOLLOW | O_DIRECTORY), making
 * the missing ones with mode 0700 when create is set. The path is trusted only when no one but
 * the effective user and root can change what it names: every component a directory (no
 * symbolic link), the leading ones owned by root or the effective user and writable by no one
 * else (a root-owned sticky folder such as /tmp excepted), the cache's own (from the cache
 * directory on, cache_start the length of its path) owned by the effective user and writable
 * by no one else. Returns 0, -ENOENT (a component is missing and create is off), -EPERM
 * (untrusted: why, when given, says which component and what is wrong), or another -errno.
 */
int cp_cache_walk(const char *path, size_t cache_start, bool create, char *why, size_t why_size);

/*
 * Whether the cache directory is on and can be trusted (cp_cache_walk, making it if missing).
 * 0; -ENOENT when caching is off; else -errno with why saying why the cache is off this run.
 */
int cp_cache_check(char *why, size_t why_size);

/*
 * The path of file name in folder sub of the cache directory (sub NULL: in the cache directory
 * itself) into buf, once the folders are checked by cp_cache_walk (and made first with
 * create_dir). 0, or -ENOENT when caching is off or a folder is missing, -EPERM when they cannot
 * be trusted, -ENAMETOOLONG, or mkdir's -errno. Files in it are opened with O_NOFOLLOW.
 */
int cp_cache_path(char *buf, size_t size, const char *sub, const char *name, bool create_dir);

#endif
