// SPDX-License-Identifier: GPL-2.0

//! Why a `device_map` request was refused.
//!
//! Every refusal has exactly one reason; each reason has a stable name (shown
//! in debugfs and by `p2pctl stat`) and the errno returned to the importer.

use super::errno::{
    E2BIG, EACCES, EAGAIN, EBUSY, EFAULT, EINVAL, EIO, ENODEV, ENOMEM, ENOSPC, ENXIO, EOPNOTSUPP,
    EPERM, EROFS, ETXTBSY, EXDEV,
};

/// A refusal reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Flags outside `DEVICE_MAP_FLAGS_ALL`.
    UnknownFlags,
    /// `start` or `end` is not page aligned.
    Unaligned,
    /// `start >= end`.
    EmptyRange,
    /// The range is not inside the vma.
    OutsideVma,
    /// `DEVICE_MAP_FLAG_PIN` while the administrator does not allow pinning
    /// (module parameter and debugfs `allow_pin`, default off).
    PinDisabled,
    /// `DEVICE_MAP_FLAG_PIN` without a place for the dma_buf (`bufp` NULL).
    PinNoBuffer,
    /// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP` without `DEVICE_MAP_FLAG_WRITE`:
    /// an AtomicOp writes the memory it targets.
    AtomicWithoutWrite,
    /// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`: the NVMe function owning the
    /// CMB does not complete 32- and 64-bit PCIe AtomicOps.
    AtomicCompleter,
    /// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`: a switch port between the
    /// importer and the CMB does not route AtomicOps.
    AtomicRouting,
    /// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`: a switch port on the way to the
    /// CMB blocks AtomicOp egress.
    AtomicEgressBlocked,
    /// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`: the importer cannot issue
    /// AtomicOps (conventional PCI) or its driver has not enabled them.
    AtomicRequester,
    /// `DEVICE_MAP_FLAG_WRITE` on a private vma: the device would write the
    /// file's blocks behind copy-on-write pages.
    WritePrivate,
    /// `DEVICE_MAP_FLAG_WRITE` on a vma without `VM_WRITE` (a read-only
    /// mapping, or one of a file opened read-only, which cannot be made
    /// writable).
    WriteVmaReadOnly,
    /// `DEVICE_MAP_FLAG_WRITE`: the file is not open for writing.
    WriteFdReadOnly,
    /// `DEVICE_MAP_FLAG_WRITE`: the inode is immutable.
    WriteImmutable,
    /// `DEVICE_MAP_FLAG_WRITE`: the inode is append-only (a device write
    /// could change bytes before EOF).
    WriteAppendOnly,
    /// `DEVICE_MAP_FLAG_WRITE`: the filesystem or the mount is read-only.
    WriteFsReadOnly,
    /// `DEVICE_MAP_FLAG_WRITE`: the filesystem is frozen.
    WriteFsFrozen,
    /// `DEVICE_MAP_FLAG_WRITE`: another write mapping of the file, not
    /// given back yet, covers part of the range but not all of it: two
    /// windows written back in either order would undo each other's bytes.
    WriteOverlap,
    /// `DEVICE_MAP_FLAG_WRITE`: the filesystem has no space for the blocks
    /// of the range (`map_blocks(write)` failed with `ENOSPC`).
    NoSpace,
    /// Private vma with write permission: it may hold copy-on-write pages
    /// that the device must not bypass.
    PrivateWritable,
    /// DAX file: no page cache to bypass, no block device to stage from.
    Dax,
    /// The filesystem has no export block ops (`map_blocks`), e.g. ext4.
    NoBlockOps,
    /// An active swap file: the swap code does I/O to its blocks directly,
    /// bypassing the filesystem and every lease.
    Swapfile,
    /// The filesystem's block device is not an NVMe function whose CMB is
    /// published as P2P memory.
    NoP2pProvider,
    /// The CMB is not reachable peer to peer from the importer
    /// (`pci_p2pdma_distance` refuses).
    NoP2pPath,
    /// P2P between the CMB and the importer goes through a host bridge
    /// (allow-listed, or ACS redirection on the way): the importer would need
    /// a DMA mapping, not the CMB's PCI bus addresses.
    HostBridgeRoute,
    /// Pages of the range stay in the page cache (dirty, mapped by the CPU
    /// or locked): the device must see what the CPU sees.
    PageCacheResident,
    /// The range ends past EOF rounded up to the page size.
    PastEof,
    /// `map_blocks` refuses the inode: shared extents (reflink) or a
    /// realtime inode (`-ENXIO`).
    Reflinked,
    /// An extent type p2pmap cannot stage (delalloc, inline).
    ExtentUnsupported,
    /// `map_blocks` failed otherwise.
    MapBlocksFailed,
    /// No room in the CMB for the window.
    CmbFull,
    /// The window is larger than the whole CMB: nothing is revoked for it.
    TooLarge,
    /// Reading the blocks into the CMB failed.
    ReadFailed,
    /// The inode's layout lease is being broken (its block map is about to
    /// change): try again later.
    LeaseBroken,
    /// The CPU wrote the file through a shared mapping while the range was
    /// being staged (`filemap_device_mkwrite`): the staged copy may be
    /// stale and was thrown away.
    CpuWrite,
    /// The filesystem refused a layout lease: leases are disabled
    /// (`fs.leases-enable = 0`) or the file has no `setlease`. Without a
    /// lease p2pmap would not learn of truncate or `write()`.
    LeasesDisabled,
    /// No memory for the layout lease.
    NoMemory,
    /// Taking the layout lease failed otherwise (opening p2pmap's own file
    /// for it, e.g. `ENFILE` or a security module's denial).
    LeaseFailed,
    /// The filesystem failed with an I/O error while p2pmap took its
    /// layout lease (XFS after a forced shutdown fails every open):
    /// retrying will not help.
    FsError,
}

