/* A profiling session: sampler -> unwind -> symbolize -> profile model, as samples arrive. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "maps.h"
#include "proc.h"
#include "proc_model.h"
#include "profile.h"
#include "sampler.h"
#include "ksyms.h"
#include "session.h"
#include "symbolize.h"
#include "tracefs.h"
#include "unwind.h"
#include "util.h"

#include "session_internal.h"

/* --- locations --- */

static int add_main_mapping(struct cp_session *s, struct cp_proc *p, const struct cp_map *map,
			    size_t idx);

static uint64_t mapping_id(struct cp_session *s, struct cp_proc *p, size_t idx)
{
	const struct cp_map *map = &p->maps.v[idx];
	const char *build_id = NULL;
	uint64_t bias = 0, id = 0;
	bool has_debug = false, is_file = cp_map_is_file(map);

	if (p->map_ids[idx])
		return p->map_ids[idx];
	if (!s->main_added && add_main_mapping(s, p, NULL, 0) == 0 && p->map_ids[idx])
		return p->map_ids[idx];
	if (is_file && cp_sym_module_info(s->sym, cp_proc_file_pid(p), map, &build_id, &bias,
					  &has_debug) < 0) {
		build_id = NULL;
		has_debug = false;
	}
	if (cp_profile_add_mapping(s->prof, p->pid, map, build_id, is_file, is_file && has_debug,
				   &id) < 0)
		return 0;
	s->main_added = true;
	p->map_ids[idx] = id;
	return id;
}

/*
 * The index in p's maps of its main executable: the first executable mapping of the file
 * /proc/PID/exe names (or, when unreadable, of any file); SIZE_MAX when none.
 */
static size_t exe_mapping(const struct cp_proc *p)
{
	char exe[4096];
	char *del;
	int n = cp_proc_read_exe(p->pid, exe, sizeof(exe));

	if (n < 0)
		exe[0] = '\0';
	del = strstr(exe, " (deleted)");
	if (del && !del[strlen(" (deleted)")])
		*del = '\0';
	for (size_t i = 0; i < p->maps.n; i++)
		if (p->maps.v[i].perms[2] == 'x' && exe[0] && p->maps.v[i].path &&
		    !strcmp(p->maps.v[i].path, exe))
			return i;
	for (size_t i = 0; i < p->maps.n; i++)
		if (p->maps.v[i].perms[2] == 'x' && cp_map_is_file(&p->maps.v[i]))
			return i;
	return SIZE_MAX;
}

/* Make the main executable of p (map if given, else exe_mapping's) the profile's mapping 1. */
static int add_main_mapping(struct cp_session *s, struct cp_proc *p, const struct cp_map *map,
			    size_t idx)
{
	if (s->main_added)
		return 0;
	if (!map) {
		idx = exe_mapping(p);
		if (idx == SIZE_MAX)
			return -ENOENT;
	}
	/* mapping_id() with main_added set adds it without recursing here. */
	s->main_added = true;
	if (!mapping_id(s, p, idx)) {
		s->main_added = false;
		return -ENOMEM;
	}
	return 0;
}

void cp_session_exec_main(struct cp_session *s, struct cp_proc *p)
{
	size_t idx;

	if (!s->main_added) {
		add_main_mapping(s, p, NULL, 0);
		return;
	}
	idx = exe_mapping(p);
	if (idx != SIZE_MAX)
		s->exec_main = mapping_id(s, p, idx);
}

/*
 * The name of a frame nothing symbolizes: module+0xoffset of the pc as unwound (a return
 * address, not the call instruction the location points into), as thread dumps print it; one
 * function per address, so that pprof does not merge a module's unnamed functions into one.
 */
