// SPDX-License-Identifier: GPL-2.0

//! CMB windows: file ranges staged in the NVMe CMB, shared by every importer
//! that maps the same range, freed when the last one unmaps.
//!
//! The registry is a spinlock-protected list (`registry()`): the fast
//! path of `device_map` runs under the caller's mmap_lock and `device_unmap`
//! may run in non-blockable notifier context. Nothing that sleeps or frees a
//! window runs under the lock: removed slots are dropped after unlocking.
//!
//! A staged window is referenced by claims, one per `device_map` that
//! returned it, each naming the importer and the virtual range it will give
//! back: `device_unmap` drops the claim it names, never another importer's.
//! A window nobody claims (its slow path's caller never retried) expires
//! after [`UNCLAIMED_TTL_NS`]; the lease worker reaps it.
//!
//! The list holds boxed slots, in publication order (the eviction order of
//! unclaimed slots). A removal shifts the pointers behind it: with slots
//! stored inline it shifted whole slots, and a revocation of 256 windows,
//! which removes them front to back, spent 85% of its time in those moves
//! under the registry lock (15 µs per `device_unmap` in the TCG guest,
//! measured).

use kernel::{
    ffi::c_ulong,
    fs::File,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
};

use crate::{
    ffi::{self, Claimant, CmbBuf, DeviceKey, InodeKey, LeaseRef},
    logic::{
        changes::{ChangeKind, Changes, Mark},
        reason::Reason,
        revoke,
    },
    stats::STATS,
};

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider,
    // the lease worker and the PCI notifier are registered (its only users).
    pub(crate) unsafe(uninit) static WINDOWS: SpinLock<KVec<KBox<Slot>>> = KVec::new();
}

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider
    // and the PCI notifier are registered (its only users).
    pub(crate) unsafe(uninit) static REMOVING: SpinLock<KVec<DeviceKey>> = KVec::new();
}

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider
    // (its only user) is registered.
    unsafe(uninit) static CHANGES: SpinLock<Changes> = Changes::new();
}

/// Initializes the registry lock, the lock of the list of PCI functions
/// being removed and that of the history of changes. Call once, at module
/// init, before anything else of this file.
pub(crate) fn init() {
    // SAFETY: called once from module init, before any use of `WINDOWS`,
    // `REMOVING` or `CHANGES`.
    unsafe {
        WINDOWS.init();
        REMOVING.init();
        CHANGES.init();
    }
}

/// The window registry: a spinlock, since `device_unmap` may run in
/// non-blockable notifier context.
fn registry() -> &'static kernel::sync::lock::GlobalLock<WINDOWS> {
    &WINDOWS
}

/// The PCI functions being unbound from their driver (keys), from the unbind
/// notification until the driver is gone; read under the registry lock.
fn removing() -> &'static kernel::sync::lock::GlobalLock<REMOVING> {
    &REMOVING
}

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
        /// The point in the history of changes ([`change_mark`]) when the request
        /// that staged the window began: if one moved before the window is
        /// published, the CPU may have written the range through a shared
        /// mapping, or XFS changed the file, meanwhile, and the window is
        /// thrown away.
        mark: ChangeMark,
        /// One per `device_map` that returned the window and has not given
        /// it back yet.
        claims: KVec<Claimant>,
        /// Being revoked (lease broken): no new reference is handed out.
        revoking: bool,
    },
    /// Refused by the slow path.
    Refused(Reason),
}

/// One entry of the registry.
pub(crate) struct Slot {
    inode: InodeKey,
    start: i64,
    pages: usize,
    /// Value of [`USE_CLOCK`] at the last claim: the LRU order for CMB
    /// pressure.
    last_use: u64,
    /// `ktime_get_ns()` when published: an unclaimed slot expires
    /// [`UNCLAIMED_TTL_NS`] later.
    published_ns: u64,
    state: State,
}

/// How long a staged window (or a refusal) waits for the retry of the
/// `device_map` call that staged it. The retry normally comes at once (the
/// caller loops on `-EAGAIN`); one that comes later stages again. Only
/// abandoned slow paths (importer killed, or gave up) leave slots this old,
/// and such slots hold a file, its mount, its lease and CMB space.
pub(crate) const UNCLAIMED_TTL_NS: u64 = 5_000_000_000;

