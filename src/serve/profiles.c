/* What serve's endpoints send: a CPU profile of N seconds, and the thread dump in its four forms. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "maps.h"
#include "profile.h"
#include "profiles.h"
#include "session.h"
#include "symbolize.h"
#include "util.h"

/* Poll the rings at least this often (ms), to notice a client gone or the server stopping. */
#define CHECK_MS 200

static bool target_gone(int pid, uint64_t starttime)
{
	return cp_proc_gone(pid, starttime);
}

int cp_serve_profile_body(const struct cp_profile *prof, enum cp_profile_format format,
			  char **body, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int err;

	if (!f)
		return -ENOMEM;
	err = cp_profile_write(prof, format, f, 0);
	if (fclose(f) != 0 && err == 0)
		err = -ENOMEM;
	if (err < 0) {
		free(buf);
		return err;
	}
	*body = buf;
	*len = n;
	return 0;
}

int cp_serve_cpu_profile(struct cp_serve_cpu_req *req, char **body, size_t *len)
{
	struct cp_session_opts so = {
		.type = req->type, .pids = &req->pid, .npids = 1, .hz = req->hz, .dwarf = true,
		.kernel = true, .why = req->why, .whylen = sizeof(req->why),
	};
	struct cp_session *s = NULL;
	uint64_t deadline;
	bool busy = false;
	int err;

	err = cp_session_new(&so, &s);
	if (err < 0)
		return err;
	deadline = cp_session_start_ns(s) + (uint64_t)req->seconds * 1000000000ull;
	for (;;) {
		uint64_t now = cp_now_ns(), wait;

		if (now >= deadline)
			break;
		/* serve is stopping: the profile ends here and is sent (before the client check,
		 * which says gone then too). */
		if (req->stopping && __atomic_load_n(req->stopping, __ATOMIC_ACQUIRE))
			break;
		if (req->gone(req->ctx)) {
			err = -ECANCELED;
			goto done;
		}
		if (target_gone(req->pid, req->starttime))
			break;
		wait = (deadline - now + 999999) / 1000000;
		err = cp_session_poll(s, busy ? 0 : (int)(wait < CHECK_MS ? wait : CHECK_MS));
		if (err < 0) {
			if (cp_session_error(s))
				snprintf(req->why, sizeof(req->why), "%s", cp_session_error(s));
			goto done;
		}
		busy = err == 1;
	}
	cp_session_disable(s);
	while (cp_session_poll(s, 0) == 1)
		;
	err = cp_serve_profile_body(cp_session_profile(s), req->format, body, len);
done:
	cp_session_free(s);
	return err;
}

/*
 * The locations of a dumped stack in prof: frames of one pc (inlined first) make one location;
 * caller frames are looked up at pc - 1 (inside the call), as the samplers do. 0 or -errno;
 * *n receives the count.
 */
/*
 * The profile's mapping of m, added the first time, with the build ID and debug information
 * the symbolizer found, as the samplers add theirs. 0 or -errno.
 */
static int add_mapping(struct cp_profile *prof, struct cp_symbolizer *sym, int pid,
		       const struct cp_map *m, uint64_t *id)
{
	const char *build_id = NULL;
	uint64_t bias = 0;
	bool debug = false;

	if (cp_sym_module_info(sym, pid, m, &build_id, &bias, &debug) < 0) {
		build_id = NULL;
		debug = false;
	}
	return cp_profile_add_mapping(prof, pid, m, build_id, true, debug, id);
}

static int stack_locations(struct cp_profile *prof, struct cp_symbolizer *sym, int pid,
			   const struct cp_maps *maps, const struct cp_dump_thread *t,
			   uint64_t *ids, size_t *n)
{
	struct cp_profile_line lines[64];
	size_t nl = 0, out = 0;
	int err;

	for (size_t i = 0; i < t->nframes; i++) {
		const struct cp_frame *f = &t->frames[i];
		bool last_of_pc = i + 1 == t->nframes || t->frames[i + 1].pc != f->pc ||
				  !f->inlined;
		uint64_t addr = out == 0 ? f->pc : f->pc - 1, map_id = 0, id;
		const struct cp_map *m;

		if (nl < CP_ARRAY_SIZE(lines))
			lines[nl++] = (struct cp_profile_line){ .function = f->function,
								.file = f->file,
								.line = f->line };
		if (!last_of_pc)
			continue;
		id = cp_profile_find_location(prof, pid, addr);
		if (!id) {
			m = cp_maps_find(maps, f->pc);
			if (m && cp_map_is_file(m)) {
				err = add_mapping(prof, sym, pid, m, &map_id);
				if (err < 0)
					return err;
			}
			err = cp_profile_add_location(prof, pid, addr, map_id, lines,
						      lines[0].function ? nl : 0, &id);
			if (err < 0)
				return err;
		}
		ids[out++] = id;
		nl = 0;
	}
	*n = out;
	return 0;
}

