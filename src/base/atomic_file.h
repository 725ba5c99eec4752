/* Files replaced atomically: written unnamed (or under an unpredictable name), then renamed. */
#ifndef CP_ATOMIC_FILE_H
#define CP_ATOMIC_FILE_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * A file being written next to its destination. Readers of path see the old file (or none)
 * until cp_atomic_file_commit() puts the complete new one in its place: a failed or
 * interrupted writer never leaves a partial file presented as complete. The new file is made
 * with O_TMPFILE (it has no name, so a killed writer leaves nothing behind and no one can
 * plant or race it), and named only at the commit; on a file system without O_TMPFILE, under
 * a random name in the same folder, removed by abort.
 */
struct cp_atomic_file {
	int fd;			/* open for writing, until the commit or abort closes it */
	char *path;		/* the destination */
	char *tmp;		/* the temporary's name; NULL while it has none (O_TMPFILE) */
	bool open;		/* between open and commit or abort */
};

/*
 * Create the temporary for path (created with mode; the umask applies). When path is an
 * existing regular file, the new one gets its owner, group and mode; -EPERM when that cannot
 * be done (another user's file, and we may not give it away). -EISDIR or -EEXIST when path is
 * something else than a regular file (a folder, a device: not to be replaced). 0 or -errno;
 * af is then to be committed or aborted.
 */
int cp_atomic_file_open(struct cp_atomic_file *af, const char *path, mode_t mode);

/*
 * Name the file, close fd and put the file in place. fd must still be open (an unnamed file
 * closed is gone): a caller that writes through stdio gives fdopen() a dup() of it.
 * 0 or -errno; on failure the temporary is removed. af is released either way.
 */
int cp_atomic_file_commit(struct cp_atomic_file *af);

/* Close fd and remove the temporary. Safe on a zeroed, committed or aborted af. */
void cp_atomic_file_abort(struct cp_atomic_file *af);

#endif
