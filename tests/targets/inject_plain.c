/* Fixture for the injection refusals: prints READY and sleeps; built static and against musl. */
#include <stdio.h>
#include <time.h>

int main(void)
{
	struct timespec ts = { 3600, 0 };

	printf("READY\n");
	fflush(stdout);
	for (;;)
		nanosleep(&ts, NULL);
}
