// SPDX-License-Identifier: GPL-2.0
/*
 * Faults under live device mappings (issue 17, part 2): an XFS forced
 * shutdown and a frozen filesystem, each with a mapping the device is
 * reading and with a window nobody claimed, media errors while p2pmap
 * stages blocks into the CMB (CONFIG_FAIL_MAKE_REQUEST) and failed slab
 * allocations on every path of a map (CONFIG_FAILSLAB). Each must end in
 * a clear errno to the importer and a counted reason, with nothing leaked
 * (windows, CMB, the mount), nothing hung and nothing lost. And the
 * importer's own faults: a DMA transfer that times out (the engine is
 * reset, not disabled) and the unbind of its PCI function while a process
 * reads through it (its mappings are revoked first).
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p (whose device this test
 * unmounts and mounts again), p2pmap.ko at $P2PMAP_ROOT, xfs_io,
 * /sys/kernel/debug/fail_make_request and failslab.
 */
#define _GNU_SOURCE
#include <dirent.h>
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
#include <sys/wait.h>
#include <linux/fs.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define XFS_DIR "/mnt/p2p"
#define SIZE (8 * 4096)
#define FAIL_MAKE_REQUEST "/sys/kernel/debug/fail_make_request"
#define FAILSLAB "/sys/kernel/debug/failslab"
#define IMPORTER_DRV "/sys/bus/pci/drivers/p2pmap_importer"

/*
 * Measured: each test takes under 15 s (TCG, KASAN kernel), most of it the
 * 5 s expiry of an unclaimed window and the mount after a shutdown (log
 * recovery); 300 s only bounds a hang.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 300



/*
 * The names of the refused_* counters that are above their value in
 * @before (the stats file as read then), space-separated, in @out.
 */
static void moved_refusals(const char *before, char *out, size_t len)
{
	char line[256], name[128];
	unsigned long long now, then;
	FILE *f = fopen("/sys/kernel/debug/p2pmap/stats", "r");
	const char *p;

	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "refused_", 8) || sscanf(line, "%127s %llu", name, &now) != 2)
			continue;
		p = strstr(before, name);
		if (!p || sscanf(p + strlen(name), " %llu", &then) != 1 || now > then)
			snprintf(out + strlen(out), len - strlen(out), "%s ", name + 8);
	}
	fclose(f);
}

/* The stats file, in @buf. */
static void read_stats(char *buf, size_t len)
{
	FILE *f = fopen("/sys/kernel/debug/p2pmap/stats", "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = 0;
}



/* Writes @val to the attribute @name of the fault-injection dir @dir. */
static int inject_attr(const char *dir, const char *name, const char *val)
{
	char path[256];
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ret = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -1;
	close(fd);
	return ret;
}

/* Stops this thread's injected failures; the write itself may be failed once. */
static int thread_fail_off(void)
{
	int i;

	for (i = 0; i < 3; i++)
		if (!write_knob("/proc/thread-self/make-it-fail", 0))
			return 0;
	return -1;
}

/* A mapped file of the test: path, descriptor, mapping. */
struct tfile {
	char path[256];
	int fd;
	void *map;
};

/*
 * Makes every bio to block device @name fail (fail_make_request; with
 * @task_filter "Y" only those of tasks with make-it-fail set); @knob gets
 * the disk's make-it-fail path, for the teardown to clear. 0 if set.
 */
static int fail_disk_requests(char *knob, size_t len, const char *name, const char *task_filter)
{
	if (inject_attr(FAIL_MAKE_REQUEST, "task-filter", task_filter) ||
	    inject_attr(FAIL_MAKE_REQUEST, "interval", "1") ||
	    inject_attr(FAIL_MAKE_REQUEST, "times", "-1") ||
	    inject_attr(FAIL_MAKE_REQUEST, "verbose", "0") ||
	    inject_attr(FAIL_MAKE_REQUEST, "probability", "100"))
		return -1;
	snprintf(knob, len, "/sys/class/block/%s/make-it-fail", name);
	return write_knob(knob, 1);
}

FIXTURE(fault)
{
	int dev;
	char src[256];
	struct tfile a, b, c;
	uint64_t live;		/* windows_live before the test */
	int frozen;
	int shut_down;		/* XFS shut down and not mounted again yet */
	char fail_disk[256];	/* make-it-fail set on this sysfs file */
	int failslab;		/* failslab armed */
	char unbound[64];	/* the edu function this test unbound */
	struct scratch s;
};

/* Creates @t (pattern @seed) unless @exists, opens and maps it. */
static int tfile_open(struct scratch *s, struct tfile *t, const char *name, unsigned int seed,
		      int exists)
{
	snprintf(t->path, sizeof(t->path), XFS_DIR "/%s.%d", name, getpid());
	scratch_file(s, "%s", t->path);
	if (!exists && make_pattern_file(t->path, SIZE, seed))
		return -1;
	t->fd = open(t->path, O_RDONLY);
	if (t->fd < 0)
		return -1;
	t->map = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, t->fd, 0);
	return t->map == MAP_FAILED ? -1 : 0;
}

