// SPDX-License-Identifier: GPL-2.0
/*
 * DEVICE_MAP_FLAG_PIN: device_map() hands out a dma_buf that owns the
 * range's windows (bindings/p2pmap_pin.c). The edu importer attaches it as
 * a dynamic importer and reads it peer to peer; the mapping outlives the
 * vma and the process that made it; a change of the file revokes it
 * (the importer is invalidated, the windows freed); pinning is refused
 * unless the administrator allows it; p2pmap cannot be unloaded while a
 * pinned buffer exists.
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p, p2pmap loaded.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

/*
 * Bounds for hangs only (a killed test runs no teardown): measured on the
 * 2-core development machine (TCG, KASAN), the longest test reads 16 pages
 * through edu (0.4 s each) and takes about 10 s. 180 s covers a machine
 * several times slower.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 180

#define XFS_DIR "/mnt/p2p"
#define ALLOW_PIN "/sys/kernel/debug/p2pmap/allow_pin"
#define PAGES 16
#define SEED 41

static struct p2pmap_map pin_req(const void *addr, uint64_t len)
{
	return map_req(addr, len, 0);
}

static int read_page_ok(int dev, uint32_t handle, size_t page)
{
	return importer_page_is(dev, handle, page, page, SEED);
}

/* Sends @fd over the unix socket @sock. */
static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 'p';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

FIXTURE(pin)
{
	int dev;
	int fd;
	char path[256];
	void *map;
	uint64_t live;
	struct scratch s;
};

FIXTURE_SETUP(pin)
{
	memset(&self->s, 0, sizeof(self->s));
	self->map = MAP_FAILED;
	self->fd = -1;
	ASSERT_EQ(0, ensure_p2pmap_loaded());
	ASSERT_EQ(0, write_knob(ALLOW_PIN, 1));
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev);
	snprintf(self->path, sizeof(self->path), XFS_DIR "/pin.%d", getpid());
	scratch_file(&self->s, "%s", self->path);
	ASSERT_EQ(0, make_pattern_file_direct(self->path, PAGES * 4096, SEED));
	self->fd = open(self->path, O_RDWR);
	ASSERT_LE(0, self->fd);
	self->map = mmap(NULL, PAGES * 4096, PROT_READ, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	self->live = p2pmap_stat("windows_live");
}

FIXTURE_TEARDOWN(pin)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, PAGES * 4096);
	if (self->fd >= 0)
		close(self->fd);
	close(self->dev);
	EXPECT_EQ(0, write_knob(ALLOW_PIN, 0));
	EXPECT_EQ(0, scratch_release(&self->s));
}

TEST_F(pin, refused_unless_the_administrator_allows_it)
{
	struct p2pmap_map m = pin_req(self->map, PAGES * 4096);
	uint64_t refused;

	ASSERT_EQ(0, write_knob(ALLOW_PIN, 0));
	refused = p2pmap_stat("refused_pin_disabled");
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP_PIN, &m));
	EXPECT_EQ(EOPNOTSUPP, errno);
	EXPECT_EQ(refused + 1, p2pmap_stat("refused_pin_disabled"));
	/* An unpinned mapping of the same range is still served. */
	m = map_req(self->map, PAGES * 4096, P2PMAP_MAP_NO_FALLBACK);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(P2PMAP_PATH_P2P, m.path);
}

/*
 * A child pins the range, hands the dma_buf to the parent over a unix
 * socket, unmaps everything and exits; the parent imports the buffer and
 * reads every byte of the file through it.
 */
TEST_F(pin, outlives_the_vma_and_the_process)
{
	struct p2pmap_import imp = { 0 };
	struct p2pmap_status st;
	uint64_t pins = p2pmap_stat("pins");
	int sv[2], buf_fd, status;
	size_t page;
	pid_t pid;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct p2pmap_map m = pin_req(self->map, PAGES * 4096);
		int fd;

		if (ioctl(self->dev, P2PMAP_IOC_MAP_PIN, &m) || m.path != P2PMAP_PATH_PINNED)
			_exit(10);
		if (read_page_ok(self->dev, m.handle, 3))
			_exit(11);
		fd = ioctl(self->dev, P2PMAP_IOC_PIN_FD, &m.handle);
		if (fd < 0 || send_fd(sv[1], fd))
			_exit(12);
		/* Everything of this process goes: the handle, the vma, the fds. */
		if (ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle))
			_exit(13);
		munmap(self->map, PAGES * 4096);
		_exit(0);
	}
	close(sv[1]);
	buf_fd = recv_fd(sv[0]);
	close(sv[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_LE(0, buf_fd);
	EXPECT_EQ(pins + 1, p2pmap_stat("pins"));

	/* Our own vma goes too: only the dma_buf holds the windows now. */
	ASSERT_EQ(0, munmap(self->map, PAGES * 4096));
	self->map = MAP_FAILED;
	EXPECT_LT(self->live, p2pmap_stat("windows_live"));

	imp.fd = buf_fd;
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_IMPORT, &imp)) TH_LOG("IMPORT: %s", strerror(errno));
	EXPECT_EQ(PAGES * 4096, imp.len);
	ASSERT_EQ(0, importer_status(self->dev, imp.handle, &st));
	EXPECT_EQ(P2PMAP_PATH_PINNED, st.path);
	EXPECT_EQ(1, st.mapped);
	EXPECT_EQ(0, st.revoked);
	for (page = 0; page < PAGES; page++)
		EXPECT_EQ(0, read_page_ok(self->dev, imp.handle, page)) TH_LOG("page %zu", page);

	/* The last reference goes: the windows are freed. */
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &imp.handle));
	close(buf_fd);
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 60));
}

