// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmap_bench_data: the data path, host memory and CMB pressure, side by
 * side in one guest (make bench, scripts/bench). Sections, chosen by the
 * arguments (default: all of them):
 *
 *   datapath   staging a cold file (device_map: media -> CMB, bios on the
 *              CMB pages) against a buffered read() of the same cold file
 *              and an O_DIRECT read into host memory, for each size of
 *              P2PMAP_BENCH_SIZES_MB (default 1,4,16,60), median of
 *              P2PMAP_BENCH_REPS (default 3):
 *              datapath size= stage_MBps= buffered_MBps= direct_MBps= ratio_vs_buffered=
 *   write      write mappings: a new file of each size of
 *              P2PMAP_BENCH_SIZES_MB mapped for writing (device_map:
 *              map_blocks(write) allocates, the window is zero-filled),
 *              then given back and fsync()ed (p2pmap writes the window
 *              to the blocks by bios on the CMB pages and commits it),
 *              against write() of the same size from host memory,
 *              buffered and O_DIRECT, each followed by fsync(); median
 *              of P2PMAP_BENCH_REPS:
 *              write size= map_MBps= writeback_MBps= p2p_MBps= buffered_MBps= direct_MBps= ratio_vs_buffered=
 *              (writeback: device_unmap to fsync() returning; p2p: map
 *              and writeback together, the device's own writes excluded)
 *   memory     page cache and slab growth while a cold file of
 *              P2PMAP_BENCH_MEMORY_MB (default 32) is mapped for the device,
 *              peer to peer and through the importer's page-cache fallback
 *              (p2pmap unloaded: device_map refuses), median of 3:
 *              memory path= cache_bytes_per_byte= slab_bytes_per_page=
 *   pressure   P2PMAP_BENCH_PROCS (default 4) importer processes each read
 *              their own file in a loop, P2PMAP_BENCH_CHUNK_KB (default
 *              1024) per mapping, every mapping held until the next pass
 *              maps the chunk again (then the old one is given back), for a
 *              working set of 1, 2, 4 and 8 times the CMB,
 *              P2PMAP_BENCH_PASSES (default 5) passes, all processes
 *              running each pass together; MBps is the median of the
 *              passes after the first (steady state: the first stages
 *              from a dropped page cache; MBps_min, MBps_max their
 *              range), cold_MBps of the first,
 *              staged_per_mapped the bytes staged per byte mapped in the
 *              steady passes (0: every mapping claimed a window still in
 *              the CMB; 1: every mapping was staged from media again):
 *              pressure ws_x= ws_MiB= MBps= MBps_min= MBps_max= cold_MBps= staged_per_mapped= maps= revocations= windows_revoked= seen_revoked= refused= cmb_full= samples=
 *
 * Sanity checks, which fail the run (exit 1): every staging was served
 * peer to peer, the sampled pages read through the device hold the file's
 * bytes, every write mapping was served peer to peer and written back (the
 * page the device wrote reads back with O_DIRECT), the fallback was used
 * when p2pmap was unloaded, every window
 * p2pmap revoked under pressure was seen revoked by the importer, and no
 * request under pressure was refused cmb_full (each fits in the CMB). Goals
 * are reported, never enforced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p2pmap_bench_util.h"
#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define DIR "/mnt/p2p"
#define MiB (1024 * 1024)
#define IO_CHUNK MiB

static int failures;

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# FAIL: ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
	failures++;
}

static char *map_file(const char *path, size_t len, int *fdp)
{
	int fd = open(path, O_RDONLY);
	char *map = fd < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

	if (map == MAP_FAILED) {
		perror(path);
		exit(2);
	}
	*fdp = fd;
	return map;
}

/* Reads page @page of @handle through the device; checks the pattern. */
static int sample_page(int dev, uint32_t handle, uint64_t file_off, uint64_t map_off,
		       unsigned int seed)
{
	static unsigned char buf[4096];

	if (importer_read(dev, handle, map_off, sizeof(buf), buf))
		return -errno;
	return check_pattern(buf, file_off, sizeof(buf), seed) ? -EILSEQ : 0;
}

/* --- datapath ----------------------------------------------------------------- */

