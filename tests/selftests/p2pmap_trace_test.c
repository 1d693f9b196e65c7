// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmap's trace events, read back through tracefs as an administrator
 * would (Documentation/admin-guide.rst): one refusal, one map (slow path,
 * staged, then the fast path of the retry), one revocation by truncate and
 * the importer's unmap, each naming the file by device and inode number.
 *
 * Needs: /dev/p2pmap_importer, an XFS at /mnt/p2p, p2pmap.ko at
 * $P2PMAP_ROOT, a kernel with CONFIG_EVENT_TRACING.
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
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define XFS_DIR "/mnt/p2p"
#define TRACEFS "/sys/kernel/tracing"

/*
 * Measured: the test takes about 3 s (TCG, KASAN kernel), most of it one
 * page read through edu DMA; 180 s only bounds a hang.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 180

/* Writes @val to the tracefs file @name; 0 on success. */
static int tracefs_write(const char *name, const char *val)
{
	char path[256];
	int fd, ret;

	snprintf(path, sizeof(path), TRACEFS "/%s", name);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -1;
	ret = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -1;
	close(fd);
	return ret;
}

/* The trace buffer, NUL-terminated (malloc'ed), or NULL. */
static char *trace_read(void)
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n;
	int fd = open(TRACEFS "/trace", O_RDONLY);

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	return buf;
}

/*
 * The first line of @trace at or after @from of event @event that holds
 * every string of the NULL-terminated @want; its end in *@next. NULL if
 * there is none.
 */
static const char *find_event(const char *from, const char *event, const char **next,
			      const char *const *want)
{
	const char *line = from;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);
		int i, hit = copy && strstr(copy, event) != NULL;

		for (i = 0; hit && want[i]; i++)
			hit = strstr(copy, want[i]) != NULL;
		free(copy);
		if (hit) {
			if (next)
				*next = end ? end + 1 : line + len;
			return line;
		}
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/* The unsigned value of "@key=N" in the line at @line, or UINT64_MAX. */
static uint64_t field(const char *line, const char *key)
{
	const char *end = strchr(line, '\n');
	size_t n = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) && (!end || p < end)) {
		if ((p == line || p[-1] == ' ') && p[n] == '=')
			return strtoull(p + n + 1, NULL, 10);
		p += n;
	}
	return UINT64_MAX;
}

FIXTURE(trace)
{
	int dev;
	char path[256];
	size_t size;
	int fd;
	void *map;
	int mounted;	/* tracefs mounted by this test */
	char ino[64];	/* "ino=N" of the file */
	char sdev[64];	/* "dev=MAJ:MIN" of its filesystem */
};

