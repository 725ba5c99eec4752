/* src/dump_text.c: placeholder until its module lands. */
extern int cp_placeholder_src_dump_text_c;
