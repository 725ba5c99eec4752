/* Kernel tracepoints by name: their perf event ids from tracefs (mounted when it is not). */
#ifndef CP_TRACEFS_H
#define CP_TRACEFS_H

/*
 * The id of tracepoint group:name (a PERF_TYPE_TRACEPOINT config), read from tracefs at
 * /sys/kernel/tracing or /sys/kernel/debug/tracing. When neither has events, tracefs is
 * mounted at /sys/kernel/tracing (as `mount -t tracefs nodev /sys/kernel/tracing` would; it
 * needs root) and read again. Returns the id (>= 0) or -errno: -ENOENT (no such tracepoint, or
 * no tracefs), -EPERM/-EACCES (tracefs not mounted and we may not mount it).
 */
long cp_tracefs_event_id(const char *group, const char *name);

#endif
