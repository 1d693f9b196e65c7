// SPDX-License-Identifier: GPL-2.0

//! The importer's unsafe boundary: the kernel's importer helper
//! (`struct device_map_range`, `include/linux/device_map_range.h`, patch
//! 0011) as a Rust type, and the ioctl structures. Everything else is safe
//! code.

use core::{
    marker::PhantomPinned,
    ptr::{
        self,
        NonNull, //
    },
};
use kernel::{
    bindings, device,
    error::{
        from_err_ptr,
        to_result, //
    },
    ffi::c_ulong,
    miscdevice::MiscDeviceRegistration,
    mm::{
        Mm,
        MmWithUser, //
    },
    new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    types::Opaque,
};

use crate::{uapi, ImporterData, ImporterFile, Shared};

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
        p2pmap_fuzz,
        p2pmap_import,
        p2pmap_map,
        p2pmap_rw,
        p2pmap_status,
        p2pmap_time_map,
        P2PMAP_FUZZ_MAX_COUNT,
        P2PMAP_IMPORT_NO_P2P,
        P2PMAP_IMPORT_STATIC,
        P2PMAP_IOCTL_FUZZ_DEVICE_MAP,
        P2PMAP_IOCTL_IMPORT,
        P2PMAP_IOCTL_INJECT_TIMEOUT,
        P2PMAP_IOCTL_MAP,
        P2PMAP_IOCTL_MAP_PIN,
        P2PMAP_IOCTL_PIN_FD,
        P2PMAP_IOCTL_READ,
        P2PMAP_IOCTL_STATUS,
        P2PMAP_IOCTL_TIME_DEVICE_MAP,
        P2PMAP_IOCTL_UNMAP,
        P2PMAP_IOCTL_UNMAP_AGAIN,
        P2PMAP_IOCTL_WRITE,
        P2PMAP_MAP_ATOMIC,
        P2PMAP_MAP_NO_FALLBACK,
        P2PMAP_MAP_WRITE,
        P2PMAP_PATH_PINNED,
        P2PMAP_TIME_MAX_COUNT,
        P2PMAP_TIME_MAX_PAGES, //
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
unsafe impl FromBytes for uapi::Fuzz {}
// SAFETY: as above; the explicit `pad` leaves no padding.
unsafe impl AsBytes for uapi::Fuzz {}
// SAFETY: as above.
unsafe impl AsBytes for uapi::Status {}
// SAFETY: as above.
unsafe impl FromBytes for uapi::TimeMap {}
// SAFETY: as above; the explicit `pad` leaves no padding.
unsafe impl AsBytes for uapi::TimeMap {}
// SAFETY: as above.
unsafe impl FromBytes for uapi::Import {}
// SAFETY: as above; no padding.
unsafe impl AsBytes for uapi::Import {}

/// A pinned buffer the edu device imported: the dma_buf of a PIN
/// `device_map()` (or of a file descriptor), dynamically attached and
/// mapped (`importer_pin.c`). Dropping it unmaps, detaches and puts it.
///
/// # Invariants
///
/// The pointer is a live `struct importer_pin` from
/// `importer_pin_import()`, freed only by `Drop`.
pub(crate) struct PinnedBuf(NonNull<ext::importer_pin>);

