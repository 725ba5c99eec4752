/* The profile model's mappings, functions and locations, deduplicated as they arrive. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "profile_internal.h"

/* ---- mappings ---- */

struct mapkey {
	int pid;
	uint64_t start;
	uint32_t file;
};

static uint32_t map_hash(int pid, uint64_t start, uint32_t file)
{
	return (uint32_t)cp_hash_mix(cp_hash_mix(cp_hash_mix(1, (uint64_t)pid), start), file);
}

static bool map_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_pmapping *m = &((const struct cp_profile *)ctx)->mappings[idx];
	const struct mapkey *k = key;

	return m->pid == k->pid && m->start == k->start && m->file == k->file;
}

int cp_profile_append_mapping(struct cp_profile *prof, const struct cp_pmapping *m, uint64_t *id)
{
	if (prof->nmappings >= CP_PROFILE_MAX_ENTRIES)
		return -E2BIG;
	if (cp_grow((void **)&prof->mappings, &prof->mappings_alloc, prof->nmappings + 1,
		    sizeof(*prof->mappings)) < 0)
		return -ENOMEM;
	prof->mappings[prof->nmappings++] = *m;
	*id = prof->nmappings;
	return 0;
}

int cp_profile_add_mapping(struct cp_profile *prof, int pid, const struct cp_map *map,
			   const char *build_id, bool has_functions, bool has_lines, uint64_t *id)
{
	struct cp_pmapping m = { 0 };
	struct mapkey key;
	uint32_t hash;
	int64_t idx;
	int err;

	if (!map)
		return -EINVAL;
	/*
	 * Anonymous memory (JIT code, stubs) gets a bracketed name: pprof complains about a
	 * mapping without file name but knows not to look for files named "[...]".
	 */
	err = cp_profile_intern(prof, map->path && *map->path ? map->path : "[anon]", &m.file);
	if (err < 0)
		return err;
	key = (struct mapkey){ pid, map->start, m.file };
	hash = map_hash(pid, map->start, m.file);
	idx = cp_htab_find(&prof->mapping_h, hash, map_eq, prof, &key);
	if (idx >= 0) {
		*id = (uint64_t)idx + 1;
		return 0;
	}
	err = cp_profile_intern(prof, build_id, &m.build_id);
	if (err < 0)
		return err;
	m.start = map->start;
	m.limit = map->end;
	m.offset = map->offset;
	m.pid = pid;
	/* What symbolization could do for this file; write time narrows it to what it did. */
	m.has_functions = has_functions;
	m.has_filenames = has_lines;
	m.has_line_numbers = has_lines;
	m.has_inline_frames = has_lines;
	m.deleted = map->deleted;
	err = cp_profile_append_mapping(prof, &m, id);
	if (err < 0)
		return err;
	if (cp_htab_insert(&prof->mapping_h, hash, (uint32_t)(*id - 1)) < 0) {
		prof->nmappings--;
		return -ENOMEM;
	}
	return 0;
}

static uint64_t swapped_id(uint64_t v, uint64_t a, uint64_t b)
{
	return v == a ? b : v == b ? a : v;
}

int cp_profile_set_main_mapping(struct cp_profile *prof, uint64_t id)
{
	struct cp_pmapping first;

	if (!id || id > prof->nmappings)
		return -EINVAL;
	if (id == 1)
		return 0;
	first = prof->mappings[0];
	prof->mappings[0] = prof->mappings[id - 1];
	prof->mappings[id - 1] = first;
	for (size_t i = 0; i < prof->nlocations; i++)
		prof->locations[i].mapping_id = swapped_id(prof->locations[i].mapping_id, 1, id);
	prof->kernel_mapping = swapped_id(prof->kernel_mapping, 1, id);
	cp_htab_swap(&prof->mapping_h, 0, (uint32_t)(id - 1));
	return 0;
}

int cp_profile_kernel_mapping(struct cp_profile *prof, uint64_t *id)
{
	struct cp_pmapping m = { 0 };
	int err;

	if (prof->kernel_mapping) {
		*id = prof->kernel_mapping;
		return 0;
	}
	err = cp_profile_intern(prof, "[kernel]", &m.file);
	if (err < 0)
		return err;
	/* The kernel half of x86-64 addresses; pprof does not try to symbolize "[...]" files. */
	m.start = 0xffff800000000000ull;
	m.limit = UINT64_MAX;
	m.pid = -1;
	m.has_functions = true;
	err = cp_profile_append_mapping(prof, &m, id);
	if (err < 0)
		return err;
	prof->kernel_mapping = *id;
	return 0;
}