static const char *unsymbolized_name(const struct cp_map *map, uint64_t pc, char *buf,
				     size_t size)
{
	const char *path = map->path && map->path[0] ? map->path : "[anon]";
	const char *slash = path[0] == '[' ? NULL : strrchr(path, '/');

	snprintf(buf, size, "%s+0x%" PRIx64, slash && slash[1] ? slash + 1 : path,
		 pc - map->start + map->offset);
	return buf;
}

/* The location of addr (pc, or pc - 1 for a caller frame). */
static uint64_t user_location(struct cp_session *s, struct cp_proc *p, uint64_t addr,
			      uint64_t pc)
{
	struct cp_profile_line lines[CP_SYM_MAX_INLINE];
	char unnamed[256];
	struct cp_sym_result res;
	const struct cp_map *map;
	uint64_t id = cp_profile_find_location(s->prof, p->pid, addr);
	uint64_t mid = 0;
	size_t nlines = 0;

	if (id)
		return id;
	map = cp_proc_find_map(p, addr);
	if (map) {
		mid = mapping_id(s, p, (size_t)(map - p->maps.v));
		memset(&res, 0, sizeof(res));
		if (cp_sym_resolve(s->sym, cp_proc_file_pid(p), map, addr, &res) == 0) {
			for (size_t i = 0; i < res.n && i < CP_SYM_MAX_INLINE; i++) {
				const struct cp_sym_frame *f = &res.frames[i];

				if (!f->function && !f->file)
					continue;
				lines[nlines].function = f->function;
				lines[nlines].system_name = f->system_name;
				lines[nlines].file = f->file;
				lines[nlines].line = f->line;
				lines[nlines].start_line = f->start_line;
				nlines++;
			}
		}
		if (nlines == 0) {
			memset(&lines[0], 0, sizeof(lines[0]));
			/* An empty system_name marks it made up: the mapping claims no functions. */
			lines[0].function = unsymbolized_name(map, pc, unnamed, sizeof(unnamed));
			lines[0].system_name = "";
			nlines = 1;
		}
	}
	if (cp_profile_add_location(s->prof, p->pid, addr, mid, lines, nlines, &id) < 0)
		return 0;
	s->stats.locations++;
	return id;
}

static uint64_t kernel_location(struct cp_session *s, uint64_t addr)
{
	struct cp_profile_line line;
	uint64_t id = cp_profile_find_location(s->prof, 0, addr);
	const char *name;

	if (id)
		return id;
	if (!s->kernel_mapping) {
		if (!s->main_added)
			return 0;	/* mapping 1 must be the executable: added first */
		if (cp_profile_kernel_mapping(s->prof, &s->kernel_mapping) < 0)
			return 0;
	}
	if (!s->ksyms_loaded) {
		/* Never at start: the kernel formats /proc/kallsyms anew on every read. */
		(void)cp_ksyms_load(&s->ksyms);
		s->ksyms_loaded = true;
	}
	name = cp_ksyms_map_addr(s->ksyms, addr);
	memset(&line, 0, sizeof(line));
	line.function = name;
	if (cp_profile_add_location(s->prof, 0, addr, s->kernel_mapping, &line, name ? 1 : 0,
				    &id) < 0)
		return 0;
	s->stats.locations++;
	return id;
}

/* --- samples --- */

/*
 * In fp mode the kernel follows frame pointers blindly: through code built without them
 * it reads return addresses from junk ([heap], stack or unmapped addresses). A user frame
 * is believed only inside executable code from a file, or the vDSO.
 */
static bool user_frame_plausible(struct cp_proc *p, uint64_t addr)
{
	const struct cp_map *map = cp_proc_find_map(p, addr);

	if (!map || map->perms[2] != 'x')
		return false;
	return cp_map_is_file(map) || !strcmp(map->path, "[vdso]");
}

/*
 * Kernel frames of a callchain (and, in fp mode, user frames too) into s->locs[*n...].
 * After each context marker, the first address is where the context was interrupted
 * (exact); the others are return addresses, shown at the call instruction (- 1).
 * *cut is set when the user frames were ended at an implausible one.
 */
