/* src/pprof_write.c: placeholder until its module lands. */
extern int cp_placeholder_src_pprof_write_c;
