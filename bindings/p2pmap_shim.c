// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of static inline kernel functions, linked into the
 * same .ko as the Rust code that calls them.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/device_map.h>
#include <linux/exportfs.h>
#include <linux/exportfs_block.h>
#include <linux/fadvise.h>
#include <linux/fs.h>
#include <linux/iomap.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>
#include <linux/sched.h>
#include <linux/wait_bit.h>

#include "p2pmap_shim.h"

int p2pmap_file_map_blocks(struct file *file, loff_t offset, u64 len,
			   struct iomap *iomap, bool write)
{
	struct inode *inode = file_inode(file);
	const struct exportfs_block_ops *bops = inode->i_sb->s_export_op->block_ops;
	u32 gen;

	return bops->map_blocks(inode, offset, len, iomap, write, &gen);
}

int p2pmap_file_commit_blocks(struct file *file, struct iomap *maps, int nr,
			      loff_t new_size)
{
	struct inode *inode = file_inode(file);
	const struct exportfs_block_ops *bops = inode->i_sb->s_export_op->block_ops;

	return bops->commit_blocks(inode, maps, nr, new_size);
}

static int p2pmap_bdev_rw_p2p(struct file *file, u64 addr, void *vaddr,
			      size_t len, blk_opf_t opf)
{
	struct block_device *bdev = file_inode(file)->i_sb->s_bdev;
	size_t done = 0;
	int ret;

	if (!IS_ALIGNED(addr, SECTOR_SIZE) || !IS_ALIGNED(len, SECTOR_SIZE))
		return -EINVAL;
	while (done < len) {
		unsigned int nr = min_t(size_t, DIV_ROUND_UP(len - done, PAGE_SIZE) + 1,
					BIO_MAX_VECS);
		struct bio *bio = bio_alloc(bdev, nr, opf, GFP_KERNEL);

		bio->bi_iter.bi_sector = (addr + done) >> SECTOR_SHIFT;
		while (done < len && bio->bi_vcnt < nr) {
			void *p = vaddr + done;
			size_t chunk = min_t(size_t, len - done,
					     PAGE_SIZE - offset_in_page(p));

			__bio_add_page(bio, virt_to_page(p), chunk, offset_in_page(p));
			done += chunk;
		}
		ret = submit_bio_wait(bio);
		bio_put(bio);
		if (ret)
			return ret;
	}
	return 0;
}

int p2pmap_bdev_read_p2p(struct file *file, u64 addr, void *vaddr, size_t len)
{
	return p2pmap_bdev_rw_p2p(file, addr, vaddr, len, REQ_OP_READ);
}

int p2pmap_bdev_write_p2p(struct file *file, u64 addr, void *vaddr, size_t len)
{
	return p2pmap_bdev_rw_p2p(file, addr, vaddr, len, REQ_OP_WRITE);
}

int p2pmap_bdev_flush(struct file *file)
{
	return blkdev_issue_flush(file_inode(file)->i_sb->s_bdev);
}

long p2pmap_file_flush_cpu_range(struct file *file, loff_t start, loff_t end)
{
	struct address_space *mapping = file->f_mapping;
	bool dirty = filemap_range_needs_writeback(mapping, start, end - 1);

	if (!dirty)
		return 0;
	/*
	 * Not filemap_write_and_wait_range(): it reports (and clears) errors
	 * of earlier writeback of the whole mapping, which belong to the
	 * CPU's writers and must not fail this write-back.
	 */
	filemap_fdatawrite_range(mapping, start, end - 1);
	filemap_fdatawait_range_keep_errors(mapping, start, end - 1);
	return end - start;
}

void p2pmap_file_set_error(struct file *file, int err)
{
	mapping_set_error(file->f_mapping, err);
}

void p2pmap_p2pmem_zero(void *vaddr, size_t len)
{
	memset(vaddr, 0, len);
}

void p2pmap_file_unmap_range(struct file *file, loff_t start, loff_t len)
{
	unmap_mapping_range(file->f_mapping, start, len, 0);
}

void p2pmap_inode_unmap_range(struct inode *inode, loff_t start, loff_t end)
{
	/*
	 * Whole pages: unmap_mapping_range() starts at the page of @start and
	 * counts whole pages from there, so [4095, 4097) would miss page 1.
	 */
	loff_t first = round_down(start, PAGE_SIZE);

	/* holelen 0: to the end of the file. */
	if (end > LLONG_MAX - PAGE_SIZE)
		unmap_mapping_range(inode->i_mapping, first, 0, 0);
	else
		unmap_mapping_range(inode->i_mapping, first,
				    round_up(end, PAGE_SIZE) - first, 0);
}

