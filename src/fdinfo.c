/* src/fdinfo.c: placeholder until its module lands. */
extern int cp_placeholder_src_fdinfo_c;
