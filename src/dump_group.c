/* src/dump_group.c: placeholder until its module lands. */
extern int cp_placeholder_src_dump_group_c;
