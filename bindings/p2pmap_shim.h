/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C for Rust: the out-of-line wrappers of the static inline kernel
 * functions p2pmap calls from Rust (rust/helpers does not cover them), and
 * the C parts of the module (leases, the PCI notifier) Rust calls. The
 * functions Rust implements for C are in p2pmap_rust.h. The test importer
 * has its own (tests/importer/importer_shim.h).
 */
#ifndef P2PMAP_SHIM_H
#define P2PMAP_SHIM_H

#include <linux/types.h>

struct device;
struct file;
struct inode;
struct page;
struct pci_dev;
struct vm_area_struct;

struct iomap;

/*
 * ->map_blocks() of the file's filesystem (export block ops) for a read
 * mapping of [@offset, @offset + @len): one extent in @iomap. Takes the
 * inode's locks itself (XFS: XFS_IOLOCK_EXCL): call without mmap_lock.
 */
int p2pmap_file_map_blocks(struct file *file, loff_t offset, u64 len,
			   struct iomap *iomap, bool write);
/*
 * ->commit_blocks() of the file's filesystem: converts the unwritten
 * extents of @maps (what ->map_blocks(write) handed out and the device
 * wrote) and sets the size to @new_size if that is larger, synchronously.
 * Takes the inode's locks itself (XFS: XFS_IOLOCK_EXCL).
 */
int p2pmap_file_commit_blocks(struct file *file, struct iomap *maps, int nr,
			      loff_t new_size);
/*
 * Writes @len bytes of the P2P memory at @vaddr to byte @addr of the file's
 * block device with synchronous bios whose pages are the P2P pages (the
 * data moves CMB -> media inside the device). May sleep.
 */
int p2pmap_bdev_write_p2p(struct file *file, u64 addr, void *vaddr, size_t len);
/* blkdev_issue_flush() of the file's block device. May sleep. */
int p2pmap_bdev_flush(struct file *file);
/*
 * Writes back the dirty page-cache pages of [@start, @end) of the file and
 * waits (their errors go to the mapping, for the CPU's writers); returns
 * @end - @start if a page was dirty or under writeback, else 0.
 */
long p2pmap_file_flush_cpu_range(struct file *file, loff_t start, loff_t end);
/* mapping_set_error() on the file's mapping: fsync() reports @err. */
void p2pmap_file_set_error(struct file *file, int err);
/* The write-back worker (p2pmap_flush.c). */
void p2pmap_flush_schedule(void);
int p2pmap_flush_init(void);
void p2pmap_flush_exit(void);
/*
 * Reads @len bytes at byte @addr of the file's block device into the P2P
 * memory at @vaddr with synchronous bios whose pages are the P2P pages
 * (the data moves media -> CMB inside the device). May sleep.
 */
int p2pmap_bdev_read_p2p(struct file *file, u64 addr, void *vaddr, size_t len);
/* Zero-fills P2P memory through its kernel mapping. */
void p2pmap_p2pmem_zero(void *vaddr, size_t len);
/* unmap_mapping_range() of [@start, @start + @len) of the file. */
void p2pmap_file_unmap_range(struct file *file, loff_t start, loff_t len);
/*
 * unmap_mapping_range() of the pages holding [@start, @end) of the inode's
 * mapping (@end LLONG_MAX: to the end).
 */
void p2pmap_inode_unmap_range(struct inode *inode, loff_t start, loff_t end);
/* file_inode() */
struct inode *p2pmap_file_inode(const struct file *file);
/* i_size of the file's inode. */
loff_t p2pmap_file_size(struct file *file);

/* The file behind a vma and the file position of @addr in it. */
struct file *p2pmap_vma_file(struct vm_area_struct *vma);
loff_t p2pmap_vma_file_pos(struct vm_area_struct *vma, unsigned long addr);

/* The file's sb has export block ops with map_blocks and commit_blocks. */
bool p2pmap_file_has_block_ops(struct file *file);
/* IS_DAX(file_inode(file)) */
bool p2pmap_file_is_dax(struct file *file);
/*
 * The PCI function behind the block device of the file's filesystem
 * (walking up from the gendisk), with a reference (pci_dev_put()), or NULL.
 */
