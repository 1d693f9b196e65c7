// SPDX-License-Identifier: GPL-2.0
/*
 * Security probes (issue 17, part 5). Stale data: the device never reads
 * bytes the CPU would not see. Every block of the XFS that no file has
 * written holds a marker byte (scripts/vm-run fills the NVMe image with it
 * before mkfs.xfs -K), as a disk holds other files' old data. Each test
 * makes a file with one allocation pattern that leaves blocks or parts of
 * blocks the file never wrote (fallocate, a partial write, a sparse write,
 * an extension by truncate, a punched hole, a zeroed range, a write into
 * preallocated space), reads it whole through the device, peer to peer,
 * and compares with read(), the test's model of the file: zeros wherever
 * the file was not written, never a marker byte. It also reads the media
 * under the file's unwritten extents (FIEMAP, O_DIRECT on the block
 * device) and logs how many stale (non-zero) bytes lie there: what a
 * provider that reads a block without honouring its state would leak. The
 * patterns that leave unwritten extents require some, so that those probes
 * cannot pass vacuously. Permissions: no writable mapping of
 * a file the process may not write (read-only descriptor, immutable,
 * append-only); a private mapping's is its own copy.
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p with its CMB.
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
#include <sys/wait.h>
#include <grp.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define XFS_DIR "/mnt/p2p"
#define MARKER 0xeb
#define SIZE (4 * 4096)
#define MAX_EXTENTS 64
/* Media read under one extent at most (a fallocate may round up). */
#define MEDIA_MAX (64 << 10)

/*
 * Measured: each test reads 4 pages through the device (~0.4 s each under
 * TCG): a few seconds. 300 s bounds a hang.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 300

struct extents {
	int n;
	uint64_t start[MAX_EXTENTS], len[MAX_EXTENTS];	/* physical bytes */
	int unwritten[MAX_EXTENTS];
};

/* The physical extents of @fd, by FIEMAP (after a sync). */
static int file_extents(int fd, struct extents *e)
{
	char buf[sizeof(struct fiemap) + MAX_EXTENTS * sizeof(struct fiemap_extent)];
	struct fiemap *fm = (struct fiemap *)buf;
	unsigned int i;

	memset(buf, 0, sizeof(buf));
	fm->fm_length = ~0ull;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = MAX_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, fm))
		return -1;
	e->n = fm->fm_mapped_extents;
	for (i = 0; i < fm->fm_mapped_extents; i++) {
		e->start[i] = fm->fm_extents[i].fe_physical;
		e->len[i] = fm->fm_extents[i].fe_length;
		e->unwritten[i] = !!(fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN);
	}
	return 0;
}

/*
 * Stale bytes on the media: non-zero bytes under the unwritten extents of
 * @e (at most MEDIA_MAX per extent), which the file reads as zeros. Read
 * with O_DIRECT from the block device @bdev. -1 on error.
 */
static long media_stale(const char *bdev, const struct extents *e)
{
	unsigned char *buf;
	long stale = 0;
	int fd, i;
	uint64_t len, k;

	fd = open(bdev, O_RDONLY | O_DIRECT);
	if (fd < 0)
		return -1;
	if (posix_memalign((void **)&buf, 4096, MEDIA_MAX)) {
		close(fd);
		return -1;
	}
	for (i = 0; i < e->n; i++) {
		if (!e->unwritten[i])
			continue;
		len = e->len[i] < MEDIA_MAX ? e->len[i] : MEDIA_MAX;
		if (pread(fd, buf, len, e->start[i]) != (ssize_t)len) {
			stale = -1;
			break;
		}
		for (k = 0; k < len; k++)
			stale += buf[k] != 0;
	}
	free(buf);
	close(fd);
	return stale;
}

FIXTURE(probe)
{
	int dev;
	int fd;
	char bdev[256];	/* the XFS's block device */
	char dir[128];
	char path[256];
	long media_stale;	/* set by device_differs() */
	struct scratch s;
};

/*
 * Not every free block holds old data: mkfs.xfs zeroes the first 128 KiB of
 * the device and the blocks between an AG's headers and its first inodes
 * read as zeros, and XFS gives a small file's first extent the free space
 * nearest its inode (xfs_bmap_btalloc()), which is often there. The setup
 * covers that space with old data, the way the probes allocate it:
 * OLD_FILES files of SIZE bytes in the test's directory, each fallocated,
 * written with the marker and synced, then all removed and the removal
 * synced (the log forced: XFS no longer holds the extents busy).
 */