struct inode *p2pmap_file_inode(const struct file *file)
{
	return file_inode(file);
}

loff_t p2pmap_file_size(struct file *file)
{
	return i_size_read(file_inode(file));
}

struct file *p2pmap_vma_file(struct vm_area_struct *vma)
{
	return vma->vm_file;
}

loff_t p2pmap_vma_file_pos(struct vm_area_struct *vma, unsigned long addr)
{
	return ((loff_t)vma->vm_pgoff << PAGE_SHIFT) + (addr - vma->vm_start);
}

bool p2pmap_file_has_block_ops(struct file *file)
{
	struct super_block *sb = file_inode(file)->i_sb;
	const struct exportfs_block_ops *bops;

	if (!sb->s_export_op)
		return false;
	bops = sb->s_export_op->block_ops;
	return bops && bops->map_blocks && bops->commit_blocks;
}

bool p2pmap_file_is_dax(struct file *file)
{
	return IS_DAX(file_inode(file));
}

struct pci_dev *p2pmap_file_pci_dev(struct file *file)
{
	struct block_device *bdev = file_inode(file)->i_sb->s_bdev;
	struct device *dev;

	if (!bdev)
		return NULL;
	for (dev = disk_to_dev(bdev->bd_disk); dev; dev = dev->parent)
		if (dev_is_pci(dev))
			return pci_dev_get(to_pci_dev(dev));
	return NULL;
}

/* Widens [*first, *last] to whole folios cached at its two ends. */
static void p2pmap_widen_to_folios(struct address_space *mapping,
				   pgoff_t *first, pgoff_t *last)
{
	struct folio *folio;

	folio = filemap_get_folio(mapping, *first);
	if (!IS_ERR(folio)) {
		*first = min(*first, folio->index);
		folio_put(folio);
	}
	folio = filemap_get_folio(mapping, *last);
	if (!IS_ERR(folio)) {
		*last = max(*last, folio_next_index(folio) - 1);
		folio_put(folio);
	}
}

bool p2pmap_file_is_swapfile(struct file *file)
{
	return IS_SWAPFILE(file_inode(file));
}

/*
 * The checks a write() of @file makes before it changes anything
 * (generic_write_checks(), file_remove_privs() aside, and
 * sb_start_write()'s freeze protection), for a device write mapping.
 */
int p2pmap_file_write_check(struct file *file)
{
	struct inode *inode = file_inode(file);

	if (!(file->f_mode & FMODE_WRITE))
		return P2PMAP_WRITE_FD_READ_ONLY;
	if (IS_IMMUTABLE(inode))
		return P2PMAP_WRITE_IMMUTABLE;
	if (IS_APPEND(inode))
		return P2PMAP_WRITE_APPEND_ONLY;
	if (sb_rdonly(inode->i_sb) || __mnt_is_readonly(file->f_path.mnt))
		return P2PMAP_WRITE_FS_READ_ONLY;
	if (READ_ONCE(inode->i_sb->s_writers.frozen) != SB_UNFROZEN)
		return P2PMAP_WRITE_FS_FROZEN;
	return P2PMAP_WRITE_OK;
}

void p2pmap_file_wait_direct_io(struct file *file)
{
	struct inode *inode = file_inode(file);

	/*
	 * An aligned direct write holds the iolock shared only while it
	 * submits (xfs_file_dio_write_aligned()) and completes later; XFS's
	 * map_blocks does not wait for it. Taking i_rwsem exclusively orders
	 * us after every submitter that passed its layout break before our
	 * lease existed (it has done inode_dio_begin() by the time it
	 * unlocks); writers that come later break the lease.
	 */
	inode_lock(inode);
	inode_dio_wait(inode);
	inode_unlock(inode);
}