static void tfile_close(struct tfile *t)
{
	if (t->map && t->map != MAP_FAILED)
		munmap(t->map, SIZE);
	if (t->fd > 0)
		close(t->fd);
	t->map = NULL;
	t->fd = -1;
}

FIXTURE_SETUP(fault)
{
	ASSERT_EQ(0, ensure_p2pmap_loaded());
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev) TH_LOG("open %s: %s", P2PMAP_IMPORTER_DEV, strerror(errno));
	ASSERT_EQ(0, mount_source(XFS_DIR, self->src, sizeof(self->src)));
	/* The tests unmount it; the teardown mounts it again if they fail. */
	scratch_mount(&self->s, XFS_DIR, self->src, "xfs");
	self->live = p2pmap_stat("windows_live");
	ASSERT_NE(UINT64_MAX, self->live);
	ASSERT_EQ(0, tfile_open(&self->s, &self->a, "fault_a", 11, 0));
	ASSERT_EQ(0, tfile_open(&self->s, &self->b, "fault_b", 12, 0));
	ASSERT_EQ(0, tfile_open(&self->s, &self->c, "fault_c", 13, 0));
	sync();
}

FIXTURE_TEARDOWN(fault)
{
	int fd;

	if (self->fail_disk[0]) {
		if (write_knob("/proc/thread-self/make-it-fail", 0) ||
		    write_knob(self->fail_disk, 0) ||
		    write_knob(FAIL_MAKE_REQUEST "/probability", 0))
			TH_LOG("could not stop the injected media errors");
	}
	if (self->failslab && (thread_fail_off() ||
			       inject_attr(FAILSLAB, "probability", "0")))
		TH_LOG("could not stop the injected allocation failures");
	if (self->frozen) {
		fd = open(XFS_DIR, O_RDONLY);
		if (fd < 0 || ioctl(fd, FITHAW, 0))
			TH_LOG("could not thaw %s", XFS_DIR);
		if (fd >= 0)
			close(fd);
	}
	if (self->unbound[0] && access(P2PMAP_IMPORTER_DEV, F_OK) &&
	    inject_attr(IMPORTER_DRV, "bind", self->unbound))
		TH_LOG("could not bind %s to the importer again", self->unbound);
	tfile_close(&self->a);
	tfile_close(&self->b);
	tfile_close(&self->c);
	/* A shut-down XFS stays mounted, unusable: mount it again. */
	if (self->shut_down && umount_retry(XFS_DIR))
		TH_LOG("could not unmount the shut-down %s", XFS_DIR);
	if (!access("/sys/module/p2pmap", F_OK) &&
	    write_knob("/sys/kernel/debug/p2pmap/inject_retry", 0))
		TH_LOG("could not reset inject_retry");
	close(self->dev);
	if (scratch_release(&self->s))
		TH_LOG("could not release what the test created");
}