#define OLD_FILES 8

FIXTURE_SETUP(probe)
{
	unsigned char buf[SIZE];
	char old[OLD_FILES][256];
	int fd, i;

	ASSERT_EQ(0, ensure_p2pmap_loaded());
	ASSERT_EQ(0, mount_source(XFS_DIR, self->bdev, sizeof(self->bdev)));
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev);
	snprintf(self->dir, sizeof(self->dir), XFS_DIR "/probe.%d", getpid());
	ASSERT_EQ(0, mkdir(self->dir, 0755));
	snprintf(self->path, sizeof(self->path), "%s/file", self->dir);
	/* Released in reverse order: the directory last. */
	for (i = 0; i < OLD_FILES; i++) {
		snprintf(old[i], sizeof(old[i]), "%s/old.%d", self->dir, i);
		scratch_file(&self->s, "%s", old[i]);
	}
	scratch_file(&self->s, "%s", self->path);
	memset(buf, MARKER, sizeof(buf));
	for (i = 0; i < OLD_FILES; i++) {
		fd = open(old[i], O_CREAT | O_TRUNC | O_WRONLY, 0644);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, fallocate(fd, 0, 0, SIZE));
		ASSERT_EQ(SIZE, pwrite(fd, buf, SIZE, 0));
		ASSERT_EQ(0, fsync(fd));
		close(fd);
	}
	for (i = 0; i < OLD_FILES; i++)
		ASSERT_EQ(0, unlink(old[i]));
	sync();
	self->fd = open(self->path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	ASSERT_LE(0, self->fd);
}

/* Sets the inode flags (FS_IOC_SETFLAGS) of @path to @flags. */
static int set_flags(const char *path, int flags)
{
	int fd = open(path, O_RDONLY), ret;

	if (fd < 0)
		return -1;
	ret = ioctl(fd, FS_IOC_SETFLAGS, &flags);
	close(fd);
	return ret;
}

FIXTURE_TEARDOWN(probe)
{
	/* An immutable or append-only file cannot be removed. */
	if (!access(self->path, F_OK) && set_flags(self->path, 0))
		TH_LOG("could not clear the flags of %s", self->path);
	if (self->fd >= 0)
		close(self->fd);
	close(self->dev);
	if (scratch_release(&self->s) || rmdir(self->dir))
		TH_LOG("could not remove %s", self->dir);
}

/* Fills @len bytes at @off with pattern bytes (seed 5), as one write. */
static int pwrite_pattern(int fd, uint64_t off, size_t len)
{
	unsigned char buf[SIZE];
	size_t i;

	if (len > sizeof(buf))
		return -1;
	for (i = 0; i < len; i++)
		buf[i] = pattern_byte(off + i, 5);
	return pwrite(fd, buf, len, off) == (ssize_t)len ? 0 : -1;
}

/*
 * Reads the file's pages through the device, peer to peer, and compares
 * them with read() (zero past EOF within the last page, as a mapping
 * shows). Returns the number of differing bytes, -1 on error; sets
 * self->media_stale.
 */
static int device_differs(struct __test_metadata *_metadata, FIXTURE_DATA(probe) *self,
			  const char *what)
{
	unsigned char cpu[SIZE], dev[SIZE];
	struct p2pmap_map m;
	struct extents e;
	int i, diff = 0, markers = 0;
	size_t len;
	struct stat st;
	ssize_t n;
	void *p;

	if (fsync(self->fd) || file_extents(self->fd, &e) || fstat(self->fd, &st)) {
		TH_LOG("%s: fsync/FIEMAP/fstat: %s", what, strerror(errno));
		return -1;
	}
	self->media_stale = media_stale(self->bdev, &e);
	if (self->media_stale < 0) {
		TH_LOG("%s: reading the media under the file: %s", what, strerror(errno));
		return -1;
	}
	/* The pages the file has: a mapping past EOF is refused. */
	len = round_up_page(st.st_size);
	if (!len || len > SIZE) {
		TH_LOG("%s: size %lld", what, (long long)st.st_size);
		return -1;
	}
	memset(cpu, 0, sizeof(cpu));
	n = pread(self->fd, cpu, len, 0);
	if (n < 0) {
		TH_LOG("%s: pread: %s", what, strerror(errno));
		return -1;
	}
	/*
	 * The fsync above left the pages clean and nobody maps them with the
	 * CPU: p2pmap drops them (invalidate_mapping_pages()) and serves.
	 */
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, 0);
	if (p == MAP_FAILED) {
		TH_LOG("%s: mmap: %s", what, strerror(errno));
		return -1;
	}
	m = map_req(p, len, P2PMAP_MAP_NO_FALLBACK);
	if (ioctl(self->dev, P2PMAP_IOC_MAP, &m)) {
		TH_LOG("%s: not served peer to peer: %s", what, strerror(errno));
		munmap(p, len);
		return -1;
	}
	for (i = 0; i < (int)(len / 4096); i++) {
		if (importer_read(self->dev, m.handle, i * 4096, 4096, dev + i * 4096)) {
			TH_LOG("%s: device read of page %d: %s", what, i, strerror(errno));
			diff = -1;
		}
	}
	ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle);
	munmap(p, len);
	if (diff)
		return -1;
	for (i = 0; i < (int)len; i++) {
		diff += dev[i] != cpu[i];
		markers += dev[i] == MARKER && cpu[i] != MARKER;
	}
	TH_LOG("%s: %zd bytes, %d extent(s), %ld stale byte(s) on the media under unwritten ones; device: %d byte(s) differ, %d marker byte(s)",
	       what, n, e.n, self->media_stale, diff, markers);
	return diff;
}

