// SPDX-License-Identifier: GPL-2.0
/*
 * Write mappings (DEVICE_MAP_FLAG_WRITE): the edu device writes a file's
 * blocks peer to peer into a CMB window; p2pmap writes the window back to
 * the blocks (bios on the CMB pages) and commits it (->commit_blocks())
 * once the importer gave the mapping back. Checked with O_DIRECT (no page
 * cache) and after a remount: the bytes and the size the device wrote,
 * the neighbours of a partial write kept, nothing visible before the
 * mapping is given back, a read and an fsync() waiting for the write-back,
 * a truncate and a CPU write() during the mapping landing on top of what
 * the device wrote.
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p (its device is
 * remounted), p2pmap loaded.
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/fs.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

/*
 * Bounds for hangs only (a killed test runs no teardown): measured on the
 * 2-core development machine (TCG, KASAN), the longest test writes and
 * reads 8 pages through edu (0.4 s each) and takes about 10 s. 180 s
 * covers a machine several times slower.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 180

#define XFS_DIR "/mnt/p2p"
#define PAGES 4
#define SIZE (PAGES * 4096)
#define OLD_SEED 5	/* the file's bytes before the device writes */
#define DEV_SEED 77	/* what the device writes */

FIXTURE(write)
{
	int dev;
	int fd;
	char path[256];
	char bdev[256];
	void *map;
	struct scratch s;
};

FIXTURE_SETUP(write)
{
	memset(&self->s, 0, sizeof(self->s));
	self->map = MAP_FAILED;
	self->fd = -1;
	ASSERT_EQ(0, ensure_p2pmap_loaded());
	ASSERT_EQ(0, mount_source(XFS_DIR, self->bdev, sizeof(self->bdev)));
	scratch_mount(&self->s, XFS_DIR, self->bdev, "xfs");
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev);
	snprintf(self->path, sizeof(self->path), XFS_DIR "/write.%d", getpid());
	scratch_file(&self->s, "%s", self->path);
}

FIXTURE_TEARDOWN(write)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, SIZE);
	if (self->fd >= 0)
		close(self->fd);
	close(self->dev);
	EXPECT_EQ(0, scratch_release(&self->s));
}

/* Opens self->path (new and empty with @create) and maps SIZE bytes RW. */
static int open_and_map(struct __test_metadata *_metadata, FIXTURE_DATA(write) *self, int create)
{
	self->fd = open(self->path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0644);
	if (self->fd < 0)
		return -1;
	self->map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	return self->map == MAP_FAILED ? -1 : 0;
}

/* A write mapping of the whole of self->map, peer to peer: its handle, 0 if refused. */
static uint32_t map_write(struct __test_metadata *_metadata, FIXTURE_DATA(write) *self)
{
	struct p2pmap_map m = map_req(self->map, SIZE, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);

	if (ioctl(self->dev, P2PMAP_IOC_MAP, &m)) {
		TH_LOG("write mapping refused: %s", strerror(errno));
		return 0;
	}
	if (m.path != P2PMAP_PATH_P2P) {
		TH_LOG("write mapping served by path %u", m.path);
		return 0;
	}
	return m.handle;
}

/* The device writes [off, off + len) of the mapping with the DEV_SEED pattern. */
static int device_write(int dev, uint32_t handle, uint64_t off, uint64_t len)
{
	unsigned char *b = malloc(len);
	struct p2pmap_rw rw = {
		.handle = handle, .offset = off, .len = len, .buf = (uintptr_t)b,
	};
	uint64_t i;
	int ret;

	if (!b)
		return -1;
	for (i = 0; i < len; i++)
		b[i] = pattern_byte(off + i, DEV_SEED);
	ret = ioctl(dev, P2PMAP_IOC_WRITE, &rw);
	free(b);
	return ret;
}

/*
 * Opens and maps self->path (@existing: an old-pattern file, else a new,
 * empty one) and has the device write all SIZE bytes of it through a
 * write mapping, kept: its handle, 0 on failure.
 */
static uint32_t device_wrote_all(struct __test_metadata *_metadata, FIXTURE_DATA(write) *self,
				 int existing)
{
	uint32_t h;

	if (existing && make_pattern_file_direct(self->path, SIZE, OLD_SEED))
		return 0;
	if (open_and_map(_metadata, self, !existing))
		return 0;
	h = map_write(_metadata, self);
	if (h && device_write(self->dev, h, 0, SIZE))
		return 0;
	return h;
}

/* Reads @len bytes at @off of @path with O_DIRECT into @buf; how many came (to EOF), -1 on error. */
static ssize_t read_direct(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY | O_DIRECT);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, buf, len, off);
	close(fd);
	return n;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : st.st_size;
}

