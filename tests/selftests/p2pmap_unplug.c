// SPDX-License-Identifier: GPL-2.0
/*
 * NVMe hot-unplug with live device mappings (run alone, in its own boot:
 * it removes the NVMe controller that holds /mnt/p2p; see
 * tests/guest/run-unplug-tests).
 *
 * The test maps files for the edu device, starts processes that keep
 * mapping and reading through the importer, then asks QEMU (QMP device_del
 * of "nvme0", through scripts/qmp-agent on the host) to unplug the NVMe
 * controller. p2pmap's PCI bus notifier must revoke every window before the
 * nvme driver unbinds: the importer sees its mappings revoked, every window
 * is freed, the load processes see errors but neither they nor the kernel
 * crash or hang. A pinned range (DEVICE_MAP_FLAG_PIN: a dma_buf the edu
 * device imported, whose fd is still open) is revoked the same way: its
 * importer invalidated, its windows freed, the buffer maps no more. A
 * write mapping the device wrote is revoked too and written back (or its
 * loss reported: counted, fsync() EIO) before the controller goes.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define XFS_DIR "/mnt/p2p"
#define LOADERS 2

/*
 * Bound of the removal wait below, in 100 ms steps: it ends as soon as
 * the function is gone (measured: about 5.5 s after device_del, pciehp's
 * 5 s attention-button delay included; the QMP reply comes within 0.2 s),
 * so a generous bound costs nothing; 300 s, well within the test's
 * timeout.
 */
#define REMOVAL_WAIT_STEPS 3000

/* PCI address of the NVMe controller, from /sys/block/nvme0n1. */
static int nvme_pci_path(char *out, size_t len)
{
	char link[512];
	ssize_t n = readlink("/sys/class/nvme/nvme0/device", link, sizeof(link) - 1);
	const char *slash;

	if (n < 0)
		return -1;
	link[n] = 0;
	slash = strrchr(link, '/');
	snprintf(out, len, "/sys/bus/pci/devices/%s", slash ? slash + 1 : link);
	return 0;
}

/*
 * A load process: map, read, unmap a file over and over until told to stop.
 * It writes one byte to @ready after its first MAP returned.
 */
static void loader(int id, int ready)
{
	unsigned long rounds = 0, errors = 0;
	const size_t size = 8 * 4096;
	char path[256], buf[4096];
	int dev, fd;
	void *p;

	snprintf(path, sizeof(path), XFS_DIR "/load.%d", id);
	dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	fd = open(path, O_RDONLY);
	if (dev < 0 || fd < 0)
		_exit(2);
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		_exit(2);
	for (;;) {
		struct p2pmap_map m = map_req(p, size, P2PMAP_MAP_NO_FALLBACK);

		int ret = ioctl(dev, P2PMAP_IOC_MAP, &m);

		if (++rounds == 1 && write(ready, "r", 1) != 1)
			_exit(3);
		if (ret) {
			errors++;
			usleep(1000);
			continue;
		}
		if (importer_read(dev, m.handle, (rounds % 8) * 4096, 64, buf) &&
		    errno != ESTALE)
			errors++;
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	}
}

FIXTURE(unplug) {};
FIXTURE_SETUP(unplug) {}
FIXTURE_TEARDOWN(unplug) {}

/*
 * pciehp alone waits 5 s after the attention button (measured: removed
 * 5.4 s after device_del; the boot's whole command takes under 20 s). The
 * bound covers both waits at their limit.
 */
