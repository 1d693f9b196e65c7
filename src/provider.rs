// SPDX-License-Identifier: GPL-2.0

//! The `device_map` provider: policy only, no `unsafe`.
//!
//! Every request is validated and every refusal counted with its reason:
//! request checks, then the filesystem, block-device and page-cache vetoes.
//! The data path (resolving blocks with `map_blocks` and staging them in the
//! NVMe CMB) is not built yet: a request that passes every check is refused
//! with [`Reason::NoDataPath`] (`-ENODEV`), and the importer falls back to
//! the page cache.

use kernel::prelude::*;

use crate::{
    ffi::{MapCall, MapFailure, Provider, UnmapCall, ValidMapCall},
    logic::reason::Reason,
    stats::STATS,
};

/// p2pmap's implementation of the provider hook.
pub(crate) struct P2pProvider;

impl Provider for P2pProvider {
    fn map(call: MapCall<'_>) -> Result<(), MapFailure> {
        STATS.map_called();
        let call = call.validate().map_err(|r| STATS.refuse(r))?;
        check_path(&call).map_err(|r| STATS.refuse(r))?;
        if STATS.take_injected_retry() {
            // The slow path the data path will take to call map_blocks:
            // leave mmap_lock, take i_rwsem, ask the caller to retry.
            let slow = call.release_mmap_lock().map_err(|r| STATS.refuse(r))?;
            slow.with_inode_lock_shared(|| ());
            STATS.lock_dropped();
            return Err(MapFailure::Retry(slow.retry()));
        }
        dev_dbg!(
            call.importer(),
            "p2pmap: device_map of {} pages at vma offset {:#x}\n",
            call.request().pages,
            call.request().vma_offset
        );
        Err(STATS.refuse(Reason::NoDataPath).into())
    }

    fn unmap(call: UnmapCall<'_>) {
        STATS.unmap_called();
        let (start, end) = call.range();
        dev_dbg!(
            call.importer(),
            "p2pmap: device_unmap of {:#x}..{:#x}\n",
            start,
            end
        );
    }
}

/// The filesystem and block-device vetoes, in the order the seed proposal
/// gives them: the filesystem (block ops), the block device (a published
/// CMB reachable from the importer), then the page cache.
fn check_path(call: &ValidMapCall<'_>) -> Result<(), Reason> {
    // A file vma always has a file; treat anything else like ext4.
    let file = call.file().ok_or(Reason::NoBlockOps)?;
    if file.is_dax() {
        return Err(Reason::Dax);
    }
    if !file.has_block_ops() {
        return Err(Reason::NoBlockOps);
    }
    let nvme = file.pci_dev().ok_or(Reason::NoP2pProvider)?;
    if !nvme.publishes_p2pmem() {
        return Err(Reason::NoP2pProvider);
    }
    nvme.p2p_distance(call.importer())
        .ok_or(Reason::NoP2pPath)?;
    let (start, end) = call.file_range();
    if file.drop_clean_cache(start, end) {
        return Err(Reason::PageCacheResident);
    }
    Ok(())
}

#[kunit_tests(p2pmap)]
mod tests {
    use crate::ffi::kernel_flags;
    use crate::logic::{errno, reason::Reason, request};
    use crate::stats::Stats;
    use kernel::bindings;

    #[test]
    fn flags_match_the_kernel() {
        assert_eq!(request::FLAG_PIN, kernel_flags::PIN);
        assert_eq!(request::FLAG_WRITE, kernel_flags::WRITE);
        assert_eq!(
            request::FLAG_SUPPORT_ATOMIC_OP,
            kernel_flags::SUPPORT_ATOMIC_OP
        );
        assert_eq!(request::FLAGS_ALL, kernel_flags::ALL);
    }

    #[test]
    fn errnos_match_the_kernel() {
        assert_eq!(errno::EACCES, bindings::EACCES as i32);
        assert_eq!(errno::EBUSY, bindings::EBUSY as i32);
        assert_eq!(errno::EXDEV, bindings::EXDEV as i32);
        assert_eq!(errno::EFAULT, bindings::EFAULT as i32);
        assert_eq!(errno::EINVAL, bindings::EINVAL as i32);
        assert_eq!(errno::ENODEV, bindings::ENODEV as i32);
        assert_eq!(errno::EOPNOTSUPP, bindings::EOPNOTSUPP as i32);
    }

    #[test]
    fn refusal_is_counted_and_converted() {
        let stats = Stats::new();
        for r in Reason::ALL {
            let err = stats.refuse(r);
            assert_eq!(err.to_errno(), -r.errno());
            assert_eq!(stats.refused(r), 1);
        }
    }
}
