// SPDX-License-Identifier: GPL-2.0
/*
 * The device_map path end to end through the test importer (edu DMA):
 * vm_ops->device_map with and without the p2pmap provider, the importer's
 * page-cache fallback, argument errors, and revocation by munmap,
 * truncate and process exit.
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p, an ext4 at /mnt/ext4,
 * p2pmap.ko at $P2PMAP_ROOT (the guest runner sets all of that up).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/aio_abi.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_pci_util.h"
#include "p2pmap_test_util.h"

#define XFS_DIR "/mnt/p2p"

/*
 * Per-test timeouts. The harness kills a test that outlives its timeout
 * (default 30 s), and a killed test runs no teardown, so a timeout must be
 * a bound for hangs, never a budget a slower machine could miss. The
 * costs, measured on the 2-core development machine (TCG, KASAN kernel;
 * tests/guest/run-tests prints every test's time): most tests take under
 * 2 s; the longest, stress_map_truncate_rewrite, 15 s, and the tests that
 * read a whole 17-page file through edu DMA (0.4 s a page) about 7 s.
 * 180 s covers a machine 3x slower with a margin of 4.
 * provider_unload_while_calling has its own bound below.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 180

/* Loads p2pmap if needed and opens the importer; -1 on failure. */
static int open_importer(void)
{
	if (ensure_p2pmap_loaded())
		return -1;
	return open(P2PMAP_IMPORTER_DEV, O_RDWR);
}
#define EXT4_DIR "/mnt/ext4"

static int resident_pages(void *addr, size_t len)
{
	unsigned char vec[256];
	size_t i, n = round_up_page(len) / 4096;
	int count = 0;

	if (n > sizeof(vec) || mincore(addr, len, vec))
		return -1;
	for (i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}


/* Writes fs.leases-enable; 0 on success. */
static int set_leases_enable(int on)
{
	return write_knob("/proc/sys/fs/leases-enable", on);
}

/*
 * A fresh read-only shared mapping of @fd in place of @map: the pages the
 * importer's page-cache fallback (hmm_range_fault()) mapped into @map are
 * no longer CPU-mapped, so p2pmap can drop them and stage the range.
 */
static void *remap_fresh(void *map, size_t len, int fd)
{
	if (munmap(map, len))
		return MAP_FAILED;
	return mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
}

/* Ends fault injection: no later request takes the slow path by force. */
static int reset_inject_retry(void)
{
	return write_knob("/sys/kernel/debug/p2pmap/inject_retry", 0);
}

FIXTURE(importer)
{
	int dev;
	char path[256];
	size_t size;
	int fd;
	void *map;
	struct scratch s;	/* what a test creates beyond the fixture's file */
};

FIXTURE_SETUP(importer)
{
	ASSERT_EQ(0, ensure_p2pmap_loaded());
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev) TH_LOG("open %s: %s", P2PMAP_IMPORTER_DEV, strerror(errno));
	self->size = 16 * 4096 + 123;	/* unaligned size: tail of the last page */
	snprintf(self->path, sizeof(self->path), XFS_DIR "/importer.%d", getpid());
	ASSERT_EQ(0, make_pattern_file(self->path, self->size, 7));
	self->fd = open(self->path, O_RDONLY);
	ASSERT_LE(0, self->fd);
	self->map = mmap(NULL, round_up_page(self->size), PROT_READ, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(importer)
{
	/*
	 * Tests of this fixture unload p2pmap; a failed ASSERT ends the test
	 * here (the harness runs the teardown, then aborts). Leave the module
	 * loaded for whatever runs next.
	 */
	if (ensure_p2pmap_loaded())
		TH_LOG("could not reload p2pmap.ko");
	/* and leases enabled (leases_disabled_is_its_own_refusal) */
	if (set_leases_enable(1))
		TH_LOG("could not enable leases again");
	/* and no injected retry left (provider_drops_mmap_lock_and_caller_retries) */
	if (reset_inject_retry())
		TH_LOG("could not reset inject_retry");
	if (scratch_release(&self->s))
		TH_LOG("could not release what the test created");
	munmap(self->map, round_up_page(self->size));
	close(self->fd);
	close(self->dev);
	unlink(self->path);
}

/*
 * The P2P path: device_map stages the file's blocks in the NVMe CMB (slow
 * path, -EAGAIN, retry) and the edu device reads them from there.
 */
TEST_F(importer, p2p_map_reads_exact_bytes_from_cmb)
{
	struct p2pmap_map m = map_req(self->map, round_up_page(self->size), P2PMAP_MAP_NO_FALLBACK);
	uint64_t calls = p2pmap_stat("map_calls");
	uint64_t retries = p2pmap_stat("lock_drop_retries");
	uint64_t staged = p2pmap_stat("windows_staged");
	uint64_t live = p2pmap_stat("windows_live");
	char *buf = malloc(self->size);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, m.p2p_errno);
	EXPECT_EQ(calls + 2, p2pmap_stat("map_calls"));	/* slow path + retry */
	EXPECT_EQ(retries + 1, p2pmap_stat("lock_drop_retries"));
	EXPECT_EQ(staged + 1, p2pmap_stat("windows_staged"));
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 0, self->size, buf));
	EXPECT_EQ(0, check_pattern(buf, 0, self->size, 7));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(live, p2pmap_stat("windows_live"));	/* freed with its last mapping */
	free(buf);
}

/* Two handles on one range share one window. */
TEST_F(importer, two_handles_share_a_window)
{
	struct p2pmap_map a = map_req(self->map, round_up_page(self->size), P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map b = a;
	uint64_t staged = p2pmap_stat("windows_staged");
	uint64_t live = p2pmap_stat("windows_live");
	char x[100], y[100];

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &a));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &b));
	EXPECT_EQ(P2PMAP_PATH_P2P, b.path);
	EXPECT_EQ(staged + 1, p2pmap_stat("windows_staged"));
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &a.handle));
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, importer_read(self->dev, b.handle, 5000, sizeof(x), x));
	EXPECT_EQ(0, check_pattern(x, 5000, sizeof(x), 7));
	(void)y;
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &b.handle));
	EXPECT_EQ(live, p2pmap_stat("windows_live"));
}

/* Without a provider filemap_device_map() says -EOPNOTSUPP and the fallback serves exact bytes. */
TEST_F(importer, fallback_without_provider)
{
	struct p2pmap_map m = map_req(self->map, round_up_page(self->size), 0);
	struct p2pmap_status st = { 0 };
	char *buf = malloc(self->size);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, system("rmmod p2pmap"));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	EXPECT_EQ(-EOPNOTSUPP, m.p2p_errno);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 0, self->size, buf));
	EXPECT_EQ(0, check_pattern(buf, 0, self->size, 7));
	st.handle = m.handle;
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.mapped);
	EXPECT_EQ(0, st.revoked);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, ensure_p2pmap_loaded());
	free(buf);
}

/* With the provider refusing (CPU-dirty page), the fallback serves, from any offset. */
TEST_F(importer, fallback_after_refusal_reads_exact_bytes)
{
	struct p2pmap_map m = map_req(self->map, round_up_page(self->size), 0);
	char buf[6000];
	int fd = open(self->path, O_WRONLY);

	ASSERT_LE(0, fd);
	ASSERT_EQ(1, pwrite(fd, "\x07", 1, 0));	/* same byte, but a dirty page */
	close(fd);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	EXPECT_EQ(-EBUSY, m.p2p_errno);
	/* crosses a page boundary, starts mid-page */
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 4000, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 4000, sizeof(buf), 7));
	/* the fallback went through the page cache: every page is resident */
	EXPECT_EQ((int)(round_up_page(self->size) / 4096),
		  resident_pages(self->map, round_up_page(self->size)));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(importer, bad_ranges)
{
	struct p2pmap_map m;
	uint64_t calls = p2pmap_stat("map_calls");

	m = map_req((char *)self->map + 1, 4096, 0);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EINVAL, errno);
	m = map_req(self->map, 100, 0);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EINVAL, errno);
	m = map_req(self->map, 0, 0);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EINVAL, errno);
	m = map_req(self->map, (uint64_t)-4096, 0);	/* addr + len overflows */
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EINVAL, errno);
	m = map_req(self->map, round_up_page(self->size) + 4096, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));	/* past the vma */
	EXPECT_EQ(EFAULT, errno);
	m = map_req(self->map, 4096, 1U << 5);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));	/* unknown flag */
	EXPECT_EQ(EINVAL, errno);
	/* none of these reached the provider */
	EXPECT_EQ(calls, p2pmap_stat("map_calls"));
}

TEST_F(importer, anonymous_mapping_has_no_device_map)
{
	size_t len = 4 * 4096;
	char *anon = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct p2pmap_map m = map_req(anon, len, P2PMAP_MAP_NO_FALLBACK);
	char buf[4096];

	ASSERT_NE(MAP_FAILED, anon);
	memset(anon, 0x5a, len);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EOPNOTSUPP, errno);
	/* the fallback serves anonymous memory */
	m = map_req(anon, len, 0);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(-EOPNOTSUPP, m.p2p_errno);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 4096, sizeof(buf), buf));
	EXPECT_EQ(0x5a, buf[0]);
	EXPECT_EQ(0x5a, buf[4095]);
	munmap(anon, len);
}

TEST_F(importer, private_writable_mapping_is_refused)
{
	size_t len = round_up_page(self->size);
	int fd = open(self->path, O_RDWR);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	struct p2pmap_map m = map_req(p, len, P2PMAP_MAP_NO_FALLBACK);
	uint64_t refused = p2pmap_stat("refused_private_writable");

	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_private_writable"));
	munmap(p, len);
	close(fd);
}

/* A write mapping is served peer to peer (tests of what it does: p2pmap_write_test). */
TEST_F(importer, write_mapping_is_served_peer_to_peer)
{
	size_t len = round_up_page(self->size);
	int fd = open(self->path, O_RDWR);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct p2pmap_map m = map_req(p, len, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);

	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m)) TH_LOG("write MAP: %s", strerror(errno));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	munmap(p, len);
	close(fd);
}

/*
 * DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP is decided by the PCIe fabric: the
 * refusal counted is the one the registers of the NVMe function, the
 * switch ports and the edu device (read here from sysfs) call for. An
 * AtomicOp writes, so the flag needs WRITE (the importer helper refuses it
 * alone); with WRITE, the fabric's verdict refuses what a write mapping
 * alone would be served.
 */
