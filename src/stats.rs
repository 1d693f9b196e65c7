// SPDX-License-Identifier: GPL-2.0

//! Counters of the provider, shown in `/sys/kernel/debug/p2pmap/stats`
//! (one `name value` pair per line; `p2pctl stat` prints them).

use core::fmt;
use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    uaccess::UserSliceReader,
};

use crate::logic::{
    reason::Reason,
    revoke::{self, Cause, BUCKETS},
};

/// The module's counters.
pub(crate) struct Stats {
    map_calls: Atomic<u64>,
    unmap_calls: Atomic<u64>,
    lock_drop_retries: Atomic<u64>,
    maps: Atomic<u64>,
    lease_breaks: Atomic<u64>,
    windows_staged: Atomic<u64>,
    windows_live: Atomic<u64>,
    bytes_staged: Atomic<u64>,
    cmb_bytes_used: Atomic<u64>,
    refused: [Atomic<u64>; Reason::COUNT],
    /// Revocation events, by cause.
    revocations: [Atomic<u64>; Cause::COUNT],
    /// Windows revoked (all causes).
    windows_revoked: Atomic<u64>,
    /// `device_unmap` calls that matched no claim of a live window (late,
    /// double, or for a window already freed by a device removal).
    unmaps_unmatched: Atomic<u64>,
    /// Windows (and refusals) freed because the caller of the slow path that
    /// staged them never came back to claim them.
    unclaimed_expired: Atomic<u64>,
    /// Layout breaks that XFS announced with their range
    /// (`filemap_device_break_begin`) and that passed p2pmap's lease by: the
    /// range was revoked in the breaker's task, no lease was broken.
    sync_breaks: Atomic<u64>,
    /// Such announced breaks that could not pass the lease (p2pmap held no
    /// lease of the inode yet, it was already broken, or too many tasks
    /// broke the inode at once): the lease is broken as before.
    sync_breaks_fallback: Atomic<u64>,
    /// Extents of a range to stage asked of the filesystem (`map_blocks`:
    /// in XFS a write-back and invalidation of the whole file's page cache).
    map_blocks_calls: Atomic<u64>,
    /// Extents found in p2pmap's extent cache instead.
    extent_cache_hits: Atomic<u64>,
    /// Revocation start (lease break, CMB allocation failure, unload, unbind
    /// notification) -> every importer mapping a revoked range quiesced
    /// (`unmap_mapping_range` returned: the notifiers ran synchronously).
    quiesce_us: [Atomic<u64>; BUCKETS],
    /// Lease break (`lm_break`) -> the revocation work runs (worker
    /// dispatch latency).
    dispatch_us: [Atomic<u64>; BUCKETS],
    /// Lease break (`lm_break`) -> the layout lease released, which lets the
    /// breaker (truncate, write, ...) go on.
    release_us: [Atomic<u64>; BUCKETS],
    /// `ktime_get_ns()` of the last lease break and of its release (the
    /// benchmark splits a truncate's time around them).
    last_break_ns: Atomic<u64>,
    last_release_ns: Atomic<u64>,
    /// Fault injection (debugfs `inject_retry`): the next N valid requests
    /// take the slow path (release mmap_lock, take i_rwsem, -EAGAIN).
    inject_retry: Atomic<u32>,
    /// Debugfs `sync_break` (default 1): 0 makes p2pmap ignore the ranges
    /// XFS announces, so that every layout change breaks the lease as
    /// before patch 8 (the benchmark compares the two; tests show what
    /// the synchronous path changes).
    sync_break: Atomic<u32>,
    /// Debugfs `extent_cache` (default 1): 0 makes every slow path ask
    /// `map_blocks`, as before the extent cache.
    extent_cache: Atomic<u32>,
    /// Debugfs `allow_pin` (module parameter `allow_pin`, default 0): 1
    /// lets `DEVICE_MAP_FLAG_PIN` requests have a dma_buf.
    allow_pin: Atomic<u32>,
    /// dma_bufs handed out for `DEVICE_MAP_FLAG_PIN` requests.
    pins: Atomic<u64>,
    /// Pins revoked (their importers invalidated).
    pins_revoked: Atomic<u64>,
    /// Write windows (`DEVICE_MAP_FLAG_WRITE`) staged.
    write_windows: Atomic<u64>,
    /// Write windows written back and committed.
    written_back: Atomic<u64>,
    /// Bytes of those.
    bytes_written_back: Atomic<u64>,
    /// Write windows whose write-back failed, or that were freed before it
    /// (their CMB removed): the file's mapping has the error, fsync()
    /// returns it.
    write_back_failed: Atomic<u64>,
    /// Write-backs that found pages the CPU dirtied through a shared
    /// mapping in the window's range (written back first; those pages'
    /// device bytes are lost).
    write_back_cpu_pages: Atomic<u64>,
    /// Waits of `read()`, `fsync()`, changes and new mappings for what
    /// devices wrote (`filemap_device_sync` and the slow path).
    write_back_waits: Atomic<u64>,
}

