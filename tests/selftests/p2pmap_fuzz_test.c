// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzzing of the importer ioctl ABI (issue 17, part 3). A fixed-seed random
 * sequence of MAP, READ, WRITE, STATUS, UNMAP, UNMAP_AGAIN and unknown
 * commands, with addresses in every kind of vma (a shared mapping of an
 * XFS file, a private one, anonymous memory, a guard page, an unmapped
 * hole, kernel addresses), random and boundary lengths and offsets, unknown
 * flags, bogus and stale handles and bad user pointers; then forks and
 * threads racing UNMAP against READ. Every call must return success or an
 * errno of the ABI's list (tests/include/p2pmap_importer.h), nothing may
 * oops (the run fails on any kernel report), every byte the device reads
 * through a successful mapping must be the file's, and at the end every
 * window is freed.
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define XFS_DIR "/mnt/p2p"
#define PAGES 16
#define SIZE (PAGES * 4096)
#define SEED 0x5eed17u
#define OPS 600
/* Device reads cost ~0.4 s a page under TCG: only so many really run. */
#define MAX_DEVICE_READS 24
#define MAX_HANDLES 64

/*
 * Measured: the random sequence takes about 30 s under TCG with KASAN (most
 * of it the device reads), the races a few seconds; 600 s bounds a hang.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 600

/* xorshift32: the same sequence on every machine for one seed. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

FIXTURE(fuzz)
{
	int dev;
	int fd;
	char path[256];
	unsigned char *shared;	/* MAP_SHARED of the file, PROT_READ */
	unsigned char *priv;	/* MAP_PRIVATE of the file */
	unsigned char *anon;	/* anonymous, read-write */
	unsigned char *guard;	/* PROT_NONE */
	unsigned char *hole;	/* was mapped, now unmapped */
	uint64_t live;
	struct scratch s;
};

FIXTURE_SETUP(fuzz)
{
	ASSERT_EQ(0, ensure_p2pmap_loaded());
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev);
	self->live = p2pmap_stat("windows_live");
	ASSERT_NE(UINT64_MAX, self->live);
	snprintf(self->path, sizeof(self->path), XFS_DIR "/fuzz.%d", getpid());
	scratch_file(&self->s, "%s", self->path);
	ASSERT_EQ(0, make_pattern_file(self->path, SIZE, 17));
	sync();
	self->fd = open(self->path, O_RDONLY);
	ASSERT_LE(0, self->fd);
	self->shared = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, self->fd, 0);
	self->priv = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, self->fd, 0);
	self->anon = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	self->guard = mmap(NULL, SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	self->hole = mmap(NULL, SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->shared);
	ASSERT_NE(MAP_FAILED, self->priv);
	ASSERT_NE(MAP_FAILED, self->anon);
	ASSERT_NE(MAP_FAILED, self->guard);
	ASSERT_NE(MAP_FAILED, self->hole);
	ASSERT_EQ(0, munmap(self->hole, SIZE));
	memset(self->anon, 0xa5, SIZE);
}

FIXTURE_TEARDOWN(fuzz)
{
	close(self->dev);	/* drops every handle left */
	if (self->fd >= 0)
		close(self->fd);
	if (scratch_release(&self->s))
		TH_LOG("could not remove %s", self->path);
}

/* Whether @e is an errno the ABI documents for @cmd. */
static int documented(unsigned long cmd, int e)
{
	switch (cmd) {
	case P2PMAP_IOC_MAP:
		return e == EINVAL || e == EFAULT || e == EPERM || e == E2BIG || e == ENOMEM ||
		       e == EBUSY || e == EOPNOTSUPP || e == ENXIO || e == ENOSPC || e == EXDEV ||
		       e == EIO || e == EACCES || e == ENODEV || e == ETXTBSY;
	case P2PMAP_IOC_READ:
	case P2PMAP_IOC_WRITE:
		return e == ENOENT || e == ESTALE || e == EINVAL || e == EFAULT || e == EIO ||
		       e == EACCES;
	case P2PMAP_IOC_STATUS:
	case P2PMAP_IOC_UNMAP:
		return e == ENOENT || e == EFAULT;
	case P2PMAP_IOC_UNMAP_AGAIN:
		return e == ENOENT || e == EBUSY || e == EINVAL || e == EFAULT;
	}
	return e == ENOTTY;
}