TEST_F(importer, atomic_mapping_is_decided_by_the_pcie_fabric)
{
	size_t len = round_up_page(self->size);
	int fd = open(self->path, O_RDWR);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct p2pmap_map m = map_req(p, len, P2PMAP_MAP_ATOMIC | P2PMAP_MAP_NO_FALLBACK);
	char nvme[64], edu[64], counter[80];
	const char *expected;
	uint64_t before;

	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, nvme_pci_name(nvme, sizeof(nvme)));
	ASSERT_EQ(0, edu_pci_name(edu, sizeof(edu)));
	expected = expected_atomic_refusal(edu, nvme);
	ASSERT_NE(NULL, expected) TH_LOG("this fabric supports AtomicOps: nothing refuses them");
	ASSERT_STRNE("?", expected) TH_LOG("cannot read the PCI registers from sysfs");
	TH_LOG("AtomicOps %s -> %s: expected refusal %s", edu, nvme, expected);
	snprintf(counter, sizeof(counter), "refused_%s", expected);

	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EINVAL, errno);

	before = p2pmap_stat(counter);
	ASSERT_NE(UINT64_MAX, before);
	m = map_req(p, len, P2PMAP_MAP_ATOMIC | P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(before + 1, p2pmap_stat(counter));
	munmap(p, len);
	close(fd);
}

/*
 * Tests that need no file of the importer fixture's: each registers what it
 * creates (files, swap, children, an unmounted filesystem) in @s, and the
 * teardown releases it however the test ended.
 */
FIXTURE(scratch)
{
	struct scratch s;
};

FIXTURE_SETUP(scratch)
{
	ASSERT_EQ(0, ensure_p2pmap_loaded());
}

FIXTURE_TEARDOWN(scratch)
{
	if (scratch_release(&self->s))
		TH_LOG("could not release what the test created");
	if (!access("/sys/module/p2pmap", F_OK) && reset_inject_retry())
		TH_LOG("could not reset inject_retry");
}

/* ext4 offers the callbacks too (patch 4): the provider is reached and refuses, no block ops. */
TEST_F(scratch, ext4_refused_no_block_ops_truncate_still_revokes)
{
	struct p2pmap_status st = { 0 };
	char path[256];
	int dev, fd;
	void *p;
	struct p2pmap_map m;
	uint64_t calls, refused;

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), EXT4_DIR "/importer.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, 8192, 3));
	fd = open(path, O_RDONLY);
	p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	calls = p2pmap_stat("map_calls");
	refused = p2pmap_stat("refused_no_block_ops");
	m = map_req(p, 8192, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(calls + 1, p2pmap_stat("map_calls"));
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_no_block_ops"));

	/*
	 * ext4 breaks no layout lease: truncate's own unmap_mapping_range()
	 * reaches the importer's notifier (here on its page-cache mapping).
	 */
	m = map_req(p, 8192, 0);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	ASSERT_EQ(0, truncate(path, 4096));
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle));
	munmap(p, 8192);
	close(fd);
	unlink(path);
	close(dev);
}

/* Clean, unmapped page-cache pages of the range are dropped, not used and not refused for. */
TEST_F(importer, clean_page_cache_is_dropped)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	char *buf = malloc(self->size);

	ASSERT_NE(NULL, buf);
	ASSERT_EQ((ssize_t)self->size, pread(self->fd, buf, self->size, 0));	/* fills the cache */
	EXPECT_EQ((int)(len / 4096), resident_pages(self->map, len));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, resident_pages(self->map, len));
	/* reading through the device does not bring the pages back */
	memset(buf, 0, self->size);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 0, self->size, buf));
	EXPECT_EQ(0, check_pattern(buf, 0, self->size, 7));
	EXPECT_EQ(0, resident_pages(self->map, len));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	free(buf);
}

/* Dirty pages stay: the device would miss what the CPU wrote. */
TEST_F(importer, dirty_page_cache_refuses)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	uint64_t refused = p2pmap_stat("refused_page_cache_resident");
	int fd = open(self->path, O_WRONLY);

	ASSERT_LE(0, fd);
	ASSERT_EQ(3, pwrite(fd, "abc", 3, 4096 + 10));	/* dirty, not synced */
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_page_cache_resident"));
	/* once written back and unmapped, the veto lifts */
	ASSERT_EQ(0, fsync(fd));
	close(fd);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
}

/* A page the CPU has mapped stays too. */
TEST_F(importer, cpu_mapped_page_refuses)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	volatile char c = ((volatile char *)self->map)[8192];

	(void)c;
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
}

/*
 * Without a layout lease p2pmap would not learn of truncate or write():
 * with leases disabled by the administrator it refuses, and says so with a
 * reason of its own (not "lease being broken").
 */
TEST_F(importer, leases_disabled_is_its_own_refusal)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	uint64_t disabled = p2pmap_stat("refused_leases_disabled");
	uint64_t broken = p2pmap_stat("refused_lease_broken");
	char buf[16];

	ASSERT_EQ(0, set_leases_enable(0));
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(disabled + 1, p2pmap_stat("refused_leases_disabled"));
	EXPECT_EQ(broken, p2pmap_stat("refused_lease_broken"));
	EXPECT_EQ(0, p2pmap_stat("windows_live"));
	/* the fallback serves */
	m = map_req(self->map, len, 0);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	EXPECT_EQ(-EOPNOTSUPP, m.p2p_errno);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 100, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 100, sizeof(buf), 7));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	ASSERT_EQ(0, set_leases_enable(1));
	self->map = remap_fresh(self->map, len, self->fd);
	ASSERT_NE(MAP_FAILED, self->map);
	m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
}

static int set_inject_retry(unsigned int n)
{
	return write_knob("/sys/kernel/debug/p2pmap/inject_retry", n);
}

/*
 * The -EAGAIN contract: the provider releases mmap_lock, takes i_rwsem (as
 * map_blocks will) and asks for a retry; the importer looks the vma up
 * again. Injected with debugfs inject_retry; lockdep watches the order.
 */
TEST_F(importer, provider_drops_mmap_lock_and_caller_retries)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	uint64_t retries = p2pmap_stat("lock_drop_retries");
	uint64_t calls = p2pmap_stat("map_calls");

	ASSERT_EQ(0, set_inject_retry(3));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));	/* the 4th call maps */
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(retries + 3, p2pmap_stat("lock_drop_retries"));
	EXPECT_EQ(calls + 4, p2pmap_stat("map_calls"));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	/* more retries than the importer allows: it gives up, nothing leaks */
	ASSERT_EQ(0, set_inject_retry(1000));
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, set_inject_retry(0));
	/* mmap_lock was not leaked: the mm can still be changed */
	EXPECT_EQ(0, munmap(self->map, len));
	self->map = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	/* and maps again */
	m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
}


static int wait_latency(const char *name, uint64_t want, int bound_s)
{
	int i;

	for (i = 0; i < bound_s * 100; i++) {
		if (p2pmap_latency(name) == want)
			return 0;
		usleep(10000);
	}
	return -1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Two device mappings of the importer fixture's file: pages 0-7 (lo) and
 * pages 8-16 (hi), each its own window.
 */
static int map_lo_hi(int dev, void *map, size_t len, struct p2pmap_map *lo,
		     struct p2pmap_map *hi)
{
	const size_t half = 8 * 4096;

	*lo = map_req(map, half, P2PMAP_MAP_NO_FALLBACK);
	*hi = map_req((char *)map + half, len - half, P2PMAP_MAP_NO_FALLBACK);
	if (ioctl(dev, P2PMAP_IOC_MAP, lo) || ioctl(dev, P2PMAP_IOC_MAP, hi))
		return -1;
	return lo->path == P2PMAP_PATH_P2P && hi->path == P2PMAP_PATH_P2P ? 0 : -1;
}

/* STATUS of @handle: 1 if revoked by an unmap_mapping_range() (CLEAR). */
static int revoked_by_clear(int dev, uint32_t handle)
{
	struct p2pmap_status st = { .handle = handle };

	if (ioctl(dev, P2PMAP_IOC_STATUS, &st))
		return -1;
	return st.revoked && st.revoked_by == P2PMAP_REVOKED_BY_CLEAR;
}

/* STATUS of @handle: 1 if mapped and never revoked. */
static int still_mapped(int dev, uint32_t handle)
{
	struct p2pmap_status st = { .handle = handle };

	if (ioctl(dev, P2PMAP_IOC_STATUS, &st))
		return -1;
	return st.mapped && !st.revoked;
}

/*
 * The counters that tell a break XFS announced with its range (revoked in
 * the breaker's own task, p2pmap's lease passed by) from a lease break
 * (lm_break, the worker revokes the whole file, the breaker waits).
 */
struct break_counts {
	uint64_t lease_breaks, released, sync_breaks, layout_revocations;
};

static struct break_counts break_counts(void)
{
	return (struct break_counts){
		.lease_breaks = p2pmap_stat("lease_breaks"),
		.released = p2pmap_latency("release_us_count"),
		.sync_breaks = p2pmap_stat("sync_breaks"),
		.layout_revocations = p2pmap_stat("revocations_layout_change"),
	};
}

/*
 * write() revokes the device mappings of the range it writes, in the
 * writer's own task, before it writes (patch 8: XFS announces the range
 * from xfs_break_leased_layouts()): no lease break, no worker, no wait for
 * a lease release. The mapping of the rest of the file stays and still
 * reads the file's bytes; a fresh MAP of the written range sees the new
 * bytes. (Through the lease, one written page revoked every window of the
 * file.)
 */
TEST_F(importer, write_revokes_only_its_range_in_the_writers_task)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map lo, hi, m;
	struct break_counts before = break_counts(), after;
	char buf[4096], data[4096];
	const off_t at = 9 * 4096;	/* in hi */
	unsigned char b;
	double t;
	int fd;

	ASSERT_NE(UINT64_MAX, before.released);
	ASSERT_NE(UINT64_MAX, before.sync_breaks);
	ASSERT_EQ(0, map_lo_hi(self->dev, self->map, len, &lo, &hi));
	memset(data, 0x3c, sizeof(data));
	fd = open(self->path, O_WRONLY);
	ASSERT_LE(0, fd);
	t = now_s();
	ASSERT_EQ((ssize_t)sizeof(data), pwrite(fd, data, sizeof(data), at));
	t = now_s() - t;
	TH_LOG("write() with live device mappings took %.3f s", t);
	after = break_counts();
	/* revoked before write() returned, by its own task */
	EXPECT_EQ(1, revoked_by_clear(self->dev, hi.handle));
	EXPECT_EQ(before.sync_breaks + 1, after.sync_breaks);
	EXPECT_EQ(before.layout_revocations + 1, after.layout_revocations);
	EXPECT_EQ(before.lease_breaks, after.lease_breaks);
	EXPECT_EQ(before.released, after.released);
	/* READ offsets are relative to the mapping: hi starts at page 8 */
	EXPECT_EQ(-1, importer_read(self->dev, hi.handle, at - 8 * 4096, 16, buf));
	EXPECT_EQ(ESTALE, errno);
	/* the other window is untouched */
	EXPECT_EQ(1, still_mapped(self->dev, lo.handle));
	EXPECT_EQ(0, importer_read(self->dev, lo.handle, 4096, 1, &b));
	EXPECT_EQ(pattern_byte(4096, 7), b);
	ASSERT_EQ(0, fsync(fd));
	close(fd);
	m = map_req((char *)self->map + 8 * 4096, len - 8 * 4096, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, at - 8 * 4096, sizeof(buf), buf));
	EXPECT_EQ(0, memcmp(buf, data, sizeof(data)));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &lo.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hi.handle));
}