TEST_F(probe, fallocate)
{
	ASSERT_EQ(0, fallocate(self->fd, 0, 0, SIZE));
	EXPECT_EQ(0, device_differs(_metadata, self, "fallocate"));
	/* Unwritten extents over old data: the probe has teeth. */
	EXPECT_LT(0, self->media_stale);
}

TEST_F(probe, partial_write)
{
	ASSERT_EQ(0, pwrite_pattern(self->fd, 5000, 100));
	EXPECT_EQ(0, device_differs(_metadata, self, "partial write"));
}

TEST_F(probe, sparse_write)
{
	ASSERT_EQ(0, pwrite_pattern(self->fd, 3 * 4096 + 1000, 8));
	EXPECT_EQ(0, device_differs(_metadata, self, "sparse write"));
}

TEST_F(probe, extend_by_truncate)
{
	ASSERT_EQ(0, pwrite_pattern(self->fd, 0, 3000));
	ASSERT_EQ(0, fsync(self->fd));
	ASSERT_EQ(0, ftruncate(self->fd, SIZE));
	EXPECT_EQ(0, device_differs(_metadata, self, "extend by truncate"));
}

TEST_F(probe, punch_hole)
{
	ASSERT_EQ(0, pwrite_pattern(self->fd, 0, SIZE));
	ASSERT_EQ(0, fsync(self->fd));
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192));
	EXPECT_EQ(0, device_differs(_metadata, self, "punch hole"));
}

TEST_F(probe, zero_range_unaligned)
{
	ASSERT_EQ(0, pwrite_pattern(self->fd, 0, SIZE));
	ASSERT_EQ(0, fsync(self->fd));
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_ZERO_RANGE, 3000, 9000));
	EXPECT_EQ(0, device_differs(_metadata, self, "zero range"));
}

TEST_F(probe, write_into_preallocated_space)
{
	ASSERT_EQ(0, fallocate(self->fd, 0, 0, SIZE));
	ASSERT_EQ(0, pwrite_pattern(self->fd, 6000, 10));
	EXPECT_EQ(0, device_differs(_metadata, self, "write into preallocation"));
	EXPECT_LT(0, self->media_stale);
}

/*
 * MAP of @len bytes at @p with P2PMAP_MAP_WRITE: never peer to peer where
 * the process may not write the file; with the fallback, -errno or the
 * path. Returns 0 if nothing writable of the file was handed out.
 */
