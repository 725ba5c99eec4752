/* src/wait.c: placeholder until its module lands. */
extern int cp_placeholder_src_wait_c;
