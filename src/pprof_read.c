/* src/pprof_read.c: placeholder until its module lands. */
extern int cp_placeholder_src_pprof_read_c;