/* Reads all of @path with read() in IO_CHUNK pieces; returns ns. */
static uint64_t timed_read(const char *path, size_t size, int direct, unsigned int seed)
{
	static unsigned char *buf;
	uint64_t t0, t1;
	size_t off = 0;
	int fd;

	if (!buf && posix_memalign((void **)&buf, 4096, IO_CHUNK))
		exit(2);
	drop_caches();
	fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
	if (fd < 0) {
		perror(path);
		exit(2);
	}
	t0 = now_ns();
	while (off < size) {
		ssize_t r = read(fd, buf, IO_CHUNK);

		if (r <= 0) {
			perror("read");
			exit(2);
		}
		off += r;
	}
	t1 = now_ns();
	/* The last piece read holds the file's bytes (not timed). */
	if (check_pattern(buf, size - IO_CHUNK, IO_CHUNK, seed))
		fail("%s read of %s returned wrong bytes", direct ? "O_DIRECT" : "buffered", path);
	close(fd);
	return t1 - t0;
}

/* Stages all of @path (device_map, no fallback); returns ns, 0 if refused. */
static uint64_t timed_stage(int dev, const char *path, size_t size, int sample, unsigned int seed)
{
	uint64_t t0, t1, staged;
	struct p2pmap_map m;
	int fd, ret;
	char *map;

	drop_caches();
	map = map_file(path, size, &fd);
	m = map_req(map, size, P2PMAP_MAP_NO_FALLBACK);
	staged = p2pmap_stat("bytes_staged");
	t0 = now_ns();
	ret = ioctl(dev, P2PMAP_IOC_MAP, &m);
	t1 = now_ns();
	staged = p2pmap_stat("bytes_staged") - staged;
	if (!ret && staged < size) {
		/* a window left in the CMB by an earlier MAP: not a staging */
		fail("staging %s: %llu of %zu bytes staged", path, (unsigned long long)staged,
		     size);
		t1 = t0;
	}
	if (ret || m.path != P2PMAP_PATH_P2P) {
		fail("staging %s (%zu bytes) was not served peer to peer: %s (p2p_errno %d)",
		     path, size, strerror(errno), m.p2p_errno);
		t1 = t0;
	} else if (sample) {
		/* One page through the device, in the middle of the file. */
		uint64_t off = (size / 2) & ~4095ull;

		ret = sample_page(dev, m.handle, off, off, seed);
		if (ret)
			fail("device read of %s at %llu: %s", path, (unsigned long long)off,
			     strerror(-ret));
	}
	if (!ret)
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	munmap(map, size);
	close(fd);
	return t1 - t0;
}

static double mbps(size_t size, uint64_t ns)
{
	return ns ? (double)size / MiB / (ns / 1e9) : 0;
}

static void datapath(void)
{
	const char *sizes = getenv("P2PMAP_BENCH_SIZES_MB");
	char list[128], *save = NULL, *tok;
	int reps = env_long("P2PMAP_BENCH_REPS", 3, 1);
	int dev = open_dev();

	snprintf(list, sizeof(list), "%s", sizes && *sizes ? sizes : "1,4,16,60");
	printf("# datapath: cold file, %d repetitions, median MB/s (MiB/s)\n", reps);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t size = (size_t)atoi(tok) * MiB;
		double st[16], bu[16], di[16], s, b, d;
		const char *path = DIR "/datapath.dat";
		int r;

		if (!size)
			continue;
		if (make_pattern_file_direct(path, size, 11)) {
			perror(path);
			exit(2);
		}
		for (r = 0; r < reps && r < 16; r++) {
			st[r] = mbps(size, timed_stage(dev, path, size, r == 0, 11));
			bu[r] = mbps(size, timed_read(path, size, 0, 11));
			di[r] = mbps(size, timed_read(path, size, 1, 11));
		}
		s = median(st, r);
		b = median(bu, r);
		d = median(di, r);
		printf("datapath size=%zu stage_MBps=%.1f buffered_MBps=%.1f direct_MBps=%.1f ratio_vs_buffered=%.2f\n",
		       size, s, b, d, b > 0 ? s / b : 0);
		fflush(stdout);
		unlink(path);
	}
	close(dev);
}

/* --- write -------------------------------------------------------------------- */

/*
 * A new @path of @size written through a write mapping: map (timed into
 * *map_ns), one page written by the device (@sample, not timed), unmap
 * and fsync() (timed into *wb_ns). Returns 0, or -1 after fail().
 */
