// SPDX-License-Identifier: GPL-2.0

//! `device_map` timed from the kernel (issue 16, the scale benchmark): the
//! latency of the call itself, without the ioctl, the importer's interval
//! notifier or its page array around it. On a range already staged and
//! held by a mapping, each call is p2pmap's fast path.

use kernel::{
    alloc::KVVec,
    bindings,
    page::PAGE_SIZE,
    prelude::*, //
};

use crate::{
    edu::Edu,
    ffi,
    uapi, //
};

/// `P2PMAP_IOC_TIME_DEVICE_MAP` (see the ABI header).
pub(crate) fn time_device_map(edu: &Edu, req: &mut uapi::TimeMap) -> Result {
    let page = PAGE_SIZE as u64;
    if req.count == 0
        || req.count > uapi::TIME_MAX_COUNT
        || req.len == 0
        || req.len % page != 0
        || req.len / page > u64::from(uapi::TIME_MAX_PAGES)
    {
        return Err(EINVAL);
    }
    let addr = usize::try_from(req.addr)?;
    let len = usize::try_from(req.len)?;
    let end = addr.checked_add(len).ok_or(EINVAL)?;
    let mm = ffi::current_mm().ok_or(EINVAL)?;
    if mm.mmap_read_lock().vma_lookup(addr).is_none() {
        return Err(EFAULT);
    }
    let count = usize::try_from(req.count)?;
    let mut pa = KVec::<bindings::dma_addr_t>::from_elem(0, len / PAGE_SIZE, GFP_KERNEL)?;
    let mut samples = KVVec::<u64>::with_capacity(count, GFP_KERNEL)?;
    req.first_errno = 0;
    for _ in 0..count {
        let mut ns = 0u64;
        let ret = ffi::raw_device_map(
            &mm,
            addr,
            edu.device(),
            addr,
            end,
            0,
            false,
            &mut pa,
            Some(&mut ns),
        );
        if ret == 0 {
            // Cannot fail: the capacity is `count`.
            samples.push_within_capacity(ns).map_err(|_| ENOMEM)?;
        } else if req.first_errno == 0 {
            req.first_errno = ret;
        }
    }
    samples.sort_unstable();
    req.served = u32::try_from(samples.len())?;
    (req.p50_ns, req.p99_ns, req.max_ns) = (
        nearest_rank(&samples, 50),
        nearest_rank(&samples, 99),
        samples.last().copied().unwrap_or(0),
    );
    Ok(())
}

/// The `pct`th percentile of sorted `v` by nearest rank; 0 if empty.
fn nearest_rank(v: &[u64], pct: usize) -> u64 {
    let rank = (v.len() * pct).div_ceil(100).max(1);
    v.get(rank - 1).copied().unwrap_or(0)
}