/* Add the main executable's code mapping first: pprof's mapping 1. */
static int main_mapping(struct cp_profile *prof, struct cp_symbolizer *sym, const struct cp_dump *d,
			const struct cp_maps *maps)
{
	uint64_t id;

	if (!d->exe)
		return 0;
	for (size_t i = 0; i < maps->n; i++) {
		const struct cp_map *m = &maps->v[i];

		if (cp_map_is_file(m) && m->perms[2] == 'x' &&
		    !strncmp(d->exe, m->path, strlen(m->path)))
			return add_mapping(prof, sym, d->pid, m, &id);
	}
	return 0;
}

/* Go's goroutine profile for native threads: goroutine/count by stack, threads of one stack merged. */
static int thread_profile(struct cp_dump *d, struct cp_symbolizer *sym, struct cp_profile **out)
{
	struct cp_profile *prof = cp_profile_new_count("goroutine", "count");
	struct cp_profile_meta meta = { .time_nanos = d->time_ns, .period = 1 };
	struct cp_dump_group *groups = NULL;
	struct cp_maps maps = { 0 };
	uint64_t *ids = NULL;
	size_t ngroups = 0, n, max = 0;
	int err;

	if (!prof)
		return -ENOMEM;
	err = cp_maps_read(d->pid, &maps);
	if (err < 0)
		goto done;
	err = cp_dump_group_compute(d, &groups, &ngroups);
	if (err < 0)
		goto done;
	for (size_t i = 0; i < d->nthreads; i++)
		max = d->threads[i].nframes > max ? d->threads[i].nframes : max;
	ids = calloc(max + 1, sizeof(*ids));
	err = ids ? main_mapping(prof, sym, d, &maps) : -ENOMEM;
	for (size_t g = 0; err == 0 && g < ngroups; g++) {
		const struct cp_dump_thread *t = &d->threads[groups[g].first];

		err = stack_locations(prof, sym, d->pid, &maps, t, ids, &n);
		if (err == 0)
			err = cp_profile_add_count(prof, ids, n, d->pid,
						   groups[g].count == 1 ? t->tid : 0, t->name,
						   groups[g].count);
	}
	if (err == 0) {
		cp_profile_set_meta(prof, &meta);
		*out = prof;
		prof = NULL;
	}
done:
	for (size_t g = 0; g < ngroups; g++)
		free(groups[g].tids);
	free(groups);
	free(ids);
	cp_maps_release(&maps);
	cp_profile_free(prof);
	return err;
}

int cp_serve_thread_profile(int pid, struct cp_symbolizer *sym, struct cp_profile **out)
{
	struct cp_dump_opts opts = { 0 };
	struct cp_dump d = { 0 };
	int err = cp_dump_take(pid, &opts, sym, &d);

	if (err < 0)
		return err;
	err = thread_profile(&d, sym, out);
	cp_dump_release(&d);
	return err;
}

int cp_serve_dump(int pid, enum cp_serve_dump_form form, struct cp_symbolizer *sym, char **body,
		  size_t *len)
{
	struct cp_dump_opts opts = { 0 };
	struct cp_dump d = { 0 };
	char *buf = NULL;
	size_t n = 0;
	FILE *f;
	int err;

	/* The text forms carry the LEAK? evidence, as cprof dump's text does. */
	if (form == CP_SERVE_DUMP_GROUPED)
		opts.flags = CP_DUMP_GROUP | CP_DUMP_LEAKS;
	else if (form == CP_SERVE_DUMP_TEXT)
		opts.flags = CP_DUMP_LEAKS;
	err = cp_dump_take(pid, &opts, sym, &d);
	if (err < 0)
		return err;
	if (form == CP_SERVE_DUMP_PPROF) {
		struct cp_profile *prof = NULL;

		err = thread_profile(&d, sym, &prof);
		cp_dump_release(&d);
		if (err == 0)
			err = cp_serve_profile_body(prof, CP_PROFILE_PPROF, body, len);
		cp_profile_free(prof);
		return err;
	}
	f = open_memstream(&buf, &n);
	if (!f) {
		cp_dump_release(&d);
		return -ENOMEM;
	}
	err = form == CP_SERVE_DUMP_JSON ? cp_dump_write_json(&d, f) :
					   cp_dump_write_text(&d, f, false);
	if (fclose(f) != 0 && err == 0)
		err = -ENOMEM;
	cp_dump_release(&d);
	if (err < 0) {
		free(buf);
		return err;
	}
	*body = buf;
	*len = n;
	return 0;
}
