// SPDX-License-Identifier: GPL-2.0
/*
 * DEVICE_MAP_FLAG_PIN: a dma_buf that owns a range's claim on its CMB
 * windows, so that the mapping outlives the vma (munmap, close, exit) and
 * ends with the last dma_buf_put(). The seed proposal: "the mapping
 * lifetime gets disconnected from the vma and is transferred to the dma_buf
 * allocated by filesystem".
 *
 * C because Rust has no dma_buf abstraction. The policy (whether pinning is
 * allowed, which windows, the claim itself) is p2pmap's Rust code; this file
 * is the exporter, modelled on vfio-pci's revocable MMIO dma_buf
 * (drivers/vfio/pci/vfio_pci_dmabuf.c):
 *
 * - attach accepts only importers that take peer memory without struct
 *   pages (allow_peer2peer) and can be revoked (dma_buf_attach_revocable():
 *   an invalidate_mappings callback), and that a PCI switch connects to the
 *   NVMe function (PCI_P2PDMA_MAP_BUS_ADDR), since the sg_table holds the
 *   CMB's bus addresses. An importer that cannot be revoked is refused up
 *   front: a truncate never waits for one, nor leaves it reading freed
 *   memory.
 * - A revocation of the windows (truncate, punch, write, reflink, a CPU
 *   store, CMB pressure, NVMe removal; see src/revocation.rs) calls
 *   p2pmap_pins_revoke(): the pin is marked revoked, every attachment is
 *   invalidated under the reservation lock and its fences waited for, and
 *   the claim is given back once no attachment has the buffer mapped (at
 *   once for an importer that unmaps from its callback, as the contract
 *   asks). A revoked pin maps no more: -ENODEV, the importer asks
 *   device_map() again for fresh contents.
 * - Module unload: each dma_buf holds a reference on the module
 *   (dma_buf_export() takes exp_info.owner), so p2pmap cannot be unloaded
 *   while a pin exists.
 *
 * Locking: pin->lock (a spinlock) guards revoked, claim_held and mapped;
 * it nests outside p2pmap's registry lock (taken by the Rust release).
 * p2pmap_pins_lock guards the list of pins; the list holds no reference,
 * a pin leaves it in its release, and p2pmap_pins_revoke() takes a
 * reference on the dma_buf's file (get_file_active()) before it drops the
 * list lock.
 */
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/file.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "p2pmap_rust.h"
#include "p2pmap_shim.h"

MODULE_IMPORT_NS("DMA_BUF");

struct p2pmap_pin {
	struct list_head node;		/* in p2pmap_pins, from new to release */
	struct dma_buf *dmabuf;		/* set by export, under lock */
	struct pci_dev *nvme;		/* reference held */
	const void *inode;		/* key only, never dereferenced */
	s64 start;			/* file bytes [start, start + npages pages) */
	unsigned long npages;
	u64 *pa;			/* bus addresses, one per page */
	spinlock_t lock;
	bool revoked;			/* under lock */
	bool claim_held;		/* under lock */
	unsigned int mapped;		/* attachments mapped, under lock */
};

static LIST_HEAD(p2pmap_pins);
static DEFINE_SPINLOCK(p2pmap_pins_lock);

/* Longest sg entry: sg_dma_len() is an unsigned int (as fill_sg_entry()). */
#define P2PMAP_PIN_MAX_SEG	ALIGN_DOWN(UINT_MAX, PAGE_SIZE)

/*
 * How long a revocation waits for the importers' fences before it goes on
 * (the windows stay allocated until the importers unmap anyway).
 */
#define P2PMAP_PIN_FENCE_WAIT_MS	10000

/* Whether page @i of @pin starts a new sg entry, @len the current one's. */
static bool p2pmap_pin_new_seg(const struct p2pmap_pin *pin, unsigned long i,
			       unsigned long len)
{
	return !i || pin->pa[i] != pin->pa[i - 1] + PAGE_SIZE ||
	       len + PAGE_SIZE > P2PMAP_PIN_MAX_SEG;
}

/* The key p2pmap's registry records the pin's claim under. */
unsigned long p2pmap_pin_key(const struct p2pmap_pin *pin)
{
	return (unsigned long)pin;
}

/*
 * Gives the claim back if the pin holds it and, unless @force, no
 * attachment maps the buffer.
 */
static void p2pmap_pin_put_claim(struct p2pmap_pin *pin, bool force)
{
	bool release = false;

	spin_lock(&pin->lock);
	if (pin->claim_held && (force || !pin->mapped)) {
		pin->claim_held = false;
		release = true;
	}
	spin_unlock(&pin->lock);
	if (release)
		p2pmap_rust_pin_release(p2pmap_pin_key(pin), pin->pa, pin->npages);
}

