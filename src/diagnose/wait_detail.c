/* The words of a wait's detail: durations, timeouts read from the target, signal sets. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mem.h"
#include "wait_classify.h"

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vformat(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

int wait_set_detail(struct cp_wait *w, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = vformat(fmt, ap);
	va_end(ap);
	if (!s)
		return -ENOMEM;
	free(w->detail);
	w->detail = s;
	return 0;
}

/* A duration no one would wait for still prints, just not usefully. */
void wait_format_duration(char *buf, size_t size, int64_t ns)
{
	snprintf(buf, size, "%lld.%03llds", (long long)(ns / NS_PER_SEC),
		 (long long)(ns % NS_PER_SEC / 1000000));
}

void wait_format_timeout(char *buf, size_t size, const struct cp_wait *w, bool remaining)
{
	char d[48];

	if (w->timeout_unknown) {
		snprintf(buf, size, "timeout unknown");
	} else if (w->timeout_ns < 0) {
		snprintf(buf, size, "no timeout");
	} else {
		wait_format_duration(d, sizeof(d), w->timeout_ns);
		snprintf(buf, size, remaining ? "%s remaining" : "timeout %s", d);
	}
}

int wait_read_target(const struct cp_wait_input *in, uint64_t addr, void *buf, size_t len)
{
	struct cp_mem by_pid = CP_MEM_BY_PID(in->pid);
	long n = cp_mem_read(in->mem ? in->mem : &by_pid, addr, buf, len);

	if (n < 0)
		return (int)n;
	return n == (long)len ? 0 : -EFAULT;
}

/* Target clocks differ from ours inside another time namespace (monotonic, boottime only). */
static int64_t timens_offset(int pid, clockid_t clock)
{
	char path[64], text[256], *line;
	struct stat self, other;
	const char *want;
	FILE *f;
	int64_t off = 0;
	size_t n;

	if (clock == CLOCK_MONOTONIC)
		want = "monotonic";
	else if (clock == CLOCK_BOOTTIME)
		want = "boottime";
	else
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/ns/time", pid);
	if (stat(path, &other) || stat("/proc/self/ns/time", &self) || self.st_ino == other.st_ino)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/timens_offsets", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[16];
		long long sec, nsec;

		if (sscanf(line, "%15s %lld %lld", name, &sec, &nsec) == 3 && !strcmp(name, want) &&
		    sec > -INT32_MAX && sec < INT32_MAX)
			off = sec * NS_PER_SEC + nsec;
	}
	return off;
}

/* Read a struct timespec (or timeval when usec) from the target into ns. 0 or -errno. */
static int read_time(const struct cp_wait_input *in, uint64_t addr, bool usec, int64_t *ns)
{
	int64_t t[2];
	int err = wait_read_target(in, addr, t, sizeof(t));
	int64_t unit = usec ? 1000 : 1;

	if (err < 0)
		return err;
	if (t[0] < 0 || t[1] < 0 || t[1] >= NS_PER_SEC / unit)
		return -EINVAL;
	if (t[0] >= INT64_MAX / NS_PER_SEC)
		*ns = INT64_MAX;
	else
		*ns = t[0] * NS_PER_SEC + t[1] * unit;
	return 0;
}

void wait_timeout_from_ptr(const struct cp_wait_input *in, struct call *c, struct cp_wait *w,
			   uint64_t addr, bool usec, bool absolute, clockid_t clock)
{
	struct timespec now;
	int64_t ns = 0, now_ns;

	w->timeout_ns = -1;
	w->timeout_unknown = false;
	if (!addr)
		return;
	if (read_time(in, addr, usec, &ns) < 0) {
		w->timeout_unknown = true;
		return;
	}
	if (absolute) {
		if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC &&
		    clock != CLOCK_BOOTTIME && clock != CLOCK_TAI) {
			w->timeout_unknown = true;
			return;
		}
		if (clock_gettime(clock, &now)) {
			w->timeout_unknown = true;
			return;
		}
		now_ns = (int64_t)now.tv_sec * NS_PER_SEC + now.tv_nsec +
			 timens_offset(in->pid, clock);
		ns = ns > now_ns ? ns - now_ns : 0;
		c->remaining = true;
	}
	w->timeout_ns = ns;
}

void wait_timeout_from_ms(struct cp_wait *w, uint64_t arg)
{
	int ms = (int)arg;

	w->timeout_unknown = false;
	w->timeout_ns = ms < 0 ? -1 : (int64_t)ms * 1000000;
}

void wait_format_sigset(const struct cp_wait_input *in, uint64_t addr, char *buf, size_t size)
{
	uint64_t set;
	size_t len = 0;
	int sig, shown = 0;

	buf[0] = 0;
	if (!addr || wait_read_target(in, addr, &set, sizeof(set)) < 0)
		return;
	for (sig = 1; sig <= 64 && len + 24 < size; sig++) {
		const char *abbrev;

		if (!(set & (1ULL << (sig - 1))))
			continue;
		if (shown++ == 8) {
			snprintf(buf + len, size - len, " ...");
			return;
		}
		abbrev = sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;
		if (abbrev)
			len += snprintf(buf + len, size - len, "%sSIG%s", len ? " " : "", abbrev);
		else
			len += snprintf(buf + len, size - len, "%ssignal %d", len ? " " : "", sig);
	}
}