struct pci_dev *p2pmap_file_pci_dev(struct file *file);
/* IS_SWAPFILE(file_inode(file)): the swap code owns its blocks. */
bool p2pmap_file_is_swapfile(struct file *file);
/*
 * Whether @file may be written through a device mapping now: one of the
 * P2PMAP_WRITE_* values (the first check that fails).
 */
#define P2PMAP_WRITE_OK			0
#define P2PMAP_WRITE_FD_READ_ONLY	1
#define P2PMAP_WRITE_IMMUTABLE		2
#define P2PMAP_WRITE_APPEND_ONLY	3
#define P2PMAP_WRITE_FS_READ_ONLY	4
#define P2PMAP_WRITE_FS_FROZEN		5
int p2pmap_file_write_check(struct file *file);
/*
 * Waits for the direct I/O in flight on the file's inode to complete
 * (inode_dio_wait() under i_rwsem, the XFS iolock, as a truncate does).
 * Sleeps; call without mmap_lock.
 */
void p2pmap_file_wait_direct_io(struct file *file);
/*
 * Drops the clean, unmapped page-cache pages of [@start, @end) of the file
 * (invalidate_mapping_pages()) and tells whether any page is left.
 */
bool p2pmap_file_drop_clean_cache(struct file *file, loff_t start, loff_t end);

/*
 * Sizes and offsets as the C compiler sees them, for p2pmap to check the
 * layouts it uses from rust/bindings at load time: bindgen can get them
 * wrong (the test importer's importer_current_mm() says how).
 */
#define P2PMAP_SZ_VMA			0
#define P2PMAP_SZ_VM_OPS		1
#define P2PMAP_SZ_DEVICE_MAP_PROVIDER	2
#define P2PMAP_OFF_VMA_VM_FILE		3
#define P2PMAP_OFF_VMA_VM_MM		4
unsigned long p2pmap_layout(int item);

/*
 * Layout leases (p2pmap_lease.c): the FL_LAYOUT lease p2pmap holds on an
 * inode with CMB windows. Its state (holders, broken, the tasks that pass
 * it by) is Rust's, in the inode's state in the registry; C keeps what
 * must be C: the file_lease and its lm_ops, kernel_setlease(), the worker.
 * C names the state by the inode and the lease's generation.
 *
 * p2pmap_lease_take() takes a lease on @file's inode, tagged @gen (sleeps;
 * ERR_PTR: -EAGAIN while a breaker waits for the inode's leases, or the
 * error of kernel_setlease()). p2pmap_lease_release() gives it back from
 * the worker (any context; @break_ns: when it was broken, 0 if never).
 */
struct p2pmap_lease;
struct p2pmap_lease *p2pmap_lease_take(struct file *file, u64 gen);
void p2pmap_lease_release(struct p2pmap_lease *lease, u64 break_ns);
int p2pmap_lease_init(void);
void p2pmap_lease_exit(void);
/*
 * Runs p2pmap_rust_reap_unclaimed() on the lease worker in @delay_ms
 * (unless already pending). Any context.
 */
void p2pmap_reap_schedule(unsigned long delay_ms);

/* PCI_P2PDMA_MAP_BUS_ADDR between @provider and @client: pci_p2pdma_map_type(). */
bool p2pmap_p2p_bus_addr_path(struct pci_dev *provider, struct device *client);
/*
 * What p2pmap's AtomicOp decision (src/logic/atomic.rs) needs to know of one
 * function of the path between an importer and the NVMe function owning the
 * CMB: its PCI Express Device Capabilities 2 and Device Control 2
 * registers, whether the request leaves it through its egress side, and
 * its name for the log.
 */
struct p2pmap_atomic_fn {
	u32 devcap2;
	u16 devctl2;
	bool pcie;
	bool egress;
	char name[16];
};
#define P2PMAP_ATOMIC_MAX_PORTS 16
/*
 * Fills @requester (@client), @completer and @ports (the bridges between
 * them, from the requester's side to the completer's, at most @max_ports).
 * Returns the number of ports, -ENODEV if @client is no PCI function,
 * -EXDEV if they share no upstream bridge, -E2BIG if there are more ports.
 * Reads configuration space; process context.
 */