struct p2pmap_pin *p2pmap_pin_new(struct pci_dev *nvme, const void *inode,
				  s64 start, unsigned long npages)
{
	struct p2pmap_pin *pin = kzalloc_obj(*pin);

	if (!pin)
		return NULL;
	pin->pa = kvcalloc(npages, sizeof(*pin->pa), GFP_KERNEL);
	if (!pin->pa) {
		kfree(pin);
		return NULL;
	}
	pin->nvme = pci_dev_get(nvme);
	pin->inode = inode;
	pin->start = start;
	pin->npages = npages;
	spin_lock_init(&pin->lock);
	/* Listed before it claims: a revocation from then on finds it. */
	spin_lock(&p2pmap_pins_lock);
	list_add_tail(&pin->node, &p2pmap_pins);
	spin_unlock(&p2pmap_pins_lock);
	return pin;
}

static void p2pmap_pin_free(struct p2pmap_pin *pin)
{
	spin_lock(&p2pmap_pins_lock);
	list_del(&pin->node);
	spin_unlock(&p2pmap_pins_lock);
	pci_dev_put(pin->nvme);
	kvfree(pin->pa);
	kfree(pin);
}

/* A pin that was never exported (its claim, if any, given back by Rust). */
void p2pmap_pin_discard(struct p2pmap_pin *pin)
{
	p2pmap_pin_free(pin);
}

static int p2pmap_pin_attach(struct dma_buf *dmabuf,
			     struct dma_buf_attachment *attach)
{
	struct p2pmap_pin *pin = dmabuf->priv;

	if (!attach->peer2peer || !dma_buf_attach_revocable(attach))
		return -EOPNOTSUPP;
	if (READ_ONCE(pin->revoked))
		return -ENODEV;
	if (pci_p2pdma_distance(pin->nvme, attach->dev, false) < 0 ||
	    !p2pmap_p2p_bus_addr_path(pin->nvme, attach->dev))
		return -EXDEV;
	return 0;
}

/* One sg entry per run of contiguous bus addresses (no struct page). */
static struct sg_table *p2pmap_pin_map(struct dma_buf_attachment *attach,
				       enum dma_data_direction dir)
{
	struct p2pmap_pin *pin = attach->dmabuf->priv;
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned long i, len = 0, runs = 0;
	int ret;

	dma_resv_assert_held(attach->dmabuf->resv);
	if (dir != DMA_TO_DEVICE)
		return ERR_PTR(-EACCES);	/* the windows are read-only copies */
	for (i = 0; i < pin->npages; i++) {
		if (p2pmap_pin_new_seg(pin, i, len)) {
			runs++;
			len = 0;
		}
		len += PAGE_SIZE;
	}
	sgt = kzalloc_obj(*sgt);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table(sgt, runs, GFP_KERNEL | __GFP_ZERO);
	if (ret) {
		kfree(sgt);
		return ERR_PTR(ret);
	}
	spin_lock(&pin->lock);
	if (pin->revoked) {
		spin_unlock(&pin->lock);
		sg_free_table(sgt);
		kfree(sgt);
		return ERR_PTR(-ENODEV);
	}
	pin->mapped++;
	spin_unlock(&pin->lock);

	sg = NULL;
	len = 0;
	for (i = 0; i < pin->npages; i++) {
		if (p2pmap_pin_new_seg(pin, i, len)) {
			sg = sg ? sg_next(sg) : sgt->sgl;
			sg_set_page(sg, NULL, 0, 0);
			sg_dma_address(sg) = pin->pa[i];
			sg_dma_len(sg) = 0;
			len = 0;
		}
		sg_dma_len(sg) += PAGE_SIZE;
		len += PAGE_SIZE;
	}
	/*
	 * No CPU list: only the DMA side is valid (as dma_buf_phys_vec_to_sgt());
	 * unmap restores orig_nents for sg_free_table().
	 */
	sgt->orig_nents = 0;
	return sgt;
}

static void p2pmap_pin_unmap(struct dma_buf_attachment *attach,
			     struct sg_table *sgt, enum dma_data_direction dir)
{
	struct p2pmap_pin *pin = attach->dmabuf->priv;
	bool revoked;

	dma_resv_assert_held(attach->dmabuf->resv);
	/* sg_free_table() frees orig_nents entries: all that map allocated. */
	sgt->orig_nents = sgt->nents;
	sg_free_table(sgt);
	kfree(sgt);
	spin_lock(&pin->lock);
	pin->mapped--;
	revoked = pin->revoked;
	spin_unlock(&pin->lock);
	/* The last unmap after a revocation frees the windows. */
	if (revoked)
		p2pmap_pin_put_claim(pin, false);
}