bool p2pmap_file_drop_clean_cache(struct file *file, loff_t start, loff_t end)
{
	struct address_space *mapping = file->f_mapping;
	pgoff_t first, last;

	if (end <= start)
		return false;
	first = start >> PAGE_SHIFT;
	last = (end - 1) >> PAGE_SHIFT;
	invalidate_mapping_pages(mapping, first, last);
	if (!filemap_range_has_page(mapping, start, end - 1))
		return false;
	/*
	 * invalidate_mapping_pages() skips a large folio that straddles the
	 * range (find_lock_entries() only returns whole folios inside it):
	 * drop such a folio whole, if it is clean and unmapped.
	 */
	p2pmap_widen_to_folios(mapping, &first, &last);
	invalidate_mapping_pages(mapping, first, last);
	if (!filemap_range_has_page(mapping, start, end - 1))
		return false;
	/*
	 * A clean, unmapped folio can still carry a reference from a per-CPU
	 * LRU batch (lru_add, activate after a fault or a read, deactivate
	 * after a failed invalidation) of any CPU, which makes
	 * invalidate_mapping_pages() skip it: the range is refused until that
	 * CPU happens to drain. Seen as spurious EBUSY refusals in the
	 * slow-machine runs. generic_fadvise(POSIX_FADV_DONTNEED) handles
	 * exactly that (lru_add_drain_all(), not exported, then invalidates
	 * again). Only when nothing in the range is dirty or under writeback,
	 * so that its flush starts no writeback here, under mmap_lock; XFS's
	 * ->fadvise takes no lock for DONTNEED.
	 */
	if (filemap_range_needs_writeback(mapping, start, end - 1))
		return true;
	vfs_fadvise(file, (loff_t)first << PAGE_SHIFT,
		    (loff_t)(last - first + 1) << PAGE_SHIFT, POSIX_FADV_DONTNEED);
	return filemap_range_has_page(mapping, start, end - 1);
}

unsigned long p2pmap_layout(int item)
{
	switch (item) {
	case P2PMAP_SZ_VMA:
		return sizeof(struct vm_area_struct);
	case P2PMAP_SZ_VM_OPS:
		return sizeof(struct vm_operations_struct);
	case P2PMAP_SZ_DEVICE_MAP_PROVIDER:
		return sizeof(struct device_map_provider);
	case P2PMAP_OFF_VMA_VM_FILE:
		return offsetof(struct vm_area_struct, vm_file);
	case P2PMAP_OFF_VMA_VM_MM:
		return offsetof(struct vm_area_struct, vm_mm);
	}
	return ~0UL;
}

u64 p2pmap_p2pmem_capacity(struct pci_dev *pdev)
{
	void *probe = pci_alloc_p2pmem(pdev, PAGE_SIZE);
	u64 cap = 0;
	pci_bus_addr_t bus;
	int i;

	if (!probe)
		return 0;
	bus = pci_p2pmem_virt_to_bus(pdev, probe);
	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		pci_bus_addr_t start = pci_bus_address(pdev, i);

		if ((pci_resource_flags(pdev, i) & IORESOURCE_MEM) &&
		    bus >= start && bus - start < pci_resource_len(pdev, i)) {
			cap = pci_resource_len(pdev, i);
			break;
		}
	}
	pci_free_p2pmem(pdev, probe, PAGE_SIZE);
	return cap;
}

/*
 * Whether P2P DMA between @provider and @client is routed by a PCI switch
 * (PCI_P2PDMA_MAP_BUS_ADDR): the client's DMA engine is programmed with PCI
 * bus addresses, which is what device_map() hands out. Through a host
 * bridge (even an allow-listed one) the importer would need a DMA mapping
 * instead. pci_p2pdma_map_type() (exported by patch 9) answers it, cached
 * per client. It reads only the provider's owner, and copes with a function
 * whose P2PDMA state is gone (its driver unbinding): describe the function
 * on the stack rather than ask pcim_p2pdma_provider(), which WARNs then.
 * The RCU read side keeps that state, if still there, alive while the map
 * type is looked up and cached (pci_p2pdma_release() waits for readers
 * before it destroys the cache of a function with published P2P memory,
 * which p2pmap checked before it staged anything from the function).
 */
bool p2pmap_p2p_bus_addr_path(struct pci_dev *provider, struct device *client)
{
	struct p2pdma_provider mem = { .owner = &provider->dev };
	bool bus_addr;

	rcu_read_lock();
	bus_addr = pci_p2pdma_map_type(&mem, client) == PCI_P2PDMA_MAP_BUS_ADDR;
	rcu_read_unlock();
	return bus_addr;
}

/* One function's AtomicOp registers (all zero for conventional PCI). */
static void p2pmap_atomic_read(struct pci_dev *pdev, struct p2pmap_atomic_fn *fn)
{
	u32 cap = 0, ctl = 0;

	fn->pcie = pci_is_pcie(pdev);
	if (fn->pcie) {
		pcie_capability_read_dword(pdev, PCI_EXP_DEVCAP2, &cap);
		pcie_capability_read_dword(pdev, PCI_EXP_DEVCTL2, &ctl);
	}
	fn->devcap2 = cap;
	fn->devctl2 = ctl;
	fn->egress = false;
	strscpy(fn->name, pci_name(pdev), sizeof(fn->name));
}

