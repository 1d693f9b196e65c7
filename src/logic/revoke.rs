// SPDX-License-Identifier: GPL-2.0

//! Why windows were revoked, and the latency histograms of revocation.
//!
//! Latencies are counted in power-of-two microsecond buckets: bucket 0 holds
//! `[0, 2)` µs, bucket `i > 0` holds `[2^i, 2^(i+1))` µs and the last bucket
//! everything from `2^(BUCKETS-1)` µs (about 67 s) up.

/// What started a revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The inode's layout lease was broken (XFS: truncate, hole punch,
    /// fallocate, reflink, `write()`).
    LeaseBreak,
    /// A `device_map` needed CMB space and revoked least recently used
    /// windows still mapped by importers.
    CmbPressure,
    /// Module unload with live mappings.
    Unload,
    /// The NVMe function holding the CMB is being unbound from its driver
    /// (hot-unplug, `remove`, driver unbind).
    DeviceRemoval,
    /// A page of the window's range was about to become writable through a
    /// shared mapping (a CPU store, `filemap_device_mkwrite`).
    CpuWrite,
    /// XFS was about to change the data or block map of a range covering
    /// the window (`write()`, truncate, fallocate) and had it revoked first,
    /// in its own task (`filemap_device_break_begin`): no lease break.
    LayoutChange,
    /// A `read()`, `fsync()` or change of the range needed what a device
    /// wrote through a write mapping (`filemap_device_sync`): the write
    /// mapping was revoked to be written back and committed.
    Sync,
    /// A write window of the range was written back and committed: the
    /// read windows holding the range's old bytes go.
    WriteBack,
}

impl Cause {
    /// Every cause, in the order shown in debugfs.
    pub const ALL: [Cause; 8] = [
        Cause::LeaseBreak,
        Cause::CmbPressure,
        Cause::Unload,
        Cause::DeviceRemoval,
        Cause::CpuWrite,
        Cause::LayoutChange,
        Cause::Sync,
        Cause::WriteBack,
    ];

    /// Number of causes.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable name, as printed in debugfs (`revocations_<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            Cause::LeaseBreak => "lease_break",
            Cause::CmbPressure => "cmb_pressure",
            Cause::Unload => "unload",
            Cause::DeviceRemoval => "device_removal",
            Cause::CpuWrite => "cpu_write",
            Cause::LayoutChange => "layout_change",
            Cause::Sync => "sync",
            Cause::WriteBack => "write_back",
        }
    }

    /// Position in [`Cause::ALL`], used to index counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A file byte range to invalidate: `[start, end)` of the file `key`;
/// `tag` says where the caller keeps the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<T> {
    /// The file (inode) the range belongs to.
    pub key: usize,
    /// First byte.
    pub start: i64,
    /// One past the last byte.
    pub end: i64,
    /// Caller's data, kept from the first span of a merged run.
    pub tag: T,
}

/// Sorts `spans` by file and start and merges overlapping or adjacent ranges
/// of the same file in place, so that a revocation calls
/// `unmap_mapping_range()` once per contiguous run instead of once per
/// window. Returns how many spans are left at the front of `spans`.
pub fn coalesce<T: Copy>(spans: &mut [Span<T>]) -> usize {
    spans.sort_unstable_by_key(|s| (s.key, s.start));
    let mut n = 0;
    for i in 0..spans.len() {
        let s = spans[i];
        if n > 0 && spans[n - 1].key == s.key && s.start <= spans[n - 1].end {
            if s.end > spans[n - 1].end {
                spans[n - 1].end = s.end;
            }
        } else {
            spans[n] = s;
            n += 1;
        }
    }
    n
}

/// Whether the file byte ranges `[a_start, a_end)` and `[b_start, b_end)`
/// share a byte (an empty range shares none).
pub const fn overlaps(a_start: i64, a_end: i64, b_start: i64, b_end: i64) -> bool {
    a_start < a_end && b_start < b_end && a_start < b_end && b_start < a_end
}

/// CMB pressure: how many bytes of mapped windows to revoke so that a window
/// of `len` bytes fits in a CMB of `capacity` bytes of which p2pmap's
/// windows hold `held` (all of the rest free, if nobody else uses the CMB).
/// At least one byte: the allocation failed, so something must go.
pub const fn bytes_to_free(len: usize, capacity: usize, held: usize) -> usize {
    let free = capacity.saturating_sub(held);
    let missing = len.saturating_sub(free);
    if missing == 0 {
        1
    } else {
        missing
    }
}