/* An address to map, of a random kind; *@file is set if it is the file's. */
static uint64_t pick_addr(FIXTURE_DATA(fuzz) *self, uint32_t *s, int *file)
{
	uint64_t page = (rnd(s) % (PAGES + 2)) * 4096;

	*file = 0;
	switch (rnd(s) % 10) {
	case 0: case 1: case 2: case 3:
		*file = 1;
		return (uint64_t)(uintptr_t)self->shared + page;
	case 4:
		return (uint64_t)(uintptr_t)self->priv + page;
	case 5:
		return (uint64_t)(uintptr_t)self->anon + page;
	case 6:
		return (uint64_t)(uintptr_t)self->guard + page;
	case 7:
		return (uint64_t)(uintptr_t)self->hole + page;
	case 8:
		return 0xffffffff81000000ull + page;	/* kernel text */
	}
	return (uint64_t)(uintptr_t)self->shared + (rnd(s) % SIZE); /* unaligned */
}

static uint64_t pick_len(uint32_t *s)
{
	switch (rnd(s) % 10) {
	case 0: return 0;
	case 1: return 1 + rnd(s) % 4095;
	case 2: return (uint64_t)(1 + rnd(s) % (2 * PAGES)) * 4096;
	case 3: return 129ull << 20;			/* over the 128 MiB limit */
	case 4: return ~0ull & ~4095ull;		/* wraps */
	}
	return (uint64_t)(1 + rnd(s) % PAGES) * 4096;
}

static uint32_t pick_flags(uint32_t *s)
{
	switch (rnd(s) % 6) {
	case 0: return P2PMAP_MAP_WRITE;
	case 1: return rnd(s);				/* unknown bits */
	case 2: case 3: return P2PMAP_MAP_NO_FALLBACK;
	}
	return 0;
}

struct handle {
	uint32_t h;
	uint64_t addr, len;
	int file;	/* maps the pattern file at addr */
};

TEST_F(fuzz, random_calls_return_success_or_a_documented_errno)
{
	struct handle hs[MAX_HANDLES];
	int nh = 0, reads = 0, i, served = 0, errors = 0, bad = 0;
	unsigned char buf[4096];
	uint32_t s = SEED;

	TH_LOG("seed %#x, %d operations", SEED, OPS);
	for (i = 0; i < OPS; i++) {
		unsigned long cmd = 0;
		int ret, op = rnd(&s) % 8;
		struct handle *h = nh ? &hs[rnd(&s) % nh] : NULL;
		uint32_t handle = h && rnd(&s) % 4 ? h->h : rnd(&s) % 8 ? rnd(&s) % 200 : ~0u;

		if (op <= 2) {
			int file;
			struct p2pmap_map m = { 0 };

			m.addr = pick_addr(self, &s, &file);
			m.len = pick_len(&s);
			m.flags = pick_flags(&s);
			cmd = P2PMAP_IOC_MAP;
			ret = ioctl(self->dev, cmd, rnd(&s) % 20 ? (void *)&m : (void *)8);
			if (!ret) {
				served++;
				if (nh < MAX_HANDLES) {
					hs[nh++] = (struct handle){ m.handle, m.addr, m.len, file };
				} else {
					ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle);
				}
			}
		} else if (op <= 4) {
			struct p2pmap_rw rw = { .handle = handle };
			int write = op == 4;

			rw.offset = rnd(&s) % 3 ? rnd(&s) % (h ? h->len + 8192 : SIZE) : ~0ull - 10;
			rw.len = rnd(&s) % 2 ? 1 + rnd(&s) % 64 : rnd(&s) % 3 ? 4096 : ~0ull;
			rw.buf = rnd(&s) % 8 ? (uint64_t)(uintptr_t)buf : rnd(&s) % 2 ? 0 : 0xffffffff81000000ull;
			/* Only so many reach the device (each DMA costs ~0.4 s). */
			if (h && rw.handle == h->h && rw.offset + rw.len <= h->len &&
			    rw.buf == (uint64_t)(uintptr_t)buf && reads++ >= MAX_DEVICE_READS)
				continue;
			cmd = write ? P2PMAP_IOC_WRITE : P2PMAP_IOC_READ;
			ret = ioctl(self->dev, cmd, &rw);
			/* A read through a mapping of the file sees the file. */
			if (!ret && !write && h && rw.handle == h->h && h->file && rw.len <= sizeof(buf)) {
				uint64_t off = h->addr - (uint64_t)(uintptr_t)self->shared + rw.offset;

				if (off + rw.len <= SIZE && check_pattern(buf, off, rw.len, 17)) {
					bad++;
					TH_LOG("op %d: device read of %llu bytes at %llu differs from the file",
					       i, (unsigned long long)rw.len, (unsigned long long)off);
				}
			}
		} else if (op == 5) {
			struct p2pmap_status st = { .handle = handle };

			cmd = P2PMAP_IOC_STATUS;
			ret = ioctl(self->dev, cmd, rnd(&s) % 10 ? (void *)&st : (void *)16);
		} else if (op == 6) {
			cmd = rnd(&s) % 3 ? P2PMAP_IOC_UNMAP : P2PMAP_IOC_UNMAP_AGAIN;
			ret = ioctl(self->dev, cmd, &handle);
			if (!ret && cmd == P2PMAP_IOC_UNMAP) {
				int j;

				for (j = 0; j < nh; j++)
					if (hs[j].h == handle)
						hs[j] = hs[--nh];
			}
		} else {
			cmd = _IOWR(P2PMAP_IOC_MAGIC, 7 + rnd(&s) % 200, struct p2pmap_map);
			ret = ioctl(self->dev, cmd, buf);
		}
		if (ret) {
			errors++;
			EXPECT_TRUE(documented(cmd, errno))
				TH_LOG("op %d: ioctl %#lx returned %s, not in the ABI's list",
				       i, cmd, strerror(errno));
		}
	}
	TH_LOG("%d maps served, %d errors, %d device reads", served, errors,
	       reads < MAX_DEVICE_READS ? reads : MAX_DEVICE_READS);
	EXPECT_EQ(0, bad);
	EXPECT_LT(0, served);
	EXPECT_LT(0, errors);
	for (i = 0; i < nh; i++)
		EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hs[i].h));
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120));
}