TEST_F_TIMEOUT(unplug, device_del_of_the_nvme_with_live_mappings, 900)
{
	const size_t size = 64 * 4096;
	char pci[600], reply[512], path[256], buf[64];
	struct p2pmap_status st = { 0 };
	struct p2pmap_import imp = { 0 };
	struct p2pmap_map pm;
	uint64_t removals, pins_revoked, written, lost;
	struct p2pmap_map wm;
	char wpath[256];
	int wfd;
	void *wp;
	char ppath[256];
	int pfd, buf_fd;
	void *pp;
	pid_t pids[LOADERS];
	struct p2pmap_map m;
	struct stat sb;
	int dev, fd, i, status, ready[2];
	void *p;
	char c;

	ASSERT_EQ(0, ensure_p2pmap_loaded());
	ASSERT_EQ(0, nvme_pci_path(pci, sizeof(pci)));
	TH_LOG("NVMe controller: %s", pci);
	dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, dev);
	snprintf(path, sizeof(path), XFS_DIR "/unplug.%d", getpid());
	ASSERT_EQ(0, make_pattern_file(path, size, 5));
	for (i = 0; i < LOADERS; i++) {
		char lp[256];

		snprintf(lp, sizeof(lp), XFS_DIR "/load.%d", i);
		ASSERT_EQ(0, make_pattern_file(lp, 8 * 4096, i));
	}
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	m = map_req(p, size, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &m));
	ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
	ASSERT_EQ(0, importer_read(dev, m.handle, size - sizeof(buf), sizeof(buf), buf));
	ASSERT_EQ(0, check_pattern(buf, size - sizeof(buf), sizeof(buf), 5));
	removals = p2pmap_stat("revocations_device_removal");

	/* A pinned range of another file, its dma_buf also open as an fd. */
	ASSERT_EQ(0, write_knob("/sys/kernel/debug/p2pmap/allow_pin", 1));
	snprintf(ppath, sizeof(ppath), XFS_DIR "/pinned.%d", getpid());
	ASSERT_EQ(0, make_pattern_file(ppath, 8 * 4096, 9));
	pfd = open(ppath, O_RDONLY);
	ASSERT_LE(0, pfd);
	pp = mmap(NULL, 8 * 4096, PROT_READ, MAP_SHARED, pfd, 0);
	ASSERT_NE(MAP_FAILED, pp);
	pm = map_req(pp, 8 * 4096, 0);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP_PIN, &pm)) TH_LOG("MAP_PIN: %s", strerror(errno));
	buf_fd = ioctl(dev, P2PMAP_IOC_PIN_FD, &pm.handle);
	ASSERT_LE(0, buf_fd);
	ASSERT_EQ(0, importer_read(dev, pm.handle, 0, sizeof(buf), buf));
	ASSERT_EQ(0, check_pattern(buf, 0, sizeof(buf), 9));
	munmap(pp, 8 * 4096);
	close(pfd);
	pins_revoked = p2pmap_stat("pins_revoked");

	/* A write mapping of a new file, written by the device and kept. */
	snprintf(wpath, sizeof(wpath), XFS_DIR "/written.%d", getpid());
	wfd = open(wpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, wfd);
	wp = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, wfd, 0);
	ASSERT_NE(MAP_FAILED, wp);
	wm = map_req(wp, 8 * 4096, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_MAP, &wm)) TH_LOG("write MAP: %s", strerror(errno));
	ASSERT_EQ(P2PMAP_PATH_P2P, wm.path);
	memset(buf, 0x5a, sizeof(buf));
	{
		struct p2pmap_rw rw = {
			.handle = wm.handle, .offset = 100, .len = sizeof(buf), .buf = (uintptr_t)buf,
		};

		ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_WRITE, &rw));
	}
	written = p2pmap_stat("written_back");
	lost = p2pmap_stat("write_back_failed");

	ASSERT_EQ(0, pipe(ready));
	for (i = 0; i < LOADERS; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			loader(i, ready[1]);
	}
	/* every loader is mapping before the device goes away */
	for (i = 0; i < LOADERS; i++)
		ASSERT_EQ(1, read(ready[0], &c, 1));

	ASSERT_EQ(0, qmp("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"nvme0\"}}",
			 reply, sizeof(reply))) TH_LOG("QMP: %s", reply);
	/* pciehp waits 5 s after the attention button before it removes */
	for (i = 0; i < REMOVAL_WAIT_STEPS && !stat(pci, &sb); i++)
		usleep(100000);
	ASSERT_NE(0, stat(pci, &sb)) TH_LOG("%s still present after %d s", pci,
					    REMOVAL_WAIT_STEPS / 10);
	TH_LOG("NVMe controller removed after %.1f s", i / 10.0);

	/* the importer saw the revocation; every window is gone */
	st.handle = m.handle;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_EQ(-1, importer_read(dev, m.handle, 0, sizeof(buf), buf));
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(removals + 1, p2pmap_stat("revocations_device_removal"));
	/* the pinned buffer too; it maps no more */
	st.handle = pm.handle;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_EQ(-1, importer_read(dev, pm.handle, 0, sizeof(buf), buf));
	EXPECT_EQ(ESTALE, errno);
	EXPECT_EQ(pins_revoked + 1, p2pmap_stat("pins_revoked"));
	/* the write mapping too: written back before the controller went, or reported lost */
	st.handle = wm.handle;
	ASSERT_EQ(0, ioctl(dev, P2PMAP_IOC_STATUS, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(written + lost + 1,
		  p2pmap_stat("written_back") + p2pmap_stat("write_back_failed"));
	TH_LOG("write mapping at removal: %llu written back, %llu lost",
	       (unsigned long long)(p2pmap_stat("written_back") - written),
	       (unsigned long long)(p2pmap_stat("write_back_failed") - lost));
	if (p2pmap_stat("write_back_failed") != lost)
		EXPECT_EQ(-1, fsync(wfd));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &wm.handle));
	munmap(wp, 8 * 4096);
	close(wfd);
	imp.fd = buf_fd;
	EXPECT_EQ(-1, ioctl(dev, P2PMAP_IOC_IMPORT, &imp));
	EXPECT_EQ(ENODEV, errno);
	/* the windows are free although the dma_buf is still open */
	EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &pm.handle));
	close(buf_fd);

	for (i = 0; i < LOADERS; i++) {
		EXPECT_EQ(0, kill(pids[i], SIGTERM));
		EXPECT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
			TH_LOG("loader %d ended with status %#x", i, status);
	}
	EXPECT_EQ(0, ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, p2pmap_stat("windows_live"));
	EXPECT_EQ(0, p2pmap_stat("cmb_bytes_used"));

	/* device_map now refuses (no CMB) instead of touching the dead device */
	m = map_req(p, size, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(-1, ioctl(dev, P2PMAP_IOC_MAP, &m));
	TH_LOG("MAP after removal: %s", strerror(errno));
	munmap(p, size);
	close(fd);
	close(dev);
	/* the module still unloads cleanly */
	EXPECT_EQ(0, system("rmmod p2pmap_importer && rmmod p2pmap"));
}

TEST_HARNESS_MAIN