/*
 * An unaligned write revokes every window it touches: two bytes across the
 * boundary of lo and hi revoke both. (unmap_mapping_range() counts whole
 * pages from the page of its start: the two bytes at 8 * 4096 - 1 unmapped
 * as such reach page 7 only, and hi's importer went on reading page 8's
 * old byte.)
 */
TEST_F(importer, unaligned_write_revokes_every_window_it_touches)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map lo, hi;
	uint64_t sync_breaks = p2pmap_stat("sync_breaks");
	int fd;

	ASSERT_NE(UINT64_MAX, sync_breaks);
	ASSERT_EQ(0, map_lo_hi(self->dev, self->map, len, &lo, &hi));
	fd = open(self->path, O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(2, pwrite(fd, "ab", 2, 8 * 4096 - 1));
	close(fd);
	EXPECT_EQ(sync_breaks + 1, p2pmap_stat("sync_breaks"));
	EXPECT_EQ(1, revoked_by_clear(self->dev, lo.handle));
	EXPECT_EQ(1, revoked_by_clear(self->dev, hi.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &lo.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hi.handle));
}

/*
 * truncate revokes what lies past the new size, in the truncating task;
 * the window below it stays.
 */
TEST_F(importer, truncate_revokes_only_past_the_new_size)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map lo, hi;
	struct break_counts before = break_counts(), after;
	unsigned char b;

	ASSERT_NE(UINT64_MAX, before.sync_breaks);
	ASSERT_EQ(0, map_lo_hi(self->dev, self->map, len, &lo, &hi));
	ASSERT_EQ(0, truncate(self->path, 8 * 4096 + 100));
	after = break_counts();
	EXPECT_EQ(1, revoked_by_clear(self->dev, hi.handle));
	EXPECT_EQ(1, still_mapped(self->dev, lo.handle));
	EXPECT_EQ(before.sync_breaks + 1, after.sync_breaks);
	EXPECT_EQ(before.lease_breaks, after.lease_breaks);
	EXPECT_EQ(before.released, after.released);
	EXPECT_EQ(0, importer_read(self->dev, lo.handle, 7 * 4096 + 9, 1, &b));
	EXPECT_EQ(pattern_byte(7 * 4096 + 9, 7), b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &lo.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hi.handle));
}

/* A hole punched in one window revokes that window only. */
TEST_F(importer, hole_punch_revokes_only_its_range)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map lo, hi;
	struct break_counts before = break_counts(), after;
	unsigned char b;
	int fd;

	ASSERT_NE(UINT64_MAX, before.sync_breaks);
	ASSERT_EQ(0, map_lo_hi(self->dev, self->map, len, &lo, &hi));
	fd = open(self->path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * 4096, 4096));
	close(fd);
	after = break_counts();
	EXPECT_EQ(1, revoked_by_clear(self->dev, lo.handle));
	EXPECT_EQ(1, still_mapped(self->dev, hi.handle));
	EXPECT_EQ(before.sync_breaks + 1, after.sync_breaks);
	EXPECT_EQ(before.lease_breaks, after.lease_breaks);
	EXPECT_EQ(0, importer_read(self->dev, hi.handle, 4 * 4096 + 5, 1, &b));
	EXPECT_EQ(pattern_byte(12 * 4096 + 5, 7), b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &lo.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hi.handle));
}

/*
 * Where XFS cannot revoke in its own task, the lease still does it: an
 * RWF_NOWAIT write may not sleep in the hook, so it breaks the lease
 * (lm_break), gets EAGAIN, and p2pmap's worker revokes every window of the
 * file and releases the lease. The write then goes through.
 */
TEST_F(importer, nowait_write_breaks_the_lease_instead)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map lo, hi;
	struct break_counts before = break_counts();
	struct iovec iov;
	char data[4096];
	int fd;

	ASSERT_NE(UINT64_MAX, before.released);
	ASSERT_EQ(0, map_lo_hi(self->dev, self->map, len, &lo, &hi));
	memset(data, 0x5a, sizeof(data));
	iov.iov_base = data;
	iov.iov_len = sizeof(data);
	fd = open(self->path, O_WRONLY);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, pwritev2(fd, &iov, 1, 4096, RWF_NOWAIT));
	EXPECT_EQ(EAGAIN, errno);
	/* the worker: a bounded wait for an event, not a timed verdict */
	EXPECT_EQ(0, wait_stat("lease_breaks", before.lease_breaks + 1, 60));
	ASSERT_EQ(0, wait_latency("release_us_count", before.released + 1, 60));
	EXPECT_LT(0, p2pmap_latency("release_us_p100"));
	EXPECT_EQ(1, revoked_by_clear(self->dev, lo.handle));
	EXPECT_EQ(1, revoked_by_clear(self->dev, hi.handle));
	EXPECT_EQ(before.sync_breaks, p2pmap_stat("sync_breaks"));
	EXPECT_EQ((ssize_t)sizeof(data), pwritev2(fd, &iov, 1, 4096, 0));
	close(fd);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &lo.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hi.handle));
}

/*
 * A CPU store through a shared mapping changes the file without write():
 * XFS breaks no layout lease and no mmu notifier fires on its own. The
 * series calls the provider from ->page_mkwrite() (patch 5), before the
 * page becomes writable. Order 1: the device maps first, then another
 * process maps the file writable and stores into it.
 */
TEST_F(importer, mmap_store_after_device_map_revokes)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map keep = m;
	struct p2pmap_status st = { 0 };
	const off_t at = 4096 + 5;
	unsigned char now = pattern_byte(at, 7) ^ 0xa5, b;
	uint64_t cpu_writes = p2pmap_stat("revocations_cpu_write");
	pid_t pid;
	int status;

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
	/* a second handle on the same window: it must not keep it alive */
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &keep));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open(self->path, O_RDWR);
		unsigned char *w = fd < 0 ? MAP_FAILED :
			mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (w == MAP_FAILED)
			_exit(1);
		w[at] = now;
		_exit(msync(w, len, MS_SYNC) ? 2 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_EQ(-1, importer_read(self->dev, m.handle, at, 1, &b));
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(cpu_writes + 1, p2pmap_stat("revocations_cpu_write"));
	st.handle = keep.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	/*
	 * A fresh MAP sees the store, never the window staged before it (were
	 * that window not revoked, the second handle would keep it staged).
	 */
	m = map_req(self->map, len, 0);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(0, importer_read(self->dev, m.handle, at, 1, &b));
	EXPECT_EQ(now, b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &keep.handle));
}

/*
 * Order 2: the writable shared mapping exists before the device maps (its
 * page not touched yet, so nothing is resident and p2pmap stages), and the
 * store comes after. Then, with the page dirty and mapped writable, a MAP is
 * refused (the fallback reads the store); once written back and unmapped,
 * the P2P path serves the new bytes.
 */
TEST_F(importer, mmap_store_through_earlier_writable_mapping_revokes)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_status st = { 0 };
	const off_t at = 3 * 4096 + 17;
	unsigned char now = pattern_byte(at, 7) ^ 0x5a, b;
	uint64_t cpu_writes = p2pmap_stat("revocations_cpu_write");
	uint64_t refused = p2pmap_stat("refused_page_cache_resident");
	int fd = open(self->path, O_RDWR);
	unsigned char *w;

	ASSERT_LE(0, fd);
	w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, w);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
	w[at] = now;
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(cpu_writes + 1, p2pmap_stat("revocations_cpu_write"));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	/* dirty and mapped writable: refused, the fallback reads the store */
	m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_page_cache_resident"));
	m = map_req(self->map, len, 0);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, at, 1, &b));
	EXPECT_EQ(now, b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	/* written back and unmapped by the CPU: peer to peer, new bytes */
	ASSERT_EQ(0, msync(w, len, MS_SYNC));
	ASSERT_EQ(0, munmap(w, len));
	close(fd);
	self->map = remap_fresh(self->map, len, self->fd);
	ASSERT_NE(MAP_FAILED, self->map);
	m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m))
		TH_LOG("MAP: %s (refused_page_cache_resident %llu)", strerror(errno),
		       (unsigned long long)p2pmap_stat("refused_page_cache_resident"));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, at, 1, &b));
	EXPECT_EQ(now, b);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, at + 1, 1, &b));
	EXPECT_EQ(pattern_byte(at + 1, 7), b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
}

/*
 * Range precision: a store into one page revokes only the windows that
 * cover it. Two importer mappings of disjoint halves of the file; the
 * store lands in the second half.
 */
TEST_F(importer, mmap_store_revokes_only_the_covering_window)
{
	size_t len = round_up_page(self->size), half = 8 * 4096;
	struct p2pmap_map lo = map_req(self->map, half, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map hi = map_req((char *)self->map + half, len - half, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_status st = { 0 };
	const off_t at = half + 4096;
	unsigned char b;
	int fd = open(self->path, O_RDWR);
	unsigned char *w;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &lo));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &hi));
	ASSERT_EQ(P2PMAP_PATH_P2P, lo.path);
	ASSERT_EQ(P2PMAP_PATH_P2P, hi.path);
	w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, w);
	w[at] = 0;
	st.handle = hi.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	st.handle = lo.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(0, st.revoked);
	EXPECT_EQ(1, st.mapped);
	EXPECT_EQ(0, importer_read(self->dev, lo.handle, 4096, 1, &b));
	EXPECT_EQ(pattern_byte(4096, 7), b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &lo.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hi.handle));
	munmap(w, len);
	close(fd);
}