static void callchain_frames(struct cp_session *s, struct cp_proc *p, const struct cp_sample *smp,
			     bool want_user, size_t *n, bool *cut, uint64_t *last_user)
{
	uint64_t ctx = 0;
	bool first = true;

	for (size_t i = 0; i < smp->ncallchain && *n < MAX_FRAMES - 1; i++) {
		uint64_t a = smp->callchain[i], id;

		if (a >= (uint64_t)PERF_CONTEXT_MAX) {
			ctx = a;
			first = true;
			continue;
		}
		if (ctx == (uint64_t)PERF_CONTEXT_KERNEL) {
			id = kernel_location(s, first ? a : a - 1);
		} else if (ctx == (uint64_t)PERF_CONTEXT_USER && want_user && p && !*cut) {
			uint64_t pc = first ? a : a - 1;

			if (!user_frame_plausible(p, pc)) {
				*cut = true;	/* everything above it is as untrustworthy */
				continue;
			}
			id = user_location(s, p, pc, a);
			*last_user = id;
		} else {
			continue;
		}
		first = false;
		if (id)
			s->locs[(*n)++] = id;
	}
}

/*
 * Whether a thread's frames end at location id: where threads start (_start and libc's start
 * of main, clone and start_thread, Go's runtime.goexit and mstart). A frame-pointer chain
 * that stops elsewhere was cut short (code built without frame pointers).
 */
static bool thread_root(const struct cp_session *s, uint64_t id)
{
	static const char *const roots[] = {
		"_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main",
		"start_thread", "clone", "clone3", "__clone", "__clone3", "__clone_internal",
		"runtime.goexit", "runtime.mstart", "runtime.rt0_go",
	};
	const char *name = cp_profile_location_outer_function(s->prof, id);

	for (size_t i = 0; name && i < CP_ARRAY_SIZE(roots); i++)
		if (!strcmp(name, roots[i]))
			return true;
	return false;
}

/*
 * Unwind with the process's unwinder. It opens module files through /proc/PID; once the
 * process is gone (samples are read a little after they are taken), through our own root.
 */
static int unwind_sample(struct cp_proc *p, const struct cp_sample *smp,
			 struct cp_unwind_result *ur)
{
	int err;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!p->uw) {
			p->uw_self = p->gone;
			p->uw = cp_unwind_new(p->gone ? (int)getpid() : p->pid, &p->maps, false);
			if (!p->uw)
				return -ENOMEM;
		}
		err = cp_unwind(p->uw, &smp->regs, &smp->stack, ur);
		if ((err == 0 && ur->stop_reason == 0) || p->uw_self)
			return err;
		cp_proc_file_pid(p);	/* updates p->gone */
		if (!p->gone)
			return err;
		/* It exited since the unwinder was made: retry through our own root. */
		cp_unwind_free(p->uw);
		p->uw = NULL;
	}
	return err;
}

static uint64_t special(struct cp_session *s, const char *name)
{
	uint64_t id = 0;

	if (cp_profile_special_location(s->prof, name, &id) < 0)
		return 0;
	return id;
}

/* Count the sample's process and thread, and name the thread, the first time they are seen. */
static void note_sampled(struct cp_session *s, struct cp_proc *p, struct cp_thread *t, int pid)
{
	if (p && !s->main_added && !s->main_pending_exec)
		add_main_mapping(s, p, NULL, 0);
	if (p && !p->sampled) {
		p->sampled = true;
		s->stats.processes++;
	}
	if (t) {
		t->pid = pid;
		if (!t->name[0])
			cp_thread_read_name(t);
		if (!t->sampled) {
			t->sampled = true;
			s->stats.threads++;
		}
	}
}

/*
 * The user frames of a dwarf-mode sample, unwound from its registers and stack copy, into
 * s->locs[*n...]. Returns the marker that ends the stack ("[truncated]", "[unknown]") or NULL.
 */