/// The counters, shared by the provider callbacks and debugfs.
pub(crate) static STATS: Stats = Stats::new();

impl Stats {
    /// All counters at zero.
    pub(crate) const fn new() -> Self {
        Stats {
            map_calls: Atomic::new(0),
            unmap_calls: Atomic::new(0),
            lock_drop_retries: Atomic::new(0),
            maps: Atomic::new(0),
            lease_breaks: Atomic::new(0),
            windows_staged: Atomic::new(0),
            windows_live: Atomic::new(0),
            bytes_staged: Atomic::new(0),
            cmb_bytes_used: Atomic::new(0),
            refused: [const { Atomic::new(0) }; Reason::COUNT],
            revocations: [const { Atomic::new(0) }; Cause::COUNT],
            windows_revoked: Atomic::new(0),
            unmaps_unmatched: Atomic::new(0),
            unclaimed_expired: Atomic::new(0),
            sync_breaks: Atomic::new(0),
            sync_breaks_fallback: Atomic::new(0),
            map_blocks_calls: Atomic::new(0),
            extent_cache_hits: Atomic::new(0),
            quiesce_us: [const { Atomic::new(0) }; BUCKETS],
            dispatch_us: [const { Atomic::new(0) }; BUCKETS],
            release_us: [const { Atomic::new(0) }; BUCKETS],
            last_break_ns: Atomic::new(0),
            last_release_ns: Atomic::new(0),
            inject_retry: Atomic::new(0),
            sync_break: Atomic::new(1),
            extent_cache: Atomic::new(1),
            allow_pin: Atomic::new(0),
            pins: Atomic::new(0),
            pins_revoked: Atomic::new(0),
            write_windows: Atomic::new(0),
            written_back: Atomic::new(0),
            bytes_written_back: Atomic::new(0),
            write_back_failed: Atomic::new(0),
            write_back_cpu_pages: Atomic::new(0),
            write_back_waits: Atomic::new(0),
        }
    }

    /// Whether `DEVICE_MAP_FLAG_PIN` is allowed (debugfs `allow_pin`).
    pub(crate) fn pin_allowed(&self) -> bool {
        self.allow_pin.load(Relaxed) != 0
    }

    /// Sets the `allow_pin` switch (the module parameter, at load).
    pub(crate) fn set_pin_allowed(&self, on: bool) {
        self.allow_pin.store(u32::from(on), Relaxed);
    }

    /// Counts a dma_buf handed out for a PIN request.
    pub(crate) fn pinned(&self) {
        self.pins.add(1, Relaxed);
    }

    /// Counts `n` pins revoked.
    pub(crate) fn pins_revoked(&self, n: u32) {
        self.pins_revoked.add(u64::from(n), Relaxed);
    }

    /// Counts a write window staged.
    pub(crate) fn write_window_staged(&self) {
        self.write_windows.add(1, Relaxed);
    }

    /// Counts a write window of `bytes` written back and committed.
    pub(crate) fn written_back(&self, bytes: usize) {
        self.written_back.add(1, Relaxed);
        self.bytes_written_back.add(bytes as u64, Relaxed);
    }

    /// Counts a write window whose device bytes did not reach the file.
    pub(crate) fn write_back_failed(&self) {
        self.write_back_failed.add(1, Relaxed);
    }

    /// Counts a write-back that met pages the CPU dirtied in its range.
    pub(crate) fn write_back_cpu_pages(&self) {
        self.write_back_cpu_pages.add(1, Relaxed);
    }

    /// Counts a wait for a write-back.
    pub(crate) fn write_back_wait(&self) {
        self.write_back_waits.add(1, Relaxed);
    }

    /// Counts a `device_map` call.
    pub(crate) fn map_called(&self) {
        self.map_calls.add(1, Relaxed);
    }

