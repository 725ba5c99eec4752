/* The memory map of a process, parsed from /proc/PID/maps. */
#ifndef CP_MAPS_H
#define CP_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps on what we accept from another process's /proc files. */
#define CP_MAPS_MAX_ENTRIES 65536
#define CP_MAPS_MAX_BYTES (64u << 20)

struct cp_map {
	uint64_t start;		/* first address, inclusive */
	uint64_t end;		/* last address, exclusive */
	uint64_t offset;	/* file offset of start */
	uint64_t inode;
	unsigned int dev_major;
	unsigned int dev_minor;
	char perms[5];		/* "r-xp" */
	char *path;		/* owned; "" for anonymous; " (deleted)" stripped */
	bool deleted;		/* the file was deleted or replaced after mapping */
};

struct cp_maps {
	int pid;
	struct cp_map *v;	/* sorted by start (as the kernel prints them) */
	size_t n;
	bool truncated;		/* more than CP_MAPS_MAX_ENTRIES: the rest were dropped */
};

/* Parse maps text (the format of /proc/PID/maps). 0 or -errno; out is written only on success. */
int cp_maps_parse(const char *text, struct cp_maps *out);
/* Read and parse /proc/PID/maps. 0 or -errno (-ESRCH when the process is gone). */
int cp_maps_read(int pid, struct cp_maps *out);
void cp_maps_release(struct cp_maps *maps);

/* The mapping that contains addr, or NULL. Binary search. */
const struct cp_map *cp_maps_find(const struct cp_maps *maps, uint64_t addr);

/* True for mappings backed by a regular file (not [stack], [vdso], anonymous, memfd...). */
bool cp_map_is_file(const struct cp_map *map);

/* Basename of map->path, or the whole bracketed name ("[vdso]"), or "[anon]". Borrowed. */
const char *cp_map_basename(const struct cp_map *map);

/*
 * The path through which cprof should open the file behind map: /proc/PID/root/PATH, or
 * /proc/PID/map_files/START-END when the file was deleted or replaced. Writes buf (NUL-
 * terminated). 0 or -errno (-ENAMETOOLONG, -ENOENT for non-file maps).
 */
int cp_map_open_path(int pid, const struct cp_map *map, char *buf, size_t size);

/*
 * Open the file behind map without a race against the target renaming paths: through
 * /proc/PID/map_files/START-END (the mapped object itself, whatever its path names now) when
 * cprof may (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else through /proc/PID/root/PATH, kept
 * only when the file opened is the mapped one (device and inode as maps says). Never a device,
 * FIFO or socket: opened O_NONBLOCK and kept only when a regular file. buf gets the path
 * opened. An fd, or -errno (-ESTALE: the path names another file now; -ENOEXEC: not a
 * regular file; -ENOENT: not a file mapping).
 */
int cp_map_open(int pid, const struct cp_map *map, char *buf, size_t size);

/*
 * The load bias of the ELF object behind map: the number to add to an ELF virtual address
 * to get the runtime address, computed from the mapping's start and offset and the PT_LOAD
 * headers of the file. Implemented in symbolize/ (it needs libelf) — see symbolize.h.
 */

#endif
