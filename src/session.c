/* src/session.c: placeholder until its module lands. */
extern int cp_placeholder_src_session_c;