/* Punching a hole revokes too; the remapped range reads zeros there. */
TEST_F(importer, hole_punch_revokes)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_status st = { 0 };
	char buf[4096];
	int fd, i;

	/* failed once, in the slow-machine mode, errno not recorded: say it */
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m))
		TH_LOG("MAP: %s (refused_page_cache_resident %llu, refused_lease_broken %llu)",
		       strerror(errno),
		       (unsigned long long)p2pmap_stat("refused_page_cache_resident"),
		       (unsigned long long)p2pmap_stat("refused_lease_broken"));
	fd = open(self->path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * 4096, 4096));
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	m = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	memset(buf, 0xee, sizeof(buf));
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 2 * 4096, sizeof(buf), buf));
	for (i = 0; i < (int)sizeof(buf); i++)
		if (buf[i])
			break;
	EXPECT_EQ((int)sizeof(buf), i);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	close(fd);
}

/* munmap fires the interval notifier: the handle is revoked, READ says ESTALE. */
TEST_F(importer, munmap_revokes)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, 0);
	struct p2pmap_status st = { 0 };
	char buf[64];

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	ASSERT_EQ(0, munmap(self->map, len));
	self->map = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, 0);	/* for teardown */
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_LE(1, st.invalidations);
	EXPECT_EQ(P2PMAP_REVOKED_BY_UNMAP, st.revoked_by);
	EXPECT_EQ(-1, importer_read(self->dev, m.handle, 0, sizeof(buf), buf));
	EXPECT_EQ(ESTALE, errno);
}

/*
 * device_unmap() is keyed by everything the call carries: the importer and
 * its virtual range, not only the first bus address. Two mappings (two
 * vmas) share one window; the first is given back (munmap), then given
 * back again by a buggy importer (UNMAP_AGAIN). The second unmap matches no
 * claim: it is counted and drops nothing, and the window the other mapping
 * still reads stays staged with its bytes. (Keyed by bus address alone, it
 * dropped the other mapping's reference and freed the window under it.)
 */
TEST_F(importer, double_unmap_drops_no_other_claim)
{
	size_t len = round_up_page(self->size);
	void *other = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, 0);
	struct p2pmap_map a = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map b;
	struct p2pmap_status st = { 0 };
	uint64_t live = p2pmap_stat("windows_live");
	uint64_t unmatched = p2pmap_stat("unmaps_unmatched");
	char buf[100];

	ASSERT_NE(MAP_FAILED, other);
	ASSERT_NE(UINT64_MAX, unmatched);
	b = map_req(other, len, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &a));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &b));
	ASSERT_EQ(P2PMAP_PATH_P2P, b.path);
	ASSERT_EQ(live + 1, p2pmap_stat("windows_live"));
	/* a's vma goes: its notifier gives a's mapping back */
	ASSERT_EQ(0, munmap(self->map, len));
	self->map = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, 0);	/* for teardown */
	st.handle = a.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	ASSERT_EQ(0, st.mapped);
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	/* and once more: matches nothing, drops nothing */
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP_AGAIN, &a.handle));
	EXPECT_EQ(unmatched + 1, p2pmap_stat("unmaps_unmatched"));
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, importer_read(self->dev, b.handle, 3 * 4096 + 10, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 3 * 4096 + 10, sizeof(buf), 7));
	/* b's own unmap still frees the window */
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &b.handle));
	EXPECT_EQ(live, p2pmap_stat("windows_live"));
	EXPECT_EQ(unmatched + 1, p2pmap_stat("unmaps_unmatched"));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &a.handle));
	munmap(other, len);
}

/*
 * A staged window serves every range it holds: with all of the file
 * mapped, a MAP of pages 3-5 takes the fast path (no slow path, nothing
 * staged) and reads the window's bytes; each mapping gives its claim back,
 * the last frees the window. (Per exact range, it staged a second window.)
 */
TEST_F(importer, a_window_serves_the_ranges_it_holds)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map all = map_req(self->map, len, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map sub = map_req((char *)self->map + 3 * 4096, 3 * 4096,
					P2PMAP_MAP_NO_FALLBACK);
	uint64_t live = p2pmap_stat("windows_live");
	uint64_t staged, retries;
	unsigned char b;

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &all));
	ASSERT_EQ(P2PMAP_PATH_P2P, all.path);
	staged = p2pmap_stat("windows_staged");
	retries = p2pmap_stat("lock_drop_retries");
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &sub));
	ASSERT_EQ(P2PMAP_PATH_P2P, sub.path);
	EXPECT_EQ(staged, p2pmap_stat("windows_staged"));
	EXPECT_EQ(retries, p2pmap_stat("lock_drop_retries"));
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	/* READ offsets are relative to the mapping: file page 4 */
	EXPECT_EQ(0, importer_read(self->dev, sub.handle, 4096 + 77, 1, &b));
	EXPECT_EQ(pattern_byte(4 * 4096 + 77, 7), b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &sub.handle));
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, importer_read(self->dev, all.handle, 15 * 4096 + 3, 1, &b));
	EXPECT_EQ(pattern_byte(15 * 4096 + 3, 7), b);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &all.handle));
	EXPECT_EQ(live, p2pmap_stat("windows_live"));
}

/*
 * A range that straddles two staged windows is served from both, without a
 * slow path and without staging a third window; its unmap gives back its
 * claim on each of them, and no other mapping's.
 */
TEST_F(importer, two_windows_serve_a_range_that_straddles_them)
{
	struct p2pmap_map a = map_req(self->map, 4 * 4096, P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map b = map_req((char *)self->map + 4 * 4096, 4 * 4096,
				      P2PMAP_MAP_NO_FALLBACK);
	struct p2pmap_map mid = map_req((char *)self->map + 2 * 4096, 4 * 4096,
					P2PMAP_MAP_NO_FALLBACK);
	uint64_t live = p2pmap_stat("windows_live");
	uint64_t unmatched = p2pmap_stat("unmaps_unmatched");
	uint64_t staged, retries;
	unsigned char x;

	ASSERT_LE(8 * 4096, self->size);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &a));
	ASSERT_EQ(P2PMAP_PATH_P2P, a.path);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &b));
	ASSERT_EQ(P2PMAP_PATH_P2P, b.path);
	ASSERT_EQ(live + 2, p2pmap_stat("windows_live"));
	staged = p2pmap_stat("windows_staged");
	retries = p2pmap_stat("lock_drop_retries");
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &mid));
	ASSERT_EQ(P2PMAP_PATH_P2P, mid.path);
	EXPECT_EQ(staged, p2pmap_stat("windows_staged"));
	EXPECT_EQ(retries, p2pmap_stat("lock_drop_retries"));
	EXPECT_EQ(live + 2, p2pmap_stat("windows_live"));
	/* file pages 3 (window a) and 4 (window b), across the seam */
	EXPECT_EQ(0, importer_read(self->dev, mid.handle, 2 * 4096 - 1, 1, &x));
	EXPECT_EQ(pattern_byte(4 * 4096 - 1, 7), x);
	EXPECT_EQ(0, importer_read(self->dev, mid.handle, 2 * 4096, 1, &x));
	EXPECT_EQ(pattern_byte(4 * 4096, 7), x);
	/* a's and b's own mappings go first: both windows stay for mid */
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &a.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &b.handle));
	EXPECT_EQ(live + 2, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, importer_read(self->dev, mid.handle, 3 * 4096 + 1, 1, &x));
	EXPECT_EQ(pattern_byte(5 * 4096 + 1, 7), x);
	/* mid's unmap frees both */
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &mid.handle));
	EXPECT_EQ(live, p2pmap_stat("windows_live"));
	EXPECT_EQ(unmatched, p2pmap_stat("unmaps_unmatched"));
}

/* truncate unmaps the file range from every mm: the importer sees it. */
TEST_F(importer, truncate_revokes_then_remap_reads_new_contents)
{
	size_t len = round_up_page(self->size);
	struct p2pmap_map m = map_req(self->map, len, 0);
	struct p2pmap_status st = { 0 };
	char buf[4096];

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(P2PMAP_REVOKED_BY_NONE, st.revoked_by);
	ASSERT_EQ(0, truncate(self->path, 4096));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	/* attributable: an unmap_mapping_range() (lease break, truncate) */
	EXPECT_EQ(P2PMAP_REVOKED_BY_CLEAR, st.revoked_by);
	EXPECT_EQ(-1, importer_read(self->dev, m.handle, 0, 16, buf));
	EXPECT_EQ(ESTALE, errno);
	/* rewrite and map again: the new bytes come through */
	ASSERT_EQ(0, make_pattern_file(self->path, self->size, 9));
	m = map_req(self->map, len, 0);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 8192, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 8192, sizeof(buf), 9));
}

