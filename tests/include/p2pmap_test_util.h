/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by p2pmap's kselftest programs. */
#ifndef P2PMAP_TEST_UTIL_H
#define P2PMAP_TEST_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p2pmap_importer.h"

static inline size_t round_up_page(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

/* The byte at file offset @off of a pattern file made with @seed. */
static inline unsigned char pattern_byte(uint64_t off, unsigned int seed)
{
	return (unsigned char)(off * 31 + (off >> 12) * 7 + seed);
}

static inline int make_pattern_file(const char *path, size_t size, unsigned int seed)
{
	unsigned char buf[65536];
	size_t off = 0;
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	if (fd < 0)
		return -1;
	while (off < size) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		size_t i;

		for (i = 0; i < n; i++)
			buf[i] = pattern_byte(off + i, seed);
		if (write(fd, buf, n) != (ssize_t)n) {
			close(fd);
			return -1;
		}
		off += n;
	}
	if (fsync(fd)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/*
 * make_pattern_file() with O_DIRECT writes (@size a multiple of 4 KiB): the
 * file's pages never enter the page cache, so nothing can keep the range
 * from being staged (a clean folio that fadvise(DONTNEED) cannot drop was
 * seen, now and then, after writing tens of MiB).
 */
static inline int make_pattern_file_direct(const char *path, size_t size, unsigned int seed)
{
	const size_t chunk = 1 << 20;
	unsigned char *buf;
	size_t off = 0;
	int fd, ret = -1;

	if (size % 4096 || posix_memalign((void **)&buf, 4096, chunk))
		return -1;
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0644);
	if (fd < 0)
		goto out;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t i;

		for (i = 0; i < n; i++)
			buf[i] = pattern_byte(off + i, seed);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			goto out_close;
		off += n;
	}
	ret = fsync(fd);
out_close:
	if (close(fd))
		ret = -1;
out:
	free(buf);
	return ret;
}

/* 0 if @buf holds the pattern of file offsets [@off, @off + @len). */
static inline int check_pattern(const void *buf, uint64_t off, size_t len, unsigned int seed)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		if (b[i] != pattern_byte(off + i, seed)) {
			fprintf(stderr, "# mismatch at file offset %llu: %#x != %#x\n",
				(unsigned long long)(off + i), b[i], pattern_byte(off + i, seed));
			return -1;
		}
	}
	return 0;
}

static inline struct p2pmap_map map_req(const void *addr, uint64_t len, uint32_t flags)
{
	struct p2pmap_map m = { .addr = (uintptr_t)addr, .len = len, .flags = flags };

	return m;
}

static inline int importer_read(int dev, uint32_t handle, uint64_t off, uint64_t len, void *buf)
{
	struct p2pmap_rw rw = {
		.handle = handle, .offset = off, .len = len, .buf = (uintptr_t)buf,
	};

	return ioctl(dev, P2PMAP_IOC_READ, &rw);
}

/*
 * Reads page @page of @handle through the device and checks it against
 * page @file_page of a pattern file made with @seed; 0 if equal.
 */
static inline int importer_page_is(int dev, uint32_t handle, size_t page, size_t file_page,
				   unsigned int seed)
{
	unsigned char b[4096];

	if (importer_read(dev, handle, page * 4096, sizeof(b), b))
		return -1;
	return check_pattern(b, file_page * 4096, sizeof(b), seed);
}

/* STATUS of @handle into @st; the ioctl's result. */
static inline int importer_status(int dev, uint32_t handle, struct p2pmap_status *st)
{
	memset(st, 0, sizeof(*st));
	st->handle = handle;
	return ioctl(dev, P2PMAP_IOC_STATUS, st);
}