/* Maps @t's whole file peer to peer; the handle in *@handle. */
static int map_p2p(int dev, struct tfile *t, uint32_t *handle)
{
	struct p2pmap_map m = map_req(t->map, SIZE, P2PMAP_MAP_NO_FALLBACK);

	if (ioctl(dev, P2PMAP_IOC_MAP, &m))
		return -errno;
	*handle = m.handle;
	return m.path == P2PMAP_PATH_P2P ? 0 : -EPROTO;
}

/* Leaves a window of @t that nobody claims: every slow path is retried
 * until the importer gives up (EBUSY); the last one's window stays. */
static int abandon_window(int dev, struct tfile *t)
{
	struct p2pmap_map m = map_req(t->map, SIZE, P2PMAP_MAP_NO_FALLBACK);
	int ret;

	if (write_knob("/sys/kernel/debug/p2pmap/inject_retry", 1000))
		return -1;
	ret = ioctl(dev, P2PMAP_IOC_MAP, &m) == -1 && errno == EBUSY ? 0 : -1;
	if (write_knob("/sys/kernel/debug/p2pmap/inject_retry", 0))
		return -1;
	return ret;
}

/* One byte of @t through the device equals the file's. */
static int device_byte_ok(int dev, uint32_t handle, uint64_t off, unsigned int seed)
{
	unsigned char b;

	return !importer_read(dev, handle, off, 1, &b) && b == pattern_byte(off, seed);
}

/*
 * XFS shuts down (as on a metadata I/O error) while the device reads file
 * A and an unclaimed window of B waits: new mappings are refused with an
 * errno and a counted reason, no p2pmap state pins the dead filesystem
 * (umount succeeds, every window is freed), and after the mount (log
 * recovery) the files read back whole, through the device too.
 */
TEST_F(fault, xfs_shutdown_with_live_and_unclaimed_windows_then_umount)
{
	char before[4096], moved[256];
	uint32_t ha, hc;
	uint64_t refused;
	int ret;

	ASSERT_EQ(0, map_p2p(self->dev, &self->a, &ha));
	ASSERT_EQ(0, abandon_window(self->dev, &self->b));
	EXPECT_EQ(self->live + 2, p2pmap_stat("windows_live"));
	EXPECT_TRUE(device_byte_ok(self->dev, ha, 4096 + 7, 11));

	ASSERT_EQ(0, system("xfs_io -x -c shutdown " XFS_DIR)) TH_LOG("xfs_io shutdown failed");
	self->shut_down = 1;
	/* A new mapping: refused, with an errno, counted. */
	refused = refused_total();
	read_stats(before, sizeof(before));
	ret = map_p2p(self->dev, &self->c, &hc);
	EXPECT_NE(0, ret);
	EXPECT_LT(refused, refused_total()) TH_LOG("the refusal was not counted");
	moved_refusals(before, moved, sizeof(moved));
	/* Not "busy, try again": the filesystem is gone until mounted again. */
	EXPECT_EQ(-EIO, ret) TH_LOG("map after shutdown: %s", strerror(-ret));
	EXPECT_STREQ("fs_error ", moved);
	/* The live window still holds the file's bytes (nothing changed them). */
	EXPECT_TRUE(device_byte_ok(self->dev, ha, 3 * 4096 + 1, 11));

	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &ha));
	tfile_close(&self->a);
	tfile_close(&self->b);
	tfile_close(&self->c);
	/* the unclaimed window expires (5 s) */
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120))
		TH_LOG("windows_live %llu, expected %llu",
		       (unsigned long long)p2pmap_stat("windows_live"),
		       (unsigned long long)self->live);
	ASSERT_EQ(0, umount_retry(XFS_DIR)) TH_LOG("umount: %s", strerror(errno));
	ASSERT_EQ(0, mount(self->src, XFS_DIR, "xfs", 0, NULL)) TH_LOG("mount: %s", strerror(errno));
	self->shut_down = 0;

	/* Nothing lost: A, synced before the shutdown, read through the device. */
	ASSERT_EQ(0, tfile_open(&self->s, &self->a, "fault_a", 11, 1));
	ASSERT_EQ(0, map_p2p(self->dev, &self->a, &ha));
	EXPECT_TRUE(device_byte_ok(self->dev, ha, 0, 11));
	EXPECT_TRUE(device_byte_ok(self->dev, ha, SIZE - 1, 11));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &ha));
}

