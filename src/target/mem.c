/* Reading the target's memory: /proc/PID/mem, with process_vm_readv as the fallback. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mem.h"

/*
 * A process_vm_readv call costs about 20 us on a paravirtualised guest whatever its size (it
 * pins the other process's pages); a pread of /proc/PID/mem, 5 to 9 us. A dump reads target
 * memory a few hundred times (lock words, timeouts, unwinding), so the first read of a pid
 * opens its mem file and later ones reuse it, from any thread (pread has no file position).
 * A cached fd is never closed while cprof runs: another thread may be reading through it, and
 * a closed number can come back as another file. So the cache only fills its free slots (a
 * pid that is gone keeps its slot, marked dead), and beyond them a read opens and closes.
 */
#define MEM_FDS 4

static struct {
	pthread_mutex_t lock;
	int pid[MEM_FDS];	/* 0 free, -1 gone */
	int fd[MEM_FDS];
} mem_fds = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* An fd on pid's mem file; *owned when the caller must close it. -1 when none. */
static int mem_fd_get(int pid, bool *owned)
{
	char path[64];
	int fd = -1, slot = -1;

	*owned = false;
	pthread_mutex_lock(&mem_fds.lock);
	for (int i = 0; i < MEM_FDS && fd < 0; i++) {
		if (mem_fds.pid[i] == pid)
			fd = mem_fds.fd[i];
		else if (mem_fds.pid[i] == 0 && slot < 0)
			slot = i;
	}
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/mem", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && slot >= 0) {
			mem_fds.pid[slot] = pid;
			mem_fds.fd[slot] = fd;
		} else if (fd >= 0) {
			*owned = true;
		}
	}
	pthread_mutex_unlock(&mem_fds.lock);
	return fd;
}

/* The process behind pid's cached fd is gone (its pid may come back as another). */
static void mem_fd_gone(int pid)
{
	pthread_mutex_lock(&mem_fds.lock);
	for (int i = 0; i < MEM_FDS; i++)
		if (mem_fds.pid[i] == pid)
			mem_fds.pid[i] = -1;
	pthread_mutex_unlock(&mem_fds.lock);
}

long cp_mem_read(int pid, uint64_t addr, void *buf, size_t len)
{
	const long page = 4096;
	size_t done = 0;
	bool owned;
	int fd;

	if (pid <= 0 || (!buf && len))
		return -EINVAL;
	if (len == 0)
		return 0;
	if (len > (size_t)0x7fffffff)
		len = 0x7fffffff;
	if (addr + len < addr)
		return -EFAULT;
	/*
	 * The mem file returns the readable prefix by itself. Nothing read (0: the process is
	 * gone; EIO: the first page is not readable) is left to process_vm_readv, which tells
	 * the two apart; addresses past the sign bit are off-limits to pread offsets.
	 */
	if (addr <= (uint64_t)INT64_MAX - len && (fd = mem_fd_get(pid, &owned)) >= 0) {
		ssize_t r = pread(fd, buf, len, (off_t)addr);

		if (owned)
			close(fd);
		if (r > 0)
			return (long)r;
		if (r == 0 && !owned)
			mem_fd_gone(pid);
	}
	/*
	 * One call for the whole range first. The kernel stops at the first page it cannot
	 * read and may report that as a failure of the whole call, so on EFAULT the range is
	 * read again page by page to return the readable prefix.
	 */
	{
		struct iovec local = { .iov_base = buf, .iov_len = len };
		struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
		ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);

		if (r >= 0)
			return (long)r;
		if (errno != EFAULT)
			return -errno;
	}
	while (done < len) {
		uint64_t a = addr + done;
		size_t chunk = (size_t)(page - (long)(a & (uint64_t)(page - 1)));
		struct iovec local, remote;
		ssize_t r;

		if (chunk > len - done)
			chunk = len - done;
		local.iov_base = (char *)buf + done;
		local.iov_len = chunk;
		remote.iov_base = (void *)(uintptr_t)a;
		remote.iov_len = chunk;
		r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
		if (r <= 0) {
			if (done > 0)
				break;
			return r < 0 ? -errno : -EFAULT;
		}
		done += (size_t)r;
		if ((size_t)r < chunk)
			break;
	}
	return (long)done;
}