/* Byte @i of the file as expected: the device's in [lo, hi), else @other (a seed, or -1 for zeros). */
static unsigned char expected(uint64_t i, uint64_t lo, uint64_t hi, int other)
{
	if (i >= lo && i < hi)
		return pattern_byte(i, DEV_SEED);
	return other < 0 ? 0 : pattern_byte(i, other);
}

/* The first @len bytes of @path (O_DIRECT) are as expected(); 0 if so. */
static int check_file(struct __test_metadata *_metadata, const char *path, size_t len,
		      uint64_t lo, uint64_t hi, int other)
{
	unsigned char *b;
	size_t i;

	if (posix_memalign((void **)&b, 4096, SIZE))
		return -1;
	memset(b, 0xee, SIZE);
	if (read_direct(path, b, SIZE, 0) < (ssize_t)len) {
		TH_LOG("O_DIRECT read of %s failed: %s", path, strerror(errno));
		free(b);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (b[i] != expected(i, lo, hi, other)) {
			TH_LOG("byte %zu: %#x, expected %#x", i, b[i], expected(i, lo, hi, other));
			free(b);
			return -1;
		}
	}
	free(b);
	return 0;
}

/* The first SIZE bytes of @path (O_DIRECT) are the device's, with the @n bytes of @cpu at @at on top; 0 if so. */
static int check_cpu_on_top(struct __test_metadata *_metadata, const char *path, size_t at,
			    const char *cpu, size_t n)
{
	unsigned char *b;
	size_t i;

	if (posix_memalign((void **)&b, 4096, SIZE))
		return -1;
	if (read_direct(path, b, SIZE, 0) != SIZE) {
		free(b);
		return -1;
	}
	for (i = 0; i < SIZE; i++) {
		unsigned char want = i >= at && i < at + n ?
			(unsigned char)cpu[i - at] : pattern_byte(i, DEV_SEED);

		if (b[i] != want) {
			TH_LOG("byte %zu: %#x, expected %#x", i, b[i], want);
			break;
		}
	}
	free(b);
	return i == SIZE ? 0 : -1;
}

/*
 * A new, empty file: the device writes every page through a write mapping
 * past EOF. Nothing shows before the mapping is given back (size 0, no
 * write-back); then O_DIRECT, right after device_unmap (the read waits for
 * the write-back), and a remount show exactly the device's bytes and size.
 */
TEST_F(write, new_file_written_by_the_device)
{
	uint64_t staged = p2pmap_stat("write_windows");
	uint64_t written = p2pmap_stat("written_back");
	uint32_t h;

	ASSERT_EQ(0, open_and_map(_metadata, self, 1));
	h = map_write(_metadata, self);
	ASSERT_NE(0, h);
	EXPECT_EQ(staged + 1, p2pmap_stat("write_windows"));
	ASSERT_EQ(0, device_write(self->dev, h, 0, SIZE));
	/* The device's bytes read back through the device. */
	EXPECT_EQ(0, importer_page_is(self->dev, h, 2, 2, DEV_SEED));
	/* Not on the media before the importer gives the mapping back. */
	EXPECT_EQ(0, file_size(self->path));
	EXPECT_EQ(written, p2pmap_stat("written_back"));

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
	EXPECT_EQ(0, check_file(_metadata, self->path, SIZE, 0, SIZE, -1));
	EXPECT_EQ(SIZE, file_size(self->path));
	EXPECT_EQ(written + 1, p2pmap_stat("written_back"));

	/* Durable and committed: the same after a remount. */
	munmap(self->map, SIZE);
	self->map = MAP_FAILED;
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, umount_retry(XFS_DIR));
	ASSERT_EQ(0, mount(self->bdev, XFS_DIR, "xfs", 0, NULL)) TH_LOG("mount: %s", strerror(errno));
	EXPECT_EQ(SIZE, file_size(self->path));
	EXPECT_EQ(0, check_file(_metadata, self->path, SIZE, 0, SIZE, -1));
}

/*
 * The device writes part of a page (part of a block) of an existing file:
 * the window held the file's bytes, so the rest of the page, and the
 * other pages, keep theirs; the size does not change.
 */