/*
 * A child maps through the inherited importer fd and exits without UNMAP:
 * the handle belongs to the open file (shared with the parent), its
 * mapping is revoked by the child's exit (the mm goes), and the parent
 * sees ESTALE, not the child's memory, then unmaps it.
 */
TEST_F(fuzz, fork_child_maps_and_exits)
{
	struct p2pmap_status st = { 0 };
	int pipefd[2], status;
	uint32_t h = 0;
	unsigned char b;
	pid_t pid;

	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct p2pmap_map m = map_req(self->shared, SIZE, 0);

		if (ioctl(self->dev, P2PMAP_IOC_MAP, &m))
			_exit(1);
		if (write(pipefd[1], &m.handle, sizeof(m.handle)) != sizeof(m.handle))
			_exit(2);
		_exit(0);
	}
	scratch_pid(&self->s, pid);
	ASSERT_EQ(sizeof(h), read(pipefd[0], &h, sizeof(h)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	scratch_reaped(&self->s, pid);
	ASSERT_EQ(0, WEXITSTATUS(status));
	st.handle = h;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(0, st.mapped);
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(-1, importer_read(self->dev, h, 0, 1, &b));
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
	close(pipefd[0]);
	close(pipefd[1]);
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120));
}

struct racer {
	int dev;
	uint32_t handle;
	int reads_ok, reads_gone, reads_bad;
};

static void *read_loop(void *arg)
{
	struct racer *r = arg;
	unsigned char b;
	int i;

	for (i = 0; i < 8; i++) {
		if (importer_read(r->dev, r->handle, 4096 + i, 1, &b)) {
			if (errno == ENOENT || errno == ESTALE)
				r->reads_gone++;
			else
				r->reads_bad++;
		} else if (b == pattern_byte(4096 + i, 17)) {
			r->reads_ok++;
		} else {
			r->reads_bad++;
		}
	}
	return NULL;
}

/*
 * One thread reads through a handle while another unmaps it: each read
 * either completes with the file's byte or fails with ENOENT, and the
 * handle's mapping is gone afterwards (UNMAP waits for the DMA in flight:
 * the device access holds the range's lock, the teardown takes it).
 */
TEST_F(fuzz, unmap_races_read)
{
	struct p2pmap_map m = map_req(self->shared, SIZE, 0);
	struct racer r = { .dev = self->dev };
	pthread_t t;

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	r.handle = m.handle;
	ASSERT_EQ(0, pthread_create(&t, NULL, read_loop, &r));
	usleep(300 * 1000);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	ASSERT_EQ(0, pthread_join(t, NULL));
	TH_LOG("reads: %d ok, %d after the unmap", r.reads_ok, r.reads_gone);
	EXPECT_EQ(0, r.reads_bad);
	EXPECT_EQ(8, r.reads_ok + r.reads_gone);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120));
}

/*
 * The errnos device_map() may return to an importer: p2pmap's refusals
 * (Documentation/admin-guide.rst, src/logic/reason.rs) and EAGAIN.
 */
static int device_map_errno(int e)
{
	switch (e) {
	case EINVAL: case EFAULT: case EOPNOTSUPP: case ENOMEM: case EBUSY:
	case EACCES: case ENODEV: case ENXIO: case EIO: case ENOSPC: case E2BIG:
	case EXDEV: case ETXTBSY:
		return 1;
	}
	return 0;
}

