// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmap_bench_scale: device_map latency against the number of live
 * windows (make bench, scripts/bench). With 1, 100, 1,000 and 10,000
 * one-page windows live (up to P2PMAP_BENCH_SCALE_MAX), all of one file or
 * spread over many (min(windows, 1,000) files, round robin):
 *
 *   fast path  device_map() of a staged, held page, timed alone in the
 *              kernel (the importer's TIME_DEVICE_MAP: no ioctl, no
 *              notifier around it), P2PMAP_BENCH_FAST_BATCHES batches
 *              (default 15) of P2PMAP_BENCH_FAST_CALLS calls (default
 *              500), each batch on another window, spread over the live
 *              ones (and files), in each of P2PMAP_BENCH_SCALE_ROUNDS
 *              rounds (default 5: the windows are given back and mapped
 *              again); fast_p50_ns is the lowest batch median,
 *              fast_p50_max_ns the highest, fast_p99_ns the median of the
 *              batches' p99s. Under TCG the same call runs in about 5 or
 *              about 9 us for stretches of milliseconds to seconds, on
 *              either vCPU, whatever the number of windows (measured:
 *              taskset to each CPU, 1 to 1,000 windows): a single batch's
 *              median says which stretch it fell in; the lowest of many
 *              short batches, spread over rounds seconds apart, compares
 *              like with like
 *   slow path  the importer's MAP of a page that is not staged (lease,
 *              extent lookup, staging, -EAGAIN, the retry's fast path),
 *              P2PMAP_BENCH_SLOW_CALLS per round (default 10), p50/p99
 *              in us
 *
 *   scale files=one|many windows= nfiles= fast_p50_ns= fast_p50_max_ns= fast_p99_ns= slow_p50_us= slow_p99_us=
 *
 * Sanity checks (exit 1): every window was served peer to peer, every timed
 * fast-path call returned 0 (no slow path in it), and p2pmap's windows_live
 * is the number of windows the benchmark holds. The goal (fast path at
 * 10,000 windows within 2x of 1) is reported, not enforced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "p2pmap_bench_util.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define DIR "/mnt/p2p/scale"
#define PAGE 4096
#define MAX_FILES 1000

static int failures;

struct file_map {
	char *map;
	int pages;
};

static struct file_map files[MAX_FILES + 1];	/* the last: the slow path's file */

static void file_path(char *buf, size_t len, int i)
{
	snprintf(buf, len, DIR "/f%d.dat", i);
}

/* Creates and maps @nfiles files of @pages pages, plus the slow path's. */
static void make_files(int nfiles, int pages)
{
	char path[64];
	int i;

	mkdir(DIR, 0755);
	for (i = 0; i <= nfiles; i++) {
		int n = i < nfiles ? pages : 1, fd;

		file_path(path, sizeof(path), i);
		if (make_pattern_file_direct(path, (size_t)n * PAGE, i)) {
			perror(path);
			exit(2);
		}
		fd = open(path, O_RDONLY);
		files[i].map = fd < 0 ? MAP_FAILED :
			mmap(NULL, (size_t)n * PAGE, PROT_READ, MAP_SHARED, fd, 0);
		if (files[i].map == MAP_FAILED) {
			perror(path);
			exit(2);
		}
		files[i].pages = n;
		close(fd);	/* the mapping keeps the file */
	}
}

static void remove_files(int nfiles)
{
	char path[64];
	int i;

	for (i = 0; i <= nfiles; i++) {
		munmap(files[i].map, (size_t)files[i].pages * PAGE);
		file_path(path, sizeof(path), i);
		unlink(path);
	}
	rmdir(DIR);
}

static int map_page(int dev, char *addr, uint32_t *handle)
{
	struct p2pmap_map m = map_req(addr, PAGE, P2PMAP_MAP_NO_FALLBACK);

	if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P) {
		printf("# FAIL: MAP of a page: %s (p2p_errno %d)\n", strerror(errno), m.p2p_errno);
		failures++;
		return -1;
	}
	*handle = m.handle;
	return 0;
}

/* Window @i: file i % nfiles, page i / nfiles. */
static char *window_addr(int i, int nfiles)
{
	return files[i % nfiles].map + (size_t)(i / nfiles) * PAGE;
}

/* Per step, over every round: batch medians and p99s, slow-path samples. */
struct step {
	uint64_t p50s[128], p99s[128], slow[128];
	int nb, ns;
};

#define ROUNDS_MAX 8
#define BATCHES_MAX 16

