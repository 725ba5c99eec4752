/*
 * JIT symbol maps: /tmp/perf-PID.map, written by runtimes that generate code (node
 * --perf-basic-prof, the JVM's perf-map-agent, LuaJIT, .NET with DOTNET_PerfMapEnabled), one
 * "START SIZE NAME" line (hex, 0x optional) per function, appended as code is generated.
 */
#ifndef CP_PERFMAP_H
#define CP_PERFMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cp_perfmap;

/* Caps on what a target's file may make cprof read and keep. */
#define CP_PERFMAP_MAX_BYTES (64u << 20)
#define CP_PERFMAP_MAX_NAME 512

/*
 * Parse a map from text (len bytes, need not be NUL-terminated). Malformed lines are
 * skipped; when two entries cover one address the later line wins (the runtime reused the
 * memory). 0 with *out set (maybe empty), or -ENOMEM.
 */
int cp_perfmap_parse(const char *text, size_t len, struct cp_perfmap **out);

/*
 * Load the map of process pid: /proc/PID/root/tmp/perf-NSPID.map (NSPID being the pid as its
 * own namespace sees it, ns_pid; pass pid when they are the same). The file must be a regular
 * file owned by root or by owner_uid, not a link, at most CP_PERFMAP_MAX_BYTES. 0 with *out
 * set, -ENOENT when there is none, -EPERM when it fails those checks, -errno otherwise.
 */
int cp_perfmap_load(int pid, int ns_pid, uid_t owner_uid, struct cp_perfmap **out);

/* The name of the function containing addr, *offset its distance from the start; or NULL. */
const char *cp_perfmap_lookup(const struct cp_perfmap *m, uint64_t addr, uint64_t *offset);

size_t cp_perfmap_count(const struct cp_perfmap *m);
void cp_perfmap_free(struct cp_perfmap *m);

#endif