TEST_F(write, partial_page_keeps_the_neighbouring_bytes)
{
	const uint64_t lo = 4096 + 1000, hi = 4096 + 1000 + 700;
	uint32_t h;

	ASSERT_EQ(0, make_pattern_file_direct(self->path, SIZE, OLD_SEED));
	ASSERT_EQ(0, open_and_map(_metadata, self, 0));
	h = map_write(_metadata, self);
	ASSERT_NE(0, h);
	/* The window holds the file's current bytes. */
	EXPECT_EQ(0, importer_page_is(self->dev, h, 1, 1, OLD_SEED));
	ASSERT_EQ(0, device_write(self->dev, h, lo, hi - lo));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
	EXPECT_EQ(0, check_file(_metadata, self->path, SIZE, lo, hi, OLD_SEED));
	EXPECT_EQ(SIZE, file_size(self->path));
}

/*
 * fsync() is the durability point: after device_unmap, fsync() returns
 * once the window is written back and committed (the counter moved, the
 * size is set), without a read first.
 */
TEST_F(write, fsync_after_unmap_waits_for_the_write_back)
{
	uint64_t written = p2pmap_stat("written_back");
	uint32_t h;

	ASSERT_EQ(0, open_and_map(_metadata, self, 1));
	h = map_write(_metadata, self);
	ASSERT_NE(0, h);
	ASSERT_EQ(0, device_write(self->dev, h, 0, 4096));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
	ASSERT_EQ(0, fsync(self->fd));
	EXPECT_EQ(written + 1, p2pmap_stat("written_back"));
	EXPECT_EQ(SIZE, file_size(self->path));
	EXPECT_EQ(0, check_file(_metadata, self->path, SIZE, 0, 4096, -1));
}

/*
 * A truncate while the device holds a write mapping: the mapping is
 * revoked, what the device wrote is committed first, then the truncate
 * cuts it: the bytes below the new size are the device's.
 */
TEST_F(write, truncate_keeps_the_device_bytes_below_the_new_size)
{
	const off_t new_size = 2 * 4096 + 100;
	struct p2pmap_status st;
	uint32_t h;

	h = device_wrote_all(_metadata, self, 0);
	ASSERT_NE(0, h);
	ASSERT_EQ(0, ftruncate(self->fd, new_size));
	ASSERT_EQ(0, importer_status(self->dev, h, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(new_size, file_size(self->path));
	EXPECT_EQ(0, check_file(_metadata, self->path, new_size, 0, SIZE, -1));
}

/*
 * A hole punched while the device holds a write mapping: the mapping is
 * revoked and what the device wrote committed first, then the punch: the
 * punched page reads as zeros, the others as the device wrote them.
 */
TEST_F(write, punch_keeps_the_device_bytes_around_the_hole)
{
	unsigned char *b;
	uint32_t h;
	size_t i;

	h = device_wrote_all(_metadata, self, 1);
	ASSERT_NE(0, h);
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096));
	ASSERT_EQ(0, posix_memalign((void **)&b, 4096, SIZE));
	ASSERT_EQ(SIZE, read_direct(self->path, b, SIZE, 0));
	for (i = 0; i < SIZE; i++) {
		unsigned char want = i / 4096 == 1 ? 0 : pattern_byte(i, DEV_SEED);

		if (b[i] != want) {
			TH_LOG("byte %zu: %#x, expected %#x", i, b[i], want);
			break;
		}
	}
	EXPECT_EQ(SIZE, i);
	free(b);
}

/*
 * A CPU write() into the range while the device holds a write mapping:
 * the mapping is revoked and written back first, then the CPU's bytes
 * land on top of the device's.
 */
TEST_F(write, cpu_write_lands_on_top_of_the_device_bytes)
{
	const char cpu[] = "written by the CPU";
	const off_t at = 4096 + 10;
	struct p2pmap_status st;
	uint32_t h;

	h = device_wrote_all(_metadata, self, 1);
	ASSERT_NE(0, h);
	ASSERT_EQ((ssize_t)sizeof(cpu), pwrite(self->fd, cpu, sizeof(cpu), at));
	ASSERT_EQ(0, importer_status(self->dev, h, &st));
	EXPECT_EQ(1, st.revoked);
	ASSERT_EQ(0, fsync(self->fd));
	EXPECT_EQ(0, check_cpu_on_top(_metadata, self->path, at, cpu, sizeof(cpu)));
}

/*
 * A CPU store through a shared mapping of the range while the device holds
 * a write mapping (the page read before, so the CPU's page holds the old
 * bytes): the mapping is revoked and written back before the page becomes
 * writable, the commit drops the old page, the fault is retried on a page
 * read after the commit, and the CPU's bytes end on top of the device's,
 * whose other bytes of the page stay.
 */
