// SPDX-License-Identifier: GPL-2.0

//! The block map of a file p2pmap holds a layout lease on, cached as a
//! pNFS client caches layouts, so that staging asks `map_blocks` only for
//! ranges not yet known. XFS's `map_blocks` (`xfs_fs_map_blocks()`) writes
//! back and invalidates the page cache of the whole file, which zaps every
//! CPU mapping of every page of it: without the cache each new window of a
//! file did that again.
//!
//! A [`BlockMap`] is part of the inode's state ([`crate::windows`]): it
//! lives under the registry lock, as long as the inode has windows. Staging
//! reads it through [`crate::windows::cached_extent`] and hands what
//! `map_blocks` told it to [`crate::windows::publish`], which merges it.
//!
//! A cached block map is valid while all of these hold, which [`Key`]
//! captures:
//! - the inode's lease is the one under which the extents were read (its
//!   generation, [`crate::windows::LeaseRef::generation`]) and is not
//!   broken: not released and taken again (without a lease nothing tells
//!   p2pmap of a change). The registry checks that under its lock, where
//!   the lease's state is;
//! - no layout change of the inode was announced since they were read: XFS
//!   announces every change of data or block map under a lease
//!   (`write()`, truncate, fallocate, scrub:
//!   `filemap_device_break_begin()`), and breaks the lease where it
//!   announces no range (`RWF_NOWAIT`);
//! - no CPU write of the inode was announced either: a store through a
//!   shared mapping (`->page_mkwrite`) may fill a hole with delayed
//!   allocation that writeback turns into blocks later, breaking nothing.
//!
//! Any change of the inode counts, not only one of the cached ranges: an
//! allocation can reach past the range written (extent size hints).
//!
//! Writeback of data written before the extents were read cannot change
//! them either: `map_blocks` wrote everything back first.

use kernel::prelude::*;

use crate::{
    changes::{self, ChangeMark},
    ffi::{Extent, InodeKey},
    logic::extents::{self, Insert, Ranged},
};

/// Extents kept per file; a file with more starts over. The list is
/// allocated at this capacity with the inode's state, outside the registry
/// spinlock: merging under it allocates nothing.
pub(crate) const MAX_EXTENTS: usize = 64;

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
    /// The key for staging `inode` under its lease `generation` now
    /// (whether that lease is still unbroken is checked under the registry
    /// lock, where its state is). `mark` was sampled when the request began,
    /// before its page-cache check: extents read after a change recorded
    /// since are never cached.
    pub(crate) fn new(inode: InodeKey, generation: u64, mark: ChangeMark) -> Self {
        Key {
            inode,
            generation,
            mark,
        }
    }

    /// The generation of the lease the key is for.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The inode the key is for.
    pub(crate) fn inode(&self) -> InodeKey {
        self.inode
    }

    /// Whether extents read under this key still hold now: same lease
    /// generation as `now`'s, no change of the inode since the mark. If so,
    /// the mark moves to now (see [`changes::unchanged_since`]).
    fn revalidate(&mut self, now: &Key) -> bool {
        if self.generation != now.generation || self.inode != now.inode {
            return false;
        }
        match changes::unchanged_since(self.mark, self.inode) {
            Some(mark) => {
                self.mark = mark;
                true
            }
            None => false,
        }
    }
}

/// The cached block map of one file.
///
/// # Invariants
///
/// `extents` is sorted by offset, its extents do not overlap
/// (`logic::extents`), and its length never exceeds its capacity once
/// built by [`BlockMap::new`] (nothing is pushed beyond it).
pub(crate) struct BlockMap {
    /// What `extents` are valid for, `None` while empty. Its mark moves
    /// forward at every check that finds the inode unchanged.
    key: Option<Key>,
    extents: KVec<Extent>,
}

impl BlockMap {
    /// An empty block map with room for [`MAX_EXTENTS`] extents.
    ///
    /// Context: process; allocates.
    pub(crate) fn new() -> Result<Self> {
        // INVARIANT: empty.
        Ok(BlockMap {
            key: None,
            extents: KVec::with_capacity(MAX_EXTENTS, GFP_KERNEL)?,
        })
    }

    /// The cached extent that holds byte `pos`, if known and still valid
    /// for `key`. Invalid extents are forgotten.
    /// The caller checked that `key`'s lease is the inode's, unbroken.
    ///
    /// Context: any (takes the changes spinlock; allocates nothing).
    pub(crate) fn lookup(&mut self, key: &Key, pos: i64) -> Option<Extent> {
        let valid = self.key.as_mut().is_some_and(|k| k.revalidate(key));
        if !valid {
            // Another lease, or the file changed: these extents are history.
            self.key = None;
            self.extents.clear();
            return None;
        }
        extents::covering(&self.extents, pos).map(|j| self.extents[j])
    }

    /// Merges `learned`, which `map_blocks` returned to a request staging
    /// under `key`; nothing if the file changed since that request began.
    ///
    /// Context: any (takes the changes spinlock; allocates nothing).
    pub(crate) fn merge(&mut self, key: &Key, learned: &[Extent]) {
        // The request's own key: nothing changed since it began.
        let mut fresh = *key;
        if learned.is_empty() || !fresh.revalidate(key) {
            return;
        }
        if !self.key.as_mut().is_some_and(|k| k.revalidate(key)) {
            self.key = Some(fresh);
            self.extents.clear();
        }
        for ext in learned.iter().filter(|e| e.length != 0) {
            let (from, to) = match extents::insertion(&self.extents, ext) {
                Insert::Known => continue,
                Insert::At { from, to } => (from, to),
            };
            for _ in from..to {
                // In bounds: `from..to` indexes the overlapped extents.
                let _ = self.extents.remove(from);
            }
            if self.extents.len() >= self.extents.capacity() {
                // Full: start over with what is newest.
                self.extents.clear();
            }
            let from = from.min(self.extents.len());
            // INVARIANT: below capacity (checked above), at the sorted
            // position `insertion` found, the overlapped extents removed.
            let _ = self.extents.insert_within_capacity(from, *ext);
        }
    }
}
