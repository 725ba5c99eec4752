/* unwind/unwind.c: placeholder until its module lands. */
extern int cp_placeholder_unwind_unwind_c;
