// SPDX-License-Identifier: GPL-2.0

//! CMB windows: file ranges staged in the NVMe CMB, shared by every importer
//! that maps the same range, freed when the last one unmaps.
//!
//! The registry is a spinlock-protected list (`ffi::windows()`): the fast
//! path of `device_map` runs under the caller's mmap_lock and `device_unmap`
//! may run in non-blockable notifier context. Nothing that sleeps or frees a
//! window runs under the lock: removed slots are dropped after unlocking.

use kernel::{fs::File, page::PAGE_SIZE, prelude::*, sync::aref::ARef};

use crate::{
    ffi::{self, CmbBuf, LeaseRef},
    logic::reason::Reason,
    stats::STATS,
};

/// A staged window, or the refusal the slow path found (handed to the
/// retried call, which cannot learn it otherwise: the slow path had to
/// return `-EAGAIN`).
pub(crate) enum State {
    /// Staged: `buf` holds the range's bytes.
    Ready {
        buf: CmbBuf,
        /// The inode's layout lease; keeps the file (hence the inode, the
        /// key) alive and is how revocation finds the file.
        lease: LeaseRef,
        refs: u32,
        /// Being revoked (lease broken): no new reference is handed out.
        revoking: bool,
    },
    /// Refused by the slow path.
    Refused(Reason),
}

/// One entry of the registry.
pub(crate) struct Slot {
    inode: usize,
    start: i64,
    pages: usize,
    state: State,
}

impl Slot {
    /// A staged window for `pages` pages at file byte `start` of `inode`.
    pub(crate) fn ready(
        inode: usize,
        start: i64,
        pages: usize,
        buf: CmbBuf,
        lease: LeaseRef,
    ) -> Self {
        Slot {
            inode,
            start,
            pages,
            state: State::Ready {
                buf,
                lease,
                refs: 0,
                revoking: false,
            },
        }
    }

    /// The slow path's refusal for that range.
    pub(crate) fn refused(inode: usize, start: i64, pages: usize, reason: Reason) -> Self {
        Slot {
            inode,
            start,
            pages,
            state: State::Refused(reason),
        }
    }

    fn is(&self, inode: usize, start: i64, pages: usize) -> bool {
        self.inode == inode && self.start == start && self.pages == pages
    }