/* The last dma_buf_put(): nothing maps or attaches the buffer any more. */
static void p2pmap_pin_release(struct dma_buf *dmabuf)
{
	struct p2pmap_pin *pin = dmabuf->priv;

	p2pmap_pin_put_claim(pin, true);
	p2pmap_pin_free(pin);
}

static const struct dma_buf_ops p2pmap_pin_ops = {
	.attach = p2pmap_pin_attach,
	.map_dma_buf = p2pmap_pin_map,
	.unmap_dma_buf = p2pmap_pin_unmap,
	.release = p2pmap_pin_release,
};

/*
 * Called once the pin holds its claim on the windows of @pa (one bus
 * address per page): creates the dma_buf, which owns the pin from now on.
 * On error the claim is given back and the pin freed. A revocation that
 * came in between (the pin is listed from p2pmap_pin_new() on) fails the
 * export with -EBUSY, or leaves a revoked buffer that maps nothing.
 */
struct dma_buf *p2pmap_pin_export(struct p2pmap_pin *pin, const u64 *pa)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct dma_buf *dmabuf;
	bool revoked;

	memcpy(pin->pa, pa, pin->npages * sizeof(*pa));
	spin_lock(&pin->lock);
	pin->claim_held = true;
	revoked = pin->revoked;
	spin_unlock(&pin->lock);

	exp.ops = &p2pmap_pin_ops;
	exp.size = pin->npages << PAGE_SHIFT;
	exp.flags = O_RDONLY | O_CLOEXEC;
	exp.priv = pin;
	dmabuf = revoked ? ERR_PTR(-EBUSY) : dma_buf_export(&exp);
	if (IS_ERR(dmabuf)) {
		p2pmap_pin_put_claim(pin, true);
		p2pmap_pin_free(pin);
		return dmabuf;
	}
	spin_lock(&pin->lock);
	pin->dmabuf = dmabuf;
	revoked = pin->revoked;
	spin_unlock(&pin->lock);
	/*
	 * Revoked while exporting: the caller must not get the bus addresses
	 * of windows about to be freed. The put releases the buffer, the
	 * claim and the pin.
	 */
	if (revoked) {
		dma_buf_put(dmabuf);
		return ERR_PTR(-EBUSY);
	}
	return dmabuf;
}

/*
 * Revokes every exported pin of @inode (NULL: of any inode) whose file
 * range meets [@start, @end) and whose CMB is @nvme's (NULL: any). Returns
 * how many it revoked. Process context, sleeps (reservation lock, fences);
 * call without p2pmap's locks.
 */
unsigned int p2pmap_pins_revoke(const void *inode, s64 start, s64 end,
				const struct pci_dev *nvme)
{
	struct p2pmap_pin *pin;
	struct dma_buf *todo[16];
	unsigned int n, i, total = 0;

	do {
		n = 0;
		spin_lock(&p2pmap_pins_lock);
		list_for_each_entry(pin, &p2pmap_pins, node) {
			s64 pin_end = pin->start + (s64)(pin->npages << PAGE_SHIFT);
			struct dma_buf *dmabuf;

			if ((inode && pin->inode != inode) ||
			    (nvme && pin->nvme != nvme) ||
			    pin_end <= start || pin->start >= end)
				continue;
			spin_lock(&pin->lock);
			if (pin->revoked) {
				spin_unlock(&pin->lock);
				continue;
			}
			/* Not exported yet: the export sees it and fails. */
			pin->revoked = true;
			dmabuf = pin->dmabuf;
			spin_unlock(&pin->lock);
			/* A dma_buf being released gives its claim back itself. */
			if (!dmabuf || !get_file_active(&dmabuf->file))
				continue;
			todo[n++] = dmabuf;
			if (n == ARRAY_SIZE(todo))
				break;
		}
		spin_unlock(&p2pmap_pins_lock);

		for (i = 0; i < n; i++) {
			struct dma_buf *dmabuf = todo[i];

			dma_resv_lock(dmabuf->resv, NULL);
			dma_buf_invalidate_mappings(dmabuf);
			/*
			 * Bounded: the caller may hold filesystem locks. A
			 * mapping left keeps its windows until it is unmapped.
			 */
			if (dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP,
						  false,
						  msecs_to_jiffies(P2PMAP_PIN_FENCE_WAIT_MS)) <= 0)
				pr_warn_ratelimited("p2pmap: a pinned buffer's importer fences did not signal within %d ms\n",
						    P2PMAP_PIN_FENCE_WAIT_MS);
			dma_resv_unlock(dmabuf->resv);
			/* Importers that unmapped in their callback: free now. */
			p2pmap_pin_put_claim(dmabuf->priv, false);
			fput(dmabuf->file);
		}
		total += n;
	} while (n == ARRAY_SIZE(todo));
	return total;
}