static const char *dwarf_frames(struct cp_session *s, struct cp_proc *p,
				const struct cp_sample *smp, size_t *n)
{
	struct cp_unwind_result *ur = &s->ur;
	size_t first = 0;
	int err;

	err = unwind_sample(p, smp, ur);
	/*
	 * Cut short, perhaps at a module loaded since the map was read (dlopen; a heap session
	 * has no mmap events): read the map again (once, until the session allows another)
	 * and unwind again.
	 */
	if (err == 0 && ur->stop_reason && !p->reread && !p->gone) {
		p->reread = true;
		if (cp_proc_load_maps(p) == 0)
			err = unwind_sample(p, smp, ur);
	}
	if (err < 0) {
		/* Nothing unwound: at least where it was. */
		ur->n = 1;
		ur->pc[0] = smp->regs.r[CP_REG_RIP];
		ur->flags[0] = 0;
		ur->truncated = false;
		ur->stop_reason = err;
	}
	/* heap: the allocation sampler's own frames are not the program's (all of them: a
	 * stack cut short inside them is [unknown], not a hook). */
	while (first < ur->n && ur->pc[first] >= s->skip_lo && ur->pc[first] < s->skip_hi)
		first++;
	for (size_t i = first; i < ur->n && *n < MAX_FRAMES - 1; i++) {
		bool exact = i == 0 || (ur->flags[i] & CP_FRAME_SIGNAL);
		uint64_t id = user_location(s, p, exact ? ur->pc[i] : ur->pc[i] - 1, ur->pc[i]);

		if (id)
			s->locs[(*n)++] = id;
	}
	if (ur->truncated || (ur->stop_reason && smp->stack.truncated))
		return "[truncated]";
	return ur->stop_reason ? "[unknown]" : NULL;
}

size_t cp_session_sample_stack(struct cp_session *s, const struct cp_sample *smp, bool dwarf,
			       struct cp_thread **tp)
{
	struct cp_proc *p = cp_procs_get(&s->procs, smp->pid, true);
	struct cp_thread *t = cp_procs_thread_get(&s->procs, smp->pid, smp->tid);
	const char *end_marker = NULL;
	uint64_t last_user = 0;
	size_t n = 0;
	bool cut = false;

	note_sampled(s, p, t, smp->pid);
	if (smp->callchain)
		callchain_frames(s, p, smp, !dwarf, &n, &cut, &last_user);
	if (dwarf && p && smp->user_regs)
		end_marker = dwarf_frames(s, p, smp, &n);
	else if (dwarf && !smp->user_regs && n == 0)
		end_marker = "[unknown]";
	else if (!dwarf && (cut || (last_user && !thread_root(s, last_user))))
		end_marker = "[unknown]";
	else if (!dwarf && smp->ncallchain >= 127 && n > 0)
		end_marker = "[truncated]";
	if (n == 0 && !end_marker)
		end_marker = "[unknown]";
	if (end_marker) {
		uint64_t id = special(s, end_marker);

		if (id && n < MAX_FRAMES)
			s->locs[n++] = id;
		if (!strcmp(end_marker, "[unknown]"))
			s->stats.unknown++;
		else
			s->stats.truncated++;
	}
	*tp = t;
	return n;
}

static void on_sample(void *ctx, const struct cp_sample *smp)
{
	struct cp_session *s = ctx;
	struct cp_thread *t;
	size_t n;

	if (s->opts.type != CP_SESSION_CPU) {
		cp_session_offcpu_sample(s, smp);
		return;
	}
	n = cp_session_sample_stack(s, smp, s->opts.dwarf, &t);
	if (cp_profile_add_sample(s->prof, s->locs, n, smp->pid, smp->tid,
				  t && t->name[0] ? t->name : NULL, 1) == 0)
		s->stats.samples++;
}

