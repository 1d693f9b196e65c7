// SPDX-License-Identifier: GPL-2.0

//! Write mappings going back to the file: the write-back worker, and the
//! waits of everything that must see what devices wrote.
//!
//! A write window's life (`DEVICE_MAP_FLAG_WRITE`): the slow path has
//! `map_blocks(write)` allocate the range's holes (unwritten extents,
//! logged synchronously), stages the current bytes (mapped extents read,
//! the rest zeros) and publishes it with its extents
//! ([`windows::WriteState`]); importers write into the CMB. Nothing reaches
//! the media while a device holds it. When its last importer gives it back
//! (`device_unmap`, also after a revocation, CMB pressure, unload), the
//! window is queued and the worker (`bindings/p2pmap_flush.c`, its own
//! workqueue) takes it:
//!
//! 1. writes its extents from the CMB to their blocks, by bios whose pages
//!    are the CMB pages (the controller copies from its own CMB, no host
//!    memory), and flushes the device's cache;
//! 2. writes back pages the CPU dirtied in the range through a shared
//!    mapping meanwhile (`commit_blocks` cannot invalidate a dirty page);
//! 3. `commit_blocks`: the unwritten extents become written and the size
//!    grows to the end of a mapping past EOF, in a synchronous transaction;
//! 4. marks the block map changed and revokes the read windows of the
//!    range (they hold the old bytes), then frees the window.
//!
//! A crash before 1 leaves the old bytes (unwritten extents read as
//! zeros); during 1 or 2, blocks of mapped extents hold a mix of old and
//! new bytes of this file, unwritten ones still read as zeros; after 3
//! the data is durable. A failure at 1, 2 or 3 is recorded in the file's
//! mapping (`mapping_set_error`: the next `fsync()` returns `EIO`),
//! counted and logged; the extents that were not committed stay unwritten.
//!
//! Until the worker is done the range is [`windows::written`]: `read()` and
//! `fsync()` of it (patch 15, [`sync`]), a `write()`, truncate or punch of
//! it (XFS drops its locks and syncs first), and new mappings of it (the
//! slow path, [`wait_pending`]) wait.

use kernel::prelude::*;

use crate::{
    changes,
    ffi::{self, DeviceKey, ExtentKind, InodeKey},
    logic::{changes::ChangeKind, revoke::Cause},
    revocation::{self, Scope, Through},
    stats::STATS,
    windows::{self, Slot},
};

/// Milliseconds one wait for a write-back sleeps before it looks again (a
/// write-back ends with its window freed, which wakes it sooner).
const WAIT_STEP_MS: u32 = 100;

/// Called by p2pmap_flush.c on the write-back worker: writes back and
/// commits the queued write windows, one at a time.
///
/// Context: process (the worker); sleeps; takes the filesystem's locks.
#[no_mangle]
extern "C" fn p2pmap_rust_flush() {
    while let Some((inode, mut slot)) = windows::take_queued() {
        write_back(inode, &mut slot);
        windows::flushed();
        // Frees the CMB window, which wakes the waiters.
        drop(slot);
    }
}

/// Writes `slot` (a write window the worker took) back to its blocks and
/// commits it; see the module documentation.
fn write_back(inode: InodeKey, slot: &mut Slot) {
    let (start, len) = slot.range();
    let end = start.saturating_add(len as i64);
    let since = ffi::now_ns();
    let Some((buf, file, Some(w))) = slot.parts() else {
        return;
    };
    let result = (|| -> Result {
        for e in w.extents.iter() {
            let addr = match e.kind {
                ExtentKind::Mapped(a) | ExtentKind::Unwritten(a) => a,
                ExtentKind::Hole | ExtentKind::Other => return Err(EINVAL),
            };
            let at = usize::try_from(e.offset - start).map_err(|_| EINVAL)?;
            let n = usize::try_from(e.length).map_err(|_| EINVAL)?;
            buf.write_to_media(file, at, addr, n)?;
        }
        // Once per window, not per extent.
        ffi::flush_device_cache(file)?;
        if ffi::flush_cpu_range(file, start, end) {
            STATS.write_back_cpu_pages();
        }
        ffi::commit_blocks(file, &w.extents, w.new_size)
    })();
    w.set_done();
    match result {
        Ok(()) => STATS.written_back(len),
        Err(e) => {
            // The next fsync() of every open file of it says so.
            ffi::set_mapping_error(file, EIO);
            STATS.write_back_failed();
            pr_warn!(
                "write-back of {} bytes at file offset {:#x} failed (errno {}): what the device wrote is lost\n",
                len,
                start,
                e.to_errno()
            );
        }
    }
    // The block map changed (unwritten extents became written): cached
    // extents of the inode go, and read windows of the old bytes too.
    changes::note_change(inode, start, end, ChangeKind::Layout);
    let scope = Scope::Range { inode, start, end };
    revocation::revoke(scope, Cause::WriteBack, since, Through::Windows);
}

/// Sleeps until `pending()` is false, looking again at every window freed
/// and every [`WAIT_STEP_MS`].
///
/// Context: process; sleeps; hold no lock.
fn wait_while(mut pending: impl FnMut() -> bool) {
    loop {
        let seen = ffi::cmb_frees();
        if !pending() {
            return;
        }
        ffi::wait_cmb_freed(seen, WAIT_STEP_MS);
    }
}

/// `filemap_device_sync()` (patch 15): revokes the write mappings of
/// `[start, end)` of `inode` and returns once what devices wrote there is
/// committed (or its failure recorded in the mapping).
///
/// Context: process, no filesystem lock, no mmap_lock; sleeps.
pub(crate) fn sync(inode: InodeKey, start: i64, end: i64) {
    if !windows::written(inode, start, end) {
        return;
    }
    STATS.write_back_wait();
    // A device may map the range again meanwhile: revoke it again.
    wait_while(|| {
        if !windows::written(inode, start, end) {
            return false;
        }
        let scope = Scope::Range { inode, start, end };
        revocation::revoke(scope, Cause::Sync, ffi::now_ns(), Through::Windows);
        windows::written(inode, start, end)
    });
}

/// The slow path of `device_map`: waits for the write-back of what was
/// given back in `[start, end)` of `inode`, so that the range is staged
/// with it (mappings still held are left alone). Returns whether it
/// waited.
///
/// Context: process (no mmap_lock); sleeps.
pub(crate) fn wait_pending(inode: InodeKey, start: i64, end: i64) -> bool {
    if !windows::write_back_pending(inode, start, end) {
        return false;
    }
    STATS.write_back_wait();
    wait_while(|| windows::write_back_pending(inode, start, end));
    true
}

/// CMB pressure: if write windows of function `dev`'s CMB were given back
/// (revoked by an earlier round) and wait for their write-back, waits until
/// a window of the CMB is freed after snapshot `seen` of
/// [`ffi::cmb_frees`], as long as write-backs remain (they end with a
/// free: a slow write-back is waited for, not taken for a full CMB).
/// Returns whether a window was freed.
///
/// Context: process (the slow path); sleeps; hold no lock.
pub(crate) fn wait_queued_freed(dev: DeviceKey, seen: u32) -> bool {
    while windows::write_back_queued(dev) {
        if ffi::wait_cmb_freed(seen, WAIT_STEP_MS) {
            return true;
        }
    }
    ffi::cmb_frees() != seen
}