TEST_F(write, cpu_store_through_mmap_lands_on_top)
{
	const char cpu[] = "stored by the CPU";
	const size_t at = 2 * 4096 + 10;
	volatile unsigned char old;
	struct p2pmap_status st;
	uint32_t h;

	h = device_wrote_all(_metadata, self, 1);
	ASSERT_NE(0, h);
	/* The CPU reads the page first: its page cache holds the old bytes. */
	old = ((unsigned char *)self->map)[at];
	EXPECT_EQ(pattern_byte(at, OLD_SEED), old);
	memcpy((char *)self->map + at, cpu, sizeof(cpu));
	ASSERT_EQ(0, importer_status(self->dev, h, &st));
	EXPECT_EQ(1, st.revoked);
	ASSERT_EQ(0, msync(self->map, SIZE, MS_SYNC));
	EXPECT_EQ(0, check_cpu_on_top(_metadata, self->path, at, cpu, sizeof(cpu)));
}

/*
 * An O_APPEND write while the device holds a write mapping past EOF of a
 * new file: the mapping is written back and committed first (the file
 * grows to its end), and the append goes after it, not over it.
 */
TEST_F(write, append_goes_after_what_the_device_wrote)
{
	const char tail[] = "appended";
	char got[sizeof(tail)];
	int afd;
	uint32_t h;

	h = device_wrote_all(_metadata, self, 0);
	ASSERT_NE(0, h);
	afd = open(self->path, O_WRONLY | O_APPEND);
	ASSERT_LE(0, afd);
	ASSERT_EQ((ssize_t)sizeof(tail), write(afd, tail, sizeof(tail)));
	close(afd);
	EXPECT_EQ(SIZE + (off_t)sizeof(tail), file_size(self->path));
	EXPECT_EQ(0, check_file(_metadata, self->path, SIZE, 0, SIZE, -1));
	ASSERT_EQ((ssize_t)sizeof(got), pread(self->fd, got, sizeof(got), SIZE));
	EXPECT_EQ(0, memcmp(got, tail, sizeof(tail)));
}

/*
 * A reflink (FICLONE) of a file while the device holds a write mapping of
 * it: the mapping is written back and committed before the blocks are
 * shared, so the clone holds the device's bytes. A RWF_NOWAIT write of the
 * range meanwhile is refused (EAGAIN) instead of waiting.
 */
TEST_F(write, reflink_and_nowait_write_see_what_the_device_wrote)
{
	char clone[300];
	struct iovec iov;
	char c = 'x';
	int cfd;
	uint32_t h;

	snprintf(clone, sizeof(clone), "%s.clone", self->path);
	scratch_file(&self->s, "%s", clone);
	h = device_wrote_all(_metadata, self, 0);
	ASSERT_NE(0, h);
	iov.iov_base = &c;
	iov.iov_len = 1;
	EXPECT_EQ(-1, pwritev2(self->fd, &iov, 1, 100, RWF_NOWAIT));
	EXPECT_EQ(EAGAIN, errno);
	cfd = open(clone, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, cfd);
	ASSERT_EQ(0, ioctl(cfd, FICLONE, self->fd)) TH_LOG("FICLONE: %s", strerror(errno));
	close(cfd);
	EXPECT_EQ(SIZE, file_size(clone));
	EXPECT_EQ(0, check_file(_metadata, clone, SIZE, 0, SIZE, -1));
}

/*
 * Two write mappings of overlapping ranges that neither holds: the second
 * is refused (two windows written back in either order would undo each
 * other's bytes); once the first is given back, it is served.
 */
