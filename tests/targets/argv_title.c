/*
 * Fixture for programs that rewrite their argv area to show a status, as PostgreSQL and redis
 * do: the title goes over argv[0] and the rest of the area is filled with NULs ("nul") or
 * spaces ("space"). Started with a few long arguments; prints READY, then sleeps.
 */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "fixture.h"

int main(int argc, char **argv)
{
	static const char title[] = "argv_title: worker waiting";
	char *start = argv[0], *end = argv[argc - 1] + strlen(argv[argc - 1]);
	int fill = argc > 1 && strcmp(argv[1], "space") == 0 ? ' ' : '\0';

	if ((size_t)(end - start) <= sizeof(title))
		die("argv area too small for the title");
	memset(start, fill, (size_t)(end - start));
	memcpy(start, title, sizeof(title) - 1);
	if (fill == '\0')
		start[sizeof(title) - 1] = '\0';
	printf("READY\n");
	fflush(stdout);
	for (;;)
		pause();
}
