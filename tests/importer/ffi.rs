// SPDX-License-Identifier: GPL-2.0

//! The importer's unsafe boundary: mmu interval notifiers, the call of
//! `vm_ops->device_map`/`device_unmap`, `hmm_range_fault()`, streaming DMA
//! mappings and the ioctl structures. Everything else is safe code.

use core::{marker::PhantomPinned, ptr};
use kernel::{
    bindings, device,
    error::to_result,
    ffi::c_ulong,
    fs::File,
    miscdevice::MiscDeviceRegistration,
    mm::{Mm, MmWithUser, MmapReadGuard},
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    transmute::{AsBytes, FromBytes},
    types::Opaque,
};

use crate::{edu::Edu, uapi, ImporterData, ImporterFile};

#[allow(
    unsafe_op_in_unsafe_fn,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    unreachable_pub,
    improper_ctypes,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod ext {
    use kernel::bindings::*;
    use kernel::ffi;
    include!("importer_generated.rs");
}

/// The ioctl ABI's generated items (see `uapi`).
pub(crate) mod abi {
    pub(crate) use super::ext::{
        p2pmap_map,
        p2pmap_rw,
        p2pmap_status,
        P2PMAP_IOCTL_MAP,
        P2PMAP_IOCTL_READ,
        P2PMAP_IOCTL_STATUS,
        P2PMAP_IOCTL_UNMAP,
        P2PMAP_IOCTL_UNMAP_AGAIN,
        P2PMAP_IOCTL_WRITE,
        P2PMAP_MAP_NO_FALLBACK,
        P2PMAP_MAP_WRITE,
        P2PMAP_PATH_FALLBACK,
        P2PMAP_PATH_P2P, //
    };
}

// SAFETY: `repr(C)` structs of integers without padding (checked by the
// const assertions in `uapi`); every bit pattern is valid.
unsafe impl FromBytes for uapi::Map {}
// SAFETY: as above; no padding, so every byte is initialized.
unsafe impl AsBytes for uapi::Map {}
// SAFETY: as above.
unsafe impl FromBytes for uapi::Rw {}
// SAFETY: as above.
unsafe impl FromBytes for uapi::Status {}
// SAFETY: as above.
unsafe impl AsBytes for uapi::Status {}

/// The raw `struct device` of `dev`, as the C callbacks want it.
fn raw_dev(dev: &device::Device) -> *mut bindings::device {
    // `device::Device` is a transparent wrapper of `struct device` (its
    // `as_raw` is crate-private), so the cast keeps the address.
    ptr::from_ref(dev).cast_mut().cast()
}

#[path = "../../bindings/layout_check.rs"]
mod layout_check;

/// Checks the layouts the importer relies on (see `layout_check`).
pub(crate) fn check_layouts() -> Result {
    use core::mem::{offset_of, size_of};
    use layout_check::Item;
    let items = [
        Item {
            name: "sizeof(struct mmu_interval_notifier)",
            item: ext::IMPORTER_SZ_INTERVAL_NOTIFIER,
            rust: size_of::<bindings::mmu_interval_notifier>(),
        },
        Item {
            name: "sizeof(struct hmm_range)",
            item: ext::IMPORTER_SZ_HMM_RANGE,
            rust: size_of::<ext::hmm_range>(),
        },
        Item {
            name: "sizeof(struct vm_area_struct)",
            item: ext::IMPORTER_SZ_VMA,
            rust: size_of::<bindings::vm_area_struct>(),
        },
        Item {
            name: "sizeof(struct mm_struct)",
            item: ext::IMPORTER_SZ_MM,
            rust: size_of::<bindings::mm_struct>(),
        },
        Item {
            name: "offsetof(struct vm_area_struct, vm_ops)",
            item: ext::IMPORTER_OFF_VMA_VM_OPS,
            rust: offset_of!(bindings::vm_area_struct, vm_ops),
        },
        Item {
            name: "offsetof(struct vm_area_struct, vm_file)",
            item: ext::IMPORTER_OFF_VMA_VM_FILE,
            rust: offset_of!(bindings::vm_area_struct, vm_file),
        },
        Item {
            name: "offsetof(struct vm_operations_struct, device_map)",
            item: ext::IMPORTER_OFF_VM_OPS_DEVICE_MAP,
            rust: offset_of!(bindings::vm_operations_struct, device_map),
        },
        Item {
            name: "offsetof(struct vm_operations_struct, device_unmap)",
            item: ext::IMPORTER_OFF_VM_OPS_DEVICE_UNMAP,
            rust: offset_of!(bindings::vm_operations_struct, device_unmap),
        },
    ];
    // SAFETY: `importer_layout` only returns constants.
    layout_check::check(&items, |i| unsafe { ext::importer_layout(i as i32) as u64 })
}

