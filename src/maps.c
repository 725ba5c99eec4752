/* src/maps.c: placeholder until its module lands. */
extern int cp_placeholder_src_maps_c;