/*
 * The filesystem is frozen (fsfreeze, as for a snapshot) while the device
 * reads file A and an unclaimed window of B waits: the device keeps
 * reading, a new read mapping of C is served or refused with an errno but
 * never hangs, the unclaimed window still expires, and after the thaw a
 * truncate of A revokes it as usual.
 */
TEST_F(fault, freeze_with_live_and_unclaimed_windows)
{
	struct p2pmap_status st = { 0 };
	uint32_t ha, hc;
	int fd, ret;

	ASSERT_EQ(0, map_p2p(self->dev, &self->a, &ha));
	ASSERT_EQ(0, abandon_window(self->dev, &self->b));
	fd = open(XFS_DIR, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, FIFREEZE, 0)) TH_LOG("FIFREEZE: %s", strerror(errno));
	self->frozen = 1;

	EXPECT_TRUE(device_byte_ok(self->dev, ha, 5 * 4096 + 3, 11));
	ret = map_p2p(self->dev, &self->c, &hc);
	TH_LOG("map while frozen: %s", ret ? strerror(-ret) : "served");
	if (!ret) {
		EXPECT_TRUE(device_byte_ok(self->dev, hc, 2 * 4096 + 9, 13));
		EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hc));
	}
	/* B's window expires while frozen: releasing it writes nothing. */
	EXPECT_EQ(0, wait_stat("windows_live", self->live + 1, 120))
		TH_LOG("windows_live %llu, expected %llu",
		       (unsigned long long)p2pmap_stat("windows_live"),
		       (unsigned long long)self->live + 1);

	ASSERT_EQ(0, ioctl(fd, FITHAW, 0)) TH_LOG("FITHAW: %s", strerror(errno));
	self->frozen = 0;
	close(fd);
	ASSERT_EQ(0, truncate(self->a.path, 4096));
	st.handle = ha;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &ha));
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120));
}

/*
 * The NVMe media fails every read p2pmap issues to stage file C into the
 * CMB (fail_make_request on the XFS device, filtered to this thread, which
 * is where p2pmap submits its bios): the mapping is refused with EIO and
 * counted as read_failed, the half-staged window is freed (windows and CMB
 * bytes back where they were), the device never sees the unread window,
 * and once the media is healthy again the same mapping is served with the
 * file's bytes. Mapping A, staged before the errors, keeps reading right.
 */
TEST_F(fault, media_error_while_staging)
{
	char before[4096], moved[256], name[128];
	uint64_t cmb_before;
	uint32_t ha, hc;
	const char *dev;
	int ret;

	dev = strrchr(self->src, '/');
	ASSERT_NE(NULL, dev);
	snprintf(name, sizeof(name), "%s", dev + 1);
	ASSERT_EQ(0, map_p2p(self->dev, &self->a, &ha));
	cmb_before = p2pmap_stat("cmb_bytes_used");

	/* Every bio of this thread to the XFS device fails, no others. */
	ASSERT_EQ(0, fail_disk_requests(self->fail_disk, sizeof(self->fail_disk), name, "Y"));
	ASSERT_EQ(0, write_knob("/proc/thread-self/make-it-fail", 1));

	read_stats(before, sizeof(before));
	ret = map_p2p(self->dev, &self->c, &hc);
	ASSERT_EQ(0, write_knob("/proc/thread-self/make-it-fail", 0));
	EXPECT_EQ(-EIO, ret) TH_LOG("map under media errors: %s", strerror(-ret));
	moved_refusals(before, moved, sizeof(moved));
	EXPECT_STREQ("read_failed ", moved);
	/* Nothing of C's window is left: freed, not leaked to a later map. */
	EXPECT_EQ(self->live + 1, p2pmap_stat("windows_live"));
	EXPECT_EQ(cmb_before, p2pmap_stat("cmb_bytes_used"));
	/* Another thread's I/O was not failed: A still reads right. */
	EXPECT_TRUE(device_byte_ok(self->dev, ha, 6 * 4096 + 5, 11));

	/* Healthy media: the same range is served with the file's bytes. */
	ASSERT_EQ(0, map_p2p(self->dev, &self->c, &hc));
	EXPECT_TRUE(device_byte_ok(self->dev, hc, 0, 13));
	EXPECT_TRUE(device_byte_ok(self->dev, hc, SIZE - 1, 13));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &hc));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &ha));
}

