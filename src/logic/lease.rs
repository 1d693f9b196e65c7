// SPDX-License-Identifier: GPL-2.0

//! The state of p2pmap's layout lease of one inode, as the inode's state
//! in the registry (`crate::windows`) keeps it: how many holders it has,
//! whether and when it was broken, and which tasks may break the inode's
//! layout without breaking it (they revoked what they change themselves).
//!
//! The lease itself (the `file_lease` on the inode, its `lm_ops`, the
//! worker that releases it) is C, `bindings/p2pmap_lease.c`; it names this
//! state by the inode and the lease's generation, never by a pointer.

/// Tasks that may break one inode's layout at once having revoked their
/// range themselves (XFS: writers holding the iolock shared). Beyond that
/// the lease is broken as if they had announced nothing: slower, as correct.
pub const MAX_PASSING: usize = 4;

/// Why a task may not pass the lease by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPass {
    /// Broken already: the whole inode is being revoked anyway.
    Broken,
    /// [`MAX_PASSING`] other tasks pass it by right now.
    Full,
}

/// The lease is being broken: no new holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken;

/// One lease's state.
///
/// # Invariants
///
/// - `refs` is at least 1 until [`LeaseState::put`] returned `true`, after
///   which the lease belongs to nobody and is released;
/// - `broken_ns` is 0 until the first [`LeaseState::break_at`], then never
///   changes (a clock reading of 0 is stored as 1);
/// - the `Some` entries of `passing` are distinct tasks.
#[derive(Debug)]
pub struct LeaseState {
    generation: u64,
    refs: usize,
    broken_ns: u64,
    passing: [Option<usize>; MAX_PASSING],
}

impl LeaseState {
    /// A lease with generation `generation` (unique per lease taken, never
    /// 0) and one holder, its taker.
    pub fn new(generation: u64) -> Self {
        // INVARIANT: one holder, unbroken, nobody passing.
        LeaseState {
            generation,
            refs: 1,
            broken_ns: 0,
            passing: [None; MAX_PASSING],
        }
    }

    /// Which lease this is.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When it was broken (the clock of `break_at`), `None` while unbroken.
    pub fn broken_ns(&self) -> Option<u64> {
        (self.broken_ns != 0).then_some(self.broken_ns)
    }

    /// Broken since it was taken.
    pub fn broken(&self) -> bool {
        self.broken_ns != 0
    }

    /// How many hold it.
    #[cfg(test)]
    pub fn refs(&self) -> usize {
        self.refs
    }

    /// One more holder; refused once broken (the holder would stage under
    /// a block map that is about to change).
    pub fn get(&mut self) -> Result<(), Broken> {
        if self.broken() {
            return Err(Broken);
        }
        self.refs += 1;
        Ok(())
    }

    /// One holder less; `true` if it was the last: release the lease.
    pub fn put(&mut self) -> bool {
        // INVARIANT: `refs` stays at least 1 while the lease has holders;
        // a put beyond the last is a bug that must not wrap around.
        self.refs = self.refs.saturating_sub(1);
        self.refs == 0
    }

    /// `lm_break` at `now_ns`: `true` the first time only (revoke the
    /// inode then; later breaks wait for the same release).
    pub fn break_at(&mut self, now_ns: u64) -> bool {
        if self.broken() {
            return false;
        }
        // INVARIANT: set once, never 0.
        self.broken_ns = now_ns.max(1);
        true
    }

    /// Lets `task`'s breaks pass the lease by until [`Self::end_pass`]:
    /// the task revoked the range it changes itself.
    pub fn begin_pass(&mut self, task: usize) -> Result<(), NoPass> {
        if self.broken() {
            return Err(NoPass::Broken);
        }
        if self.passing.contains(&Some(task)) {
            return Ok(());
        }
        match self.passing.iter_mut().find(|t| t.is_none()) {
            Some(free) => {
                // INVARIANT: not listed yet (checked above).
                *free = Some(task);
                Ok(())
            }
            None => Err(NoPass::Full),
        }
    }

    /// Ends [`Self::begin_pass`] for `task`; nothing if it did not pass.
    pub fn end_pass(&mut self, task: usize) {
        for t in self.passing.iter_mut().filter(|t| **t == Some(task)) {
            *t = None;
        }
    }

    /// Whether a break by `task` passes the lease by.
    pub fn passes(&self, task: usize) -> bool {
        self.passing.contains(&Some(task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_put_releases_and_a_broken_lease_takes_no_holder() {
        let mut l = LeaseState::new(7);
        assert_eq!(Ok(()), l.get());
        assert_eq!(2, l.refs());
        assert!(!l.put());
        assert!(l.break_at(100));
        assert_eq!(Err(Broken), l.get());
        assert_eq!(1, l.refs());
        assert!(l.put());
        // A put too many does not wrap around into a live count.
        assert!(l.put());
        assert_eq!(0, l.refs());
    }

    #[test]
    fn only_the_first_break_counts_and_its_time_stays() {
        let mut l = LeaseState::new(1);
        assert_eq!(None, l.broken_ns());
        assert!(l.break_at(0));
        // A clock reading of 0 still reads as broken.
        assert_eq!(Some(1), l.broken_ns());
        assert!(!l.break_at(500));
        assert_eq!(Some(1), l.broken_ns());
    }

    #[test]
    fn passing_is_per_task_bounded_and_ends() {
        let mut l = LeaseState::new(3);
        for t in 1..=MAX_PASSING {
            assert_eq!(Ok(()), l.begin_pass(t));
        }
        // Again for a task already passing: no second place used.
        assert_eq!(Ok(()), l.begin_pass(1));
        assert_eq!(Err(NoPass::Full), l.begin_pass(99));
        assert!(l.passes(2));
        assert!(!l.passes(99));
        l.end_pass(2);
        assert!(!l.passes(2));
        assert_eq!(Ok(()), l.begin_pass(99));
        assert!(l.passes(99));
        // Ending a pass that never began changes nothing.
        l.end_pass(1234);
        assert!(l.passes(1) && l.passes(3) && l.passes(99));
    }

    #[test]
    fn a_broken_lease_lets_nobody_new_pass() {
        let mut l = LeaseState::new(3);
        assert_eq!(Ok(()), l.begin_pass(1));
        assert!(l.break_at(10));
        assert_eq!(Err(NoPass::Broken), l.begin_pass(2));
        // Who passed before the break still passes: it revoked its range.
        assert!(l.passes(1));
    }
}
