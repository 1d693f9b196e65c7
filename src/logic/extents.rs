// SPDX-License-Identifier: GPL-2.0

//! The order of a cached extent list: extents sorted by file offset, not
//! overlapping. The list is the block map of part of one file as
//! `map_blocks` returned it, kept while p2pmap's layout lease on the file
//! is unbroken and the file did not change (see `src/extents.rs`).

/// A byte range of a file, `[start, end)`.
pub trait Ranged {
    /// First byte.
    fn start(&self) -> i64;
    /// One past the last byte.
    fn end(&self) -> i64;
}

/// The index of the extent of `list` (sorted, not overlapping) that holds
/// byte `pos`, if any.
pub fn covering<T: Ranged>(list: &[T], pos: i64) -> Option<usize> {
    // The first extent starting after `pos`; the one before it may hold it.
    let after = list.partition_point(|e| e.start() <= pos);
    let i = after.checked_sub(1)?;
    (list[i].end() > pos).then_some(i)
}

/// Where a new extent goes into a sorted, non-overlapping list.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// An extent of the list already holds all of it: nothing to do.
    Known,
    /// Remove `list[from..to]` (the extents it overlaps, possibly none),
    /// then insert it at `from`. The newer answer of `map_blocks` wins.
    At { from: usize, to: usize },
}

/// How to add `new` (not empty) to `list` (sorted, not overlapping).
pub fn insertion<T: Ranged>(list: &[T], new: &T) -> Insert {
    if let Some(i) = covering(list, new.start()) {
        if list[i].end() >= new.end() {
            return Insert::Known;
        }
    }
    // Extents ending at or before the new start stay before it.
    let from = list.partition_point(|e| e.end() <= new.start());
    // Extents starting before the new end overlap it.
    let to = list.partition_point(|e| e.start() < new.end()).max(from);
    Insert::At { from, to }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct E(i64, i64);

    impl Ranged for E {
        fn start(&self) -> i64 {
            self.0
        }
        fn end(&self) -> i64 {
            self.1
        }
    }

    fn apply(list: &mut Vec<E>, new: E) {
        match insertion(list, &new) {
            Insert::Known => {}
            Insert::At { from, to } => {
                list.drain(from..to);
                list.insert(from, new);
            }
        }
    }

    #[test]
    fn covering_finds_the_extent_holding_a_byte() {
        let l = [E(0, 10), E(10, 20), E(30, 40)];
        assert_eq!(covering(&l, 0), Some(0));
        assert_eq!(covering(&l, 9), Some(0));
        assert_eq!(covering(&l, 10), Some(1));
        assert_eq!(covering(&l, 25), None);
        assert_eq!(covering(&l, 39), Some(2));
        assert_eq!(covering(&l, 40), None);
        assert_eq!(covering(&l, -1), None);
        assert_eq!(covering::<E>(&[], 0), None);
    }

    #[test]
    fn a_known_range_is_not_added_twice() {
        let l = [E(0, 100)];
        assert_eq!(insertion(&l, &E(10, 20)), Insert::Known);
        assert_eq!(insertion(&l, &E(0, 100)), Insert::Known);
    }

    #[test]
    fn inserted_extents_stay_sorted_and_disjoint() {
        let mut l = Vec::new();
        apply(&mut l, E(50, 60));
        apply(&mut l, E(0, 10));
        apply(&mut l, E(20, 30));
        assert_eq!(l, [E(0, 10), E(20, 30), E(50, 60)]);
        // adjacent, not overlapping: kept apart
        apply(&mut l, E(10, 20));
        assert_eq!(l, [E(0, 10), E(10, 20), E(20, 30), E(50, 60)]);
        // overlapping several: they go, the newer answer stays
        apply(&mut l, E(5, 55));
        assert_eq!(l, [E(5, 55)]);
        // overlapping the end of one and the start of the next
        let mut l = vec![E(0, 10), E(20, 30)];
        apply(&mut l, E(8, 22));
        assert_eq!(l, [E(8, 22)]);
        let mut l = vec![E(0, 10), E(20, 30), E(40, 50)];
        apply(&mut l, E(25, 35));
        assert_eq!(l, [E(0, 10), E(25, 35), E(40, 50)]);
        for w in l.windows(2) {
            assert!(w[0].end() <= w[1].start());
        }
    }
}
