/* src/profile_text.c: placeholder until its module lands. */
extern int cp_placeholder_src_profile_text_c;
