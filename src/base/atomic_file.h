/* Files replaced atomically: written under a temporary name, renamed into place when complete. */
#ifndef CP_ATOMIC_FILE_H
#define CP_ATOMIC_FILE_H

#include <sys/types.h>

/*
 * A file being written next to its destination. Readers of path see the old file (or none)
 * until cp_atomic_file_commit() renames the complete new one over it: a failed or
 * interrupted writer never leaves a partial file presented as complete.
 */
struct cp_atomic_file {
	int fd;			/* open for writing; -1 once the caller closed it itself */
	char *path;		/* the destination */
	char *tmp;		/* the temporary: "PATH.tmp.PID" (".N" added when taken) */
};

/*
 * Create the temporary for path (O_EXCL, O_NOFOLLOW, created with mode; the umask applies).
 * 0 or -errno; af is then to be committed or aborted.
 */
int cp_atomic_file_open(struct cp_atomic_file *af, const char *path, mode_t mode);

/*
 * Close fd (unless the caller closed it and set it to -1) and rename the temporary into place.
 * 0 or -errno; on failure the temporary is removed. af is released either way.
 */
int cp_atomic_file_commit(struct cp_atomic_file *af);

/* Close fd and remove the temporary. Safe on a zeroed, committed or aborted af. */
void cp_atomic_file_abort(struct cp_atomic_file *af);

#endif
