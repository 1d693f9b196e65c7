// SPDX-License-Identifier: GPL-2.0
/*
 * Write mappings across a crash: two boots on the same NVMe image
 * (tests/guest/crash-test drives them with scripts/vm-run's P2PMAP_IMG).
 *
 *   p2pmap_crash prepare   first boot: the device writes three files
 *                          through write mappings, then QEMU is killed
 *                          (QMP quit: no guest shutdown, nothing of the
 *                          guest's page cache or of p2pmap's CMB reaches
 *                          the image after that point)
 *   p2pmap_crash check     second boot: what the files hold
 *
 * The files, in /mnt/p2p/crash/:
 *   durable  new; the device wrote it, gave the mapping back, fsync()
 *            (the durability point): exactly the device's bytes and size
 *   mapped   existing (old pattern, durable); the device wrote it and still
 *            held the mapping: the old bytes, never the device's (a write
 *            mapping writes nothing on its own before it is given back)
 *   fresh    new and empty; the device wrote it and still held the mapping
 *            (its blocks allocated, unwritten): size 0, or zeros, never the
 *            device's bytes nor the disk's old data
 *
 * Prints "ok - ..." / "not ok - ..." and, for check, "guest-tests: N
 * passed, N failed, 0 skipped". Needs /dev/p2pmap_importer, the XFS at
 * /mnt/p2p, $P2PMAP_RUN (the QMP agent) for prepare.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define DIR_PATH "/mnt/p2p/crash"
#define SIZE (4 * 4096)
#define OLD_SEED 9
#define DEV_SEED 91

static int passed, failed;

static void report(int ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", what);
	fflush(stdout);
	if (ok)
		passed++;
	else
		failed++;
}

/* A write mapping of SIZE bytes of @path through which edu writes DEV_SEED; its handle, 0 on failure. */
static uint32_t device_writes(int dev, const char *path, int create, void **map)
{
	int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0644);
	unsigned char *b = malloc(SIZE);
	struct p2pmap_map m;
	struct p2pmap_rw rw;
	uint32_t h = 0;
	size_t i;

	if (fd < 0 || !b)
		goto out;
	*map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED)
		goto out;
	/* The file's creation (and size) durable before the device writes. */
	if (fsync(fd) || syncfs(fd))
		goto out;
	m = map_req(*map, SIZE, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P) {
		printf("# %s: write mapping refused: %s\n", path, strerror(errno));
		goto out;
	}
	for (i = 0; i < SIZE; i++)
		b[i] = pattern_byte(i, DEV_SEED);
	rw = (struct p2pmap_rw){ .handle = m.handle, .len = SIZE, .buf = (uintptr_t)b };
	if (ioctl(dev, P2PMAP_IOC_WRITE, &rw)) {
		printf("# %s: device write failed: %s\n", path, strerror(errno));
		goto out;
	}
	h = m.handle;
out:
	free(b);
	if (fd >= 0)
		close(fd);
	return h;
}

static int prepare(void)
{
	int dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	void *m1, *m2, *m3;
	uint32_t h;
	int fd;

	if (dev < 0 || (mkdir(DIR_PATH, 0755) && errno != EEXIST))
		return 1;
	h = device_writes(dev, DIR_PATH "/durable", 1, &m1);
	report(h != 0, "durable: the device wrote a new file");
	report(h && !ioctl(dev, P2PMAP_IOC_UNMAP, &h), "durable: the mapping given back");
	fd = open(DIR_PATH "/durable", O_RDONLY);
	report(fd >= 0 && !fsync(fd), "durable: fsync() after device_unmap");
	if (fd >= 0)
		close(fd);

	report(!make_pattern_file_direct(DIR_PATH "/mapped", SIZE, OLD_SEED),
	       "mapped: old pattern written with O_DIRECT");
	report(device_writes(dev, DIR_PATH "/mapped", 0, &m2) != 0,
	       "mapped: the device wrote it and holds the mapping");
	report(device_writes(dev, DIR_PATH "/fresh", 1, &m3) != 0,
	       "fresh: the device wrote a new file and holds the mapping");
	printf("# prepare: %d passed, %d failed; killing QEMU (QMP quit)\n", passed, failed);
	fflush(stdout);
	if (failed)
		return 1;
	sync();
	if (qmp_send("{\"execute\": \"quit\"}"))
		return 1;
	/* QEMU goes away under us; the bound is for a dead agent. */
	sleep(600);
	printf("# QEMU is still running 600 s after QMP quit\n");
	return 1;
}

/* @path holds exactly @size bytes, each expected(i); 0 if so. */
static int holds(const char *path, off_t size, int seed)
{
	unsigned char *b;
	struct stat st;
	int fd, ret = -1;
	off_t i;

	if (stat(path, &st) || st.st_size != size) {
		printf("# %s: size %lld, expected %lld\n", path, (long long)st.st_size,
		       (long long)size);
		return -1;
	}
	if (!size)
		return 0;
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0 || posix_memalign((void **)&b, 4096, SIZE))
		return -1;
	if (pread(fd, b, SIZE, 0) == size) {
		for (i = 0; i < size && b[i] == pattern_byte(i, seed); i++)
			;
		if (i == size)
			ret = 0;
		else
			printf("# %s: byte %lld is %#x, expected %#x\n", path, (long long)i, b[i],
			       pattern_byte(i, seed));
	}
	free(b);
	close(fd);
	return ret;
}

static int check(void)
{
	report(!holds(DIR_PATH "/durable", SIZE, DEV_SEED),
	       "durable: after the crash, exactly the device's bytes and size");
	report(!holds(DIR_PATH "/mapped", SIZE, OLD_SEED),
	       "mapped: after the crash, the old bytes (nothing written before the mapping was given back)");
	report(!holds(DIR_PATH "/fresh", 0, 0),
	       "fresh: after the crash, empty (its unwritten blocks never exposed)");
	printf("guest-tests: %d passed, %d failed, 0 skipped\n", passed, failed);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "prepare"))
		return prepare();
	if (argc == 2 && !strcmp(argv[1], "check"))
		return check();
	fprintf(stderr, "usage: p2pmap_crash prepare|check\n");
	return 2;
}
