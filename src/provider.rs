// SPDX-License-Identifier: GPL-2.0

//! The `device_map` provider: policy only, no `unsafe`.
//!
//! Every request is validated and every refusal counted with its reason:
//! request checks, then the filesystem, block-device and page-cache vetoes.
//! A range already staged in a CMB window is mapped under the caller's
//! mmap_lock (fast path). Otherwise the provider releases mmap_lock, resolves
//! the range with `map_blocks`, reads its blocks into a new CMB window peer
//! to peer (holes and unwritten extents zero-filled), publishes the window
//! (or the refusal) and returns `-EAGAIN`; the caller's retry takes the fast
//! path.

use kernel::{
    bindings,
    fs::File,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    time::{delay::fsleep, Delta},
};

use crate::{
    extents,
    ffi::{
        self, BreakingInode, CmbBuf, DeviceKey, ExtentKind, InodeKey, MapCall, MapFailure, Nvme,
        Provider, SlowPath, UnmapCall, ValidMapCall,
    },
    logic::{
        reason::Reason,
        revoke::{self, Cause, Span},
    },
    stats::STATS,
    windows::{self, Slot},
};

/// p2pmap's implementation of the provider hook.
pub(crate) struct P2pProvider;

impl Provider for P2pProvider {
    fn map(call: MapCall<'_>) -> Result<(), MapFailure> {
        STATS.map_called();
        let mut call = call.validate().map_err(|r| STATS.refuse(r))?;
        let (start, _) = call.file_range();
        // A file vma always has a file; check_path() refuses anything else
        // the same way.
        let Some(inode) = call.file().map(|f| f.inode_key()) else {
            return Err(STATS.refuse(Reason::NoBlockOps).into());
        };
        // Before the page-cache check: a CPU store into the range that
        // starts after it (mkwrite) is recorded after this mark, and what
        // this call stages is then thrown away instead of published.
        let mark = windows::change_mark();
        let staged = windows::is_staged(inode, start, call.pa().len());
        let nvme = check_path(&call, staged).map_err(|r| STATS.refuse(r))?;
        let who = call.claimant();
        if !STATS.take_injected_retry() {
            // Fast path, under the caller's mmap_lock.
            match windows::claim(inode, start, call.pa(), who) {
                Some(Ok(())) => {
                    STATS.mapped();
                    dev_dbg!(
                        call.importer(),
                        "p2pmap: mapped {} pages at file offset {:#x}\n",
                        call.request().pages,
                        start
                    );
                    return Ok(());
                }
                Some(Err(r)) => return Err(STATS.refuse(r).into()),
                None => {}
            }
        }
        // Slow path: map_blocks takes i_rwsem, which nests outside
        // mmap_lock. Leave the caller's lock, stage, and have it retry.
        let pages = call.pa().len();
        let slow = call.release_mmap_lock().map_err(|r| STATS.refuse(r))?;
        // The lease first: a block-map change from here on breaks it, and a
        // window staged under a broken lease is thrown away.
        let slot = match slow.take_lease() {
            Err(e) => Slot::refused(inode, start, pages, Reason::of_lease_error(-e.to_errno())),
            Ok(lease) => {
                // Direct writes submitted before the lease existed broke
                // nothing: let them land before the blocks are read.
                slow.wait_direct_io();
                let key = extents::Key::new(inode, &lease, mark);
                match stage(&slow, &nvme, &key, start, pages) {
                    Ok(_) if lease.broken() => {
                        Slot::refused(inode, start, pages, Reason::LeaseBroken)
                    }
                    Ok(buf) => {
                        STATS.window_staged(buf.size());
                        Slot::ready(inode, start, pages, buf, lease, mark)
                    }
                    Err(r) => Slot::refused(inode, start, pages, r),
                }
            }
        };
        // If publishing fails (no memory), the retry simply stages again.
        let _ = windows::publish(slot);
        STATS.lock_dropped();
        Err(MapFailure::Retry(slow.retry()))
    }

    fn unmap(call: UnmapCall<'_>) {
        STATS.unmap_called();
        if let Some(pa) = call.first_pa() {
            if !windows::release(pa, call.claimant()) {
                STATS.unmap_unmatched();
            }
        }
        let (start, end) = call.range();
        dev_dbg!(
            call.importer(),
            "p2pmap: device_unmap of {:#x}..{:#x}\n",
            start,
            end
        );
    }