/// Most rounds of revoke-then-allocate one request makes under CMB
/// pressure (the page allocator's `MAX_RECLAIM_RETRIES` in
/// `should_reclaim_retry()` bounds its reclaim-then-allocate loop alike).
pub const MAX_EVICT_ROUNDS: u32 = 16;

/// CMB pressure: how long a round that found nothing to revoke waits for
/// a window that other requests are revoking or staging to be freed. A
/// bound, not an expected time: the wait ends at the first free.
pub const PENDING_FREE_WAIT_MS: u32 = 100;

/// CMB pressure, round `round` (from 0) of a request for a window of `len`
/// bytes of which `missing` were found missing: how many bytes of least
/// recently used windows to revoke before the next allocation attempt,
/// `None` when the request has had its rounds. A round runs only after an
/// allocation failed: the first revokes what is missing, each later one
/// the window's size. Between a round's revocation and its allocation,
/// concurrent requests may take the space it freed, or have every window
/// in the CMB under revocation already, so that a round finds nothing to
/// revoke and waits for their frees instead.
pub const fn evict_round_bytes(round: u32, missing: usize, len: usize) -> Option<usize> {
    if round >= MAX_EVICT_ROUNDS {
        None
    } else if round == 0 {
        Some(missing)
    } else {
        Some(len)
    }
}

/// Where `pages` pages at file byte `start` lie in a window of `win_pages`
/// pages at file byte `win_start` (pages of `page` bytes): the byte offset
/// of `start` in the window, if the window holds all of them at a whole
/// page offset.
pub const fn offset_in(
    win_start: i64,
    win_pages: usize,
    start: i64,
    pages: usize,
    page: usize,
) -> Option<usize> {
    if start < win_start || pages == 0 {
        return None;
    }
    let off = (start - win_start) as u64;
    let len = (pages as u64).saturating_mul(page as u64);
    let win_len = (win_pages as u64).saturating_mul(page as u64);
    if off % page as u64 != 0 || off > win_len || len > win_len - off {
        return None;
    }
    Some(off as usize)
}

/// Number of histogram buckets.
pub const BUCKETS: usize = 27;

/// The bucket of a latency of `us` microseconds.
pub const fn bucket(us: u64) -> usize {
    if us < 2 {
        return 0;
    }
    let log = (63 - us.leading_zeros()) as usize;
    if log >= BUCKETS {
        BUCKETS - 1
    } else {
        log
    }
}

/// Lowest latency (µs) of bucket `i`.
pub const fn bucket_low(i: usize) -> u64 {
    if i == 0 {
        0
    } else {
        1u64 << i
    }
}

/// Highest latency (µs, exclusive) of bucket `i`; `u64::MAX` for the last.
pub const fn bucket_high(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        u64::MAX
    } else {
        1u64 << (i + 1)
    }
}

