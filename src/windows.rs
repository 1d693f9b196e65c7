// SPDX-License-Identifier: GPL-2.0

//! The state p2pmap keeps per inode, and its windows: file ranges staged
//! in the NVMe CMB, shared by every importer that maps them, freed when the
//! last one unmaps.
//!
//! One registry holds it all, under one spinlock ([`registry()`]): the fast
//! path of `device_map` runs under the caller's mmap_lock and `device_unmap`
//! may run in non-blockable notifier context. It has
//! - per inode, an [`Inode`] (a red-black tree keyed by [`InodeKey`]): the
//!   inode's slots (staged windows and the slow path's refusals) in a
//!   red-black tree keyed by file offset, searched by range, the state of
//!   p2pmap's layout lease of the inode ([`Lease`]: its holders, whether
//!   and when it was broken, the tasks that pass it by) and the inode's
//!   cached block map ([`BlockMap`], valid under that lease). It exists
//!   while the inode has slots or a lease;
//! - an index of the staged windows by bus address, for `device_unmap`,
//!   which names its window by the bus addresses it was given;
//! - the slots nobody has claimed yet, in publication order (at most
//!   [`MAX_UNCLAIMED`]).
//!
//! A slot's life: the slow path publishes it ([`publish`]), unclaimed; the
//! retried `device_map` claims it ([`claim`]; a refusal is handed over once
//! and freed). Each claim names the importer and the virtual range it will
//! give back: `device_unmap` drops the claim it names, never another
//! importer's ([`release`]), and the last one frees the window. Revocation
//! marks a window revoking (no new claim) and invalidates its importers,
//! whose notifiers unmap; [`drain`] frees what nobody claims any more. A
//! window nobody claims (its slow path's caller never retried) expires
//! after [`UNCLAIMED_TTL_NS`]; the lease worker reaps it.
//!
//! A write window (`DEVICE_MAP_FLAG_WRITE`, [`WriteState`]) serves only
//! write mappings, and read windows only read mappings. Once claimed, a
//! device may have written it: its last claim given back does not free it
//! but queues it ([`WriteState::queued`]) for the write-back worker
//! ([`crate::writeback`]), which takes it out of the registry
//! ([`take_queued`]), writes it back and commits it while the registry
//! names its range as being flushed ([`Registry::flushing`]), then frees
//! it. Until then the range is [`written`]: reads, `fsync()`, changes and
//! new mappings of it wait ([`crate::writeback::sync`]).
//!
//! The lease: a slow path holds it ([`take_lease`], which takes it if
//! p2pmap holds none) from before it reads the block map until it publishes
//! its window, and each staged window holds it from then on ([`LeaseRef`]);
//! the last hold given back releases it. Its C half (the `file_lease`, its
//! `lm_ops`, the worker) is `bindings/p2pmap_lease.c`, which calls
//! [`p2pmap_rust_lease_break`] and [`p2pmap_rust_lease_passes`] under the
//! inode's `flc_lock` and names the lease by inode and generation.
//!
//! Nothing under the lock sleeps. It allocates only with `GFP_ATOMIC`: a
//! claim list growing (failure refuses the claim) and the lists removed
//! slots wait in for the unlock (failure drops the slot there: its drop
//! does not sleep). Tree nodes are reserved before the lock is taken. Lock
//! order: [`LEASE_TAKING`], then the inode's `flc_lock` (`lm_ops`), then
//! the registry, then the history of changes ([`crate::changes`]); a lease
//! is released under the registry lock only by queueing work.

use kernel::{
    bindings,
    ffi::c_ulong,
    fs::File,
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNode,
        RBTreeNodeReservation, //
    },
    sync::{
        aref::ARef,
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
    },
    task::Task,
};

use crate::{
    changes::{changed_since, ChangeMark},
    extents::{self, BlockMap},
    ffi::{self, Claimant, CmbBuf, DeviceKey, Extent, InodeKey, LeaseHandle},
    logic::{
        changes::ChangeKind,
        cover::{self, Piece},
        lease::{LeaseState, NoPass},
        reason::Reason,
        revoke,
    },
    stats::STATS,
};

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider,
    // the lease worker and the PCI notifier are registered (its only users).
    pub(crate) unsafe(uninit) static WINDOWS: SpinLock<Option<Registry>> = None;
}

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider
    // and the PCI notifier are registered (its only users).
    pub(crate) unsafe(uninit) static REMOVING: SpinLock<KVec<DeviceKey>> = KVec::new();
}

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider
    // (its only user, through `take_lease()`) is registered.
    pub(crate) unsafe(uninit) static LEASE_TAKING: Mutex<()> = ();
}

/// Initializes the registry lock, the lock of the list of PCI functions
/// being removed and the lock of lease takers. Call once, at module init,
/// before anything else of this file.
pub(crate) fn init() {
    // SAFETY: called once from module init, before any use of `WINDOWS`,
    // `REMOVING` or `LEASE_TAKING`.
    unsafe {
        WINDOWS.init();
        REMOVING.init();
        LEASE_TAKING.init();
    }
}

/// Frees the list of functions being unbound, at module exit, after its
/// last user is gone (the PCI notifier unregistered, every window
/// revoked). A `static` is never dropped: the list keeps its allocation
/// once a function was unbound, and it outlived the module (kmemleak
/// reported it after an unbind of the importer's function). The registry
/// allocates nothing once every window is revoked.
pub(crate) fn exit() {
    let removing = core::mem::take(&mut *removing().lock());
    // Freed outside the spinlock.
    drop(removing);
}

/// The registry lock: a spinlock, since `device_unmap` may run in
/// non-blockable notifier context. The registry is built at first use (an
/// empty red-black tree cannot be built in a `static`; building one
/// allocates nothing).
fn registry() -> &'static kernel::sync::lock::GlobalLock<WINDOWS> {
    &WINDOWS
}

/// Runs `f` on the registry, under its lock.
fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = registry().lock();
    f(guard.get_or_insert_with(Registry::new))
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
        /// A hold on the inode's layout lease; keeps the file (hence the
        /// inode, the key) alive and is how revocation finds the file.
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
        /// Being revoked: no new claim is handed out.
        revoking: bool,
        /// A write window's way back to the file's blocks; `None` for a
        /// read window.
        write: Option<KBox<WriteState>>,
    },
    /// Refused by the slow path.
    Refused(Reason),
}

/// What a write window adds to a window: where its bytes go back.
pub(crate) struct WriteState {
    /// The extents `map_blocks(write)` handed out for the window's range,
    /// clipped to it, in file order: each mapped or unwritten.
    pub(crate) extents: KVec<Extent>,
    /// The file size once committed, if larger than the size then (a
    /// mapping of pages past EOF extends the file to its end); 0 for none.
    pub(crate) new_size: i64,
    /// Handed to an importer at least once: the device may have written it.
    claimed: bool,
    /// Given back by its last importer: waits for the write-back worker.
    queued: bool,
    /// Written back and committed, or its failure reported: dropping it
    /// loses nothing.
    done: bool,
}

impl WriteState {
    /// The write state of a window staged with `extents`.
    pub(crate) fn new(extents: KVec<Extent>, new_size: i64) -> Self {
        WriteState {
            extents,
            new_size,
            claimed: false,
            queued: false,
            done: false,
        }
    }

    /// The worker wrote it back and committed it (or reported why not).
    pub(crate) fn set_done(&mut self) {
        self.done = true;
    }
}

/// One staged window or refusal of an inode.
pub(crate) struct Slot {
    /// First file byte (also the first half of its key in the inode's tree).
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

/// Unclaimed slots kept at most (staged by a slow path whose caller has not
/// come back yet); publishing one more evicts the oldest.
const MAX_UNCLAIMED: usize = 8;

/// Write windows that exist (in the registry or with the write-back
/// worker): while there is none, nothing is [`written`] and `read()` and
/// `fsync()` do not take the registry lock.
static WRITE_WINDOWS: Atomic<usize> = Atomic::new(0);

/// Ticks at every claim (and publish).
static USE_CLOCK: Atomic<u64> = Atomic::new(0);

fn tick() -> u64 {
    USE_CLOCK.add(1, Relaxed);
    USE_CLOCK.load(Relaxed)
}

/// Bytes in `pages` pages, as a file offset.
fn span(pages: usize) -> i64 {
    pages.saturating_mul(PAGE_SIZE) as i64
}

/// A slot's key in its inode's tree: its first file byte, then a sequence
/// number that tells slots of the same start apart.
type SlotKey = (i64, u64);

/// Where a slot is in the registry.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Loc {
    inode: InodeKey,
    slot: SlotKey,
}