TEST_F(write, overlapping_write_mappings_are_refused)
{
	uint64_t refused = p2pmap_stat("refused_write_overlap");
	struct p2pmap_map m;
	uint32_t h;

	ASSERT_EQ(0, make_pattern_file_direct(self->path, SIZE, OLD_SEED));
	ASSERT_EQ(0, open_and_map(_metadata, self, 0));
	m = map_req(self->map, 2 * 4096, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	h = m.handle;
	m = map_req((char *)self->map + 4096, 2 * 4096, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_write_overlap"));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
	m = map_req((char *)self->map + 4096, 2 * 4096, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m)) TH_LOG("MAP: %s", strerror(errno));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
}

/*
 * Unloading p2pmap while the device holds a write mapping it wrote: the
 * mapping is revoked and written back before the module goes (the
 * importer's device_unmap no longer reaches an unregistered provider),
 * and the file holds the device's bytes.
 */
TEST_F(write, unload_writes_back_a_held_write_mapping)
{
	struct p2pmap_status st;
	uint32_t h;

	h = device_wrote_all(_metadata, self, 0);
	ASSERT_NE(0, h);
	ASSERT_EQ(0, system("rmmod p2pmap"));
	ASSERT_EQ(0, importer_status(self->dev, h, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(SIZE, file_size(self->path));
	EXPECT_EQ(0, check_file(_metadata, self->path, SIZE, 0, SIZE, -1));
	ASSERT_EQ(0, ensure_p2pmap_loaded());
}

#define BIG (256UL << 20)	/* four times the 64 MiB CMB */
#define CHUNK (16UL << 20)
#define NCHUNK (BIG / CHUNK)

/* The page of chunk @c that the device writes. */
static size_t sample_page(size_t c)
{
	return (c * 37 + 5) % (CHUNK / 4096);
}

/* The device writes page @page of mapping @handle with the pattern of file offset @file_off. */
static int device_write_page(int dev, uint32_t handle, size_t page, uint64_t file_off)
{
	unsigned char b[4096];
	struct p2pmap_rw rw = {
		.handle = handle, .offset = page * 4096, .len = sizeof(b), .buf = (uintptr_t)b,
	};
	size_t i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = pattern_byte(file_off + i, DEV_SEED);
	return ioctl(dev, P2PMAP_IOC_WRITE, &rw);
}

/*
 * CMB pressure with write windows: a new 256 MiB file written through
 * sixteen 16 MiB write mappings, all kept, through the 64 MiB CMB: the
 * mappings staged later revoke the older ones, whose windows are written
 * back before their space is reused. Nothing is lost and nothing is
 * refused: each page the device wrote reads back through the device (a
 * read mapping of it) and the whole file, with O_DIRECT, is exactly those
 * pages and zeros.
 */
TEST_F_TIMEOUT(write, cmb_pressure_loses_nothing, 1800)
{
	uint64_t pressure = p2pmap_stat("revocations_cmb_pressure");
	uint64_t failed = p2pmap_stat("write_back_failed");
	uint64_t written = p2pmap_stat("written_back");
	uint64_t full = p2pmap_stat("refused_cmb_full");
	unsigned char *big, *b;
	uint32_t h[NCHUNK];
	size_t c, i, bad = 0;
	int fd;

	fd = open(self->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, fd);
	big = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, big);
	for (c = 0; c < NCHUNK; c++) {
		struct p2pmap_map m = map_req(big + c * CHUNK, CHUNK,
					      P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);

		ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m)) TH_LOG("chunk %zu: %s", c, strerror(errno));
		ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
		h[c] = m.handle;
		ASSERT_EQ(0, device_write_page(self->dev, h[c], sample_page(c),
					       c * CHUNK + sample_page(c) * 4096));
	}
	for (c = 0; c < NCHUNK; c++)
		ioctl(self->dev, P2PMAP_IOC_UNMAP, &h[c]);
	EXPECT_LT(pressure, p2pmap_stat("revocations_cmb_pressure"));
	EXPECT_EQ(full, p2pmap_stat("refused_cmb_full"));

	/* Through the device: a read mapping of each written page and the next. */
	for (c = 0; c < NCHUNK; c++) {
		size_t p = c * (CHUNK / 4096) + sample_page(c);
		struct p2pmap_map m = map_req(big + p * 4096, 2 * 4096, P2PMAP_MAP_NO_FALLBACK);

		ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m)) TH_LOG("page %zu: %s", p, strerror(errno));
		EXPECT_EQ(0, importer_page_is(self->dev, m.handle, 0, p, DEV_SEED)) TH_LOG("page %zu", p);
		ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle);
	}
	EXPECT_EQ(written + NCHUNK, p2pmap_stat("written_back"));
	EXPECT_EQ(failed, p2pmap_stat("write_back_failed"));

	/* All of it with O_DIRECT. */
	EXPECT_EQ((off_t)BIG, file_size(self->path));
	ASSERT_EQ(0, posix_memalign((void **)&b, 4096, CHUNK));
	for (c = 0; c < NCHUNK; c++) {
		size_t page = sample_page(c);
		int dfd = open(self->path, O_RDONLY | O_DIRECT);

		ASSERT_LE(0, dfd);
		ASSERT_EQ((ssize_t)CHUNK, pread(dfd, b, CHUNK, c * CHUNK));
		close(dfd);
		for (i = 0; i < CHUNK; i++) {
			unsigned char want = i / 4096 == page ?
				pattern_byte(c * CHUNK + i, DEV_SEED) : 0;

			if (b[i] != want && bad++ < 4)
				TH_LOG("file byte %zu: %#x, expected %#x", c * CHUNK + i, b[i], want);
		}
	}
	EXPECT_EQ(0, bad);
	free(b);
	munmap(big, BIG);
	close(fd);
}

TEST_HARNESS_MAIN
