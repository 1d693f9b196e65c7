// SPDX-License-Identifier: GPL-2.0

//! The ioctl ABI: `tests/include/p2pmap_importer.h`, the one copy the C
//! tests, this driver and p2pctl share, through bindgen (`Kbuild`; the
//! ioctl numbers come from `p2pmap_importer_consts.h`).

use crate::ffi::abi;
pub(crate) use crate::ffi::abi::{
    p2pmap_fuzz as Fuzz,
    p2pmap_import as Import,
    p2pmap_map as Map,
    p2pmap_rw as Rw,
    p2pmap_status as Status,
    p2pmap_time_map as TimeMap, //
};

// No padding anywhere (the `FromBytes`/`AsBytes` impls rely on it).
const _: () = assert!(core::mem::size_of::<Map>() == 32);
const _: () = assert!(core::mem::size_of::<Rw>() == 32);
const _: () = assert!(core::mem::size_of::<Status>() == 48);
const _: () = assert!(core::mem::size_of::<Fuzz>() == 64);
const _: () = assert!(core::mem::size_of::<TimeMap>() == 56);
const _: () = assert!(core::mem::size_of::<Import>() == 24);

/// `P2PMAP_MAP_WRITE` (= `DEVICE_MAP_FLAG_WRITE`).
pub(crate) const MAP_WRITE: u32 = abi::P2PMAP_MAP_WRITE;
/// `P2PMAP_MAP_ATOMIC` (= `DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP`).
pub(crate) const MAP_ATOMIC: u32 = abi::P2PMAP_MAP_ATOMIC;
/// `P2PMAP_MAP_NO_FALLBACK`.
pub(crate) const MAP_NO_FALLBACK: u32 = abi::P2PMAP_MAP_NO_FALLBACK;
/// Every flag MAP accepts.
pub(crate) const MAP_FLAGS: u32 = MAP_WRITE | MAP_ATOMIC | MAP_NO_FALLBACK;
/// The flags MAP passes through to `device_map()`.
pub(crate) const MAP_DEVICE_FLAGS: u32 = MAP_WRITE | MAP_ATOMIC;
const _: () = assert!(
    MAP_WRITE == crate::ffi::device_map_flag::WRITE
        && MAP_ATOMIC == crate::ffi::device_map_flag::SUPPORT_ATOMIC_OP
);

/// `P2PMAP_IOC_MAP`.
pub(crate) const IOC_MAP: u32 = abi::P2PMAP_IOCTL_MAP;
/// `P2PMAP_IOC_READ`.
pub(crate) const IOC_READ: u32 = abi::P2PMAP_IOCTL_READ;
/// `P2PMAP_IOC_WRITE`.
pub(crate) const IOC_WRITE: u32 = abi::P2PMAP_IOCTL_WRITE;
/// `P2PMAP_IOC_STATUS`.
pub(crate) const IOC_STATUS: u32 = abi::P2PMAP_IOCTL_STATUS;
/// `P2PMAP_IOC_UNMAP`.
pub(crate) const IOC_UNMAP: u32 = abi::P2PMAP_IOCTL_UNMAP;
/// `P2PMAP_IOC_UNMAP_AGAIN`.
pub(crate) const IOC_UNMAP_AGAIN: u32 = abi::P2PMAP_IOCTL_UNMAP_AGAIN;
/// `P2PMAP_IOC_INJECT_TIMEOUT`.
pub(crate) const IOC_INJECT_TIMEOUT: u32 = abi::P2PMAP_IOCTL_INJECT_TIMEOUT;
/// `P2PMAP_IOC_FUZZ_DEVICE_MAP`.
pub(crate) const IOC_FUZZ_DEVICE_MAP: u32 = abi::P2PMAP_IOCTL_FUZZ_DEVICE_MAP;
/// `P2PMAP_FUZZ_MAX_COUNT`.
pub(crate) const FUZZ_MAX_COUNT: u32 = abi::P2PMAP_FUZZ_MAX_COUNT;
/// `P2PMAP_IOC_MAP_PIN`.
pub(crate) const IOC_MAP_PIN: u32 = abi::P2PMAP_IOCTL_MAP_PIN;
/// `P2PMAP_IOC_PIN_FD`.
pub(crate) const IOC_PIN_FD: u32 = abi::P2PMAP_IOCTL_PIN_FD;
/// `P2PMAP_IOC_IMPORT`.
pub(crate) const IOC_IMPORT: u32 = abi::P2PMAP_IOCTL_IMPORT;
/// `P2PMAP_IMPORT_STATIC | P2PMAP_IMPORT_NO_P2P`.
pub(crate) const IMPORT_FLAGS: u32 = abi::P2PMAP_IMPORT_STATIC | abi::P2PMAP_IMPORT_NO_P2P;
/// `P2PMAP_PATH_PINNED`.
pub(crate) const PATH_PINNED: u32 = abi::P2PMAP_PATH_PINNED;
/// `P2PMAP_IOC_TIME_DEVICE_MAP`.
pub(crate) const IOC_TIME_DEVICE_MAP: u32 = abi::P2PMAP_IOCTL_TIME_DEVICE_MAP;
/// `P2PMAP_TIME_MAX_COUNT`.
pub(crate) const TIME_MAX_COUNT: u32 = abi::P2PMAP_TIME_MAX_COUNT;
/// `P2PMAP_TIME_MAX_PAGES`.
pub(crate) const TIME_MAX_PAGES: u32 = abi::P2PMAP_TIME_MAX_PAGES;
