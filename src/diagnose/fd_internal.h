/*
 * What fdinfo.c and fd_holders.c share: reading another process's fd links and fdinfo, and
 * finding which processes hold a pipe's other end.
 */
#ifndef CP_FD_INTERNAL_H
#define CP_FD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fdinfo.h"

#define LINK_MAX 512

/* readlink into buf, NUL-terminated. 0 or -errno. */
int fd_read_link(const char *path, char *buf, size_t size);
/* The value after "key:" in fdinfo text, or NULL. */
const char *fd_info_field(const char *text, const char *key);
/* DIR/fd/FD or DIR/fdinfo/FD (fd < 0: DIR/fd) of pid's /proc directory (cp_proc_dir). */
int fd_proc_path(int pid, const char *kind, long fd, char *buf, size_t size);
/* pid's fdinfo of fd, malloc'd into *text. 0 or -errno. */
int fd_read_info(int pid, int fd, char **text);
/* fdinfo "flags:" is octal open flags. -1 when unreadable. */
long fd_info_flags(const char *text);
/* The inode of a link "PREFIX[INODE]" ("pipe:[123]"). */
bool fd_link_inode(const char *link, const char *prefix, uint64_t *ino);

struct pipe_holder {
	int pid;
	int fd;
};

/*
 * Every (pid, fd) whose link is the same pipe and whose access mode can do the other end's
 * job, through pipes when set; *incomplete says when a bound cut the search short.
 */
size_t fd_find_pipe_holders(struct cp_pipe_index *pipes, const char *link, bool want_write,
			    int self_fd, int target, struct pipe_holder *out, size_t max,
			    size_t *total, bool *incomplete);

#endif
