// SPDX-License-Identifier: GPL-2.0

//! The ioctl ABI, mirroring `tests/include/p2pmap_importer.h`.

use kernel::ioctl::{_IOW, _IOWR};

/// `struct p2pmap_map`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Map {
    pub(crate) addr: u64,
    pub(crate) len: u64,
    pub(crate) flags: u32,
    pub(crate) handle: u32,
    pub(crate) p2p_errno: i32,
    pub(crate) path: u32,
}

/// `struct p2pmap_rw`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Rw {
    pub(crate) handle: u32,
    pub(crate) pad: u32,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) buf: u64,
}

/// `struct p2pmap_status`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Status {
    pub(crate) handle: u32,
    pub(crate) path: u32,
    pub(crate) p2p_errno: i32,
    pub(crate) mapped: u32,
    pub(crate) revoked: u32,
    pub(crate) revoked_by: u32,
    pub(crate) invalidations: u64,
    pub(crate) quiesce_ns: u64,
    pub(crate) len: u64,
}

// No padding anywhere (the `FromBytes`/`AsBytes` impls rely on it).
const _: () = assert!(core::mem::size_of::<Map>() == 32);
const _: () = assert!(core::mem::size_of::<Rw>() == 32);
const _: () = assert!(core::mem::size_of::<Status>() == 48);

/// `P2PMAP_MAP_WRITE` (= `DEVICE_MAP_FLAG_WRITE`).
pub(crate) const MAP_WRITE: u32 = 1 << 1;
/// `P2PMAP_MAP_NO_FALLBACK`.
pub(crate) const MAP_NO_FALLBACK: u32 = 1 << 16;
/// Every flag MAP accepts.
pub(crate) const MAP_FLAGS: u32 = MAP_WRITE | MAP_NO_FALLBACK;

/// `P2PMAP_PATH_P2P`.
pub(crate) const PATH_P2P: u32 = 1;
/// `P2PMAP_PATH_FALLBACK`.
pub(crate) const PATH_FALLBACK: u32 = 2;

const MAGIC: u32 = b'p' as u32;
/// `P2PMAP_IOC_MAP`.
pub(crate) const IOC_MAP: u32 = _IOWR::<Map>(MAGIC, 1);
/// `P2PMAP_IOC_READ`.
pub(crate) const IOC_READ: u32 = _IOW::<Rw>(MAGIC, 2);
/// `P2PMAP_IOC_WRITE`.
pub(crate) const IOC_WRITE: u32 = _IOW::<Rw>(MAGIC, 3);
/// `P2PMAP_IOC_STATUS`.
pub(crate) const IOC_STATUS: u32 = _IOWR::<Status>(MAGIC, 4);
/// `P2PMAP_IOC_UNMAP`.
pub(crate) const IOC_UNMAP: u32 = _IOW::<u32>(MAGIC, 5);
/// `P2PMAP_IOC_UNMAP_AGAIN`.
pub(crate) const IOC_UNMAP_AGAIN: u32 = _IOW::<u32>(MAGIC, 6);