/// Ticks at every claim (and publish).
static USE_CLOCK: Atomic<u64> = Atomic::new(0);

/// When a window's or a cached block map's range was read: a point in the
/// history of announced changes ([`CHANGES`]).
pub(crate) type ChangeMark = Mark;

/// Now, in the history of announced changes: sample it before checking the
/// page cache of a range to stage, hand it to [`Slot::ready`].
pub(crate) fn change_mark() -> ChangeMark {
    CHANGES.lock().mark()
}

/// The first announced change to `[start, end)` of `inode` since `mark`.
pub(crate) fn changed_since(
    mark: ChangeMark,
    inode: InodeKey,
    start: i64,
    end: i64,
) -> Option<ChangeKind> {
    CHANGES.lock().since(mark, inode.raw(), start, end)
}

/// Whether `inode` is unchanged since `mark` (no change announced to any of
/// its ranges); if so, the mark of now, which stands for `mark` from here on
/// and keeps a long-lived reader (the extent cache) inside the history.
pub(crate) fn unchanged_since(mark: ChangeMark, inode: InodeKey) -> Option<ChangeMark> {
    let changes = CHANGES.lock();
    match changes.since(mark, inode.raw(), 0, i64::MAX) {
        None => Some(changes.mark()),
        Some(_) => None,
    }
}

/// `[start, end)` of `inode` is about to become writable through a shared
/// mapping. Call before [`mark_revoking_range`]: a window being staged
/// meanwhile is then either seen by the revocation or thrown away when
/// published (the registry lock orders the two).
pub(crate) fn note_cpu_write(inode: InodeKey, start: i64, end: i64) {
    CHANGES
        .lock()
        .record(inode.raw(), start, end, ChangeKind::CpuWrite);
}

/// XFS is about to change `[start, end)` of `inode` having revoked it
/// itself (its break passes p2pmap's lease by, which a window being staged
/// can then not see broken). Call before [`mark_revoking_range`], as
/// [`note_cpu_write`].
pub(crate) fn note_layout_change(inode: InodeKey, start: i64, end: i64) {
    CHANGES
        .lock()
        .record(inode.raw(), start, end, ChangeKind::Layout);
}

fn tick() -> u64 {
    USE_CLOCK.add(1, Relaxed);
    USE_CLOCK.load(Relaxed)
}

/// Whether function `dev` is being unbound (see [`removing`]): refuse
/// to stage into its CMB, whose pages must all be freed for the removal to
/// finish (see [`start_revoking_device`]).
pub(crate) fn device_removing(dev: DeviceKey) -> bool {
    removing().lock().contains(&dev)
}

/// Marks function `dev` as being unbound, for as many removals at once as
/// there are (a fixed table lost the mark of the ninth). The list grows
/// outside its spinlock.
///
/// Context: process (the PCI bus notifier); sleeps.
fn mark_removing(dev: DeviceKey) -> Result {
    loop {
        let want = {
            let mut l = removing().lock();
            if l.contains(&dev) {
                return Ok(());
            }
            if l.len() < l.capacity() {
                // Within capacity: allocates nothing.
                return Ok(l.push(dev, GFP_ATOMIC)?);
            }
            l.len() + 4
        };
        let mut bigger = KVec::with_capacity(want, GFP_KERNEL)?;
        let mut l = removing().lock();
        if l.capacity() < want {
            for &d in l.iter() {
                // Within capacity: allocates nothing.
                bigger.push(d, GFP_ATOMIC)?;
            }
            core::mem::swap(&mut *l, &mut bigger);
        }
        drop(l);
        // The smaller list (or the unused one) is freed outside the lock.
        drop(bigger);
    }
}

/// The driver of function `dev` is gone (its P2P memory was released, so
/// nothing can be staged there any more): forget the mark.
pub(crate) fn device_removed(dev: DeviceKey) {
    removing().lock().retain(|d| *d != dev);
}

/// A revoked window's inode key, file and byte range (start, length), for
/// `unmap_mapping_range`.
pub(crate) type Revoked = (InodeKey, ARef<File>, i64, usize);