static int timed_write_p2p(int dev, const char *path, size_t size, int sample, uint64_t *map_ns,
			   uint64_t *wb_ns)
{
	uint64_t written = p2pmap_stat("written_back"), t0, t1, t2, t3;
	unsigned char page[4096], *back;
	struct p2pmap_map m;
	struct p2pmap_rw rw;
	size_t i, off = (size / 2) & ~4095ul;
	char *map;
	int fd;

	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		exit(2);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		exit(2);
	m = map_req(map, size, P2PMAP_MAP_WRITE | P2PMAP_MAP_NO_FALLBACK);
	t0 = now_ns();
	if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P) {
		fail("write mapping of %s (%zu bytes) refused: %s", path, size, strerror(errno));
		goto out;
	}
	t1 = now_ns();
	if (sample) {
		for (i = 0; i < sizeof(page); i++)
			page[i] = pattern_byte(off + i, 23);
		rw = (struct p2pmap_rw){ .handle = m.handle, .offset = off, .len = sizeof(page),
					 .buf = (uintptr_t)page };
		if (ioctl(dev, P2PMAP_IOC_WRITE, &rw))
			fail("device write of %s: %s", path, strerror(errno));
	}
	t2 = now_ns();
	ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	if (fsync(fd))
		fail("fsync of %s: %s", path, strerror(errno));
	t3 = now_ns();
	*map_ns = t1 - t0;
	*wb_ns = t3 - t2;
	if (p2pmap_stat("written_back") != written + 1)
		fail("%s: the write mapping was not written back", path);
	if (sample) {
		int dfd = open(path, O_RDONLY | O_DIRECT);

		if (dfd < 0 || posix_memalign((void **)&back, 4096, sizeof(page)))
			exit(2);
		if (pread(dfd, back, sizeof(page), off) != sizeof(page) ||
		    memcmp(back, page, sizeof(page)))
			fail("%s: O_DIRECT does not read what the device wrote", path);
		free(back);
		close(dfd);
	}
	munmap(map, size);
	close(fd);
	return 0;
out:
	munmap(map, size);
	close(fd);
	return -1;
}

/* A new @path of @size written with write() from host memory, then fsync(); returns ns. */
static uint64_t timed_write_cpu(const char *path, size_t size, int direct)
{
	static unsigned char *buf;
	uint64_t t0, t1;
	size_t off;
	int fd;

	if (!buf) {
		if (posix_memalign((void **)&buf, 4096, IO_CHUNK))
			exit(2);
		memset(buf, 0x5a, IO_CHUNK);
	}
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0644);
	if (fd < 0)
		exit(2);
	t0 = now_ns();
	for (off = 0; off < size; off += IO_CHUNK) {
		if (write(fd, buf, IO_CHUNK) != IO_CHUNK) {
			perror("write");
			exit(2);
		}
	}
	if (fsync(fd))
		fail("fsync of %s: %s", path, strerror(errno));
	t1 = now_ns();
	close(fd);
	return t1 - t0;
}

static void write_path(void)
{
	const char *sizes = getenv("P2PMAP_BENCH_SIZES_MB");
	char list[128], *save = NULL, *tok;
	int reps = env_long("P2PMAP_BENCH_REPS", 3, 1);
	const char *path = DIR "/write.dat";
	int dev = open_dev();

	snprintf(list, sizeof(list), "%s", sizes && *sizes ? sizes : "1,4,16,60");
	printf("# write: new file, %d repetitions, median MB/s (MiB/s)\n", reps);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t size = (size_t)atoi(tok) * MiB;
		double mp[16], wb[16], p2p[16], bu[16], di[16], b;
		uint64_t map_ns, wb_ns;
		int r;

		if (!size)
			continue;
		for (r = 0; r < reps && r < 16; r++) {
			if (timed_write_p2p(dev, path, size, r == 0, &map_ns, &wb_ns))
				map_ns = wb_ns = 0;
			mp[r] = mbps(size, map_ns);
			wb[r] = mbps(size, wb_ns);
			p2p[r] = mbps(size, map_ns + wb_ns);
			bu[r] = mbps(size, timed_write_cpu(path, size, 0));
			di[r] = mbps(size, timed_write_cpu(path, size, 1));
		}
		b = median(bu, r);
		printf("write size=%zu map_MBps=%.1f writeback_MBps=%.1f p2p_MBps=%.1f buffered_MBps=%.1f direct_MBps=%.1f ratio_vs_buffered=%.2f\n",
		       size, median(mp, r), median(wb, r), median(p2p, r), b, median(di, r),
		       b > 0 ? median(p2p, r) / b : 0);
		fflush(stdout);
	}
	unlink(path);
	close(dev);
}

