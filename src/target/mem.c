/* Reading the target's memory: /proc/PID/mem, with process_vm_readv as the fallback. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mem.h"
#include "proc.h"

int cp_mem_open(struct cp_mem *m, int pid)
{
	char path[64];

	*m = CP_MEM_BY_PID(pid);
	if (pid <= 0)
		return -EINVAL;
	if (cp_proc_dir(pid, path, sizeof(path) - 4) < 0)
		return 0;	/* gone: reads fail as they would */
	strcat(path, "/mem");
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	return 0;
}

void cp_mem_close(struct cp_mem *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

long cp_mem_read_pid(int pid, uint64_t addr, void *buf, size_t len)
{
	return cp_mem_read(&CP_MEM_BY_PID(pid), addr, buf, len);
}

/*
 * One process_vm_readv for the whole range first. The kernel stops at the first page it
 * cannot read and may report that as a failure of the whole call, so on EFAULT the range is
 * read again page by page to return the readable prefix.
 */
static long read_by_pid(int pid, uint64_t addr, void *buf, size_t len)
{
	const long page = 4096;
	size_t done = 0;
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (r >= 0)
		return (long)r;
	if (errno != EFAULT)
		return -errno;
	while (done < len) {
		uint64_t a = addr + done;
		size_t chunk = (size_t)(page - (long)(a & (uint64_t)(page - 1)));

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

long cp_mem_read(const struct cp_mem *m, uint64_t addr, void *buf, size_t len)
{
	if (!m || m->pid <= 0 || (!buf && len))
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
	if (m->fd >= 0 && addr <= (uint64_t)INT64_MAX - len) {
		ssize_t r = pread(m->fd, buf, len, (off_t)addr);

		if (r > 0)
			return (long)r;
	}
	return read_by_pid(m->pid, addr, buf, len);
}

size_t cp_mem_readv(const struct cp_mem *m, struct cp_mem_span *v, size_t n)
{
	size_t done = 0, ok = 0;

	for (size_t i = 0; i < n; i++)
		v[i].ok = false;
	while (done < n) {
		struct iovec local[CP_MEM_READV_BATCH], remote[CP_MEM_READV_BATCH];
		size_t k = n - done < CP_MEM_READV_BATCH ? n - done : CP_MEM_READV_BATCH;
		ssize_t r;
		size_t got;

		for (size_t i = 0; i < k; i++) {
			local[i] = (struct iovec){ v[done + i].dst, v[done + i].len };
			remote[i] = (struct iovec){ (void *)(uintptr_t)v[done + i].addr, v[done + i].len };
		}
		r = process_vm_readv(m->pid, local, k, remote, k, 0);
		got = r > 0 ? (size_t)r : 0;
		/* The kernel stops at the first range it cannot read whole: read it alone. */
		for (size_t i = 0; i < k && got >= v[done + i].len; i++) {
			got -= v[done + i].len;
			v[done + i].ok = true;
			ok++;
		}
		while (done < n && v[done].ok)
			done++;
		if (done < n && !v[done].ok) {
			v[done].ok = cp_mem_read(m, v[done].addr, v[done].dst, v[done].len) ==
				(long)v[done].len;
			ok += v[done].ok;
			done++;
		}
	}
	return ok;
}
