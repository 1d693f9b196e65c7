// SPDX-License-Identifier: GPL-2.0
/*
 * p2pmap_bench: revocation latency, kernel-driven (p2pmap's layout lease and
 * mmu notifiers) against userspace-driven (F_SETLEASE read leases released
 * from a SIGIO handler, the lease-based design of the seed discussion).
 * Run in the guest by `make bench` (scripts/bench).
 *
 * Scenarios, each timed as the wall time of one truncate(2) of the file to
 * zero, repeated:
 *   floor      no mapping, no lease: the cost of the truncate itself
 *   p2pmap     N pages of the file device-mapped through the test importer
 *              (N windows); XFS announces the range it truncates (patch 8)
 *              and p2pmap revokes it in the truncating task
 *              (unmap_mapping_range -> the importer's notifier quiesces its
 *              DMA and calls device_unmap): no lease break, no wake-up
 *   p2pmap-lease  the same with debugfs sync_break=0: XFS breaks p2pmap's
 *              layout lease, p2pmap's real-time worker revokes and releases
 *              the lease, the truncate waits for it (the path before patch
 *              8, and still the path of IOCB_NOWAIT writes and reflink)
 *   lease      N processes each hold an F_SETLEASE read lease on the file
 *              and release it from their SIGIO handler
 * each idle and with CPU-bound competitors (busy processes at nice 0, one
 * per online CPU or P2PMAP_BENCH_COMPETITORS per CPU: "contended").
 *
 * A supplementary pass, "contended-rt", tests the claim that p2pmap's
 * revocation time does not depend on any userspace process being
 * scheduled: the competitors are SCHED_FIFO priority 1 busy loops (a
 * busy-polling data-path thread), running only across each timed truncate
 * (SIGCONT 2 ms before, SIGSTOP after, so that the untimed setup is not
 * starved), and the benchmark itself runs SCHED_FIFO priority 2 with
 * SCHED_RESET_ON_FORK (its lease holders are ordinary SCHED_OTHER
 * processes). A SCHED_OTHER task then runs only when the fair deadline
 * server lets it; p2pmap's revocation worker is SCHED_FIFO 50.
 *
 * truncate(2) rather than ftruncate(2): a read lease cannot coexist with a
 * writable descriptor (opening one breaks it), while truncate(2) runs the
 * same do_truncate()/setattr path and breaks the leases itself
 * (vfs_truncate -> break_lease; XFS setattr -> xfs_break_layouts).
 *
 * Output: one line per N and load,
 *   revoke scenario=<name> n=<N> p50_us=.. p99_us=.. lease_p50_us=.. lease_p99_us=.. ratio_p99=.. p2p_lease_p50_us=.. p2p_lease_p99_us=..
 * (p50/p99 for p2pmap, lease_* for the userspace leases, ratio =
 * lease_p99 / p99, p2p_lease_* for p2pmap-lease; for the floor all columns
 * are the plain truncate), then a human table. Exit status 1 if a mapping was not served peer to peer or
 * a revocation did not reach the importer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "p2pmap_importer.h"
#include "p2pmap_test_util.h"

#define PATH "/mnt/p2p/bench.dat"
#define PAGE 4096
#define MAX_N 256

static const int ns[] = { 1, 16, 256 };
static int failures;
static const char *volatile phase = "setup";
static char phase_buf[64];

/* A stuck phase is a bug to report, not a benchmark result. */
static void on_alarm(int sig)
{
	(void)sig;
	dprintf(2, "# p2pmap_bench: stuck in %s\n", phase);
	_exit(4);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of @n samples (sorted in place), in µs. */
static double pct_us(uint64_t *v, int n, int pct)
{
	int rank;

	qsort(v, n, sizeof(*v), cmp_u64);
	rank = (n * pct + 99) / 100;
	if (rank < 1)
		rank = 1;
	return v[rank - 1] / 1000.0;
}

/* Writes @pages pages of data to PATH and drops them from the page cache. */
static void fill_file(int pages)
{
	static char buf[MAX_N * PAGE];
	int fd = open(PATH, O_WRONLY | O_CREAT, 0644);

	memset(buf, 0x5a, sizeof(buf));
	if (fd < 0 || pwrite(fd, buf, (size_t)pages * PAGE, 0) != (ssize_t)pages * PAGE ||
	    fsync(fd)) {
		perror("fill " PATH);
		exit(2);
	}
	close(fd);
}

/* --- CPU-bound competitors ------------------------------------------------ */

static pid_t competitors[64];
static int ncompetitors;
/* "contended-rt": SCHED_FIFO competitors that spin only across a timed op. */
static int rt_mode;

/* RT competitors run only across the timed operation (see the header). */
static void contend_begin(void)
{
	int i;

	if (!rt_mode)
		return;
	for (i = 0; i < ncompetitors; i++)
		kill(competitors[i], SIGCONT);
	/* Let them occupy every CPU before the clock starts (an hrtimer
	 * sleep: this SCHED_FIFO 2 process preempts them when it ends). */
	usleep(2000);
}

static void contend_end(void)
{
	int i, st;

	if (!rt_mode)
		return;
	for (i = 0; i < ncompetitors; i++)
		kill(competitors[i], SIGSTOP);
	for (i = 0; i < ncompetitors; i++)
		waitpid(competitors[i], &st, WUNTRACED);
}

/* Start and end (CLOCK_MONOTONIC, as ktime_get_ns()) of the last truncate. */
static uint64_t trunc_t0, trunc_t1;

static uint64_t timed_truncate(void)
{
	contend_begin();
	trunc_t0 = now_ns();
	if (truncate(PATH, 0)) {
		perror("truncate");
		exit(2);
	}
	trunc_t1 = now_ns();
	contend_end();
	return trunc_t1 - trunc_t0;
}

/* P2PMAP_BENCH_COMPETITORS per online CPU (default 1). */
static int competitors_wanted(void)
{
	const char *e = getenv("P2PMAP_BENCH_COMPETITORS");
	int per_cpu = e ? atoi(e) : 1;

	if (per_cpu < 1)
		per_cpu = 1;
	return per_cpu * sysconf(_SC_NPROCESSORS_ONLN);
}

static void start_competitors(void)
{
	int i, n = competitors_wanted();

	for (i = 0; i < n && i < 64; i++) {
		pid_t pid = fork();

		if (!pid) {
			if (rt_mode) {
				struct sched_param sp = { .sched_priority = 1 };

				if (sched_setscheduler(0, SCHED_FIFO, &sp))
					_exit(3);
				raise(SIGSTOP);
			}
			for (;;)
				__asm__ volatile("" ::: "memory");
		}
		if (pid < 0) {
			perror("fork");
			exit(2);
		}
		competitors[ncompetitors++] = pid;
		if (rt_mode) {
			int st;

			/* Stopped until a timed operation; exited if no RT. */
			if (waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st)) {
				fprintf(stderr, "# SCHED_FIFO competitor failed\n");
				exit(2);
			}
		}
	}
}

