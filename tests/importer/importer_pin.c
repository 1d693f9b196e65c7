// SPDX-License-Identifier: GPL-2.0
/*
 * The test importer's DEVICE_MAP_FLAG_PIN path: what a GPU or NIC driver
 * does with the dma_buf device_map() returns for a pinned range. C because
 * Rust has no dma_buf abstraction; the Rust driver holds a struct
 * importer_pin per handle (tests/importer/ffi.rs, PinnedBuf).
 *
 * The edu device is a dynamic importer (Documentation/driver-api/dma-buf.rst):
 * it attaches with allow_peer2peer (the buffer is CMB memory without struct
 * pages) and an invalidate_mappings callback, maps the attachment under the
 * reservation lock, and reads the sg_table's bus addresses with its DMA
 * engine under pin->lock, one chunk at a time. The callback, called with
 * the reservation lock held, takes pin->lock (so the transfer in progress
 * ends first), unmaps the attachment and marks the handle revoked: the
 * exporter may free the memory as soon as it returns. A revoked handle
 * stays revoked (the exporter's buffer maps no more; map the file again).
 *
 * Lock order: the reservation lock, then pin->lock. Device access takes
 * only pin->lock.
 */
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include "../include/p2pmap_importer.h"
#include "importer_shim.h"

MODULE_IMPORT_NS("DMA_BUF");

/* device_map() calls that released mmap_lock before one PIN map gives up. */
#define IMPORTER_PIN_ATTEMPTS	16
/* How long a map waits for the buffer's write fences. */
#define IMPORTER_PIN_FENCE_WAIT_MS	10000

struct importer_pin {
	struct dma_buf *dmabuf;			/* our reference */
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;			/* under the reservation lock */
	struct mutex lock;			/* device access vs. invalidation */
	dma_addr_t *bus;			/* one per page, while mapped */
	unsigned long npages;
	bool mapped;				/* under lock */
	bool revoked;				/* under lock */
	u64 invalidations;			/* under lock */
};

int importer_pin_device_map(struct mm_struct *mm, struct device *dev,
			    unsigned long start, unsigned long end,
			    struct dma_buf **out)
{
	unsigned long npages = (end - start) >> PAGE_SHIFT;
	const struct vm_operations_struct *ops;
	struct vm_area_struct *vma;
	struct dma_buf *buf;
	dma_addr_t *pa;
	int attempt, ret = -EBUSY;

	pa = kvcalloc(npages, sizeof(*pa), GFP_KERNEL);
	if (!pa)
		return -ENOMEM;
	for (attempt = 0; attempt < IMPORTER_PIN_ATTEMPTS; attempt++) {
		buf = NULL;
		mmap_read_lock(mm);
		vma = vma_lookup(mm, start);
		ops = vma ? vma->vm_ops : NULL;
		if (!vma || end > vma->vm_end) {
			ret = -EFAULT;
		} else if (!ops || !ops->device_map) {
			ret = -EOPNOTSUPP;
		} else {
			ret = ops->device_map(vma, dev, &buf, start, end,
					      DEVICE_MAP_FLAG_PIN, pa);
			if (ret == -EAGAIN)
				continue;	/* mmap_lock was released */
		}
		mmap_read_unlock(mm);
		break;
	}
	kvfree(pa);
	if (ret)
		return ret;
	if (WARN_ON_ONCE(!buf))
		return -EIO;
	/* Nothing of the vma is needed from here on: the buffer holds it. */
	*out = buf;
	return 0;
}

/* Called with the reservation lock held. */
static void importer_pin_invalidate(struct dma_buf_attachment *attach)
{
	struct importer_pin *pin = attach->importer_priv;

	mutex_lock(&pin->lock);
	pin->invalidations++;
	pin->revoked = true;
	pin->mapped = false;
	if (pin->sgt) {
		dma_buf_unmap_attachment(attach, pin->sgt, DMA_TO_DEVICE);
		pin->sgt = NULL;
	}
	mutex_unlock(&pin->lock);
}

static const struct dma_buf_attach_ops importer_pin_attach_ops = {
	.allow_peer2peer = true,
	.invalidate_mappings = importer_pin_invalidate,
};

/* P2PMAP_IMPORT_NO_P2P: an importer that needs struct pages. */
static const struct dma_buf_attach_ops importer_pin_attach_ops_no_p2p = {
	.invalidate_mappings = importer_pin_invalidate,
};