/* A process that exits with live handles leaks nothing: its fd release unmaps. */
TEST_F(importer, exit_while_mapped)
{
	uint64_t live = p2pmap_stat("windows_live");
	pid_t pid = fork();
	int status;

	ASSERT_LE(0, pid);
	if (pid == 0) {
		int dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
		struct p2pmap_map m = map_req(self->map, round_up_page(self->size), 0);

		if (dev < 0 || ioctl(dev, P2PMAP_IOC_MAP, &m))
			_exit(1);
		_exit(0);	/* no UNMAP, no close */
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(live, p2pmap_stat("windows_live"));
}

/* Holes are zero-filled in the window, never read from disk. */
TEST_F(scratch, sparse_file_holes_read_as_zeros)
{
	char path[256], buf[5 * 4096];
	int dev, fd, i;
	void *p;
	struct p2pmap_map m;
	unsigned char data[4096];

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/sparse.%d", getpid());
	scratch_file(&self->s, "%s", path);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	ASSERT_LE(0, fd);
	for (i = 0; i < 4096; i++)
		data[i] = pattern_byte(2 * 4096 + i, 5);
	ASSERT_EQ(4096, pwrite(fd, data, 4096, 2 * 4096));	/* pages 0,1 and 3,4 are holes */
	ASSERT_EQ(0, ftruncate(fd, 5 * 4096));
	ASSERT_EQ(0, fsync(fd));
	p = mmap(NULL, sizeof(buf), PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	m = map_req(p, sizeof(buf), P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m));
	memset(buf, 0xee, sizeof(buf));
	EXPECT_EQ(0, importer_read(dev, m.handle, 0, sizeof(buf), buf));
	for (i = 0; i < 2 * 4096; i++)
		if (buf[i])
			break;
	EXPECT_EQ(2 * 4096, i);
	EXPECT_EQ(0, check_pattern(buf + 2 * 4096, 2 * 4096, 4096, 5));
	for (i = 3 * 4096; i < 5 * 4096; i++)
		if (buf[i])
			break;
	EXPECT_EQ(5 * 4096, i);
	ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	munmap(p, sizeof(buf));
	close(fd);
	unlink(path);
	close(dev);
}

/*
 * Unwritten extents read as zeros even when their blocks hold old data:
 * write a pattern, delete the file, preallocate a new one over the freed
 * blocks, map it.
 */
TEST_F(scratch, unwritten_extents_read_as_zeros)
{
	char path[256], buf[16 * 4096];
	int dev, fd, i;
	void *p;
	struct p2pmap_map m;

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/old.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, 1 << 20, 0x5a));
	ASSERT_EQ(0, unlink(path));
	sync();
	snprintf(path, sizeof(path), XFS_DIR "/prealloc.%d", getpid());
	scratch_file(&self->s, "%s", path);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fallocate(fd, 0, 0, 1 << 20));
	ASSERT_EQ(0, fsync(fd));
	p = mmap(NULL, sizeof(buf), PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	m = map_req(p, sizeof(buf), P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m));
	memset(buf, 0xee, sizeof(buf));
	EXPECT_EQ(0, importer_read(dev, m.handle, 0, sizeof(buf), buf));
	for (i = 0; i < (int)sizeof(buf); i++)
		if (buf[i])
			break;
	EXPECT_EQ((int)sizeof(buf), i);
	ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	munmap(p, sizeof(buf));
	close(fd);
	unlink(path);
	close(dev);
}

/* A reflinked copy has shared extents: map_blocks says -ENXIO, p2pmap refuses. */
TEST_F(scratch, reflinked_file_is_refused)
{
	char src[256], dst[256], cmd[600];
	int dev, fd;
	void *p;
	struct p2pmap_map m;
	uint64_t refused;

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(src, sizeof(src), XFS_DIR "/orig.%d", getpid());
	scratch_file(&self->s, "%s", src);
	snprintf(dst, sizeof(dst), XFS_DIR "/reflink.%d", getpid());
	scratch_file(&self->s, "%s", dst);
	ASSERT_EQ(0, make_pattern_file(src, 8192, 1));
	snprintf(cmd, sizeof(cmd), "cp --reflink=always %s %s && sync", src, dst);
	ASSERT_EQ(0, system(cmd));
	fd = open(dst, O_RDONLY);
	ASSERT_LE(0, fd);
	p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	refused = p2pmap_stat("refused_reflinked");
	m = map_req(p, 8192, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_reflinked"));
	/* the fallback still serves it */
	m = map_req(p, 8192, 0);
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(-ENXIO, m.p2p_errno);
	munmap(p, 8192);
	close(fd);
	unlink(dst);
	unlink(src);
	close(dev);
}

struct hammer {
	int dev;
	void *map;
	size_t len;
	volatile int stop;
	unsigned long calls, eopnotsupp, mapped, other;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;

	while (!h->stop) {
		struct p2pmap_map m = map_req(h->map, h->len, P2PMAP_MAP_NO_FALLBACK);

		h->calls++;
		if (!ioctl(h->dev, P2PMAP_IOC_MAP, &m)) {
			h->mapped++;
			if (ioctl(h->dev, P2PMAP_IOC_UNMAP, &m.handle))
				h->other++;
		} else if (errno == EOPNOTSUPP) {
			h->eopnotsupp++;	/* no provider at that moment */
		} else {
			h->other++;
		}
	}
	return NULL;
}

/*
 * rmmod/insmod p2pmap while another thread keeps calling device_map, for a
 * fixed number of cycles. One cycle costs 1.3-1.7 s on the 2-core
 * development machine (insmod runs the module's KUnit suite, under KASAN
 * and TCG; measured: 20 cycles in 25.5 s, and ~35 s on a loaded machine):
 * ~105 s on a machine 3x slower than the slower figure; the bound is 600 s. The fixture's teardown reloads p2pmap if a failed
 * ASSERT ends the test between rmmod and insmod.
 */
#define UNLOAD_CYCLES 20
TEST_F_TIMEOUT(importer, provider_unload_while_calling, 600)
{
	struct hammer h = { .dev = self->dev, .map = self->map, .len = round_up_page(self->size) };
	double t0 = now_s();
	pthread_t t;
	int i;

	ASSERT_EQ(0, pthread_create(&t, NULL, hammer_thread, &h));
	for (i = 0; i < UNLOAD_CYCLES; i++) {
		EXPECT_EQ(0, system("rmmod p2pmap"));
		usleep(2000);
		EXPECT_EQ(0, ensure_p2pmap_loaded());
		usleep(2000);
	}
	h.stop = 1;
	pthread_join(t, NULL);
	TH_LOG("%d unload cycles in %.1f s; %lu calls: %lu EOPNOTSUPP (no provider), %lu mapped by p2p, %lu other",
	       UNLOAD_CYCLES, now_s() - t0, h.calls, h.eopnotsupp, h.mapped, h.other);
	EXPECT_EQ(0, h.other);
	EXPECT_LT(0, h.eopnotsupp);
	EXPECT_LT(0, h.mapped);
	EXPECT_EQ(0, p2pmap_stat("windows_live"));
}


/* Maps all of @path (@size bytes) for the device; returns the handle or 0. */
static uint32_t map_file(int dev, const char *path, size_t size, void **map, int *fd)
{
	struct p2pmap_map m;

	*fd = open(path, O_RDONLY);
	if (*fd < 0)
		return 0;
	*map = mmap(NULL, size, PROT_READ, MAP_SHARED, *fd, 0);
	if (*map == MAP_FAILED)
		return 0;
	m = map_req(*map, size, P2PMAP_MAP_NO_FALLBACK);
	if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P)
		return 0;
	return m.handle;
}

/*
 * Maps all of @path (@size bytes) without fallback, expecting a refusal
 * with @err that p2pmap counts under @counter; 0 if so, else -1 (printed).
 */
static int map_expect_refused(int dev, const char *path, size_t size, int err,
			      const char *counter)
{
	uint64_t before = p2pmap_stat(counter);
	int fd = open(path, O_RDONLY), ret = -1;
	struct p2pmap_map m;
	void *map;

	if (fd < 0)
		return -1;
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map != MAP_FAILED) {
		m = map_req(map, size, P2PMAP_MAP_NO_FALLBACK);
		if (!ioctl(dev, P2PMAP_IOC_MAP, &m))
			fprintf(stderr, "# %s: mapped, not refused\n", path);
		else if (errno != err)
			fprintf(stderr, "# %s: %s, not %s\n", path, strerror(errno), strerror(err));
		else if (p2pmap_stat(counter) != before + 1)
			fprintf(stderr, "# %s: %s did not count the refusal\n", path, counter);
		else
			ret = 0;
		munmap(map, size);
	}
	close(fd);
	return ret;
}

/*
 * CMB pressure: a window that does not fit next to a mapped one revokes the
 * least recently used mapped window (its importer sees the revocation and
 * maps again later, which in turn revokes the other).
 */
TEST_F(scratch, cmb_pressure_revokes_the_lru_window)
{
	const size_t big = 40 << 20;
	char pa_path[256], pb_path[256];
	int dev, fa, fb;
	void *ma, *mb;
	struct p2pmap_map a, b;
	struct p2pmap_status st = { 0 };
	uint64_t pressure, refused;
	char buf[64];

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(pa_path, sizeof(pa_path), XFS_DIR "/big_a.%d", getpid());
	scratch_file(&self->s, "%s", pa_path);
	snprintf(pb_path, sizeof(pb_path), XFS_DIR "/big_b.%d", getpid());
	scratch_file(&self->s, "%s", pb_path);
	ASSERT_EQ(0, make_pattern_file(pa_path, big, 11));
	ASSERT_EQ(0, make_pattern_file(pb_path, big, 12));
	a.handle = map_file(dev, pa_path, big, &ma, &fa);
	ASSERT_NE(0, a.handle);
	EXPECT_EQ(big, p2pmap_stat("cmb_bytes_used"));
	pressure = p2pmap_stat("revocations_cmb_pressure");
	refused = p2pmap_stat("refused_cmb_full");

	/* B does not fit next to A: A (least recently used) is revoked */
	b.handle = map_file(dev, pb_path, big, &mb, &fb);
	ASSERT_NE(0, b.handle);
	EXPECT_EQ(pressure + 1, p2pmap_stat("revocations_cmb_pressure"));
	EXPECT_EQ(refused, p2pmap_stat("refused_cmb_full"));
	EXPECT_EQ(big, p2pmap_stat("cmb_bytes_used"));
	st.handle = a.handle;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_EQ(-1, importer_read(dev, a.handle, 0, sizeof(buf), buf));
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(0, importer_read(dev, b.handle, big - sizeof(buf), sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, big - sizeof(buf), sizeof(buf), 12));

	/* A maps again, revoking B, and reads its own bytes */
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &a.handle));
	a = map_req(ma, big, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &a));
	EXPECT_EQ(pressure + 2, p2pmap_stat("revocations_cmb_pressure"));
	st.handle = b.handle;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, importer_read(dev, a.handle, big / 2, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, big / 2, sizeof(buf), 11));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &a.handle));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &b.handle));
	EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));
	EXPECT_EQ(0, p2pmap_stat("windows_live"));
	munmap(ma, big);
	munmap(mb, big);
	close(fa);
	close(fb);
	unlink(pa_path);
	unlink(pb_path);
	close(dev);
}

/*
 * CMB pressure revokes what is missing, no more, and nothing for a window
 * that cannot fit at all. A (16 MiB) and B (24 MiB) are mapped in the 64 MiB
 * CMB, A is used again (B is the least recently used); C (32 MiB) needs 8
 * MiB more than is free: B alone is revoked (before, windows were revoked
 * until they added up to C's whole size: A too). D (96 MiB) is larger than
 * the CMB: refused up front (E2BIG, too_large), nothing revoked (before,
 * every window was revoked, then the request failed anyway).
 */
