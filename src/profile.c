/* src/profile.c: placeholder until its module lands. */
extern int cp_placeholder_src_profile_c;