static int p2pmap_bridges_below(struct pci_dev *dev, struct pci_dev *top)
{
	int n = 0;

	for (dev = pci_upstream_bridge(dev); dev && dev != top;
	     dev = pci_upstream_bridge(dev))
		n++;
	return n;
}

/*
 * The path is found like pci_p2pdma's calc_map_type_and_dist(): up from
 * both ends to their first common upstream bridge, which routes between its
 * downstream ports without the request passing through it. Requester and
 * egress rules follow pci_enable_atomic_ops_to_root(): only (legacy)
 * endpoints issue AtomicOps, a VF's requester enable is its PF's (PCIe r7.0,
 * sec 7.5.3.16), upstream ports are the egress side on the way up and
 * downstream ports on the way down. The caller holds references on both
 * ends, which keep their upstream bridges alive.
 */
int p2pmap_atomic_path(struct pci_dev *completer, struct device *client,
		       struct p2pmap_atomic_fn *requester,
		       struct p2pmap_atomic_fn *completer_fn,
		       struct p2pmap_atomic_fn *ports, int max_ports)
{
	struct pci_dev *req, *a, *b, *common = NULL;
	int up, down, i;
	u32 ctl = 0;

	if (!dev_is_pci(client))
		return -ENODEV;
	req = to_pci_dev(client);

	for (a = pci_upstream_bridge(req); a && !common; a = pci_upstream_bridge(a))
		for (b = pci_upstream_bridge(completer); b; b = pci_upstream_bridge(b))
			if (a == b) {
				common = a;
				break;
			}
	if (!common)
		return -EXDEV;
	up = p2pmap_bridges_below(req, common);
	down = p2pmap_bridges_below(completer, common);
	if (up + down > max_ports)
		return -E2BIG;

	p2pmap_atomic_read(req, requester);
	requester->pcie = pci_is_pcie(req) &&
			  (pci_pcie_type(req) == PCI_EXP_TYPE_ENDPOINT ||
			   pci_pcie_type(req) == PCI_EXP_TYPE_LEG_END);
	if (requester->pcie && req->is_virtfn) {
		pcie_capability_read_dword(pci_physfn(req), PCI_EXP_DEVCTL2, &ctl);
		requester->devctl2 = ctl;
	}
	p2pmap_atomic_read(completer, completer_fn);

	i = 0;
	for (a = pci_upstream_bridge(req); a != common; a = pci_upstream_bridge(a)) {
		p2pmap_atomic_read(a, &ports[i]);
		ports[i].egress = ports[i].pcie &&
				  pci_pcie_type(a) == PCI_EXP_TYPE_UPSTREAM;
		i++;
	}
	/* The completer's side, filled from its end: top down in @ports. */
	i = up + down;
	for (b = pci_upstream_bridge(completer); b != common; b = pci_upstream_bridge(b)) {
		i--;
		p2pmap_atomic_read(b, &ports[i]);
		ports[i].egress = ports[i].pcie &&
				  pci_pcie_type(b) == PCI_EXP_TYPE_DOWNSTREAM;
	}
	return up + down;
}

u32 p2pmap_file_sdev(struct file *file)
{
	return file_inode(file)->i_sb->s_dev;
}

u64 p2pmap_file_ino(struct file *file)
{
	return file_inode(file)->i_ino;
}

static atomic_t p2pmap_cmb_free_count = ATOMIC_INIT(0);

void p2pmap_cmb_freed(void)
{
	atomic_inc(&p2pmap_cmb_free_count);
	/* Orders the count before wake_up_var()'s waitqueue check. */
	smp_mb__after_atomic();
	wake_up_var(&p2pmap_cmb_free_count);
}

unsigned int p2pmap_cmb_frees(void)
{
	return atomic_read_acquire(&p2pmap_cmb_free_count);
}

bool p2pmap_cmb_wait_freed(unsigned int seen, unsigned int timeout_ms)
{
	return wait_var_event_timeout(&p2pmap_cmb_free_count,
				      atomic_read_acquire(&p2pmap_cmb_free_count) != seen,
				      msecs_to_jiffies(timeout_ms)) > 0;
}