/* --- memory ------------------------------------------------------------------- */

/* Cache and slab growth (bytes) while @path is mapped with @flags. */
static int memory_once(int dev, const char *path, size_t size, uint32_t flags, uint32_t want_path,
		       double *cache, double *slab)
{
	long long c0, s0, c1, s1;
	struct p2pmap_map m;
	int fd, ret;
	char *map;

	drop_caches();
	map = map_file(path, size, &fd);
	c0 = meminfo_bytes("Cached");
	s0 = meminfo_bytes("Slab");
	m = map_req(map, size, flags);
	ret = ioctl(dev, P2PMAP_IOC_MAP, &m);
	c1 = meminfo_bytes("Cached");
	s1 = meminfo_bytes("Slab");
	if (ret || m.path != want_path) {
		fail("memory: MAP of %s took path %u (wanted %u): %s", path, m.path, want_path,
		     ret ? strerror(errno) : "-");
		ret = -1;
	} else {
		ioctl(dev, P2PMAP_IOC_UNMAP, &m.handle);
	}
	munmap(map, size);
	close(fd);
	*cache = (double)(c1 - c0);
	*slab = (double)(s1 - s0);
	return ret;
}

static void memory(void)
{
	size_t size = (size_t)env_long("P2PMAP_BENCH_MEMORY_MB", 32, 1) * MiB;
	const char *path = DIR "/memory.dat";
	int p, r, dev;

	if (make_pattern_file_direct(path, size, 12)) {
		perror(path);
		exit(2);
	}
	for (p = 0; p < 2; p++) {
		double cache[3], slab[3];

		if (p == 1 && system("rmmod p2pmap")) {
			fail("memory: rmmod p2pmap failed");
			break;
		}
		dev = open_dev();
		for (r = 0; r < 3; r++)
			if (memory_once(dev, path, size, p ? 0 : P2PMAP_MAP_NO_FALLBACK,
					p ? P2PMAP_PATH_FALLBACK : P2PMAP_PATH_P2P,
					&cache[r], &slab[r]))
				break;
		close(dev);
		if (p == 1 && ensure_p2pmap_loaded()) {
			fprintf(stderr, "# cannot load p2pmap again\n");
			exit(2);
		}
		if (r < 3)
			continue;
		printf("memory path=%s size=%zu cache_bytes_per_byte=%.4f slab_bytes_per_page=%.1f\n",
		       p ? "fallback" : "p2p", size, median(cache, 3) / size,
		       median(slab, 3) / (size / 4096));
		fflush(stdout);
	}
	unlink(path);
}

/* --- CMB pressure ------------------------------------------------------------- */

/* The CMB bytes the NVMe function publishes (p2pmem/size), or 64 MiB. */
static size_t cmb_size(void)
{
	size_t size = 64 * MiB;
	glob_t g;

	if (!glob("/sys/bus/pci/devices/*/p2pmem/size", 0, NULL, &g) && g.gl_pathc) {
		long v = read_long_file(g.gl_pathv[0]);

		if (v > 0)
			size = v;
	}
	globfree(&g);
	return size;
}

struct press_result {
	uint64_t bytes, maps, seen_revoked, refused, enospc, samples, bad_samples, not_p2p;
	uint64_t cold_bytes, steady_bytes;	/* mapped in the first, later passes */
};

/*
 * One process: @passes passes over @size bytes of @path in @chunk pieces;
 * after each, a byte on @ready, and the next pass waits for a byte on @go
 * (all workers run each pass together: the parent times every pass).
 */