/*
 * The media fails while p2pmap writes a write window back (every bio to
 * the XFS device fails, the write-back worker's too): the loss is counted
 * (write_back_failed) and logged, fsync() returns EIO, nothing hangs, and
 * after a remount the file is as before the mapping (empty: the unwritten
 * extents the mapping allocated were never committed).
 */
TEST_F(fault, media_error_during_write_back)
{
	uint64_t lost = p2pmap_stat("write_back_failed");
	char name[128], path[256], buf[4096];
	struct p2pmap_map m;
	struct p2pmap_rw rw;
	const char *dev;
	struct stat sb;
	void *p;
	int fd;

	dev = strrchr(self->src, '/');
	ASSERT_NE(NULL, dev);
	snprintf(name, sizeof(name), "%s", dev + 1);
	snprintf(path, sizeof(path), XFS_DIR "/fault_w");
	scratch_file(&self->s, "%s", path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, fd);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, fsync(fd));
	m = map_req(p, SIZE, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m)) TH_LOG("write MAP: %s", strerror(errno));
	ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
	memset(buf, 0x77, sizeof(buf));
	rw = (struct p2pmap_rw){ .handle = m.handle, .len = sizeof(buf), .buf = (uintptr_t)buf };
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_WRITE, &rw));

	/* Every bio to the XFS device fails from here, whoever submits it. */
	ASSERT_EQ(0, fail_disk_requests(self->fail_disk, sizeof(self->fail_disk), name, "N"));
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, wait_stat("write_back_failed", lost + 1, 120));
	ASSERT_EQ(0, write_knob(self->fail_disk, 0));
	ASSERT_EQ(0, inject_attr(FAIL_MAKE_REQUEST, "probability", "0"));
	EXPECT_EQ(-1, fsync(fd));
	EXPECT_EQ(EIO, errno);
	munmap(p, SIZE);
	close(fd);

	/* Nothing of the window was committed. */
	tfile_close(&self->a);
	tfile_close(&self->b);
	tfile_close(&self->c);
	ASSERT_EQ(0, umount_retry(XFS_DIR)) TH_LOG("umount: %s", strerror(errno));
	ASSERT_EQ(0, mount(self->src, XFS_DIR, "xfs", 0, NULL)) TH_LOG("mount: %s", strerror(errno));
	ASSERT_EQ(0, stat(path, &sb));
	EXPECT_EQ(0, sb.st_size);
}

/*
 * Every slab allocation on the path of a MAP fails, one at a time: the
 * importer's, the helper's (patch 0011), p2pmap's, the lease's and the
 * filesystem's. failslab (filtered to this thread) skips "space" bytes of
 * allocations and fails the next one, once; the test raises "space" until
 * a MAP completes without reaching an injected failure. Each MAP must be
 * served or fail with an errno of the ABI's list, never crash or warn,
 * and leave nothing behind: every window is freed (an unclaimed one
 * expires) and, with no injection, the file is served with its bytes.
 */
