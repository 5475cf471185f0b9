/* The memory layout of the calling process, for programs that compare it before and after
 * restore: /proc/self/maps, the VmFlags of every mapping, one smaps field of one mapping,
 * and a content pattern tied to addresses. Like common.h: no stdio streams, no malloc.
 */
#ifndef CR_LAYOUT_H
#define CR_LAYOUT_H

#include "common.h"

/* A snapshot: the maps text and "start-end flags" lines from smaps. */
struct cr_layout {
	char maps[1 << 20];
	ssize_t maps_len;
	char vmflags[1 << 18];
};

static char cr_smaps_buf[1 << 21];

CR_FN ssize_t cr_read_smaps(void)
{
	ssize_t len = cr_read_file("/proc/self/smaps", cr_smaps_buf, sizeof cr_smaps_buf - 1);
	cr_smaps_buf[len < 0 ? 0 : len] = 0;
	return len;
}

/* "start-end VmFlags" lines of every mapping into out. */
CR_FN void cr_collect_vmflags(char *out, size_t cap)
{
	size_t o = 0;
	out[0] = 0;
	if (cr_read_smaps() < 0) {
		cr_fail("cannot read /proc/self/smaps");
		return;
	}
	char range[64] = "";
	for (char *l = cr_smaps_buf; *l;) {
		char *e = strchr(l, '\n');
		size_t ll = e ? (size_t)(e - l) : strlen(l);
		if (ll && ((l[0] >= '0' && l[0] <= '9') || (l[0] >= 'a' && l[0] <= 'f'))) {
			size_t rl = strcspn(l, " ");
			if (rl >= sizeof range)
				rl = sizeof range - 1;
			memcpy(range, l, rl);
			range[rl] = 0;
		} else if (strncmp(l, "VmFlags:", 8) == 0 && o + ll + 80 < cap) {
			o += (size_t)snprintf(out + o, cap - o, "%s%.*s\n", range, (int)(ll - 8),
					      l + 8);
		}
		if (!e)
			break;
		l = e + 1;
	}
}

/* Objects a restore makes anew (shared memory, memfds, huge pages): their inode numbers
 * differ, the rest of their maps line must not. */
CR_FN int cr_new_object(const char *path, size_t len)
{
	static const char *const kinds[] = { "/dev/zero (deleted)", "/anon_hugepage (deleted)",
					     "/memfd:" };
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (len >= strlen(kinds[i]) && strncmp(path, kinds[i], strlen(kinds[i])) == 0)
			return 1;
	return 0;
}

/* The maps text with the inode column of such objects replaced by "*" (and the padding
 * after it, which depends on the inode's digits, by one space). */
CR_FN size_t cr_mask_inodes(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *l = in; *l && o + 1 < cap;) {
		const char *e = strchr(l, '\n');
		size_t ll = e ? (size_t)(e - l) : strlen(l);
		/* start-end perms offset dev inode [path]: the inode is the fifth field */
		const char *f = l;
		for (int k = 0; k < 4 && f; k++) {
			f = memchr(f, ' ', ll - (size_t)(f - l));
			f = f ? f + 1 : NULL;
		}
		const char *fe = f ? memchr(f, ' ', ll - (size_t)(f - l)) : NULL;
		const char *path = fe;
		while (path && path < l + ll && *path == ' ')
			path++;
		if (fe && cr_new_object(path, ll - (size_t)(path - l)))
			o += (size_t)snprintf(out + o, cap - o, "%.*s* %.*s\n", (int)(f - l), l,
					      (int)(ll - (size_t)(path - l)), path);
		else
			o += (size_t)snprintf(out + o, cap - o, "%.*s\n", (int)ll, l);
		if (o >= cap)
			o = cap - 1;
		if (!e)
			break;
		l = e + 1;
	}
	out[o] = 0;
	return o;
}

CR_FN void cr_layout_take(struct cr_layout *l)
{
	static char raw[sizeof l->maps];
	ssize_t n = cr_read_file("/proc/self/maps", raw, sizeof raw - 1);
	if (n < 0) {
		cr_fail("cannot read /proc/self/maps");
		n = 0;
	}
	raw[n] = 0;
	l->maps_len = (ssize_t)cr_mask_inodes(raw, l->maps, sizeof l->maps);
	cr_collect_vmflags(l->vmflags, sizeof l->vmflags);
}

/* Reports lines of a that are not in b, each as a failure. */
CR_FN void cr_diff_lines(const char *what, const char *a, const char *b, const char *label)
{
	for (const char *l = a; *l;) {
		const char *e = strchr(l, '\n');
		size_t ll = e ? (size_t)(e - l) : strlen(l);
		int found = 0;
		for (const char *m = b; *m;) {
			const char *f = strchr(m, '\n');
			size_t ml = f ? (size_t)(f - m) : strlen(m);
			if (ml == ll && memcmp(l, m, ll) == 0) {
				found = 1;
				break;
			}
			if (!f)
				break;
			m = f + 1;
		}
		if (!found)
			cr_fail("%s: %s line: %.*s", what, label, (int)ll, l);
		if (!e)
			break;
		l = e + 1;
	}
}