    /// A CPU store through a shared mapping is about to make `[pos, pos +
    /// len)` writable: the windows covering it are revoked synchronously, in
    /// the faulting task (no lease, no worker: the fault cannot proceed
    /// before the importers were invalidated), and a window being staged
    /// for the inode is thrown away when it is published.
    fn mkwrite(file: &File, pos: i64, len: usize) {
        // Every write fault of an XFS shared mapping comes here. Without a
        // lease of p2pmap on the inode no window of it exists, and none is
        // being staged past `take_lease()`: a slow path before it reads
        // through map_blocks, whose flush orders it after this store (the
        // extent cache is keyed by the lease generation that follows).
        // Recording only leased inodes keeps the history of changes to the
        // files that matter.
        if len == 0 || !ffi::lease_held(file) {
            return;
        }
        let inode = ffi::inode_key(file);
        windows::note_cpu_write(inode, pos, pos.saturating_add(len as i64));
        let t = ffi::now_ns();
        let n = windows::mark_revoking_range(inode, pos, pos.saturating_add(len as i64));
        if n == 0 {
            return;
        }
        // Only the page's range: every importer of a window covering it is
        // invalidated (its notifier spans the window), and the other CPU
        // PTEs of those windows' ranges are left alone.
        ffi::revoke_file_range(file, pos, len);
        STATS.revoked(Cause::CpuWrite, n, ffi::now_ns().saturating_sub(t));
        windows::drain_revoked(inode);
    }

    /// XFS is about to change `[start, end)` of `inode` (`write()`,
    /// truncate, fallocate) and breaks its layout leases right after: the
    /// task is recorded on p2pmap's lease of the inode so that its break
    /// passes the lease by (no `lm_break`, no worker, no wait), and the
    /// windows covering the range are revoked here, in XFS's task; the
    /// windows of the rest of the file stay. A window being staged for the
    /// inode is thrown away when it is published, as for a CPU write.
    fn break_begin(inode: &BreakingInode<'_>, start: i64, end: i64) {
        if !STATS.sync_break_enabled() {
            return;
        }
        // Recorded first: revoking the last window of the inode starts
        // releasing the lease, after which it can no longer be found by
        // its inode, yet stays on the inode until the worker released it.
        let passed = inode.pass_lease_for_current();
        let key = inode.key();
        windows::note_layout_change(key, start, end);
        let t = ffi::now_ns();
        let n = windows::mark_revoking_range(key, start, end);
        if n > 0 {
            inode.revoke_range(start, end);
            STATS.revoked(Cause::LayoutChange, n, ffi::now_ns().saturating_sub(t));
            windows::drain_revoked(key);
        }
        match passed {
            Ok(()) => STATS.sync_break(true),
            // p2pmap holds no lease of the inode: nothing to pass.
            Err(e) if e == ENOENT => {}
            // A broken lease, or too many such breakers at once: the lease
            // is broken as before, whole file, on the worker.
            Err(_) => STATS.sync_break(false),
        }
    }

    /// The break that [`Self::break_begin`] prepared is over.
    fn break_end(inode: &BreakingInode<'_>) {
        inode.stop_passing_lease_for_current();
    }
}

/// The filesystem and block-device vetoes, in the order the seed proposal
/// gives them: the filesystem (block ops), the block device (a published
/// CMB reachable from the importer), then the page cache. Returns the NVMe
/// function whose CMB will hold the window. With `staged` (a window of the
/// range exists, so the CMB was found published when it was staged), the
/// costly search for the published P2P provider is skipped.
fn check_path(call: &ValidMapCall<'_>, staged: bool) -> Result<Nvme, Reason> {
    // A file vma always has a file; treat anything else like ext4.
    let file = call.file().ok_or(Reason::NoBlockOps)?;
    if file.is_dax() {
        return Err(Reason::Dax);
    }
    if file.is_swapfile() {
        return Err(Reason::Swapfile);
    }
    if !file.has_block_ops() {
        return Err(Reason::NoBlockOps);
    }
    let nvme = file.pci_dev().ok_or(Reason::NoP2pProvider)?;
    if !staged && !nvme.publishes_p2pmem() {
        return Err(Reason::NoP2pProvider);
    }
    if nvme.p2p_distance(call.importer(), false).is_none() {
        // Once more, verbose, for the kernel to log why (the counter says
        // how often): every call used to, and an importer that falls back
        // and retries flooded the log.
        if verbose_refusal_allowed() {
            nvme.p2p_distance(call.importer(), true);
        }
        return Err(Reason::NoP2pPath);
    }
    // Bus addresses are only right when a switch routes the TLPs.
    if !nvme.bus_addr_path(call.importer()) {
        return Err(Reason::HostBridgeRoute);
    }
    let (start, end) = call.file_range();
    let page = PAGE_SIZE as i64;
    if end > file.size().saturating_add(page - 1) / page * page {
        return Err(Reason::PastEof);
    }
    if file.drop_clean_cache(start, end) {
        return Err(Reason::PageCacheResident);
    }
    Ok(nvme)
}