/* ---- functions ---- */

static uint32_t func_hash(const struct cp_pfunction *f)
{
	uint64_t h = cp_hash_mix(2, f->name);

	h = cp_hash_mix(h, f->system_name);
	h = cp_hash_mix(h, f->filename);
	return (uint32_t)cp_hash_mix(h, (uint64_t)f->start_line);
}

static bool func_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_pfunction *a = &((const struct cp_profile *)ctx)->functions[idx];
	const struct cp_pfunction *b = key;

	return a->name == b->name && a->system_name == b->system_name &&
	       a->filename == b->filename && a->start_line == b->start_line;
}

int cp_profile_intern_function(struct cp_profile *prof, const struct cp_pfunction *f,
			       uint64_t *id)
{
	uint32_t hash = func_hash(f);
	int64_t idx = cp_htab_find(&prof->function_h, hash, func_eq, prof, f);

	if (idx >= 0) {
		*id = (uint64_t)idx + 1;
		return 0;
	}
	if (prof->nfunctions >= CP_PROFILE_MAX_ENTRIES)
		return -E2BIG;
	if (cp_grow((void **)&prof->functions, &prof->functions_alloc, prof->nfunctions + 1,
		    sizeof(*prof->functions)) < 0)
		return -ENOMEM;
	if (cp_htab_insert(&prof->function_h, hash, (uint32_t)prof->nfunctions) < 0)
		return -ENOMEM;
	prof->functions[prof->nfunctions++] = *f;
	*id = prof->nfunctions;
	return 0;
}

/* ---- locations ---- */

struct lockey {
	int pid;
	uint64_t address;
};

static uint32_t loc_hash(int pid, uint64_t address)
{
	return (uint32_t)cp_hash_mix(cp_hash_mix(3, (uint64_t)pid), address);
}

static bool loc_eq(const void *ctx, uint32_t idx, const void *key)
{
	const struct cp_plocation *l = &((const struct cp_profile *)ctx)->locations[idx];
	const struct lockey *k = key;

	return l->address == k->address && l->pid == k->pid;
}

uint64_t cp_profile_find_location(const struct cp_profile *prof, int pid, uint64_t address)
{
	struct lockey k = { pid, address };
	int64_t idx = cp_htab_find(&prof->location_h, loc_hash(pid, address), loc_eq, prof, &k);

	return idx >= 0 ? (uint64_t)idx + 1 : 0;
}

int cp_profile_append_location(struct cp_profile *prof, uint64_t address, uint64_t mapping_id,
			       const struct cp_pline *lines, size_t nlines, bool is_folded,
			       uint64_t *id)
{
	struct cp_plocation *l;

	if (prof->nlocations >= CP_PROFILE_MAX_ENTRIES ||
	    nlines > CP_PROFILE_MAX_ENTRIES - prof->nlines)
		return -E2BIG;
	if (mapping_id > prof->nmappings)
		return -EINVAL;
	if (cp_grow((void **)&prof->locations, &prof->locations_alloc, prof->nlocations + 1,
		    sizeof(*prof->locations)) < 0 ||
	    cp_grow((void **)&prof->lines, &prof->lines_alloc, prof->nlines + nlines,
		    sizeof(*prof->lines)) < 0)
		return -ENOMEM;
	l = &prof->locations[prof->nlocations];
	l->address = address;
	l->mapping_id = mapping_id;
	l->pid = 0;
	l->line_off = (uint32_t)prof->nlines;
	l->nlines = (uint32_t)nlines;
	l->is_folded = is_folded;
	if (nlines)
		memcpy(&prof->lines[prof->nlines], lines, nlines * sizeof(*lines));
	prof->nlines += nlines;
	*id = ++prof->nlocations;
	return 0;
}

/* Cap on inlined frames per location: DWARF of another process is untrusted input. */
#define MAX_LINES_PER_LOCATION 256

