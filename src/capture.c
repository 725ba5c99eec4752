/* src/capture.c: placeholder until its module lands. */
extern int cp_placeholder_src_capture_c;