/// `ktime_get_ns()` of the last verbose P2P-distance refusal.
static LAST_VERBOSE_NS: Atomic<u64> = Atomic::new(0);

/// Nanoseconds between two refusals the kernel explains in the log.
const VERBOSE_INTERVAL_NS: u64 = 10_000_000_000;

/// Whether this P2P-path refusal may be explained in the log: one every
/// [`VERBOSE_INTERVAL_NS`], whichever importer asks.
fn verbose_refusal_allowed() -> bool {
    let now = ffi::now_ns();
    let last = LAST_VERBOSE_NS.load(Relaxed);
    if last != 0 && now.saturating_sub(last) < VERBOSE_INTERVAL_NS {
        return false;
    }
    LAST_VERBOSE_NS.cmpxchg(last, now, Relaxed).is_ok()
}

/// Stages `pages` pages at file byte `start` into a new CMB window:
/// `IOMAP_MAPPED` extents are read from the block device by bios on the CMB
/// pages; holes and unwritten extents are zero-filled, never read. Extents
/// come from the extent cache under `key`, else from `map_blocks` (and are
/// cached then).
///
/// Context: slow path (no mmap_lock); sleeps.
fn stage(
    slow: &SlowPath,
    nvme: &Nvme,
    key: &extents::Key,
    start: i64,
    pages: usize,
) -> Result<CmbBuf, Reason> {
    let len = pages * PAGE_SIZE;
    let mut buf = alloc_window(nvme, len)?;
    let use_cache = STATS.extent_cache_enabled();
    let mut off = 0usize;
    while off < len {
        let pos = start + off as i64;
        let cached = if use_cache {
            extents::lookup(key, pos)
        } else {
            None
        };
        STATS.extent_lookup(cached.is_some());
        let ext = match cached {
            Some(ext) => ext,
            None => {
                let ext = slow.map_blocks(pos, (len - off) as u64).map_err(|e| {
                    if e == ENXIO {
                        Reason::Reflinked
                    } else if e == EINVAL {
                        Reason::PastEof
                    } else {
                        Reason::MapBlocksFailed
                    }
                })?;
                if use_cache {
                    extents::insert(key, ext);
                }
                ext
            }
        };
        // map_blocks returns the extent covering `pos`; it may be shorter.
        let ext_end = ext.offset.saturating_add(ext.length as i64);
        if ext.offset > pos || ext_end <= pos {
            return Err(Reason::MapBlocksFailed);
        }
        let n = ((ext_end - pos) as usize).min(len - off);
        match ext.kind {
            ExtentKind::Mapped(addr) => slow
                .read_into(&mut buf, off, addr + (pos - ext.offset) as u64, n)
                .map_err(|_| Reason::ReadFailed)?,
            ExtentKind::Hole | ExtentKind::Unwritten => {
                buf.zero(off, n).map_err(|_| Reason::MapBlocksFailed)?
            }
            ExtentKind::Other => return Err(Reason::ExtentUnsupported),
        }
        off += n;
    }
    Ok(buf)
}

