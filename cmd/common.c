/* Shared command-line plumbing: error lines, PID checks, atomic output files. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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
	if (!allow_zombie && cp_proc_is_zombie((int)v, &st)) {
		cp_error(what, "is a zombie (exited, not yet reaped by its parent %d): nothing to %s",
			 st.ppid, cmd);
		return CP_EXIT_FAILURE;
	}
	*pid = (int)v;
	return 0;
}

int cp_cmd_pid_option(const char *cmd, const char *arg, const char **out)
{
	if (arg[0] == '-' && arg[1] && !isdigit((unsigned char)arg[1])) {
		cp_error(cmd, "-p needs a PID, not the option '%s'", arg);
		cp_hint("run 'cprof %s --help'", cmd);
		return CP_EXIT_USAGE;
	}
	*out = arg;
	return 0;
}

/* Whether capability cap is in our effective set (CapEff of /proc/self/status). */
static bool has_cap(int cap)
{
	char text[4096], *p;
	size_t len = 0;

	if (cp_read_file("/proc/self/status", text, sizeof(text), &len) < 0)
		return false;
	p = strstr(text, "\nCapEff:");
	return p && (strtoull(p + 8, NULL, 16) >> cap & 1);
}

/*
 * The target runs as our user, yet its /proc files belong to root: the kernel's sign of a
 * process that is not dumpable (a set-id program, one that dropped privileges, or
 * prctl(PR_SET_DUMPABLE, 0)), which only CAP_SYS_PTRACE may trace.
 */
static bool same_user_not_dumpable(int pid)
{
	char path[64], text[4096], *p;
	struct stat st;
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	if (stat(path, &st) < 0 || st.st_uid == getuid())
		return false;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (cp_read_file(path, text, sizeof(text), &len) < 0)
		return false;
	p = strstr(text, "\nUid:");
	return p && (uid_t)strtoul(p + 5, NULL, 10) == getuid();
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

		if (geteuid() != 0 && has_cap(CAP_SYS_PTRACE) && !has_cap(CAP_DAC_READ_SEARCH)) {
			cp_error(what, "permission denied: another user's /proc files need "
				       "CAP_DAC_READ_SEARCH as well as CAP_SYS_PTRACE");
			cp_hint("add cap_dac_read_search (docs/SECURITY.md), or run as root");
			return;
		}
		if (geteuid() != 0 && same_user_not_dumpable(pid)) {
			cp_error(what, "permission denied: the process is not dumpable (it changed "
				       "its user or group, or set PR_SET_DUMPABLE to 0): only "
				       "CAP_SYS_PTRACE may trace it");
			cp_hint("run as root, or give cprof cap_sys_ptrace (docs/SECURITY.md)");
			return;
		}
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

/*
 * Output goes through a stdio stream whose writes record the first error (errno is gone by
 * the time fclose reports a failed flush): a full disk is reported as "No space left on
 * device", not as an I/O error.
 */
static ssize_t cookie_write(void *c, const char *buf, size_t size)
{
	struct cp_output *out = c;
	size_t done = 0;

	while (done < size) {
		ssize_t w = write(out->fd, buf + done, size - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!out->err)
				out->err = w < 0 ? -errno : -EIO;
			return done ? (ssize_t)done : -1;
		}
		done += (size_t)w;
	}
	return (ssize_t)done;
}

static int cookie_close(void *c)
{
	struct cp_output *out = c;

	if (out->fd >= 0 && out->fd != STDOUT_FILENO && close(out->fd) < 0 && !out->err)
		out->err = -errno;
	out->fd = -1;
	return 0;
}

/* out->f over out->fd. 0 or -errno. */
static int open_stream(struct cp_output *out)
{
	static const cookie_io_functions_t io = { .write = cookie_write, .close = cookie_close };

	out->f = fopencookie(out, "w", io);
	if (!out->f)
		return -errno;
	large_buffer(out);
	return 0;
}

/* Whether path's folder is /proc or /sys, where nothing is to be written as a report. */
static bool on_pseudo_fs(const char *path)
{
	char *copy = strdup(path);
	struct statfs fs;
	bool pseudo;

	if (!copy)
		return false;
	pseudo = statfs(dirname(copy), &fs) == 0 &&
		 (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC);
	free(copy);
	return pseudo;
}

