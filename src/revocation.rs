// SPDX-License-Identifier: GPL-2.0

//! The revocation engine: every cause revokes through [`revoke`], with a
//! [`Scope`] (which windows) and a [`Cause`] (what it is counted under).
//!
//! A revocation marks the windows of its scope revoking (no new claim),
//! invalidates their importers by `unmap_mapping_range()` (each importer's
//! interval notifier stops its device and calls `device_unmap` before that
//! returns), counts itself, and frees what nobody claims any more. No
//! p2pmap lock is held across `unmap_mapping_range()`.
//!
//! Where it runs, by cause:
//! - a CPU store through a shared mapping ([`Cause::CpuWrite`]): in the
//!   faulting task, from `->page_mkwrite` (patch 5), the page's range;
//! - a change XFS announces ([`Cause::LayoutChange`]: `write()`, truncate,
//!   fallocate, scrub, zoned GC; reflink, dedupe and exchange-range the
//!   whole of both files): in XFS's task, from
//!   `filemap_device_break_begin()` (patches 8 and 10), the changed range,
//!   before XFS breaks the layout leases (the break then passes p2pmap's
//!   lease);
//! - a lease break that announces no range ([`Cause::LeaseBreak`]:
//!   `RWF_NOWAIT` writes, which must not sleep, any other lease breaker):
//!   on the lease worker, the whole inode. `lm_break` is called under
//!   `flc_lock` and must not sleep, so it cannot revoke itself;
//! - NVMe removal ([`Cause::DeviceRemoval`]): in the PCI bus notifier, every
//!   window of the CMB, all freed before the driver unbinds;
//! - CMB pressure ([`Cause::CmbPressure`]): in the slow path that needs the
//!   room, least recently claimed windows first;
//! - module unload ([`Cause::Unload`]): everything.

use kernel::{
    bindings,
    fs::File,
    prelude::*,
    time::{
        delay::fsleep,
        Delta, //
    },
};

use crate::{
    ffi::{self, BreakingInode, DeviceKey, InodeKey},
    logic::revoke::{self, Cause, Span},
    stats::STATS,
    windows::{self, Revoked},
};

pub(crate) use crate::windows::Scope;

/// How a revocation reaches the importers of its windows.
pub(crate) enum Through<'a> {
    /// Each window's own file range, through the file its lease holds.
    Windows,
    /// The [`Scope::Range`], through `file`, being stored into by the
    /// faulting task.
    Store(&'a File),
    /// The [`Scope::Range`], through the inode XFS is changing.
    Change(&'a BreakingInode<'a>),
}

/// Revokes the windows of `scope` for `cause`, timed from `since_ns`
/// (`ktime_get_ns()`), reaching their importers `through` the given file or
/// inode (for a range whose caller holds one) or each window's own. Returns
/// how many windows were revoked.
///
/// Context: process; sleeps (`unmap_mapping_range()`); holds none of
/// p2pmap's locks when called.
pub(crate) fn revoke(scope: Scope, cause: Cause, since_ns: u64, through: Through<'_>) -> usize {
    let n = match (through, scope) {
        (Through::Store(file), Scope::Range { start, end, .. }) => {
            let n = windows::mark_revoking(scope);
            if n > 0 {
                // Only the range: every importer of a window covering it
                // is invalidated (its notifier spans the window), and the
                // other CPU PTEs of those windows' ranges are left alone.
                ffi::revoke_file_range(file, start, end.saturating_sub(start) as usize);
            }
            n
        }
        (Through::Change(inode), Scope::Range { start, end, .. }) => {
            let n = windows::mark_revoking(scope);
            if n > 0 {
                inode.revoke_range(start, end);
            }
            n
        }
        _ => match windows::start_revoking(scope) {
            Ok(ranges) => {
                invalidate(&ranges);
                if matches!(scope, Scope::LeastRecent { .. }) {
                    // Only the windows chosen: their pins, by file range.
                    for (inode, _, start, len) in ranges.iter() {
                        let end = start.saturating_add(*len as i64);
                        STATS.pins_revoked(ffi::revoke_pins(Some(*inode), *start, end, None));
                    }
                }
                ranges.len()
            }
            // Out of memory: nothing could be revoked now. For a lease
            // break the windows keep the lease and the breaker waits for
            // the lease-break timeout; the other scopes drain what they
            // must anyway.
            Err(_) => {
                pr_warn!("revocation could not list windows (out of memory)\n");
                0
            }
        },
    };
    if n > 0 {
        revoke_pins(scope);
    }
    if n > 0 || cause == Cause::LeaseBreak {
        let ns = ffi::now_ns().saturating_sub(since_ns);
        STATS.revoked(cause, n, ns);
        ffi::trace_revoke(cause, scope.name(), scope.inode(), scope.range(), n, ns);
    }
    match scope {
        Scope::Device(dev) => settle_device(dev, n),
        Scope::All => {
            // What devices wrote goes to the files before the windows go.
            windows::queue_written(Scope::All);
            windows::settle_write_backs(None);
            windows::drain(scope);
        }
        // Nothing revoked in the range: nothing to free (the fault path).
        Scope::Range { .. } if n == 0 => {}
        _ => {
            windows::drain(scope);
        }
    }
    n
}

