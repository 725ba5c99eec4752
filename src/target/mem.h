/* Reading another process's memory: the one way the layers above target/ reach it. */
#ifndef CP_MEM_H
#define CP_MEM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read len bytes at addr in process pid into buf. Returns the bytes read (short when the
 * range runs into unreadable memory) or -errno (-ESRCH: gone, -EFAULT: nothing readable).
 */
long cp_mem_read(int pid, uint64_t addr, void *buf, size_t len);

#endif
