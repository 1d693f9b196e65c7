// SPDX-License-Identifier: GPL-2.0

//! The history of announced changes (`logic::changes`), under its own
//! spinlock: CPU writes (`->page_mkwrite`) and layout changes XFS announces
//! record the inode and byte range they are about to change; a request
//! samples a mark before it checks the page cache, and what it staged, or a
//! cached block map read under the mark, is thrown away if a change of its
//! range was recorded since. Lock order: the registry of `crate::windows`,
//! then this one.

use kernel::prelude::*;

use crate::{
    ffi::InodeKey,
    logic::changes::{ChangeKind, Changes, Mark},
};

kernel::sync::global_lock! {
    // SAFETY: initialized by `init()` in module init, before the provider
    // (its only user) is registered.
    unsafe(uninit) static CHANGES: SpinLock<Changes> = Changes::new();
}

/// Initializes the lock. Call once, at module init, before anything else
/// of this file.
pub(crate) fn init() {
    // SAFETY: called once from module init, before any use of `CHANGES`.
    unsafe { CHANGES.init() };
}

/// When a window's or a cached block map's range was read: a point in the
/// history of announced changes.
pub(crate) type ChangeMark = Mark;

/// Now, in the history of announced changes: sample it before checking the
/// page cache of a range to stage, hand it to `Slot::ready` (`crate::windows`).
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
/// mapping (`kind` [`ChangeKind::CpuWrite`]), or XFS is about to change it
/// having revoked it itself ([`ChangeKind::Layout`]: its break passes
/// p2pmap's lease by, which a window being staged can then not see
/// broken). Call before the revocation marks the range's windows
/// (`windows::mark_revoking`): a window being staged meanwhile
/// is then either seen by the revocation or thrown away when published (the
/// registry lock orders the two).
pub(crate) fn note_change(inode: InodeKey, start: i64, end: i64, kind: ChangeKind) {
    CHANGES.lock().record(inode.raw(), start, end, kind);
}