impl Slot {
    /// A staged window for `pages` pages at file byte `start` of `inode`,
    /// staged by a request that sampled [`change_mark`] `mark` before
    /// it checked the page cache.
    pub(crate) fn ready(
        inode: InodeKey,
        start: i64,
        pages: usize,
        buf: CmbBuf,
        lease: LeaseRef,
        mark: ChangeMark,
    ) -> Self {
        Slot {
            inode,
            start,
            pages,
            last_use: tick(),
            published_ns: 0,
            state: State::Ready {
                buf,
                lease,
                mark,
                claims: KVec::new(),
                revoking: false,
            },
        }
    }

    /// The slow path's refusal for that range.
    pub(crate) fn refused(inode: InodeKey, start: i64, pages: usize, reason: Reason) -> Self {
        Slot {
            inode,
            start,
            pages,
            last_use: 0,
            published_ns: 0,
            state: State::Refused(reason),
        }
    }

    fn is(&self, inode: InodeKey, start: i64, pages: usize) -> bool {
        self.inode == inode && self.start == start && self.pages == pages
    }

    /// A staged window, not being revoked, that holds every page of
    /// `pages` pages at file byte `start` of `inode`: returns the byte
    /// offset of `start` in the window.
    fn serves(&self, inode: InodeKey, start: i64, pages: usize) -> Option<usize> {
        if self.inode != inode
            || !matches!(
                self.state,
                State::Ready {
                    revoking: false,
                    ..
                }
            )
        {
            return None;
        }
        revoke::offset_in(self.start, self.pages, start, pages, PAGE_SIZE)
    }

    /// A staged window whose bus range holds `pa`.
    fn holds_bus(&self, pa: u64) -> bool {
        match &self.state {
            State::Ready { buf, .. } => pa >= buf.bus() && pa - buf.bus() < buf.size() as u64,
            State::Refused(_) => false,
        }
    }

    /// Covers a byte of `[start, end)` of `inode`.
    fn overlaps(&self, inode: InodeKey, start: i64, end: i64) -> bool {
        let len = (self.pages * PAGE_SIZE) as i64;
        self.inode == inode
            && revoke::overlaps(self.start, self.start.saturating_add(len), start, end)
    }

    /// Staged and marked revoking.
    fn revoking(&self) -> bool {
        matches!(self.state, State::Ready { revoking: true, .. })
    }

    /// Not referenced by any importer: may be evicted.
    fn unclaimed(&self) -> bool {
        match &self.state {
            State::Ready { claims, .. } => claims.is_empty(),
            State::Refused(_) => true,
        }
    }

    /// Staged in the CMB of function `dev`.
    fn on_device(&self, dev: DeviceKey) -> bool {
        matches!(&self.state, State::Ready { buf, .. } if buf.device_key() == dev)
    }

    /// Referenced by importers and not being revoked: a CMB-pressure victim.
    fn live(&self) -> bool {
        matches!(&self.state, State::Ready { claims, revoking: false, .. } if !claims.is_empty())
    }

    /// Marks a staged window revoking; `false` for a refusal.
    fn mark_revoking(&mut self) -> bool {
        match &mut self.state {
            State::Ready { revoking, .. } => {
                *revoking = true;
                true
            }
            State::Refused(_) => false,
        }
    }