/// The `pct`-th percentile (0..=100) of a histogram, as the upper bound of
/// the bucket it falls in (an over-estimate by less than a factor of two);
/// `None` if the histogram is empty. The last bucket reports its low bound.
pub fn percentile(counts: &[u64; BUCKETS], pct: u32) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // Rank of the sample (1-based, nearest-rank method).
    let rank = (total * u64::from(pct.min(100))).div_ceil(100).max(1);
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(if i + 1 == BUCKETS {
                bucket_low(i)
            } else {
                bucket_high(i)
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_frees_only_what_is_missing() {
        const M: usize = 1 << 20;
        // 64 MiB CMB, 48 MiB held: a 32 MiB window needs 16 MiB more.
        assert_eq!(bytes_to_free(32 * M, 64 * M, 48 * M), 16 * M);
        // It would fit in what p2pmap thinks is free: fragmentation or
        // another user of the CMB; something must still go.
        assert_eq!(bytes_to_free(8 * M, 64 * M, 48 * M), 1);
        // More held than the capacity (a stale bound): everything missing.
        assert_eq!(bytes_to_free(8 * M, 64 * M, 80 * M), 8 * M);
        assert_eq!(bytes_to_free(64 * M, 64 * M, 64 * M), 64 * M);
    }

    #[test]
    fn eviction_rounds_are_bounded() {
        const M: usize = 1 << 20;
        assert_eq!(evict_round_bytes(0, 3 * M, 8 * M), Some(3 * M));
        for round in 1..MAX_EVICT_ROUNDS {
            assert_eq!(evict_round_bytes(round, 3 * M, 8 * M), Some(8 * M));
        }
        assert_eq!(evict_round_bytes(MAX_EVICT_ROUNDS, 3 * M, 8 * M), None);
        assert_eq!(evict_round_bytes(u32::MAX, 3 * M, 8 * M), None);
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(3), 1);
        assert_eq!(bucket(4), 2);
        assert_eq!(bucket(1023), 9);
        assert_eq!(bucket(1024), 10);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS {
            assert_eq!(bucket(bucket_low(i)), i);
            if i + 1 < BUCKETS {
                assert_eq!(bucket(bucket_high(i) - 1), i);
                assert_eq!(bucket_high(i), bucket_low(i + 1));
            }
        }
    }

    #[test]
    fn percentiles() {
        let mut h = [0u64; BUCKETS];
        assert_eq!(percentile(&h, 50), None);
        // 99 samples of 3 us, one of 5000 us.
        h[bucket(3)] = 99;
        h[bucket(5000)] = 1;
        assert_eq!(percentile(&h, 50), Some(4));
        assert_eq!(percentile(&h, 99), Some(4));
        assert_eq!(percentile(&h, 100), Some(8192));
        assert_eq!(percentile(&h, 0), Some(4));
        h[BUCKETS - 1] = 1000;
        assert_eq!(percentile(&h, 99), Some(bucket_low(BUCKETS - 1)));
    }

    fn span(key: usize, start: i64, end: i64, tag: u32) -> Span<u32> {
        Span {
            key,
            start,
            end,
            tag,
        }
    }

    #[test]
    fn coalesce_merges_contiguous_runs_per_file() {
        let mut v = [
            span(2, 8192, 12288, 0),
            span(1, 4096, 8192, 1),
            span(1, 0, 4096, 2),
            span(1, 16384, 20480, 3),
            span(2, 0, 4096, 4),
            span(1, 2048, 6000, 5),
        ];
        let n = coalesce(&mut v);
        assert_eq!(n, 4);
        assert_eq!((v[0].key, v[0].start, v[0].end, v[0].tag), (1, 0, 8192, 2));
        assert_eq!((v[1].key, v[1].start, v[1].end), (1, 16384, 20480));
        assert_eq!((v[2].key, v[2].start, v[2].end), (2, 0, 4096));
        assert_eq!((v[3].key, v[3].start, v[3].end), (2, 8192, 12288));
        let mut none: [Span<u32>; 0] = [];
        assert_eq!(coalesce(&mut none), 0);
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(overlaps(0, 4096, 4095, 8192));
        assert!(!overlaps(0, 4096, 4096, 8192));
        assert!(!overlaps(4096, 8192, 0, 4096));
        assert!(overlaps(0, 65536, 8192, 12288));
        assert!(overlaps(8192, 12288, 0, 65536));
        assert!(!overlaps(0, 0, 0, 4096));
        assert!(!overlaps(0, 8192, 4096, 4096));
        assert!(!overlaps(4096, 4096, 0, 8192));
    }

    #[test]
    fn offset_in_finds_ranges_a_window_holds() {
        const P: usize = 4096;
        // a window of pages 4..12 (8 pages) at byte 16384
        let w = 4 * P as i64;
        assert_eq!(offset_in(w, 8, w, 8, P), Some(0));
        assert_eq!(offset_in(w, 8, w + 3 * P as i64, 2, P), Some(3 * P));
        assert_eq!(offset_in(w, 8, w + 7 * P as i64, 1, P), Some(7 * P));
        // one page too many, starting before, past the end, unaligned, empty
        assert_eq!(offset_in(w, 8, w + 7 * P as i64, 2, P), None);
        assert_eq!(offset_in(w, 8, w - P as i64, 2, P), None);
        assert_eq!(offset_in(w, 8, w + 8 * P as i64, 1, P), None);
        assert_eq!(offset_in(w, 8, w + 100, 1, P), None);
        assert_eq!(offset_in(w, 8, w, 0, P), None);
        // no overflow with absurd sizes
        assert_eq!(
            offset_in(0, usize::MAX, i64::MAX - 4095, usize::MAX, P),
            None
        );
    }

    #[test]
    fn cause_names_are_unique() {
        for (i, a) in Cause::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
            for b in &Cause::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
