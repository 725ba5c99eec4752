/* Shared command-line plumbing: error lines, PID checks, atomic output files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_dir.h"
#include "common.h"
#include "proc.h"
#include "util.h"

static void vline(const char *what, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One line, always: a WHY that came from elsewhere must not break the format. */
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (what)
		fprintf(stderr, "cprof: %s: %s\n", what, msg);
	else
		fprintf(stderr, "cprof: %s\n", msg);
}

void cp_error(const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(what, fmt, ap);
	va_end(ap);
}

void cp_hint(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline("hint", fmt, ap);
	va_end(ap);
}

void cp_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(NULL, fmt, ap);
	va_end(ap);
}

bool cp_stderr_is_tty(void)
{
	return isatty(STDERR_FILENO) == 1;
}

/*
 * The thread group (process) id of task id, from the Tgid line of /proc/ID/status; 0 when it
 * cannot be read. /proc/TID exists for every thread although readdir hides it, and its stat
 * names the thread, not the process, so only status tells a thread id from a process id.
 */
static int task_tgid(long id)
{
	char path[64], buf[1024];
	const char *p;
	long tgid;

	snprintf(path, sizeof(path), "/proc/%ld/status", id);
	if (cp_read_file(path, buf, sizeof(buf), NULL) < 0)
		return 0;
	p = strstr(buf, "\nTgid:");
	if (!p)
		return 0;
	tgid = strtol(p + strlen("\nTgid:"), NULL, 10);
	return tgid > 0 && tgid <= 0x7fffffff ? (int)tgid : 0;
}

int cp_cmd_check_pid(const char *cmd, const char *arg, bool allow_zombie, int *pid)
{
	struct cp_task_stat st;
	char what[64];
	long v;
	int err, tgid;

	if (!arg) {
		cp_error(cmd, "missing -p PID");
		cp_hint("run 'cprof %s --help'", cmd);
		return CP_EXIT_USAGE;
	}
	if (cp_parse_long(arg, 1, 0x7fffffff, &v) < 0) {
		cp_error(cmd, "invalid PID '%s': not a positive number", arg);
		return CP_EXIT_USAGE;
	}
	snprintf(what, sizeof(what), "pid %ld", v);
	if (v == getpid()) {
		cp_error(what, "is cprof itself");
		return CP_EXIT_FAILURE;
	}
	err = cp_proc_read_stat((int)v, 0, &st);
	if (err == -ENOENT || err == -ESRCH) {
		cp_error(what, "no such process");
		return CP_EXIT_FAILURE;
	}
	if (err < 0) {
		cp_error(what, "cannot read /proc/%ld/stat: %s", v, strerror(-err));
		return CP_EXIT_FAILURE;
	}
	tgid = task_tgid(v);
	if (tgid > 0 && tgid != (int)v) {
		/*
		 * A thread id (as top -H or a log shows it): a dump would be headed with the
		 * thread's id as the process, and perf events on one thread miss the others.
		 */
		cp_error(what, "is a thread of process %d, not a process", tgid);
		cp_hint("use -p %d", tgid);
		return CP_EXIT_FAILURE;
	}
	if (cp_proc_is_kernel_thread(&st)) {
		cp_error(what, "is a kernel thread (%s): it has no user stack to profile", st.comm);
		return CP_EXIT_FAILURE;
	}
	if (!allow_zombie && (st.state == 'Z' || st.state == 'X')) {
		cp_error(what, "is a zombie (exited, not yet reaped by its parent %d): nothing to %s",
			 st.ppid, cmd);
		return CP_EXIT_FAILURE;
	}
	*pid = (int)v;
	return 0;
}