// SAFETY: the C side serializes every access with its lock and the
// reservation lock; the pointer is not tied to a thread.
unsafe impl Send for PinnedBuf {}
// SAFETY: as above.
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    /// `device_map()` with `DEVICE_MAP_FLAG_PIN` of `[start, start + len)`
    /// of `mm` for `dev`, then the import of the dma_buf it returned.
    ///
    /// Context: may sleep; must not hold `mm`'s mmap_lock.
    pub(crate) fn map(
        dev: &device::Device,
        mm: &MmWithUser,
        start: usize,
        len: usize,
    ) -> Result<Self> {
        let end = start.checked_add(len).ok_or(EINVAL)?;
        let mut buf = ptr::null_mut();
        // SAFETY: `mm` has users (the caller's own mm), `dev` is live, and
        // `buf` is writable.
        to_result(unsafe {
            ext::importer_pin_device_map(
                mm.as_raw(),
                raw_dev(dev),
                start as c_ulong,
                end as c_ulong,
                &mut buf,
            )
        })?;
        // SAFETY: `buf` is the dma_buf reference device_map() gave us,
        // passed on.
        unsafe { Self::import(dev, buf, 0) }
    }

    /// Imports the dma_buf of file descriptor `fd` for `dev`, attached as
    /// `flags` say (`P2PMAP_IMPORT_*`).
    pub(crate) fn from_fd(dev: &device::Device, fd: i32, flags: u32) -> Result<Self> {
        // SAFETY: any fd value; the call checks it is a dma_buf.
        let buf = from_err_ptr(unsafe { ext::importer_dma_buf_get(fd) })?;
        // SAFETY: `buf` is a reference of ours, passed on.
        unsafe { Self::import(dev, buf, flags) }
    }

    /// # Safety
    ///
    /// `buf` is a live dma_buf on which the caller owns one reference; it
    /// moves into the result (or is put on error).
    unsafe fn import(
        dev: &device::Device,
        buf: *mut bindings::dma_buf,
        flags: u32,
    ) -> Result<Self> {
        // SAFETY: the caller's reference moves in; `dev` is live.
        let p = from_err_ptr(unsafe { ext::importer_pin_import(buf, raw_dev(dev), flags) })?;
        // INVARIANT: fresh from `importer_pin_import()`.
        NonNull::new(p).map(PinnedBuf).ok_or(ENOMEM)
    }

    /// A new file descriptor of the dma_buf.
    pub(crate) fn fd(&self) -> Result<i32> {
        // SAFETY: a live pin (type invariant).
        let fd = unsafe { ext::importer_pin_fd(self.0.as_ptr()) };
        to_result(fd)?;
        Ok(fd)
    }

    /// Device access: held while the device may use the bus addresses;
    /// the invalidation waits for it.
    pub(crate) fn lock(&self) -> PinAccess<'_> {
        // SAFETY: a live pin (type invariant).
        unsafe { ext::importer_pin_lock(self.0.as_ptr()) };
        PinAccess(self)
    }

    /// (mapped, revoked, invalidations, length in bytes).
    pub(crate) fn state(&self) -> (bool, bool, u64, u64) {
        let (mut mapped, mut revoked, mut inval, mut len) = (false, false, 0, 0);
        // SAFETY: a live pin; the outputs are writable.
        unsafe {
            ext::importer_pin_state(
                self.0.as_ptr(),
                &mut mapped,
                &mut revoked,
                &mut inval,
                &mut len,
            )
        };
        (mapped, revoked, inval, len)
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        // SAFETY: a live pin (type invariant), freed once, here.
        unsafe { ext::importer_pin_free(self.0.as_ptr()) };
    }
}

/// [`PinnedBuf::lock`] held.
pub(crate) struct PinAccess<'a>(&'a PinnedBuf);

impl PinAccess<'_> {
    /// The bus address of byte `off` of the buffer, `None` once revoked.
    pub(crate) fn bus(&self, off: usize) -> Option<u64> {
        // SAFETY: a live pin, its lock held (type invariant of the guard).
        let page =
            unsafe { ext::importer_pin_bus(self.0 .0.as_ptr(), (off / PAGE_SIZE) as c_ulong) };
        (page != 0).then_some(page + (off % PAGE_SIZE) as u64)
    }
}

impl Drop for PinAccess<'_> {
    fn drop(&mut self) {
        // SAFETY: taken by `PinnedBuf::lock`.
        unsafe { ext::importer_pin_unlock(self.0 .0.as_ptr()) };
    }
}

/// The raw `struct device` of `dev`, as the C callbacks want it.
fn raw_dev(dev: &device::Device) -> *mut bindings::device {
    // `device::Device` is a transparent wrapper of `struct device` (its
    // `as_raw` is crate-private), so the cast keeps the address.
    ptr::from_ref(dev).cast_mut().cast()
}

