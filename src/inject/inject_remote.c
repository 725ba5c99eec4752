/* Running a system call or a function on a parked thread, which resumes by itself if cprof dies. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inject_internal.h"

/*
 * The kernel's x86-64 signal frame (arch/x86/include/asm/sigframe.h, uapi sigcontext.h), as
 * rt_sigreturn reads it: the frame starts 8 bytes below the stack pointer at the system call,
 * that is at the return-address slot that __restore_rt's caller popped.
 */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
};

struct k_stack {
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;
};

struct k_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	struct k_stack uc_stack;
	struct k_sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};

struct k_rt_sigframe {
	uint64_t pretcode;
	struct k_ucontext uc;
	uint8_t info[128];
};

_Static_assert(sizeof(struct k_sigcontext) == 256, "struct sigcontext is 256 bytes");
_Static_assert(sizeof(struct k_rt_sigframe) == 440, "struct rt_sigframe is 440 bytes");

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#endif
#ifndef FP_XSTATE_MAGIC2
#define FP_XSTATE_MAGIC2 0x46505845u
#endif
#define FX_SW_OFFSET 464
/* An ss_flags that sigaltstack refuses (-EINVAL): rt_sigreturn leaves the alternate stack be. */
#define SS_FLAGS_REFUSED 3
#define RED_ZONE 128
#define EFLAGS_TF 0x100
#define EFLAGS_DF 0x400

/*
 * The call page's code: call the function in r11 with the arguments already in place, hand its
 * return value to cprof as the argument of a harmless getpid (cprof reads it at the system
 * call's entry stop and puts the thread back itself), then return into __restore_rt, which
 * puts the thread back through the rt_sigframe when cprof is no longer there to do it.
 */
static const uint8_t stub_code[] = {
	0x41, 0xff, 0xd3,			/* call *%r11 */
	0x48, 0x89, 0xc7,			/* mov %rax,%rdi */
	0xb8, 0x27, 0x00, 0x00, 0x00,		/* mov $39 (getpid),%eax */
	0x0f, 0x05,				/* syscall */
	0xc3,					/* ret */
};
#define STUB_SYSCALL_END 13
#define STUB_PAGE 4096
#define STUB_DATA 64

int inject_mem_write(struct inject_park *pk, uint64_t addr, const void *data, size_t len)
{
	ssize_t w = pwrite(pk->memfd, data, len, (off_t)addr);

	if (w < 0)
		return -errno;
	return (size_t)w == len ? 0 : -EFAULT;
}

/*
 * Write the rt_sigframe below the stack pointer (past the red zone): the thread's registers
 * as it must resume, its signal mask, its extended FPU state in the signal-frame format (the
 * software bytes and the trailing magic that make rt_sigreturn restore the whole of it), and
 * __restore_rt as the return address of whatever runs on it.
 */
static int frame_write(struct cp_inject *in, struct inject_park *pk)
{
	const struct user_regs_struct *r = &pk->fallback;
	uint64_t top = pk->exact.rsp - RED_ZONE;
	uint64_t fp = (top - pk->xlen - 4) & ~63ull;
	uint64_t frame_addr = (fp - sizeof(struct k_rt_sigframe)) & ~15ull;
	struct k_rt_sigframe f;
	struct k_sigcontext *sc = &f.uc.uc_mcontext;
	uint32_t magic2 = FP_XSTATE_MAGIC2;
	uint64_t xcr0;
	uint8_t *x;
	int err;

	memset(&f, 0, sizeof(f));
	f.pretcode = in->restore_rt;
	f.uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	f.uc.uc_stack.ss_flags = SS_FLAGS_REFUSED;
	f.uc.uc_sigmask = pk->mask;
	sc->r8 = r->r8, sc->r9 = r->r9, sc->r10 = r->r10, sc->r11 = r->r11;
	sc->r12 = r->r12, sc->r13 = r->r13, sc->r14 = r->r14, sc->r15 = r->r15;
	sc->rdi = r->rdi, sc->rsi = r->rsi, sc->rbp = r->rbp, sc->rbx = r->rbx;
	sc->rdx = r->rdx, sc->rax = r->rax, sc->rcx = r->rcx, sc->rsp = r->rsp;
	sc->rip = r->rip, sc->eflags = r->eflags;
	sc->cs = (uint16_t)r->cs, sc->ss = (uint16_t)r->ss;
	sc->fpstate = fp;

	x = malloc(pk->xlen);
	if (!x)
		return -ENOMEM;
	memcpy(x, pk->xstate, pk->xlen);
	/* ptrace's layout keeps XCR0 in the first software word; a signal frame wants these. */
	memcpy(&xcr0, x + FX_SW_OFFSET, sizeof(xcr0));
	{
		struct {
			uint32_t magic1, extended_size;
			uint64_t xfeatures;
			uint32_t xstate_size, padding[7];
		} sw = { FP_XSTATE_MAGIC1, (uint32_t)pk->xlen + 4, xcr0, (uint32_t)pk->xlen, { 0 } };

		memcpy(x + FX_SW_OFFSET, &sw, sizeof(sw));
	}
	err = inject_mem_write(pk, fp, x, pk->xlen);
	if (!err)
		err = inject_mem_write(pk, fp + pk->xlen, &magic2, sizeof(magic2));
	if (!err)
		err = inject_mem_write(pk, frame_addr, &f, sizeof(f));
	free(x);
	if (!err)
		pk->frame = frame_addr;
	return err;
}