    /// Marks the window revoking and returns its file range.
    fn revoke(&mut self) -> Option<Revoked> {
        match &mut self.state {
            State::Ready {
                lease, revoking, ..
            } => {
                *revoking = true;
                Some((
                    self.inode,
                    lease.file().into(),
                    self.start,
                    self.pages * PAGE_SIZE,
                ))
            }
            State::Refused(_) => None,
        }
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

/// Fast path: if a staged window holds `[start, start + pages)` of `inode`
/// (the same range, or a larger one around it), records the claim of `who`
/// and fills `pa`; if the slow path refused exactly that range, returns (and
/// forgets) the reason; `None` if nothing is known about the range.
pub(crate) fn claim(
    inode: InodeKey,
    start: i64,
    pa: &mut [u64],
    who: Claimant,
) -> Option<Result<(), Reason>> {
    let pages = pa.len();
    let mut reg = registry().lock();
    // The smallest staged window that holds the range (one of exactly the
    // range if there is), else the slow path's refusal of exactly it.
    let ready = reg
        .iter()
        .enumerate()
        .filter(|(_, s)| s.serves(inode, start, pages).is_some())
        .min_by_key(|(_, s)| s.pages)
        .map(|(i, _)| i);
    let i = match ready {
        Some(i) => i,
        None => reg
            .iter()
            .position(|s| s.is(inode, start, pages) && matches!(s.state, State::Refused(_)))?,
    };
    reg[i].last_use = tick();
    let at = reg[i].serves(inode, start, pages);
    let refused = match &mut reg[i].state {
        State::Ready { buf, claims, .. } => {
            let at = at? as u64;
            // Atomic: under the registry spinlock. A failure is a refusal
            // like any other (the importer falls back).
            if claims.push(who, GFP_ATOMIC).is_err() {
                return Some(Err(Reason::NoMemory));
            }
            for (k, p) in pa.iter_mut().enumerate() {
                *p = buf.bus() + at + (k * PAGE_SIZE) as u64;
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

/// Whether a staged window, not being revoked, holds the range.
pub(crate) fn is_staged(inode: InodeKey, start: i64, pages: usize) -> bool {
    registry()
        .lock()
        .iter()
        .any(|s| s.serves(inode, start, pages).is_some())
}

/// Publishes what the slow path found for a range, replacing older
/// unclaimed slots for it and evicting the oldest unclaimed slots beyond
/// [`MAX_UNCLAIMED`].
pub(crate) fn publish(mut slot: Slot) -> Result {
    slot.published_ns = ffi::now_ns();
    // Boxed before the lock is taken: the slow path may sleep.
    let mut slot = KBox::new(slot, GFP_KERNEL)?;
    let mut evicted = KVec::new();
    let mut discarded = None;
    {
        let mut reg = registry().lock();
        // Checked under the registry lock: lm_break marks the lease broken
        // before it queues the revocation, which takes this lock to find the
        // windows, so either we see the break here or it sees our window.
        if matches!(&slot.state, State::Ready { lease, .. } if lease.broken()) {
            let refused = Slot::refused(slot.inode, slot.start, slot.pages, Reason::LeaseBroken);
            discarded = Some(core::mem::replace(&mut *slot, refused));
        }
        // And for a CPU write or a range XFS revoked itself: note_*()
        // records the change before mark_revoking_range() takes this lock.
        // Only a change to the window's own range counts.
        if let State::Ready { mark, .. } = &slot.state {
            let end = slot.start.saturating_add((slot.pages * PAGE_SIZE) as i64);
            let reason = match changed_since(*mark, slot.inode, slot.start, end) {
                Some(ChangeKind::CpuWrite) => Some(Reason::CpuWrite),
                Some(ChangeKind::Layout | ChangeKind::Unknown) => Some(Reason::LeaseBroken),
                None => None,
            };
            if let Some(r) = reason {
                let refused = Slot::refused(slot.inode, slot.start, slot.pages, r);
                discarded = Some(core::mem::replace(&mut *slot, refused));
            }
        }
        // Same argument for a device removal: it marks the function before
        // it takes this lock to list the windows to revoke. The retry finds
        // the function going away and is refused.
        if matches!(&slot.state, State::Ready { buf, .. } if device_removing(buf.device_key())) {
            let refused = Slot::refused(slot.inode, slot.start, slot.pages, Reason::NoP2pProvider);
            discarded = Some(core::mem::replace(&mut *slot, refused));
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
    ffi::reap_schedule(UNCLAIMED_TTL_NS / 1_000_000);
    Ok(())
}

/// Called by p2pmap_lease.c from the lease worker: [`reap_unclaimed`] now.
#[no_mangle]
extern "C" fn p2pmap_rust_reap_unclaimed() -> c_ulong {
    reap_unclaimed(ffi::now_ns()) as c_ulong
}

/// The lease worker's reaper: frees the unclaimed slots published more than
/// [`UNCLAIMED_TTL_NS`] before `now_ns` (their callers never came back), so
/// that they stop pinning a file, its mount and lease, and CMB space.
/// Returns the milliseconds until the next unclaimed slot expires, 0 if
/// there is none.
pub(crate) fn reap_unclaimed(now_ns: u64) -> u64 {
    let mut next_ns = u64::MAX;
    let n = drain_with(|s| {
        if !s.unclaimed() {
            return false;
        }
        let expires = s.published_ns.saturating_add(UNCLAIMED_TTL_NS);
        if expires <= now_ns {
            return true;
        }
        next_ns = next_ns.min(expires - now_ns);
        false
    });
    STATS.unclaimed_expired(n);
    if next_ns == u64::MAX {
        0
    } else {
        // At least 1 ms: 0 means "nothing left".
        (next_ns / 1_000_000).max(1)
    }
}

/// `device_unmap`: drops the claim of `who` on the window whose bus range
/// holds `first_pa` (the claim's first page); the last claim frees it. Returns `false` if no live
/// window has that claim (a late or double unmap, or one for a window a
/// device removal already freed): nothing is dropped then, so such a call
/// can never free a window another mapping still uses, even where bus
/// addresses were reused (NVMe rebind, module reload).
pub(crate) fn release(first_pa: u64, who: Claimant) -> bool {
    let mut freed = None;
    {
        let mut reg = registry().lock();
        let mut found = None;
        for (i, s) in reg.iter_mut().enumerate() {
            if !s.holds_bus(first_pa) {
                continue;
            }
            if let State::Ready { claims, .. } = &mut s.state {
                if let Some(k) = claims.iter().position(|c| *c == who) {
                    // In bounds: `k` was just found.
                    let _ = claims.remove(k);
                    found = Some((i, claims.is_empty()));
                }
                // Windows never share a bus address: no other candidate.
                break;
            }
        }
        match found {
            None => return false,
            Some((i, true)) => freed = reg.remove(i).ok(),
            Some((_, false)) => {}
        }
    }
    drop(freed);
    true
}

/// How long an unclaimed window is safe from CMB pressure: the caller of the
/// slow path that staged it is retrying right now. Without it, two slow
/// paths under pressure evicted each other's fresh windows and both retried
/// (and staged) forever.
const CLAIM_GRACE_NS: u64 = 1_000_000_000;

/// CMB pressure: frees the staged windows no importer maps whose caller has
/// had [`CLAIM_GRACE_NS`] to claim them (`now_ns` is `ktime_get_ns()`),
/// oldest first. Referenced windows are left alone (revoking them needs the
/// revocation path). Returns how many were freed.
pub(crate) fn evict_unclaimed(now_ns: u64) -> usize {
    drain_with(|s| {
        matches!(s.state, State::Ready { .. })
            && s.unclaimed()
            && s.published_ns.saturating_add(CLAIM_GRACE_NS) <= now_ns
    })
}

/// Bytes of the CMB of function `dev` that p2pmap's windows hold.
pub(crate) fn bytes_on_device(dev: DeviceKey) -> usize {
    registry()
        .lock()
        .iter()
        .filter(|s| s.on_device(dev))
        .map(|s| s.pages * PAGE_SIZE)
        .sum()
}

/// Marks the staged windows that `pick` selects as revoking, so that no new
/// reference is handed out, and returns their files and byte ranges for
/// revocation. `pick` runs under the registry lock, over the slots in
/// registry order, and returns whether to revoke a slot.
fn start_revoking_with(mut pick: impl FnMut(&Slot) -> bool) -> Result<KVec<Revoked>> {
    // Allocate outside the lock (a revocation must not fail for lack of
    // atomic memory); retry if windows were added meanwhile.
    loop {
        let n = registry().lock().len();
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut reg = registry().lock();
        if reg.len() > n {
            continue;
        }
        for s in reg.iter_mut() {
            if pick(s) {
                if let Some(r) = s.revoke() {
                    // Within capacity: cannot fail.
                    v.push(r, GFP_ATOMIC)?;
                }
            }
        }
        return Ok(v);
    }
}

/// Every staged window (of `inode` only, if given): see
/// [`start_revoking_with`].
pub(crate) fn start_revoking(inode: Option<InodeKey>) -> Result<KVec<Revoked>> {
    start_revoking_with(|s| inode.is_none_or(|i| i == s.inode))
}

/// Marks every staged window of `inode` that covers a byte of `[start,
/// end)` revoking (no new reference is handed out) and returns how many
/// there are, those already being revoked included: the caller invalidates
/// `[start, end)` itself, which reaches every importer of those windows
/// (an importer's notifier covers its whole window). Allocates nothing: it
/// runs at every write fault on a shared mapping of a file that offers
/// `device_map`.
pub(crate) fn mark_revoking_range(inode: InodeKey, start: i64, end: i64) -> usize {
    let mut n = 0;
    for s in registry().lock().iter_mut() {
        if s.overlaps(inode, start, end) && s.mark_revoking() {
            n += 1;
        }
    }
    n
}

/// After revoking windows of `inode`: drops those that no importer maps
/// (staged for a caller that has not claimed them yet); the others go with
/// their last `device_unmap`.
pub(crate) fn drain_revoked(inode: InodeKey) -> usize {
    drain_with(|s| s.inode == inode && s.revoking() && s.unclaimed())
}

/// Every window in the CMB of function `dev` (it is going away). The
/// function is marked first: windows staged concurrently are discarded when
/// they are published, and no new one is staged there.
pub(crate) fn start_revoking_device(dev: DeviceKey) -> Result<KVec<Revoked>> {
    if mark_removing(dev).is_err() {
        // Out of memory: the revocation and the drain still run, but a slow
        // path racing with them is not kept out of this CMB.
        pr_warn!("could not mark a CMB being removed (out of memory)\n");
    }
    start_revoking_with(|s| s.on_device(dev))
}

/// CMB pressure: the least recently claimed windows that importers still map
/// in the CMB of `dev`, at least `bytes` of them (or all there are).
pub(crate) fn start_revoking_lru(dev: DeviceKey, bytes: usize) -> Result<KVec<Revoked>> {
    // The oldest `last_use` such that the live windows at or before it add
    // up to `bytes`; found under the lock, then used as the cut-off.
    let cutoff = {
        let reg = registry().lock();
        let mut cands = KVec::with_capacity(reg.len(), GFP_ATOMIC)?;
        for s in reg.iter().filter(|s| s.live() && s.on_device(dev)) {
            cands.push((s.last_use, s.pages * PAGE_SIZE), GFP_ATOMIC)?;
        }
        drop(reg);
        cands.sort_unstable_by_key(|c| c.0);
        let mut sum = 0usize;
        let mut cut = 0u64;
        for (used, size) in cands.iter() {
            cut = *used;
            sum += size;
            if sum >= bytes {
                break;
            }
        }
        cut
    };
    start_revoking_with(|s| s.live() && s.on_device(dev) && s.last_use <= cutoff)
}

/// After revocation: drops the slots of `inode` that no importer maps any
/// more (the others go with their last `device_unmap`), or, with `None`
/// (module exit, provider already unregistered, importers invalidated),
/// every slot.
pub(crate) fn drain(inode: Option<InodeKey>) -> usize {
    drain_with(|s| match inode {
        None => true,
        Some(ino) => ino == s.inode && s.unclaimed(),
    })
}

/// After revoking the windows of function `dev`: drops every one of them,
/// referenced or not (its CMB is about to go away; an importer that did not
/// unmap from its notifier finds nothing to release later). Returns how
/// many were still referenced.
pub(crate) fn drain_device(dev: DeviceKey) -> usize {
    let mut referenced = 0;
    drain_with(|s| {
        let take = s.on_device(dev);
        if take && !s.unclaimed() {
            referenced += 1;
        }
        take
    });
    referenced
}

/// Whether an importer still references a window in the CMB of `dev`.
pub(crate) fn referenced_on_device(dev: DeviceKey) -> bool {
    registry()
        .lock()
        .iter()
        .any(|s| s.on_device(dev) && !s.unclaimed())
}

/// Removes the slots `take` selects and drops them after unlocking. Returns
/// how many were removed.
fn drain_with(mut take: impl FnMut(&Slot) -> bool) -> usize {
    let mut gone = KVec::new();
    let mut n = 0;
    {
        let mut reg = registry().lock();
        let mut i = 0;
        while i < reg.len() {
            if take(&reg[i]) {
                match reg.remove(i) {
                    Ok(slot) => {
                        n += 1;
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
    n
}