void cp_cmd_explain_attach_error(const char *cmd, int pid, int err, int tracer)
{
	char what[64];

	snprintf(what, sizeof(what), "pid %d", pid);
	if (err == -EBUSY && tracer > 0) {
		char comm[CP_COMM_LEN] = "?";
		struct cp_task_stat st;

		if (cp_proc_read_stat(tracer, 0, &st) == 0)
			snprintf(comm, sizeof(comm), "%s", st.comm);
		cp_error(what, "already traced by process %d (%s)", tracer, comm);
		cp_hint("detach the other tracer (gdb, strace) first; only one tracer at a time");
		return;
	}
	if (err == -EPERM || err == -EACCES) {
		char scope[32] = "";

		if (geteuid() != 0) {
			cp_error(what, "permission denied: not allowed to trace a process of another "
				       "user without CAP_SYS_PTRACE");
			cp_hint("run as root or as the target's user");
			return;
		}
		if (cp_read_file("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof(scope), NULL) ==
			    0 &&
		    atoi(scope) >= 3) {
			cp_error(what, "permission denied: kernel.yama.ptrace_scope=%d forbids ptrace",
				 atoi(scope));
			cp_hint("ptrace_scope 3 can only be lowered by a reboot");
			return;
		}
		cp_error(what, "permission denied by the kernel (%s)", strerror(-err));
		cp_hint("check seccomp, LSM policy (AppArmor/SELinux) and container limits");
		return;
	}
	if (err == -ESRCH) {
		cp_error(what, "process exited");
		return;
	}
	cp_error(what, "cannot %s: %s", cmd, strerror(-err));
}

/*
 * Output files get a 64 KiB buffer: the SVG and text writers print many small pieces, and
 * stdio's default (the file's block size, 4 KiB) made that a system call per 4 KiB. The
 * buffer must be passed in: setvbuf ignores the size when it is to allocate one itself.
 */
#define OUTPUT_BUFFER (64u << 10)

static void large_buffer(struct cp_output *out)
{
	out->buf = malloc(OUTPUT_BUFFER);
	if (out->buf && setvbuf(out->f, out->buf, _IOFBF, OUTPUT_BUFFER) != 0) {
		free(out->buf);
		out->buf = NULL;
	}
}

int cp_output_open(struct cp_output *out, const char *cmd, const char *path)
{
	int fd;

	memset(out, 0, sizeof(*out));
	if (!strcmp(path, "-")) {
		out->path = strdup("-");
		out->f = stdout;
		return out->path ? 0 : -ENOMEM;
	}
	out->path = strdup(path);
	if (!out->path)
		return -ENOMEM;
	/* Devices and pipes (/dev/null, a fifo) are written in place: nothing to rename. */
	struct stat st;

	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		out->f = fopen(path, "we");
		if (!out->f) {
			int err = -errno;

			cp_error(path, "cannot write: %s", strerror(-err));
			free(out->path);
			out->path = NULL;
			return err;
		}
		large_buffer(out);
		return 0;
	}
	fd = cp_atomic_file_open(&out->file, path, 0644);
	if (fd < 0) {
		cp_error(path, "cannot write: %s", strerror(-fd));
		free(out->path);
		memset(out, 0, sizeof(*out));
		return fd;
	}
	out->f = fdopen(out->file.fd, "w");
	if (!out->f) {
		int err = -errno;

		cp_atomic_file_abort(&out->file);
		free(out->path);
		memset(out, 0, sizeof(*out));
		return err;
	}
	large_buffer(out);
	return 0;
}

int cp_output_commit(struct cp_output *out, const char *cmd)
{
	int err = 0;

	if (!out->f)
		return -EBADF;
	if (!out->file.tmp) {
		if (fflush(out->f) != 0 || ferror(out->f))
			err = errno ? -errno : -EIO;
		if (out->f != stdout && fclose(out->f) != 0 && !err)
			err = -errno;
		out->f = NULL;
		free(out->buf);
		out->buf = NULL;
		if (err)
			cp_error(strcmp(out->path, "-") ? out->path : "standard output",
				 "write failed: %s", strerror(-err));
		free(out->path);
		out->path = NULL;
		return err;
	}
	if (ferror(out->f))
		err = -EIO;
	if (fclose(out->f) != 0 && !err)
		err = -errno;
	out->f = NULL;
	out->file.fd = -1;	/* closed with f */
	free(out->buf);
	out->buf = NULL;
	if (err)
		cp_atomic_file_abort(&out->file);
	else
		err = cp_atomic_file_commit(&out->file);
	if (err)
		cp_error(out->path, "write failed: %s", strerror(-err));
	free(out->path);
	out->path = NULL;
	return err;
}

void cp_output_abort(struct cp_output *out)
{
	if (out->f && out->f != stdout) {
		fclose(out->f);
		out->file.fd = -1;	/* closed with f */
	}
	free(out->buf);
	cp_atomic_file_abort(&out->file);
	free(out->path);
	memset(out, 0, sizeof(*out));
}

char *cp_default_output_name(int pid, const char *ext)
{
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	char *name;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	if (asprintf(&name, "cprof-%d-%s.%s", pid, stamp, ext) < 0)
		return NULL;
	return name;
}

void cp_cmd_note_cache(void)
{
	char why[1024];
	int err = cp_cache_check(why, sizeof(why));

	if (err == -ENOENT && !why[0])
		cp_note("cache off: no cache directory (CPROF_CACHE_DIR empty, no HOME)");
	else if (err < 0)
		cp_note("cache off for this run: %s", why[0] ? why : strerror(-err));
}