/// What p2pmap keeps of one inode while it has slots or a lease.
///
/// # Invariants
///
/// - `longest` is at least the byte span of every slot in `slots`, so a
///   slot covering a byte at or after `pos` starts at or after
///   `pos - longest`;
/// - the `refs` of `lease` count the staged slots in `slots` and the
///   holding [`LeaseRef`]s outside the registry; a staged slot holds the
///   lease, so an inode with one has a lease.
pub(crate) struct Inode {
    slots: RBTree<SlotKey, Slot>,
    longest: i64,
    lease: Option<Lease>,
    blocks: BlockMap,
}

impl Inode {
    /// An inode without slots nor lease; allocates its block map.
    fn new() -> Result<Self> {
        // INVARIANT: no slot, no lease.
        Ok(Inode {
            slots: RBTree::new(),
            longest: 0,
            lease: None,
            blocks: BlockMap::new()?,
        })
    }

    /// Neither slots nor a lease: the inode's state may go.
    fn unused(&self) -> bool {
        self.slots.is_empty() && self.lease.is_none()
    }

    /// The inode's lease if it is lease `generation`.
    fn lease_mut(&mut self, generation: u64) -> Option<&mut Lease> {
        self.lease
            .as_mut()
            .filter(|l| l.state.generation() == generation)
    }

    /// Whether lease `generation` is the inode's, unbroken: the block map
    /// did not change without p2pmap being told.
    fn lease_valid(&self, generation: u64) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| l.state.generation() == generation && !l.state.broken())
    }

    /// Gives back one hold on lease `generation`; returns the lease if that
    /// was the last (drop it to release it: allowed under the lock).
    fn put_lease(&mut self, generation: u64) -> Option<Lease> {
        if self.lease_mut(generation)?.state.put() {
            // INVARIANT: no hold left, hence no staged slot.
            return self.lease.take();
        }
        None
    }

    /// Calls `f` on each slot that covers a byte of `[start, end)`, in file
    /// order: a walk from the first slot that can (`longest` bounds it) to
    /// the first that starts at or after `end`.
    fn for_each_overlapping(
        &mut self,
        start: i64,
        end: i64,
        mut f: impl FnMut(SlotKey, &mut Slot),
    ) {
        let from = (start.saturating_sub(self.longest), 0);
        let mut cursor = self.slots.cursor_lower_bound_mut(&from);
        while let Some(mut c) = cursor {
            let (k, s) = c.current_mut();
            if k.0 >= end {
                break;
            }
            if s.overlaps(start, end) {
                f(*k, s);
            }
            cursor = c.move_next();
        }
    }

    /// The smallest staged window, not being revoked, that holds every
    /// page of `pages` pages at file byte `start` (one of exactly that range
    /// if there is).
    fn find(&mut self, start: i64, pages: usize, write: bool) -> Option<SlotKey> {
        let mut ready: Option<(SlotKey, usize)> = None;
        self.for_each_overlapping(start, start.saturating_add(span(pages)), |k, s| {
            if s.serves(start, pages, write).is_some() && ready.is_none_or(|(_, p)| s.pages < p) {
                ready = Some((k, s.pages));
            }
        });
        ready.map(|(k, _)| k)
    }
}

/// Windows one mapping may be served from at most, when no single window
/// holds its range.
const MAX_PIECES: usize = 8;

/// The windows that together hold a mapping's range, in file order
/// ([`cover::cover`]).
type Pieces = [Option<Piece<SlotKey>>; MAX_PIECES];

impl Inode {
    /// The staged windows, not being revoked, that hold `pages` pages at
    /// file byte `start`: the smallest one that holds them all, else
    /// adjacent or overlapping windows, each chosen to reach furthest (at
    /// most [`MAX_PIECES`]). A write mapping is served by one write window
    /// or not at all: each window is written back on its own.
    fn cover(&mut self, start: i64, pages: usize, write: bool) -> Option<Pieces> {
        if let Some(k) = self.find(start, pages, write) {
            let s = self.slots.get(&k)?;
            let at = s.serves(start, pages, write)?;
            let mut pieces = [None; MAX_PIECES];
            if let Some(p) = pieces.first_mut() {
                *p = Some(Piece {
                    window: k,
                    at: at as u64,
                    pages: pages as u64,
                });
            }
            return Some(pieces);
        }
        if write {
            return None;
        }
        let end = start.saturating_add(span(pages));
        cover::cover(start, end, PAGE_SIZE as u64, |pos| {
            // The window holding the page at `pos` that reaches furthest.
            let mut best: Option<(SlotKey, i64, i64)> = None;
            self.for_each_overlapping(pos, pos.saturating_add(1), |k, s| {
                let w_end = s.start.saturating_add(span(s.pages));
                if s.serves(pos, 1, false).is_some() && best.is_none_or(|(_, _, e)| w_end > e) {
                    best = Some((k, s.start, w_end));
                }
            });
            best
        })
    }

    /// Whether a write window of `[start, end)` holds bytes a device may
    /// have written that are not committed yet; with `pending_only`, only
    /// those given back (queued for the write-back worker).
    fn has_device_data(&mut self, start: i64, end: i64, pending_only: bool) -> bool {
        let mut found = false;
        self.for_each_overlapping(start, end, |_, s| {
            found |= s.holds_device_data() && (!pending_only || s.queued());
        });
        found
    }

    /// Whether a write window that may still be written overlaps `[start,
    /// end)`: one not being revoked, or one a device may have written that
    /// is not written back yet (revoked but still claimed, or queued).
    fn live_write_overlaps(&mut self, start: i64, end: i64) -> bool {
        let mut found = false;
        self.for_each_overlapping(start, end, |_, s| {
            found |= s.is_write() && (!s.revoking() || s.holds_device_data());
        });
        found
    }

    /// The slow path's refusal of exactly `pages` pages at `start`.
    fn refusal(&mut self, start: i64, pages: usize) -> Option<SlotKey> {
        let mut found = None;
        self.for_each_overlapping(start, start.saturating_add(span(pages)), |k, s| {
            if s.start == start && s.pages == pages && matches!(s.state, State::Refused(_)) {
                found.get_or_insert(k);
            }
        });
        found
    }
}

/// The slots nobody claimed yet, oldest first.
///
/// # Invariants
///
/// The `Some` entries of `locs` come first.
struct Unclaimed {
    locs: [Option<Loc>; MAX_UNCLAIMED],
}

impl Unclaimed {
    const fn new() -> Self {
        // INVARIANT: no entry.
        Unclaimed {
            locs: [None; MAX_UNCLAIMED],
        }
    }

    fn iter(&self) -> impl Iterator<Item = Loc> + '_ {
        self.locs.iter().map_while(|l| *l)
    }

    /// The oldest, if all [`MAX_UNCLAIMED`] places are taken.
    fn oldest_if_full(&self) -> Option<Loc> {
        match self.locs.last() {
            Some(Some(_)) => self.locs.first().copied().flatten(),
            _ => None,
        }
    }

    /// Adds `loc` as the newest; `false` if full.
    fn push(&mut self, loc: Loc) -> bool {
        match self.locs.iter_mut().find(|l| l.is_none()) {
            Some(free) => {
                // INVARIANT: the first free place, after every entry.
                *free = Some(loc);
                true
            }
            None => false,
        }
    }

    /// Forgets `loc` (claimed, or removed), if listed.
    fn forget(&mut self, loc: Loc) {
        if let Some(i) = self.locs.iter().position(|l| *l == Some(loc)) {
            // INVARIANT: the entries after it move up by one.
            self.locs.copy_within(i + 1.., i);
            if let Some(last) = self.locs.last_mut() {
                *last = None;
            }
        }
    }
}