static void stop_competitors(void)
{
	while (ncompetitors > 0) {
		pid_t pid = competitors[--ncompetitors];

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* The benchmark's own policy for a pass: SCHED_FIFO 2 in "contended-rt". */
static void set_own_policy(int rt)
{
	struct sched_param sp = { .sched_priority = rt ? 2 : 0 };

	if (sched_setscheduler(0, rt ? SCHED_FIFO | SCHED_RESET_ON_FORK : SCHED_OTHER, &sp)) {
		perror("sched_setscheduler");
		exit(2);
	}
}

/* --- floor ------------------------------------------------------------------ */

static void run_floor(int iters, uint64_t *out)
{
	int i;

	for (i = 0; i < iters; i++) {
		fill_file(MAX_N);
		out[i] = timed_truncate();
	}
}

/* --- p2pmap ----------------------------------------------------------------- */

/*
 * Where a p2pmap truncate's time goes, from p2pmap's stamps of its last
 * lease break and release (debugfs revoke_latency, ktime_get_ns()):
 * truncate start -> lm_break (pre), lm_break -> lease released (kernel),
 * lease released -> truncate returns (post). Samples whose stamps are not
 * inside the truncate are dropped.
 */
static uint64_t split_pre[1000], split_kernel[1000], split_post[1000];
static int nsplit;

static void split_truncate(void)
{
	uint64_t brk = p2pmap_latency("last_break_ns");
	uint64_t rel = p2pmap_latency("last_release_ns");

	if (brk == UINT64_MAX || rel == UINT64_MAX || brk < trunc_t0 || rel < brk ||
	    rel > trunc_t1 || nsplit >= 1000)
		return;
	split_pre[nsplit] = brk - trunc_t0;
	split_kernel[nsplit] = rel - brk;
	split_post[nsplit] = trunc_t1 - rel;
	nsplit++;
}

static void run_p2pmap(int n, int iters, uint64_t *out)
{
	uint32_t handles[MAX_N];
	int dev, fd, i, k;
	char *map;

	dev = open(P2PMAP_IMPORTER_DEV, O_RDWR);
	fill_file(MAX_N);
	fd = open(PATH, O_RDONLY);
	map = mmap(NULL, (size_t)MAX_N * PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (dev < 0 || fd < 0 || map == MAP_FAILED) {
		perror("p2pmap setup");
		exit(2);
	}
	for (i = 0; i < iters; i++) {
		fill_file(n);
		for (k = 0; k < n; k++) {
			struct p2pmap_map m = map_req(map + (size_t)k * PAGE, PAGE,
						      P2PMAP_MAP_NO_FALLBACK);

			if (ioctl(dev, P2PMAP_IOC_MAP, &m) || m.path != P2PMAP_PATH_P2P) {
				fprintf(stderr, "# MAP of page %d: %s\n", k, strerror(errno));
				if (system("grep -v ' 0$' /sys/kernel/debug/p2pmap/stats >&2"))
					fprintf(stderr, "# no p2pmap stats\n");
				exit(1);
			}
			handles[k] = m.handle;
		}
		out[i] = timed_truncate();
		split_truncate();
		for (k = 0; k < n; k++) {
			struct p2pmap_status st = { .handle = handles[k] };

			if (ioctl(dev, P2PMAP_IOC_STATUS, &st) || !st.revoked) {
				fprintf(stderr, "# handle %u not revoked by truncate\n", handles[k]);
				failures++;
			}
			ioctl(dev, P2PMAP_IOC_UNMAP, &handles[k]);
		}
	}
	munmap(map, (size_t)MAX_N * PAGE);
	close(fd);
	close(dev);
}

/* --- userspace leases -------------------------------------------------------- */

static volatile sig_atomic_t lease_broken;
static int lease_fd = -1;

/* The userspace design: the lease holder releases from its SIGIO handler. */
static void on_sigio(int sig)
{
	(void)sig;
	fcntl(lease_fd, F_SETLEASE, F_UNLCK);
	lease_broken = 1;
}

/*
 * One holder: per round, wait for a byte on @go, take a read lease, report
 * ready on @ready, wait for the break (released in the handler), close,
 * report done on @ready.
 */
static void holder(int go, int ready)
{
	struct sigaction sa = { .sa_handler = on_sigio };
	sigset_t block, old;
	char c;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGIO, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGIO);
	while (read(go, &c, 1) == 1) {
		sigprocmask(SIG_BLOCK, &block, &old);
		lease_broken = 0;
		lease_fd = open(PATH, O_RDONLY);
		if (lease_fd < 0 || fcntl(lease_fd, F_SETOWN, getpid()) ||
		    fcntl(lease_fd, F_SETLEASE, F_RDLCK)) {
			fprintf(stderr, "# lease holder %d: %s\n", getpid(), strerror(errno));
			_exit(3);
		}
		c = 'r';
		if (write(ready, &c, 1) != 1)
			_exit(3);
		while (!lease_broken)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(lease_fd);
		c = 'd';
		if (write(ready, &c, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static void wait_bytes(int fd, int n)
{
	char buf[MAX_N];

	while (n > 0) {
		ssize_t r = read(fd, buf, n);

		if (r <= 0) {
			fprintf(stderr, "# a lease holder died\n");
			exit(2);
		}
		n -= r;
	}
}

static void run_lease(int n, int iters, uint64_t *out)
{
	int go[MAX_N], ready[2], i, k;
	pid_t pids[MAX_N];
	char c = 'g';

	if (pipe(ready)) {
		perror("pipe");
		exit(2);
	}
	for (k = 0; k < n; k++) {
		int p[2];

		if (pipe(p)) {
			perror("pipe");
			exit(2);
		}
		pids[k] = fork();
		if (!pids[k]) {
			int j;

			/* siblings' go pipes must see EOF when the parent closes them */
			for (j = 0; j < k; j++)
				close(go[j]);
			close(p[1]);
			close(ready[0]);
			holder(p[0], ready[1]);
		}
		close(p[0]);
		go[k] = p[1];
	}
	/* Only the holders write: a dead holder shows as EOF. */
	close(ready[1]);
	for (i = 0; i < iters; i++) {
		fill_file(n);
		for (k = 0; k < n; k++)
			if (write(go[k], &c, 1) != 1)
				exit(2);
		wait_bytes(ready[0], n);	/* every lease taken */
		out[i] = timed_truncate();
		wait_bytes(ready[0], n);	/* every holder closed its file */
	}
	for (k = 0; k < n; k++) {
		close(go[k]);
		waitpid(pids[k], NULL, 0);
	}
	close(ready[0]);
}

/* --- driver ------------------------------------------------------------------ */

struct row {
	char name[32];
	int n;
	double p50, p99, lp50, lp99, kd50, kq50, kr50, kd99, kq99, kr99;
	double pre50, kern50, post50;
	double pl50, pl99;	/* p2pmap-lease */
};

static struct row rows[24];
static int nrows;

static int iters_for(int n)
{
	const char *e = getenv("P2PMAP_BENCH_ITERS");
	int scale = e ? atoi(e) : 40;

	if (scale < 5)
		scale = 5;
	if (n >= 256)
		return scale / 4 < 5 ? 5 : scale / 4;
	if (n >= 16)
		return scale / 2;
	return scale;
}

static void reset_kernel_hist(void)
{
	FILE *f = fopen("/sys/kernel/debug/p2pmap/revoke_latency", "w");

	if (f) {
		fputs("0\n", f);
		fclose(f);
	}
}

/* debugfs sync_break: 1 (XFS's announced ranges served in its task) or 0. */
static void set_sync_break(int on)
{
	FILE *f = fopen("/sys/kernel/debug/p2pmap/sync_break", "w");

	if (!f || fprintf(f, "%d\n", on) < 0 || fclose(f)) {
		perror("sync_break");
		exit(2);
	}
}

enum load { IDLE, CONTENDED, CONTENDED_RT };

static void scenario(enum load load)
{
	static const char *const names[] = { "idle", "contended", "contended-rt" };
	static uint64_t a[1000], b[1000], c[1000];
	int contended = load != IDLE;
	const char *name = names[load];
	struct row *r;
	int it, i;

	rt_mode = load == CONTENDED_RT;
	set_own_policy(rt_mode);
	if (contended)
		start_competitors();
	it = iters_for(0);
	run_floor(it, a);
	r = &rows[nrows++];
	snprintf(r->name, sizeof(r->name), contended ? "floor-%s" : "floor", name);
	r->n = 0;
	r->p50 = pct_us(a, it, 50);
	r->p99 = pct_us(a, it, 99);
	r->lp50 = r->pl50 = r->p50;
	r->lp99 = r->pl99 = r->p99;
	r->kd50 = r->kq50 = r->kr50 = r->kd99 = r->kq99 = r->kr99 = 0;
	printf("revoke scenario=%s n=0 p50_us=%.0f p99_us=%.0f lease_p50_us=%.0f lease_p99_us=%.0f ratio_p99=%.2f p2p_lease_p50_us=%.0f p2p_lease_p99_us=%.0f\n",
	       r->name, r->p50, r->p99, r->lp50, r->lp99, 1.0, r->pl50, r->pl99);
	fflush(stdout);

	for (i = 0; i < (int)(sizeof(ns) / sizeof(ns[0])); i++) {
		int n = ns[i];

		it = iters_for(n);
		/* p2pmap through its lease first: the split and k-* are of it */
		reset_kernel_hist();
		nsplit = 0;
		snprintf(phase_buf, sizeof(phase_buf), "p2pmap-lease %s n=%d", name, n);
		phase = phase_buf;
		alarm(600);
		set_sync_break(0);
		run_p2pmap(n, it, c);
		set_sync_break(1);
		r = &rows[nrows++];
		r->pl50 = pct_us(c, it, 50);
		r->pl99 = pct_us(c, it, 99);
		r->pre50 = nsplit ? pct_us(split_pre, nsplit, 50) : 0;
		r->kern50 = nsplit ? pct_us(split_kernel, nsplit, 50) : 0;
		r->post50 = nsplit ? pct_us(split_post, nsplit, 50) : 0;
		r->kd50 = p2pmap_latency("dispatch_us_p50");
		r->kq50 = p2pmap_latency("quiesce_us_p50");
		r->kr50 = p2pmap_latency("release_us_p50");
		r->kd99 = p2pmap_latency("dispatch_us_p99");
		r->kq99 = p2pmap_latency("quiesce_us_p99");
		r->kr99 = p2pmap_latency("release_us_p99");
		snprintf(phase_buf, sizeof(phase_buf), "p2pmap %s n=%d", name, n);
		phase = phase_buf;
		alarm(600);
		run_p2pmap(n, it, a);
		snprintf(phase_buf, sizeof(phase_buf), "lease %s n=%d", name, n);
		phase = phase_buf;
		alarm(600);
		run_lease(n, it, b);
		alarm(0);
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->n = n;
		r->p50 = pct_us(a, it, 50);
		r->p99 = pct_us(a, it, 99);
		r->lp50 = pct_us(b, it, 50);
		r->lp99 = pct_us(b, it, 99);
		printf("revoke scenario=%s n=%d p50_us=%.0f p99_us=%.0f lease_p50_us=%.0f lease_p99_us=%.0f ratio_p99=%.2f p2p_lease_p50_us=%.0f p2p_lease_p99_us=%.0f\n",
		       r->name, n, r->p50, r->p99, r->lp50, r->lp99,
		       r->p99 > 0 ? r->lp99 / r->p99 : 0.0, r->pl50, r->pl99);
		fflush(stdout);
	}
	if (contended)
		stop_competitors();
	rt_mode = 0;
	set_own_policy(0);
}

int main(void)
{
	int i;

	if (ensure_p2pmap_loaded()) {
		fprintf(stderr, "p2pmap is not loaded\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	printf("# revocation benchmark: truncate(2) of %s, %ld CPUs, %d CPU-bound competitors when contended, iterations per N: %d (N<=1) %d (16) %d (256)\n",
	       PATH, sysconf(_SC_NPROCESSORS_ONLN), competitors_wanted(), iters_for(1),
	       iters_for(16), iters_for(256));
	fflush(stdout);
	scenario(IDLE);
	scenario(CONTENDED);
	scenario(CONTENDED_RT);
	unlink(PATH);

	printf("\n%-18s %4s %10s %10s %12s %12s %8s %11s %11s %8s\n", "scenario", "N",
	       "p2p p50us", "p2p p99us", "lease p50us", "lease p99us", "ratio99",
	       "p2pL p50us", "p2pL p99us", "L/sync99");
	for (i = 0; i < nrows; i++) {
		struct row *r = &rows[i];

		printf("%-18s %4d %10.0f %10.0f %12.0f %12.0f %8.2f %11.0f %11.0f %8.2f\n",
		       r->name, r->n, r->p50, r->p99, r->lp50, r->lp99,
		       r->p99 > 0 ? r->lp99 / r->p99 : 0, r->pl50, r->pl99,
		       r->p99 > 0 ? r->pl99 / r->p99 : 0);
	}
	printf("# p2p: p2pmap revoking in the truncating task (patch 8); lease: userspace\n"
	       "# F_SETLEASE holders; p2pL: p2pmap through its layout lease (sync_break=0).\n");
	printf("\n%-18s %4s %11s %12s %12s %12s  %-13s %-13s %-13s\n", "scenario", "N",
	       "p2pL p50us", "start->break", "break->rel", "rel->return", "k-dispatch",
	       "k-quiesce", "k-release");
	for (i = 0; i < nrows; i++) {
		struct row *r = &rows[i];

		if (r->n)
			printf("%-18s %4d %11.0f %12.0f %12.0f %12.0f  %6.0f/%-6.0f %6.0f/%-6.0f %6.0f/%-6.0f\n",
			       r->name, r->n, r->pl50, r->pre50, r->kern50, r->post50,
			       r->kd50, r->kd99, r->kq50, r->kq99, r->kr50, r->kr99);
	}
	printf("# p2pmap-lease only. p50 split of its truncate (us): truncate start -> lm_break,\n"
	       "# lm_break -> layout lease released (p2pmap's revocation), released -> truncate\n"
	       "# returns. k-*: p2pmap's own p50/p99 in us (debugfs revoke_latency; log2 bucket\n"
	       "# upper bounds) from the lease break to: the revocation work running\n"
	       "# (dispatch), the importers quiesced (quiesce), the lease released (release).\n");
	if (failures)
		printf("# FAILED: %d mappings not served or not revoked\n", failures);
	return failures ? 1 : 0;
}