/*
 * Point the thread at code with its stack pointer on the frame and every signal blocked (they
 * stay pending, delivered once the thread is back). Registers first, then the mask: a cprof
 * that dies in between leaves a thread that returns through the frame, which restores both.
 */
static int op_start(struct cp_inject *in, struct inject_park *pk, struct user_regs_struct *r)
{
	uint64_t all = ~0ull;
	int err;

	if (!pk->frame && (err = frame_write(in, pk)) < 0)
		return err;
	r->rsp = pk->frame;
	r->orig_rax = (unsigned long long)-1;
	r->eflags &= ~(unsigned long long)(EFLAGS_TF | EFLAGS_DF);
	if (ptrace(PTRACE_SETREGS, pk->tid, NULL, r) < 0)
		return -errno;
	pk->dirty = true;
	if (!pk->masked) {
		if (ptrace(PTRACE_SETSIGMASK, pk->tid, (void *)sizeof(all), &all) < 0)
			return -errno;
		pk->masked = true;
	}
	return 0;
}

/*
 * Let the thread run, stopping at each system call, until it reaches the system call that
 * ends at pc (its entry or its exit stop as entry says); *out gets the registers there. A
 * SIGSTOP is handed on and the group stop it starts run through (the kernel puts the thread
 * back in it at detach); any other signal is a fault of the code called, since every other one
 * is blocked.
 */
static int run_to(struct inject_park *pk, uint64_t pc, bool entry, struct user_regs_struct *out,
		  char *why, size_t whylen)
{
	int pass_sig = 0;

	for (;;) {
		struct __ptrace_syscall_info info;
		int status;
		pid_t w;

		if (ptrace(PTRACE_SYSCALL, pk->tid, NULL, (void *)(long)pass_sig) < 0)
			return inject_why(why, whylen, -errno, "resuming thread %d: %s", pk->tid,
					  strerror(errno));
		do
			w = waitpid(pk->tid, &status, __WALL);
		while (w < 0 && errno == EINTR);
		if (w < 0 || WIFEXITED(status) || WIFSIGNALED(status))
			return inject_why(why, whylen, -ESRCH, "thread %d ended during the call",
					  pk->tid);
		pass_sig = 0;
		if (!WIFSTOPPED(status) || status >> 16 == PTRACE_EVENT_STOP)
			continue;
		if (WSTOPSIG(status) == SIGSTOP) {
			/* Not blockable: handed on, it stops the process (this thread at detach). */
			pass_sig = SIGSTOP;
			continue;
		}
		if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
			struct user_regs_struct r;

			ptrace(PTRACE_GETREGS, pk->tid, NULL, &r);
			return inject_why(why, whylen, -EFAULT,
					  "the code called got signal %d at %#llx", WSTOPSIG(status),
					  (unsigned long long)r.rip);
		}
		if (ptrace(PTRACE_GET_SYSCALL_INFO, pk->tid, (void *)sizeof(info), &info) <= 0)
			return inject_why(why, whylen, -errno, "reading a system call stop: %s",
					  strerror(errno));
		if (info.instruction_pointer != pc)
			continue;
		if (info.op != (entry ? PTRACE_SYSCALL_INFO_ENTRY : PTRACE_SYSCALL_INFO_EXIT))
			continue;
		if (ptrace(PTRACE_GETREGS, pk->tid, NULL, out) < 0)
			return inject_why(why, whylen, -errno, "registers of thread %d: %s",
					  pk->tid, strerror(errno));
		return 0;
	}
}