/// Everything p2pmap keeps of the files it serves: see the module
/// documentation.
///
/// # Invariants
///
/// - every inode in `inodes` has a slot or a lease;
/// - `by_bus` maps the bus address of every staged window to its place, and
///   nothing else;
/// - `unclaimed` lists exactly the slots without a claim (a claimed slot is
///   freed with its last claim, never unclaimed again).
pub(crate) struct Registry {
    inodes: RBTree<InodeKey, Inode>,
    by_bus: RBTree<u64, Loc>,
    unclaimed: Unclaimed,
    next_seq: u64,
    /// The write window the write-back worker took out of the registry and
    /// is writing back: its inode, byte range and CMB. One at a time.
    flushing: Option<(InodeKey, i64, i64, DeviceKey)>,
}

impl Registry {
    /// Whether a write window of `[start, end)` of `inode` was given back
    /// and is not committed yet (queued, or being written back).
    fn write_back_pending(&mut self, inode: InodeKey, start: i64, end: i64) -> bool {
        // The fast path of every read mapping asks: without write windows
        // there is nothing to look up.
        if WRITE_WINDOWS.load(Relaxed) == 0 {
            return false;
        }
        if self
            .flushing
            .is_some_and(|(i, s, e, _)| i == inode && revoke::overlaps(s, e, start, end))
        {
            return true;
        }
        self.inodes
            .get_mut(&inode)
            .is_some_and(|ino| ino.has_device_data(start, end, true))
    }

    fn new() -> Self {
        // INVARIANT: empty.
        Registry {
            inodes: RBTree::new(),
            by_bus: RBTree::new(),
            unclaimed: Unclaimed::new(),
            next_seq: 0,
            flushing: None,
        }
    }

    fn slot_mut(&mut self, loc: Loc) -> Option<&mut Slot> {
        self.inodes.get_mut(&loc.inode)?.slots.get_mut(&loc.slot)
    }

    /// Takes the slot at `loc` out of the registry, with its hold on the
    /// inode's lease (the last one releases the lease); the inode's state
    /// goes with its last slot and its lease. Drop the slot after unlocking
    /// where possible (its drop does not sleep, nor take this lock).
    fn remove(&mut self, loc: Loc) -> Option<Slot> {
        self.take_out(loc, false)
    }

    /// [`Self::remove`]; with `keep_lease`, the slot keeps its hold on the
    /// inode's lease, given back when it is dropped (the write-back worker:
    /// breakers of the lease wait for its commit).
    fn take_out(&mut self, loc: Loc, keep_lease: bool) -> Option<Slot> {
        let ino = self.inodes.get_mut(&loc.inode)?;
        let mut slot = ino.slots.remove(&loc.slot)?;
        let released = match &mut slot.state {
            State::Ready { lease, .. } if !keep_lease => lease.put_locked(ino),
            _ => None,
        };
        let empty = ino.unused();
        // INVARIANT: the indexes forget the slot, and an inode without
        // slots nor lease goes; the lease lost the slot's hold above.
        if let State::Ready { buf, .. } = &slot.state {
            self.by_bus.remove(&buf.bus());
        }
        drop(released);
        self.unclaimed.forget(loc);
        if empty {
            self.inodes.remove(&loc.inode);
        }
        Some(slot)
    }

    /// The staged window whose bus range holds `pa`.
    fn window_at_bus(&self, pa: u64) -> Option<Loc> {
        // The window with the greatest first bus address not above `pa`.
        let loc = match self.by_bus.cursor_lower_bound(&pa) {
            Some(c) => {
                let (bus, loc) = c.current();
                if *bus == pa {
                    *loc
                } else {
                    *c.peek_prev()?.1
                }
            }
            None => *self.by_bus.cursor_back()?.current().1,
        };
        let ino = self.inodes.get(&loc.inode)?;
        let s = ino.slots.get(&loc.slot)?;
        s.holds_bus(pa).then_some(loc)
    }

    /// Calls `f` on every slot `scope` selects, with its place.
    fn for_each(&mut self, scope: Scope, mut f: impl FnMut(Loc, &mut Slot)) {
        match scope {
            Scope::Range { inode, start, end } => {
                if let Some(ino) = self.inodes.get_mut(&inode) {
                    ino.for_each_overlapping(start, end, |slot, s| f(Loc { inode, slot }, s));
                }
            }
            Scope::Inode(inode) => {
                if let Some(ino) = self.inodes.get_mut(&inode) {
                    for (slot, s) in ino.slots.iter_mut() {
                        f(Loc { inode, slot: *slot }, s);
                    }
                }
            }
            Scope::Device(dev) | Scope::LeastRecent { dev, .. } => {
                for (inode, ino) in self.inodes.iter_mut() {
                    for (slot, s) in ino.slots.iter_mut().filter(|(_, s)| s.on_device(dev)) {
                        f(
                            Loc {
                                inode: *inode,
                                slot: *slot,
                            },
                            s,
                        );
                    }
                }
            }
            Scope::All => {
                for (inode, ino) in self.inodes.iter_mut() {
                    for (slot, s) in ino.slots.iter_mut() {
                        f(
                            Loc {
                                inode: *inode,
                                slot: *slot,
                            },
                            s,
                        );
                    }
                }
            }
        }
    }
}

/// Which windows a revocation, or the drain after it, concerns.
#[derive(Clone, Copy)]
pub(crate) enum Scope {
    /// Those of `inode` that cover a byte of `[start, end)`.
    Range {
        inode: InodeKey,
        start: i64,
        end: i64,
    },
    /// Every window of `inode`.
    Inode(InodeKey),
    /// Every window in the CMB of PCI function `dev`.
    Device(DeviceKey),
    /// The least recently claimed windows that importers map in the CMB of
    /// `dev`, at least `bytes` of them (or all there are).
    LeastRecent { dev: DeviceKey, bytes: usize },
    /// Every window.
    All,
}

impl Scope {
    /// The scope's kind, for the trace events.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Scope::Range { .. } => "range",
            Scope::Inode(_) => "inode",
            Scope::Device(_) => "device",
            Scope::LeastRecent { .. } => "least_recent",
            Scope::All => "all",
        }
    }

    /// The inode of a [`Scope::Range`] or [`Scope::Inode`].
    pub(crate) fn inode(&self) -> Option<InodeKey> {
        match self {
            Scope::Range { inode, .. } | Scope::Inode(inode) => Some(*inode),
            _ => None,
        }
    }

    /// The byte range of a [`Scope::Range`]; every byte for the others.
    pub(crate) fn range(&self) -> (i64, i64) {
        match self {
            Scope::Range { start, end, .. } => (*start, *end),
            _ => (0, i64::MAX),
        }
    }
}

/// Whether function `dev` is being unbound (see [`removing`]): refuse
/// to stage into its CMB, whose pages must all be freed for the removal to
/// finish (see [`start_revoking`]).
pub(crate) fn device_removing(dev: DeviceKey) -> bool {
    removing().lock().contains(&dev)
}

