// SPDX-License-Identifier: GPL-2.0

//! The recent history of announced file changes, range by range: what a
//! window being staged, or a cached block map, checks to know whether the
//! range it read changed meanwhile.
//!
//! Two kinds of change reach p2pmap without breaking its layout lease: a
//! page about to become writable through a shared mapping
//! (`->page_mkwrite`) and a range XFS announces before it changes it
//! (`filemap_device_break_begin()`). Each is recorded with its inode and
//! byte range under a sequence number; a reader samples the sequence
//! ([`Changes::mark`]) before it checks the page cache and reads, and asks
//! afterwards whether its range changed since ([`Changes::since`]). A store
//! elsewhere in the file, or in another file, no longer throws its work
//! away. The ring keeps the last [`RING`] changes: a reader that fell out of
//! it is told that something changed, without knowing where.

/// Changes kept.
pub const RING: usize = 256;

/// What changed a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A page became writable through a shared mapping.
    CpuWrite,
    /// The filesystem changed the range's data or block map.
    Layout,
    /// More than [`RING`] changes happened since: anything may have.
    Unknown,
}

#[derive(Clone, Copy)]
struct Change {
    inode: usize,
    start: i64,
    end: i64,
    kind: ChangeKind,
}

/// A point in the history, from [`Changes::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(u64);

/// The last [`RING`] announced changes of every file.
pub struct Changes {
    ring: [Change; RING],
    /// Sequence number of the next change; change `n` is `ring[n % RING]`.
    next: u64,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    /// No change yet.
    pub const fn new() -> Self {
        Changes {
            ring: [Change {
                inode: 0,
                start: 0,
                end: 0,
                kind: ChangeKind::Unknown,
            }; RING],
            next: 0,
        }
    }

    /// Now: changes recorded from here on are "since" this mark.
    pub fn mark(&self) -> Mark {
        Mark(self.next)
    }

    /// Records that `[start, end)` of `inode` changes (or is about to).
    pub fn record(&mut self, inode: usize, start: i64, end: i64, kind: ChangeKind) {
        self.ring[(self.next % RING as u64) as usize] = Change {
            inode,
            start,
            end,
            kind,
        };
        self.next += 1;
    }

    /// The first change to `[start, end)` of `inode` recorded since `mark`,
    /// if any ([`ChangeKind::Unknown`] when the ring no longer holds them
    /// all).
    pub fn since(&self, mark: Mark, inode: usize, start: i64, end: i64) -> Option<ChangeKind> {
        if self.next.saturating_sub(mark.0) > RING as u64 {
            return Some(ChangeKind::Unknown);
        }
        (mark.0..self.next)
            .map(|n| &self.ring[(n % RING as u64) as usize])
            .find(|c| c.inode == inode && c.start < end && start < c.end)
            .map(|c| c.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_elsewhere_is_not_a_change_here() {
        let mut c = Changes::new();
        let m = c.mark();
        c.record(1, 4096, 8192, ChangeKind::CpuWrite);
        // another range of the same file, another file
        assert_eq!(c.since(m, 1, 0, 4096), None);
        assert_eq!(c.since(m, 1, 8192, 16384), None);
        assert_eq!(c.since(m, 2, 0, 1 << 20), None);
        // overlapping, partly or wholly
        assert_eq!(c.since(m, 1, 0, 4097), Some(ChangeKind::CpuWrite));
        assert_eq!(c.since(m, 1, 8191, 9000), Some(ChangeKind::CpuWrite));
        assert_eq!(c.since(m, 1, 0, i64::MAX), Some(ChangeKind::CpuWrite));
    }

    #[test]
    fn only_changes_after_the_mark_count() {
        let mut c = Changes::new();
        c.record(1, 0, 4096, ChangeKind::Layout);
        let m = c.mark();
        assert_eq!(c.since(m, 1, 0, 4096), None);
        c.record(1, 0, i64::MAX, ChangeKind::Layout);
        assert_eq!(
            c.since(m, 1, 1 << 30, (1 << 30) + 1),
            Some(ChangeKind::Layout)
        );
    }

    #[test]
    fn a_reader_that_fell_out_of_the_ring_is_told_anything_changed() {
        let mut c = Changes::new();
        let m = c.mark();
        for i in 0..RING {
            c.record(100 + i, 0, 1, ChangeKind::CpuWrite);
        }
        // exactly RING changes since: all still known
        assert_eq!(c.since(m, 1, 0, 4096), None);
        c.record(99, 0, 1, ChangeKind::CpuWrite);
        assert_eq!(c.since(m, 1, 0, 4096), Some(ChangeKind::Unknown));
        // a later mark is fine again
        let m2 = c.mark();
        assert_eq!(c.since(m2, 1, 0, 4096), None);
    }
}