/// The device state of the edu function whose misc device `misc` is.
pub(crate) fn edu_of(misc: &MiscDeviceRegistration<ImporterFile>) -> &Arc<Edu> {
    let misc = ptr::from_ref(misc);
    // SAFETY: every `MiscDeviceRegistration<ImporterFile>` is the `misc`
    // field of a pinned `ImporterData` (the only place one is created), and
    // the registration (hence the `ImporterData`) is alive while its open
    // callback runs.
    let data = unsafe { &*kernel::container_of!(misc, ImporterData, misc) };
    &data.edu
}

/// A reference on the calling process's mm, or `None` for a kernel thread.
///
/// `kernel::current!().mm()` must not be used: it reads `task_struct::mm`
/// at rust/bindings' offset, which differs from the C layout in this build
/// (see `importer_current_mm()` in importer_shim.h).
pub(crate) fn current_mm() -> Option<ARef<MmWithUser>> {
    // SAFETY: reads `current->mm` of the calling task.
    let mm = unsafe { ext::importer_current_mm() };
    if mm.is_null() {
        return None;
    }
    // SAFETY: `current->mm` of the running task stays valid while it runs
    // (it is only replaced by the task itself, e.g. at exec); the reference
    // taken below keeps it alive after that.
    unsafe { Mm::from_raw(mm) }.mmget_not_zero()
}

// --- mmu interval notifiers ---------------------------------------------------

/// An invalidation of (part of) the interval.
pub(crate) struct InvalidateRange {
    /// Whether the callback may sleep (`mmu_notifier_range_blockable()`).
    pub(crate) blockable: bool,
    /// What the invalidation is for (`enum mmu_notifier_event`).
    pub(crate) event: u32,
}

/// What an interval notifier does on invalidation.
pub(crate) trait Invalidate: Send + Sync + Sized {
    /// Called for every invalidation that hits the interval. Must call
    /// [`IntervalNotifier::set_seq`] with `cur_seq` under the lock that
    /// serializes device access, and stop that access before returning.
    /// May return `false` only if `!range.blockable` and the lock could not
    /// be taken without sleeping.
    fn invalidate(this: &IntervalNotifier<Self>, range: &InvalidateRange, cur_seq: u64) -> bool;

    /// Called once the notifier has been removed (or was never inserted),
    /// before the data is dropped: the place to end device access for good.
    fn released(this: &IntervalNotifier<Self>);
}