    /// Not referenced by any importer: may be evicted.
    fn unclaimed(&self) -> bool {
        !matches!(self.state, State::Ready { refs, .. } if refs > 0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let State::Ready { buf, .. } = &self.state {
            STATS.window_freed(buf.size());
        }
    }
}

/// Unclaimed slots kept at most (staged by a slow path whose caller has not
/// come back yet).
const MAX_UNCLAIMED: usize = 8;

/// Fast path: if `[start, start + pages)` of `inode` is staged, takes a
/// reference and fills `pa`; if the slow path refused it, returns (and
/// forgets) the reason; `None` if nothing is known about the range.
pub(crate) fn claim(inode: usize, start: i64, pa: &mut [u64]) -> Option<Result<(), Reason>> {
    let pages = pa.len();
    let mut reg = ffi::windows().lock();
    let i = reg.iter().position(|s| {
        s.is(inode, start, pages) && !matches!(s.state, State::Ready { revoking: true, .. })
    })?;
    let refused = match &mut reg[i].state {
        State::Ready { buf, refs, .. } => {
            *refs += 1;
            for (k, p) in pa.iter_mut().enumerate() {
                *p = buf.bus() + (k * PAGE_SIZE) as u64;
            }
            return Some(Ok(()));
        }
        State::Refused(r) => *r,
    };
    // The refusal is handed over once; drop the slot outside the lock.
    let removed = reg.remove(i).ok();
    drop(reg);
    drop(removed);
    Some(Err(refused))
}

/// Whether a window of exactly this range is staged and not being revoked.
pub(crate) fn is_staged(inode: usize, start: i64, pages: usize) -> bool {
    ffi::windows().lock().iter().any(|s| {
        s.is(inode, start, pages)
            && matches!(
                s.state,
                State::Ready {
                    revoking: false,
                    ..
                }
            )
    })
}

/// Publishes what the slow path found for a range, replacing older
/// unclaimed slots for it and evicting the oldest unclaimed slots beyond
/// [`MAX_UNCLAIMED`].
pub(crate) fn publish(mut slot: Slot) -> Result {
    let mut evicted = KVec::new();
    let mut discarded = None;
    {
        let mut reg = ffi::windows().lock();
        // Checked under the registry lock: lm_break marks the lease broken
        // before it queues the revocation, which takes this lock to find the
        // windows, so either we see the break here or it sees our window.
        if matches!(&slot.state, State::Ready { lease, .. } if lease.broken()) {
            let refused = Slot::refused(slot.inode, slot.start, slot.pages, Reason::LeaseBroken);
            discarded = Some(core::mem::replace(&mut slot, refused));
        }
        let mut i = 0;
        while i < reg.len() {
            let stale = reg[i].unclaimed()
                && (reg[i].is(slot.inode, slot.start, slot.pages)
                    || reg.iter().filter(|s| s.unclaimed()).count() >= MAX_UNCLAIMED);
            if stale {
                // Keeps order: the oldest unclaimed slots go first.
                evicted.push(reg.remove(i)?, GFP_ATOMIC)?;
            } else {
                i += 1;
            }
        }
        reg.push(slot, GFP_ATOMIC)?;
    }
    drop(evicted);
    drop(discarded);
    Ok(())
}

/// `device_unmap`: drops the reference of the window that starts at bus
/// address `first_pa`; the last one frees it.
pub(crate) fn release(first_pa: u64) {
    let mut freed = None;
    {
        let mut reg = ffi::windows().lock();
        let Some(i) = reg.iter().position(
            |s| matches!(&s.state, State::Ready { buf, refs, .. } if buf.bus() == first_pa && *refs > 0),
        ) else {
            return;
        };
        if let State::Ready { refs, .. } = &mut reg[i].state {
            *refs -= 1;
            if *refs == 0 {
                freed = reg.remove(i).ok();
            }
        }
    }
    drop(freed);
}

/// Frees every window no importer maps (staged by a caller that did not come
/// back), oldest first: the first thing to reclaim when the CMB is full.
/// Referenced windows are left alone (revoking them needs the layout-lease
/// revocation path). Returns how many were freed.
pub(crate) fn evict_unclaimed() -> usize {
    let mut evicted = KVec::new();
    {
        let mut reg = ffi::windows().lock();
        let mut i = 0;
        while i < reg.len() {
            if reg[i].unclaimed() {
                match reg.remove(i) {
                    Ok(slot) => {
                        if evicted.push(slot, GFP_ATOMIC).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            } else {
                i += 1;
            }
        }
    }
    let n = evicted.len();
    drop(evicted);
    n
}

/// Marks every staged window (of `inode` only, if given) as revoking, so
/// that no new reference is handed out, and returns their files and byte
/// ranges for revocation.
pub(crate) fn start_revoking(inode: Option<usize>) -> Result<KVec<(ARef<File>, i64, usize)>> {
    // Allocate outside the lock (a revocation must not fail for lack of
    // atomic memory); retry if windows were added meanwhile.
    loop {
        let n = ffi::windows().lock().len();
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut reg = ffi::windows().lock();
        if reg.len() > n {
            continue;
        }
        for s in reg
            .iter_mut()
            .filter(|s| inode.is_none_or(|i| i == s.inode))
        {
            if let State::Ready {
                lease, revoking, ..
            } = &mut s.state
            {
                *revoking = true;
                // Within capacity: cannot fail.
                v.push(
                    (lease.file().into(), s.start, s.pages * PAGE_SIZE),
                    GFP_ATOMIC,
                )?;
            }
        }
        return Ok(v);
    }
}

/// After revocation: drops the slots of `inode` that no importer maps any
/// more (the others go with their last `device_unmap`), or, with `None`
/// (module exit, provider already unregistered, importers invalidated),
/// every slot.
pub(crate) fn drain(inode: Option<usize>) {
    let mut gone = KVec::new();
    {
        let mut reg = ffi::windows().lock();
        let mut i = 0;
        while i < reg.len() {
            let take = match inode {
                None => true,
                Some(ino) => ino == reg[i].inode && reg[i].unclaimed(),
            };
            if take {
                match reg.remove(i) {
                    Ok(slot) => {
                        // On allocation failure the slot is dropped right
                        // here: its drop does not sleep (lease put and
                        // p2pmem free are atomic-safe).
                        let _ = gone.push(slot, GFP_ATOMIC);
                    }
                    Err(_) => break,
                }
            } else {
                i += 1;
            }
        }
    }
    drop(gone);
}