static void on_mmap(void *ctx, const struct cp_sampler_mmap *m)
{
	struct cp_session *s = ctx;
	struct cp_proc *p;
	const struct cp_map *in = cp_procs_mmap(&s->procs, m, &p);

	/* record: the first executable file mapped after the exec is the main binary. */
	if (!in || !s->main_pending_exec || s->pids[0] != m->pid || !(m->prot & PROT_EXEC) ||
	    !cp_map_is_file(in))
		return;
	s->main_pending_exec = false;
	if (!s->main_added)
		add_main_mapping(s, p, in, (size_t)(in - p->maps.v));
	else
		s->exec_main = mapping_id(s, p, (size_t)(in - p->maps.v));
}

static void on_comm(void *ctx, int pid, int tid, const char *name, bool exec)
{
	struct cp_session *s = ctx;

	cp_procs_comm(&s->procs, pid, tid, name, exec);
	if (exec && s->opts.enable_on_exec && pid == s->pids[0])
		s->main_pending_exec = true;
}

static void on_fork(void *ctx, int pid, int tid, int ppid, int ptid)
{
	struct cp_session *s = ctx;

	cp_procs_fork(&s->procs, pid, tid, ppid, ptid);
}

static void on_exit_record(void *ctx, int pid, int tid)
{
	struct cp_session *s = ctx;

	cp_procs_exit(&s->procs, pid, tid);
}

static void on_lost(void *ctx, uint64_t count)
{
	struct cp_session *s = ctx;

	s->stats.lost += count;
}

