// SPDX-License-Identifier: GPL-2.0

//! The errno values p2pmap returns (Linux generic numbering, positive).
//!
//! The module checks them against `kernel::bindings` in its KUnit suite, so a
//! mismatch cannot go unnoticed.

/// Operation not permitted on this mapping.
pub const EACCES: i32 = 13;
/// Resource busy: pages of the range are in use by the CPU.
pub const EBUSY: i32 = 16;
/// Cross-device link: no peer-to-peer route between the devices.
pub const EXDEV: i32 = 18;
/// Bad address: the range is not inside the vma.
pub const EFAULT: i32 = 14;
/// I/O error.
pub const EIO: i32 = 5;
/// No such device or address: `map_blocks` refuses the inode.
pub const ENXIO: i32 = 6;
/// No space: the CMB is full.
pub const ENOSPC: i32 = 28;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// No such device: no data path to the importer.
pub const ENODEV: i32 = 19;
/// Operation not supported.
pub const EOPNOTSUPP: i32 = 95;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// Try again (a lease conflict while taking the layout lease).
pub const EAGAIN: i32 = 11;
/// Text file busy: the file is an active swap file.
pub const ETXTBSY: i32 = 26;
/// Argument list too long: the window would not fit in the CMB at all.
pub const E2BIG: i32 = 7;
/// Operation not permitted: the inode is immutable or append-only.
pub const EPERM: i32 = 1;
/// Read-only filesystem.
pub const EROFS: i32 = 30;