/*
 * A truncate revokes the pinned buffer: the importer is invalidated (it
 * unmaps from its callback), the windows are freed although the dma_buf
 * still exists, and the buffer maps no more.
 */
TEST_F(pin, truncate_revokes_it)
{
	struct p2pmap_map m = pin_req(self->map, PAGES * 4096);
	struct p2pmap_import imp = { 0 };
	struct p2pmap_status st;
	uint64_t revoked = p2pmap_stat("pins_revoked");
	unsigned char b[4096];
	int buf_fd;

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP_PIN, &m)) TH_LOG("MAP_PIN: %s", strerror(errno));
	buf_fd = ioctl(self->dev, P2PMAP_IOC_PIN_FD, &m.handle);
	ASSERT_LE(0, buf_fd);
	ASSERT_EQ(0, read_page_ok(self->dev, m.handle, 5));
	munmap(self->map, PAGES * 4096);
	self->map = MAP_FAILED;

	ASSERT_EQ(0, ftruncate(self->fd, 4096));
	EXPECT_EQ(revoked + 1, p2pmap_stat("pins_revoked"));
	ASSERT_EQ(0, importer_status(self->dev, m.handle, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mapped);
	EXPECT_LE(1, st.invalidations);
	EXPECT_EQ(-1, importer_read(self->dev, m.handle, 0, sizeof(b), b));
	EXPECT_EQ(ESTALE, errno);
	/* Freed with the dma_buf still open: nothing maps it. */
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 60));
	imp.fd = buf_fd;
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_IMPORT, &imp));
	EXPECT_EQ(ENODEV, errno);
	close(buf_fd);
}

/* A write() into the range revokes it the same way. */
TEST_F(pin, write_revokes_it)
{
	struct p2pmap_map m = pin_req(self->map, PAGES * 4096);
	struct p2pmap_status st;
	char x = 'x';

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP_PIN, &m)) TH_LOG("MAP_PIN: %s", strerror(errno));
	ASSERT_EQ(1, pwrite(self->fd, &x, 1, 7 * 4096 + 5));
	ASSERT_EQ(0, importer_status(self->dev, m.handle, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 60));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
}

/*
 * Only importers that can be revoked and take peer memory without struct
 * pages may attach: a static importer would make a truncate wait for it or
 * read freed memory.
 */
TEST_F(pin, only_revocable_peer_importers_attach)
{
	struct p2pmap_map m = pin_req(self->map, PAGES * 4096);
	struct p2pmap_import imp = { 0 };
	int buf_fd;

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP_PIN, &m)) TH_LOG("MAP_PIN: %s", strerror(errno));
	buf_fd = ioctl(self->dev, P2PMAP_IOC_PIN_FD, &m.handle);
	ASSERT_LE(0, buf_fd);
	imp.fd = buf_fd;
	imp.flags = P2PMAP_IMPORT_STATIC;
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_IMPORT, &imp));
	EXPECT_EQ(EOPNOTSUPP, errno);
	imp.flags = P2PMAP_IMPORT_NO_P2P;
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_IMPORT, &imp));
	EXPECT_EQ(EOPNOTSUPP, errno);
	imp.flags = 0;
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_IMPORT, &imp));
	EXPECT_EQ(0, read_page_ok(self->dev, imp.handle, 9));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &imp.handle));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	close(buf_fd);
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 60));
}

/* A pinned buffer holds the module: unloading fails until it is put. */
TEST_F(pin, blocks_unload_until_put)
{
	struct p2pmap_map m = pin_req(self->map, PAGES * 4096);

	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP_PIN, &m)) TH_LOG("MAP_PIN: %s", strerror(errno));
	EXPECT_EQ(-1, syscall(__NR_delete_module, "p2pmap", O_NONBLOCK));
	EXPECT_EQ(EWOULDBLOCK, errno);
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	EXPECT_EQ(0, wait_stat("windows_live", self->live, 60));
}

TEST_HARNESS_MAIN
