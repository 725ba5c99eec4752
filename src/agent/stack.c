/* The agent's stack copies: the bytes above a sampled thread's stack pointer, never faulting. */
#include <emmintrin.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent_int.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))
#define MAPS_LINE 256

/*
 * The thread's own stack mapping, learnt from /proc/self/maps at its first sample: the one
 * named [stack] (the main thread) or the one holding the thread's TCB (glibc puts it at the
 * top of every stack it makes), which live as long as the thread. 0: not looked up yet;
 * stack_hi 1: this thread has no such stack (its samples use process_vm_readv).
 * stack_live: where the thread's frames end, no copy goes further: above it lie the main
 * thread's arguments, environment and auxiliary vector, or a thread's static TLS and TCB,
 * which no unwinder reads (kilobytes a sample that cost the target a copy, and cprof a read).
 */
static TLS uint64_t stack_lo, stack_hi, stack_live;

/*
 * The bytes kept above the frames' end: _start's own frame and a little more, in case a
 * program's outermost frame sits just above it.
 */
#define LIVE_MARGIN 256

static uint64_t tcb_address(void)
{
	uint64_t tcb;

	__asm__("mov %%fs:0, %0" : "=r"(tcb));
	return tcb;
}

static uint64_t parse_hex(const char **s)
{
	uint64_t v = 0;

	for (;; (*s)++) {
		char c = **s;

		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* One line of maps: whether it is the stack mapping of this thread holding sp. */
static int stack_line(const char *line, uint64_t sp, uint64_t tcb, uint64_t *lo, uint64_t *hi)
{
	const char *s = line;
	size_t len = strlen(line);

	*lo = parse_hex(&s);
	if (*s++ != '-')
		return 0;
	*hi = parse_hex(&s);
	if (sp < *lo || sp >= *hi)
		return 0;
	if (tcb >= *lo && tcb < *hi)
		return 1;
	return len >= 7 && !strcmp(line + len - 7, "[stack]");
}

/*
 * The end of the thread's frames in its mapping [lo, hi): the main thread's frames end where
 * the kernel put argc (glibc's __libc_stack_end), another glibc thread's below its TCB.
 */
static uint64_t live_end(uint64_t lo, uint64_t hi, uint64_t tcb)
{
	uint64_t end = hi;

	if (tcb >= lo && tcb < hi)
		end = tcb;
	else if (agent_sess.stack_end > lo && agent_sess.stack_end < hi)
		end = agent_sess.stack_end;
	return end + LIVE_MARGIN < hi ? end + LIVE_MARGIN : hi;
}

/* Find this thread's stack mapping with sp in it, reading maps without allocating. */
static void learn_stack(uint64_t sp)
{
	char buf[2048], line[MAPS_LINE];
	uint64_t tcb = tcb_address(), lo, hi;
	size_t ll = 0;
	ssize_t n;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);

	stack_hi = 1;
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < MAPS_LINE - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = 0;
			ll = 0;
			if (stack_line(line, sp, tcb, &lo, &hi)) {
				stack_lo = lo;
				stack_hi = hi;
				stack_live = live_end(lo, hi, tcb);
				close(fd);
				return;
			}
		}
	}
	close(fd);
}

/* Through the kernel, which stops at the end of the mapping instead of faulting. */
static uint32_t copy_vm_readv(uint8_t *dst, uint64_t sp, uint32_t len)
{
	struct iovec local = { dst, len }, remote = { (void *)sp, len };
	ssize_t n;

	if (agent_sess.vm_readv_broken)
		return 0;
	n = syscall(SYS_process_vm_readv, agent_sess.pid, &local, 1UL, &remote, 1UL, 0UL);
	if (n < 0) {
		if (errno == ENOSYS || errno == EPERM)
			agent_sess.vm_readv_broken = 1;
		return 0;
	}
	return (uint32_t)n;
}

/*
 * memcpy into the ring with non-temporal stores: the ring's lines are not read first and do
 * not push the target's own data out of its caches (kilobytes a sample). Ordered before the
 * record's commit by the sfence.
 */
static void copy_streaming(uint8_t *dst, const uint8_t *src, uint32_t len)
{
	uint32_t head = (uint32_t)(-(uintptr_t)dst & 15);

	if (head > len)
		head = len;
	memcpy(dst, src, head);
	dst += head;
	src += head;
	len -= head;
	for (; len >= 64; len -= 64, dst += 64, src += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)src);
		__m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
		__m128i d = _mm_loadu_si128((const __m128i *)(src + 48));

		_mm_stream_si128((__m128i *)dst, a);
		_mm_stream_si128((__m128i *)(dst + 16), b);
		_mm_stream_si128((__m128i *)(dst + 32), c);
		_mm_stream_si128((__m128i *)(dst + 48), d);
	}
	memcpy(dst, src, len);
	_mm_sfence();
}

uint32_t agent_copy_stack(uint8_t *dst, uint64_t sp, uint32_t len)
{
	if (!stack_hi)
		learn_stack(sp);
	if (sp >= stack_lo && sp < stack_live) {
		if (len > stack_live - sp)
			len = (uint32_t)(stack_live - sp);
		copy_streaming(dst, (const uint8_t *)(uintptr_t)sp, len);
		return len;
	}
	return copy_vm_readv(dst, sp, len);
}