TEST_F(fault, allocation_failures_on_every_path_of_a_map)
{
	int iter, injected = 0, served = 0, enomem = 0, other = 0, done = 0;
	uint64_t cmb_before = p2pmap_stat("cmb_bytes_used");
	unsigned int space = 0;
	char val[32], times[16];
	uint32_t h;
	int ret, fd;

	ASSERT_EQ(0, inject_attr(FAILSLAB, "task-filter", "Y"));
	ASSERT_EQ(0, inject_attr(FAILSLAB, "ignore-gfp-wait", "N"));
	ASSERT_EQ(0, inject_attr(FAILSLAB, "interval", "1"));
	ASSERT_EQ(0, inject_attr(FAILSLAB, "verbose", "0"));
	ASSERT_EQ(0, inject_attr(FAILSLAB, "probability", "100"));
	self->failslab = 1;

	for (iter = 0; iter < 400 && !done; iter++) {
		snprintf(val, sizeof(val), "%u", space);
		ASSERT_EQ(0, inject_attr(FAILSLAB, "space", val));
		ASSERT_EQ(0, inject_attr(FAILSLAB, "times", "1"));
		ASSERT_EQ(0, write_knob("/proc/thread-self/make-it-fail", 1));
		ret = map_p2p(self->dev, &self->c, &h);
		ASSERT_EQ(0, thread_fail_off());
		fd = open(FAILSLAB "/times", O_RDONLY);
		ASSERT_LE(0, fd);
		memset(times, 0, sizeof(times));
		ASSERT_LT(0, read(fd, times, sizeof(times) - 1));
		close(fd);
		/* "times" still 1: this MAP reached no injected failure. */
		done = atoi(times) == 1 && !ret;
		injected += atoi(times) == 0;
		if (!ret) {
			served++;
			EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
		} else if (ret == -ENOMEM) {
			enomem++;
		} else {
			other++;
			TH_LOG("space %u: map failed with %s", space, strerror(-ret));
			EXPECT_TRUE(ret == -EIO || ret == -EBUSY || ret == -EFAULT)
				TH_LOG("not an errno of the ABI's list for a failed allocation");
		}
		space += space < 4096 ? 32 : 512;
	}
	ASSERT_EQ(0, inject_attr(FAILSLAB, "probability", "0"));
	self->failslab = 0;
	TH_LOG("%d MAPs, %d with an injected failure: %d served, %d ENOMEM, %d other",
	       iter, injected, served, enomem, other);
	EXPECT_TRUE(done) TH_LOG("400 MAPs and every one still reached a failure");
	EXPECT_LT(0, enomem);
	/* Nothing left behind: unclaimed windows expire (5 s). */
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 120))
		TH_LOG("windows_live %llu, expected %llu",
		       (unsigned long long)p2pmap_stat("windows_live"),
		       (unsigned long long)self->live);
	EXPECT_EQ(cmb_before, p2pmap_stat("cmb_bytes_used"));
	ASSERT_EQ(0, map_p2p(self->dev, &self->c, &h));
	EXPECT_TRUE(device_byte_ok(self->dev, h, 0, 13));
	EXPECT_TRUE(device_byte_ok(self->dev, h, SIZE - 1, 13));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
}

/* The PCI address of the function bound to the importer, in @bdf. */
static int importer_function(char *bdf, size_t len)
{
	DIR *d = opendir(IMPORTER_DRV);
	struct dirent *e;
	int ret = -1;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strchr(e->d_name, ':') && strlen(e->d_name) < len) {
			strcpy(bdf, e->d_name);
			ret = 0;
		}
	closedir(d);
	return ret;
}

/*
 * A DMA transfer that times out while the engine still runs it (injected:
 * declared timed out as soon as it started; edu completes a transfer on a
 * 100 ms timer). The importer resets the engine (bus mastering off until
 * it is idle, then on again) instead of disabling it: the READ that met
 * the timeout fails with ETIMEDOUT, the next ones return the file's
 * bytes.
 */
TEST_F(fault, timed_out_dma_engine_is_reset)
{
	unsigned char buf[4096];
	uint32_t h, n;

	ASSERT_EQ(0, map_p2p(self->dev, &self->a, &h));
	n = 1;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_INJECT_TIMEOUT, &n));
	EXPECT_EQ(-1, importer_read(self->dev, h, 0, sizeof(buf), buf));
	EXPECT_EQ(ETIMEDOUT, errno);
	/* The engine works again, on the same mapping and on another. */
	ASSERT_EQ(0, importer_read(self->dev, h, 0, sizeof(buf), buf)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, check_pattern(buf, 0, sizeof(buf), 11));
	/* Two timeouts in a row: both transfers of one chunk. */
	n = 2;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_INJECT_TIMEOUT, &n));
	EXPECT_EQ(-1, importer_read(self->dev, h, 4096, 1, buf));
	EXPECT_EQ(ETIMEDOUT, errno);
	EXPECT_EQ(-1, importer_read(self->dev, h, 4096, 1, buf));
	EXPECT_EQ(ETIMEDOUT, errno);
	EXPECT_TRUE(device_byte_ok(self->dev, h, SIZE - 1, 11));
	n = 17;
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_INJECT_TIMEOUT, &n));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &h));
}