/// Revokes the windows `ranges` lists (already marked revoking): invalidates
/// each window's file range in every mm that maps it (the importers'
/// notifiers stop device access and call `device_unmap` before
/// `unmap_mapping_range` returns), and counts the revocation for `cause`,
/// timed from `start_ns`. No p2pmap lock is held across
/// `unmap_mapping_range`. Returns how many windows were revoked.
fn revoke(ranges: Result<KVec<windows::Revoked>>, cause: Cause, start_ns: u64) -> usize {
    match ranges {
        Ok(ranges) => {
            // One unmap_mapping_range() per contiguous run of a file, not
            // per window: each call walks the rmap and flushes TLBs.
            let mut spans = KVec::with_capacity(ranges.len(), GFP_KERNEL);
            if let Ok(spans) = spans.as_mut() {
                for (i, (inode, _, start, len)) in ranges.iter().enumerate() {
                    // Within capacity: cannot fail.
                    let _ = spans.push(
                        Span {
                            key: inode.raw(),
                            start: *start,
                            end: start.saturating_add(*len as i64),
                            tag: i,
                        },
                        GFP_KERNEL,
                    );
                }
            }
            match spans {
                Ok(mut spans) => {
                    let n = revoke::coalesce(&mut spans);
                    for s in spans.iter().take(n) {
                        if let Some((_, file, _, _)) = ranges.get(s.tag) {
                            ffi::revoke_file_range(file, s.start, (s.end - s.start) as usize);
                        }
                    }
                }
                // No memory to sort: one call per window.
                Err(_) => {
                    for (_, file, start, len) in ranges.iter() {
                        ffi::revoke_file_range(file, *start, *len);
                    }
                }
            }
            if !ranges.is_empty() || cause == Cause::LeaseBreak {
                let quiesce = ffi::now_ns().saturating_sub(start_ns);
                STATS.revoked(cause, ranges.len(), quiesce);
            }
            ranges.len()
        }
        // Out of memory: nothing could be revoked now. For a lease break the
        // windows keep the lease and the breaker waits for the lease-break
        // timeout; the other causes drain what they must anyway.
        Err(_) => {
            pr_warn!("revocation could not list windows (out of memory)\n");
            0
        }
    }
}

/// Module exit, after the provider is unregistered: revoke everything and
/// free every window (importers were invalidated; a window still referenced
/// belongs to an importer that ignored its notifier).
pub(crate) fn revoke_all() {
    let t = ffi::now_ns();
    revoke(windows::start_revoking(None), Cause::Unload, t);
    windows::drain(None);
}

/// Called by p2pmap_lease.c, in process context (the lease worker), when
/// the layout lease of `inode` is broken; `break_ns` is when
/// (`ktime_get_ns()` in `lm_break`). The pointer is only a key.
#[no_mangle]
extern "C" fn p2pmap_rust_lease_broken(inode: *mut bindings::inode, break_ns: u64) {
    revoke_inode(InodeKey::of(inode), break_ns);
}

/// Called by p2pmap_lease.c (the lease worker) just before it releases a
/// broken layout lease; `break_ns` is when it was broken (the clock of
/// [`ffi::now_ns`]).
#[no_mangle]
extern "C" fn p2pmap_rust_lease_released(break_ns: u64) {
    STATS.lease_released(break_ns, ffi::now_ns());
}

/// Called by the PCI bus notifier (process context, may sleep, the device
/// lock of `pdev` held) before `pdev` is unbound from its driver. The
/// pointer is only a key, the one windows record their CMB's function by
/// (`Nvme::key`).
#[no_mangle]
extern "C" fn p2pmap_rust_device_unbind(pdev: *mut bindings::pci_dev) {
    revoke_device(DeviceKey::of(pdev));
}

/// Called by the PCI bus notifier after `pdev`'s driver was unbound (its
/// devres, hence its P2P memory, released).
#[no_mangle]
extern "C" fn p2pmap_rust_device_unbound(pdev: *mut bindings::pci_dev) {
    device_unbound(DeviceKey::of(pdev));
}

/// The layout lease of `inode` was broken at `break_ns` (truncate, write,
/// fallocate, reflink on XFS): revoke its windows; the last one releases
/// the lease.
fn revoke_inode(inode: InodeKey, break_ns: u64) {
    STATS.lease_broken();
    STATS.break_dispatched(ffi::now_ns().saturating_sub(break_ns));
    revoke(
        windows::start_revoking(Some(inode)),
        Cause::LeaseBreak,
        break_ns,
    );
    windows::drain(Some(inode));
}

/// The NVMe function `dev` is about to be unbound from its driver (its CMB
/// goes away with it): revoke every window it holds and free them all
/// before returning. Context: process (bus notifier), may sleep.
fn revoke_device(dev: DeviceKey) {
    let t = ffi::now_ns();
    let n = revoke(windows::start_revoking_device(dev), Cause::DeviceRemoval, t);
    // A claim in flight (device_map returned, the importer not committed
    // yet) gives its reference back as soon as it sees the invalidation:
    // wait a little for those before freeing what is left.
    for _ in 0..REMOVAL_WAIT_STEPS {
        if !windows::referenced_on_device(dev) {
            break;
        }
        fsleep(Delta::from_millis(10));
    }
    let stuck = windows::drain_device(dev);
    if n > 0 {
        pr_info!("revoked {n} windows of a CMB being removed\n");
    }
    if stuck > 0 {
        pr_warn!("{stuck} windows still referenced 1 s after revocation; freed\n");
    }
}