impl Reason {
    /// Every reason, in the order shown in debugfs.
    pub const ALL: [Reason; 41] = [
        Reason::UnknownFlags,
        Reason::Unaligned,
        Reason::EmptyRange,
        Reason::OutsideVma,
        Reason::PinDisabled,
        Reason::PinNoBuffer,
        Reason::AtomicWithoutWrite,
        Reason::AtomicCompleter,
        Reason::AtomicRouting,
        Reason::AtomicEgressBlocked,
        Reason::AtomicRequester,
        Reason::WritePrivate,
        Reason::WriteVmaReadOnly,
        Reason::WriteFdReadOnly,
        Reason::WriteImmutable,
        Reason::WriteAppendOnly,
        Reason::WriteFsReadOnly,
        Reason::WriteFsFrozen,
        Reason::WriteOverlap,
        Reason::NoSpace,
        Reason::PrivateWritable,
        Reason::Dax,
        Reason::NoBlockOps,
        Reason::Swapfile,
        Reason::NoP2pProvider,
        Reason::NoP2pPath,
        Reason::HostBridgeRoute,
        Reason::PageCacheResident,
        Reason::PastEof,
        Reason::Reflinked,
        Reason::ExtentUnsupported,
        Reason::MapBlocksFailed,
        Reason::CmbFull,
        Reason::TooLarge,
        Reason::ReadFailed,
        Reason::LeaseBroken,
        Reason::CpuWrite,
        Reason::LeasesDisabled,
        Reason::NoMemory,
        Reason::LeaseFailed,
        Reason::FsError,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable name, as printed in debugfs (`refused_<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            Reason::UnknownFlags => "unknown_flags",
            Reason::Unaligned => "unaligned",
            Reason::EmptyRange => "empty_range",
            Reason::OutsideVma => "outside_vma",
            Reason::PinDisabled => "pin_disabled",
            Reason::PinNoBuffer => "pin_no_buffer",
            Reason::AtomicWithoutWrite => "atomic_without_write",
            Reason::AtomicCompleter => "atomic_completer",
            Reason::AtomicRouting => "atomic_routing",
            Reason::AtomicEgressBlocked => "atomic_egress_blocked",
            Reason::AtomicRequester => "atomic_requester",
            Reason::WritePrivate => "write_private",
            Reason::WriteVmaReadOnly => "write_vma_read_only",
            Reason::WriteFdReadOnly => "write_fd_read_only",
            Reason::WriteImmutable => "write_immutable",
            Reason::WriteAppendOnly => "write_append_only",
            Reason::WriteFsReadOnly => "write_fs_read_only",
            Reason::WriteFsFrozen => "write_fs_frozen",
            Reason::WriteOverlap => "write_overlap",
            Reason::NoSpace => "no_space",
            Reason::PrivateWritable => "private_writable",
            Reason::Dax => "dax",
            Reason::NoBlockOps => "no_block_ops",
            Reason::Swapfile => "swapfile",
            Reason::NoP2pProvider => "no_p2p_provider",
            Reason::NoP2pPath => "no_p2p_path",
            Reason::HostBridgeRoute => "host_bridge_route",
            Reason::PageCacheResident => "page_cache_resident",
            Reason::PastEof => "past_eof",
            Reason::Reflinked => "reflinked",
            Reason::ExtentUnsupported => "extent_unsupported",
            Reason::MapBlocksFailed => "map_blocks_failed",
            Reason::CmbFull => "cmb_full",
            Reason::TooLarge => "too_large",
            Reason::ReadFailed => "read_failed",
            Reason::LeaseBroken => "lease_broken",
            Reason::CpuWrite => "cpu_write",
            Reason::LeasesDisabled => "leases_disabled",
            Reason::NoMemory => "no_memory",
            Reason::LeaseFailed => "lease_failed",
            Reason::FsError => "fs_error",
        }
    }

    /// The (positive) errno returned to the importer.
    pub const fn errno(self) -> i32 {
        match self {
            Reason::UnknownFlags
            | Reason::Unaligned
            | Reason::EmptyRange
            | Reason::AtomicWithoutWrite
            | Reason::PinNoBuffer => EINVAL,
            Reason::OutsideVma => EFAULT,
            Reason::PinDisabled
            | Reason::AtomicCompleter
            | Reason::AtomicRouting
            | Reason::AtomicEgressBlocked
            | Reason::AtomicRequester
            | Reason::Dax
            | Reason::NoBlockOps
            | Reason::ExtentUnsupported
            | Reason::LeasesDisabled => EOPNOTSUPP,
            Reason::NoMemory => ENOMEM,
            Reason::LeaseFailed => EBUSY,
            Reason::PrivateWritable
            | Reason::WritePrivate
            | Reason::WriteVmaReadOnly
            | Reason::WriteFdReadOnly => EACCES,
            Reason::WriteImmutable | Reason::WriteAppendOnly => EPERM,
            Reason::WriteFsReadOnly => EROFS,
            Reason::WriteFsFrozen | Reason::WriteOverlap => EBUSY,
            Reason::LeaseBroken => EBUSY,
            Reason::NoP2pProvider => ENODEV,
            Reason::PastEof => EINVAL,
            Reason::Reflinked => ENXIO,
            Reason::MapBlocksFailed | Reason::ReadFailed | Reason::FsError => EIO,
            Reason::CmbFull | Reason::NoSpace => ENOSPC,
            Reason::TooLarge => E2BIG,
            Reason::NoP2pPath | Reason::HostBridgeRoute => EXDEV,
            Reason::PageCacheResident | Reason::CpuWrite => EBUSY,
            Reason::Swapfile => ETXTBSY,
        }
    }

    /// Position in [`Reason::ALL`], used to index counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The refusal for a failure (positive errno) to take the layout lease
    /// (`kernel_setlease()`, `generic_add_lease()`, p2pmap's own lease code).
    pub const fn of_lease_error(errno: i32) -> Reason {
        match errno {
            // p2pmap's lease of the inode is being broken, or another
            // break is pending: the block map is changing.
            EBUSY | EAGAIN => Reason::LeaseBroken,
            // generic_add_lease() with fs.leases-enable = 0, or
            // kernel_setlease() on a file without ->setlease.
            EINVAL => Reason::LeasesDisabled,
            ENOMEM => Reason::NoMemory,
            // The filesystem is broken (XFS shut down): not worth a retry.
            EIO => Reason::FsError,
            _ => Reason::LeaseFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn names_are_unique_and_simple() {
        for (i, a) in Reason::ALL.iter().enumerate() {
            assert!(a
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            for b in &Reason::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn lease_errors_have_their_own_reasons() {
        assert_eq!(Reason::of_lease_error(EBUSY), Reason::LeaseBroken);
        assert_eq!(Reason::of_lease_error(EAGAIN), Reason::LeaseBroken);
        assert_eq!(Reason::of_lease_error(EINVAL), Reason::LeasesDisabled);
        assert_eq!(Reason::of_lease_error(ENOMEM), Reason::NoMemory);
        assert_eq!(Reason::of_lease_error(EACCES), Reason::LeaseFailed);
        assert_eq!(Reason::of_lease_error(EIO), Reason::FsError);
        assert_eq!(Reason::FsError.errno(), EIO);
        assert_eq!(Reason::LeasesDisabled.errno(), EOPNOTSUPP);
        assert_eq!(Reason::NoMemory.errno(), ENOMEM);
    }

    #[test]
    fn errnos_are_positive() {
        for r in Reason::ALL {
            assert!(r.errno() > 0);
        }
    }
}
