/* Profiles of one counted sample type (goroutine/count, threadcreate/count): snapshots, not CPU. */
#include <errno.h>
#include <stdlib.h>

#include "profile_internal.h"

struct cp_profile *cp_profile_new_count(const char *type, const char *unit)
{
	struct cp_profile *prof = cp_profile_new_empty();
	int64_t t, u;

	if (!prof)
		return NULL;
	prof->types = calloc(1, sizeof(*prof->types));
	prof->totals = calloc(1, sizeof(*prof->totals));
	t = cp_strtab_intern(&prof->str, type);
	u = cp_strtab_intern(&prof->str, unit);
	if (!prof->types || !prof->totals || t < 0 || u < 0) {
		cp_profile_free(prof);
		return NULL;
	}
	prof->ntypes = 1;
	prof->types[0] = (struct cp_pvaluetype){ (uint32_t)t, (uint32_t)u };
	prof->period_type = prof->types[0];
	prof->default_type = (uint32_t)t;
	prof->period = 1;
	return prof;
}

int cp_profile_add_count(struct cp_profile *prof, const uint64_t *loc_ids, size_t n, int pid,
			 int tid, const char *thread_name, uint64_t count)
{
	struct cp_plabel labels[3] = { { 0 } };
	int64_t value = (int64_t)count, name;

	if (prof->ntypes != 1 || prof->cpu_from_count)
		return -EINVAL;
	name = cp_strtab_intern(&prof->str, thread_name ? thread_name : "");
	if (name < 0)
		return (int)name;
	labels[0] = (struct cp_plabel){ .key = prof->s_thread, .str = (uint32_t)name };
	labels[1] = (struct cp_plabel){ .key = prof->s_tid, .num = tid };
	labels[2] = (struct cp_plabel){ .key = prof->s_pid, .num = pid };
	/* tid 0: a stack shared by several threads, labelled by process only. */
	if (tid == 0)
		return cp_profile_add_sample_values(prof, loc_ids, n, &labels[2], 1, &value);
	return cp_profile_add_sample_values(prof, loc_ids, n, labels, 3, &value);
}