static int no_write_mapping(struct __test_metadata *_metadata, int dev, void *p, size_t len,
			    const char *what)
{
	struct p2pmap_map m = map_req(p, len, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	int ret = 0;

	if (!ioctl(dev, P2PMAP_IOC_MAP, &m)) {
		TH_LOG("%s: a write mapping was served peer to peer", what);
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
		ret = -1;
	} else {
		TH_LOG("%s: peer to peer refused: %s", what, strerror(errno));
	}
	m = map_req(p, len, P2PMAP_MAP_WRITE);
	if (!ioctl(dev, P2PMAP_IOC_MAP, &m)) {
		TH_LOG("%s: the fallback gave a write mapping (path %u)", what, m.path);
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
		ret = -1;
	} else if (errno != EPERM && errno != EACCES && errno != EFAULT) {
		TH_LOG("%s: the fallback failed with %s", what, strerror(errno));
		ret = -1;
	}
	return ret;
}

/*
 * Never a writable mapping of a file through a read-only descriptor, of an
 * immutable file or of an append-only one; a write mapping of a private
 * mapping is the process's own copy (page cache fallback), and what the
 * device writes there never reaches the file.
 */
TEST_F(probe, no_writable_mapping_without_write_permission)
{
	unsigned char cpu[4096], data[4096];
	struct p2pmap_map m;
	struct p2pmap_rw rw;
	int fd;
	void *p;

	ASSERT_EQ(0, pwrite_pattern(self->fd, 0, SIZE));
	ASSERT_EQ(0, fsync(self->fd));
	close(self->fd);
	self->fd = -1;

	fd = open(self->path, O_RDONLY);
	ASSERT_LE(0, fd);
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, no_write_mapping(_metadata, self->dev, p, SIZE, "read-only fd"));
	munmap(p, SIZE);

	ASSERT_EQ(0, set_flags(self->path, FS_IMMUTABLE_FL));
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, no_write_mapping(_metadata, self->dev, p, SIZE, "immutable"));
	munmap(p, SIZE);
	ASSERT_EQ(0, set_flags(self->path, FS_APPEND_FL));
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, no_write_mapping(_metadata, self->dev, p, SIZE, "append-only"));
	munmap(p, SIZE);
	ASSERT_EQ(0, set_flags(self->path, 0));

	/* A private writable mapping: the device writes the process's copy. */
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	m = map_req(p, SIZE, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	m = map_req(p, SIZE, P2PMAP_MAP_WRITE);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	memset(data, 0x5a, sizeof(data));
	rw = (struct p2pmap_rw){ .handle = m.handle, .offset = 4096, .len = 4096,
				 .buf = (uintptr_t)data };
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_WRITE, &rw));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0x5a, ((unsigned char *)p)[4096 + 17]);
	munmap(p, SIZE);
	ASSERT_EQ(4096, pread(fd, cpu, sizeof(cpu), 4096));
	EXPECT_EQ(0, check_pattern(cpu, 4096, sizeof(cpu), 5));
	close(fd);
}

/*
 * Asks for a write mapping of @len bytes at @p (no fallback) and expects
 * refusal @reason with @err: 0 if so.
 */
