/* cmd/report.c: placeholder until its module lands. */
extern int cp_placeholder_cmd_report_c;