/* The value of the "@name value" line of @file, or UINT64_MAX. */
static inline uint64_t debugfs_value(const char *file, const char *name)
{
	char line[256];
	size_t n = strlen(name);
	uint64_t val = UINT64_MAX;
	FILE *f = fopen(file, "r");

	if (!f)
		return val;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, n) && line[n] == ' ') {
			val = strtoull(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* A counter of /sys/kernel/debug/p2pmap/stats, or UINT64_MAX. */
static inline uint64_t p2pmap_stat(const char *name)
{
	return debugfs_value("/sys/kernel/debug/p2pmap/stats", name);
}

/* Sum of p2pmap's refused_* counters, or UINT64_MAX. */
static inline uint64_t refused_total(void)
{
	char line[256];
	uint64_t sum = 0;
	FILE *f = fopen("/sys/kernel/debug/p2pmap/stats", "r");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		char *sp = strchr(line, ' ');

		if (!strncmp(line, "refused_", 8) && sp)
			sum += strtoull(sp + 1, NULL, 10);
	}
	fclose(f);
	return sum;
}

/* A value of /sys/kernel/debug/p2pmap/revoke_latency, or UINT64_MAX. */
static inline uint64_t p2pmap_latency(const char *name)
{
	return debugfs_value("/sys/kernel/debug/p2pmap/revoke_latency", name);
}

/* Loads $P2PMAP_ROOT/p2pmap.ko unless it is loaded; 0 on success. */
static inline int ensure_p2pmap_loaded(void)
{
	char cmd[512];
	const char *root = getenv("P2PMAP_ROOT");

	if (!access("/sys/module/p2pmap", F_OK))
		return 0;
	if (!root)
		return -1;
	snprintf(cmd, sizeof(cmd), "insmod %s/p2pmap.ko", root);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes @val to the sysctl, sysfs or debugfs file @path; 0 on success. */
static inline int write_knob(const char *path, unsigned int val)
{
	FILE *f = fopen(path, "w");
	int ret;

	if (!f)
		return -1;
	ret = fprintf(f, "%u\n", val) > 0 ? 0 : -1;
	return fclose(f) ? -1 : ret;
}

/* Polls (10 ms steps) until the stats counter @name equals @want; 0 if it
 * did within @bound_s seconds. The bound only catches a hang. */
static inline int wait_stat(const char *name, uint64_t want, int bound_s)
{
	int i;

	for (i = 0; i < bound_s * 100; i++) {
		if (p2pmap_stat(name) == want)
			return 0;
		usleep(10000);
	}
	return -1;
}

/* The source of the filesystem mounted at @dir, from /proc/mounts. */
static inline int mount_source(const char *dir, char *src, size_t len)
{
	char line[512], dev[256], mnt[256];
	FILE *f = fopen("/proc/mounts", "r");
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %255s", dev, mnt) == 2 && !strcmp(mnt, dir)) {
			snprintf(src, len, "%s", dev);
			ret = 0;
		}
	}
	fclose(f);
	return ret;
}

/* umount @dir, retrying while busy (a lease's file is put from a kthread,
 * and that fput is deferred again): 0 on success. */
static inline int umount_retry(const char *dir)
{
	int i, ret = -1;

	for (i = 0; i < 300; i++) {
		ret = umount(dir);
		if (!ret || errno != EBUSY)
			break;
		usleep(100000);
	}
	return ret;
}

/*
 * QMP requests to the host's QEMU through scripts/qmp-agent (the guest and
 * the host share $P2PMAP_RUN): qmp_send() writes the request whole, then
 * renames it, so the agent never sees a partial one; qmp() also waits for
 * the reply (QEMU answers at once; 300 s bound a dead agent) and returns 0
 * if QEMU answered "return".
 */
static inline int qmp_send(const char *cmd)
{
	const char *run = getenv("P2PMAP_RUN");
	char req[512], tmp[520], resp[512];
	FILE *f;

	if (!run)
		return -1;
	snprintf(req, sizeof(req), "%s/qmp-req", run);
	snprintf(tmp, sizeof(tmp), "%s.tmp", req);
	snprintf(resp, sizeof(resp), "%s/qmp-resp", run);
	unlink(resp);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(cmd, f);
	return fclose(f) || rename(tmp, req) ? -1 : 0;
}

