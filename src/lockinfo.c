/* src/lockinfo.c: placeholder until its module lands. */
extern int cp_placeholder_src_lockinfo_c;
