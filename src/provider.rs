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
//! path. A write mapping has `map_blocks(write)` allocate the range first
//! and gets a write window of its own, written back when given back
//! ([`crate::writeback`]).

use kernel::{
    device::Device,
    fs::File,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::{
    changes, extents,
    ffi::{
        self, BreakingInode, CmbBuf, Extent, ExtentKind, InodeKey, MapCall, MapFailure, MapPath,
        MapTrace, Nvme, PinnedRange, Provider, SlowPath, StageTrace, UnmapCall, ValidMapCall,
    },
    logic::{
        changes::ChangeKind,
        reason::Reason,
        request,
        revoke::{self, Cause},
    },
    revocation::{self, Scope, Through},
    stats::STATS,
    windows::{self, Slot, WriteState},
    writeback,
};

/// p2pmap's implementation of the provider hook.
pub(crate) struct P2pProvider;

/// Counts a refusal, emits its trace event, and returns the errno.
fn refuse(t: &MapTrace<'_>, reason: Reason) -> Error {
    t.refuse(reason);
    STATS.refuse(reason)
}

impl Provider for P2pProvider {
    fn map(call: MapCall<'_>) -> Result<(), MapFailure> {
        STATS.map_called();
        let t = call.trace();
        let r = map_call(call, &t);
        match &r {
            Ok(()) => t.end(MapPath::Fast, 0),
            Err(MapFailure::Retry(_)) => t.end(MapPath::Slow, EAGAIN.to_errno()),
            Err(MapFailure::Refused(e)) => t.end(MapPath::Refused, e.to_errno()),
        }
        r
    }

    fn unmap(call: UnmapCall<'_>) {
        STATS.unmap_called();
        let matched = windows::release(call.pa(), call.claimant());
        if !matched {
            STATS.unmap_unmatched();
        }
        call.trace(matched);
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
        if len == 0 {
            return;
        }
        let inode = ffi::inode_key(file);
        let end = pos.saturating_add(len as i64);
        // Every write fault of an XFS shared mapping comes here. Without a
        // lease of p2pmap on the inode no window of it exists, and none is
        // being staged past `take_lease()`: a slow path before it reads
        // through map_blocks, whose flush orders it after this store (the
        // extent cache is keyed by the lease generation that follows).
        // Recording only leased inodes keeps the history of changes to the
        // files that matter.
        if windows::lease_held(inode) {
            changes::note_change(inode, pos, end, ChangeKind::CpuWrite);
            let scope = Scope::Range {
                inode,
                start: pos,
                end,
            };
            revocation::revoke(scope, Cause::CpuWrite, ffi::now_ns(), Through::Store(file));
        }
        // What a device wrote into the page goes to the file first (asked
        // after the revocation: no write mapping of the page can be handed
        // out in between): its commit drops the page the CPU is about to
        // write (read before), the fault finds it gone and is retried
        // (iomap_page_mkwrite() returns VM_FAULT_NOPAGE), and the CPU's
        // store lands on a page read after the commit, on top of the
        // device's bytes.
        if windows::written(inode, pos, end) {
            writeback::sync(inode, pos, end);
        }
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
        // Recorded first, while the lease has holders: revoking the last
        // window of the inode releases the lease (from the worker), and a
        // lease without holders is passed by anyway.
        let key = inode.key();
        let passed = windows::pass_lease(key);
        changes::note_change(key, start, end, ChangeKind::Layout);
        let scope = Scope::Range {
            inode: key,
            start,
            end,
        };
        revocation::revoke(
            scope,
            Cause::LayoutChange,
            ffi::now_ns(),
            Through::Change(inode),
        );
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
        windows::stop_passing_lease(inode.key());
    }

    /// Whether devices wrote the range and it is not committed yet.
    fn written(inode: InodeKey, start: i64, end: i64) -> bool {
        windows::written(inode, start, end)
    }

    /// A read, `fsync()` or change of the range waits for what devices
    /// wrote there.
    fn sync(inode: InodeKey, start: i64, end: i64) {
        writeback::sync(inode, start, end);
    }
}

/// `device_map` (see [`P2pProvider::map`]): refusals are counted and
/// traced with their reason through `t`.
fn map_call(call: MapCall<'_>, t: &MapTrace<'_>) -> Result<(), MapFailure> {
    let mut call = call.validate().map_err(|r| refuse(t, r))?;
    let pin = call.request().flags & request::FLAG_PIN != 0;
    if pin && !STATS.pin_allowed() {
        return Err(refuse(t, Reason::PinDisabled).into());
    }
    if pin && !call.has_buf_ptr() {
        return Err(refuse(t, Reason::PinNoBuffer).into());
    }
    let write = call.request().flags & request::FLAG_WRITE != 0;
    let (start, end) = call.file_range();
    // A file vma always has a file; check_path() refuses anything else
    // the same way.
    let Some(inode) = call.file().map(|f| f.inode_key()) else {
        return Err(refuse(t, Reason::NoBlockOps).into());
    };
    // Before the page-cache check: a CPU store into the range that
    // starts after it (mkwrite) is recorded after this mark, and what
    // this call stages is then thrown away instead of published.
    let mark = changes::change_mark();
    let staged = windows::is_staged(inode, start, call.pa().len(), write);
    let nvme = check_path(&call, staged).map_err(|r| refuse(t, r))?;
    if !STATS.take_injected_retry() {
        // PIN: the claim is the dma_buf's, not the importer's. The pin is
        // listed for revocation before it claims (see p2pmap_pin.c).
        let pinned = match pin {
            true => Some(
                PinnedRange::new(&nvme, inode, start, call.pa().len())
                    .ok_or_else(|| refuse(t, Reason::NoMemory))?,
            ),
            false => None,
        };
        let who = pinned
            .as_ref()
            .map_or_else(|| call.claimant(), PinnedRange::claimant);
        // Fast path, under the caller's mmap_lock.
        match windows::claim(inode, start, call.pa(), who, write) {
            Some(Ok(())) => {
                if let Some(p) = pinned {
                    // On failure the pin gave its claim back.
                    call.give_pin(p).map_err(|e| {
                        let r = if e == EBUSY {
                            Reason::LeaseBroken
                        } else {
                            Reason::NoMemory
                        };
                        refuse(t, r)
                    })?;
                    STATS.pinned();
                }
                STATS.mapped();
                dev_dbg!(
                    call.importer(),
                    "p2pmap: mapped {} pages at file offset {:#x}\n",
                    call.request().pages,
                    start
                );
                return Ok(());
            }
            Some(Err(r)) => return Err(refuse(t, r).into()),
            None => {}
        }
    }
    // Slow path: map_blocks takes i_rwsem, which nests outside
    // mmap_lock. Leave the caller's lock, stage, and have it retry.
    let pages = call.pa().len();
    let slow = call.release_mmap_lock().map_err(|r| refuse(t, r))?;
    // The lease first: a block-map change from here on breaks it, and a
    // window staged under a broken lease is thrown away.
    // What map_blocks told this request, for the inode's block map.
    let mut learned = KVec::new();
    let mut key = None;
    let mut what = StageTrace {
        bytes: (pages * PAGE_SIZE) as u64,
        mapped: 0,
        zeroed: 0,
        map_blocks: 0,
        start_ns: ffi::now_ns(),
    };
    // What devices wrote into the range and gave back goes to the file
    // first. Its commit is a change of the range after `mark`: have the
    // caller come back with a new one, to stage what was committed.
    if writeback::wait_pending(inode, start, end) {
        STATS.lock_dropped();
        return Err(MapFailure::Retry(slow.retry()));
    }
    let slot = match windows::take_lease(slow.file()) {
        Err(e) => Slot::refused(start, pages, Reason::of_lease_error(-e.to_errno())),
        // Two write windows of a byte, written back in either order,
        // would undo each other's bytes.
        Ok(_) if write && windows::write_overlaps(inode, start, end) => {
            Slot::refused(start, pages, Reason::WriteOverlap)
        }
        Ok(lease) => {
            // Direct writes submitted before the lease existed broke
            // nothing: let them land before the blocks are read.
            slow.wait_direct_io();
            let k = key.insert(extents::Key::new(inode, lease.generation(), mark));
            let staged = match write {
                false => stage(&slow, &nvme, k, start, pages, &mut learned, &mut what)
                    .map(|buf| (buf, None)),
                true => stage_write(&slow, &nvme, start, pages, &mut what)
                    .map(|(buf, w)| (buf, Some(w))),
            };
            match staged {
                Ok(_) if lease.broken() => Slot::refused(start, pages, Reason::LeaseBroken),
                Ok((buf, w)) => {
                    STATS.window_staged(buf.size());
                    if w.is_some() {
                        STATS.write_window_staged();
                    }
                    Slot::ready(start, pages, buf, lease, mark, w)
                }
                Err(r) => Slot::refused(start, pages, r),
            }
        }
    };
    slow.trace_stage(start, &what, slot.refusal());
    // If publishing fails (no memory), the retry simply stages again.
    let _ = windows::publish(inode, slot, &learned, key.as_ref());
    STATS.lock_dropped();
    Err(MapFailure::Retry(slow.retry()))
}

/// The filesystem and block-device vetoes, in the order the seed proposal
/// gives them: the filesystem (block ops; for WRITE, the checks a
/// `write()` makes), the block device (a published CMB reachable from the
/// importer; for SUPPORT_ATOMIC_OP, the AtomicOp path), then the page
/// cache. Returns the NVMe
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
    let flags = call.request().flags;
    if flags & request::FLAG_WRITE != 0 {
        // What a write() would check before it changes anything.
        if let Some(r) = file.write_refusal() {
            return Err(r);
        }
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
    if flags & request::FLAG_SUPPORT_ATOMIC_OP != 0 {
        check_atomics(&nvme, call.importer())?;
    }
    let (start, end) = call.file_range();
    let page = PAGE_SIZE as i64;
    // A write mapping may reach past EOF, up to the vma's end: its
    // write-back extends the file.
    if flags & request::FLAG_WRITE == 0 && end > file.size().saturating_add(page - 1) / page * page
    {
        return Err(Reason::PastEof);
    }
    if file.drop_clean_cache(start, end) {
        return Err(Reason::PageCacheResident);
    }
    Ok(nvme)
}

/// Whether the importer's PCIe AtomicOps reach the CMB: the decision of
/// [`crate::logic::atomic`] over the functions between them. A refusal
/// names the missing link in the log (ratelimited like the P2P-distance
/// refusals).
fn check_atomics(nvme: &Nvme, importer: &Device) -> Result<(), Reason> {
    let Some(path) = nvme.atomic_path(importer) else {
        // More switch ports than p2pmap follows: it cannot vouch for them.
        return Err(Reason::AtomicRouting);
    };
    let gap = match path.check() {
        Ok(()) => return Ok(()),
        Err(gap) => gap,
    };
    if verbose_refusal_allowed() {
        dev_info!(
            importer,
            "p2pmap: no PCIe AtomicOps to the CMB: {} {} {}\n",
            gap.role(),
            path.name_of(gap),
            gap.describe()
        );
    }
    Err(gap.reason())
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
/// come from the inode's block map under `key`, else from `map_blocks`;
/// those are added to `learned`, for [`windows::publish`] to merge. What it
/// did is counted in `what`, for the trace event.
///
/// Context: slow path (no mmap_lock); sleeps.
fn stage(
    slow: &SlowPath,
    nvme: &Nvme,
    key: &extents::Key,
    start: i64,
    pages: usize,
    learned: &mut KVec<Extent>,
    what: &mut StageTrace,
) -> Result<CmbBuf, Reason> {
    let len = pages * PAGE_SIZE;
    let mut buf = alloc_window(nvme, len)?;
    let use_cache = STATS.extent_cache_enabled();
    let inode = key.inode();
    let mut off = 0usize;
    while off < len {
        let pos = start + off as i64;
        let cached = if use_cache {
            learned
                .iter()
                .find(|e| e.offset <= pos && pos - e.offset < e.length as i64)
                .copied()
                .or_else(|| windows::cached_extent(inode, key, pos))
        } else {
            None
        };
        STATS.extent_lookup(cached.is_some());
        let ext = match cached {
            Some(ext) => ext,
            None => {
                what.map_blocks += 1;
                let ext = slow
                    .map_blocks(pos, (len - off) as u64, false)
                    .map_err(|e| {
                        if e == ENXIO {
                            Reason::Reflinked
                        } else if e == EINVAL {
                            Reason::PastEof
                        } else {
                            Reason::MapBlocksFailed
                        }
                    })?;
                if use_cache {
                    // Not learning it only costs a later map_blocks.
                    let _ = learned.push(ext, GFP_KERNEL);
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
            ExtentKind::Mapped(addr) => {
                what.mapped += 1;
                slow.read_into(&mut buf, off, addr + (pos - ext.offset) as u64, n)
                    .map_err(|_| Reason::ReadFailed)?
            }
            ExtentKind::Hole | ExtentKind::Unwritten(_) => {
                what.zeroed += 1;
                buf.zero(off, n).map_err(|_| Reason::MapBlocksFailed)?
            }
            ExtentKind::Other => return Err(Reason::ExtentUnsupported),
        }
        off += n;
    }
    Ok(buf)
}

/// Stages `pages` pages at file byte `start` into a new write window:
/// `map_blocks(write)` allocates what is not allocated yet (unwritten
/// extents); `IOMAP_MAPPED` extents are read into the window, so that a
/// device writing part of a block keeps the rest, and unwritten ones are
/// zero-filled. Returns the window and where its bytes go back (the
/// extents, and the size the file gets if the range reaches past EOF).
/// The extent cache is neither read (it may hold holes, which need
/// allocating) nor fed (the allocation changed the block map).
///
/// Context: slow path (no mmap_lock); sleeps.
fn stage_write(
    slow: &SlowPath,
    nvme: &Nvme,
    start: i64,
    pages: usize,
    what: &mut StageTrace,
) -> Result<(CmbBuf, KBox<WriteState>), Reason> {
    let len = pages * PAGE_SIZE;
    let mut buf = alloc_window(nvme, len)?;
    let mut extents = KVec::new();
    let mut off = 0usize;
    while off < len {
        let pos = start + off as i64;
        what.map_blocks += 1;
        let ext = slow
            .map_blocks(pos, (len - off) as u64, true)
            .map_err(|e| match e {
                e if e == ENXIO => Reason::Reflinked,
                e if e == ENOSPC => Reason::NoSpace,
                _ => Reason::MapBlocksFailed,
            })?;
        let ext_end = ext.offset.saturating_add(ext.length as i64);
        if ext.offset > pos || ext_end <= pos {
            return Err(Reason::MapBlocksFailed);
        }
        let n = ((ext_end - pos) as usize).min(len - off);
        let skip = (pos - ext.offset) as u64;
        let kind = match ext.kind {
            ExtentKind::Mapped(addr) => {
                what.mapped += 1;
                slow.read_into(&mut buf, off, addr + skip, n)
                    .map_err(|_| Reason::ReadFailed)?;
                ExtentKind::Mapped(addr + skip)
            }
            ExtentKind::Unwritten(addr) => {
                what.zeroed += 1;
                buf.zero(off, n).map_err(|_| Reason::MapBlocksFailed)?;
                ExtentKind::Unwritten(addr + skip)
            }
            // map_blocks(write) allocated the holes.
            ExtentKind::Hole => return Err(Reason::MapBlocksFailed),
            ExtentKind::Other => return Err(Reason::ExtentUnsupported),
        };
        extents
            .push(
                Extent {
                    offset: pos,
                    length: n as u64,
                    kind,
                },
                GFP_KERNEL,
            )
            .map_err(|_| Reason::NoMemory)?;
        off += n;
    }
    // Pages wholly past EOF: the device writes the file's new end.
    let end = start.saturating_add(len as i64);
    let page = PAGE_SIZE as i64;
    let eof_page_end = slow.file_size().saturating_add(page - 1) / page * page;
    let new_size = if end > eof_page_end { end } else { 0 };
    let w =
        KBox::new(WriteState::new(extents, new_size), GFP_KERNEL).map_err(|_| Reason::NoMemory)?;
    Ok((buf, w))
}

/// A CMB window of `len` bytes. What cannot fit in the CMB at all is
/// refused before anything is revoked. If the CMB is full: frees the
/// unclaimed windows whose callers had their chance to claim them, then
/// revokes least recently used mapped windows (their importers map again
/// later): first as many bytes as are missing if the CMB holds only
/// p2pmap's windows, then, while the allocation still fails (others use
/// the CMB, it is fragmented, or concurrent requests took the space),
/// `len` more per round, at most [`revoke::MAX_EVICT_ROUNDS`] rounds. A
/// round revokes only after an allocation failed: bytes beyond twice `len`
/// are revoked only when other requests took what the earlier rounds
/// freed. A round that finds nothing to revoke while p2pmap still holds
/// windows in the CMB (concurrent requests are revoking them, or staging)
/// waits for one of them to be freed, at most
/// [`revoke::PENDING_FREE_WAIT_MS`]: four processes under pressure were
/// refused `cmb_full` for windows that fit when such a round gave up
/// (measured: every refusal was a round with nothing left to revoke and
/// the CMB full of p2pmap's windows). Revoked write windows are freed only
/// after their write-back: a round waits for them, however long that takes,
/// before it revokes more.
///
/// Context: slow path; sleeps. Holds none of p2pmap's locks.
fn alloc_window(nvme: &Nvme, len: usize) -> Result<CmbBuf, Reason> {
    if windows::device_removing(nvme.key()) {
        return Err(Reason::NoP2pProvider);
    }
    // Before the first allocation: a free after it ends a round's wait.
    let mut seen = ffi::cmb_frees();
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
    let mut round = 0;
    while let Some(bytes) = revoke::evict_round_bytes(round, missing, len) {
        round += 1;
        // Write windows revoked by an earlier round free their space once
        // written back: wait for that rather than revoke more.
        if writeback::wait_queued_freed(nvme.key(), seen) {
            seen = ffi::cmb_frees();
            if let Some(buf) = CmbBuf::alloc(nvme, len) {
                return Ok(buf);
            }
        }
        if !revocation::revoke_lru(nvme.key(), bytes)
            && (windows::bytes_on_device(nvme.key()) == 0
                || !ffi::wait_cmb_freed(seen, revoke::PENDING_FREE_WAIT_MS))
        {
            // Nothing of p2pmap's to revoke or to wait for: the CMB is
            // someone else's, or nobody gives windows back.
            break;
        }
        seen = ffi::cmb_frees();
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
        assert_eq!(errno::EPERM, bindings::EPERM as i32);
        assert_eq!(errno::EROFS, bindings::EROFS as i32);
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
