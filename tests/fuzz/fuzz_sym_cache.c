/* libFuzzer target: the reader of the on-disk symbol cache (a sym1/BUILD_ID file's text). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sym_cache.h"
#include "symbolize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cp_sym_frame frames[CP_SYM_MAX_INLINE];
	char *text = malloc(size + 1), *cursor, *record;
	uint64_t addr;
	size_t n;
	int kind;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cursor = text;
	while ((kind = cp_sym_cache_scan(&cursor, &addr, &record)) != CP_SYM_CACHE_END)
		if (kind == CP_SYM_CACHE_ADDR)
			(void)cp_sym_cache_parse(record, &addr, frames, &n);
	free(text);
	return 0;
}