TEST_F(scratch, cmb_pressure_revokes_only_what_is_missing)
{
	const size_t M = 1 << 20, sa = 16 * M, sb = 24 * M, sc = 32 * M, sd = 96 * M;
	char pa[256], pb[256], pc[256], pd[256];
	int dev, fa, fb, fc, fd;
	void *ma, *mb, *mc;
	struct p2pmap_map again;
	struct p2pmap_status st = { 0 };
	uint32_t ha, hb, hc;
	uint64_t pressure;
	char buf[64];

	dev = open_importer();
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, p2pmap_stat("cmb_bytes_used")) TH_LOG("the CMB must start empty");
	snprintf(pa, sizeof(pa), XFS_DIR "/pr_a.%d", getpid());
	scratch_file(&self->s, "%s", pa);
	snprintf(pb, sizeof(pb), XFS_DIR "/pr_b.%d", getpid());
	scratch_file(&self->s, "%s", pb);
	snprintf(pc, sizeof(pc), XFS_DIR "/pr_c.%d", getpid());
	scratch_file(&self->s, "%s", pc);
	snprintf(pd, sizeof(pd), XFS_DIR "/pr_d.%d", getpid());
	scratch_file(&self->s, "%s", pd);
	ASSERT_EQ(0, make_pattern_file_direct(pa, sa, 51));
	ASSERT_EQ(0, make_pattern_file_direct(pb, sb, 52));
	ASSERT_EQ(0, make_pattern_file_direct(pc, sc, 53));
	fd = open(pd, O_CREAT | O_TRUNC | O_RDWR, 0644);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, sd));	/* a hole: never staged here */
	close(fd);

	ha = map_file(dev, pa, sa, &ma, &fa);
	ASSERT_NE(0, ha) TH_LOG("map A: %s", strerror(errno));
	hb = map_file(dev, pb, sb, &mb, &fb);
	ASSERT_NE(0, hb) TH_LOG("map B: %s", strerror(errno));
	/* A used again: B is the least recently used window */
	again = map_req(ma, sa, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &again));
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &again.handle));
	pressure = p2pmap_stat("windows_revoked");
	ASSERT_NE(UINT64_MAX, p2pmap_stat("refused_too_large"));

	hc = map_file(dev, pc, sc, &mc, &fc);
	ASSERT_NE(0, hc) TH_LOG("map C: %s", strerror(errno));
	EXPECT_EQ(pressure + 1, p2pmap_stat("windows_revoked"));
	st.handle = hb;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	st.handle = ha;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(0, st.revoked) TH_LOG("A was revoked although B made room enough");
	EXPECT_EQ(0, importer_read(dev, ha, sa - sizeof(buf), sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, sa - sizeof(buf), sizeof(buf), 51));
	EXPECT_EQ(0, importer_read(dev, hc, sc / 2, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, sc / 2, sizeof(buf), 53));

	/* D cannot fit in the CMB at all */
	EXPECT_EQ(0, map_expect_refused(dev, pd, sd, E2BIG, "refused_too_large"));
	EXPECT_EQ(pressure + 1, p2pmap_stat("windows_revoked"));
	st.handle = hc;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(0, st.revoked);

	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &ha));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &hb));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &hc));
	EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));
	munmap(ma, sa);
	munmap(mb, sb);
	munmap(mc, sc);
	close(fa);
	close(fb);
	close(fc);
	unlink(pa);
	unlink(pb);
	unlink(pc);
	unlink(pd);
	close(dev);
}

/*
 * One importer process of cmb_pressure_from_four_processes_refuses_nothing:
 * two passes over its file in 1 MiB mappings, each held until the next
 * pass maps the chunk again. Exit status: 0, or 1 if a MAP was refused or
 * not peer to peer, 2 on a setup error.
 */
static int pressure_worker(const char *path, size_t size)
{
	const size_t chunk = 1 << 20;
	uint32_t handles[64] = { 0 };
	int dev = open_importer(), fd = open(path, O_RDONLY), pass, refused = 0;
	char *map;
	size_t c;

	if (dev < 0 || fd < 0 || size / chunk > 64)
		return 2;
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 2;
	for (pass = 0; pass < 2; pass++) {
		for (c = 0; c < size / chunk; c++) {
			struct p2pmap_map m = map_req(map + c * chunk, chunk, P2PMAP_MAP_NO_FALLBACK);

			if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P) {
				fprintf(stderr, "# %s chunk %zu: %s\n", path, c, strerror(errno));
				refused++;
				m.handle = 0;
			}
			if (handles[c])
				ioctl(dev, P2PMAP_IOC_UNMAP, &handles[c]);
			handles[c] = m.handle;
		}
	}
	close(dev);
	return refused ? 1 : 0;
}

/*
 * CMB pressure from several processes at once: four importers cycle
 * through twice the CMB (4 x 32 MiB in 1 MiB windows), so every request
 * revokes another's least recently used window, and a request often finds
 * every window in the CMB already under revocation by the others (nothing
 * left to revoke: it must wait for their frees, alloc_window()). Every
 * request fits: none may be refused cmb_full (16-33 were in this test
 * before that wait).
 */
TEST_F_TIMEOUT(scratch, cmb_pressure_from_four_processes_refuses_nothing, 600)
{
	const size_t size = 32 << 20;
	char paths[4][256];
	uint64_t full, pressure;
	pid_t pids[4];
	int i, st;

	ASSERT_EQ(0, p2pmap_stat("cmb_bytes_used")) TH_LOG("the CMB must start empty");
	for (i = 0; i < 4; i++) {
		snprintf(paths[i], sizeof(paths[i]), XFS_DIR "/press_%d.%d", i, getpid());
		scratch_file(&self->s, "%s", paths[i]);
		ASSERT_EQ(0, make_pattern_file_direct(paths[i], size, 60 + i));
	}
	full = p2pmap_stat("refused_cmb_full");
	pressure = p2pmap_stat("revocations_cmb_pressure");
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(pressure_worker(paths[i], size));
		scratch_pid(&self->s, pids[i]);
	}
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &st, 0));
		scratch_reaped(&self->s, pids[i]);
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
			TH_LOG("importer %d: status %#x (1: a MAP was refused)", i, st);
	}
	EXPECT_EQ(full, p2pmap_stat("refused_cmb_full"));
	/* Teeth: the CMB really was under pressure. */
	EXPECT_LT(pressure + 32, p2pmap_stat("revocations_cmb_pressure"));
	EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));
	for (i = 0; i < 4; i++)
		unlink(paths[i]);
}

/*
 * An active swap file: the swap code reads and writes its blocks directly
 * (bmap'ed at swapon), bypassing the page cache, the filesystem and every
 * layout lease, so p2pmap would never learn that they changed. Refused with
 * its own reason (ETXTBSY, as write() to it is).
 */
TEST_F(scratch, active_swap_file_is_refused)
{
	const size_t size = 4 << 20;
	char path[256], cmd[512];
	int dev;

	ASSERT_NE(UINT64_MAX, p2pmap_stat("refused_swapfile"));
	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/swap.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, size, 9));	/* no holes */
	ASSERT_EQ(0, chmod(path, 0600));
	snprintf(cmd, sizeof(cmd), "mkswap -q %s", path);
	ASSERT_EQ(0, system(cmd));
	scratch_swap(&self->s, path);
	ASSERT_EQ(0, syscall(SYS_swapon, path, 0)) TH_LOG("swapon: %s", strerror(errno));
	EXPECT_EQ(0, map_expect_refused(dev, path, size, ETXTBSY, "refused_swapfile"));
	EXPECT_EQ(0, syscall(SYS_swapoff, path));
	unlink(path);
	close(dev);
}

/* /proc/sys/kernel/tainted, or ~0 if it cannot be read. */
static unsigned long kernel_tainted(void)
{
	unsigned long v = ~0UL;
	FILE *f = fopen("/proc/sys/kernel/tainted", "r");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = ~0UL;
		fclose(f);
	}
	return v;
}

struct storer {
	volatile char *map;
	volatile int stop;
	unsigned long stores;
};

/* Stores into pages 32..63 of the mapping, one byte per page, until told. */
static void *store_loop(void *arg)
{
	struct storer *st = arg;
	unsigned int k = 0;

	while (!st->stop) {
		st->map[(32 + k % 32) * 4096 + 7] = (char)k;
		k++;
		st->stores++;
		if (k % 32 == 0)
			sched_yield();
	}
	return NULL;
}

/*
 * device_map must never make the kernel WARN, whatever userspace does
 * meanwhile. Every slow path calls XFS's map_blocks, which writes back and
 * invalidates the file's page cache under the iolock only; a store through
 * a shared mapping could dirty a page again in between, and the
 * invalidation failed (EBUSY): map_blocks failed (EIO, map_blocks_failed)
 * and WARNed. Patch 7 takes the mmaplock there. Pages 0..15 are mapped
 * 100 times (each a slow path) while a thread stores into pages 32..63;
 * no MAP may fail in map_blocks, and the kernel must not taint itself
 * with a warning. The stores are announced range by range: none of them
 * touches pages 0..15, so no window being staged for those is thrown away
 * (it was, while CPU writes were one sequence per inode: most of the 100
 * MAPs were refused as cpu_write), and every MAP is served peer to peer.
 */
TEST_F(scratch, map_blocks_while_another_page_is_stored_into)
{
	const size_t size = 64 * 4096, len = 16 * 4096;
	struct storer st = { 0 };
	uint64_t failed = p2pmap_stat("refused_map_blocks_failed");
	uint64_t cpu_write = p2pmap_stat("refused_cpu_write");
	unsigned long tainted = kernel_tainted();
	int i, dev, fd, p2p = 0, other = 0;
	char path[256];
	pthread_t t;
	void *ro, *rw;

	ASSERT_NE(UINT64_MAX, failed);
	ASSERT_NE(~0UL, tainted);
	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/storer.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, size, 13));
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	ro = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, ro);
	rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, rw);
	st.map = rw;
	ASSERT_EQ(0, pthread_create(&t, NULL, store_loop, &st));
	for (i = 0; i < 100; i++) {
		struct p2pmap_map m = map_req(ro, len, P2PMAP_MAP_NO_FALLBACK);

		if (!ioctl(dev, P2PMAP_IOC_MAP, &m)) {
			p2p++;
			ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
		} else {
			/* a store moved the inode's CPU-write sequence, ... */
			other++;
		}
	}
	st.stop = 1;
	pthread_join(t, NULL);
	TH_LOG("%d MAPs served peer to peer, %d refused; %lu stores", p2p, other, st.stores);
	EXPECT_EQ(failed, p2pmap_stat("refused_map_blocks_failed"));
	EXPECT_EQ(cpu_write, p2pmap_stat("refused_cpu_write"));
	EXPECT_EQ(100, p2p);
	/* TAINT_WARN (bit 9) set by this test */
	EXPECT_EQ(tainted & (1 << 9), kernel_tainted() & (1 << 9))
		TH_LOG("the kernel WARNed (see dmesg)");
	munmap(rw, size);
	munmap(ro, len);
	close(fd);
	unlink(path);
	close(dev);
}