int cp_profile_add_location(struct cp_profile *prof, int pid, uint64_t address,
			    uint64_t mapping_id, const struct cp_profile_line *lines, size_t nlines,
			    uint64_t *id)
{
	struct cp_pline pl[MAX_LINES_PER_LOCATION];
	struct lockey key = { pid, address };
	uint32_t hash = loc_hash(pid, address);
	int64_t idx;
	int err;

	idx = cp_htab_find(&prof->location_h, hash, loc_eq, prof, &key);
	if (idx >= 0) {
		*id = (uint64_t)idx + 1;
		return 0;
	}
	if (nlines > MAX_LINES_PER_LOCATION)
		nlines = MAX_LINES_PER_LOCATION;	/* keeps the innermost frames */
	if (mapping_id > prof->nmappings)
		return -EINVAL;
	for (size_t i = 0; i < nlines; i++) {
		struct cp_pfunction f = { 0 };
		const char *name = lines[i].function ? lines[i].function : lines[i].system_name;
		const char *sys = lines[i].system_name ? lines[i].system_name : name;
		char unnamed[64];

		if (!name || !*name) {
			/*
			 * A file and line without a function: name it module+offset, as readers
			 * do, with an empty system_name that tells the pprof writer it is made up.
			 */
			struct cp_plocation l = { .address = address, .mapping_id = mapping_id };

			cp_profile_fallback_name(prof, &l, unnamed, sizeof(unnamed));
			name = unnamed;
			sys = "";
		}
		if ((err = cp_profile_intern(prof, name, &f.name)) < 0 ||
		    (err = cp_profile_intern(prof, sys, &f.system_name)) < 0 ||
		    (err = cp_profile_intern(prof, lines[i].file, &f.filename)) < 0)
			return err;
		f.start_line = lines[i].start_line > 0 ? lines[i].start_line : 0;
		err = cp_profile_intern_function(prof, &f, &pl[i].function_id);
		if (err < 0)
			return err;
		pl[i].line = lines[i].line > 0 ? lines[i].line : 0;
	}
	err = cp_profile_append_location(prof, address, mapping_id, pl, nlines, false, id);
	if (err < 0)
		return err;
	if (cp_htab_insert(&prof->location_h, hash, (uint32_t)(*id - 1)) < 0) {
		prof->nlocations--;
		prof->nlines -= nlines;
		return -ENOMEM;
	}
	prof->locations[*id - 1].pid = pid;
	return 0;
}

const char *cp_profile_location_outer_function(const struct cp_profile *prof, uint64_t id)
{
	const struct cp_plocation *l;
	const struct cp_pline *pl;

	if (id == 0 || id > prof->nlocations)
		return NULL;
	l = &prof->locations[id - 1];
	if (!l->nlines)
		return NULL;
	pl = &prof->lines[l->line_off + l->nlines - 1];
	if (pl->function_id == 0 || pl->function_id > prof->nfunctions)
		return NULL;
	return prof->str.v[prof->functions[pl->function_id - 1].name];
}

int cp_profile_special_location(struct cp_profile *prof, const char *name, uint64_t *id)
{
	struct cp_pfunction f = { 0 };
	struct cp_pline line = { 0 };
	int err;

	if (!name || !*name)
		return -EINVAL;
	err = cp_profile_intern(prof, name, &f.name);
	if (err < 0)
		return err;
	f.system_name = f.name;
	err = cp_profile_intern_function(prof, &f, &line.function_id);
	if (err < 0)
		return err;
	/* One location per name, without mapping, at address 0; there are only a few names. */
	for (size_t i = 0; i < prof->nspecial; i++) {
		if (prof->special[i].function_id == line.function_id) {
			*id = prof->special[i].location_id;
			return 0;
		}
	}
	if (cp_grow((void **)&prof->special, &prof->special_alloc, prof->nspecial + 1,
		    sizeof(*prof->special)) < 0)
		return -ENOMEM;
	err = cp_profile_append_location(prof, 0, 0, &line, 1, false, id);
	if (err < 0)
		return err;
	prof->special[prof->nspecial].function_id = line.function_id;
	prof->special[prof->nspecial++].location_id = *id;
	return 0;
}

/* ---- names of frames without a function ---- */

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

void cp_profile_fallback_name(const struct cp_profile *prof, const struct cp_plocation *l,
			      char *buf, size_t size)
{
	if (l->mapping_id && l->mapping_id == prof->kernel_mapping) {
		/* Kernel addresses mean more to people than offsets into the kernel half. */
		snprintf(buf, size, "[kernel]+0x%" PRIx64, l->address);
	} else if (l->mapping_id) {
		const struct cp_pmapping *m = &prof->mappings[l->mapping_id - 1];
		const char *file = prof->str.v[m->file];

		snprintf(buf, size, "%s+0x%" PRIx64, *file ? basename_of(file) : "[unknown]",
			 l->address - m->start + m->offset);
	} else {
		snprintf(buf, size, "0x%" PRIx64, l->address);
	}
}
