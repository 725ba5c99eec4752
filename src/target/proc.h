/* Readers for /proc/PID and /proc/PID/task/TID: threads, their state, syscall and names. */
#ifndef CP_PROC_H
#define CP_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CP_MAX_THREADS 100000
#define CP_COMM_LEN 64

/* From /proc/PID/task/TID/stat (and status where stat cannot say). */
struct cp_task_stat {
	int tid;
	char comm[CP_COMM_LEN];	/* thread name, as the kernel keeps it */
	char state;		/* R S D T t Z X I ... */
	int ppid;
	unsigned int flags;	/* PF_* ; PF_KTHREAD = 0x00200000 */
	uint64_t utime;		/* clock ticks */
	uint64_t stime;
	uint64_t starttime;
	int processor;
	long num_threads;	/* of the whole process (the same in every thread's stat) */
};

/* From /proc/PID/task/TID/syscall. */
struct cp_task_syscall {
	bool running;		/* "running": on a CPU, no syscall state */
	bool in_syscall;	/* blocked in syscall nr with args */
	long nr;		/* -1 when not in a syscall (blocked in the kernel otherwise) */
	uint64_t args[6];
	uint64_t sp;		/* user stack pointer and pc, valid unless running */
	uint64_t pc;
};

/* From /proc/PID/task/TID/status and sched. */
struct cp_task_status {
	int tracer_pid;
	uint64_t voluntary_ctxt_switches;
	uint64_t nonvoluntary_ctxt_switches;
};

/* Parse the text of a stat / syscall / status file (unit-testable). 0 or -EINVAL. */
int cp_proc_parse_stat(const char *text, struct cp_task_stat *out);
int cp_proc_parse_syscall(const char *text, struct cp_task_syscall *out);
int cp_proc_parse_status(const char *text, struct cp_task_status *out);

/* tid == 0 means the process itself (/proc/PID/...). 0 or -errno (-ESRCH when gone). */
int cp_proc_read_stat(int pid, int tid, struct cp_task_stat *out);
int cp_proc_read_syscall(int pid, int tid, struct cp_task_syscall *out);
int cp_proc_read_status(int pid, int tid, struct cp_task_status *out);
/* wchan symbol name ("" when 0 or hidden). */
int cp_proc_read_wchan(int pid, int tid, char *buf, size_t size);
/* schedstat: time on CPU (ns) and number of timeslices run. */
int cp_proc_read_schedstat(int pid, int tid, uint64_t *run_ns, uint64_t *slices);

/* Thread ids of pid, sorted ascending, at most CP_MAX_THREADS. *tids malloc'd (caller frees). */
int cp_proc_list_tasks(int pid, int **tids, size_t *n);

/* argv of the process; *argv is a malloc'd NULL-terminated vector of malloc'd strings. */
int cp_proc_read_cmdline(int pid, char ***argv, size_t *argc);
void cp_proc_free_argv(char **argv);
/* readlink of /proc/PID/exe, " (deleted)" kept. */
int cp_proc_read_exe(int pid, char *buf, size_t size);
/* readlink of /proc/PID/fd/FD ("socket:[123]", "pipe:[77]", "/path", "anon_inode:[eventfd]"). */
int cp_proc_read_fd_link(int pid, int fd, char *buf, size_t size);

/*
 * Whether pid, whose leader's stat is st, is a zombie process: the leader in state Z or X and
 * no other thread left. A leader that called pthread_exit reads Z too while the other threads
 * live on: not a zombie.
 */
bool cp_proc_is_zombie(int pid, const struct cp_task_stat *st);
/*
 * Whether pid has exited: gone, a zombie process, or (starttime != 0) a new process that
 * reuses the pid of the one started at starttime.
 */
bool cp_proc_gone(int pid, uint64_t starttime);
/*
 * The /proc directory of pid's address space and files: "/proc/PID", or, when the leader has
 * exited while other threads live on (its maps, mem, root, exe and fd went with it),
 * "/proc/PID/task/TID" of a live thread. 0 or -errno.
 */
int cp_proc_dir(int pid, char *buf, size_t size);

/* True when pid exists and is a kernel thread (PF_KTHREAD, or parent kthreadd). */
bool cp_proc_is_kernel_thread(const struct cp_task_stat *st);

/* Parse a CPU list ("0-3,8,10-11") into a bitmap of ncpus bits. 0 or -EINVAL. */
int cp_parse_cpulist(const char *text, uint8_t *bitmap, size_t ncpus);
/*
 * The online CPUs (/sys/devices/system/cpu/online; all configured ones if unreadable), as
 * a sorted malloc'd array of CPU numbers below CP_MAX_CPUS. 0 or -errno.
 */
#define CP_MAX_CPUS 1024
int cp_online_cpus(int **cpus, size_t *n);

/* The name of x86-64 syscall nr ("futex"), or NULL when unknown. */
const char *cp_syscall_name(long nr);

#endif