/*
 * A second window of a file is staged from the extents cached under the
 * layout lease: no map_blocks, so XFS does not write back and invalidate
 * the whole file, and a page another mapping reads on the CPU stays mapped
 * and cached (map_blocks evicted it: the "a MAP of pages 0-3
 * evicted the file's cached pages"). A write moves the layout sequence:
 * the next window asks map_blocks again, and reads the new bytes.
 */
TEST_F(scratch, second_window_reuses_cached_extents)
{
	const size_t size = 64 * 4096;
	uint64_t calls, hits;
	unsigned char vec, buf[4096];
	struct p2pmap_map m;
	char path[256];
	int dev, fd, i;
	volatile unsigned char *cpu;
	unsigned char *map;

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/extents.%d", getpid());
	scratch_file(&self->s, "%s", path);
	/* O_DIRECT: no page of the file is cached to begin with */
	ASSERT_EQ(0, make_pattern_file_direct(path, size, 23));
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	cpu = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, (void *)cpu);

	/* window 1: pages 0-3, extents from map_blocks */
	calls = p2pmap_stat("map_blocks_calls");
	m = map_req(map, 4 * 4096, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m)) TH_LOG("MAP 0-3: %s", strerror(errno));
	EXPECT_LT(calls, p2pmap_stat("map_blocks_calls"));

	/* another mapping reads page 40 on the CPU: cached and mapped */
	EXPECT_EQ(pattern_byte(40 * 4096, 23), cpu[40 * 4096]);
	ASSERT_EQ(0, mincore((void *)(cpu + 40 * 4096), 4096, &vec));
	ASSERT_EQ(1, vec & 1);

	/* window 2: pages 4-7, from the cache */
	calls = p2pmap_stat("map_blocks_calls");
	hits = p2pmap_stat("extent_cache_hits");
	m = map_req(map + 4 * 4096, 4 * 4096, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m)) TH_LOG("MAP 4-7: %s", strerror(errno));
	EXPECT_EQ(calls, p2pmap_stat("map_blocks_calls"));
	EXPECT_LT(hits, p2pmap_stat("extent_cache_hits"));
	ASSERT_EQ(0, mincore((void *)(cpu + 40 * 4096), 4096, &vec));
	EXPECT_EQ(1, vec & 1) TH_LOG("page 40 was evicted: the whole file was invalidated");
	ASSERT_EQ(0, importer_read(dev, m.handle, 2 * 4096, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 6 * 4096, sizeof(buf), 23));

	/* a write (pages 20-21) moves the layout sequence: map_blocks again */
	for (i = 0; i < (int)sizeof(buf); i++)
		buf[i] = pattern_byte(20 * 4096 + i, 24);
	ASSERT_EQ((ssize_t)sizeof(buf), pwrite(fd, buf, sizeof(buf), 20 * 4096));
	ASSERT_EQ(0, fsync(fd));
	calls = p2pmap_stat("map_blocks_calls");
	m = map_req(map + 20 * 4096, 4 * 4096, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m)) TH_LOG("MAP 20-23: %s", strerror(errno));
	EXPECT_LT(calls, p2pmap_stat("map_blocks_calls"));
	ASSERT_EQ(0, importer_read(dev, m.handle, 0, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 20 * 4096, sizeof(buf), 24));

	munmap((void *)cpu, size);
	munmap(map, size);
	close(fd);
	unlink(path);
	close(dev);
}

/*
 * A reflink involving a device-mapped file revokes it whether the file is
 * the source or the destination: xfs_ilock2_io_mmap() breaks the layouts of
 * both, and announces the whole of each first (patch 10), so the reflinking
 * task revokes them itself: no lease break, no worker. Its extents are
 * shared afterwards: a fresh MAP is refused (reflinked) and the importer
 * reads the new contents through the page cache.
 */
TEST_F(scratch, reflink_revokes_source_and_destination)
{
	const size_t size = 16384;
	char src[256], dst[256];
	uint64_t breaks, lease_revocations, layout_revocations;
	struct p2pmap_status st = { 0 };
	struct p2pmap_map m;
	int dev, fs, fd, wfd;
	void *ms, *md;
	uint32_t hs, hd;
	char buf[4096];

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(src, sizeof(src), XFS_DIR "/rl_src.%d", getpid());
	scratch_file(&self->s, "%s", src);
	snprintf(dst, sizeof(dst), XFS_DIR "/rl_dst.%d", getpid());
	scratch_file(&self->s, "%s", dst);
	ASSERT_EQ(0, make_pattern_file(src, size, 21));
	ASSERT_EQ(0, make_pattern_file(dst, size, 22));
	hs = map_file(dev, src, size, &ms, &fs);
	hd = map_file(dev, dst, size, &md, &fd);
	ASSERT_NE(0, hs);
	ASSERT_NE(0, hd);
	breaks = p2pmap_stat("lease_breaks");
	lease_revocations = p2pmap_stat("revocations_lease_break");
	layout_revocations = p2pmap_stat("revocations_layout_change");

	/* clone src over dst: both mapped files are revoked, in this task */
	wfd = open(dst, O_WRONLY);
	ASSERT_LE(0, wfd);
	ASSERT_EQ(0, ioctl(wfd, FICLONE, fs));
	close(wfd);
	EXPECT_EQ(breaks, p2pmap_stat("lease_breaks"));
	EXPECT_EQ(lease_revocations, p2pmap_stat("revocations_lease_break"));
	EXPECT_EQ(layout_revocations + 2, p2pmap_stat("revocations_layout_change"));
	st.handle = hs;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	st.handle = hd;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(-1, importer_read(dev, hd, 0, 16, buf));
	EXPECT_EQ(ESTALE, errno);

	/* a fresh MAP of dst: shared extents, refused; the fallback reads src's bytes */
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &hd));
	m = map_req(md, size, 0);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	EXPECT_EQ(-ENXIO, m.p2p_errno);
	EXPECT_EQ(0, importer_read(dev, m.handle, 8192, sizeof(buf), buf));
	EXPECT_EQ(0, check_pattern(buf, 8192, sizeof(buf), 21));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &hs));
	EXPECT_EQ(0, p2pmap_stat("windows_live"));
	munmap(ms, size);
	munmap(md, size);
	close(fs);
	close(fd);
	unlink(src);
	unlink(dst);
	close(dev);
}

/*
 * Revocations are timed: debugfs revoke_latency counts them. A truncate's
 * runs in the truncating task (quiesce_us) and releases no lease; a lease
 * break's (nowait_write_breaks_the_lease_instead) also times the release.
 */
TEST_F(scratch, revocation_is_timed)
{
	const size_t size = 8192;
	char path[256];
	void *map;
	int dev, fd;
	uint32_t h;
	uint64_t q0, r0, s0;

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/timed.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, size, 3));
	h = map_file(dev, path, size, &map, &fd);
	ASSERT_NE(0, h);
	q0 = p2pmap_latency("quiesce_us_count");
	r0 = p2pmap_latency("release_us_count");
	s0 = p2pmap_stat("sync_breaks");
	ASSERT_NE(UINT64_MAX, q0);
	ASSERT_EQ(0, truncate(path, 0));
	EXPECT_EQ(q0 + 1, p2pmap_latency("quiesce_us_count"));
	EXPECT_EQ(r0, p2pmap_latency("release_us_count"));
	EXPECT_EQ(s0 + 1, p2pmap_stat("sync_breaks"));
	TH_LOG("truncate -> importers quiesced p100 <= %llu us",
	       (unsigned long long)p2pmap_latency("quiesce_us_p100"));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &h));
	munmap(map, size);
	close(fd);
	unlink(path);
	close(dev);
}

static int stress_worker(int id, int rounds)
{
	const size_t size = 8 * 4096;
	char path[256], buf[4096];
	int dev = open_importer();
	int r;

	if (dev < 0)
		return 100;
	snprintf(path, sizeof(path), XFS_DIR "/stress.%d.%d", getpid(), id);
	for (r = 0; r < rounds; r++) {
		unsigned int seed = id * 1000 + r;
		struct p2pmap_status st = { 0 };
		struct p2pmap_map m;
		void *p;
		int fd;

		if (make_pattern_file(path, size, seed))
			return 1;
		fd = open(path, O_RDONLY);
		p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (fd < 0 || p == MAP_FAILED)
			return 2;
		m = map_req(p, size, 0);
		if (ioctl(dev, P2PMAP_IOC_MAP, &m))
			return 3;
		/* whatever the path, the bytes are this round's */
		if (importer_read(dev, m.handle, (r % 8) * 4096, sizeof(buf), buf) ||
		    check_pattern(buf, (r % 8) * 4096, sizeof(buf), seed))
			return 4;
		if (truncate(path, size / 2))
			return 5;
		st.handle = m.handle;
		if (ioctl(dev, P2PMAP_IOC_STATUS, &st) || !st.revoked)
			return 6;
		if (!importer_read(dev, m.handle, 0, 16, buf) || errno != ESTALE)
			return 7;
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
		munmap(p, size);
		close(fd);
	}
	unlink(path);
	close(dev);
	return 0;
}

/*
 * Several processes map, read (verified), truncate (revoked) and rewrite
 * their files concurrently, for a fixed number of rounds.
 */
TEST_F(scratch, stress_map_truncate_rewrite)
{
	const int workers = 3, rounds = 12;
	pid_t pids[3];
	int i, status;

	ASSERT_EQ(0, ensure_p2pmap_loaded());
	for (i = 0; i < workers; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(stress_worker(i, rounds));
		scratch_pid(&self->s, pids[i]);
		scratch_file(&self->s, XFS_DIR "/stress.%d.%d", pids[i], i);
	}
	for (i = 0; i < workers; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		scratch_reaped(&self->s, pids[i]);
		EXPECT_TRUE(WIFEXITED(status));
		EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("worker %d failed at step %d", i, WEXITSTATUS(status));
	}
	EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));
}

/*
 * A caller that never comes back after -EAGAIN (killed, or gave up) leaves
 * the window its slow path staged. Such a window holds the file, its
 * mount, its layout lease and CMB space; it expires (UNCLAIMED_TTL_NS, 5 s)
 * and the lease worker frees it, also when the file was unlinked
 * meanwhile, and the filesystem can then be unmounted.
 */
