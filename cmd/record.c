/* cmd/record.c: placeholder until its module lands. */
extern int cp_placeholder_cmd_record_c;
