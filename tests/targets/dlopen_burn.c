/*
 * dlopen_burn: idles until SIGUSR1, then dlopens libburn.so (next to this executable) and
 * burns CPU in its burn_in_library() for about --seconds S (default 3), printing BURNING
 * first; then idles again. For profiling a process while it loads a library. With --leak MB
 * instead: leaks MB blocks of 1 MiB from the library's leak_in_library(), printing LEAKED.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = 3;
	int leak_mb = -1;
	char exe[PATH_MAX], lib[PATH_MAX + 16];
	ssize_t n;

	if (argc > 2 && !strcmp(argv[1], "--seconds"))
		seconds = atof(argv[2]);
	if (argc > 2 && !strcmp(argv[1], "--leak"))
		leak_mb = atoi(argv[2]);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return 1;
	exe[n] = '\0';
	snprintf(lib, sizeof(lib), "%s/libburn.so", dirname(exe));
	signal(SIGUSR1, on_usr1);
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	while (!go)
		usleep(10000);

	void *h = dlopen(lib, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
		return 1;
	}
	if (leak_mb >= 0) {
		void (*leak)(int) = (void (*)(int))dlsym(h, "leak_in_library");

		if (!leak)
			return 1;
		leak(leak_mb);
		printf("LEAKED\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	void (*burn)(double) = (void (*)(double))dlsym(h, "burn_in_library");
	if (!burn)
		return 1;
	printf("BURNING\n");
	fflush(stdout);
	for (double end = now() + seconds; now() < end;)
		burn(0.05);
	printf("DONE\n");
	fflush(stdout);
	for (;;)
		pause();
}
