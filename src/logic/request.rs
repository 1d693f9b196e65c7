// SPDX-License-Identifier: GPL-2.0

//! Validation of a `device_map` request against its vma.

use super::reason::Reason;

/// `DEVICE_MAP_FLAG_PIN` (include/linux/mm.h).
pub const FLAG_PIN: u32 = 1 << 0;
/// `DEVICE_MAP_FLAG_WRITE`.
pub const FLAG_WRITE: u32 = 1 << 1;
/// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`.
pub const FLAG_SUPPORT_ATOMIC_OP: u32 = 1 << 2;
/// `DEVICE_MAP_FLAGS_ALL`.
pub const FLAGS_ALL: u32 = FLAG_PIN | FLAG_WRITE | FLAG_SUPPORT_ATOMIC_OP;

/// What validation needs to know about the vma.
#[derive(Clone, Copy, Debug)]
pub struct VmaInfo {
    /// `vm_start`.
    pub start: u64,
    /// `vm_end`.
    pub end: u64,
    /// `VM_SHARED`.
    pub shared: bool,
    /// `VM_MAYSHARE`: mapped `MAP_SHARED` (a shared mapping of a file
    /// opened read-only has it, but not `VM_SHARED`).
    pub may_share: bool,
    /// `VM_WRITE`.
    pub writable: bool,
}

/// A `device_map` request.
#[derive(Clone, Copy, Debug)]
pub struct MapRequest {
    /// First address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// `DEVICE_MAP_FLAG_*`.
    pub flags: u32,
}

/// A request that passed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidRequest {
    /// Offset of `start` from `vm_start`, in bytes.
    pub vma_offset: u64,
    /// Number of pages in the range (entries of `pa`).
    pub pages: u64,
    /// The request's `DEVICE_MAP_FLAG_*`.
    pub flags: u32,
}

