/* src/sampler.c: placeholder until its module lands. */
extern int cp_placeholder_src_sampler_c;