FIXTURE_SETUP(trace)
{
	struct stat st;

	ASSERT_EQ(0, ensure_p2pmap_loaded());
	self->dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	ASSERT_LE(0, self->dev) TH_LOG("open %s: %s", P2PMAP_IMPORTER_DEV, strerror(errno));
	self->size = 8 * 4096;
	snprintf(self->path, sizeof(self->path), XFS_DIR "/trace.%d", getpid());
	ASSERT_EQ(0, make_pattern_file(self->path, self->size, 3));
	self->fd = open(self->path, O_RDWR);
	ASSERT_LE(0, self->fd);
	self->map = mmap(NULL, self->size, PROT_READ, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	ASSERT_EQ(0, fstat(self->fd, &st));
	snprintf(self->ino, sizeof(self->ino), "ino=%llu", (unsigned long long)st.st_ino);
	snprintf(self->sdev, sizeof(self->sdev), "dev=%u:%u", major(st.st_dev), minor(st.st_dev));
	if (access(TRACEFS "/events", F_OK)) {
		ASSERT_EQ(0, mount("nodev", TRACEFS, "tracefs", 0, NULL))
			TH_LOG("mount tracefs: %s", strerror(errno));
		self->mounted = 1;
	}
	ASSERT_EQ(0, access(TRACEFS "/events/p2pmap/enable", F_OK))
		TH_LOG("p2pmap's trace events are not registered");
	ASSERT_EQ(0, tracefs_write("events/p2pmap/enable", "1"));
	ASSERT_EQ(0, tracefs_write("trace", ""));	/* clears the buffer */
}

FIXTURE_TEARDOWN(trace)
{
	if (tracefs_write("events/p2pmap/enable", "0"))
		TH_LOG("could not disable p2pmap's trace events");
	if (self->mounted && umount(TRACEFS))
		TH_LOG("umount tracefs: %s", strerror(errno));
	munmap(self->map, self->size);
	close(self->fd);
	close(self->dev);
	unlink(self->path);
}

/*
 * What an administrator asks the events: why was this file refused, which
 * path served it, what was staged, and what revoked the device's mapping.
 */
TEST_F(trace, events_name_the_file_the_path_the_reason_and_the_cause)
{
	struct p2pmap_map m = map_req(self->map, self->size, P2PMAP_MAP_NO_FALLBACK);
	const char *at, *next, *line;
	unsigned char b;
	char *trace;

	/* A dirty page: refused, with its reason. */
	ASSERT_EQ(3, pwrite(self->fd, "abc", 3, 4096 + 10));
	EXPECT_EQ(-1, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, fsync(self->fd));
	/* Served peer to peer: slow path, then the retry's fast path. */
	m = map_req(self->map, self->size, P2PMAP_MAP_NO_FALLBACK);
	ASSERT_EQ(0, ioctl(self->dev, P2PMAP_IOC_MAP, &m));
	ASSERT_EQ(P2PMAP_PATH_P2P, m.path);
	EXPECT_EQ(0, importer_read(self->dev, m.handle, 5 * 4096 + 1, 1, &b));
	EXPECT_EQ(pattern_byte(5 * 4096 + 1, 3), b);
	/* Truncated under the mapping: revoked, the importer unmaps. */
	ASSERT_EQ(0, ftruncate(self->fd, 2 * 4096));
	EXPECT_EQ(0, ioctl(self->dev, P2PMAP_IOC_UNMAP, &m.handle));
	ASSERT_EQ(0, tracefs_write("events/p2pmap/enable", "0"));

	trace = trace_read();
	ASSERT_NE(NULL, trace);

	line = find_event(trace, "p2pmap_refuse:", &next, (const char *const[]){
		self->ino, self->sdev, "reason=page_cache_resident", "err=-16", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no refusal event for %s:\n%s", self->ino, trace);
	at = line ? next : trace;
	line = find_event(at, "p2pmap_map:", &next, (const char *const[]){
		self->ino, "path=refused", "err=-16", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no refused map event after the refusal");
	at = line ? next : at;
	line = find_event(at, "p2pmap_stage:", &next, (const char *const[]){
		self->ino, self->sdev, "pos=0 ", "bytes=32768 ", "result=staged", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no stage event");
	if (line) {
		EXPECT_LE(1, field(line, "mapped_extents"));
		EXPECT_EQ(0, field(line, "zeroed_extents"));
		EXPECT_LE(1, field(line, "map_blocks"));
	}
	line = find_event(at, "p2pmap_map:", &next, (const char *const[]){
		self->ino, "path=slow", "err=-11", "pages=8 ", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no slow-path map event");
	at = line ? next : at;
	line = find_event(at, "p2pmap_map:", &next, (const char *const[]){
		self->ino, "path=fast", "err=0 ", "pages=8 ", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no fast-path map event after the slow one");
	at = line ? next : at;
	line = find_event(at, "p2pmap_revoke:", &next, (const char *const[]){
		"cause=layout_change", "scope=range", "start=8192 ", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no revocation event for the truncate");
	if (line)
		EXPECT_EQ(1, field(line, "windows"));
	line = find_event(at, "p2pmap_unmap:", NULL, (const char *const[]){
		"pages=8 ", "matched=1", NULL });
	EXPECT_NE(NULL, line) TH_LOG("no matched unmap event after the map");
	free(trace);
}

TEST_HARNESS_MAIN