/// The driver of function `dev` was unbound (after [`revoke_device`]): its
/// P2P memory is gone.
fn device_unbound(dev: DeviceKey) {
    windows::device_removed(dev);
}

/// 10 ms steps [`revoke_device`] waits at most for references in flight.
const REMOVAL_WAIT_STEPS: usize = 100;

/// CMB pressure: revokes least recently used windows that importers still
/// map in `nvme`'s CMB, about `bytes` of them (at least one). Returns
/// whether any was.
fn revoke_lru(nvme: &Nvme, bytes: usize) -> bool {
    let t = ffi::now_ns();
    revoke(
        windows::start_revoking_lru(nvme.key(), bytes),
        Cause::CmbPressure,
        t,
    ) > 0
}

/// A CMB window of `len` bytes. What cannot fit in the CMB at all is
/// refused before anything is revoked. If the CMB is full: frees the
/// unclaimed windows whose callers had their chance to claim them, then
/// revokes least recently used mapped windows (their importers map again
/// later): first as many bytes as are missing if the CMB holds only
/// p2pmap's windows, then, if others use it or it is fragmented, `len` more
/// at most. One request never revokes more than twice its size.
///
/// Context: slow path; sleeps.
fn alloc_window(nvme: &Nvme, len: usize) -> Result<CmbBuf, Reason> {
    if windows::device_removing(nvme.key()) {
        return Err(Reason::NoP2pProvider);
    }
    if let Some(buf) = CmbBuf::alloc(nvme, len) {
        return Ok(buf);
    }
    let capacity = nvme.p2pmem_capacity();
    if capacity.is_some_and(|c| len > c) {
        return Err(Reason::TooLarge);
    }
    if windows::evict_unclaimed(ffi::now_ns()) > 0 {
        if let Some(buf) = CmbBuf::alloc(nvme, len) {
            return Ok(buf);
        }
    }
    let held = windows::bytes_on_device(nvme.key());
    let missing = match capacity {
        Some(c) => revoke::bytes_to_free(len, c, held),
        None => len,
    };
    for bytes in [missing, len] {
        if !revoke_lru(nvme, bytes) {
            break;
        }
        if let Some(buf) = CmbBuf::alloc(nvme, len) {
            return Ok(buf);
        }
    }
    Err(Reason::CmbFull)
}

#[kunit_tests(p2pmap)]
mod tests {
    use crate::ffi::kernel_flags;
    use crate::logic::{errno, reason::Reason, request};
    use crate::stats::Stats;
    use kernel::bindings;

    #[test]
    fn flags_match_the_kernel() {
        assert_eq!(request::FLAG_PIN, kernel_flags::PIN);
        assert_eq!(request::FLAG_WRITE, kernel_flags::WRITE);
        assert_eq!(
            request::FLAG_SUPPORT_ATOMIC_OP,
            kernel_flags::SUPPORT_ATOMIC_OP
        );
        assert_eq!(request::FLAGS_ALL, kernel_flags::ALL);
    }

    #[test]
    fn errnos_match_the_kernel() {
        assert_eq!(errno::EACCES, bindings::EACCES as i32);
        assert_eq!(errno::EBUSY, bindings::EBUSY as i32);
        assert_eq!(errno::EXDEV, bindings::EXDEV as i32);
        assert_eq!(errno::EIO, bindings::EIO as i32);
        assert_eq!(errno::ENXIO, bindings::ENXIO as i32);
        assert_eq!(errno::ENOSPC, bindings::ENOSPC as i32);
        assert_eq!(errno::EFAULT, bindings::EFAULT as i32);
        assert_eq!(errno::EINVAL, bindings::EINVAL as i32);
        assert_eq!(errno::ENODEV, bindings::ENODEV as i32);
        assert_eq!(errno::EOPNOTSUPP, bindings::EOPNOTSUPP as i32);
        assert_eq!(errno::ENOMEM, bindings::ENOMEM as i32);
        assert_eq!(errno::EAGAIN, bindings::EAGAIN as i32);
        assert_eq!(errno::ETXTBSY, bindings::ETXTBSY as i32);
        assert_eq!(errno::E2BIG, bindings::E2BIG as i32);
    }

    #[test]
    fn refusal_is_counted_and_converted() {
        let stats = Stats::new();
        for r in Reason::ALL {
            let err = stats.refuse(r);
            assert_eq!(err.to_errno(), -r.errno());
            assert_eq!(stats.refused(r), 1);
        }
    }
}