/*
 * The importer's PCI function is unbound while a process reads through a
 * peer-to-peer mapping and a fallback one (anonymous memory) is live: the unbind waits for
 * the READ in progress, then revokes both mappings (p2pmap sees the
 * device_unmap) before it returns; every later ioctl of the open file
 * fails with ENODEV, the reader ends, nothing hangs. Bound again, the
 * function serves the file as before.
 */
TEST_F(fault, importer_unbind_revokes_its_mappings)
{
	uint64_t unmaps, unmatched;
	struct p2pmap_status st;
	struct p2pmap_map m;
	uint32_t h, hanon;
	int sync_pipe[2], status, dev;
	unsigned char *anon;
	char byte = 0;
	pid_t reader;

	ASSERT_EQ(0, importer_function(self->unbound, sizeof(self->unbound)));
	ASSERT_EQ(0, map_p2p(self->dev, &self->a, &h));

	/* A reader that says when it read once, then reads until refused. */
	ASSERT_EQ(0, pipe(sync_pipe));
	reader = fork();
	ASSERT_LE(0, reader);
	if (!reader) {
		unsigned char b;
		int first = 1;

		while (!importer_read(self->dev, h, 0, 1, &b)) {
			if (b != pattern_byte(0, 11))
				_exit(2);
			if (first && write(sync_pipe[1], "r", 1) == 1)
				first = 0;
		}
		_exit(errno == ENODEV ? 0 : 3);
	}
	scratch_pid(&self->s, reader);
	ASSERT_EQ(1, read(sync_pipe[0], &byte, 1));
	/* After the fork (which write-protects private anonymous memory). */
	anon = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	memset(anon, 0x5a, SIZE);
	m = map_req(anon, SIZE, 0);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	hanon = m.handle;
	EXPECT_EQ(P2PMAP_PATH_FALLBACK, m.path);
	memset(&st, 0, sizeof(st));
	st.handle = h;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	ASSERT_EQ(1, st.mapped);
	st.handle = hanon;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	ASSERT_EQ(1, st.mapped);
	unmaps = p2pmap_stat("unmap_calls");
	unmatched = p2pmap_stat("unmaps_unmatched");

	/* The unbind returns only after both mappings were revoked. */
	ASSERT_EQ(0, inject_attr(IMPORTER_DRV, "unbind", self->unbound));
	EXPECT_EQ(unmaps + 1, p2pmap_stat("unmap_calls"));
	EXPECT_EQ(unmatched, p2pmap_stat("unmaps_unmatched"));
	EXPECT_NE(0, access(P2PMAP_IMPORTER_DEV, F_OK));
	ASSERT_EQ(reader, waitpid(reader, &status, 0));
	scratch_reaped(&self->s, reader);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("reader status %#x (2: wrong byte, 3: not ENODEV)", status);
	memset(&st, 0, sizeof(st));
	st.handle = hanon;
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(ENODEV, errno);
	m = map_req(self->b.map, SIZE, 0);
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(ENODEV, errno);
	munmap(anon, SIZE);

	/* Bound again: a new open file maps and reads the file. */
	ASSERT_EQ(0, inject_attr(IMPORTER_DRV, "bind", self->unbound));
	dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, map_p2p(dev, &self->b, &h));
	EXPECT_TRUE(device_byte_ok(dev, h, SIZE - 1, 12));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &h));
	close(dev);
	close(sync_pipe[0]);
	close(sync_pipe[1]);
}

TEST_HARNESS_MAIN
