/* symbolize/symbolize.c: placeholder until its module lands. */
extern int cp_placeholder_symbolize_symbolize_c;