    /// Whether announced layout breaks are served in the breaker's task
    /// (debugfs `sync_break`).
    pub(crate) fn sync_break_enabled(&self) -> bool {
        self.sync_break.load(Relaxed) != 0
    }

    /// Counts a `device_unmap` call.
    pub(crate) fn unmap_called(&self) {
        self.unmap_calls.add(1, Relaxed);
    }

    /// Counts a `device_map` that released mmap_lock and asked for a retry.
    pub(crate) fn lock_dropped(&self) {
        self.lock_drop_retries.add(1, Relaxed);
    }

    /// Counts a `device_unmap` that matched no claim.
    pub(crate) fn unmap_unmatched(&self) {
        self.unmaps_unmatched.add(1, Relaxed);
    }

    /// Counts `n` unclaimed slots freed after they expired.
    pub(crate) fn unclaimed_expired(&self, n: usize) {
        self.unclaimed_expired.add(n as u64, Relaxed);
    }

    /// Counts an announced layout break: `passed` if it passes the lease by
    /// (synchronous), else it breaks the lease.
    /// Whether staging may use the extent cache (debugfs `extent_cache`).
    pub(crate) fn extent_cache_enabled(&self) -> bool {
        self.extent_cache.load(Relaxed) != 0
    }

    /// Counts where the extent of a range to stage came from.
    pub(crate) fn extent_lookup(&self, cached: bool) {
        if cached {
            self.extent_cache_hits.add(1, Relaxed);
        } else {
            self.map_blocks_calls.add(1, Relaxed);
        }
    }

    pub(crate) fn sync_break(&self, passed: bool) {
        if passed {
            self.sync_breaks.add(1, Relaxed);
        } else {
            self.sync_breaks_fallback.add(1, Relaxed);
        }
    }

    /// Counts a successful `device_map`.
    pub(crate) fn mapped(&self) {
        self.maps.add(1, Relaxed);
    }

    /// Counts a layout lease break (revocation of an inode's windows).
    pub(crate) fn lease_broken(&self) {
        self.lease_breaks.add(1, Relaxed);
    }

    /// Counts a window of `bytes` staged into the CMB.
    pub(crate) fn window_staged(&self, bytes: usize) {
        self.windows_staged.add(1, Relaxed);
        self.windows_live.add(1, Relaxed);
        self.bytes_staged.add(bytes as u64, Relaxed);
        self.cmb_bytes_used.add(bytes as u64, Relaxed);
    }

    /// Counts a window of `bytes` freed.
    pub(crate) fn window_freed(&self, bytes: usize) {
        // Atomic<u64> has no sub: add the two's complement.
        self.windows_live.add(1u64.wrapping_neg(), Relaxed);
        self.cmb_bytes_used
            .add((bytes as u64).wrapping_neg(), Relaxed);
    }

    /// Counts a revocation of `windows` windows for `cause` whose importers
    /// were quiesced `quiesce_ns` after it started.
    pub(crate) fn revoked(&self, cause: Cause, windows: usize, quiesce_ns: u64) {
        self.revocations[cause.index()].add(1, Relaxed);
        self.windows_revoked.add(windows as u64, Relaxed);
        self.quiesce_us[revoke::bucket(quiesce_ns / 1000)].add(1, Relaxed);
    }

    /// Counts a lease-break revocation that started `ns` after the break.
    pub(crate) fn break_dispatched(&self, ns: u64) {
        self.dispatch_us[revoke::bucket(ns / 1000)].add(1, Relaxed);
    }

    /// Counts a layout lease broken at `break_ns` and released at `now_ns`.
    pub(crate) fn lease_released(&self, break_ns: u64, now_ns: u64) {
        let ns = now_ns.saturating_sub(break_ns);
        self.release_us[revoke::bucket(ns / 1000)].add(1, Relaxed);
        self.last_break_ns.store(break_ns, Relaxed);
        self.last_release_ns.store(now_ns, Relaxed);
    }

    /// Revocations counted for `cause`.
    pub(crate) fn revocations(&self, cause: Cause) -> u64 {
        self.revocations[cause.index()].load(Relaxed)
    }

    /// Empties the latency histograms.
    fn reset_latency(&self) {
        for b in self.quiesce_us.iter() {
            b.store(0, Relaxed);
        }
        for b in self.release_us.iter() {
            b.store(0, Relaxed);
        }
        for b in self.dispatch_us.iter() {
            b.store(0, Relaxed);
        }
    }