static const struct cp_sampler_events session_events = {
	.sample = on_sample,
	.mmap = on_mmap,
	.comm = on_comm,
	.fork = on_fork,
	.exit = on_exit_record,
	.lost = on_lost,
	.cswitch = cp_session_offcpu_switch,
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int cp_session_poll(struct cp_session *s, int timeout_ms)
{
	uint64_t t0 = thread_cpu_ns();
	int err;

	if (s->stopped)
		return 0;
	/* Blocking in poll() costs no CPU time, so this measures only our own work. */
	if (s->heap)
		err = cp_session_heap_poll(s, timeout_ms);
	else
		err = cp_sampler_poll(s->sampler, timeout_ms, &session_events, s);
	s->stats.cpu_ns += thread_cpu_ns() - t0;
	return err;
}

void cp_session_wake_on(struct cp_session *s, int fd)
{
	if (s->heap)
		cp_session_heap_wake_on(s, fd);
	else
		cp_sampler_set_wake_fd(s->sampler, fd);
}

const char *cp_session_error(const struct cp_session *s)
{
	return cp_session_heap_error(s);
}

void cp_session_disable(struct cp_session *s)
{
	if (s->disabled)
		return;
	s->end_mono = cp_now_ns();
	if (s->heap)
		cp_session_heap_disable(s);
	else
		cp_sampler_disable(s->sampler);
	s->disabled = true;
}

void cp_session_stop(struct cp_session *s)
{
	uint64_t t0;

	if (s->stopped)
		return;
	cp_session_disable(s);
	t0 = thread_cpu_ns();
	while (s->sampler && cp_sampler_poll(s->sampler, 0, &session_events, s) == 1)
		;
	cp_session_offcpu_close(s);
	s->stats.cpu_ns += thread_cpu_ns() - t0;
	s->stopped = true;
}

void cp_session_get_stats(const struct cp_session *s, struct cp_session_stats *out)
{
	struct cp_sampler_stats ss;

	*out = s->stats;
	if (s->heap) {
		cp_session_heap_stats(s, out);
		return;
	}
	cp_sampler_get_stats(s->sampler, &ss);
	out->kernel_refused = ss.kernel_refused;
	out->events = ss.events;
	out->rings = ss.rings;
	out->ring_bytes = ss.ring_bytes;
	if (ss.lost > out->lost)
		out->lost = ss.lost;
}

uint64_t cp_session_start_ns(const struct cp_session *s)
{
	return s->start_mono;
}

void cp_session_mark_start(struct cp_session *s)
{
	s->start_wall = cp_wall_ns();
	s->start_mono = cp_now_ns();
}

struct cp_profile *cp_session_profile(struct cp_session *s)
{
	struct cp_profile_meta meta;
	uint64_t end = s->disabled ? s->end_mono : cp_now_ns();

	memset(&meta, 0, sizeof(meta));
	meta.time_nanos = s->start_wall;
	meta.duration_nanos = end - s->start_mono;
	cp_session_offcpu_close(s);
	meta.period = s->opts.type == CP_SESSION_CPU || s->opts.type == CP_SESSION_WALL ?
			      1000000000 / s->opts.hz : 1;
	meta.lost_samples = s->stats.lost;
	if (s->heap) {
		struct cp_session_stats st;

		cp_session_get_stats(s, &st);
		meta.period = (int64_t)(s->opts.rate ? s->opts.rate : 524288);
		meta.lost_samples = st.lost;
		meta.lost_why = "the sampler's ring was full";
		(void)cp_session_heap_emit(s);
	}
	cp_profile_set_meta(s->prof, &meta);
	if (s->exec_main > 1)
		cp_profile_set_main_mapping(s->prof, s->exec_main);
	s->exec_main = 0;
	return s->prof;
}

/*
 * Load the debug information of the code the process has mapped before sampling starts:
 * the first lookups in a module (libc with its separate DWARF) cost far more than a ring's
 * worth of samples, and the rings would overflow while we read DWARF.
 */
static void prewarm(struct cp_session *s, struct cp_proc *p)
{
	struct cp_sym_result res;
	size_t done = 0;

	for (size_t i = 0; p && i < p->maps.n && done < 64; i++) {
		const struct cp_map *m = &p->maps.v[i];

		if (m->perms[2] != 'x' || !cp_map_is_file(m))
			continue;
		cp_sym_resolve(s->sym, p->pid, m, m->start, &res);
		done++;
	}
}

/* threadcreate: the entry tracepoints of clone3 and clone (either may be missing). */
static int clone_tracepoints(struct cp_sampler_opts *so)
{
	static const char *const names[] = { "sys_enter_clone3", "sys_enter_clone" };
	long denied = 0;

	for (size_t i = 0; i < CP_ARRAY_SIZE(names); i++) {
		long id = cp_tracefs_event_id("syscalls", names[i]);

		if (id >= 0)
			so->tracepoints[so->ntracepoints++] = id;
		else if (id == -EACCES || id == -EPERM)
			denied = id;	/* tracefs is root's */
	}
	return so->ntracepoints ? 0 : denied ? (int)denied : -EOPNOTSUPP;
}

int cp_session_new(const struct cp_session_opts *opts, struct cp_session **out)
{
	struct cp_sampler_opts so;
	struct cp_session *s;
	int err = -ENOMEM;

	bool heap = opts->type == CP_SESSION_HEAP || opts->type == CP_SESSION_ALLOCS;

	if (opts->why && opts->whylen)
		opts->why[0] = '\0';
	if (!opts->npids || (opts->hz <= 0 && !heap))
		return -EINVAL;
	if (opts->type == CP_SESSION_GOROUTINE)
		return -ENOTSUP;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	cp_procs_init(&s->procs);
	s->pids = malloc(opts->npids * sizeof(*s->pids));
	s->prof = cp_profile_new_kind(opts->type == CP_SESSION_WALL ? CP_PROFILE_KIND_WALL :
				      opts->type == CP_SESSION_BLOCK ? CP_PROFILE_KIND_DELAY :
				      opts->type == CP_SESSION_MUTEX ? CP_PROFILE_KIND_DELAY :
				      opts->type == CP_SESSION_THREADCREATE ? CP_PROFILE_KIND_COUNT :
				      opts->type == CP_SESSION_HEAP ? CP_PROFILE_KIND_HEAP :
				      opts->type == CP_SESSION_ALLOCS ? CP_PROFILE_KIND_ALLOCS :
									      CP_PROFILE_KIND_CPU);
	s->sym = cp_sym_new();
	if (!s->pids || !s->prof || !s->sym)
		goto fail;
	memcpy(s->pids, opts->pids, opts->npids * sizeof(*s->pids));
	s->opts.pids = s->pids;

	if (!opts->enable_on_exec) {
		/*
		 * The maps as they are now; MMAP2 records keep them current from here on. The
		 * first target's executable becomes mapping 1 before anything else is added.
		 */
		for (size_t i = 0; i < opts->npids; i++)
			cp_procs_get(&s->procs, opts->pids[i], true);
		struct cp_proc *p0 = cp_procs_find(&s->procs, opts->pids[0]);

		if (p0)
			add_main_mapping(s, p0, NULL, 0);
	}
	if (heap) {
		/* The debug information first: the sampler's ring fills while it loads. */
		for (size_t i = 0; i < opts->npids && !opts->enable_on_exec; i++)
			prewarm(s, cp_procs_find(&s->procs, opts->pids[i]));
		s->start_wall = cp_wall_ns();
		s->start_mono = cp_now_ns();
		err = cp_session_heap_open(s);
		if (err < 0)
			goto fail;
		*out = s;
		return 0;
	}

	memset(&so, 0, sizeof(so));
	so.pids = s->pids;
	so.npids = opts->npids;
	so.hz = opts->hz;
	so.dwarf = opts->dwarf;
	so.stack_size = opts->stack_size;
	so.kernel = opts->kernel;
	so.follow_children = opts->follow_children;
	so.enable_on_exec = opts->enable_on_exec;
	so.switches = opts->type == CP_SESSION_WALL || opts->type == CP_SESSION_BLOCK;
	so.no_cpu_clock = opts->type == CP_SESSION_BLOCK;
	if (opts->type == CP_SESSION_THREADCREATE || opts->type == CP_SESSION_MUTEX) {
		err = opts->type == CP_SESSION_MUTEX ? cp_session_mutex_init(s, &so) :
						       clone_tracepoints(&so);
		if ((err == -EACCES || err == -EPERM) && opts->why && opts->whylen)
			snprintf(opts->why, opts->whylen, "permission denied reading the syscall "
				 "tracepoints in tracefs (/sys/kernel/tracing is root's): %s needs root",
				 opts->type == CP_SESSION_MUTEX ? "mutex" : "threadcreate");
		if (err < 0)
			goto fail;
	}
	s->start_wall = cp_wall_ns();
	s->start_mono = cp_now_ns();
	err = cp_sampler_open(&so, &s->sampler);
	if (err < 0)
		goto fail;
	/* Sampling has started (a target that exits now is still profiled); the rings hold
	 * seconds of samples, time enough to read the debug information. */
	for (size_t i = 0; i < opts->npids && !opts->enable_on_exec; i++)
		prewarm(s, cp_procs_find(&s->procs, opts->pids[i]));
	if (so.switches && !opts->enable_on_exec)
		cp_session_offcpu_seed(s);
	*out = s;
	return 0;
fail:
	if (opts->why && opts->whylen)
		snprintf(opts->why, opts->whylen, "%s", s->heap_why);
	cp_session_free(s);
	return err;
}

void cp_session_free(struct cp_session *s)
{
	if (!s)
		return;
	cp_session_heap_free(s);
	cp_sampler_free(s->sampler);
	cp_procs_release(&s->procs);
	cp_ksyms_free(s->ksyms);
	cp_sym_free(s->sym);
	cp_profile_free(s->prof);
	free(s->node_kind);
	free(s->wakes);
	free(s->pids);
	free(s);
}
