/* Atomic replacement of a file (see atomic_file.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"

/* Random names tried before giving up (each collision is one more try). */
#define MAX_TRIES 16

static void release(struct cp_atomic_file *af)
{
	free(af->path);
	free(af->tmp);
	af->path = af->tmp = NULL;
	af->fd = -1;
	af->open = false;
}

/* "PATH.tmp.RANDOM" into *out (malloc'd): a name no one can predict. */
static int random_name(const char *path, char **out)
{
	unsigned long long r;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		return -EIO;
	if (asprintf(out, "%s.tmp.%016llx", path, r) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* An unnamed file in path's folder (O_TMPFILE), or -errno. */
static int open_unnamed(const char *path, mode_t mode)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	fd = fd < 0 ? -errno : fd;
	free(copy);
	return fd;
}

/* A new file under a random name next to path (af->tmp), for folders without O_TMPFILE. */
static int open_named(struct cp_atomic_file *af, mode_t mode)
{
	int err = -EEXIST;

	for (int i = 0; i < MAX_TRIES && err == -EEXIST; i++) {
		err = random_name(af->path, &af->tmp);
		if (err < 0)
			return err;
		af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (af->fd >= 0)
			return 0;
		err = -errno;
		free(af->tmp);
		af->tmp = NULL;
	}
	return err;
}

/* Give the new file the owner, group and mode of the one it replaces. */
static int keep_owner(int fd, const struct stat *old)
{
	if ((old->st_uid != geteuid() || old->st_gid != getegid()) &&
	    fchown(fd, old->st_uid, old->st_gid) < 0)
		return -EPERM;
	return fchmod(fd, old->st_mode & 07777) < 0 ? -errno : 0;
}

int cp_atomic_file_open(struct cp_atomic_file *af, const char *path, mode_t mode)
{
	struct stat old;
	bool replaces;
	int err;

	memset(af, 0, sizeof(*af));
	af->fd = -1;
	if (lstat(path, &old) == 0) {
		if (S_ISDIR(old.st_mode))
			return -EISDIR;
		if (!S_ISREG(old.st_mode) && !S_ISLNK(old.st_mode))
			return -EEXIST;
		replaces = S_ISREG(old.st_mode);	/* a link is replaced, its target kept */
	} else if (errno != ENOENT) {
		return -errno;
	} else {
		replaces = false;
	}
	af->path = strdup(path);
	if (!af->path)
		return -ENOMEM;
	af->fd = open_unnamed(path, mode);
	if (af->fd < 0) {
		err = af->fd;
		af->fd = -1;
		if (err != -EOPNOTSUPP && err != -EISDIR && err != -EINVAL)
			goto fail;
		err = open_named(af, mode);
		if (err < 0)
			goto fail;
	}
	af->open = true;
	if (replaces && (err = keep_owner(af->fd, &old)) < 0) {
		cp_atomic_file_abort(af);
		return err;
	}
	return 0;
fail:
	release(af);
	return err;
}

/* Name the unnamed file af->fd: linked under a random name (renamed into place next). */
static int link_unnamed(struct cp_atomic_file *af)
{
	char proc[64];
	int err = -EEXIST;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", af->fd);
	for (int i = 0; i < MAX_TRIES && err == -EEXIST; i++) {
		err = random_name(af->path, &af->tmp);
		if (err < 0)
			return err;
		if (linkat(AT_FDCWD, proc, AT_FDCWD, af->tmp, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		err = -errno;
		free(af->tmp);
		af->tmp = NULL;
	}
	return err;
}

int cp_atomic_file_commit(struct cp_atomic_file *af)
{
	int err = 0;

	if (!af->open)
		return -EBADF;
	if (!af->tmp && af->fd < 0)
		err = -EBADF;		/* unnamed and closed: the file is gone */
	else if (!af->tmp)
		err = link_unnamed(af);
	if (af->fd >= 0 && close(af->fd) < 0 && !err)
		err = -errno;
	af->fd = -1;
	if (!err && rename(af->tmp, af->path) < 0)
		err = -errno;
	if (err && af->tmp)
		unlink(af->tmp);
	release(af);
	return err;
}

void cp_atomic_file_abort(struct cp_atomic_file *af)
{
	if (af->open) {
		if (af->fd >= 0)
			close(af->fd);
		if (af->tmp)
			unlink(af->tmp);
	}
	release(af);
}