/* Maps the attachment and records one bus address per page. */
static int importer_pin_map(struct importer_pin *pin)
{
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned long page = 0;
	int i, ret = 0;

	dma_resv_lock(pin->dmabuf->resv, NULL);
	sgt = dma_buf_map_attachment(pin->attach, DMA_TO_DEVICE);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto out;
	}
	/*
	 * A dynamic importer obeys the write fences before its device reads
	 * (dma-buf.h, "DYNAMIC IMPORTER RULES"); p2pmap adds none, another
	 * exporter's buffer (IMPORT) may have some.
	 */
	ret = dma_resv_wait_timeout(pin->dmabuf->resv, DMA_RESV_USAGE_WRITE, true,
				    msecs_to_jiffies(IMPORTER_PIN_FENCE_WAIT_MS));
	if (ret <= 0) {
		dma_buf_unmap_attachment(pin->attach, sgt, DMA_TO_DEVICE);
		ret = ret ? ret : -ETIMEDOUT;
		goto out;
	}
	ret = 0;
	mutex_lock(&pin->lock);
	for_each_sgtable_dma_sg(sgt, sg, i) {
		dma_addr_t a = sg_dma_address(sg);
		unsigned int len;

		for (len = 0; len < sg_dma_len(sg) && page < pin->npages;
		     len += PAGE_SIZE)
			pin->bus[page++] = a + len;
	}
	if (page != pin->npages) {
		mutex_unlock(&pin->lock);
		dma_buf_unmap_attachment(pin->attach, sgt, DMA_TO_DEVICE);
		ret = -EIO;
		goto out;
	}
	pin->sgt = sgt;
	pin->mapped = true;
	mutex_unlock(&pin->lock);
out:
	dma_resv_unlock(pin->dmabuf->resv);
	return ret;
}

struct importer_pin *importer_pin_import(struct dma_buf *dmabuf, struct device *dev,
					 unsigned int flags)
{
	struct importer_pin *pin;
	int ret = -ENOMEM;

	pin = kzalloc_obj(*pin);
	if (!pin)
		goto err_put;
	pin->dmabuf = dmabuf;
	pin->npages = dmabuf->size >> PAGE_SHIFT;
	mutex_init(&pin->lock);
	pin->bus = kvcalloc(pin->npages, sizeof(*pin->bus), GFP_KERNEL);
	if (!pin->bus)
		goto err_free;
	if (flags & P2PMAP_IMPORT_STATIC)
		pin->attach = dma_buf_attach(dmabuf, dev);
	else if (flags & P2PMAP_IMPORT_NO_P2P)
		pin->attach = dma_buf_dynamic_attach(dmabuf, dev,
						     &importer_pin_attach_ops_no_p2p, pin);
	else
		pin->attach = dma_buf_dynamic_attach(dmabuf, dev,
						     &importer_pin_attach_ops, pin);
	if (IS_ERR(pin->attach)) {
		ret = PTR_ERR(pin->attach);
		goto err_free;
	}
	ret = importer_pin_map(pin);
	if (ret)
		goto err_detach;
	return pin;

err_detach:
	dma_buf_detach(dmabuf, pin->attach);
err_free:
	kvfree(pin->bus);
	kfree(pin);
err_put:
	dma_buf_put(dmabuf);
	return ERR_PTR(ret);
}

struct dma_buf *importer_dma_buf_get(int fd)
{
	return dma_buf_get(fd);
}

void importer_pin_free(struct importer_pin *pin)
{
	dma_resv_lock(pin->dmabuf->resv, NULL);
	mutex_lock(&pin->lock);
	if (pin->sgt)
		dma_buf_unmap_attachment(pin->attach, pin->sgt, DMA_TO_DEVICE);
	pin->sgt = NULL;
	pin->mapped = false;
	mutex_unlock(&pin->lock);
	dma_resv_unlock(pin->dmabuf->resv);
	dma_buf_detach(pin->dmabuf, pin->attach);
	dma_buf_put(pin->dmabuf);
	mutex_destroy(&pin->lock);
	kvfree(pin->bus);
	kfree(pin);
}

int importer_pin_fd(struct importer_pin *pin)
{
	int fd;

	get_dma_buf(pin->dmabuf);
	fd = dma_buf_fd(pin->dmabuf, O_CLOEXEC);
	if (fd < 0)
		dma_buf_put(pin->dmabuf);
	return fd;
}

void importer_pin_lock(struct importer_pin *pin)
{
	mutex_lock(&pin->lock);
}

void importer_pin_unlock(struct importer_pin *pin)
{
	mutex_unlock(&pin->lock);
}

u64 importer_pin_bus(struct importer_pin *pin, unsigned long page)
{
	lockdep_assert_held(&pin->lock);
	if (!pin->mapped || page >= pin->npages)
		return 0;
	return pin->bus[page];
}

void importer_pin_state(struct importer_pin *pin, bool *mapped, bool *revoked,
			u64 *invalidations, u64 *len)
{
	mutex_lock(&pin->lock);
	*mapped = pin->mapped;
	*revoked = pin->revoked;
	*invalidations = pin->invalidations;
	mutex_unlock(&pin->lock);
	*len = pin->npages << PAGE_SHIFT;
}
