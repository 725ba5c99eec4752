/* symbolize/demangle.c: placeholder until its module lands. */
extern int cp_placeholder_symbolize_demangle_c;
