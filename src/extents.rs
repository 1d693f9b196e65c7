// SPDX-License-Identifier: GPL-2.0

//! The block maps of the files p2pmap holds a layout lease on, cached as a
//! pNFS client caches layouts, so that staging asks `map_blocks` only for
//! ranges not yet known. XFS's `map_blocks` (`xfs_fs_map_blocks()`) writes
//! back and invalidates the page cache of the whole file, which zaps every
//! CPU mapping of every page of it: without the cache each new window of a
//! file did that again.
//!
//! A cached block map is valid while all of these hold, which [`Key`]
//! captures:
//! - the inode's lease has the generation it had when the extents were
//!   read ([`LeaseRef::generation`]): not broken, not released and taken
//!   again (without a lease nothing tells p2pmap of a change);
//! - no layout change of the inode was announced since they were read: XFS
//!   announces every change of data or block map under a lease
//!   (`write()`, truncate, fallocate, scrub:
//!   `filemap_device_break_begin()`), and breaks the lease where it
//!   announces no range (reflink, exchange-range, `RWF_NOWAIT`);
//! - no CPU write of the inode was announced either: a store through a
//!   shared mapping (`->page_mkwrite`) may fill a hole with delayed
//!   allocation that writeback turns into blocks later, breaking nothing.
//!
//! Any change of the inode counts, not only one of the cached ranges: an
//! allocation can reach past the range written (extent size hints).
//!
//! Writeback of data written before the extents were read cannot change
//! them either: `map_blocks` wrote everything back first.

use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::{
    ffi::{Extent, InodeKey, LeaseRef},
    logic::extents::{self, Insert, Ranged},
    windows::{self, ChangeMark},
};

/// Files whose block maps are kept; the least recently used goes first.
const MAX_FILES: usize = 32;

/// Extents kept per file; a file with more starts over.
const MAX_EXTENTS: usize = 64;

impl Ranged for Extent {
    fn start(&self) -> i64 {
        self.offset
    }

    fn end(&self) -> i64 {
        self.offset.saturating_add(self.length as i64)
    }
}

/// What a cached block map is valid for: see the module documentation.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    inode: InodeKey,
    generation: u64,
    mark: ChangeMark,
}

impl Key {
    /// The key for staging `inode` under `lease` now. `mark` was sampled
    /// when the request began, before its page-cache check: extents read
    /// after a change recorded since are never cached.
    pub(crate) fn new(inode: InodeKey, lease: &LeaseRef, mark: ChangeMark) -> Self {
        Key {
            inode,
            generation: lease.generation(),
            mark,
        }
    }

    /// Whether extents read under this key still hold now: same lease
    /// generation as `now`'s, no change of the inode since the mark. If so,
    /// the mark moves to now (see [`windows::unchanged_since`]).
    fn revalidate(&mut self, now: &Key) -> bool {
        if self.generation != now.generation {
            return false;
        }
        match windows::unchanged_since(self.mark, self.inode) {
            Some(mark) => {
                self.mark = mark;
                true
            }
            None => false,
        }
    }

    /// The lease is broken already: nothing can be cached under it.
    fn is_void(&self) -> bool {
        self.generation == 0
    }
}

/// The cached block map of one file.
struct FileExtents {
    /// Its mark moves forward at every check that finds the inode
    /// unchanged.
    key: Key,
    /// Sorted by offset, not overlapping (`logic::extents`).
    extents: KVec<Extent>,
    last_use: u64,
}

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider
    // (its only user) is registered.
    unsafe(uninit) static CACHE: Mutex<KVec<FileExtents>> = KVec::new();
}

static USE_CLOCK: Atomic<u64> = Atomic::new(0);

/// Sets up the cache. Called once from module init.
pub(crate) fn init() {
    // SAFETY: called once from module init, before any use of `CACHE`.
    unsafe { CACHE.init() };
}

/// Frees the cache. Called from module exit, after the provider is gone.
pub(crate) fn exit() {
    CACHE.lock().clear();
}

/// The cached extent of `key`'s file that holds byte `pos`, if known.
///
/// Context: process (takes a mutex).
pub(crate) fn lookup(key: &Key, pos: i64) -> Option<Extent> {
    if key.is_void() {
        return None;
    }
    let mut files = CACHE.lock();
    let i = files.iter().position(|f| f.key.inode == key.inode)?;
    if !files[i].key.revalidate(key) {
        // Another lease, or the file changed: these extents are history.
        files.remove(i).ok()?;
        return None;
    }
    let file = &mut files[i];
    file.last_use = USE_CLOCK.fetch_add(1, Relaxed);
    extents::covering(&file.extents, pos).map(|j| file.extents[j])
}

/// Remembers `ext`, which `map_blocks` just returned for `key`'s file. If
/// there is no memory the extent is simply not cached.
///
/// Context: process (takes a mutex, allocates).
pub(crate) fn insert(key: &Key, ext: Extent) {
    // The request's own key: nothing changed since it began.
    let mut fresh = *key;
    if key.is_void() || ext.length == 0 || !fresh.revalidate(key) {
        return;
    }
    let mut files = CACHE.lock();
    let i = match files.iter().position(|f| f.key.inode == key.inode) {
        Some(i) => i,
        None => {
            if files.len() >= MAX_FILES {
                let lru = files
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, f)| f.last_use)
                    .map(|(i, _)| i);
                if let Some(lru) = lru {
                    let _ = files.remove(lru);
                }
            }
            let file = FileExtents {
                key: fresh,
                extents: KVec::new(),
                last_use: 0,
            };
            if files.push(file, GFP_KERNEL).is_err() {
                return;
            }
            files.len() - 1
        }
    };
    let file = &mut files[i];
    if !file.key.revalidate(key) {
        file.key = fresh;
        file.extents.clear();
    }
    file.last_use = USE_CLOCK.fetch_add(1, Relaxed);
    let (from, to) = match extents::insertion(&file.extents, &ext) {
        Insert::Known => return,
        Insert::At { from, to } => (from, to),
    };
    for _ in from..to {
        let _ = file.extents.remove(from);
    }
    if file.extents.len() >= MAX_EXTENTS {
        file.extents.clear();
    }
    let from = from.min(file.extents.len());
    if file.extents.reserve(1, GFP_KERNEL).is_ok() {
        // Capacity reserved above; `from` is within the length.
        let _ = file.extents.insert_within_capacity(from, ext);
    }
}
