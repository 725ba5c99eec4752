/* Go programs in a dump (private to src/dump): reading the goroutines, releasing them. */
#ifndef CP_DUMP_GO_H
#define CP_DUMP_GO_H

#include "dump_run.h"

/*
 * Read the goroutines of run's process when it is a Go program (after the threads are
 * assembled: running goroutines take their thread's frames, threads learn their goroutine).
 * A Go runtime that cannot be read is no error: the dump says why (go_error). 0 or -ENOMEM.
 */
int dump_go_read(struct dump_run *run);
void dump_go_release(struct cp_dump *d);

/* dump_go_diag.c */
/* --stuck: read the goroutines before the watch (run->go_before). 0 or -ENOMEM. */
int dump_go_first_look(struct dump_run *run);
/* Diagnose the goroutines gs (n) read through rt into run->d's go_* fields. 0 or -ENOMEM. */
int dump_go_diagnose(struct dump_run *run, struct cp_go_runtime *rt,
		     const struct cp_goroutine *gs, size_t n);
/* Free the first look of run and the diagnosis of d (either may be NULL). */
void dump_go_diag_release(struct dump_run *run, struct cp_dump *d);

/* s copied into the dump's string table (made on first use); NULL for NULL or no memory. */
const char *dump_go_intern(struct cp_dump *d, const char *s);

#endif