static void press_worker(const char *path, size_t size, size_t chunk, int passes,
			 unsigned int seed, int out, int ready, int go)
{
	size_t nchunks = size / chunk, c;
	struct press_result res = { 0 };
	uint32_t *handles = calloc(nchunks, sizeof(*handles));
	int dev = open_dev(), fd, pass;
	char *map = map_file(path, size, &fd);

	if (!handles)
		_exit(2);
	for (pass = 0; pass < passes; pass++) {
		char b = 'c';

		if (pass && (write(ready, &b, 1) != 1 || read(go, &b, 1) != 1))
			_exit(2);
		for (c = 0; c < nchunks; c++) {
			struct p2pmap_map m = map_req(map + c * chunk, chunk, P2PMAP_MAP_NO_FALLBACK);
			struct p2pmap_status st = { .handle = handles[c] };

			if (handles[c] && !ioctl(dev, P2PMAP_IOC_STATUS, &st) && st.revoked)
				res.seen_revoked++;
			/* Map again before giving the old one back: a window still
			 * staged is claimed again (fast path), not restaged. */
			if (ioctl(dev, P2PMAP_IOC_MAP, &m)) {
				res.refused++;
				if (errno == ENOSPC)
					res.enospc++;
				m.handle = 0;
			} else if (m.path != P2PMAP_PATH_P2P) {
				res.not_p2p++;
			} else {
				res.maps++;
				res.bytes += chunk;
				if (pass)
					res.steady_bytes += chunk;
				else
					res.cold_bytes += chunk;
			}
			if (handles[c])
				ioctl(dev, P2PMAP_IOC_UNMAP, &handles[c]);
			handles[c] = m.handle;
		}
	}
	if (write(ready, "e", 1) != 1)	/* the steady passes are over */
		_exit(2);
	/* Sample one page of the last chunk still mapped, through the device. */
	for (c = nchunks; c-- > 0;) {
		struct p2pmap_status st = { .handle = handles[c] };
		uint64_t off = c * chunk + (chunk / 2 & ~4095ull);
		int ret;

		if (!handles[c] || ioctl(dev, P2PMAP_IOC_STATUS, &st) || st.revoked)
			continue;
		ret = sample_page(dev, handles[c], off, off - c * chunk, seed);
		if (ret == -ESTALE)	/* revoked by another process meanwhile */
			continue;
		res.samples++;
		if (ret)
			res.bad_samples++;
		break;
	}
	/* Revocations that hit mappings still held count too. */
	for (c = 0; c < nchunks; c++) {
		struct p2pmap_status st = { .handle = handles[c] };

		if (handles[c] && !ioctl(dev, P2PMAP_IOC_STATUS, &st) && st.revoked)
			res.seen_revoked++;
	}
	if (write(out, &res, sizeof(res)) != sizeof(res))
		_exit(2);
	close(dev);
	_exit(0);
}

#define PASSES_MAX 16

