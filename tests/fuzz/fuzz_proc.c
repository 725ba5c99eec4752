/*
 * libFuzzer target: the /proc parsers (stat, syscall, status, maps, a CPU list) and the JIT
 * map parser, each on the same text (the first byte picks which).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "perfmap.h"
#include "proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cp_task_stat st;
	struct cp_task_syscall sc;
	struct cp_task_status ss;
	struct cp_maps maps;
	struct cp_perfmap *pm = NULL;
	uint8_t cpus[128];
	char *text;

	if (size == 0)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 6) {
	case 0:
		(void)cp_proc_parse_stat(text, &st);
		break;
	case 1:
		(void)cp_proc_parse_syscall(text, &sc);
		break;
	case 2:
		(void)cp_proc_parse_status(text, &ss);
		break;
	case 3:
		memset(&maps, 0, sizeof(maps));
		if (cp_maps_parse(text, &maps) == 0)
			cp_maps_release(&maps);
		break;
	case 4:
		(void)cp_parse_cpulist(text, cpus, sizeof(cpus) * 8);
		break;
	default:
		if (cp_perfmap_parse(text, size - 1, &pm) == 0)
			cp_perfmap_free(pm);
		break;
	}
	free(text);
	return 0;
}
