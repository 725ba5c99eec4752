/* cprof report: print a pprof file (ours or anyone's) as a top table, folded stacks or SVG. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "profile.h"
#include "profiling.h"
#include "util.h"

/* Bigger than any real profile file, small enough to read into memory at once. */
#define REPORT_MAX_FILE (512u << 20)
#define TOP_MAX 1000000000L

static const char usage_text[] =
	"usage: cprof report FILE [--top N] [--format text|folded|svg]\n"
	"\n"
	"Read a pprof profile (written by cprof, Go's runtime/pprof or any other producer;\n"
	"gzipped or not) and print it: a table of functions by CPU time like\n"
	"'go tool pprof -top', or one line per stack for flame graph tools. FILE '-' reads\n"
	"standard input.\n"
	"\n"
	"Options:\n"
	"  -n, --top N            show the N functions with the most flat time (text only;\n"
	"                         default: all)\n"
	"  -f, --format FORMAT    text (default), folded ('root;caller;callee count' per\n"
	"                         line, for flamegraph.pl, inferno, speedscope) or svg (an\n"
	"                         interactive flame graph)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Columns of the table: flat is the time in the function itself, cum includes its\n"
	"callees; sum% is the running total of flat%. Inlined functions are rows of their own.\n"
	"\n"
	"Examples:\n"
	"  cprof report cprof-4242-20261127-150000.pb.gz --top 20\n"
	"  cprof report cpu.pprof --format folded | flamegraph.pl > cpu.svg\n"
	"  cprof report prof.pb.gz --format svg > flame.svg\n";

struct report_options {
	const char *file;
	enum cp_profile_format format;
	size_t top;
	bool top_given;
};

static const struct option long_options[] = {
	{ "top", required_argument, NULL, 'n' },
	{ "format", required_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* 0, -1 after --help, or the exit code for a bad command line (already reported). */
static int parse_options(int argc, char **argv, struct report_options *o)
{
	long v;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n:f:h", long_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (cp_parse_long(optarg, 1, TOP_MAX, &v) < 0) {
				cp_error("report", "invalid --top '%s': expected a number from 1",
					 optarg);
				return CP_EXIT_USAGE;
			}
			o->top = (size_t)v;
			o->top_given = true;
			break;
		case 'f':
			/* A report is for people and flame graph tools: no pprof out. */
			if (cp_prof_format_parse(optarg, &o->format) < 0 ||
			    o->format == CP_PROFILE_PPROF) {
				cp_error("report", "invalid --format '%s': expected %s", optarg,
					 "text, folded or svg");
				return CP_EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case ':':
			cp_error("report", "option '%s' needs a value", argv[optind - 1]);
			cp_hint("run 'cprof report --help'");
			return CP_EXIT_USAGE;
		default:
			if (optopt)
				cp_error("report", "unknown option '-%c'", optopt);
			else
				cp_error("report", "unknown option '%s'", argv[optind - 1]);
			cp_hint("run 'cprof report --help'");
			return CP_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cp_error("report", "missing FILE");
		cp_hint("run 'cprof report --help'");
		return CP_EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		cp_error("report", "unexpected argument '%s': one FILE at a time",
			 argv[optind + 1]);
		return CP_EXIT_USAGE;
	}
	o->file = argv[optind];
	if (!*o->file) {
		cp_error("report", "invalid FILE '': expected a path or '-'");
		return CP_EXIT_USAGE;
	}
	if (o->top_given && o->format != CP_PROFILE_TEXT) {
		cp_error("report", "--top applies to the text table, not to --format %s",
			 o->format == CP_PROFILE_FOLDED ? "folded" : "svg");
		return CP_EXIT_USAGE;
	}
	return 0;
}

/* Why cp_profile_read refused the data, for "FILE: not a pprof profile: WHY". */
static const char *read_error(int err, size_t len)
{
	if (len == 0)
		return "empty file";
	switch (err) {
	case -EBADMSG:
		return "corrupt or truncated data";
	case -EINVAL:
		return "no pprof string table (is it a profile?)";
	case -EFBIG:
		return "too large to read (inflates to over 64 times its size, 16 MiB at least, "
		       "256 MiB at most, or decodes to over 16 times that)";
	default:
		return strerror(-err);
	}
}

int cmd_report(int argc, char **argv)
{
	struct report_options o = { .format = CP_PROFILE_TEXT };
	const char *what;
	struct cp_profile *prof = NULL;
	char *data = NULL, *text = NULL;
	size_t len = 0, text_len = 0;
	FILE *mem;
	int rc, err;

	rc = parse_options(argc, argv, &o);
	if (rc)
		goto out;	/* -1: --help */
	what = strcmp(o.file, "-") ? o.file : "standard input";

	err = cp_read_file_alloc(strcmp(o.file, "-") ? o.file : "/dev/stdin", REPORT_MAX_FILE,
				 &data, &len);
	if (err == -EFBIG) {
		cp_error(what, "not a pprof profile: larger than %u MiB", REPORT_MAX_FILE >> 20);
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	if (err < 0) {
		cp_error(what, "cannot read: %s", strerror(-err));
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	err = cp_profile_read(data, len, &prof);
	if (err == -ENOMEM) {
		cp_error(what, "cannot read profile: out of memory");
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	if (err < 0) {
		cp_error(what, "not a pprof profile: %s", read_error(err, len));
		rc = CP_EXIT_FAILURE;
		goto out;
	}

	/* Render in memory first: standard output gets the whole report or nothing. */
	mem = open_memstream(&text, &text_len);
	if (!mem) {
		cp_error("report", "out of memory");
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	err = cp_profile_write(prof, o.format, mem, o.top);
	if (fclose(mem) != 0 && !err)
		err = -ENOMEM;
	if (err < 0) {
		cp_error(what, "cannot format profile: %s", strerror(-err));
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	if (err > 0)
		cp_note("note: some sums exceed the int64 range: shown held at its limit");
	if (fwrite(text, 1, text_len, stdout) != text_len || fflush(stdout) != 0) {
		cp_error("standard output", "write failed: %s", strerror(errno));
		rc = CP_EXIT_FAILURE;
		goto out;
	}
	rc = CP_EXIT_OK;
out:
	free(text);
	cp_profile_free(prof);
	free(data);
	return rc < 0 ? CP_EXIT_OK : rc;
}
