/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by p2pmap's benchmark programs (make bench). */
#ifndef P2PMAP_BENCH_UTIL_H
#define P2PMAP_BENCH_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p2pmap_importer.h"

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of @n samples (sorted in place); 0 if none. */
static inline uint64_t pct_u64(uint64_t *v, int n, int pct)
{
	int rank;

	if (n <= 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	rank = (n * pct + 99) / 100;
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of @n doubles (sorted in place); 0 if none. */
static inline double median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* An integer from the environment, or @def (and at least @min). */
static inline long env_long(const char *name, long def, long min)
{
	const char *e = getenv(name);
	long v = e && *e ? strtol(e, NULL, 10) : def;

	return v < min ? min : v;
}

/* The test importer's device, opened read-write; exits (2) if it cannot. */
static inline int open_dev(void)
{
	int dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);

	if (dev < 0) {
		perror(P2PMAP_IMPORTER_DEV);
		exit(2);
	}
	return dev;
}

/* Writes back dirty data and drops the clean page cache and slab caches. */
static inline void drop_caches(void)
{
	FILE *f;

	sync();
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (!f || fputs("3\n", f) < 0 || fclose(f)) {
		perror("drop_caches");
		exit(2);
	}
}

/* A /proc/meminfo value in bytes ("Cached", "Slab", ...), or -1. */
static inline long long meminfo_bytes(const char *name)
{
	char line[256];
	size_t n = strlen(name);
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, n) && line[n] == ':') {
			kb = strtoll(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/* The integer a sysctl or sysfs file holds, or -1. */
static inline long read_long_file(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

#endif /* P2PMAP_BENCH_UTIL_H */
