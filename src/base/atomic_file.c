/* Atomic replacement of a file (see atomic_file.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"

/* Temporaries tried before giving up: one more per stale file of an earlier writer. */
#define MAX_TRIES 16

static void release(struct cp_atomic_file *af)
{
	free(af->path);
	free(af->tmp);
	af->path = af->tmp = NULL;
	af->fd = -1;
}

int cp_atomic_file_open(struct cp_atomic_file *af, const char *path, mode_t mode)
{
	int err = -EEXIST;

	af->fd = -1;
	af->tmp = NULL;
	af->path = strdup(path);
	if (!af->path)
		return -ENOMEM;
	for (int i = 0; i < MAX_TRIES && err == -EEXIST; i++) {
		int n = i ? asprintf(&af->tmp, "%s.tmp.%d.%d", path, (int)getpid(), i)
			  : asprintf(&af->tmp, "%s.tmp.%d", path, (int)getpid());

		if (n < 0) {
			af->tmp = NULL;
			err = -ENOMEM;
			break;
		}
		af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (af->fd >= 0)
			return 0;
		err = -errno;
		free(af->tmp);
		af->tmp = NULL;
	}
	release(af);
	return err;
}

int cp_atomic_file_commit(struct cp_atomic_file *af)
{
	int err = 0;

	if (!af->tmp)
		return -EBADF;
	if (af->fd >= 0 && close(af->fd) < 0)
		err = -errno;
	af->fd = -1;
	if (!err && rename(af->tmp, af->path) < 0)
		err = -errno;
	if (err)
		unlink(af->tmp);
	release(af);
	return err;
}

void cp_atomic_file_abort(struct cp_atomic_file *af)
{
	if (af->tmp) {
		if (af->fd >= 0)
			close(af->fd);
		unlink(af->tmp);
	}
	release(af);
}