/* Takes the layout now into `after` and reports every difference from `before`. */
CR_FN void cr_layout_check(const struct cr_layout *before, struct cr_layout *after)
{
	cr_layout_take(after);
	if (after->maps_len != before->maps_len ||
	    memcmp(before->maps, after->maps, (size_t)after->maps_len) != 0) {
		cr_diff_lines("/proc/self/maps", before->maps, after->maps, "missing or changed");
		cr_diff_lines("/proc/self/maps", after->maps, before->maps, "extra or changed");
		cr_fail("/proc/self/maps differs (%zd bytes before, %zd after)", before->maps_len,
			after->maps_len);
	}
	if (strcmp(before->vmflags, after->vmflags) != 0) {
		cr_diff_lines("smaps VmFlags", before->vmflags, after->vmflags, "missing or changed");
		cr_diff_lines("smaps VmFlags", after->vmflags, before->vmflags, "extra or changed");
	}
}

/* The smaps block of the mapping that starts at addr (in cr_smaps_buf), or NULL. */
CR_FN const char *cr_smaps_block(const void *addr)
{
	char key[32];
	snprintf(key, sizeof key, "%lx-", (unsigned long)(uintptr_t)addr);
	if (cr_read_smaps() < 0)
		return NULL;
	for (char *l = cr_smaps_buf; l && *l;) {
		if (strncmp(l, key, strlen(key)) == 0)
			return l;
		l = strstr(l, "\nVmFlags:");
		l = l ? strchr(l + 1, '\n') : NULL;
		l = l ? l + 1 : NULL;
	}
	return NULL;
}

/* The value in kB of smaps field `key` ("Rss", "Locked", ...) of the mapping at addr;
 * -1 when there is no such mapping or field. */
CR_FN long cr_smaps_kb(const void *addr, const char *key)
{
	const char *b = cr_smaps_block(addr);
	if (!b)
		return -1;
	const char *end = strstr(b, "\nVmFlags:");
	char k[64];
	snprintf(k, sizeof k, "\n%s:", key);
	const char *f = strstr(b, k);
	if (!f || (end && f > end))
		return -1;
	return strtol(f + strlen(k), NULL, 10);
}

/* The VmFlags of the mapping at addr into out (" rd wr ... "), "" when there is none. */
CR_FN void cr_vmflags_of(const void *addr, char *out, size_t n)
{
	out[0] = 0;
	const char *b = cr_smaps_block(addr);
	const char *f = b ? strstr(b, "\nVmFlags:") : NULL;
	if (!f)
		return;
	f += 9;
	size_t len = strcspn(f, "\n");
	if (len >= n)
		len = n - 1;
	memcpy(out, f, len);
	out[len] = 0;
}

/* Whether the two-letter flag is in the VmFlags of the mapping at addr. */
CR_FN int cr_has_vmflag(const void *addr, const char *flag)
{
	char flags[256], key[8];
	cr_vmflags_of(addr, flags, sizeof flags);
	snprintf(key, sizeof key, " %s ", flag);
	size_t fl = strlen(flags);
	if (fl + 2 < sizeof flags) { /* a space after the last flag too */
		flags[fl] = ' ';
		flags[fl + 1] = 0;
	}
	return strstr(flags, key) != NULL;
}

/* A word pattern tied to the word's address and a seed. */
CR_FN uint64_t cr_pat(uint64_t a, uint64_t seed)
{
	uint64_t x = (a ^ (seed * 0xD6E8FEB86659FD93ULL)) * 0x9E3779B97F4A7C15ULL;
	return x ^ (x >> 29) ^ seed;
}

CR_FN void cr_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = cr_pat((uint64_t)(uintptr_t)&w[i], seed);
}

/* Reports the first wrong word and how many there are. */
CR_FN void cr_check_fill(const char *what, const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != cr_pat((uint64_t)(uintptr_t)&w[i], seed)) {
			if (!bad)
				first = i;
			bad++;
		}
	if (bad)
		cr_fail("%s: %zu of %zu words wrong, first at %p: expected 0x%llx got 0x%llx", what,
			bad, len / 8, (void *)&w[first],
			(unsigned long long)cr_pat((uint64_t)(uintptr_t)&w[first], seed),
			(unsigned long long)w[first]);
}

CR_FN int cr_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

CR_FN void cr_check_zero(const char *what, const void *p, size_t len)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i]) {
			cr_fail("%s: expected zero at %p got 0x%llx", what, (void *)&w[i],
				(unsigned long long)w[i]);
			return;
		}
}

/* Touches the stack below the caller so that its VMA does not grow between snapshots. */
__attribute__((noinline)) CR_FN void cr_pretouch_stack(void)
{
	volatile char buf[1 << 20];
	for (size_t i = 0; i < sizeof buf; i += 4096)
		buf[i] = 1;
	buf[sizeof buf - 1] = 1;
}

#endif
