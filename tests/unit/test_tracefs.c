/* Unit tests of tracepoint ids from tracefs (cp_tracefs_event_id). */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "tracefs.h"

int main(void)
{
	long clone3, again;

	setvbuf(stdout, NULL, _IOLBF, 0);
	clone3 = cp_tracefs_event_id("syscalls", "sys_enter_clone3");
	if (clone3 == -EPERM || clone3 == -EACCES)
		skip("tracefs is not mounted and may not be mounted by this user");
	if (clone3 == -ENOENT)
		skip("no syscall tracepoints in this kernel");
	CHECK(clone3 >= 0, "sys_enter_clone3: %ld", clone3);
	/* Mounted now if it was not: the second look reads the same id. */
	again = cp_tracefs_event_id("syscalls", "sys_enter_clone3");
	CHECK(again == clone3, "%ld then %ld", clone3, again);
	CHECK(cp_tracefs_event_id("syscalls", "sys_enter_clone") != clone3, "clone is another id");
	CHECK(cp_tracefs_event_id("no_such_group", "no_such_event") == -ENOENT, "unknown event");
	return check_done("tracefs");
}