int inject_remote_syscall(struct cp_inject *in, struct inject_park *pk, long nr,
			  const uint64_t *args, size_t nargs, int64_t *ret, char *why, size_t whylen)
{
	struct user_regs_struct r = pk->exact, at;
	uint64_t a[6] = { 0 };
	int err;

	if (nargs)
		memcpy(a, args, (nargs < 6 ? nargs : 6) * sizeof(*a));
	r.rip = in->syscall_ret;
	r.rax = (unsigned long long)nr;
	r.rdi = a[0], r.rsi = a[1], r.rdx = a[2], r.r10 = a[3], r.r8 = a[4], r.r9 = a[5];
	err = op_start(in, pk, &r);
	if (err < 0)
		return inject_why(why, whylen, err, "preparing thread %d: %s", pk->tid,
				  strerror(-err));
	err = run_to(pk, in->syscall_ret + 2, false, &at, why, whylen);
	if (err < 0)
		return err;
	*ret = (int64_t)at.rax;
	return 0;
}

/* Map the call page (read and execute; cprof writes it through /proc/PID/mem). */
static int stub_map(struct cp_inject *in, struct inject_park *pk, char *why, size_t whylen)
{
	uint64_t a[6] = { 0, STUB_PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
			  (uint64_t)-1, 0 };
	int64_t ret;
	int err;

	if (pk->stub)
		return 0;
	err = inject_remote_syscall(in, pk, SYS_mmap, a, 6, &ret, why, whylen);
	if (err < 0)
		return err;
	if (ret < 0 && ret > -4096)
		return inject_why(why, whylen, (int)ret, "mmap in the target: %s",
				  strerror((int)-ret));
	pk->stub = (uint64_t)ret;
	err = inject_mem_write(pk, pk->stub, stub_code, sizeof(stub_code));
	if (err < 0)
		return inject_why(why, whylen, err, "writing the call page: %s", strerror(-err));
	return 0;
}

int inject_stub_data(struct cp_inject *in, struct inject_park *pk, size_t off, const void *data,
		     size_t len, uint64_t *addr, char *why, size_t whylen)
{
	int err;

	if (STUB_DATA + off + len > STUB_PAGE)
		return inject_why(why, whylen, -ENAMETOOLONG, "argument too long for the call page");
	err = stub_map(in, pk, why, whylen);
	if (err < 0)
		return err;
	err = inject_mem_write(pk, pk->stub + STUB_DATA + off, data, len);
	if (err < 0)
		return inject_why(why, whylen, err, "writing the call page: %s", strerror(-err));
	*addr = pk->stub + STUB_DATA + off;
	return 0;
}

int inject_stub_drop(struct cp_inject *in, struct inject_park *pk)
{
	uint64_t a[2] = { pk->stub, STUB_PAGE };
	int64_t ret;
	int err;

	if (!pk->stub)
		return 0;
	err = inject_remote_syscall(in, pk, SYS_munmap, a, 2, &ret, NULL, 0);
	if (err < 0)
		return err;
	pk->stub = 0;
	return ret < 0 ? (int)ret : 0;
}

int inject_remote_call(struct cp_inject *in, struct inject_park *pk, uint64_t fn,
		       const uint64_t *args, size_t nargs, uint64_t *ret, char *why, size_t whylen)
{
	struct user_regs_struct r, at;
	uint64_t a[6] = { 0 };
	int err;

	if (nargs > 6)
		return inject_why(why, whylen, -EINVAL, "more than 6 arguments");
	err = stub_map(in, pk, why, whylen);
	if (err < 0)
		return err;
	if (nargs)
		memcpy(a, args, nargs * sizeof(*a));
	r = pk->exact;
	r.rip = pk->stub;
	r.r11 = fn;
	r.rax = 0;
	r.rdi = a[0], r.rsi = a[1], r.rdx = a[2], r.rcx = a[3], r.r8 = a[4], r.r9 = a[5];
	err = op_start(in, pk, &r);
	if (err < 0)
		return inject_why(why, whylen, err, "preparing thread %d: %s", pk->tid,
				  strerror(-err));
	err = run_to(pk, pk->stub + STUB_SYSCALL_END, true, &at, why, whylen);
	if (err < 0)
		return err;
	*ret = at.rdi;
	return 0;
}
