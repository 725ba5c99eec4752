/* src/util.c: placeholder until its module lands. */
extern int cp_placeholder_src_util_c;