/// An `mmu_interval_notifier` with its owner's data.
///
/// # Invariants
///
/// - While `inserted` is true, `raw` is inserted in the interval tree of an
///   mm and must be removed before it is freed.
/// - `raw` is only passed to the mm with [`Self::OPS`], whose callback
///   finds `Self` by `container_of`.
#[pin_data(PinnedDrop)]
pub(crate) struct IntervalNotifier<T: Invalidate> {
    #[pin]
    raw: Opaque<bindings::mmu_interval_notifier>,
    inserted: Atomic<bool>,
    #[pin]
    data: T,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: `raw` is only touched through the mmu notifier API, which
// serializes with its own locks; the rest is `T`, which is `Send + Sync`.
unsafe impl<T: Invalidate> Send for IntervalNotifier<T> {}
// SAFETY: as above.
unsafe impl<T: Invalidate> Sync for IntervalNotifier<T> {}

impl<T: Invalidate> IntervalNotifier<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate_callback),
        invalidate_start: None,
        invalidate_finish: None,
    };

    /// A notifier not yet inserted.
    pub(crate) fn new(data: impl PinInit<T, Error>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            raw <- Opaque::zeroed(),
            inserted: Atomic::new(false),
            data <- data,
            _pin: PhantomPinned,
        })
    }

    /// The owner's data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// Inserts the notifier for `[start, start + len)` of `mm`.
    ///
    /// Context: may sleep; must not hold `mm`'s mmap_lock.
    pub(crate) fn insert(&self, mm: &MmWithUser, start: usize, len: usize) -> Result {
        if self.inserted.load(Relaxed) {
            return Err(EBUSY);
        }
        // A promoted constant: the mm keeps the pointer.
        let ops: &'static bindings::mmu_interval_notifier_ops = &Self::OPS;
        // SAFETY: `raw` is pinned memory that outlives the insertion: it is
        // removed in `PinnedDrop` (INVARIANT: `inserted` is set below).
        // `mm` is a live mm with users; `OPS` is static.
        to_result(unsafe {
            bindings::mmu_interval_notifier_insert(
                self.raw.get(),
                mm.as_raw(),
                start as c_ulong,
                len as c_ulong,
                ops,
            )
        })?;
        self.inserted.store(true, Relaxed);
        Ok(())
    }

    /// `mmu_interval_read_begin()`: start of a read-side critical section.
    pub(crate) fn read_begin(&self) -> u64 {
        // SAFETY: only called on an inserted notifier (the importer inserts
        // before it maps); `raw` is valid while `self` lives.
        unsafe { bindings::mmu_interval_read_begin(self.raw.get()) as u64 }
    }

    /// `mmu_interval_read_retry()`: whether an invalidation ran since
    /// `read_begin` returned `seq`. Call under the device lock.
    pub(crate) fn read_retry(&self, seq: u64) -> bool {
        // SAFETY: `raw` is valid while `self` lives.
        unsafe { ext::importer_mmu_interval_read_retry(self.raw.get(), seq as c_ulong) }
    }

    /// `mmu_interval_set_seq()`, for [`Invalidate::invalidate`].
    pub(crate) fn set_seq(&self, cur_seq: u64) {
        // SAFETY: `raw` is valid while `self` lives; called from the
        // invalidate callback as the function requires.
        unsafe { ext::importer_mmu_interval_set_seq(self.raw.get(), cur_seq as c_ulong) }
    }

    /// # Safety
    ///
    /// Called by the mm only, for a notifier inserted with [`Self::OPS`].
    unsafe extern "C" fn invalidate_callback(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: c_ulong,
    ) -> bool {
        // SAFETY: by the type invariant `sub` is the `raw` field of a live
        // `Self` (it is removed before `Self` is freed, and removal waits
        // for running callbacks).
        let this = unsafe {
            &*kernel::container_of!(
                sub.cast::<Opaque<bindings::mmu_interval_notifier>>(),
                Self,
                raw
            )
        };
        let range = InvalidateRange {
            // SAFETY: `range` is valid for the duration of the callback.
            blockable: unsafe { ext::importer_mmu_notifier_range_blockable(range) },
            // SAFETY: as above.
            event: unsafe { ext::importer_mmu_notifier_range_event(range) },
        };
        T::invalidate(this, &range, cur_seq as u64)
    }

    /// Runs `hmm_range_fault()` on `[start, end)` until it succeeds without
    /// an invalidation race, filling `pfns` (one per page). Returns the
    /// notifier sequence the result is valid for (check it with
    /// [`Self::read_retry`] under the device lock).
    ///
    /// Context: may sleep; takes `mm`'s mmap_lock for read.
    pub(crate) fn hmm_fault(
        &self,
        mm: &MmWithUser,
        start: usize,
        end: usize,
        write: bool,
        pfns: &mut [c_ulong],
    ) -> Result<u64> {
        if end <= start || (end - start) / PAGE_SIZE != pfns.len() {
            return Err(EINVAL);
        }
        let mut flags = ext::P2PMAP_HMM_PFN_REQ_FAULT;
        if write {
            flags |= ext::P2PMAP_HMM_PFN_REQ_WRITE;
        }
        // Bounded like lib/test_hmm.c (HMM_RANGE_DEFAULT_TIMEOUT there).
        for _ in 0..1000 {
            let seq = self.read_begin();
            let mut range = ext::hmm_range {
                notifier: self.raw.get(),
                notifier_seq: seq as c_ulong,
                start: start as c_ulong,
                end: end as c_ulong,
                hmm_pfns: pfns.as_mut_ptr(),
                default_flags: flags,
                pfn_flags_mask: 0,
                dev_private_owner: ptr::null_mut(),
            };
            let guard = mm.mmap_read_lock();
            // SAFETY: `range` is fully initialized, `pfns` holds one entry
            // per page of it, the notifier covers it and mmap_lock is held
            // for read as hmm_range_fault() requires.
            let ret = unsafe { ext::hmm_range_fault(&mut range) };
            drop(guard);
            if ret == EBUSY.to_errno() {
                continue;
            }
            to_result(ret)?;
            return Ok(seq);
        }
        Err(EBUSY)
    }
}

