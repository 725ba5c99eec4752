/* libFuzzer target: the pprof reader (cp_profile_read), then the folded writer on what it read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cp_profile *prof = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (cp_profile_read(data, size, &prof) < 0)
		return 0;
	f = open_memstream(&text, &len);
	if (f) {
		(void)cp_profile_write(prof, CP_PROFILE_FOLDED, f, 0);
		(void)cp_profile_write(prof, CP_PROFILE_TEXT, f, 5);
		fclose(f);
	}
	free(text);
	cp_profile_free(prof);
	return 0;
}