/// Sets (`pci_set_master()`) or clears (`pci_clear_master()`) Bus Master
/// Enable of `pdev`. The Rust PCI abstraction offers only the former, and
/// only to probe; resetting a stuck DMA engine needs both at any time.
///
/// Context: any (a config space write under `pci_lock`, a raw spinlock).
/// The caller keeps the function bound (it holds its BAR) when it sets.
pub(crate) fn set_bus_master(pdev: &pci::Device, on: bool) {
    // `pci::Device` is a transparent wrapper of `struct pci_dev` (its
    // `as_raw` is crate-private), so the cast keeps the address.
    let raw = ptr::from_ref(pdev).cast_mut().cast::<bindings::pci_dev>();
    // SAFETY: `raw` is a live `struct pci_dev` (we hold a reference on
    // it); neither call sleeps or has another requirement.
    unsafe {
        if on {
            bindings::pci_set_master(raw)
        } else {
            bindings::pci_clear_master(raw)
        }
    }
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
            name: "sizeof(struct mutex)",
            item: ext::IMPORTER_SZ_MUTEX,
            rust: size_of::<bindings::mutex>(),
        },
        Item {
            name: "sizeof(struct device_map_range)",
            item: ext::IMPORTER_SZ_DEVICE_MAP_RANGE,
            rust: size_of::<ext::device_map_range>(),
        },
        Item {
            name: "offsetof(struct device_map_range, pa)",
            item: ext::IMPORTER_OFF_RANGE_PA,
            rust: offset_of!(ext::device_map_range, pa),
        },
        Item {
            name: "offsetof(struct device_map_range, mapped)",
            item: ext::IMPORTER_OFF_RANGE_MAPPED,
            rust: offset_of!(ext::device_map_range, mapped),
        },
        Item {
            name: "offsetof(struct device_map_range, vm_ops)",
            item: ext::IMPORTER_OFF_RANGE_VM_OPS,
            rust: offset_of!(ext::device_map_range, vm_ops),
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

/// `DEVICE_MAP_FLAG_*` (include/linux/mm.h).
pub(crate) mod device_map_flag {
    pub(crate) use super::ext::{
        IMPORTER_DEVICE_MAP_FLAG_PIN as PIN,
        IMPORTER_DEVICE_MAP_FLAG_SUPPORT_ATOMIC_OP as SUPPORT_ATOMIC_OP,
        IMPORTER_DEVICE_MAP_FLAG_WRITE as WRITE, //
    };
}

/// One raw `vma->vm_ops->device_map()` call for `dev` on the vma of `mm`
/// at `addr`, with arguments the caller chose (possibly outside the
/// contract), then `device_unmap()` of a success
/// (`importer_raw_device_map()`). Returns the call's result: 0 or a
/// negative errno (`-EAGAIN`: the callee released mmap_lock); `map_ns`, if
/// given, receives the time the `device_map()` call itself took.
///
/// Context: may sleep; must not hold `mm`'s mmap_lock.
#[expect(clippy::too_many_arguments, reason = "the arguments of device_map()")]
pub(crate) fn raw_device_map(
    mm: &MmWithUser,
    addr: usize,
    dev: &device::Device,
    start: usize,
    end: usize,
    flags: u32,
    with_bufp: bool,
    pa: &mut [bindings::dma_addr_t],
    map_ns: Option<&mut u64>,
) -> i32 {
    // A callee that serves writes one entry per page of the range.
    if end > start && (end - start).div_ceil(PAGE_SIZE) > pa.len() {
        return EINVAL.to_errno();
    }
    let map_ns = map_ns.map_or(ptr::null_mut(), ptr::from_mut);
    // SAFETY: `mm` has users (`MmWithUser`) and `dev` is live for the
    // call; `pa` has room for every page of a non-empty range (checked
    // above); `map_ns` is null or a live `u64`. The shim takes and
    // releases mmap_lock itself and gives back what device_map() handed
    // out.
    unsafe {
        ext::importer_raw_device_map(
            mm.as_raw(),
            addr as c_ulong,
            raw_dev(dev),
            start as c_ulong,
            end as c_ulong,
            flags,
            with_bufp,
            pa.as_mut_ptr(),
            map_ns,
        )
    }
}

/// The shared state of the edu function whose misc device `misc` is.
pub(crate) fn shared_of(misc: &MiscDeviceRegistration<ImporterFile>) -> &Arc<Shared> {
    let misc = ptr::from_ref(misc);
    // SAFETY: every `MiscDeviceRegistration<ImporterFile>` is the `misc`
    // field of a pinned `ImporterData` (the only place one is created), and
    // the registration (hence the `ImporterData`) is alive while its open
    // callback runs.
    let data = unsafe { &*kernel::container_of!(misc, ImporterData, misc) };
    &data.shared
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

// --- the importer helper -------------------------------------------------------

/// What an importer does when an invalidation hits its range.
pub(crate) trait Invalidated: Send + Sync + Sized {
    /// Called for every invalidation of the range, with the range's lock
    /// held (device access has stopped) and, if `torn_down`, after the
    /// mapping was given back. `event` is the `enum mmu_notifier_event` of
    /// the invalidation, `quiesce_ns` the time it took to stop device
    /// access. Must not sleep.
    fn invalidated(this: &DeviceMapRange<Self>, event: u32, torn_down: bool, quiesce_ns: u64);
}

/// A device's mapping of a range of an mm: `struct device_map_range`
/// (`include/linux/device_map_range.h`) and the importer's data.
///
/// # Invariants
///
/// `raw` was initialized by `device_map_range_init()` with [`Self::OPS`]
/// and is finalized only by `PinnedDrop`. `device_map_range_map()` and the
/// reads of `p2p_errno` (which it writes) run under `map_lock`, which
/// serializes them as the helper requires.
#[pin_data(PinnedDrop)]
pub(crate) struct DeviceMapRange<T: Invalidated> {
    #[pin]
    data: T,
    #[pin]
    map_lock: Mutex<()>,
    // Last: if an earlier field failed to initialize, `raw` was never
    // initialized and there is nothing to finalize.
    #[pin]
    raw: Opaque<ext::device_map_range>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the C helper serializes access to `raw` with its own lock and the
// mmu notifier's; the rest is `T`, which is `Send + Sync`.
unsafe impl<T: Invalidated> Send for DeviceMapRange<T> {}
// SAFETY: as above.
unsafe impl<T: Invalidated> Sync for DeviceMapRange<T> {}

impl<T: Invalidated> DeviceMapRange<T> {
    const OPS: ext::device_map_range_ops = ext::device_map_range_ops {
        invalidated: Some(Self::invalidated_callback),
    };

    /// `device_map_range_init()`: a mapping of `[start, start + len)` of
    /// `mm` for `dev`, not yet mapped (see [`Self::map`]). `flags` are the
    /// `DEVICE_MAP_FLAG_*` passed to `device_map()`: 0, `WRITE`, or
    /// `WRITE | SUPPORT_ATOMIC_OP`.
    ///
    /// Context: may sleep; must not hold `mm`'s mmap_lock.
    pub(crate) fn new<'a>(
        dev: &'a device::Device,
        mm: &'a MmWithUser,
        start: usize,
        len: usize,
        flags: u32,
        data: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a
    where
        T: 'a,
    {
        let end = start.checked_add(len);
        // A promoted constant: the helper keeps the pointer.
        let ops: &'static ext::device_map_range_ops = &Self::OPS;
        try_pin_init!(Self {
            data <- data,
            map_lock <- new_mutex!(()),
            // INVARIANT: initialized here with `OPS`.
            raw <- Opaque::try_ffi_init(move |slot| {
                let end = end.ok_or(EINVAL)?;
                // SAFETY: `slot` is pinned memory for the struct, finalized
                // in `PinnedDrop` (`raw` is the last field, so a success
                // here is never undone without it). `dev` is a live device
                // (the helper takes a reference), `mm` has users (the
                // helper's requirement), `ops` is static.
                to_result(unsafe {
                    ext::device_map_range_init(
                        slot,
                        raw_dev(dev),
                        mm.as_raw(),
                        start as c_ulong,
                        end as c_ulong,
                        flags,
                        ops,
                    )
                })
            }),
            _pin: PhantomPinned,
        })
    }

    /// The importer's data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// The length of the range in bytes.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: `start` and `end` are written by init only.
        let (start, end) = unsafe { ((*self.raw.get()).start, (*self.raw.get()).end) };
        end - start
    }

    /// `device_map_range_map()`: maps through `device_map`, else (with
    /// `fallback`) the page cache.
    ///
    /// Context: may sleep; must not hold the range's lock ([`Access`]) or
    /// mmap_lock.
    pub(crate) fn map(&self, fallback: bool) -> Result {
        let _serialized = self.map_lock.lock();
        // SAFETY: `raw` is initialized and calls are serialized by
        // `map_lock` (type invariant).
        to_result(unsafe { ext::device_map_range_map(self.raw.get(), fallback) })
    }

    /// 0 if the last [`Self::map`] got a P2P mapping, else `device_map`'s
    /// refusal (negative errno).
    pub(crate) fn p2p_errno(&self) -> i32 {
        let _serialized = self.map_lock.lock();
        // SAFETY: `raw` is initialized; `p2p_errno` is only written by
        // `device_map_range_map()`, under `map_lock` (type invariant).
        unsafe { (*self.raw.get()).p2p_errno }
    }

    /// `device_map_range_lock()`: device access to the mapping until the
    /// returned guard is dropped; the invalidation waits for it.
    ///
    /// Context: may sleep. Do not allocate with `GFP_KERNEL` or touch user
    /// memory while holding it.
    pub(crate) fn lock(&self) -> Access<'_, T> {
        // SAFETY: `raw` is initialized; the guard unlocks.
        unsafe { ext::importer_device_map_range_lock(self.raw.get()) };
        // INVARIANT: locked just above.
        Access { range: self }
    }

    /// # Safety
    ///
    /// Called by the helper only, for a range initialized with
    /// [`Self::OPS`], with its lock held.
    unsafe extern "C" fn invalidated_callback(
        raw: *mut ext::device_map_range,
        mnr: *const bindings::mmu_notifier_range,
        torn_down: bool,
        quiesce_ns: u64,
    ) {
        // SAFETY: by the type invariant `raw` is the `raw` field of a live
        // `Self`: the notifier is removed (waiting for this callback)
        // before `Self` is freed.
        let this = unsafe {
            &*kernel::container_of!(raw.cast::<Opaque<ext::device_map_range>>(), Self, raw)
        };
        // SAFETY: `mnr` is valid for the duration of the callback.
        let event = unsafe { ext::importer_mmu_notifier_range_event(mnr) };
        T::invalidated(this, event, torn_down, quiesce_ns);
    }
}

#[pinned_drop]
impl<T: Invalidated> PinnedDrop for DeviceMapRange<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: initialized (type invariant) and finalized only here;
        // nobody holds the lock (an `Access` borrows `self`).
        unsafe { ext::device_map_range_fini(self.raw.get()) };
    }
}

