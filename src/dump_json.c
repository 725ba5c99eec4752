/* src/dump_json.c: placeholder until its module lands. */
extern int cp_placeholder_src_dump_json_c;
