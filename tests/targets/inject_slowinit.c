/*
 * A library whose constructor takes a while (it says when it begins and ends, with write(2)):
 * the injection tests kill the caller while the target's thread is inside dlopen.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((constructor)) static void slow_init(void)
{
	static const char begin[] = "SLOWINIT begin\n", end[] = "SLOWINIT end\n";
	struct timespec ts = { 0, 600 * 1000 * 1000 };

	if (write(1, begin, strlen(begin)) < 0)
		return;
	while (nanosleep(&ts, &ts) < 0)
		;
	if (write(1, end, strlen(end)) < 0)
		return;
}

long slowinit_ready(void)
{
	return 1;
}
