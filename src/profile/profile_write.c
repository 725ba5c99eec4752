/* Writing a profile: one switch over the formats, and the frame names the text formats share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile_internal.h"

/* ---- display names for the text formats ---- */

/* Copy s into a buffer with the characters that would break a line format replaced. */
static void sanitize(char *dst, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c == 0x7f) ? '?' : c == ';' ? ':' : (char)c;
	}
	dst[i] = '\0';
}

int cp_profile_frames_build(const struct cp_profile *prof, struct cp_profile_frames *fr)
{
	size_t nframes = 0, k = 0;
	char *buf = NULL;
	int err;

	memset(fr, 0, sizeof(*fr));
	for (size_t i = 0; i < prof->nlocations; i++)
		nframes += prof->locations[i].nlines ? prof->locations[i].nlines : 1;
	err = cp_strtab_init(&fr->names, CP_STRTAB_UTF8);
	if (err < 0)
		return err;
	/* The name of empty stacks, interned now so that the table no longer grows later. */
	if (cp_strtab_intern(&fr->names, "[unknown]") < 0) {
		cp_profile_frames_release(fr);
		return -ENOMEM;
	}
	buf = malloc(CP_PROFILE_MAX_STRING + 1);
	fr->frame = calloc(nframes ? nframes : 1, sizeof(*fr->frame));
	fr->loc_off = calloc(prof->nlocations ? prof->nlocations : 1, sizeof(*fr->loc_off));
	fr->loc_n = calloc(prof->nlocations ? prof->nlocations : 1, sizeof(*fr->loc_n));
	if (!buf || !fr->frame || !fr->loc_off || !fr->loc_n) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < prof->nlocations; i++) {
		const struct cp_plocation *l = &prof->locations[i];

		fr->loc_off[i] = (uint32_t)k;
		fr->loc_n[i] = l->nlines ? l->nlines : 1;
		for (uint32_t j = 0; j < fr->loc_n[i]; j++) {
			const char *name = NULL;
			int64_t idx;

			if (l->nlines) {
				const struct cp_pline *pl = &prof->lines[l->line_off + j];
				const struct cp_pfunction *f;

				f = &prof->functions[pl->function_id - 1];
				name = prof->str.v[f->name];
				if (!*name)
					name = prof->str.v[f->system_name];
			}
			if (name && *name)
				sanitize(buf, CP_PROFILE_MAX_STRING + 1, name);
			else
				cp_profile_fallback_name(prof, l, buf, CP_PROFILE_MAX_STRING + 1);
			idx = cp_strtab_intern(&fr->names, buf);
			if (idx < 0) {
				err = (int)idx;
				goto fail;
			}
			fr->frame[k++] = (uint32_t)idx;
		}
	}
	free(buf);
	return 0;

fail:
	free(buf);
	cp_profile_frames_release(fr);
	return err;
}

void cp_profile_frames_release(struct cp_profile_frames *fr)
{
	cp_strtab_release(&fr->names);
	free(fr->frame);
	free(fr->loc_off);
	free(fr->loc_n);
	memset(fr, 0, sizeof(*fr));
}

int64_t cp_profile_sample_frames(const struct cp_profile *prof, const struct cp_profile_frames *fr,
				 size_t i, uint32_t **buf, size_t *alloc)
{
	uint32_t leaf = prof->sample_keys[i].node;
	size_t n = 0;

	/* The path from the leaf up to the root is the stack, innermost first. */
	for (uint32_t k = leaf; k; k = prof->nodes[k].parent)
		n += fr->loc_n[prof->nodes[k].loc - 1];
	if (cp_grow((void **)buf, alloc, n ? n : 1, sizeof(**buf)) < 0)
		return -ENOMEM;
	if (!leaf) {
		(*buf)[0] = (uint32_t)cp_strtab_lookup(&fr->names, "[unknown]");
		return 1;
	}
	n = 0;
	for (uint32_t k = leaf; k; k = prof->nodes[k].parent) {
		uint32_t loc = prof->nodes[k].loc - 1;

		memcpy(*buf + n, fr->frame + fr->loc_off[loc], fr->loc_n[loc] * sizeof(**buf));
		n += fr->loc_n[loc];
	}
	return (int64_t)n;
}

/* ---- output ---- */

int cp_profile_write(const struct cp_profile *prof, enum cp_profile_format format, FILE *f,
		     size_t top)
{
	int err;

	switch (format) {
	case CP_PROFILE_PPROF:
		err = cp_profile_write_pprof(prof, f);
		break;
	case CP_PROFILE_FOLDED:
		err = cp_profile_write_folded(prof, f);
		break;
	case CP_PROFILE_SVG:
		err = cp_profile_write_svg(prof, f);
		break;
	case CP_PROFILE_TEXT:
		err = cp_profile_write_text(prof, f, top);
		break;
	default:
		return -EINVAL;
	}
	if (err < 0)
		return err;
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return err > 0 || prof->saturated ? 1 : 0;
}
