/* The cache folder every on-disk cache of cprof lives in, and paths inside it. */
#ifndef CP_CACHE_DIR_H
#define CP_CACHE_DIR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The cache directory: $CPROF_CACHE_DIR, else $XDG_CACHE_HOME/cprof, else $HOME/.cache/cprof.
 * Writes into buf; -ENOENT when caching is off (CPROF_CACHE_DIR set to "" or no home),
 * -ENAMETOOLONG.
 */
int cp_cache_dir(char *buf, size_t size);

/* mkdir -p path, mode 0700 (path is modified while it works, then restored). 0 or -errno. */
int cp_cache_mkdir(char *path);

/*
 * The path of file name in folder sub of the cache directory (sub NULL: in the cache directory
 * itself) into buf. With create_dir, the folder is made first (cp_cache_mkdir). 0, or -ENOENT
 * when caching is off, -ENAMETOOLONG, or mkdir's -errno.
 */
int cp_cache_path(char *buf, size_t size, const char *sub, const char *name, bool create_dir);

#endif