TEST_F(scratch, abandoned_window_expires_and_umount_succeeds)
{
	const size_t size = 8 * 4096;
	uint64_t live, expired;
	char path[256], src[256];
	struct p2pmap_map m;
	void *map;
	int dev, fd;

	dev = open_importer();
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, mount_source(XFS_DIR, src, sizeof(src)));
	scratch_mount(&self->s, XFS_DIR, src, "xfs");
	snprintf(path, sizeof(path), XFS_DIR "/abandoned.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, size, 5));
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	live = p2pmap_stat("windows_live");
	expired = p2pmap_stat("unclaimed_expired");
	ASSERT_NE(UINT64_MAX, expired);

	/* every call takes the slow path: the importer gives up (EBUSY) */
	ASSERT_EQ(0, set_inject_retry(1000));
	m = map_req(map, size, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, set_inject_retry(0));
	/* what the last slow path staged is left behind, unclaimed */
	EXPECT_EQ(live + 1, p2pmap_stat("windows_live"));
	munmap(map, size);
	close(fd);
	close(dev);
	ASSERT_EQ(0, unlink(path));

	EXPECT_EQ(0, wait_stat("windows_live", live, 120))
		TH_LOG("the abandoned window was not freed");
	EXPECT_LE(expired + 1, p2pmap_stat("unclaimed_expired"));
	if (live == 0)
		EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));
	/*
	 * Nothing of p2pmap's pins the filesystem any more. The lease's file
	 * is put from the lease worker after the window is freed, and a
	 * kthread's fput() is itself deferred: retry while busy (the bound
	 * only catches a file that is never put).
	 */
	ASSERT_EQ(0, umount_retry(XFS_DIR)) TH_LOG("umount %s: %s", XFS_DIR, strerror(errno));
	ASSERT_EQ(0, mount(src, XFS_DIR, "xfs", 0, NULL))
		TH_LOG("mount %s %s: %s", src, XFS_DIR, strerror(errno));
}

static long aio_syscall_setup(unsigned int nr, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, nr, ctx);
}

/*
 * Aligned O_DIRECT writes hold XFS's iolock only while they are submitted
 * and complete later; map_blocks does not wait for them. device_map waits
 * for direct I/O in flight (inode_dio_wait) once it holds the layout lease:
 * a window staged while asynchronous direct writes are in flight, and not
 * revoked, holds what they wrote. Each round preallocates the file
 * (unwritten extents: until a write's completion converts them, map_blocks
 * reports them unwritten, which stages zeros) and maps it while 8 libaio
 * writes of 512 KiB are in flight; sampled pages read through the device
 * must hold the new bytes.
 */
TEST_F(scratch, direct_write_in_flight_is_not_staged_stale)
{
	const size_t size = 4 << 20, piece = 512 << 10;
	const int rounds = 6, pieces = size / piece;
	const size_t sample[] = { 0, 127, 255, 383, 511, 639, 767, 1023 };
	int r, i, served = 0;
	char path[256];
	unsigned char *data;
	void *map;
	int dev, fd, dfd;

	dev = open_importer();
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/dio.%d", getpid());
	scratch_file(&self->s, "%s", path);
	ASSERT_EQ(0, make_pattern_file(path, size, 40));
	ASSERT_EQ(0, posix_memalign((void **)&data, 4096, size));
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	dfd = open(path, O_WRONLY | O_DIRECT);
	ASSERT_LE(0, dfd);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, map);

	for (r = 0; r < rounds; r++) {
		unsigned int seed = 41 + r;
		struct iocb cbs[8], *cbp[8];
		struct io_event ev[8];
		aio_context_t ctx = 0;
		struct p2pmap_status st = { 0 };
		struct p2pmap_map m;
		int got = 0, mapped;
		size_t k;

		for (k = 0; k < size; k++)
			data[k] = pattern_byte(k, seed);
		ASSERT_EQ(0, ftruncate(dfd, 0));
		ASSERT_EQ(0, fallocate(dfd, 0, 0, size));
		ASSERT_EQ(0, aio_syscall_setup(pieces, &ctx));
		for (i = 0; i < pieces; i++) {
			memset(&cbs[i], 0, sizeof(cbs[i]));
			cbs[i].aio_fildes = dfd;
			cbs[i].aio_lio_opcode = IOCB_CMD_PWRITE;
			cbs[i].aio_buf = (uintptr_t)(data + i * piece);
			cbs[i].aio_nbytes = piece;
			cbs[i].aio_offset = i * piece;
			cbp[i] = &cbs[i];
		}
		ASSERT_EQ(pieces, syscall(SYS_io_submit, ctx, pieces, cbp));
		/* while they are in flight */
		m = map_req(map, size, P2PMAP_MAP_NO_FALLBACK);
		mapped = !ioctl(dev, P2PMAP_IOC_MAP, &m);
		while (got < pieces) {
			long n = syscall(SYS_io_getevents, ctx, 1, pieces - got, ev, NULL);

			ASSERT_LT(0, n);
			for (i = 0; i < n; i++)
				ASSERT_EQ((long long)piece, (long long)ev[i].res);
			got += n;
		}
		syscall(SYS_io_destroy, ctx);
		if (!mapped) {
			TH_LOG("round %d: MAP refused (%s)", r, strerror(errno));
			continue;
		}
		st.handle = m.handle;
		ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
		if (!st.revoked) {
			served++;
			for (i = 0; i < (int)(sizeof(sample) / sizeof(sample[0])); i++) {
				unsigned char buf[64];
				uint64_t off = sample[i] * 4096 + 100;

				ASSERT_EQ(0, importer_read(dev, m.handle, off, sizeof(buf), buf));
				EXPECT_EQ(0, check_pattern(buf, off, sizeof(buf), seed))
					TH_LOG("round %d: page %zu holds bytes from before the direct write",
					       r, sample[i]);
			}
		}
		EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle));
	}
	TH_LOG("%d of %d rounds served peer to peer and checked", served, rounds);
	munmap(map, size);
	free(data);
	close(dfd);
	close(fd);
	unlink(path);
	close(dev);
}

/*
 * A lease taken while a lease breaker sleeps is never broken by it:
 * __break_lease() calls lm_break() once per lease, then only waits. 64
 * files are mapped by threads that map again and again, without pause,
 * also while their window is revoked; 64 truncates, one per file, start at
 * once. Every truncate must finish while the threads go on mapping (patch 6
 * refuses new leases while a breaker waits). Before, a thread that got a
 * new lease between the release and the breaker's rescan kept the truncate
 * waiting for as long as it kept mapping (a 16-slot, 100 ms cool-down
 * guessed at it).
 */
#define BREAK_FILES 64

struct remapper {
	char path[256];
	pthread_t thread;
	pthread_t truncater;
	volatile int *stop;
	volatile int truncated;
	volatile int start;
	int maps;
};

static void *remap_loop(void *arg)
{
	struct remapper *r = arg;
	const size_t size = 2 * 4096;
	uint32_t held = 0;
	int dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	int fd = open(r->path, O_RDONLY);
	void *map = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

	if (dev < 0 || map == MAP_FAILED)
		return NULL;
	while (!*r->stop) {
		struct p2pmap_map m = map_req(map, size, P2PMAP_MAP_NO_FALLBACK);

		if (ioctl(dev, P2PMAP_IOC_MAP, &m))
			continue;
		r->maps++;
		if (held)
			ioctl(dev, P2PMAP_IOC_UNMAP, &held);
		held = m.handle;
	}
	if (held)
		ioctl(dev, P2PMAP_IOC_UNMAP, &held);
	munmap(map, size);
	close(fd);
	close(dev);
	return NULL;
}

static volatile int break_go;

static void *truncate_one(void *arg)
{
	struct remapper *r = arg;

	while (!break_go)
		sched_yield();
	if (!truncate(r->path, 4096))
		r->truncated = 1;
	return NULL;
}

/*
 * Bounds (hangs, not budgets): measured 33 s for the whole test on the
 * 2-core machine; each phase gets 240 s, the harness 900 s.
 */
TEST_F_TIMEOUT(importer, lease_breaks_of_64_inodes_while_remapping, 900)
{
	static struct remapper rm[BREAK_FILES];
	volatile int stop = 0;
	int i, done = 0, t;
	double t0 = now_s();

	for (i = 0; i < BREAK_FILES; i++) {
		snprintf(rm[i].path, sizeof(rm[i].path), XFS_DIR "/brk.%d.%d", getpid(), i);
		scratch_file(&self->s, "%s", rm[i].path);
		ASSERT_EQ(0, make_pattern_file(rm[i].path, 2 * 4096, i));
		rm[i].stop = &stop;
		rm[i].truncated = 0;
		rm[i].maps = 0;
		ASSERT_EQ(0, pthread_create(&rm[i].thread, NULL, remap_loop, &rm[i]));
	}
	/* every file mapped at least once */
	for (t = 0; t < 240 * 100; t++) {
		for (i = 0; i < BREAK_FILES && rm[i].maps; i++)
			;
		if (i == BREAK_FILES)
			break;
		usleep(10000);
	}
	ASSERT_EQ(BREAK_FILES, i) TH_LOG("file %d never mapped", i);
	TH_LOG("all %d files mapped after %.1f s", BREAK_FILES, now_s() - t0);
	t0 = now_s();
	for (i = 0; i < BREAK_FILES; i++)
		ASSERT_EQ(0, pthread_create(&rm[i].truncater, NULL, truncate_one, &rm[i]));
	break_go = 1;
	/* the truncates must end while the threads still map */
	for (t = 0; t < 240 * 100; t++) {
		for (i = 0, done = 0; i < BREAK_FILES; i++)
			done += rm[i].truncated;
		if (done == BREAK_FILES)
			break;
		usleep(10000);
	}
	EXPECT_EQ(BREAK_FILES, done) TH_LOG("%d truncates still waiting on a lease", BREAK_FILES - done);
	TH_LOG("%d truncates done after %.1f s", done, now_s() - t0);
	stop = 1;
	for (i = 0; i < BREAK_FILES; i++) {
		pthread_join(rm[i].thread, NULL);
		pthread_join(rm[i].truncater, NULL);
		unlink(rm[i].path);
	}
	EXPECT_EQ(0, wait_stat("windows_live", 0, 60));
}

TEST_HARNESS_MAIN
