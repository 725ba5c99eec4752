/* cmd/attach.c: placeholder until its module lands. */
extern int cp_placeholder_cmd_attach_c;
