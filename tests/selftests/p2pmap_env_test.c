// SPDX-License-Identifier: GPL-2.0
/*
 * Guest environment of p2pmap: the module is loaded and exposes its
 * counters, the NVMe CMB is published as PCI P2P memory, and the NVMe and
 * edu functions sit behind one PCIe switch (so P2P between them is allowed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "p2pmap_pci_util.h"

/* The sysfs path (realpath) of the function find_pci_name() finds. */
static int find_pci(unsigned long vendor, unsigned long device,
		    unsigned long class, char *out, size_t len)
{
	char name[64], p[PATH_MAX];

	if (len < PATH_MAX || find_pci_name(vendor, device, class, name, sizeof(name)))
		return -1;
	snprintf(p, sizeof(p), PCI_DEVICES "/%s", name);
	return realpath(p, out) ? 0 : -1;
}

TEST(module_loaded_with_counters)
{
	char line[256];
	int have_map_calls = 0, have_refused = 0;
	FILE *f;

	ASSERT_EQ(0, access("/sys/module/p2pmap", F_OK));
	f = fopen("/sys/kernel/debug/p2pmap/stats", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "map_calls ", 10))
			have_map_calls = 1;
		if (!strncmp(line, "refused_", 8))
			have_refused++;
	}
	fclose(f);
	EXPECT_TRUE(have_map_calls);
	EXPECT_GT(have_refused, 0);
}

TEST(nvme_cmb_is_published_p2pmem)
{
	char nvme[PATH_MAX], p[PATH_MAX + 32];
	unsigned long size = 0, published = 0;

	/* NVMe: class 0x010802 */
	ASSERT_EQ(0, find_pci(0, 0, 0x010802, nvme, sizeof(nvme)));
	snprintf(p, sizeof(p), "%s/p2pmem/size", nvme);
	ASSERT_EQ(0, read_num(p, &size)) TH_LOG("no %s", p);
	EXPECT_EQ(64UL << 20, size);
	snprintf(p, sizeof(p), "%s/p2pmem/published", nvme);
	ASSERT_EQ(0, read_num(p, &published));
	EXPECT_EQ(1, published);
}

TEST(nvme_and_edu_share_one_switch)
{
	char nvme[PATH_MAX], edu[PATH_MAX], up[PATH_MAX], upcls[PATH_MAX + 8];
	unsigned long cls;
	char *a, *b;

	ASSERT_EQ(0, find_pci(0, 0, 0x010802, nvme, sizeof(nvme)));
	ASSERT_EQ(0, find_pci(0x1234, 0x11e8, 0, edu, sizeof(edu)));
	/* .../<root port>/<upstream port>/<downstream port>/<function> */
	a = strrchr(nvme, '/');
	b = strrchr(edu, '/');
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	*a = 0;
	*b = 0;
	/* different downstream ports ... */
	EXPECT_STRNE(nvme, edu);
	a = strrchr(nvme, '/');
	b = strrchr(edu, '/');
	*a = 0;
	*b = 0;
	/* ... of the same upstream port */
	ASSERT_STREQ(nvme, edu);
	snprintf(up, sizeof(up), "%s", nvme);
	snprintf(upcls, sizeof(upcls), "%s/class", up);
	ASSERT_EQ(0, read_num(upcls, &cls));
	EXPECT_EQ(0x060400, cls) TH_LOG("upstream port %s is not a PCI bridge", up);
}

TEST_HARNESS_MAIN
