/* src/proc.c: placeholder until its module lands. */
extern int cp_placeholder_src_proc_c;