static inline int qmp(const char *cmd, char *reply, size_t len)
{
	const char *run = getenv("P2PMAP_RUN");
	char resp[512];
	FILE *f;
	int i;

	if (!run || qmp_send(cmd))
		return -1;
	snprintf(resp, sizeof(resp), "%s/qmp-resp", run);
	for (i = 0; i < 3000; i++) {
		f = fopen(resp, "r");
		if (f) {
			size_t n = fread(reply, 1, len - 1, f);

			reply[n] = 0;
			fclose(f);
			unlink(resp);
			return strstr(reply, "\"return\"") ? 0 : -1;
		}
		usleep(100000);
	}
	snprintf(reply, len, "no reply from the QMP agent");
	return -1;
}

/*
 * What a test creates beyond its process (files, swap files, child
 * processes, an unmounted filesystem), registered as it creates them, so
 * that its fixture's teardown releases them whether the test passed or an
 * ASSERT ended it halfway (the harness runs the teardown, then aborts).
 * Descriptors, mappings, threads and importer handles die with the test's
 * process and need no registration.
 */
#define SCRATCH_MAX 72

struct scratch {
	char files[SCRATCH_MAX][256];	/* unlinked (swapoff first if swap) */
	int swap[SCRATCH_MAX];
	int nfiles;
	pid_t pids[SCRATCH_MAX];	/* killed and reaped unless reaped */
	int npids;
	char mount_dir[64];		/* mounted again if unmounted */
	char mount_src[256];
	char mount_type[16];
};

/* @path (any format) is removed at teardown. */
static inline const char *scratch_file(struct scratch *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline const char *scratch_file(struct scratch *s, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (s->nfiles >= SCRATCH_MAX)
		return NULL;
	p = s->files[s->nfiles];
	s->swap[s->nfiles++] = 0;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(s->files[0]), fmt, ap);
	va_end(ap);
	return p;
}

/* The file @path is used as swap: swapoff before it is removed. */
static inline void scratch_swap(struct scratch *s, const char *path)
{
	int i;

	for (i = 0; i < s->nfiles; i++)
		if (!strcmp(s->files[i], path))
			s->swap[i] = 1;
}

/* Child @pid is killed and reaped at teardown unless scratch_reaped(). */
static inline void scratch_pid(struct scratch *s, pid_t pid)
{
	if (pid > 0 && s->npids < SCRATCH_MAX)
		s->pids[s->npids++] = pid;
}

/* Child @pid was reaped by the test. */
static inline void scratch_reaped(struct scratch *s, pid_t pid)
{
	int i;

	for (i = 0; i < s->npids; i++)
		if (s->pids[i] == pid)
			s->pids[i] = 0;
}

/* @dir (from @src, of type @type) is mounted again at teardown if it is not. */
static inline void scratch_mount(struct scratch *s, const char *dir, const char *src,
				 const char *type)
{
	snprintf(s->mount_dir, sizeof(s->mount_dir), "%s", dir);
	snprintf(s->mount_src, sizeof(s->mount_src), "%s", src);
	snprintf(s->mount_type, sizeof(s->mount_type), "%s", type);
}

/* Whether @dir is a mount point (its device differs from its parent's). */
static inline int scratch_mounted(const char *dir)
{
	char parent[80];
	struct stat a, b;

	snprintf(parent, sizeof(parent), "%s/..", dir);
	return !stat(dir, &a) && !stat(parent, &b) && a.st_dev != b.st_dev;
}

/* Releases everything registered; 0 if all went well. */
static inline int scratch_release(struct scratch *s)
{
	int i, status, ret = 0;

	for (i = 0; i < s->npids; i++) {
		if (s->pids[i] <= 0)
			continue;
		kill(s->pids[i], SIGKILL);
		if (waitpid(s->pids[i], &status, 0) != s->pids[i])
			ret = -1;
	}
	if (s->mount_dir[0] && !scratch_mounted(s->mount_dir) &&
	    mount(s->mount_src, s->mount_dir, s->mount_type, 0, NULL))
		ret = -1;
	for (i = 0; i < s->nfiles; i++) {
		if (s->swap[i])
			swapoff(s->files[i]);
		if (unlink(s->files[i]) && errno != ENOENT)
			ret = -1;
	}
	s->npids = s->nfiles = 0;
	return ret;
}

#endif /* P2PMAP_TEST_UTIL_H */
