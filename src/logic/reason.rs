// SPDX-License-Identifier: GPL-2.0

//! Why a `device_map` request was refused.
//!
//! Every refusal has exactly one reason; each reason has a stable name (shown
//! in debugfs and by `p2pctl stat`) and the errno returned to the importer.

use super::errno::{EACCES, EFAULT, EINVAL, ENODEV, EOPNOTSUPP};

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
    /// `DEVICE_MAP_FLAG_PIN`: p2pmap only hands out revocable mappings.
    PinUnsupported,
    /// `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`: PCIe atomics to the CMB are not offered.
    AtomicUnsupported,
    /// `DEVICE_MAP_FLAG_WRITE`: write mappings are not implemented yet.
    WriteUnsupported,
    /// Private vma with write permission: it may hold copy-on-write pages
    /// that the device must not bypass.
    PrivateWritable,
    /// The request is valid, but no data path (CMB staging) is built yet.
    NoDataPath,
}

impl Reason {
    /// Every reason, in the order shown in debugfs.
    pub const ALL: [Reason; 9] = [
        Reason::UnknownFlags,
        Reason::Unaligned,
        Reason::EmptyRange,
        Reason::OutsideVma,
        Reason::PinUnsupported,
        Reason::AtomicUnsupported,
        Reason::WriteUnsupported,
        Reason::PrivateWritable,
        Reason::NoDataPath,
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
            Reason::PinUnsupported => "pin_unsupported",
            Reason::AtomicUnsupported => "atomic_unsupported",
            Reason::WriteUnsupported => "write_unsupported",
            Reason::PrivateWritable => "private_writable",
            Reason::NoDataPath => "no_data_path",
        }
    }

    /// The (positive) errno returned to the importer.
    pub const fn errno(self) -> i32 {
        match self {
            Reason::UnknownFlags | Reason::Unaligned | Reason::EmptyRange => EINVAL,
            Reason::OutsideVma => EFAULT,
            Reason::PinUnsupported | Reason::AtomicUnsupported | Reason::WriteUnsupported => {
                EOPNOTSUPP
            }
            Reason::PrivateWritable => EACCES,
            Reason::NoDataPath => ENODEV,
        }
    }

    /// Position in [`Reason::ALL`], used to index counters.
    pub const fn index(self) -> usize {
        self as usize
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
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            for b in &Reason::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn errnos_are_positive() {
        for r in Reason::ALL {
            assert!(r.errno() > 0);
        }
    }
}