static void pressure(void)
{
	int procs = env_long("P2PMAP_BENCH_PROCS", 4, 1);
	size_t chunk = (size_t)env_long("P2PMAP_BENCH_CHUNK_KB", 1024, 4) * 1024 & ~4095ul;
	int passes = env_long("P2PMAP_BENCH_PASSES", 5, 2);
	size_t cmb = cmb_size(), per_max;
	static const int xs[] = { 1, 2, 4, 8 };
	char path[64];
	int i, p;

	if (passes > PASSES_MAX)
		passes = PASSES_MAX;

	per_max = (cmb * xs[3] / procs + chunk - 1) / chunk * chunk;
	printf("# pressure: CMB %zu MiB, %d processes, %zu KiB per mapping, %d passes\n",
	       cmb / MiB, procs, chunk / 1024, passes);
	fflush(stdout);
	for (p = 0; p < procs; p++) {
		snprintf(path, sizeof(path), DIR "/press-%d.dat", p);
		if (make_pattern_file_direct(path, per_max, 20 + p)) {
			perror(path);
			exit(2);
		}
	}
	for (i = 0; i < 4; i++) {
		size_t per = (cmb * xs[i] / procs + chunk - 1) / chunk * chunk;
		uint64_t rev0 = p2pmap_stat("revocations_cmb_pressure");
		uint64_t win0 = p2pmap_stat("windows_revoked");
		uint64_t full0 = p2pmap_stat("refused_cmb_full");
		uint64_t staged = 0, tp[PASSES_MAX + 1];
		double steady[PASSES_MAX], med;
		struct press_result sum = { 0 };
		int k;
		int pipes[2], ready[2], go[2], st;
		char b;

		if (pipe(pipes) || pipe(ready) || pipe(go))
			exit(2);
		drop_caches();
		tp[0] = now_ns();
		for (p = 0; p < procs; p++) {
			if (!fork()) {
				close(pipes[0]);
				close(ready[0]);
				close(go[1]);
				snprintf(path, sizeof(path), DIR "/press-%d.dat", p);
				press_worker(path, per, chunk, passes, 20 + p, pipes[1],
					     ready[1], go[0]);
			}
		}
		close(pipes[1]);
		close(ready[1]);
		close(go[0]);
		/* pass k ends when every worker finished it */
		for (k = 1; k <= passes; k++) {
			for (p = 0; p < procs; p++)
				if (read(ready[0], &b, 1) != 1)
					fail("pressure: a worker died");
			tp[k] = now_ns();
			if (k == 1)
				staged = p2pmap_stat("bytes_staged");
			if (k < passes)
				for (p = 0; p < procs; p++)
					if (write(go[1], &b, 1) != 1)
						fail("pressure: a worker died");
		}
		staged = p2pmap_stat("bytes_staged") - staged;
		for (k = 2; k <= passes; k++)
			steady[k - 2] = mbps(per * procs, tp[k] - tp[k - 1]);
		med = median(steady, passes - 1);	/* sorts: [0] min, last max */
		for (p = 0; p < procs; p++) {
			struct press_result r;

			if (read(pipes[0], &r, sizeof(r)) != sizeof(r)) {
				fail("pressure: a worker died");
				continue;
			}
			sum.bytes += r.bytes;
			sum.maps += r.maps;
			sum.seen_revoked += r.seen_revoked;
			sum.refused += r.refused;
			sum.enospc += r.enospc;
			sum.samples += r.samples;
			sum.bad_samples += r.bad_samples;
			sum.not_p2p += r.not_p2p;
			sum.cold_bytes += r.cold_bytes;
			sum.steady_bytes += r.steady_bytes;
		}
		while (wait(&st) > 0)
			;
		close(pipes[0]);
		close(ready[0]);
		close(go[1]);
		{
			uint64_t revs = p2pmap_stat("revocations_cmb_pressure") - rev0;
			uint64_t wins = p2pmap_stat("windows_revoked") - win0;

			uint64_t full = p2pmap_stat("refused_cmb_full") - full0;

			printf("pressure ws_x=%d ws_MiB=%zu MBps=%.1f MBps_min=%.1f MBps_max=%.1f cold_MBps=%.1f staged_per_mapped=%.3f maps=%llu revocations=%llu windows_revoked=%llu seen_revoked=%llu refused=%llu cmb_full=%llu samples=%llu\n",
			       xs[i], per * procs / MiB, med, steady[0], steady[passes - 2],
			       mbps(sum.cold_bytes, tp[1] - tp[0]),
			       sum.steady_bytes ? (double)staged / sum.steady_bytes : 0,
			       (unsigned long long)sum.maps, (unsigned long long)revs,
			       (unsigned long long)wins, (unsigned long long)sum.seen_revoked,
			       (unsigned long long)sum.refused, (unsigned long long)full,
			       (unsigned long long)sum.samples);
			fflush(stdout);
			/* each request (one chunk) fits in the CMB */
			if (full || sum.enospc)
				fail("pressure x%d: %llu fitting requests refused cmb_full", xs[i],
				     (unsigned long long)(full > sum.enospc ? full : sum.enospc));
			if (sum.not_p2p)
				fail("pressure x%d: %llu mappings not peer to peer", xs[i],
				     (unsigned long long)sum.not_p2p);
			if (sum.bad_samples || !sum.samples)
				fail("pressure x%d: %llu of %llu device samples wrong", xs[i],
				     (unsigned long long)sum.bad_samples,
				     (unsigned long long)sum.samples);
			if (sum.seen_revoked < wins)
				fail("pressure x%d: p2pmap revoked %llu windows, the importer saw %llu",
				     xs[i], (unsigned long long)wins,
				     (unsigned long long)sum.seen_revoked);
		}
	}
	for (p = 0; p < procs; p++) {
		snprintf(path, sizeof(path), DIR "/press-%d.dat", p);
		unlink(path);
	}
}

int main(int argc, char **argv)
{
	int i, all = argc < 2;

	if (ensure_p2pmap_loaded()) {
		fprintf(stderr, "p2pmap is not loaded\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc || all; i++) {
		const char *s = all ? NULL : argv[i];

		if (all || !strcmp(s, "datapath"))
			datapath();
		if (all || !strcmp(s, "write"))
			write_path();
		if (all || !strcmp(s, "memory"))
			memory();
		if (all || !strcmp(s, "pressure"))
			pressure();
		if (all)
			break;
	}
	if (failures)
		printf("# FAILED: %d sanity checks\n", failures);
	return failures ? 1 : 0;
}