/// Checks `req` against `vma`, in the order a caller would fix its mistakes:
/// flags, alignment, emptiness, bounds, then what p2pmap does not offer.
/// `FLAG_SUPPORT_ATOMIC_OP` passes with `FLAG_WRITE` (an AtomicOp writes
/// the memory it targets), for the PCIe fabric to decide (see
/// [`super::atomic`]); `FLAG_WRITE` passes, for the provider to refuse
/// after the path checks (write mappings are not implemented yet);
/// `FLAG_PIN` passes, for the provider's policy (`allow_pin`).
pub fn validate(vma: &VmaInfo, req: &MapRequest, page_size: u64) -> Result<ValidRequest, Reason> {
    if req.flags & !FLAGS_ALL != 0 {
        return Err(Reason::UnknownFlags);
    }
    if page_size == 0 || req.start % page_size != 0 || req.end % page_size != 0 {
        return Err(Reason::Unaligned);
    }
    if req.start >= req.end {
        return Err(Reason::EmptyRange);
    }
    if req.start < vma.start || req.end > vma.end {
        return Err(Reason::OutsideVma);
    }
    if req.flags & FLAG_SUPPORT_ATOMIC_OP != 0 && req.flags & FLAG_WRITE == 0 {
        return Err(Reason::AtomicWithoutWrite);
    }
    if req.flags & FLAG_WRITE != 0 && !vma.may_share {
        return Err(Reason::WritePrivate);
    }
    if req.flags & FLAG_WRITE != 0 && !vma.writable {
        return Err(Reason::WriteVmaReadOnly);
    }
    if !vma.shared && vma.writable {
        return Err(Reason::PrivateWritable);
    }
    Ok(ValidRequest {
        vma_offset: req.start - vma.start,
        pages: (req.end - req.start) / page_size,
        flags: req.flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: u64 = 4096;
    const VMA: VmaInfo = VmaInfo {
        start: 0x10_0000,
        end: 0x20_0000,
        shared: true,
        may_share: true,
        writable: false,
    };

    fn req(start: u64, end: u64, flags: u32) -> MapRequest {
        MapRequest { start, end, flags }
    }

    #[test]
    fn accepts_whole_vma_and_subranges() {
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.end, 0), PS),
            Ok(ValidRequest {
                vma_offset: 0,
                pages: 256,
                flags: 0,
            })
        );
        assert_eq!(
            validate(&VMA, &req(VMA.start + PS, VMA.start + 3 * PS, 0), PS),
            Ok(ValidRequest {
                vma_offset: PS,
                pages: 2,
                flags: 0,
            })
        );
    }

    #[test]
    fn refuses_bad_ranges() {
        assert_eq!(
            validate(&VMA, &req(VMA.start + 1, VMA.end, 0), PS),
            Err(Reason::Unaligned)
        );
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.end - 1, 0), PS),
            Err(Reason::Unaligned)
        );
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.start, 0), PS),
            Err(Reason::EmptyRange)
        );
        assert_eq!(
            validate(&VMA, &req(VMA.end, VMA.start, 0), PS),
            Err(Reason::EmptyRange)
        );
        assert_eq!(
            validate(&VMA, &req(VMA.start - PS, VMA.end, 0), PS),
            Err(Reason::OutsideVma)
        );
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.end + PS, 0), PS),
            Err(Reason::OutsideVma)
        );
        // An end that wrapped around is caught as empty, not as huge.
        let wrapped = VMA.start.wrapping_add(u64::MAX - PS + 1);
        assert_eq!(
            validate(&VMA, &req(VMA.start, wrapped, 0), PS),
            Err(Reason::EmptyRange)
        );
        assert_eq!(validate(&VMA, &req(0, 0, 0), 0), Err(Reason::Unaligned));
    }

    #[test]
    fn refuses_flags() {
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.end, 1 << 3), PS),
            Err(Reason::UnknownFlags)
        );
        // Left to the provider's policy.
        assert!(validate(&VMA, &req(VMA.start, VMA.end, FLAG_PIN), PS).is_ok());
        // An AtomicOp writes: it needs a write mapping.
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.end, FLAG_SUPPORT_ATOMIC_OP), PS),
            Err(Reason::AtomicWithoutWrite)
        );
        // Left to the provider (write) and the fabric (atomics).
        let both = FLAG_SUPPORT_ATOMIC_OP | FLAG_WRITE;
        let rw = VmaInfo {
            writable: true,
            ..VMA
        };
        assert_eq!(
            validate(&rw, &req(VMA.start, VMA.end, both), PS).map(|v| v.flags),
            Ok(both)
        );
        // VMA is read-only.
        assert_eq!(
            validate(&VMA, &req(VMA.start, VMA.end, FLAG_WRITE), PS),
            Err(Reason::WriteVmaReadOnly)
        );
        let rw = VmaInfo {
            writable: true,
            ..VMA
        };
        assert!(validate(&rw, &req(VMA.start, VMA.end, FLAG_WRITE), PS).is_ok());
        let private = VmaInfo {
            shared: false,
            may_share: false,
            ..VMA
        };
        assert_eq!(
            validate(&private, &req(VMA.start, VMA.end, FLAG_WRITE), PS),
            Err(Reason::WritePrivate)
        );
        // MAP_SHARED of a read-only fd: VM_MAYSHARE without VM_SHARED.
        let ro_fd = VmaInfo {
            shared: false,
            ..VMA
        };
        assert_eq!(
            validate(&ro_fd, &req(VMA.start, VMA.end, FLAG_WRITE), PS),
            Err(Reason::WriteVmaReadOnly)
        );
    }

    #[test]
    fn flag_errors_win_over_range_errors() {
        assert_eq!(
            validate(&VMA, &req(1, 0, 1 << 9), PS),
            Err(Reason::UnknownFlags)
        );
    }

    #[test]
    fn private_vmas() {
        let ro = VmaInfo {
            shared: false,
            may_share: false,
            writable: false,
            ..VMA
        };
        let rw = VmaInfo {
            shared: false,
            may_share: false,
            writable: true,
            ..VMA
        };
        assert!(validate(&ro, &req(VMA.start, VMA.end, 0), PS).is_ok());
        assert_eq!(
            validate(&rw, &req(VMA.start, VMA.end, 0), PS),
            Err(Reason::PrivateWritable)
        );
        let shared_rw = VmaInfo {
            writable: true,
            ..VMA
        };
        assert!(validate(&shared_rw, &req(VMA.start, VMA.end, 0), PS).is_ok());
    }
}