/* Devices and FIFOs (/dev/null, a pipe) are written in place: nothing to rename. */
static int open_in_place(struct cp_output *out, const char *path, const struct stat *st)
{
	if (S_ISFIFO(st->st_mode))
		cp_note("%s: a FIFO, not a regular file: written in place", path);
	else if (S_ISSOCK(st->st_mode) || S_ISDIR(st->st_mode)) {
		cp_error(path, "cannot write: %s", S_ISDIR(st->st_mode) ? "a directory"
					       : "a socket, not a regular file");
		return -EINVAL;
	}
	out->fd = open(path, O_WRONLY | O_CLOEXEC);
	if (out->fd < 0) {
		int err = -errno;

		cp_error(path, "cannot write: %s", strerror(-err));
		return err;
	}
	return open_stream(out);
}

int cp_output_open(struct cp_output *out, const char *cmd, const char *path)
{
	struct stat st;
	int err;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->file.fd = -1;
	out->path = strdup(path);
	if (!out->path)
		return -ENOMEM;
	if (!strcmp(path, "-")) {
		out->f = stdout;	/* itself: the writers color only stdout */
		return 0;
	}
	if (on_pseudo_fs(path)) {
		cp_error(path, "cannot write: in /proc or /sys, not a regular file system");
		err = -EINVAL;
		goto done;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		err = open_in_place(out, path, &st);
		goto done;
	}
	err = cp_atomic_file_open(&out->file, path, 0644);
	if (err == -EPERM)
		cp_error(path, "cannot write: it belongs to another user, whose file is not "
			 "replaced");
	else if (err < 0)
		cp_error(path, "cannot write: %s", strerror(-err));
	if (err == 0) {
		out->fd = dup(out->file.fd);	/* the stream's: the unnamed file's stays open */
		err = out->fd < 0 ? -errno : open_stream(out);
	}
done:
	if (err < 0)
		cp_output_abort(out);
	return err;
}

int cp_output_commit(struct cp_output *out, const char *cmd)
{
	int err = 0;

	if (!out->f)
		return -EBADF;
	errno = 0;
	if ((fflush(out->f) != 0 || ferror(out->f)) && !out->err)
		out->err = errno ? -errno : -EIO;
	if (out->f != stdout && fclose(out->f) != 0 && !out->err)
		out->err = -EIO;
	out->f = NULL;
	err = out->err;
	free(out->buf);
	out->buf = NULL;
	if (out->file.open) {
		if (err)
			cp_atomic_file_abort(&out->file);
		else
			err = cp_atomic_file_commit(&out->file);
	}
	if (err)
		cp_error(strcmp(out->path, "-") ? out->path : "standard output",
			 "write failed: %s", strerror(-err));
	free(out->path);
	out->path = NULL;
	return err;
}

void cp_output_abort(struct cp_output *out)
{
	if (out->f && out->f != stdout)
		fclose(out->f);
	else if (out->fd >= 0 && out->fd != STDOUT_FILENO)
		close(out->fd);
	free(out->buf);
	cp_atomic_file_abort(&out->file);
	free(out->path);
	memset(out, 0, sizeof(*out));
	out->fd = -1;
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

int cp_cmd_parse_pids(const char *cmd, const char *arg, int *pids, size_t max, size_t *npids)
{
	char *copy, *tok, *save = NULL;
	int rc = 0;

	/* strtok_r would skip empty items silently: "1,,2" or ",1" is a typo, not a list. */
	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,")) {
		cp_error(cmd, "invalid PID list '%s': empty item (usage: -p PID[,PID...])", arg);
		return CP_EXIT_USAGE;
	}
	copy = strdup(arg);
	if (!copy) {
		cp_error(cmd, "out of memory");
		return CP_EXIT_FAILURE;
	}
	*npids = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool dup = false;
		int pid;

		rc = cp_cmd_check_pid(cmd, tok, false, &pid);
		if (rc)
			break;
		for (size_t i = 0; i < *npids; i++)
			dup |= pids[i] == pid;
		if (dup)
			continue;
		if (*npids == max) {
			cp_error(cmd, "too many PIDs: at most %zu", max);
			rc = CP_EXIT_USAGE;
			break;
		}
		pids[(*npids)++] = pid;
	}
	if (!rc && !*npids) {
		cp_error(cmd, "invalid PID list '%s'", arg);
		rc = CP_EXIT_USAGE;
	}
	free(copy);
	return rc;
}