int p2pmap_atomic_path(struct pci_dev *completer, struct device *client,
		       struct p2pmap_atomic_fn *requester,
		       struct p2pmap_atomic_fn *completer_fn,
		       struct p2pmap_atomic_fn *ports, int max_ports);
/*
 * An upper bound of the P2P memory @pdev publishes: the length of the BAR
 * its pool lies in (found by allocating one page), 0 if unknown (the pool
 * is full). Sleeps.
 */
u64 p2pmap_p2pmem_capacity(struct pci_dev *pdev);

/*
 * DEVICE_MAP_FLAG_PIN (p2pmap_pin.c): a dma_buf owning a range's claim on
 * its windows. p2pmap_pin_new() (sleeps) lists a pin of @npages pages at
 * file byte @start of @inode (a key) in @nvme's CMB; p2pmap_pin_key() is
 * what its claim is recorded under; p2pmap_pin_export() (sleeps), once the
 * claim is taken, copies @pa and returns the dma_buf (a reference for the
 * importer) or an ERR_PTR, after which the pin is gone; p2pmap_pin_discard()
 * frees a pin that was not exported (its claim given back by the caller).
 * p2pmap_pins_revoke() (sleeps) revokes the pins of @inode (NULL: any)
 * meeting [@start, @end) in @nvme's CMB (NULL: any), returns how many.
 */
struct p2pmap_pin;
struct p2pmap_pin *p2pmap_pin_new(struct pci_dev *nvme, const void *inode,
				  s64 start, unsigned long npages);
unsigned long p2pmap_pin_key(const struct p2pmap_pin *pin);
struct dma_buf *p2pmap_pin_export(struct p2pmap_pin *pin, const u64 *pa);
void p2pmap_pin_discard(struct p2pmap_pin *pin);
unsigned int p2pmap_pins_revoke(const void *inode, s64 start, s64 end,
				const struct pci_dev *nvme);

/* PCI driver unbind notifications (NVMe removal), see p2pmap_shim.c. */
int p2pmap_pci_notifier_register(void);
void p2pmap_pci_notifier_unregister(void);

/*
 * Trace events (p2pmap_trace.h). Strings are not NUL-terminated: each
 * comes with its length. @importer is live for the call; @inode is only
 * printed (hashed), never dereferenced. The _enabled() functions tell
 * whether the events of a device_map call (map, refuse) or of staging are
 * on (a static key): their arguments need not be gathered otherwise.
 */
bool p2pmap_trace_map_enabled(void);
bool p2pmap_trace_stage_enabled(void);
void p2pmap_trace_map(struct device *importer, u32 sdev, u64 ino,
		      const void *inode, s64 pos, u64 pages, u32 flags,
		      const char *path, int path_len, int err, u64 ns);
void p2pmap_trace_refuse(struct device *importer, u32 sdev, u64 ino,
			 const void *inode, s64 pos, u64 pages,
			 const char *reason, int reason_len, int err);
void p2pmap_trace_stage(u32 sdev, u64 ino, const void *inode, s64 pos,
			u64 bytes, u32 mapped, u32 zeroed, u32 map_blocks,
			const char *reason, int reason_len, u64 ns);
void p2pmap_trace_revoke(const char *cause, int cause_len, const char *scope,
			 int scope_len, const void *inode, s64 start, s64 end,
			 u64 windows, u64 ns);
void p2pmap_trace_unmap(struct device *importer, unsigned long start,
			unsigned long end, u64 pages, bool matched);
/*
 * CMB windows freed, for a device_map that found the CMB full and no
 * window left to revoke because other requests are revoking or staging
 * them right now: p2pmap_cmb_freed() after a window's pages went back to
 * the pool (any context), p2pmap_cmb_frees() a snapshot of the count,
 * p2pmap_cmb_wait_freed() sleeps until a window was freed after snapshot
 * @seen, at most @timeout_ms; false if none was.
 */
void p2pmap_cmb_freed(void);
unsigned int p2pmap_cmb_frees(void);
bool p2pmap_cmb_wait_freed(unsigned int seen, unsigned int timeout_ms);

/* The device and inode number of @file's inode, for the trace events. */
u32 p2pmap_file_sdev(struct file *file);
u64 p2pmap_file_ino(struct file *file);

#endif /* P2PMAP_SHIM_H */
