/* The kernel symbol table cached on disk per boot (see ksym_cache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "cache_dir.h"
#include "ksym_cache.h"
#include "util.h"

#define MAGIC "cprof-ksyms1\n"
#define MAGIC_LEN 13
#define MAX_SYMS (4u << 20)
#define MAX_NAMES (256u << 20)

struct header {
	char magic[16];
	uint64_t modules_hash;
	uint64_t n;
	uint64_t names_len;
};

/* FNV-1a of /proc/modules: a module loaded or unloaded changes it (and its addresses). */
static int modules_hash(uint64_t *out)
{
	char *text = NULL;
	size_t len = 0;
	uint64_t h = 0xcbf29ce484222325ull;
	int err = cp_read_file_alloc("/proc/modules", 16u << 20, &text, &len);

	if (err == -ENOENT) {
		*out = h;		/* a kernel without modules */
		return 0;
	}
	if (err < 0)
		return err;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)text[i]) * 0x100000001b3ull;
	free(text);
	*out = h;
	return 0;
}

/* <cache>/ksyms1/<boot id>; -ENOENT when caching is off. */
static int cache_path(char *buf, size_t size, bool create_dir)
{
	char boot[64];
	size_t len = 0;
	int err;

	err = cp_read_file("/proc/sys/kernel/random/boot_id", boot, sizeof(boot), &len);
	if (err < 0)
		return err;
	while (len && (boot[len - 1] == '\n' || boot[len - 1] == ' '))
		boot[--len] = '\0';
	if (len < 8 || strspn(boot, "0123456789abcdef-") != len)
		return -EINVAL;
	return cp_cache_path(buf, size, "ksyms1", boot, create_dir);
}

int cp_ksym_cache_map(struct cp_ksym_map *m)
{
	char path[4200];
	struct header h;
	struct stat st;
	uint64_t mh = 0;
	void *base;
	int fd, err;

	memset(m, 0, sizeof(*m));
	err = cache_path(path, sizeof(path), false);
	if (err == 0)
		err = modules_hash(&mh);
	if (err < 0)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_size < (off_t)sizeof(h) ||
	    st.st_size > (off_t)(sizeof(h) + MAX_SYMS * sizeof(struct cp_ksym) + MAX_NAMES)) {
		close(fd);
		return -EINVAL;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return -errno;
	memcpy(&h, base, sizeof(h));
	err = -EINVAL;
	if (memcmp(h.magic, MAGIC, MAGIC_LEN) || h.modules_hash != mh)
		err = -ENOENT;		/* another layout, or the modules changed since */
	else if (h.n && h.n <= MAX_SYMS && h.names_len && h.names_len <= MAX_NAMES &&
		 (uint64_t)st.st_size == sizeof(h) + h.n * sizeof(struct cp_ksym) + h.names_len &&
		 ((const char *)base)[st.st_size - 1] == '\0')
		err = 0;
	if (err < 0) {
		munmap(base, (size_t)st.st_size);
		return err;
	}
	m->base = base;
	m->len = (size_t)st.st_size;
	m->syms = (const struct cp_ksym *)((const char *)base + sizeof(h));
	m->n = (size_t)h.n;
	m->names = (const char *)base + sizeof(h) + h.n * sizeof(struct cp_ksym);
	m->names_len = (size_t)h.names_len;
	return 0;
}

void cp_ksym_cache_unmap(struct cp_ksym_map *m)
{
	if (m && m->base)
		munmap(m->base, m->len);
	if (m)
		memset(m, 0, sizeof(*m));
}

int cp_ksym_cache_write(const struct cp_ksym *syms, size_t n, const char *names,
			size_t names_len)
{
	char path[4200];
	struct cp_atomic_file out;
	struct header h;
	int err;

	if (!syms || !n || !names || !names_len || n > MAX_SYMS || names_len > MAX_NAMES ||
	    names[names_len - 1] != '\0')
		return -EINVAL;
	err = cache_path(path, sizeof(path), true);
	if (err == 0)
		err = modules_hash(&h.modules_hash);
	if (err < 0)
		return err;
	memset(h.magic, 0, sizeof(h.magic));
	memcpy(h.magic, MAGIC, MAGIC_LEN);
	h.n = n;
	h.names_len = names_len;
	err = cp_atomic_file_open(&out, path, 0600);
	if (err < 0)
		return err;
	err = cp_write_all(out.fd, &h, sizeof(h));
	if (!err)
		err = cp_write_all(out.fd, syms, n * sizeof(*syms));
	if (!err)
		err = cp_write_all(out.fd, names, names_len);
	if (err) {
		cp_atomic_file_abort(&out);
		return err;
	}
	return cp_atomic_file_commit(&out);
}
