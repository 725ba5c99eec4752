/* src/flamegraph.c: placeholder until its module lands. */
extern int cp_placeholder_src_flamegraph_c;