#[pinned_drop]
impl<T: Invalidate> PinnedDrop for IntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        if self.inserted.load(Relaxed) {
            // SAFETY: inserted (type invariant); this waits for running
            // callbacks, after which the mm no longer references `raw`.
            unsafe { bindings::mmu_interval_notifier_remove(self.raw.get()) };
            self.inserted.store(false, Relaxed);
        }
        T::released(&self);
    }
}

// --- device_map / device_unmap ----------------------------------------------

/// The `vm_operations_struct` whose `device_map` served a mapping, and a
/// reference on the mapped file.
///
/// # Invariants
///
/// `ops` points to the `vm_operations_struct` of a vma of `file`, with a
/// `device_unmap` callback. The file reference keeps the file, hence its
/// filesystem (module) and the ops, alive even after the vma is gone.
pub(crate) struct VmOps {
    ops: *const bindings::vm_operations_struct,
    _file: ARef<File>,
}

// SAFETY: a pointer to immutable, static callbacks and a refcounted file.
unsafe impl Send for VmOps {}
// SAFETY: as above.
unsafe impl Sync for VmOps {}

impl VmOps {
    /// Calls `device_unmap(NULL, dev, start, end, pa)`: the mapping's end.
    ///
    /// Context: any, including mmu notifier callbacks (the callee does not
    /// sleep).
    pub(crate) fn device_unmap(
        &self,
        dev: &device::Device,
        start: usize,
        end: usize,
        pa: &mut [u64],
    ) {
        // SAFETY: by the type invariant the ops are valid and have
        // `device_unmap`; `vma` may be NULL by the contract; `pa` is the
        // array `device_map` filled.
        unsafe {
            if let Some(unmap) = (*self.ops).device_unmap {
                unmap(
                    ptr::null_mut(),
                    raw_dev(dev),
                    start as c_ulong,
                    end as c_ulong,
                    pa.as_mut_ptr(),
                );
            }
        }
    }
}

