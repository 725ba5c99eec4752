/* src/deadlock.c: placeholder until its module lands. */
extern int cp_placeholder_src_deadlock_c;