    /// `revoke_latency`: percentiles and the non-empty buckets of each
    /// histogram (`<name> <low_us> <high_us> <count>`, high `inf` for the
    /// last bucket).
    fn render_latency(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, hist) in [
            ("dispatch_us", &self.dispatch_us),
            ("quiesce_us", &self.quiesce_us),
            ("release_us", &self.release_us),
        ] {
            let mut counts = [0u64; BUCKETS];
            for (c, b) in counts.iter_mut().zip(hist.iter()) {
                *c = b.load(Relaxed);
            }
            writeln!(f, "{name}_count {}", counts.iter().sum::<u64>())?;
            for pct in [50u32, 90, 99, 100] {
                let v = revoke::percentile(&counts, pct).unwrap_or(0);
                writeln!(f, "{name}_p{pct} {v}")?;
            }
            for (i, &c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
                let high = revoke::bucket_high(i);
                if high == u64::MAX {
                    writeln!(f, "{name} {} inf {c}", revoke::bucket_low(i))?;
                } else {
                    writeln!(f, "{name} {} {high} {c}", revoke::bucket_low(i))?;
                }
            }
        }
        writeln!(f, "last_break_ns {}", self.last_break_ns.load(Relaxed))?;
        writeln!(f, "last_release_ns {}", self.last_release_ns.load(Relaxed))
    }

    /// Consumes one injected retry, if any is pending.
    pub(crate) fn take_injected_retry(&self) -> bool {
        let mut cur = self.inject_retry.load(Relaxed);
        while cur > 0 {
            match self.inject_retry.cmpxchg(cur, cur - 1, Relaxed) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Counts a refusal and returns the errno for the importer.
    pub(crate) fn refuse(&self, reason: Reason) -> Error {
        self.refused[reason.index()].add(1, Relaxed);
        Error::from_errno(-reason.errno())
    }

    /// Refusals counted for `reason`.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn refused(&self, reason: Reason) -> u64 {
        self.refused[reason.index()].load(Relaxed)
    }

    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "map_calls {}", self.map_calls.load(Relaxed))?;
        writeln!(f, "unmap_calls {}", self.unmap_calls.load(Relaxed))?;
        writeln!(
            f,
            "lock_drop_retries {}",
            self.lock_drop_retries.load(Relaxed)
        )?;
        writeln!(f, "maps {}", self.maps.load(Relaxed))?;
        writeln!(f, "lease_breaks {}", self.lease_breaks.load(Relaxed))?;
        writeln!(f, "windows_staged {}", self.windows_staged.load(Relaxed))?;
        writeln!(f, "windows_live {}", self.windows_live.load(Relaxed))?;
        writeln!(f, "bytes_staged {}", self.bytes_staged.load(Relaxed))?;
        writeln!(f, "cmb_bytes_used {}", self.cmb_bytes_used.load(Relaxed))?;
        for r in Reason::ALL {
            writeln!(
                f,
                "refused_{} {}",
                r.name(),
                self.refused[r.index()].load(Relaxed)
            )?;
        }
        for c in Cause::ALL {
            writeln!(f, "revocations_{} {}", c.name(), self.revocations(c))?;
        }
        writeln!(f, "windows_revoked {}", self.windows_revoked.load(Relaxed))?;
        writeln!(f, "pins {}", self.pins.load(Relaxed))?;
        writeln!(f, "pins_revoked {}", self.pins_revoked.load(Relaxed))?;
        writeln!(f, "write_windows {}", self.write_windows.load(Relaxed))?;
        writeln!(f, "written_back {}", self.written_back.load(Relaxed))?;
        writeln!(
            f,
            "bytes_written_back {}",
            self.bytes_written_back.load(Relaxed)
        )?;
        writeln!(
            f,
            "write_back_failed {}",
            self.write_back_failed.load(Relaxed)
        )?;
        writeln!(
            f,
            "write_back_cpu_pages {}",
            self.write_back_cpu_pages.load(Relaxed)
        )?;
        writeln!(
            f,
            "write_back_waits {}",
            self.write_back_waits.load(Relaxed)
        )?;
        writeln!(
            f,
            "unmaps_unmatched {}",
            self.unmaps_unmatched.load(Relaxed)
        )?;
        writeln!(
            f,
            "unclaimed_expired {}",
            self.unclaimed_expired.load(Relaxed)
        )?;
        writeln!(f, "sync_breaks {}", self.sync_breaks.load(Relaxed))?;
        writeln!(
            f,
            "sync_breaks_fallback {}",
            self.sync_breaks_fallback.load(Relaxed)
        )?;
        writeln!(
            f,
            "map_blocks_calls {}",
            self.map_blocks_calls.load(Relaxed)
        )?;
        writeln!(
            f,
            "extent_cache_hits {}",
            self.extent_cache_hits.load(Relaxed)
        )?;
        Ok(())
    }
}