/// Marks function `dev` as being unbound, for as many removals at once as
/// there are (a fixed table lost the mark of the ninth). The list grows
/// outside its spinlock.
///
/// Context: process (the PCI bus notifier); sleeps.
pub(crate) fn mark_removing(dev: DeviceKey) -> Result {
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
    /// A staged window for `pages` pages at file byte `start`, staged by a
    /// request that sampled [`change_mark`] `mark` before it checked the
    /// page cache.
    pub(crate) fn ready(
        start: i64,
        pages: usize,
        buf: CmbBuf,
        lease: LeaseRef,
        mark: ChangeMark,
        write: Option<KBox<WriteState>>,
    ) -> Self {
        if write.is_some() {
            // Counted down by the slot's drop.
            WRITE_WINDOWS.add(1, Relaxed);
        }
        Slot {
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
                write,
            },
        }
    }

    /// First file byte and length in bytes.
    pub(crate) fn range(&self) -> (i64, usize) {
        (self.start, self.pages * PAGE_SIZE)
    }

    /// The window's bytes, its file (through its lease) and, for a write
    /// window, its write state: what the write-back worker needs.
    pub(crate) fn parts(&mut self) -> Option<(&CmbBuf, &File, Option<&mut WriteState>)> {
        match &mut self.state {
            State::Ready {
                buf, lease, write, ..
            } => Some((&*buf, lease.file(), write.as_deref_mut())),
            State::Refused(_) => None,
        }
    }

    /// The function whose CMB holds the window.
    fn device(&self) -> Option<DeviceKey> {
        match &self.state {
            State::Ready { buf, .. } => Some(buf.device_key()),
            State::Refused(_) => None,
        }
    }

    /// A write window.
    fn is_write(&self) -> bool {
        matches!(&self.state, State::Ready { write: Some(_), .. })
    }

    /// A write window a device may have written that is not written back
    /// yet (mapped, queued, or just taken by the worker).
    fn holds_device_data(&self) -> bool {
        matches!(&self.state, State::Ready { write: Some(w), .. } if w.claimed && !w.done)
    }

    /// Hands a write window a device may have written to the write-back
    /// worker: no claim is handed out any more, the claims left are
    /// dropped (their devices were stopped), and it waits for the worker.
    /// Returns whether it was queued now; call [`ffi::flush_schedule`]
    /// after unlocking if so.
    fn queue_write_back(&mut self) -> bool {
        if !self.holds_device_data() || self.queued() {
            return false;
        }
        self.mark_revoking();
        if let State::Ready {
            claims,
            write: Some(w),
            ..
        } = &mut self.state
        {
            claims.clear();
            w.queued = true;
        }
        true
    }

    /// A write window queued for the write-back worker.
    fn queued(&self) -> bool {
        matches!(&self.state, State::Ready { write: Some(w), .. } if w.queued)
    }

    /// The slow path's refusal for that range.
    pub(crate) fn refused(start: i64, pages: usize, reason: Reason) -> Self {
        Slot {
            start,
            pages,
            last_use: 0,
            published_ns: 0,
            state: State::Refused(reason),
        }
    }

    /// The reason of a refusal, `None` for a staged window.
    pub(crate) fn refusal(&self) -> Option<Reason> {
        match self.state {
            State::Refused(r) => Some(r),
            State::Ready { .. } => None,
        }
    }

    /// Staged, not being revoked, a write window for a write mapping
    /// (`write`) and a read window for a read mapping, and holds every
    /// page of `pages` pages at file byte `start`: returns the byte offset
    /// of `start` in the window.
    fn serves(&self, start: i64, pages: usize, write: bool) -> Option<usize> {
        if !matches!(
            self.state,
            State::Ready {
                revoking: false,
                ..
            }
        ) || self.is_write() != write
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

    /// Covers a byte of `[start, end)`.
    fn overlaps(&self, start: i64, end: i64) -> bool {
        revoke::overlaps(
            self.start,
            self.start.saturating_add(span(self.pages)),
            start,
            end,
        )
    }

    /// Staged and marked revoking.
    fn revoking(&self) -> bool {
        matches!(self.state, State::Ready { revoking: true, .. })
    }

    /// Not referenced by any importer, nor waiting for its write-back:
    /// may be freed.
    fn unclaimed(&self) -> bool {
        match &self.state {
            State::Ready { claims, .. } => claims.is_empty() && !self.queued(),
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
    fn revoke(&mut self, inode: InodeKey) -> Option<Revoked> {
        match &mut self.state {
            State::Ready {
                lease, revoking, ..
            } => {
                *revoking = true;
                Some((
                    inode,
                    lease.file().into(),
                    self.start,
                    self.pages * PAGE_SIZE,
                ))
            }
            State::Refused(_) => None,
        }
    }

    /// Whether what this request staged must be thrown away: a break, a
    /// change of its range or a removal of its CMB came first. Call under
    /// the registry lock, with `ino` the inode's state: each of those marks
    /// its cause first, then takes this lock to find the windows to revoke,
    /// so either it is seen here or the revocation sees the window.
    fn outdated(&self, inode: InodeKey, ino: &Inode) -> Option<Reason> {
        let State::Ready {
            buf, lease, mark, ..
        } = &self.state
        else {
            return None;
        };
        // The retry finds the function going away and is refused.
        if device_removing(buf.device_key()) {
            return Some(Reason::NoP2pProvider);
        }
        // Only a change of the window's own range counts.
        let end = self.start.saturating_add(span(self.pages));
        match changed_since(*mark, inode, self.start, end) {
            Some(ChangeKind::CpuWrite) => return Some(Reason::CpuWrite),
            Some(ChangeKind::Layout | ChangeKind::Unknown) => return Some(Reason::LeaseBroken),
            None => {}
        }
        (!ino.lease_valid(lease.generation)).then_some(Reason::LeaseBroken)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.holds_device_data() {
            // Freed before its write-back (its CMB went away, or the
            // module is unloading and the worker could not finish): what
            // the device wrote is lost, and fsync() says so.
            if let State::Ready { lease, .. } = &self.state {
                ffi::set_mapping_error(lease.file(), EIO);
            }
            STATS.write_back_failed();
            pr_warn!(
                "a write window of {} bytes at file offset {:#x} was freed before its write-back\n",
                self.pages * PAGE_SIZE,
                self.start
            );
        }
        if self.is_write() {
            WRITE_WINDOWS.fetch_sub(1, Relaxed);
        }
        if let State::Ready { buf, .. } = &self.state {
            STATS.window_freed(buf.size());
        }
    }
}

/// Fast path: if staged windows hold `[start, start + pages)` of `inode`
/// (one window of the same range or a larger one around it, else several
/// adjacent ones), records the claim of `who` on each and fills `pa`; if
/// the slow path refused exactly that range, returns (and forgets) the
/// reason; `None` if nothing is known about the range.
///
/// Context: any (under the caller's mmap_lock); O(log n) in the inodes and
/// the inode's slots.
pub(crate) fn claim(
    inode: InodeKey,
    start: i64,
    pa: &mut [u64],
    who: Claimant,
    write: bool,
) -> Option<Result<(), Reason>> {
    let pages = pa.len();
    let end = start.saturating_add(span(pages));
    let mut guard = registry().lock();
    let reg = guard.get_or_insert_with(Registry::new);
    // What a device gave back is written back first: the slow path waits
    // for it, and stages what it committed.
    if reg.write_back_pending(inode, start, end) {
        return None;
    }
    let ino = reg.inodes.get_mut(&inode)?;
    if let Some(pieces) = ino.cover(start, pages, write) {
        return Some(reg.claim_pieces(inode, &pieces, pa, who));
    }
    let slot = ino.refusal(start, pages)?;
    // The refusal is handed over once; drop the slot outside the lock.
    let removed = reg.remove(Loc { inode, slot });
    drop(guard);
    let refused = match removed.as_ref().map(|s| &s.state) {
        Some(State::Refused(r)) => *r,
        _ => return None,
    };
    drop(removed);
    Some(Err(refused))
}

impl Registry {
    /// Records the claim of `who` on every window of `pieces` (all or none)
    /// and fills `pa` with the bus addresses of their pages.
    fn claim_pieces(
        &mut self,
        inode: InodeKey,
        pieces: &Pieces,
        pa: &mut [u64],
        who: Claimant,
    ) -> Result<(), Reason> {
        let stamp = tick();
        let mut page = 0;
        for (i, p) in pieces.iter().enumerate() {
            let Some(p) = p else { break };
            let loc = Loc {
                inode,
                slot: p.window,
            };
            let pages = p.pages as usize;
            let pushed = match self.slot_mut(loc) {
                Some(Slot {
                    last_use,
                    state:
                        State::Ready {
                            buf, claims, write, ..
                        },
                    ..
                }) => {
                    *last_use = stamp;
                    let bus = buf.bus() + p.at;
                    for (k, a) in pa.iter_mut().skip(page).take(pages).enumerate() {
                        *a = bus + (k * PAGE_SIZE) as u64;
                    }
                    // Atomic: under the registry spinlock.
                    let pushed = claims.push(who, GFP_ATOMIC).is_ok();
                    if let Some(w) = write.as_deref_mut().filter(|_| pushed) {
                        // Before the device gets the addresses (the lock
                        // is held until then); a claim given back below
                        // leaves it set, which only costs a write-back of
                        // the window's own bytes.
                        w.claimed = true;
                    }
                    pushed
                }
                _ => false,
            };
            if !pushed {
                // Give back the claims taken so far: each is the last of
                // its window's list. A failure is a refusal like any other
                // (the importer falls back).
                for q in pieces.iter().take(i).flatten() {
                    let loc = Loc {
                        inode,
                        slot: q.window,
                    };
                    if let Some(State::Ready { claims, .. }) =
                        self.slot_mut(loc).map(|s| &mut s.state)
                    {
                        claims.pop();
                    }
                }
                return Err(Reason::NoMemory);
            }
            page += pages;
        }
        for p in pieces.iter().flatten() {
            self.unclaimed.forget(Loc {
                inode,
                slot: p.window,
            });
        }
        Ok(())
    }
}

/// Whether staged windows, not being revoked, hold the range (write
/// windows for a `write` mapping, read windows else).
pub(crate) fn is_staged(inode: InodeKey, start: i64, pages: usize, write: bool) -> bool {
    with_registry(|reg| {
        reg.inodes
            .get_mut(&inode)
            .is_some_and(|ino| ino.cover(start, pages, write).is_some())
    })
}

/// Whether devices wrote `[start, end)` of `inode` through write mappings
/// and the bytes are not committed yet: a write window was claimed and is
/// mapped, queued, or being written back.
///
/// Context: any; allocates nothing.
pub(crate) fn written(inode: InodeKey, start: i64, end: i64) -> bool {
    // A write window is counted before it is published, and stays so
    // until the worker dropped it after its commit.
    if WRITE_WINDOWS.load(Relaxed) == 0 {
        return false;
    }
    with_registry(|reg| {
        reg.write_back_pending(inode, start, end)
            || reg
                .inodes
                .get_mut(&inode)
                .is_some_and(|ino| ino.has_device_data(start, end, false))
    })
}

/// Whether a write window of `[start, end)` of `inode` was given back and
/// waits for (or is in) its write-back.
pub(crate) fn write_back_pending(inode: InodeKey, start: i64, end: i64) -> bool {
    with_registry(|reg| reg.write_back_pending(inode, start, end))
}

/// Whether another write window that may still be written, or whose
/// bytes are not written back yet, overlaps `[start, end)` of `inode` (one
/// that holds the whole range would have served it).
pub(crate) fn write_overlaps(inode: InodeKey, start: i64, end: i64) -> bool {
    with_registry(|reg| {
        reg.write_back_pending(inode, start, end)
            || reg
                .inodes
                .get_mut(&inode)
                .is_some_and(|ino| ino.live_write_overlaps(start, end))
    })
}

/// The write-back worker's next window: takes the first queued write
/// window out of the registry and names its range as being flushed
/// ([`Registry::flushing`]) until [`flushed`]. `None` if nothing is queued,
/// or the worker still flushes one.
///
/// Context: the write-back worker.
pub(crate) fn take_queued() -> Option<(InodeKey, Slot)> {
    let mut guard = registry().lock();
    let reg = guard.get_or_insert_with(Registry::new);
    if reg.flushing.is_some() {
        return None;
    }
    let mut found = None;
    reg.for_each(Scope::All, |loc, s| {
        if found.is_none() && s.queued() {
            found = Some(loc);
        }
    });
    let loc = found?;
    // The lease stays held until the window is committed: a break of it
    // (RWF_NOWAIT writes, other lease breakers) waits for the commit.
    let slot = reg.take_out(loc, true)?;
    let (start, len) = slot.range();
    let dev = slot.device()?;
    reg.flushing = Some((loc.inode, start, start.saturating_add(len as i64), dev));
    Some((loc.inode, slot))
}

/// The write-back worker is done with the window [`take_queued`] gave it.
pub(crate) fn flushed() {
    with_registry(|reg| reg.flushing = None);
}

/// Whether a write window of function `dev`'s CMB was given back and waits
/// for its write-back, or is being written back: its CMB space is freed
/// once that is done.
pub(crate) fn write_back_queued(dev: DeviceKey) -> bool {
    let mut found = false;
    with_registry(|reg| {
        reg.for_each(Scope::Device(dev), |_, s| found |= s.queued());
        found |= reg.flushing.is_some_and(|f| f.3 == dev);
    });
    found
}

/// After every window of `scope` ([`Scope::All`] at module exit, once the
/// provider was unregistered, or [`Scope::Device`] at a removal) was
/// revoked: the claims on write windows a device may have written that
/// their importers did not give back (at exit their `device_unmap` calls
/// no longer reach p2pmap) are dropped here, as the revocation stopped
/// those devices in their notifiers, and the windows are queued for their
/// write-back. Returns whether any was.
pub(crate) fn queue_written(scope: Scope) -> bool {
    let mut queued = false;
    with_registry(|reg| reg.for_each(scope, |_, s| queued |= s.queue_write_back()));
    if queued {
        ffi::flush_schedule();
    }
    queued
}

/// Milliseconds a device removal or unload sleeps between two looks at the
/// write-backs it waits for (a window freed wakes it sooner).
const SETTLE_STEP_MS: u32 = 100;

/// Steps of [`SETTLE_STEP_MS`] a device removal or unload waits at most for
/// write-backs: 60 s.
const SETTLE_STEPS: u32 = 600;

/// Before the windows of function `dev`'s CMB (of every CMB for `None`)
/// are freed (device removal, unload): waits for the write-back of what
/// devices wrote there (see [`crate::writeback`]), at most 60 s; what is
/// left then is lost, and reported when freed.
///
/// Context: process; sleeps; hold no lock.
pub(crate) fn settle_write_backs(dev: Option<DeviceKey>) {
    for _ in 0..SETTLE_STEPS {
        let seen = ffi::cmb_frees();
        if !device_data_pending(dev) {
            return;
        }
        ffi::wait_cmb_freed(seen, SETTLE_STEP_MS);
    }
    pr_warn!("write-back still pending after 60 s; freeing the windows\n");
}

/// Whether a write window of function `dev`'s CMB (of any CMB for `None`)
/// holds bytes a device wrote that are not written back yet, or one is
/// being written back.
pub(crate) fn device_data_pending(dev: Option<DeviceKey>) -> bool {
    let mut found = false;
    with_registry(|reg| {
        let scope = dev.map_or(Scope::All, Scope::Device);
        reg.for_each(scope, |_, s| found |= s.holds_device_data());
        found |= reg.flushing.is_some_and(|f| dev.is_none_or(|d| f.3 == d));
    });
    found
}

/// The cached extent of `inode` that holds byte `pos`, if known and valid
/// under `key` (see [`crate::extents`]).
///
/// Context: any; allocates nothing.
pub(crate) fn cached_extent(inode: InodeKey, key: &extents::Key, pos: i64) -> Option<Extent> {
    with_registry(|reg| {
        let ino = reg.inodes.get_mut(&inode)?;
        if !ino.lease_valid(key.generation()) {
            return None;
        }
        ino.blocks.lookup(key, pos)
    })
}

/// Publishes what the slow path found for a range of `inode`, with the
/// extents it learned from `map_blocks` under `key` (merged into the
/// inode's block map if the file did not change since), replacing an older
/// unclaimed slot of the same range and evicting the oldest unclaimed slot
/// beyond [`MAX_UNCLAIMED`].
///
/// Context: process (the slow path); allocates before it locks.
pub(crate) fn publish(
    inode: InodeKey,
    mut slot: Slot,
    learned: &[Extent],
    key: Option<&extents::Key>,
) -> Result {
    let node = RBTreeNodeReservation::<SlotKey, Slot>::new(GFP_KERNEL)?;
    let bus_node = RBTreeNodeReservation::<u64, Loc>::new(GFP_KERNEL)?;
    let mut spare: Option<RBTreeNode<InodeKey, Inode>> = None;
    // The inode's state, allocated outside the lock if it has none.
    let mut guard = loop {
        let mut guard = registry().lock();
        let reg = guard.get_or_insert_with(Registry::new);
        if reg.inodes.get(&inode).is_some() {
            break guard;
        }
        if let Some(n) = spare.take() {
            // INVARIANT: the inode gets its slot below, under this lock.
            reg.inodes.insert(n);
            break guard;
        }
        drop(guard);
        spare = Some(RBTreeNode::new(inode, Inode::new()?, GFP_KERNEL)?);
    };
    let reg = guard.get_or_insert_with(Registry::new);
    let (start, pages) = (slot.start, slot.pages);
    // Ensured above, under this lock: the inode is there.
    let Some(ino) = reg.inodes.get(&inode) else {
        drop(guard);
        return Err(ENOENT);
    };
    // Dropped after unlocking: it gives its lease hold back under the lock.
    let discarded = slot
        .outdated(inode, ino)
        .map(|r| core::mem::replace(&mut slot, Slot::refused(start, pages, r)));
    slot.published_ns = ffi::now_ns();
    // An older slot of the same range nobody claimed: this one replaces it.
    let older = reg.unclaimed.iter().find(|l| {
        l.inode == inode
            && l.slot.0 == start
            && reg
                .inodes
                .get(&inode)
                .and_then(|i| i.slots.get(&l.slot))
                .is_some_and(|s| s.pages == pages)
    });
    let seq = reg.next_seq;
    reg.next_seq += 1;
    let loc = Loc {
        inode,
        slot: (start, seq),
    };
    let bus = match &slot.state {
        State::Ready { buf, .. } => Some(buf.bus()),
        State::Refused(_) => None,
    };
    // Ensured above, under this lock: the inode is there.
    let Some(ino) = reg.inodes.get_mut(&inode) else {
        drop(guard);
        drop(discarded);
        return Err(ENOENT);
    };
    if let Some(key) = key.filter(|k| ino.lease_valid(k.generation())) {
        ino.blocks.merge(key, learned);
    }
    // INVARIANT: `longest` covers the new slot, which the indexes name
    // once it is in the inode's tree.
    ino.longest = ino.longest.max(span(pages));
    ino.slots.insert(node.into_node(loc.slot, slot));
    // Bus addresses of live windows are unique within one PCI domain
    // (pci_alloc_p2pmem()); two CMBs behind different host bridges could
    // overlap, which this index would not tell apart.
    let clash = bus.and_then(|b| reg.by_bus.insert(bus_node.into_node(b, loc)));
    if clash.is_some() {
        pr_warn!("two windows share a bus address; the older is not found by device_unmap\n");
    }
    // The inode has the new slot now: removing the others cannot remove it.
    let replaced = older.and_then(|l| reg.remove(l));
    let evicted = reg.unclaimed.oldest_if_full().and_then(|l| reg.remove(l));
    // INVARIANT: the new slot is unclaimed; there is room after the
    // eviction above.
    reg.unclaimed.push(loc);
    drop(guard);
    drop(replaced);
    drop(evicted);
    drop(discarded);
    drop(spare);
    ffi::reap_schedule(UNCLAIMED_TTL_NS / 1_000_000);
    Ok(())
}

/// Removes, in batches, the slots of `scope` that `take` selects, and drops
/// them after unlocking. `take` is only asked while the batch has room, so
/// each `true` removes its slot. Allocates nothing but the list the
/// removed slots wait in for the unlock (a slot that does not fit is dropped
/// under the lock: its drop does not sleep). Returns how many were removed.
fn drain_with(scope: Scope, mut take: impl FnMut(&Slot) -> bool) -> usize {
    const BATCH: usize = 16;
    let mut n = 0;
    loop {
        let mut batch = [None::<Loc>; BATCH];
        let mut len = 0;
        let mut gone = KVec::new();
        {
            let mut guard = registry().lock();
            let reg = guard.get_or_insert_with(Registry::new);
            reg.for_each(scope, |loc, s| {
                if len < BATCH && take(&*s) {
                    if let Some(b) = batch.get_mut(len) {
                        *b = Some(loc);
                        len += 1;
                    }
                }
            });
            for loc in batch.iter().flatten() {
                if let Some(s) = reg.remove(*loc) {
                    let _ = gone.push(s, GFP_ATOMIC);
                }
            }
        }
        drop(gone);
        n += len;
        if len < BATCH {
            return n;
        }
    }
}

/// Called by p2pmap_lease.c from the lease worker: [`reap_unclaimed`] now.
#[no_mangle]
extern "C" fn p2pmap_rust_reap_unclaimed() -> c_ulong {
    reap_unclaimed(ffi::now_ns()) as c_ulong
}

/// Removes the unclaimed slots that `take` selects, oldest first, and drops
/// them after unlocking. Returns how many.
fn drain_unclaimed(mut take: impl FnMut(&Slot) -> bool) -> usize {
    let mut gone: [Option<Slot>; MAX_UNCLAIMED] = [const { None }; MAX_UNCLAIMED];
    let mut n = 0;
    with_registry(|reg| {
        let locs = reg.unclaimed.locs;
        for loc in locs.iter().flatten() {
            let pick = reg.slot_mut(*loc).is_some_and(|s| take(&*s));
            if pick {
                if let Some(g) = gone.get_mut(n) {
                    *g = reg.remove(*loc);
                    n += 1;
                }
            }
        }
    });
    drop(gone);
    n
}

/// The lease worker's reaper: frees the unclaimed slots published more than
/// [`UNCLAIMED_TTL_NS`] before `now_ns` (their callers never came back), so
/// that they stop pinning a file, its mount and lease, and CMB space.
/// Returns the milliseconds until the next unclaimed slot expires, 0 if
/// there is none.
pub(crate) fn reap_unclaimed(now_ns: u64) -> u64 {
    let mut next_ns = u64::MAX;
    let n = drain_unclaimed(|s| {
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

/// `device_unmap`: drops the claim of `who` on each window that holds a
/// page of `pa` (the bus addresses the mapping was given); the last claim
/// of a window frees it. Returns `false` if no live window has that claim
/// (a late or double unmap, or one for a window a device removal already
/// freed): nothing is dropped then, so such a call can never free a window
/// another mapping still uses, even where bus addresses were reused (NVMe
/// rebind, module reload).
///
/// Context: any, notifier context included; O(log n) per window.
pub(crate) fn release(pa: &[u64], who: Claimant) -> bool {
    let mut freed = KVec::new();
    let mut dropped = false;
    let mut queued = false;
    {
        let mut guard = registry().lock();
        let reg = guard.get_or_insert_with(Registry::new);
        let mut rest = pa;
        while let Some((&first, _)) = rest.split_first() {
            let Some(loc) = reg.window_at_bus(first) else {
                rest = rest.get(1..).unwrap_or(&[]);
                continue;
            };
            let Some(s) = reg.slot_mut(loc) else { break };
            // The mapping's next pages in this window are the same claim.
            let n = rest.iter().take_while(|&&a| s.holds_bus(a)).count().max(1);
            rest = rest.get(n..).unwrap_or(&[]);
            let State::Ready { claims, .. } = &mut s.state else {
                continue;
            };
            let Some(k) = claims.iter().position(|c| *c == who) else {
                continue;
            };
            // In bounds: `k` was just found.
            let _ = claims.remove(k);
            dropped = true;
            if !claims.is_empty() {
                continue;
            }
            if s.holds_device_data() {
                // Written back and freed by the worker; no new claim of
                // the bytes meanwhile.
                queued |= s.queue_write_back();
            } else {
                if let Some(slot) = reg.remove(loc) {
                    // On allocation failure the slot is dropped right here:
                    // its drop does not sleep.
                    let _ = freed.push(slot, GFP_ATOMIC);
                }
            }
        }
    }
    drop(freed);
    if queued {
        ffi::flush_schedule();
    }
    dropped
}

/// Called by `bindings/p2pmap_pin.c` when a pin gives its claim back (its
/// dma_buf released, or revoked and unmapped by every importer): releases
/// the claim `key` holds on the windows of the `npages` bus addresses at
/// `pa`.
///
/// Context: any but NMI (spinlocks may be held).
#[no_mangle]
extern "C" fn p2pmap_rust_pin_release(key: c_ulong, pa: *const u64, npages: c_ulong) {
    // SAFETY: the pin passes its own array of `npages` bus addresses,
    // which lives until the pin is freed, after this call.
    let pa = unsafe { ffi::bus_addresses(pa, npages) };
    release(pa, Claimant::pin(key));
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
    drain_unclaimed(|s| {
        matches!(s.state, State::Ready { .. })
            && s.published_ns.saturating_add(CLAIM_GRACE_NS) <= now_ns
    })
}

/// Bytes of the CMB of function `dev` that p2pmap's windows hold.
pub(crate) fn bytes_on_device(dev: DeviceKey) -> usize {
    let mut bytes = 0;
    with_registry(|reg| reg.for_each(Scope::Device(dev), |_, s| bytes += s.pages * PAGE_SIZE));
    bytes
}

/// Marks the staged windows of a [`Scope::Range`] (or [`Scope::Inode`])
/// revoking, so that no new claim is handed out, and returns how many there
/// are, those already being revoked included: the caller invalidates the
/// range itself, which reaches every importer that maps a byte of it (an
/// importer's notifier covers its mapping); importers of other parts of
/// those windows read bytes that did not change, and the windows go with
/// their last claim. Allocates nothing: it runs
/// at write faults on shared mappings of leased files. Other scopes mark
/// nothing: use [`start_revoking`].
pub(crate) fn mark_revoking(scope: Scope) -> usize {
    if !matches!(scope, Scope::Range { .. } | Scope::Inode(_)) {
        return 0;
    }
    let mut n = 0;
    with_registry(|reg| {
        reg.for_each(scope, |_, s| {
            if s.mark_revoking() {
                n += 1;
            }
        })
    });
    n
}

/// Marks the staged windows of `scope` revoking, so that no new claim is
/// handed out, and returns their files and byte ranges for invalidation.
/// For [`Scope::Device`] the function is marked as being removed first:
/// windows staged concurrently are discarded when they are published, and
/// no new one is staged there.
///
/// Context: process; allocates (outside the lock).
pub(crate) fn start_revoking(scope: Scope) -> Result<KVec<Revoked>> {
    let mut cutoff = u64::MAX;
    match scope {
        Scope::Device(dev) => {
            if mark_removing(dev).is_err() {
                // Out of memory: the revocation and the drain still run, but
                // a slow path racing with them is not kept out of this CMB.
                pr_warn!("could not mark a CMB being removed (out of memory)\n");
            }
        }
        // The oldest `last_use` such that the live windows at or before it
        // add up to `bytes`; found under the lock, then used as the cut-off.
        Scope::LeastRecent { bytes, .. } => cutoff = lru_cutoff(scope, bytes)?,
        _ => {}
    }
    let pick = |s: &Slot| {
        matches!(s.state, State::Ready { .. })
            && (!matches!(scope, Scope::LeastRecent { .. }) || (s.live() && s.last_use <= cutoff))
    };
    // Allocate outside the lock (a revocation must not fail for lack of
    // atomic memory); if windows were added meanwhile, count again before
    // marking anything.
    loop {
        let mut n = 0;
        with_registry(|reg| reg.for_each(scope, |_, s| n += usize::from(pick(s))));
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        let listed = with_registry(|reg| {
            let mut now = 0;
            reg.for_each(scope, |_, s| now += usize::from(pick(s)));
            if now > v.capacity() {
                return false;
            }
            reg.for_each(scope, |loc, s| {
                if pick(s) {
                    if let Some(r) = s.revoke(loc.inode) {
                        // Within capacity (counted above): cannot fail.
                        let _ = v.push(r, GFP_ATOMIC);
                    }
                }
            });
            true
        });
        if listed {
            return Ok(v);
        }
    }
}

/// The `last_use` cut-off of a [`Scope::LeastRecent`] revocation.
fn lru_cutoff(scope: Scope, bytes: usize) -> Result<u64> {
    let mut n = 0;
    with_registry(|reg| reg.for_each(scope, |_, _| n += 1));
    let mut cands = KVec::with_capacity(n, GFP_KERNEL)?;
    with_registry(|reg| {
        reg.for_each(scope, |_, s| {
            if s.live() && cands.len() < cands.capacity() {
                // Within capacity: cannot fail.
                let _ = cands.push((s.last_use, s.pages * PAGE_SIZE), GFP_ATOMIC);
            }
        })
    });
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
    Ok(cut)
}

/// After a revocation of `scope`: frees what no importer maps any more
/// (the others go with their last `device_unmap`):
/// - for a [`Scope::Range`], the windows of the range being revoked that
///   nobody claimed;
/// - for a [`Scope::Inode`] (lease broken), every unclaimed slot of the
///   inode, refusals too (a retry takes a new lease);
/// - for a [`Scope::Device`], every window in the CMB, claimed or not (it
///   is about to go away; an importer that did not unmap from its notifier
///   finds nothing to release later); returns how many were still claimed;
/// - for [`Scope::All`] (module exit, provider unregistered, importers
///   invalidated), everything;
/// - for a [`Scope::LeastRecent`], nothing.
///
/// Returns how many slots were freed, except for [`Scope::Device`].
pub(crate) fn drain(scope: Scope) -> usize {
    match scope {
        Scope::Range { .. } => drain_with(scope, |s| s.revoking() && s.unclaimed()),
        Scope::Inode(_) => drain_with(scope, |s| s.unclaimed()),
        Scope::Device(_) => {
            let mut claimed = 0;
            drain_with(scope, |s| {
                if !s.unclaimed() {
                    claimed += 1;
                }
                true
            });
            claimed
        }
        Scope::All => {
            // All at once, freed outside the lock: an empty registry
            // replaces the whole one.
            let all = registry().lock().take();
            let n = all.as_ref().map_or(0, |r| {
                r.inodes.values().map(|i| i.slots.iter().count()).sum()
            });
            drop(all);
            n
        }
        Scope::LeastRecent { .. } => 0,
    }
}

/// Whether an importer still claims a window in the CMB of `dev`.
pub(crate) fn claimed_on_device(dev: DeviceKey) -> bool {
    let mut claimed = false;
    with_registry(|reg| reg.for_each(Scope::Device(dev), |_, s| claimed |= !s.unclaimed()));
    claimed
}

/// p2pmap's layout lease of an inode: its state, and the C lease once
/// taken (see the module documentation).
pub(crate) struct Lease {
    state: LeaseState,
    /// `None` while [`take_lease`] takes it, under [`LEASE_TAKING`].
    handle: Option<LeaseHandle>,
}

impl Drop for Lease {
    /// Releases the C lease (queued on the worker; any context, the
    /// registry lock included).
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.release(self.state.broken_ns().unwrap_or(0));
        }
    }
}

/// Generations handed out to leases: one per lease taken, never 0.
static GENERATIONS: Atomic<u64> = Atomic::new(0);

/// Once set (module exit, before the provider is unregistered), no break
/// passes p2pmap's leases by: a task between `break_begin` and `break_end`
/// when the provider goes would never get its `break_end`.
static NO_PASSING: Atomic<bool> = Atomic::new(false);

/// A hold on p2pmap's layout lease of an inode: a slow path's, from before
/// it reads the block map, then its window's once published.
///
/// # Invariants
///
/// While `held`, it is counted in the holders of lease `generation` of
/// `inode`, which is in the registry. A hold leaves the registry with its
/// slot ([`Registry::remove`], which gives it back under the lock); any
/// other is given back by its drop, which takes the registry lock.
pub(crate) struct LeaseRef {
    inode: InodeKey,
    generation: u64,
    file: ARef<File>,
    held: bool,
}

impl LeaseRef {
    /// The lease was broken (or is gone) since it was taken: the inode's
    /// block map is about to change.
    pub(crate) fn broken(&self) -> bool {
        with_registry(|reg| {
            !reg.inodes
                .get(&self.inode)
                .is_some_and(|i| i.lease_valid(self.generation))
        })
    }

    /// Which lease this holds (its generation).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The file, for revocation.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Gives the hold back, under the registry lock, to the lease of `ino`
    /// (the inode's state): returns the lease if it was the last hold.
    fn put_locked(&mut self, ino: &mut Inode) -> Option<Lease> {
        if !self.held {
            return None;
        }
        // INVARIANT: given back right here.
        self.held = false;
        ino.put_lease(self.generation)
    }
}

impl Drop for LeaseRef {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let gone = with_registry(|reg| {
            let ino = reg.inodes.get_mut(&self.inode)?;
            let lease = self.put_locked(ino);
            // INVARIANT: an inode without slots nor lease goes.
            let state = if ino.unused() {
                reg.inodes.remove(&self.inode)
            } else {
                None
            };
            Some((lease, state))
        });
        // Released and freed outside the lock.
        drop(gone);
    }
}

/// A hold on the lease of `inode` if p2pmap has one that is taken (`None`
/// if there is none, or one is being taken: wait for its taker). `EBUSY`
/// while it is being broken.
fn hold_existing(inode: InodeKey, file: &ARef<File>) -> Option<Result<LeaseRef>> {
    with_registry(|reg| {
        let lease = reg.inodes.get_mut(&inode)?.lease.as_mut()?;
        lease.handle.as_ref()?;
        Some(match lease.state.get() {
            // INVARIANT: counted by `get()`.
            Ok(()) => Ok(LeaseRef {
                inode,
                generation: lease.state.generation(),
                file: file.clone(),
                held: true,
            }),
            Err(_) => Err(EBUSY),
        })
    })
}

/// Takes a hold on p2pmap's layout lease of the inode of `file`, taking
/// the lease if p2pmap holds none: the filesystem breaks it before it
/// changes the inode's block map. `EBUSY` while it is being broken; else
/// the errors of taking a lease (`EAGAIN` while a breaker waits for the
/// inode's leases, patch 6).
///
/// The lease's state is in the registry before the C lease is taken: its
/// `lm_ops` may run as soon as `kernel_setlease()` added it, and must find
/// it. Takers are serialized ([`LEASE_TAKING`]) so that a lease being taken
/// is never held by another slow path (which would read the block map
/// before the lease exists).
///
/// Context: process; sleeps; holds none of p2pmap's locks when called.
pub(crate) fn take_lease(file: &ARef<File>) -> Result<LeaseRef> {
    let inode = ffi::inode_key(file);
    if let Some(held) = hold_existing(inode, file) {
        return held;
    }
    let _taking = LEASE_TAKING.lock();
    if let Some(held) = hold_existing(inode, file) {
        return held;
    }
    let generation = GENERATIONS.fetch_add(1, Relaxed) + 1;
    let node = RBTreeNode::new(inode, Inode::new()?, GFP_KERNEL)?;
    let installed = with_registry(|reg| {
        let spare = match reg.inodes.get(&inode) {
            Some(_) => Some(node),
            None => {
                reg.inodes.insert(node);
                None
            }
        };
        let ino = reg.inodes.get_mut(&inode);
        // Under LEASE_TAKING nobody else installs one, and
        // `hold_existing()` found none.
        let Some(ino) = ino.filter(|i| i.lease.is_none()) else {
            return Err(spare);
        };
        // INVARIANT: one holder, the `LeaseRef` below; the inode has it.
        ino.lease = Some(Lease {
            state: LeaseState::new(generation),
            handle: None,
        });
        Ok(spare)
    });
    // An inode's state allocated for nothing is freed outside the lock.
    let spare = installed.map_err(|spare| {
        drop(spare);
        EBUSY
    })?;
    drop(spare);
    // INVARIANT: the hold counted by `LeaseState::new()`.
    let hold = LeaseRef {
        inode,
        generation,
        file: file.clone(),
        held: true,
    };
    // On failure the hold's drop takes the state out again.
    let handle = LeaseHandle::take(file, generation)?;
    let unused = with_registry(|reg| match reg.inodes.get_mut(&inode) {
        Some(ino) => match ino.lease_mut(generation) {
            Some(lease) => {
                lease.handle = Some(handle);
                None
            }
            None => Some(handle),
        },
        None => Some(handle),
    });
    // Cannot happen (`hold` keeps the state); released if it did.
    drop(unused);
    Ok(hold)
}

/// Called by p2pmap_lease.c from `lm_break`, under the inode's `flc_lock`
/// (must not sleep): lease `generation` of `inode` (a key only) is broken.
/// Returns `true` the first time, when the C side queues the revocation of
/// the inode's windows on the worker ([`crate::revocation`]); `false` for
/// a lease that has no holder any more (its release is queued already).
#[no_mangle]
extern "C" fn p2pmap_rust_lease_break(inode: *mut bindings::inode, generation: u64) -> bool {
    let now = ffi::now_ns();
    with_registry(|reg| {
        reg.inodes
            .get_mut(&InodeKey::of(inode))
            .and_then(|i| i.lease_mut(generation))
            .is_some_and(|l| l.state.break_at(now))
    })
}

/// Called by p2pmap_lease.c from `lm_breaker_owns_lease`, under the
/// inode's `flc_lock` (must not sleep): whether a break of `inode`'s
/// layout by `task` (only compared) passes lease `generation` by. It does
/// for a task that revoked the range it changes itself ([`pass_lease`]),
/// and for a lease without holders (it protects no window, no block map;
/// its release is queued), until module exit.
#[no_mangle]
extern "C" fn p2pmap_rust_lease_passes(
    inode: *mut bindings::inode,
    generation: u64,
    task: *mut bindings::task_struct,
) -> bool {
    if NO_PASSING.load(Acquire) {
        return false;
    }
    with_registry(|reg| {
        match reg
            .inodes
            .get_mut(&InodeKey::of(inode))
            .and_then(|i| i.lease_mut(generation))
        {
            Some(l) => l.state.passes(task as usize),
            None => true,
        }
    })
}

/// When lease `generation` of `inode` was broken, if it still has holders
/// (the revocation on the worker has windows to revoke).
pub(crate) fn lease_broken_at(inode: InodeKey, generation: u64) -> Option<u64> {
    with_registry(|reg| {
        reg.inodes
            .get_mut(&inode)?
            .lease_mut(generation)?
            .state
            .broken_ns()
    })
}

/// Lets the current task's break of `inode`'s layout pass p2pmap's lease
/// by, until [`stop_passing_lease`]: it revoked the range it changes
/// itself. `ENOENT` if p2pmap holds no lease of the inode, `EBUSY` if the
/// lease is broken already or too many tasks pass it by at once (it is
/// broken then, as without the announcement).
pub(crate) fn pass_lease(inode: InodeKey) -> Result {
    let task = Task::current_raw() as usize;
    with_registry(|reg| {
        let lease = reg
            .inodes
            .get_mut(&inode)
            .and_then(|i| i.lease.as_mut())
            .ok_or(ENOENT)?;
        lease.state.begin_pass(task).map_err(|e| match e {
            NoPass::Broken | NoPass::Full => EBUSY,
        })
    })
}

/// Ends [`pass_lease`] for the current task; nothing if it did not pass.
/// Must not sleep (`break_end`).
pub(crate) fn stop_passing_lease(inode: InodeKey) {
    let task = Task::current_raw() as usize;
    with_registry(|reg| {
        if let Some(lease) = reg.inodes.get_mut(&inode).and_then(|i| i.lease.as_mut()) {
            lease.state.end_pass(task);
        }
    });
}

/// Module exit, before the provider is unregistered: every layout break
/// breaks p2pmap's leases from now on (see [`NO_PASSING`]).
pub(crate) fn stop_passing_leases() {
    NO_PASSING.store(true, Release);
}

/// p2pmap holds a layout lease of `inode` (broken or not): without one no
/// window of the inode exists and none is being staged past [`take_lease`].
pub(crate) fn lease_held(inode: InodeKey) -> bool {
    with_registry(|reg| reg.inodes.get(&inode).is_some_and(|i| i.lease.is_some()))
}