static void run(const char *name, int nfiles, int max)
{
	static const int steps[] = { 1, 100, 1000, 10000 };
	static struct step st[4];
	int fast_calls = env_long("P2PMAP_BENCH_FAST_CALLS", 500, 10);
	int batches = env_long("P2PMAP_BENCH_FAST_BATCHES", 15, 1);
	int rounds = env_long("P2PMAP_BENCH_SCALE_ROUNDS", 5, 1);
	int slow_calls = env_long("P2PMAP_BENCH_SLOW_CALLS", 10, 1);
	int r, s, nsteps = 0;
	double fast1 = 0;

	if (batches > BATCHES_MAX)
		batches = BATCHES_MAX;
	if (rounds > ROUNDS_MAX)
		rounds = ROUNDS_MAX;
	if (slow_calls > 16)
		slow_calls = 16;
	memset(st, 0, sizeof(st));
	make_files(nfiles, (max + nfiles - 1) / nfiles);
	for (r = 0; r < rounds; r++) {
		int dev = open_dev(), live = 0;

		for (s = 0; s < 4 && steps[s] <= max; s++) {
			struct step *sp = &st[s];
			uint32_t h;
			int i, b;

			while (live < steps[s]) {
				if (map_page(dev, window_addr(live, nfiles), &h))
					goto out;
				live++;
			}
			if (p2pmap_stat("windows_live") != (uint64_t)live) {
				printf("# FAIL: %d windows held, p2pmap has %llu live\n", live,
				       (unsigned long long)p2pmap_stat("windows_live"));
				failures++;
			}
			for (b = 0; b < batches; b++) {
				/* batch b: window b/(batches-1) of the way through */
				int w = batches > 1 ? (int)((int64_t)(live - 1) * b / (batches - 1)) : 0;
				struct p2pmap_time_map t = {
					.addr = (uintptr_t)window_addr(w, nfiles),
					.len = PAGE,
					.count = fast_calls,
				};

				if (ioctl(dev, P2PMAP_IOC_TIME_DEVICE_MAP, &t) || t.served != t.count) {
					printf("# FAIL: fast path: %s, %u of %u served (first errno %d)\n",
					       strerror(errno), t.served, t.count, t.first_errno);
					failures++;
				}
				sp->p50s[sp->nb] = t.p50_ns;
				sp->p99s[sp->nb++] = t.p99_ns;
			}
			for (i = 0; i < slow_calls; i++) {
				uint64_t t0 = now_ns();

				if (map_page(dev, files[nfiles].map, &h))
					goto out;
				sp->slow[sp->ns++] = now_ns() - t0;
				/* The last claim: the window is freed, the next MAP stages. */
				ioctl(dev, P2PMAP_IOC_UNMAP, &h);
			}
			if (s + 1 > nsteps)
				nsteps = s + 1;
		}
out:
		close(dev);	/* gives every window back */
	}
	for (s = 0; s < nsteps; s++) {
		struct step *sp = &st[s];
		uint64_t p50 = pct_u64(sp->p50s, sp->nb, 0);

		if (s == 0)
			fast1 = p50;
		printf("scale files=%s windows=%d nfiles=%d fast_p50_ns=%llu fast_p50_max_ns=%llu fast_p99_ns=%llu slow_p50_us=%.0f slow_p99_us=%.0f\n",
		       name, steps[s], steps[s] < nfiles ? steps[s] : nfiles,
		       (unsigned long long)p50,
		       (unsigned long long)pct_u64(sp->p50s, sp->nb, 100),
		       (unsigned long long)pct_u64(sp->p99s, sp->nb, 50),
		       pct_u64(sp->slow, sp->ns, 50) / 1000.0, pct_u64(sp->slow, sp->ns, 99) / 1000.0);
		if (steps[s] == 10000)
			printf("goal scale files=%s fast_p50_ratio_10000_vs_1=%.2f target=2 %s\n",
			       name, fast1 ? p50 / fast1 : 0,
			       fast1 && p50 <= 2 * fast1 ? "met" : "not-met");
	}
	fflush(stdout);
	remove_files(nfiles);
}

int main(void)
{
	int max = env_long("P2PMAP_BENCH_SCALE_MAX", 10000, 1);

	if (ensure_p2pmap_loaded()) {
		fprintf(stderr, "p2pmap is not loaded\n");
		return 2;
	}
	if (max > 10000)
		max = 10000;
	printf("# scale: up to %d live one-page windows\n", max);
	run("one", 1, max);
	run("many", max < MAX_FILES ? max : MAX_FILES, max);
	if (failures)
		printf("# FAILED: %d sanity checks\n", failures);
	return failures ? 1 : 0;
}