/* Runs FUZZ_DEVICE_MAP on [@addr, @addr + SIZE); 0 if every errno is known. */
static int fuzz_device_map(struct __test_metadata *_metadata, int dev, void *addr, uint64_t seed,
			   uint32_t count, struct p2pmap_fuzz *f, const char *what)
{
	int e, bad = 0;

	memset(f, 0, sizeof(*f));
	f->addr = (uintptr_t)addr;
	f->len = SIZE;
	f->seed = seed;
	f->count = count;
	if (ioctl(dev, P2PMAP_IOC_FUZZ_DEVICE_MAP, f)) {
		TH_LOG("%s: FUZZ_DEVICE_MAP: %s", what, strerror(errno));
		return -1;
	}
	TH_LOG("%s: seed %#llx, %u calls: %u served, %u retried, %u refused",
	       what, (unsigned long long)seed, count, f->served, f->retried, f->refused);
	for (e = 1; e < 128; e++) {
		if (!(f->errno_mask[e / 64] & (1ull << (e % 64))))
			continue;
		TH_LOG("%s:   refused with %s", what, strerror(e));
		if (!device_map_errno(e)) {
			TH_LOG("%s:   errno %d is not one device_map() may return", what, e);
			bad++;
		}
	}
	if (f->other_errno) {
		TH_LOG("%s:   a call returned %d", what, f->other_errno);
		bad++;
	}
	if (f->served + f->retried + f->refused != count) {
		TH_LOG("%s:   %u calls counted", what, f->served + f->retried + f->refused);
		bad++;
	}
	return bad ? -1 : 0;
}

/*
 * device_map() called directly, in the kernel, with random arguments
 * (FUZZ_DEVICE_MAP: ranges around and outside the vma, empty, reversed,
 * unaligned, every flag and random bits, with and without a dma_buf
 * pointer) on a shared mapping of an XFS file, a private writable one and
 * anonymous memory: every call returns 0 (given back at once), EAGAIN or
 * an errno p2pmap documents; p2pmap counts every call exactly once
 * (map_calls = refusals + maps + retries), matches every device_unmap
 * with a claim, and frees every window at the end.
 */
TEST_F(fuzz, device_map_with_random_arguments)
{
	uint64_t calls0 = p2pmap_stat("map_calls"), maps0 = p2pmap_stat("maps");
	uint64_t retries0 = p2pmap_stat("lock_drop_retries");
	uint64_t unmaps0 = p2pmap_stat("unmap_calls");
	uint64_t unmatched0 = p2pmap_stat("unmaps_unmatched");
	uint64_t refused0 = refused_total();
	struct p2pmap_fuzz shared, priv, anon;

	ASSERT_EQ(0, fuzz_device_map(_metadata, self->dev, self->shared, SEED, 3000, &shared,
				     "shared file mapping"));
	ASSERT_EQ(0, fuzz_device_map(_metadata, self->dev, self->priv, SEED + 1, 1000, &priv,
				     "private writable file mapping"));
	ASSERT_EQ(0, fuzz_device_map(_metadata, self->dev, self->anon, SEED + 2, 200, &anon,
				     "anonymous memory"));
	/* The drawn arguments reach every outcome on the file. */
	EXPECT_LT(0, shared.served);
	EXPECT_LT(0, shared.retried);
	EXPECT_LT(0, shared.refused);
	/* Anonymous memory has no device_map: never reaches p2pmap. */
	EXPECT_EQ(200, anon.refused);
	EXPECT_EQ(1ull << EOPNOTSUPP % 64, anon.errno_mask[EOPNOTSUPP / 64]);
	/* Each call on a file vma counted once, each success given back once. */
	EXPECT_EQ(4000, p2pmap_stat("map_calls") - calls0);
	EXPECT_EQ(p2pmap_stat("map_calls") - calls0,
		  (refused_total() - refused0) + (p2pmap_stat("maps") - maps0) +
		  (p2pmap_stat("lock_drop_retries") - retries0));
	EXPECT_EQ(shared.served + priv.served, p2pmap_stat("maps") - maps0);
	EXPECT_EQ(shared.retried + priv.retried, p2pmap_stat("lock_drop_retries") - retries0);
	EXPECT_EQ(shared.served + priv.served, p2pmap_stat("unmap_calls") - unmaps0);
	EXPECT_EQ(unmatched0, p2pmap_stat("unmaps_unmatched"));
	/* The windows staged for the retried calls expire unclaimed (5 s). */
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120));
}

TEST_HARNESS_MAIN
