/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PCI facts for the guest tests, read from sysfs the way an administrator
 * would (lspci reads the same files): where the NVMe function and the edu
 * importer are, the PCI Express registers that decide PCIe AtomicOps
 * between them, and the path of bridges a request crosses. An oracle
 * independent of p2pmap's own reading of the same registers
 * (bindings/p2pmap_shim.c, p2pmap_atomic_path()).
 */
#ifndef P2PMAP_PCI_UTIL_H
#define P2PMAP_PCI_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCI_DEVICES "/sys/bus/pci/devices"

/* Copies @src into @dst of @len bytes; -1 if it does not fit. */
static inline int copy_name(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

/* The sysfs name (0000:02:00.0) of the NVMe function of nvme0; 0 if found. */
static inline int nvme_pci_name(char *name, size_t len)
{
	char link[PATH_MAX];
	ssize_t n = readlink("/sys/class/nvme/nvme0/device", link, sizeof(link) - 1);
	const char *base;

	if (n <= 0)
		return -1;
	link[n] = 0;
	base = strrchr(link, '/');
	return copy_name(name, len, base ? base + 1 : link);
}

/* Reads one number from a sysfs file, in hex (0x...) or decimal. */
static inline int read_num(const char *path, unsigned long *val)
{
	FILE *f = fopen(path, "r");
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%li", (long *)val) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static inline unsigned long pci_attr(const char *dev, const char *attr)
{
	char path[PATH_MAX];
	unsigned long v;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", dev, attr);
	return read_num(path, &v) ? ~0ul : v;
}

/*
 * The sysfs name of the first PCI function with the given vendor, device
 * and class (0: any); 0 if found.
 */
static inline int find_pci_name(unsigned long vendor, unsigned long device,
				unsigned long class, char *name, size_t len)
{
	DIR *d = opendir(PCI_DEVICES);
	struct dirent *e;
	int ret = -1;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if ((vendor && pci_attr(e->d_name, "vendor") != vendor) ||
		    (device && pci_attr(e->d_name, "device") != device) ||
		    (class && pci_attr(e->d_name, "class") != class))
			continue;
		ret = copy_name(name, len, e->d_name);
		break;
	}
	closedir(d);
	return ret;
}

/* The sysfs name of QEMU's edu function (1234:11e8); 0 if found. */
static inline int edu_pci_name(char *name, size_t len)
{
	return find_pci_name(0x1234, 0x11e8, 0, name, len);
}

/* PCI Express registers of one function (all 0 without the capability). */
struct pcie_regs {
	int pcie;
	unsigned int type;	/* PCI_EXP_FLAGS_TYPE */
	uint32_t devcap2;
	uint16_t devctl2;
};

#define PCIE_TYPE_ENDPOINT	0x0
#define PCIE_TYPE_LEG_END	0x1
#define PCIE_TYPE_UPSTREAM	0x5
#define PCIE_TYPE_DOWNSTREAM	0x6
#define DEVCAP2_ATOMIC_ROUTE	0x00000040
#define DEVCAP2_ATOMIC_COMP32	0x00000080
#define DEVCAP2_ATOMIC_COMP64	0x00000100
#define DEVCTL2_ATOMIC_REQ	0x0040
#define DEVCTL2_ATOMIC_EGRESS_BLOCK 0x0080

/* Reads @dev's config space from sysfs and walks its capability list. */
static inline int pcie_regs_read(const char *dev, struct pcie_regs *r)
{
	unsigned char cfg[256];
	char path[PATH_MAX];
	unsigned int pos, guard = 0;
	int fd;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/config", dev);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	if (pread(fd, cfg, sizeof(cfg), 0) != sizeof(cfg)) {
		close(fd);
		return -1;
	}
	close(fd);
	if (!(cfg[0x06] & 0x10))	/* PCI_STATUS_CAP_LIST */
		return 0;
	for (pos = cfg[0x34] & ~3u; pos >= 0x40 && pos < 0xfc && guard < 48;
	     pos = cfg[pos + 1] & ~3u, guard++) {
		if (cfg[pos] != 0x10)	/* PCI_CAP_ID_EXP */
			continue;
		r->pcie = 1;
		r->type = (cfg[pos + 2] >> 4) & 0xf;
		if (pos + 0x2a > sizeof(cfg))
			return -1;
		r->devcap2 = cfg[pos + 0x24] | cfg[pos + 0x25] << 8 |
			     cfg[pos + 0x26] << 16 | (uint32_t)cfg[pos + 0x27] << 24;
		r->devctl2 = cfg[pos + 0x28] | cfg[pos + 0x29] << 8;
		return 0;
	}
	return 0;
}

