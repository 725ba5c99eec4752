/* Tracepoint ids from tracefs, mounting it at /sys/kernel/tracing when it is missing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "tracefs.h"
#include "util.h"

static const char *const roots[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };

static long read_id(const char *root, const char *group, const char *name)
{
	char path[512], buf[32], *end;
	long id;
	int err;

	snprintf(path, sizeof(path), "%s/events/%s/%s/id", root, group, name);
	err = cp_read_file(path, buf, sizeof(buf), NULL);
	if (err < 0)
		return err;
	id = strtol(buf, &end, 10);
	return end == buf || id < 0 ? -EINVAL : id;
}

static bool has_events(const char *root)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/events", root);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

long cp_tracefs_event_id(const char *group, const char *name)
{
	for (size_t i = 0; i < CP_ARRAY_SIZE(roots); i++)
		if (has_events(roots[i]))
			return read_id(roots[i], group, name);
	if (mount("nodev", roots[0], "tracefs", 0, NULL) < 0)
		return errno == ENODEV ? -ENOENT : -errno;
	return read_id(roots[0], group, name);
}
