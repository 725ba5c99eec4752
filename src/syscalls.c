/* src/syscalls.c: placeholder until its module lands. */
extern int cp_placeholder_src_syscalls_c;
