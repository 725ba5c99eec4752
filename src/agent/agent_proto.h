/*
 * The memory cprof shares with its allocation sampler (libcprof-agent.so, loaded into the
 * target): a header, then a ring of records that many target threads write and one cprof
 * reads. This header is the whole contract between the two; both sides include it, and it
 * includes nothing of the project's.
 */
#ifndef CP_AGENT_PROTO_H
#define CP_AGENT_PROTO_H

#include <stdint.h>

#define CP_AGENT_MAGIC 0x6670726f70616763ULL	/* "cgapropf" */
#define CP_AGENT_VERSION 1

/* The library's file name; cprof looks for it next to its own binary, then in its libdir. */
#define CP_AGENT_LIBRARY "libcprof-agent.so"

/* Exported by the agent (cprof finds them in the library's .dynsym). */
#define CP_AGENT_START_SYMBOL "cprof_agent_start"
#define CP_AGENT_STOP_SYMBOL "cprof_agent_stop"
#define CP_AGENT_CONTROL_SYMBOL "cprof_agent_control"
/*
 * record's launch path: LD_PRELOAD the agent with this variable set to
 * "READER_PID:RATE:STACK_BYTES:RING_BYTES[:SOCKET_FD]"; its constructor then starts as
 * cprof_agent_start would and publishes the result in cprof_agent_control. With SOCKET_FD
 * (one end of cprof's AF_UNIX datagram socketpair, inherited), it also hands its region's fd
 * to cprof at once: one struct cp_agent_handover with the fd in SCM_RIGHTS. cprof then holds
 * the region however soon the command exits.
 */
#define CP_AGENT_ENV "CPROF_AGENT"

struct cp_agent_handover {
	uint64_t magic;		/* CP_AGENT_MAGIC */
	int32_t pid;		/* the sender's getpid() */
	int32_t memfd;		/* the region's fd number in the sender */
	uint64_t generation;	/* cprof_agent_control.generation of the session */
};

enum cp_agent_state {
	CP_AGENT_OFF = 0,	/* hooks not installed (or restored) */
	CP_AGENT_ON = 1,	/* sampling */
	CP_AGENT_STOP = 2,	/* the reader asks to stop: the agent restores and goes OFF */
};

/*
 * int cprof_agent_start(int reader_pid, uint64_t rate, uint32_t stack_bytes,
 *                       uint64_t ring_bytes);
 *   Install the hooks and start sampling for reader_pid. Returns the fd (in the target) of a
 *   memfd holding struct cp_agent_header and the ring, or -errno. A second start after a stop
 *   reuses the region of the first (no memory grows across sessions).
 * int cprof_agent_stop(void);
 *   Restore every patched GOT entry and go OFF. 0 or -errno. Idempotent.
 * The agent also goes OFF by itself when the header's state says CP_AGENT_STOP, or when it
 * finds the reader gone (reader_pid's pidfd readable).
 */

/* cprof_agent_control: a global of the agent that cprof reads through the target's memory. */
struct cp_agent_control {
	uint64_t magic;		/* CP_AGENT_MAGIC once the library is initialised */
	uint32_t version;	/* CP_AGENT_VERSION */
	int32_t memfd;		/* the region's fd in the target, -1 before the first start */
	int32_t last_error;	/* 0 or -errno of the last start */
	uint32_t state;		/* enum cp_agent_state */
	uint64_t generation;	/* incremented by every start */
	uint64_t region_bytes;	/* size of the memfd region */
};

/* At offset 0 of the region. Counters are monotonic over one session (reset by start). */
struct cp_agent_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_bytes;		/* the ring starts at this offset of the region */
	uint64_t ring_bytes;		/* a power of two */
	uint64_t rate;			/* mean bytes between samples */
	uint32_t stack_bytes;		/* most bytes of stack copied per sample */
	int32_t reader_pid;
	uint32_t state;			/* enum cp_agent_state; atomic */
	uint32_t fast_paths;		/* 1: malloc and free run generated fast paths (agent) */
	uint64_t generation;		/* cprof_agent_control.generation of this session */
	/* Written by the agent (atomic). */
	uint64_t reserved;		/* ring bytes reserved by producers, ever */
	uint64_t samples;		/* allocations sampled */
	uint64_t frees;			/* frees of sampled blocks recorded */
	uint64_t dropped;		/* records lost because the ring was full */
	uint64_t untracked;		/* sampled blocks whose free could not be tracked */
	uint64_t patched;		/* GOT entries redirected now */
	uint64_t modules;		/* modules whose GOT was patched */
	/* Written by the reader (atomic). */
	uint64_t consumed;		/* ring bytes the reader is done with, ever */
	uint64_t reader_heartbeat_ns;	/* CLOCK_MONOTONIC of the reader's last read */
	char error[128];		/* why the agent went OFF by itself, "" otherwise */
	/* Written by the agent (atomic). */
	uint64_t skipped_modules;	/* modules left unpatched: their GOT held another malloc */
};

enum cp_agent_rec_type {
	CP_AGENT_REC_PAD = 0,	/* skip to the end of the ring */
	CP_AGENT_REC_ALLOC = 1,	/* struct cp_agent_alloc */
	CP_AGENT_REC_FREE = 2,	/* struct cp_agent_free */
};

/* A record's size word: bytes (a multiple of 8, header included) | COMMIT once written. */
#define CP_AGENT_REC_COMMIT 0x80000000u

/*
 * Every record starts 8-aligned at (offset mod ring_bytes), never wraps (a PAD record fills
 * the end), and is readable once its size word has CP_AGENT_REC_COMMIT (release / acquire).
 * The reader zeroes what it consumed before advancing consumed.
 */
struct cp_agent_rec {
	uint32_t size;		/* atomic */
	uint16_t type;		/* enum cp_agent_rec_type */
	uint16_t flags;
};

/* x86-64 registers in DWARF numbering (rax=0 ... r15=15, rip=16), as cprof's cp_reg. */
#define CP_AGENT_NREGS 17

/*
 * One sampled allocation: the block, its size, and the registers and stack of the sampling
 * code itself (cprof unwinds from there and drops the agent's own frames).
 */
struct cp_agent_alloc {
	struct cp_agent_rec h;
	int32_t tid;
	uint32_t stack_len;		/* bytes in stack[] */
	uint64_t addr;			/* the block (0 for a failed allocation: not recorded) */
	uint64_t size;			/* bytes asked for */
	uint64_t regs[CP_AGENT_NREGS];
	uint64_t stack_start;		/* target address of stack[0] (== regs[7], rsp) */
	uint8_t stack[];
};

/* The free (or realloc away) of a sampled block. */
struct cp_agent_free {
	struct cp_agent_rec h;
	uint64_t addr;
};

#endif