/// Revokes the pins (`DEVICE_MAP_FLAG_PIN` dma_bufs) of `scope`'s file
/// ranges, after the windows were marked revoking and the vma importers
/// invalidated: their importers are invalidated through the dma_buf, and
/// each pin gives its claim back once nothing maps it, so that the drain
/// below frees the windows. (`LeastRecent` revokes its own, by window.)
fn revoke_pins(scope: Scope) {
    let n = match scope {
        Scope::Range { inode, start, end } => ffi::revoke_pins(Some(inode), start, end, None),
        Scope::Inode(inode) => ffi::revoke_pins(Some(inode), i64::MIN, i64::MAX, None),
        Scope::Device(dev) => ffi::revoke_pins(None, i64::MIN, i64::MAX, Some(dev)),
        Scope::All => ffi::revoke_pins(None, i64::MIN, i64::MAX, None),
        Scope::LeastRecent { .. } => 0,
    };
    STATS.pins_revoked(n);
}

/// Invalidates the file ranges of revoked windows: one
/// `unmap_mapping_range()` per contiguous run of a file, not per window
/// (each call walks the rmap and flushes TLBs).
fn invalidate(ranges: &[Revoked]) {
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
}

/// 10 ms steps a device revocation waits at most for claims in flight.
const REMOVAL_WAIT_STEPS: usize = 100;

/// After revoking the `n` windows of function `dev` (being unbound): a
/// claim in flight (device_map returned, the importer not committed yet)
/// gives its reference back as soon as it sees the invalidation; wait a
/// little for those, then free every window of the CMB before the driver
/// (and its P2P memory) goes.
fn settle_device(dev: DeviceKey, n: usize) {
    for _ in 0..REMOVAL_WAIT_STEPS {
        if !windows::claimed_on_device(dev) {
            break;
        }
        fsleep(Delta::from_millis(10));
    }
    // The controller still works until its driver unbinds: what devices
    // wrote into its CMB goes to the media first, also from write windows
    // whose importers did not give them back.
    windows::queue_written(Scope::Device(dev));
    windows::settle_write_backs(Some(dev));
    let stuck = windows::drain(Scope::Device(dev));
    if n > 0 {
        pr_info!("revoked {n} windows of a CMB being removed\n");
    }
    if stuck > 0 {
        pr_warn!("{stuck} windows still referenced 1 s after revocation; freed\n");
    }
}

/// Module exit, after the provider is unregistered: revoke everything and
/// free every window (importers were invalidated; a window still referenced
/// belongs to an importer that ignored its notifier).
pub(crate) fn revoke_all() {
    revoke(Scope::All, Cause::Unload, ffi::now_ns(), Through::Windows);
}

/// CMB pressure: revokes least recently used windows that importers still
/// map in the CMB of `dev`, about `bytes` of them (at least one). Returns
/// whether any was.
pub(crate) fn revoke_lru(dev: DeviceKey, bytes: usize) -> bool {
    let scope = Scope::LeastRecent { dev, bytes };
    revoke(scope, Cause::CmbPressure, ffi::now_ns(), Through::Windows) > 0
}

/// Called by p2pmap_lease.c, in process context (the lease worker), when
/// lease `generation` of `inode` was broken (`lm_break`, which
/// [`windows`] stamped). The pointer is only a key. The last window revoked
/// gives back the last hold, which releases the lease; a lease that has
/// no holder any more by now is being released already.
#[no_mangle]
extern "C" fn p2pmap_rust_lease_broken(inode: *mut bindings::inode, generation: u64) {
    STATS.lease_broken();
    let key = InodeKey::of(inode);
    let Some(break_ns) = windows::lease_broken_at(key, generation) else {
        return;
    };
    STATS.break_dispatched(ffi::now_ns().saturating_sub(break_ns));
    revoke(
        Scope::Inode(key),
        Cause::LeaseBreak,
        break_ns,
        Through::Windows,
    );
}

/// Called by p2pmap_lease.c (the lease worker) just before it releases a
/// broken layout lease; `break_ns` is when it was broken (the clock of
/// [`ffi::now_ns`]).
#[no_mangle]
extern "C" fn p2pmap_rust_lease_released(break_ns: u64) {
    STATS.lease_released(break_ns, ffi::now_ns());
}

/// Called by the PCI bus notifier (process context, may sleep, the device
/// lock of `pdev` held) before `pdev` is unbound from its driver: revoke
/// and free every window its CMB holds. The pointer is only a key, the one
/// windows record their CMB's function by (`Nvme::key`).
#[no_mangle]
extern "C" fn p2pmap_rust_device_unbind(pdev: *mut bindings::pci_dev) {
    let scope = Scope::Device(DeviceKey::of(pdev));
    revoke(scope, Cause::DeviceRemoval, ffi::now_ns(), Through::Windows);
}

/// Called by the PCI bus notifier after `pdev`'s driver was unbound (its
/// devres, hence its P2P memory, released): nothing can be staged there
/// any more.
#[no_mangle]
extern "C" fn p2pmap_rust_device_unbound(pdev: *mut bindings::pci_dev) {
    windows::device_removed(DeviceKey::of(pdev));
}
