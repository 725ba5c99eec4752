/* unwind/modules.c: placeholder until its module lands. */
extern int cp_placeholder_unwind_modules_c;
