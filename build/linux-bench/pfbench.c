/*
 * pfbench: the page-fault round trip of `cargo xtask bench paging`'s Linux
 * DomU (PV or PVH), from a user process: a shared mapping of a one-page
 * memfd (the page stays in the page cache), its PTE zapped with
 * madvise(MADV_DONTNEED) before each sample (untimed), then one read of
 * it timed: the #PF, Linux's fault handler finding the page and setting
 * the PTE (PV: through Xen), the return and the completed read. The same
 * timer and statistics as the kernel module and the Rust guest; prints
 *
 *   BENCH name=page_fault_roundtrip iters=I per=1 cycles=a/b/c/d ns=a/b/c/d
 *
 * Usage: pfbench ITERS TSC_HZ (TSC_HZ from the module's BENCH-ENV line).
 * Exit status 1 (and a BENCH-ERROR line) if something could not be done,
 * or the process took fewer minor faults (getrusage) than touches.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static inline uint64_t tsc_begin(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t tsc_end(void)
{
	uint32_t lo, hi, aux;

	__asm__ volatile("rdtscp; lfence" : "=a"(lo), "=d"(hi), "=c"(aux) :: "memory");
	return ((uint64_t)hi << 32) | lo;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank, as guest/src/bench/stats.rs. */
static uint64_t quantile(const uint64_t *s, unsigned long n, unsigned long permille)
{
	unsigned long rank = (permille * n + 999) / 1000;

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return s[rank - 1];
}

static uint64_t ns(uint64_t c, uint64_t hz)
{
	return hz ? (uint64_t)((unsigned __int128)c * 1000000000u / hz) : 0;
}

static void report(const char *name, uint64_t *s, unsigned long n, uint64_t overhead, uint64_t hz)
{
	uint64_t q[4];
	int i;

	qsort(s, n, sizeof(*s), cmp);
	q[0] = s[0];
	q[1] = quantile(s, n, 500);
	q[2] = quantile(s, n, 990);
	q[3] = s[n - 1];
	for (i = 0; i < 4; i++)
		q[i] = q[i] > overhead ? q[i] - overhead : 0;
	printf("BENCH name=%s iters=%lu per=1 cycles=%llu/%llu/%llu/%llu ns=%llu/%llu/%llu/%llu\n",
	       name, n, (unsigned long long)q[0], (unsigned long long)q[1],
	       (unsigned long long)q[2], (unsigned long long)q[3],
	       (unsigned long long)ns(q[0], hz), (unsigned long long)ns(q[1], hz),
	       (unsigned long long)ns(q[2], hz), (unsigned long long)ns(q[3], hz));
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 0, i;
	uint64_t hz = argc > 2 ? strtoull(argv[2], NULL, 10) : 0, overhead, *s;
	long page = sysconf(_SC_PAGESIZE);
	volatile uint64_t *p;
	unsigned long bad = 0, calls = n + n / 10 + 1;
	struct rusage r0, r1;
	long faults;
	int fd;

	if (n < 20 || hz == 0) {
		printf("BENCH-ERROR pfbench: usage: pfbench ITERS(>=20) TSC_HZ\n");
		return 1;
	}
	s = calloc(n, sizeof(*s));
	fd = memfd_create("pfbench", 0);
	if (!s || fd < 0 || ftruncate(fd, page) != 0) {
		printf("BENCH-ERROR pfbench: no memfd page: %s\n", strerror(errno));
		return 1;
	}
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("BENCH-ERROR pfbench: mmap: %s\n", strerror(errno));
		return 1;
	}
	/* Puts the page in the page cache (a write fault allocates it). */
	p[0] = 0x5eed;

	/* The timer pair alone, subtracted from every sample. */
	for (i = 0; i < n / 10 + 1; i++)
		s[0] = tsc_end() - tsc_begin();
	for (i = 0; i < n; i++) {
		uint64_t t0 = tsc_begin();

		s[i] = tsc_end() - t0;
	}
	qsort(s, n, sizeof(*s), cmp);
	overhead = quantile(s, n, 500);

	getrusage(RUSAGE_SELF, &r0);
	for (i = 0; i < calls; i++) {
		uint64_t t0, t1, v;

		if (madvise((void *)p, page, MADV_DONTNEED) != 0) {
			printf("BENCH-ERROR pfbench: madvise: %s\n", strerror(errno));
			return 1;
		}
		t0 = tsc_begin();
		v = p[0];
		t1 = tsc_end();
		bad += v != 0x5eed;
		if (i > n / 10)
			s[i - n / 10 - 1] = t1 - t0;
	}
	getrusage(RUSAGE_SELF, &r1);
	faults = r1.ru_minflt - r0.ru_minflt;
	if (faults < (long)calls) {
		printf("BENCH-ERROR pfbench: %ld minor faults for %lu touches of a zapped page\n",
		       faults, calls);
		return 1;
	}
	if (bad) {
		printf("BENCH-ERROR pfbench: %lu reads after a fault saw another value\n", bad);
		return 1;
	}
	report("page_fault_roundtrip", s, n, overhead, hz);
	return 0;
}
