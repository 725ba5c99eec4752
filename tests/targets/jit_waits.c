/*
 * Fixture for JIT code: a thread runs machine code generated at run time in an anonymous
 * executable mapping, which calls libc's read() on a pipe and blocks there; the code is
 * named in /tmp/perf-PID.map as JIT runtimes name theirs ("jit_wait_for_input"). Another
 * thread blocks in read() called from ordinary code, for comparison. With "spin", a third
 * thread spins in generated code named "jit_spin_loop" (for profiles). READY when set up;
 * with "nomap" no map is written.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "fixture.h"

static int pipe_fds[2];
static char map_path[64];

/* push %rbp; mov %rsp,%rbp; sub $16,%rsp; loop: mov $fd,%edi; mov %rsp,%rsi; mov $1,%edx;
 * movabs $read,%rax; call *%rax; jmp loop */
static size_t emit(uint8_t *p, int fd, uint64_t fn)
{
	uint8_t *s = p;
	uint8_t *loop;

	memcpy(p, "\x55\x48\x89\xe5\x48\x83\xec\x10", 8), p += 8;
	loop = p;
	*p++ = 0xbf;
	memcpy(p, &fd, 4), p += 4;
	memcpy(p, "\x48\x89\xe6", 3), p += 3;
	memcpy(p, "\xba\x01\x00\x00\x00", 5), p += 5;
	memcpy(p, "\x48\xb8", 2), p += 2;
	memcpy(p, &fn, 8), p += 8;
	memcpy(p, "\xff\xd0", 2), p += 2;
	*p = 0xeb;
	p[1] = (uint8_t)(int8_t)(loop - (p + 2));
	p += 2;
	return (size_t)(p - s);
}

static void *jit_thread(void *code)
{
	prctl(PR_SET_NAME, "jit-read");
	((void (*)(void))code)();
	return NULL;
}

__attribute__((noinline)) static void plain_read(void)
{
	char c;

	for (;;)
		if (read(pipe_fds[0], &c, 1) < 0) /* JIT:plain */
			break;
}

static void *spin_thread(void *code)
{
	prctl(PR_SET_NAME, "jit-spin");
	((void (*)(void))code)();
	return NULL;
}

static void *plain_thread(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "plain-read");
	plain_read();
	return NULL;
}

int main(int argc, char **argv)
{
	uint8_t *code;
	size_t len;
	pthread_t th;
	FILE *f;

	if (pipe(pipe_fds) < 0)
		die("pipe");
	code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED)
		die("mmap");
	/* Some padding first, as a JIT has other code around. */
	memset(code, 0xcc, 4096);
	len = emit(code + 0x40, pipe_fds[0], (uint64_t)(uintptr_t)read);
	/* push %rbp; mov %rsp,%rbp; jmp . */
	memcpy(code + 0x100, "\x55\x48\x89\xe5\xeb\xfe", 6);
	if (mprotect(code, 4096, PROT_READ | PROT_EXEC) < 0)
		die("mprotect");
	snprintf(map_path, sizeof(map_path), "/tmp/perf-%d.map", (int)getpid());
	if (argc < 2 || strcmp(argv[1], "nomap") != 0) {
		f = fopen(map_path, "w");
		if (!f)
			die("perf map");
		fprintf(f, "%lx %zx jit_wait_for_input\n", (unsigned long)(uintptr_t)(code + 0x40),
			len);
		fprintf(f, "%lx 6 jit_spin_loop\n", (unsigned long)(uintptr_t)(code + 0x100));
		fclose(f);
	}
	if (argc > 1 && strcmp(argv[1], "spin") == 0 &&
	    pthread_create(&th, NULL, spin_thread, code + 0x100) != 0)
		die("pthread_create");
	if (pthread_create(&th, NULL, jit_thread, code + 0x40) != 0 ||
	    pthread_create(&th, NULL, plain_thread, NULL) != 0)
		die("pthread_create");
	/* Both threads in read() before READY. */
	for (int tries = 0; tries < 5000; tries++) {
		int blocked = 0;

		for (int tid = getpid() + 1; tid <= getpid() + 4; tid++)
			blocked += task_syscall(tid) == 0;
		if (blocked >= 2)
			break;
		usleep(1000);
	}
	printf("READY\n");
	fflush(stdout);
	for (;;)
		pause();
}