/// Device access to a [`DeviceMapRange`]: its lock is held.
///
/// # Invariants
///
/// The range's lock is held by this guard.
pub(crate) struct Access<'a, T: Invalidated> {
    range: &'a DeviceMapRange<T>,
}

impl<T: Invalidated> Access<'_, T> {
    /// The helper's struct. Its fields are read one at a time through the
    /// raw pointer, never as a reference to the whole struct: the notifier
    /// and the lock in it change under us.
    fn raw(&self) -> *mut ext::device_map_range {
        self.range.raw.get()
    }

    /// Whether the mapping is live (not yet torn down by an invalidation).
    pub(crate) fn mapped(&self) -> bool {
        // SAFETY: `raw` is initialized; `mapped` is written under the lock,
        // which we hold (type invariant).
        unsafe { (*self.raw()).mapped }
    }

    /// How the range is mapped: `enum device_map_path` (0 not mapped yet,
    /// then `P2PMAP_PATH_*`, which have the same values).
    pub(crate) fn path(&self) -> u32 {
        // SAFETY: as in `mapped`.
        unsafe { (*self.raw()).path }
    }

    /// The bus address of byte `offset` of a live mapping.
    pub(crate) fn bus(&self, offset: usize) -> Option<u64> {
        let page = offset / PAGE_SIZE;
        if !self.mapped() || page >= self.range.len() / PAGE_SIZE {
            return None;
        }
        // SAFETY: `pa` has one entry per page of the range (allocated by
        // init, never changed), `page` is in bounds, and the entries are
        // valid under the lock while `mapped`.
        let base = unsafe { *(*self.raw()).pa.add(page) };
        Some(base + (offset % PAGE_SIZE) as u64)
    }

    /// Fault injection: calls `device_unmap` once more for a P2P mapping
    /// that was already given back, as a buggy importer would. The helper
    /// keeps the vm_ops and a file reference of the last P2P mapping until
    /// the range is mapped again or finalized, so the ops are still valid.
    pub(crate) fn device_unmap_again(&self) -> Result {
        let raw = self.raw();
        if self.mapped() {
            return Err(EBUSY);
        }
        // SAFETY: `vm_ops` is written under the lock, which we hold.
        let ops = unsafe { (*raw).vm_ops };
        if self.path() != ext::P2PMAP_PATH_P2P || ops.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `ops` is non-NULL and kept alive by the file reference
        // the helper holds with it (both only change under the lock we
        // hold); a P2P mapping's ops have `device_unmap`; `vma` may be NULL
        // by the contract; `dev`, `start`, `end` and `pa` are those of the
        // `device_map` call (written by init only).
        unsafe {
            if let Some(unmap) = (*ops).device_unmap {
                unmap(
                    ptr::null_mut(),
                    (*raw).dev,
                    (*raw).start,
                    (*raw).end,
                    (*raw).pa,
                );
            }
        }
        Ok(())
    }
}

impl<T: Invalidated> Drop for Access<'_, T> {
    fn drop(&mut self) {
        // SAFETY: held (type invariant).
        unsafe { ext::importer_device_map_range_unlock(self.range.raw.get()) };
    }
}
