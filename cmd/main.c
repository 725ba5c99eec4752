/* cprof's entry point: dispatch to a subcommand from the table. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "common.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "dump", cmd_dump, "every thread's stack and why it is blocked" },
	{ "attach", cmd_attach, "profile a running process (cpu, wall, block, mutex, threadcreate)" },
	{ "record", cmd_record, "run a command under the profiler; dump it if it hangs, report leaks" },
	{ "report", cmd_report, "print a pprof file as a top table or folded stacks" },
	{ "serve", cmd_serve, "pprof endpoints and Prometheus metrics over HTTP" },
	{ "watch", cmd_watch, "dump a process's threads when a threshold is crossed" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: cprof COMMAND [OPTIONS]\n"
		   "\n"
		   "Out-of-process profiler and thread dumper for native Linux programs.\n"
		   "\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f, "\n"
		   "  cprof dump -p PID [--format text|json] [--group] [--kernel] [--stuck S] [-o FILE]\n"
		   "  cprof attach -p PID[,PID...] [--seconds N] [-F HZ] [--profile TYPE] [--format F] [-o FILE]\n"
		   "  cprof record [--seconds N] [-F HZ] [--profile TYPE] [--timeout S] [--leaks] [-o FILE] -- CMD [ARGS...]\n"
		   "  cprof report FILE [--top N] [--format text|folded]\n"
		   "  cprof serve [-p PID[,PID...]] [--listen ADDR:PORT] [--auth-file FILE] [--tls-cert F --tls-key F]\n"
		   "  cprof watch -p PID [--threads N] [--fds N] [--blocked N] [--rss SIZE] [--interval S] [-o DIR]\n"
		   "\n"
		   "Run 'cprof COMMAND --help' for a command's options. See cprof(1).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CP_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		printf("cprof %s\n", CPROF_VERSION);
		return CP_EXIT_OK;
	}
	if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
		usage(stdout);
		return CP_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (!strcmp(name, subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	}
	cp_error(name, "unknown command");
	cp_hint("commands are dump, attach, record, report, serve and watch; see 'cprof --help'");
	return CP_EXIT_USAGE;
}