/// A decimal number written to a debugfs file.
fn parse_u32(r: &mut UserSliceReader) -> Result<u32> {
    let mut buf = [0u8; 16];
    let n = r.len().min(buf.len());
    r.read_slice(&mut buf[..n])?;
    let text = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?;
    text.trim().parse().map_err(|_| EINVAL)
}

/// 0 or 1 written to a debugfs switch.
fn parse_switch(r: &mut UserSliceReader) -> Result<u32> {
    match parse_u32(r)? {
        v @ (0 | 1) => Ok(v),
        _ => Err(EINVAL),
    }
}

/// The debugfs directory `p2pmap/` with `stats`, `inject_retry`,
/// `revoke_latency`, `sync_break`, `extent_cache` and `allow_pin`.
pub(crate) struct Debugfs {
    // Dropped before the directory.
    _stats: Pin<KBox<File<&'static Stats>>>,
    _inject: Pin<KBox<File<&'static Stats>>>,
    _latency: Pin<KBox<File<&'static Stats>>>,
    _sync_break: Pin<KBox<File<&'static Stats>>>,
    _extent_cache: Pin<KBox<File<&'static Stats>>>,
    _allow_pin: Pin<KBox<File<&'static Stats>>>,
    _dir: Dir,
}

impl Debugfs {
    /// Creates `/sys/kernel/debug/p2pmap/stats`.
    pub(crate) fn new() -> Result<Self> {
        let dir = Dir::new(c"p2pmap");
        let stats = KBox::pin_init(
            dir.read_callback_file(c"stats", &STATS, &|s: &&'static Stats, f| s.render(f)),
            GFP_KERNEL,
        )?;
        let inject = KBox::pin_init(
            dir.read_write_callback_file(
                c"inject_retry",
                &STATS,
                &|s: &&'static Stats, f| writeln!(f, "{}", s.inject_retry.load(Relaxed)),
                &|s: &&'static Stats, r: &mut UserSliceReader| {
                    s.inject_retry.store(parse_u32(r)?, Relaxed);
                    Ok(())
                },
            ),
            GFP_KERNEL,
        )?;
        // Reading shows the histograms; writing anything empties them.
        let latency = KBox::pin_init(
            dir.read_write_callback_file(
                c"revoke_latency",
                &STATS,
                &|s: &&'static Stats, f| s.render_latency(f),
                &|s: &&'static Stats, _r: &mut UserSliceReader| {
                    s.reset_latency();
                    Ok(())
                },
            ),
            GFP_KERNEL,
        )?;
        let sync_break = KBox::pin_init(
            dir.read_write_callback_file(
                c"sync_break",
                &STATS,
                &|s: &&'static Stats, f| writeln!(f, "{}", s.sync_break.load(Relaxed)),
                &|s: &&'static Stats, r: &mut UserSliceReader| {
                    s.sync_break.store(parse_switch(r)?, Relaxed);
                    Ok(())
                },
            ),
            GFP_KERNEL,
        )?;
        let extent_cache = KBox::pin_init(
            dir.read_write_callback_file(
                c"extent_cache",
                &STATS,
                &|s: &&'static Stats, f| writeln!(f, "{}", s.extent_cache.load(Relaxed)),
                &|s: &&'static Stats, r: &mut UserSliceReader| {
                    s.extent_cache.store(parse_switch(r)?, Relaxed);
                    Ok(())
                },
            ),
            GFP_KERNEL,
        )?;
        let allow_pin = KBox::pin_init(
            dir.read_write_callback_file(
                c"allow_pin",
                &STATS,
                &|s: &&'static Stats, f| writeln!(f, "{}", s.allow_pin.load(Relaxed)),
                &|s: &&'static Stats, r: &mut UserSliceReader| {
                    s.allow_pin.store(parse_switch(r)?, Relaxed);
                    Ok(())
                },
            ),
            GFP_KERNEL,
        )?;
        Ok(Debugfs {
            _stats: stats,
            _inject: inject,
            _latency: latency,
            _sync_break: sync_break,
            _extent_cache: extent_cache,
            _allow_pin: allow_pin,
            _dir: dir,
        })
    }
}