/*
 * The sysfs device path of @dev split into its PCI components, root first:
 * /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/... -> the bridges
 * above @dev, then @dev. Returns the count (at most @max).
 */
static inline int pci_chain(const char *dev, char chain[][16], int max)
{
	char link[PATH_MAX], path[PATH_MAX], *tok, *save;
	int n = 0;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s", dev);
	if (!realpath(path, link))
		return -1;
	for (tok = strtok_r(link, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		unsigned int a, b, c, d;

		if (sscanf(tok, "%x:%x:%x.%x", &a, &b, &c, &d) != 4 || n == max)
			continue;
		if (!copy_name(chain[n], 16, tok))
			n++;
	}
	return n;
}

/*
 * The refusal reason p2pmap must count for an AtomicOp request from
 * @requester to @completer, decided here from the registers in the order
 * Documentation/admin-guide.rst gives: completer, every switch port of the
 * path (requester side up, completer side down), requester. NULL if
 * AtomicOps are possible; "?" if sysfs could not be read.
 */
static inline const char *expected_atomic_refusal(const char *requester,
						  const char *completer)
{
	char up[16][16], down[16][16];
	struct pcie_regs req, comp, port;
	int nu = pci_chain(requester, up, 16), nd = pci_chain(completer, down, 16);
	int common = 0, i;

	if (nu < 2 || nd < 2 || pcie_regs_read(requester, &req) ||
	    pcie_regs_read(completer, &comp))
		return "?";
	/* The first common bridge: the longest shared prefix of the chains. */
	while (common < nu - 1 && common < nd - 1 && !strcmp(up[common], down[common]))
		common++;
	if (common == 0)
		return "?";
	common--;	/* index of the common bridge */
	if (!comp.pcie || (comp.devcap2 & (DEVCAP2_ATOMIC_COMP32 | DEVCAP2_ATOMIC_COMP64)) !=
			  (DEVCAP2_ATOMIC_COMP32 | DEVCAP2_ATOMIC_COMP64))
		return "atomic_completer";
	/* Requester side, from just above the requester up to the common bridge. */
	for (i = nu - 2; i > common; i--) {
		if (pcie_regs_read(up[i], &port))
			return "?";
		if (!port.pcie || !(port.devcap2 & DEVCAP2_ATOMIC_ROUTE))
			return "atomic_routing";
		if (port.type == PCIE_TYPE_UPSTREAM && (port.devctl2 & DEVCTL2_ATOMIC_EGRESS_BLOCK))
			return "atomic_egress_blocked";
	}
	/* Completer side, from below the common bridge down. */
	for (i = common + 1; i <= nd - 2; i++) {
		if (pcie_regs_read(down[i], &port))
			return "?";
		if (!port.pcie || !(port.devcap2 & DEVCAP2_ATOMIC_ROUTE))
			return "atomic_routing";
		if (port.type == PCIE_TYPE_DOWNSTREAM && (port.devctl2 & DEVCTL2_ATOMIC_EGRESS_BLOCK))
			return "atomic_egress_blocked";
	}
	if (!req.pcie || (req.type != PCIE_TYPE_ENDPOINT && req.type != PCIE_TYPE_LEG_END) ||
	    !(req.devctl2 & DEVCTL2_ATOMIC_REQ))
		return "atomic_requester";
	return NULL;
}

#endif /* P2PMAP_PCI_UTIL_H */