static int write_refused(struct __test_metadata *_metadata, int dev, void *p, size_t len,
			 const char *reason, int err)
{
	struct p2pmap_map m = map_req(p, len, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	char counter[80];
	uint64_t before;
	int ret, e;

	snprintf(counter, sizeof(counter), "refused_%s", reason);
	before = p2pmap_stat(counter);
	ret = ioctl(dev, P2PMAP_IOC_MAP, &m);
	e = errno;
	if (!ret) {
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
		TH_LOG("%s: a write mapping was served", reason);
		return -1;
	}
	if (e != err || p2pmap_stat(counter) != before + 1) {
		TH_LOG("%s: refused with %s, %s %llu -> %llu", reason, strerror(e), counter,
		       (unsigned long long)before, (unsigned long long)p2pmap_stat(counter));
		return -1;
	}
	return 0;
}

/* A write mapping of [p, p + len) is served peer to peer; 0 if so. */
static int write_served(struct __test_metadata *_metadata, int dev, void *p, size_t len)
{
	struct p2pmap_map m = map_req(p, len, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);

	if (ioctl(dev, P2PMAP_IOC_MAP, &m)) {
		TH_LOG("write mapping refused: %s", strerror(errno));
		return -1;
	}
	ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	return m.path == P2PMAP_PATH_P2P ? 0 : -1;
}

/*
 * Each permission a write() would check refuses a write mapping with its
 * own counted reason: a private or read-only vma, an immutable or
 * append-only inode (made so while a writable shared mapping exists), a
 * frozen filesystem. The same mapping is served before and after. A
 * read-only descriptor cannot give a writable shared mapping, and
 * mprotect cannot make one.
 */
TEST_F(probe, write_mapping_refusals_name_the_reason)
{
	int dirfd, rofd;
	void *p;

	ASSERT_EQ(0, pwrite_pattern(self->fd, 0, SIZE));
	ASSERT_EQ(0, fsync(self->fd));

	p = mmap(NULL, SIZE, PROT_READ, MAP_PRIVATE, self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, write_refused(_metadata, self->dev, p, SIZE, "write_private", EACCES));
	munmap(p, SIZE);

	rofd = open(self->path, O_RDONLY);
	ASSERT_LE(0, rofd);
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, rofd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, write_refused(_metadata, self->dev, p, SIZE, "write_vma_read_only", EACCES));
	EXPECT_EQ(-1, mprotect(p, SIZE, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	munmap(p, SIZE);
	close(rofd);

	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, write_served(_metadata, self->dev, p, SIZE));
	ASSERT_EQ(0, set_flags(self->path, FS_IMMUTABLE_FL));
	EXPECT_EQ(0, write_refused(_metadata, self->dev, p, SIZE, "write_immutable", EPERM));
	ASSERT_EQ(0, set_flags(self->path, FS_APPEND_FL));
	EXPECT_EQ(0, write_refused(_metadata, self->dev, p, SIZE, "write_append_only", EPERM));
	ASSERT_EQ(0, set_flags(self->path, 0));

	dirfd = open(XFS_DIR, O_RDONLY);
	ASSERT_LE(0, dirfd);
	ASSERT_EQ(0, ioctl(dirfd, FIFREEZE, 0)) TH_LOG("FIFREEZE: %s", strerror(errno));
	EXPECT_EQ(0, write_refused(_metadata, self->dev, p, SIZE, "write_fs_frozen", EBUSY));
	/* Thawed before anything can fail: nothing else may block on it. */
	ASSERT_EQ(0, ioctl(dirfd, FITHAW, 0)) TH_LOG("FITHAW: %s", strerror(errno));
	close(dirfd);
	EXPECT_EQ(0, write_served(_metadata, self->dev, p, SIZE));
	munmap(p, SIZE);
}

/*
 * An unprivileged user (uid/gid 65534) that may use the importer device
 * maps only what it can read: a file it may not read cannot even be
 * opened, so it has no vma to map; one it may read is served peer to peer
 * with the file's bytes, never writable (neither through a read-only
 * descriptor's mapping nor a shared writable one, which mmap refuses).
 */
TEST_F(probe, unprivileged_user_maps_only_what_it_can_read)
{
	char public[256];
	struct stat st;
	int status;
	pid_t child;

	ASSERT_EQ(0, pwrite_pattern(self->fd, 0, SIZE));
	ASSERT_EQ(0, fsync(self->fd));
	ASSERT_EQ(0, fchmod(self->fd, 0600));		/* the secret */
	snprintf(public, sizeof(public), "%s/public", self->dir);
	scratch_file(&self->s, "%s", public);
	ASSERT_EQ(0, make_pattern_file(public, SIZE, 5));
	ASSERT_EQ(0, chmod(public, 0644));
	ASSERT_EQ(0, stat(P2PMAP_IMPORTER_DEV, &st));
	/* The device is root's (0600): let the user in for this test only. */
	ASSERT_EQ(0, chmod(P2PMAP_IMPORTER_DEV, 0666));
	child = fork();
	if (!child) {
		unsigned char buf[4096];
		struct p2pmap_map m;
		int dev, fd;
		void *p;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(10);
		dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
		if (dev < 0)
			_exit(11);
		if (open(self->path, O_RDONLY) >= 0 || errno != EACCES)
			_exit(12);
		fd = open(public, O_RDONLY);
		if (fd < 0)
			_exit(13);
		if (mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED)
			_exit(14);
		p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			_exit(15);
		m = map_req(p, SIZE, P2PMAP_MAP_NO_FALLBACK);
		if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P)
			_exit(16);
		if (importer_read(dev, m.handle, 4096, sizeof(buf), buf) ||
		    check_pattern(buf, 4096, sizeof(buf), 5))
			_exit(17);
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
		m = map_req(p, SIZE, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
		if (!ioctl(dev, P2PMAP_IOC_MAP, &m))
			_exit(18);
		m = map_req(p, SIZE, P2PMAP_MAP_WRITE);
		if (!ioctl(dev, P2PMAP_IOC_MAP, &m))
			_exit(19);
		_exit(0);
	}
	status = -1;
	if (child > 0 && waitpid(child, &status, 0) != child)
		status = -1;
	/* Restored before any assertion can end the test. */
	EXPECT_EQ(0, chmod(P2PMAP_IMPORTER_DEV, st.st_mode & 07777));
	ASSERT_LT(0, child);
	ASSERT_TRUE(status != -1 && WIFEXITED(status)) TH_LOG("status %#x", status);
	/*
	 * 10 setuid, 11 device, 12 the secret opened, 13/15 the public file,
	 * 14 a shared writable mapping of a read-only descriptor, 16 not served
	 * peer to peer, 17 wrong bytes, 18/19 a write mapping.
	 */
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_HARNESS_MAIN
