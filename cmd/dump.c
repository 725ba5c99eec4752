/* cmd/dump.c: placeholder until its module lands. */
extern int cp_placeholder_cmd_dump_c;