/// Result of [`device_map`].
pub(crate) enum DeviceMap<'a> {
    /// Mapped: `pa` holds the bus addresses; mmap_lock still held.
    Mapped(MmapReadGuard<'a>, VmOps),
    /// Refused with this (negative) errno; mmap_lock still held.
    Refused(MmapReadGuard<'a>, i32),
    /// The provider released mmap_lock (-EAGAIN): look up again and retry.
    Retry,
}

/// Finds the vma of `[start, start + pa.len() pages)` under `guard` and calls
/// its `device_map`. Refuses with `-EFAULT` if the range is not inside one
/// vma and `-EOPNOTSUPP` if the vma has no `device_map`.
pub(crate) fn device_map<'a>(
    guard: MmapReadGuard<'a>,
    dev: &device::Device,
    start: usize,
    flags: u32,
    pa: &mut [u64],
) -> DeviceMap<'a> {
    let Some(end) = pa
        .len()
        .checked_mul(PAGE_SIZE)
        .and_then(|l| start.checked_add(l))
    else {
        return DeviceMap::Refused(guard, EINVAL.to_errno());
    };
    let (vma, ops, file) = match guard.vma_lookup(start) {
        Some(vma) if end <= vma.end() => {
            let raw = vma.as_ptr();
            // SAFETY: the vma is valid while `guard` is held.
            unsafe { (raw, (*raw).vm_ops, (*raw).vm_file) }
        }
        _ => return DeviceMap::Refused(guard, EFAULT.to_errno()),
    };
    let map = if ops.is_null() {
        None
    } else {
        // SAFETY: a non-NULL `vm_ops` points to the vma's static callbacks.
        unsafe { (*ops).device_map }
    };
    let Some(map) = map else {
        return DeviceMap::Refused(guard, EOPNOTSUPP.to_errno());
    };
    // SAFETY: the device_map contract: mmap_lock held for read (`guard`),
    // page-aligned range inside the vma, `pa` has one entry per page, a live
    // importer device, no `bufp` since we never ask for PIN.
    let ret = unsafe {
        map(
            vma,
            raw_dev(dev),
            ptr::null_mut(),
            start as c_ulong,
            end as c_ulong,
            flags,
            pa.as_mut_ptr(),
        )
    };
    if ret == EAGAIN.to_errno() {
        // The provider released mmap_lock: the guard must not unlock again.
        core::mem::forget(guard);
        return DeviceMap::Retry;
    }
    if ret != 0 {
        return DeviceMap::Refused(guard, ret);
    }
    if file.is_null() {
        // A provider serving a vma without a file: we cannot keep its ops
        // alive, so give the mapping back right away.
        // SAFETY: `ops` are the vma's (alive under `guard`); contract as above.
        unsafe {
            if let Some(unmap) = (*ops).device_unmap {
                unmap(
                    vma,
                    raw_dev(dev),
                    start as c_ulong,
                    end as c_ulong,
                    pa.as_mut_ptr(),
                );
            }
        }
        return DeviceMap::Refused(guard, EOPNOTSUPP.to_errno());
    }
    // SAFETY: `vm_file` of a vma is a valid file while the vma exists (under
    // `guard`); `File::from_raw_file` + `into` takes a reference of our own.
    let file: ARef<File> = unsafe { File::from_raw_file(file) }.into();
    // INVARIANT: `device_map` succeeded, so these ops have `device_unmap`
    // (contract); `file` is the vma's file.
    DeviceMap::Mapped(guard, VmOps { ops, _file: file })
}

// --- streaming DMA of page-cache pages ----------------------------------------

/// A page mapped for DMA by `dev` with `dma_map_page()`.
///
/// # Invariants
///
/// `addr` is a live streaming mapping of one page for `dev`, undone on drop.
pub(crate) struct DmaPage {
    dev: ARef<device::Device>,
    addr: u64,
    dir: bindings::dma_data_direction,
}

impl DmaPage {
    /// Maps the page of `hmm_pfn` (a valid pfn from [`IntervalNotifier::hmm_fault`]).
    ///
    /// The page is not pinned: the caller stops using the mapping and drops
    /// it when its interval notifier is invalidated.
    pub(crate) fn map(dev: &device::Device, hmm_pfn: c_ulong, write: bool) -> Result<Self> {
        if hmm_pfn & ext::P2PMAP_HMM_PFN_VALID == 0 {
            return Err(EFAULT);
        }
        // SAFETY: a valid hmm pfn refers to a page with a struct page.
        let page = unsafe { ext::importer_hmm_pfn_to_page(hmm_pfn) };
        // The device only reads pages of a read-only mapping.
        let dir = if write {
            bindings::dma_data_direction::DMA_BIDIRECTIONAL
        } else {
            bindings::dma_data_direction::DMA_TO_DEVICE
        };
        // SAFETY: `dev` is a live device and `page` a valid page.
        let addr =
            unsafe { bindings::dma_map_page_attrs(raw_dev(dev), page, 0, PAGE_SIZE, dir, 0) };
        // SAFETY: `addr` was just returned by dma_map_page_attrs for `dev`.
        if unsafe { ext::importer_dma_mapping_error(raw_dev(dev), addr) } != 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped just above.
        Ok(DmaPage {
            dev: dev.into(),
            addr,
            dir,
        })
    }

    /// The bus address of the page for the device.
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }
}

impl Drop for DmaPage {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `addr` is a live mapping of one page
        // for `dev`; dma_unmap_page does not sleep.
        unsafe {
            bindings::dma_unmap_page_attrs(raw_dev(&self.dev), self.addr, PAGE_SIZE, self.dir, 0)
        };
    }
}
