/* Reading another process's memory: the one way the layers above target/ reach it. */
#ifndef CP_MEM_H
#define CP_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A process's memory opened for reading, for one dump or one session: its /proc/PID/mem
 * file held open. A pread of that file is cheaper than process_vm_readv, and a dump reads
 * target memory a few hundred times (stacks, lock words, timeouts, unwinding). Reads take a
 * const context and may come from several threads at once (pread has no file position). The
 * owner closes it only after every reader is done: a closed fd number can come back as
 * another file.
 */
struct cp_mem {
	int pid;
	int fd;			/* /proc/PID/mem, or -1: every read uses process_vm_readv */
};

/* A context that holds no file: reads by pid alone (cp_mem_read_pid). */
#define CP_MEM_BY_PID(p) ((struct cp_mem){ .pid = (p), .fd = -1 })

/*
 * Open pid's memory into *m. 0, or -errno (-EINVAL for a bad pid). When the mem file cannot
 * be opened (-EACCES, say), *m is still a context that reads by pid, and 0 is returned: the
 * file is only a faster way to the same bytes.
 */
int cp_mem_open(struct cp_mem *m, int pid);
/* Close what cp_mem_open opened; m then reads by pid. NULL is a no-op. */
void cp_mem_close(struct cp_mem *m);

/*
 * Read len bytes at addr of m's process into buf. Returns the bytes read (short when the
 * range runs into unreadable memory) or -errno (-ESRCH: gone, -EFAULT: nothing readable).
 */
long cp_mem_read(const struct cp_mem *m, uint64_t addr, void *buf, size_t len);

/* One range of many to read at once: len bytes at addr into dst; ok says it was read whole. */
struct cp_mem_span {
	uint64_t addr;
	size_t len;
	void *dst;
	bool ok;
};

/* How many ranges one process_vm_readv takes (the kernel's UIO_MAXIOV). */
#define CP_MEM_READV_BATCH 1024

/*
 * Read many small ranges (a thousand goroutines' structs) in few system calls: process_vm_
 * readv with up to CP_MEM_READV_BATCH ranges each, a range it cannot read whole read alone.
 * Sets each span's ok; returns how many were read whole.
 */
size_t cp_mem_readv(const struct cp_mem *m, struct cp_mem_span *v, size_t n);

/* cp_mem_read without an open context: process_vm_readv on pid. */
long cp_mem_read_pid(int pid, uint64_t addr, void *buf, size_t len);

#endif
