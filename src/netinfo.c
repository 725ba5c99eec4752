/* src/netinfo.c: placeholder until its module lands. */
extern int cp_placeholder_src_netinfo_c;
