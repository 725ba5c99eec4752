/*
 * The allocation sampler as a heap session sees it: finding libcprof-agent.so, starting it in
 * a live process (loaded through src/inject) or finding it started by the preload of record's
 * launch, mapping its memfd region, and turning it off again.
 */
#ifndef CP_HEAP_AGENT_H
#define CP_HEAP_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ring cprof asks for (bytes, a power of two). */
#define CP_HEAP_RING_BYTES (8u << 20)

/*
 * The agent library's path: $CPROF_AGENT_LIBRARY when set, else next to cprof's own binary
 * (or in the build tree's src/agent beside it), else the install's library folders. 0 or
 * -ENOENT.
 */
int cp_heap_agent_path(char *buf, size_t len);

/*
 * The value of CP_AGENT_ENV for record's launch: "READER_PID:RATE:STACK_BYTES:RING_BYTES",
 * and ":SOCK" when sock >= 0 (the command's end of the handover socketpair).
 */
void cp_heap_agent_env(char *buf, size_t len, uint64_t rate, uint32_t stack_bytes, int sock);

struct cp_heap_agent {
	int pid;
	bool injected;		/* started through inject (attach), else by the preload */
	char path[4096];	/* the library */
	uint64_t base;		/* its load address in the target */
	uint64_t stop_fn;	/* cprof_agent_stop in the target (injected) */
	uint64_t control;	/* cprof_agent_control in the target, 0 until known */
	uint64_t control_off;	/* its offset in the library (record), 0 until read */
	int target_fd;		/* the memfd's number in the target */
	int fd;			/* our own fd of the memfd */
	void *region;
	size_t region_bytes;
	uint64_t generation;
};

/*
 * Load the agent into pid and start it (rate, stack_bytes per sample), then map its region.
 * 0 or -errno; why receives a one-line reason on failure (the refusals of cp_inject_open:
 * static binary, traced, seccomp, musl; or the agent's own error).
 */
int cp_heap_agent_inject(struct cp_heap_agent *a, int pid, const char *path, uint64_t rate,
			 uint32_t stack_bytes, int timeout_ms, char *why, size_t whylen);
/*
 * Find the agent that record's preload started in pid for us and map its region: 0 when
 * mapped, -EAGAIN when not started yet (the command has not exec'd, or its constructor has
 * not run), other -errno when it cannot be (why says so).
 */
int cp_heap_agent_find(struct cp_heap_agent *a, int pid, const char *path, char *why,
		       size_t whylen);
/*
 * Record: map the region the command's sampler handed over on sock (record's end of the
 * socketpair), the oldest one pending; handovers from other processes (the command's
 * children) and anything that does not map as a region are dropped. 0 when mapped, -EAGAIN
 * when none is pending, -ECANCELED when the command's sampler said it could not start (why).
 */
int cp_heap_agent_receive(struct cp_heap_agent *a, int sock, int pid, const char *path,
			  char *why, size_t whylen);
/* Whether a handover waits on sock (the command exec'd and started a new region). */
bool cp_heap_agent_pending(int sock);
/*
 * Whether the region mapped is no longer the target's (record: the command exec'd, and the
 * program it became started a sampler of its own). False once the process is gone.
 */
bool cp_heap_agent_replaced(const struct cp_heap_agent *a);
/*
 * Turn the sampler off: cprof_agent_stop called through inject when it was injected (and a
 * safe thread comes in time), else the header's state set to CP_AGENT_STOP, which the agent
 * obeys at its next sample. The region stays mapped (the last records can still be read).
 * 0 or -errno.
 */
int cp_heap_agent_stop(struct cp_heap_agent *a);
/* Unmap and close. */
/*
 * Give back the memory of the sampler's ring (read to its end, the sampler stopped): the
 * region is shared, so the pages go from the target too; a later session clears it anew.
 */
void cp_heap_agent_free_ring(struct cp_heap_agent *a);
void cp_heap_agent_release(struct cp_heap_agent *a);

#endif
